#!/usr/bin/env python3
"""Tailing benchmark (issue 4): the cost of filelog alone — find, read, split, build
entries, batch — with the `debug` exporter at `basic` verbosity (a summary line per batch,
no encoding), so export costs don't blur the figure.

Workloads:
  one-file   1,000,000 JSON lines (~206 B) in one file
  many-files 1,000 files x 1,000 lines
For each: CPU-seconds (user+sys of the agent process) per million lines, lines/s, peak RSS
(VmHWM), and the same run's baseline `wc -l` over the same files, as a ratio.

Usage: benches/tail_bench.py [--bin target/release/centimane] [--keep DIR]
"""
import argparse, os, re, signal, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "shared", "peers", "perf", "gen_logs.py")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generate(root, files, lines_per_file):
    os.makedirs(root, exist_ok=True)
    first = os.path.join(root, "f0.log")
    subprocess.run([sys.executable, GEN, "--format", "json", "--lines", str(lines_per_file), "--out", first], check=True)
    if files > 1:
        data = open(first, "rb").read()
        for i in range(1, files):
            # Same lines, distinct first bytes, so each file has its own fingerprint.
            with open(os.path.join(root, f"f{i}.log"), "wb") as f:
                f.write(b'{"file":%d}\n' % i)
                f.write(data)
    return sum(1 for _ in open(first, "rb")) * files + (files - 1)


CONFIG = """
receivers:
  filelog:
    include: ["{root}/*.log"]
    start_at: beginning
    max_concurrent_files: 1024
processors:
  batch:
exporters:
  debug:
    verbosity: basic
service:
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [debug]
"""


def run_agent(binary, root, total, work):
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(root=root))
    err_path = os.path.join(work, "agent.err")
    err = open(err_path, "w")
    start = time.time()
    p = subprocess.Popen([binary, "run", "--config", cfg], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "RUST_LOG": "warn,centimane_exporters=info"})
    seen = 0
    pattern = re.compile(rb"(\d+) log records")
    deadline = start + 600
    while time.time() < deadline:
        time.sleep(0.05)
        with open(err_path, "rb") as f:
            seen = sum(int(m.group(1)) for m in pattern.finditer(f.read()))
        if seen >= total:
            break
    elapsed = time.time() - start
    cpu = cpu_seconds(p.pid)
    rss = peak_rss_mib(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    if seen < total:
        sys.exit(f"agent delivered {seen} of {total} lines; see {err_path}")
    return cpu, rss, elapsed


def baseline(root):
    files = sorted(os.path.join(root, n) for n in os.listdir(root))
    t = os.times()
    subprocess.run(["wc", "-l"] + files, stdout=subprocess.DEVNULL, check=True)
    t2 = os.times()
    return (t2.children_user - t.children_user) + (t2.children_system - t.children_system)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "centimane"))
    ap.add_argument("--keep")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="centimane-bench-")
    print(f"{'workload':12} {'lines':>9} {'CPU-s/1M':>9} {'lines/s':>10} {'peak RSS':>9} {'wc -l CPU-s/1M':>15} {'ratio':>6}")
    for name, files, per_file in [("one-file", 1, 1_000_000), ("many-files", 1000, 1000)]:
        root = os.path.join(work, name)
        total = generate(root, files, per_file)
        run_dir = os.path.join(work, name + "-run")
        os.makedirs(run_dir, exist_ok=True)
        cpu, rss, elapsed = run_agent(a.bin, root, total, run_dir)
        base = baseline(root)
        per_m = cpu / total * 1e6
        base_m = base / total * 1e6
        ratio = per_m / base_m if base_m > 0 else float("inf")
        print(f"{name:12} {total:>9} {per_m:>9.3f} {total / elapsed:>10.0f} {rss:>7.1f}MB {base_m:>15.3f} {ratio:>6.1f}")


if __name__ == "__main__":
    main()
