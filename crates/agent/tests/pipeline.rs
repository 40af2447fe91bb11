//! Black-box tests: the real binary tails real files and exports to a real OTLP/gRPC server
//! on 127.0.0.1.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn every_line_arrives_once_with_parsed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    append_json_lines(&logs.join("a.log"), 0, 300);
    append_json_lines(&logs.join("b.log"), 300, 200);
    let sink = Sink::start();
    let agent = Agent::start(
        dir.path(),
        &otlp_config(dir.path(), sink.addr, JSON_OPERATORS),
    );
    let got = sink.wait_for(500, Duration::from_secs(30));
    assert_eq!(agent.stop(), 0);
    let got_after = sink.received();
    assert_eq!(
        seqs(&got_after),
        (0..500).collect::<Vec<_>>(),
        "each line exactly once"
    );
    assert!(got.len() <= got_after.len());

    let r = got_after
        .iter()
        .find(|r| r.attr("seq").as_deref() == Some("7"))
        .unwrap();
    assert_eq!(r.body(), "line 7");
    assert_eq!(r.record.severity_number, 17, "error → ERROR");
    assert_eq!(r.record.severity_text, "error");
    // 2026-11-25T08:00:07.007Z
    assert_eq!(r.record.time_unix_nano, 1_795_593_607_007_000_000);
    assert!(r.record.observed_time_unix_nano > 0);
    assert_eq!(r.attr("log.file.name").as_deref(), Some("a.log"));
    assert_eq!(r.attr("time").as_deref(), Some("2026-11-25T08:00:07.007Z"));
    let seq = r
        .record
        .attributes
        .iter()
        .find(|kv| kv.key == "seq")
        .unwrap();
    assert!(
        matches!(
            seq.value.as_ref().and_then(|v| v.value.as_ref()),
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(7))
        ),
        "parse_ints keeps ints: {seq:?}"
    );
    let info = got_after
        .iter()
        .find(|r| r.attr("seq").as_deref() == Some("300"))
        .unwrap();
    assert_eq!(info.record.severity_number, 9);
    assert_eq!(info.attr("log.file.name").as_deref(), Some("b.log"));
}

/// Lines are written continuously; the agent is stopped with SIGTERM mid-stream and
/// started again later: every line arrives exactly once.
#[test]
fn restart_mid_stream_delivers_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let file = logs.join("app.log");
    let sink = Sink::start();
    let config = otlp_config(dir.path(), sink.addr, JSON_OPERATORS);
    let total = 6000;
    let writer = {
        let file = file.clone();
        std::thread::spawn(move || {
            for chunk in 0..(total / 100) {
                append_json_lines(&file, chunk * 100, 100);
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let agent = Agent::start(dir.path(), &config);
    sink.wait_for(500, Duration::from_secs(30));
    assert_eq!(agent.stop(), 0, "clean stop mid-stream");
    let at_stop = sink.count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sink.count(),
        at_stop,
        "nothing is sent after the agent exited"
    );
    let agent = Agent::start(dir.path(), &config);
    writer.join().unwrap();
    sink.wait_for(total, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.stop(), 0);
    assert_eq!(seqs(&sink.received()), (0..total).collect::<Vec<_>>());
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The backend is down when the agent starts: it reads only as far as its bounded buffers
/// allow (memory stays small), keeps retrying, and delivers everything once the backend
/// is up.
#[test]
fn backend_down_at_start_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let lines = 150_000;
    append_json_lines(&logs.join("big.log"), 0, lines);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let agent = Agent::start(dir.path(), &otlp_config(dir.path(), addr, JSON_OPERATORS));
    std::thread::sleep(Duration::from_secs(3));
    let rss = rss_kib(agent_pid(&agent));
    eprintln!("agent RSS with the backend down: {rss} KiB");
    // Buffering every parsed line would take several hundred MiB; the bounded channels
    // hold a few batches.
    assert!(
        rss > 0 && rss < 120 * 1024,
        "RSS {rss} KiB while the backend is down"
    );
    let sink = Sink::start_on(addr);
    sink.wait_for(lines, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.stop(), 0);
    assert_eq!(seqs(&sink.received()), (0..lines).collect::<Vec<_>>());
}

fn agent_pid(agent: &Agent) -> u32 {
    agent.pid()
}

/// One receiver in two pipelines, the second fanning out to two exporters: every exporter
/// gets every line once, and offsets commit only when all of them delivered.
#[test]
fn fan_out_to_several_pipelines_and_exporters() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    append_json_lines(&logs.join("a.log"), 0, 200);
    let (a, b) = (Sink::start(), Sink::start());
    let out = dir.path().join("out").join("logs.jsonl");
    let config = format!(
        r#"
receivers:
  filelog:
    include: ["{logs}/*.log"]
    start_at: beginning
    poll_interval: 50ms
    operators:
      - type: json_parser
        parse_ints: true
processors:
  batch:
    timeout: 20ms
  batch/big:
    send_batch_size: 50
    timeout: 20ms
exporters:
  otlp/a:
    endpoint: http://{a}
  otlp/b:
    endpoint: http://{b}
  file:
    path: {out}
service:
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlp/a]
    logs/copy:
      receivers: [filelog]
      processors: [batch/big]
      exporters: [otlp/b, file]
"#,
        logs = logs.display(),
        a = a.addr,
        b = b.addr,
        out = out.display(),
    );
    let agent = Agent::start(dir.path(), &config);
    a.wait_for(200, Duration::from_secs(30));
    b.wait_for(200, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.stop(), 0);
    assert_eq!(seqs(&a.received()), (0..200).collect::<Vec<_>>());
    assert_eq!(seqs(&b.received()), (0..200).collect::<Vec<_>>());
    // The file exporter wrote OTLP/JSON requests, one per line.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut records = 0;
    for line in text.lines() {
        let req: serde_json::Value = serde_json::from_str(line).unwrap();
        for rl in req["resourceLogs"].as_array().unwrap() {
            for sl in rl["scopeLogs"].as_array().unwrap() {
                for r in sl["logRecords"].as_array().unwrap() {
                    assert!(
                        r["observedTimeUnixNano"].is_string(),
                        "int64 as a string: {r}"
                    );
                    records += 1;
                }
            }
        }
    }
    assert_eq!(records, 200);
}
