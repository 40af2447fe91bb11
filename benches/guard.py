#!/usr/bin/env python3
"""CI regression guard for the ingest hot path (issue 7).

Runs a short json-ingest (100,000 lines, benches/ingest.py) with the agent under
`valgrind --tool=callgrind` and compares the instructions it executed (all threads, start
to shutdown) with the committed baseline in benches/guard-baseline.json. Fails when they
grew by more than 25%. Instruction counts, unlike CPU seconds, barely move when other work
shares the machine, so the guard is not flaky on a busy CI host.

Usage: benches/guard.py [--bin PATH] [--update]
  --update  writes the measured count as the new baseline (commit it with the change that
            explains it).
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BASELINE = os.path.join(HERE, "guard-baseline.json")
LINES = 100_000
TOLERANCE = 1.25


def ensure_valgrind():
    if shutil.which("valgrind"):
        return
    # CI runs as root on Debian; a developer machine may need it installed once.
    print("guard: installing valgrind", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True, env=env, stdout=subprocess.DEVNULL)


def measure(binary, work):
    out = os.path.join(work, "callgrind.out")
    # `centimane run` starts itself again at once with its allocator settings
    # (crates/agent/src/allocator.rs): valgrind must follow it into that `exec`.
    wrap = f"valgrind --tool=callgrind --callgrind-out-file={out} --dump-instr=no --trace-children=yes"
    subprocess.run([sys.executable, os.path.join(HERE, "ingest.py"), "--bin", binary, "--lines", str(LINES),
                    "--runs", "1", "--workloads", "json", "--wrap", wrap, "--timeout", "300",
                    "--keep", os.path.join(work, "run")], check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    sys.exit(f"guard: no instruction total in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--bin", default=os.path.join(target, "release", "centimane"))
    ap.add_argument("--update", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.bin):
        subprocess.run(["cargo", "build", "--release", "-p", "centimane"], cwd=ROOT, check=True)
    ensure_valgrind()
    work = tempfile.mkdtemp(prefix="centimane-guard-")
    try:
        ir = measure(os.path.abspath(a.bin), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_line = ir / LINES
    if a.update:
        with open(BASELINE, "w") as f:
            json.dump({"workload": "json-ingest", "lines": LINES, "instructions": ir,
                       "instructions_per_line": round(per_line)}, f, indent=1)
            f.write("\n")
        print(f"guard: baseline set to {ir:,} instructions ({per_line:,.0f} per line)")
        return
    with open(BASELINE) as f:
        base = json.load(f)["instructions"]
    ratio = ir / base
    verdict = "ok" if ratio <= TOLERANCE else "FAILED"
    print(f"guard: json-ingest {LINES:,} lines: {ir:,} instructions ({per_line:,.0f} per line), "
          f"baseline {base:,}: {ratio:.2f}x (limit {TOLERANCE:.2f}x) {verdict}")
    if ratio > TOLERANCE:
        sys.exit("guard: the ingest hot path got more than 25% more expensive; profile it "
                 "(benches/README.md), or if the cost is deliberate, run benches/guard.py --update")


if __name__ == "__main__":
    main()
