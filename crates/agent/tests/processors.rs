//! Black-box tests of the processors: the real binary tails real files through each
//! processor and exports to a real OTLP/gRPC sink on 127.0.0.1.

mod common;

use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A config tailing `<dir>/logs/*.log` through `JSON_OPERATORS`, then `pipeline` (a YAML
/// list of processor ids, defined in `processors`), to the sink.
fn config(dir: &Path, sink: SocketAddr, processors: &str, pipeline: &str) -> String {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    format!(
        r#"
extensions:
  file_storage:
    directory: {storage}
receivers:
  filelog:
    include: ["{logs}/*.log"]
    start_at: beginning
    poll_interval: 50ms
    storage: file_storage
    operators: {JSON_OPERATORS}
processors:
  batch:
    timeout: 50ms
{processors}
exporters:
  otlp:
    endpoint: http://{sink}
    timeout: 2s
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
service:
  extensions: [file_storage]
  pipelines:
    logs:
      receivers: [filelog]
      processors: {pipeline}
      exporters: [otlp]
"#,
        storage = storage.display(),
        logs = dir.join("logs").display(),
    )
}

fn logs_dir(dir: &Path) -> std::path::PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    logs
}

/// Appends `count` lines like `append_json_lines`, all at level `info`.
fn append_info_lines(path: &Path, from: usize, count: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for seq in from..from + count {
        writeln!(
            f,
            r#"{{"time":"2026-11-25T08:00:00.000Z","level":"info","seq":{seq},"msg":"quiet {seq}"}}"#
        )
        .unwrap();
    }
}

fn sha256_hex(text: &str) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[test]
fn attributes_and_resource_actions() {
    let dir = tempfile::tempdir().unwrap();
    append_json_lines(&logs_dir(dir.path()).join("a.log"), 0, 50);
    let sink = Sink::start();
    let processors = r#"
  attributes:
    actions:
      - {key: env, value: prod, action: insert}
      - {key: level, action: delete}
      - {key: time, pattern: "^(?P<date>\\d{4}-\\d{2}-\\d{2})T(?P<hour>\\d{2})", action: extract}
      - {key: time_hash, from_attribute: time, action: upsert}
      - {key: time_hash, action: hash}
      - {key: seq_text, from_attribute: seq, action: insert}
      - {key: seq_text, action: convert, converted_type: string}
      - {key: hour, action: convert, converted_type: int}
  resource:
    attributes:
      - {key: host.name, value: test-host, action: upsert}
      - {key: deployment, value: blue, action: insert}"#;
    let agent = Agent::start(
        dir.path(),
        &config(
            dir.path(),
            sink.addr,
            processors,
            "[attributes, resource, batch]",
        ),
    );
    let got = sink.wait_for(50, Duration::from_secs(30));
    assert_eq!(agent.stop(), 0);
    assert_eq!(seqs(&got), (0..50).collect::<Vec<_>>());
    let r = got
        .iter()
        .find(|r| r.attr("seq").as_deref() == Some("7"))
        .unwrap();
    assert_eq!(r.attr("env").as_deref(), Some("prod"));
    assert_eq!(r.attr("level"), None, "deleted");
    assert_eq!(r.attr("date").as_deref(), Some("2026-11-25"));
    let hour = r
        .record
        .attributes
        .iter()
        .find(|kv| kv.key == "hour")
        .unwrap();
    assert!(
        matches!(
            hour.value.as_ref().and_then(|v| v.value.as_ref()),
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(8))
        ),
        "converted to int: {hour:?}"
    );
    let time = r.attr("time").unwrap();
    assert_eq!(
        r.attr("time_hash"),
        Some(sha256_hex(&time)),
        "SHA-256 hex, as the Collector"
    );
    assert_eq!(r.attr("seq_text").as_deref(), Some("7"));
    assert_eq!(
        r.resource.get("host.name").map(String::as_str),
        Some("test-host")
    );
    assert_eq!(
        r.resource.get("deployment").map(String::as_str),
        Some("blue")
    );
}

/// OTTL conditions drop records; batches whose records were all dropped still commit
/// their offsets: a later run without the filter sends only new lines.
#[test]
fn filter_drops_records_and_still_commits_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    append_json_lines(&logs.join("a.log"), 0, 200);
    append_info_lines(&logs.join("b.log"), 1000, 300);
    let sink = Sink::start();
    let processors = r#"
  filter:
    error_mode: ignore
    logs:
      log_record:
        - 'severity_number < SEVERITY_NUMBER_WARN'
        - 'IsMatch(body, "line 1[0-9]$")'
        - 'attributes["seq"] >= 150 and attributes["seq"] < 160'"#;
    let want: Vec<usize> = (0..200)
        .filter(|s| s % 2 == 1 && !(10..20).contains(s) && !(150..160).contains(s))
        .collect();
    let agent = Agent::start(
        dir.path(),
        &config(dir.path(), sink.addr, processors, "[filter, batch]"),
    );
    sink.wait_for(want.len(), Duration::from_secs(30));
    // Let the all-dropped batches of b.log be acknowledged and checkpointed.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(agent.stop(), 0);
    assert_eq!(
        seqs(&sink.received()),
        want,
        "exactly the records no condition matches"
    );

    // Same storage, no filter: only lines written from now on may arrive.
    append_json_lines(&logs.join("a.log"), 5000, 3);
    let agent = Agent::start(dir.path(), &config(dir.path(), sink.addr, "", "[batch]"));
    sink.wait_for(want.len() + 3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(agent.stop(), 0);
    let mut all = want.clone();
    all.extend([5000, 5001, 5002]);
    assert_eq!(
        seqs(&sink.received()),
        all,
        "dropped lines were committed, not read again"
    );
}

#[test]
fn filter_legacy_include_exclude() {
    let dir = tempfile::tempdir().unwrap();
    append_json_lines(&logs_dir(dir.path()).join("a.log"), 0, 100);
    let sink = Sink::start();
    let processors = r#"
  filter:
    logs:
      include:
        match_type: strict
        severity_number: {min: ERROR}
      exclude:
        match_type: regexp
        bodies: ["^line [0-9]$"]
        record_attributes:
          - {key: level, value: "^err"}"#;
    let want: Vec<usize> = (10..100).filter(|s| s % 2 == 1).collect();
    let agent = Agent::start(
        dir.path(),
        &config(dir.path(), sink.addr, processors, "[filter, batch]"),
    );
    sink.wait_for(want.len(), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.stop(), 0);
    assert_eq!(seqs(&sink.received()), want);
}

/// FNV-1a over the seed's little-endian bytes then the data (the Collector's hash).
fn fnv1a(seed: u32, data: &[u8]) -> u32 {
    seed.to_le_bytes()
        .iter()
        .chain(data)
        .fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
}

#[test]
fn probabilistic_sampler_keeps_the_collectors_choice() {
    let dir = tempfile::tempdir().unwrap();
    append_json_lines(&logs_dir(dir.path()).join("a.log"), 0, 1000);
    let sink = Sink::start();
    let processors = r#"
  probabilistic_sampler:
    sampling_percentage: 40
    hash_seed: 7
    attribute_source: record
    from_attribute: seq"#;
    // The Collector's decision in hash_seed mode: low 14 bits of the hash below pct×163.84.
    let scaled = (40f32 * (16384f32 / 100.0)) as u32;
    let want: Vec<usize> = (0..1000)
        .filter(|s| fnv1a(7, s.to_string().as_bytes()) & 0x3fff < scaled)
        .collect();
    assert!((300..500).contains(&want.len()), "{}", want.len());
    let agent = Agent::start(
        dir.path(),
        &config(
            dir.path(),
            sink.addr,
            processors,
            "[probabilistic_sampler, batch]",
        ),
    );
    sink.wait_for(want.len(), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.stop(), 0);
    let got = sink.received();
    assert_eq!(seqs(&got), want);
    let threshold = format!("{:014x}", u64::from(16384 - scaled) << 42)
        .trim_end_matches('0')
        .to_owned();
    for r in &got {
        assert_eq!(r.attr("sampling.threshold"), Some(threshold.clone()));
        assert_eq!(r.attr("sampling.randomness").map(|v| v.len()), Some(14));
    }
}

/// A limit far below the agent's own size: nothing passes, nothing is dropped or
/// committed, and the agent still stops promptly. With a workable limit every line
/// arrives once.
#[test]
fn memory_limiter_refuses_then_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    append_json_lines(&logs_dir(dir.path()).join("a.log"), 0, 2000);
    let sink = Sink::start();
    let tight = r#"
  memory_limiter:
    check_interval: 100ms
    limit_mib: 2"#;
    let agent = Agent::start(
        dir.path(),
        &config(dir.path(), sink.addr, tight, "[memory_limiter, batch]"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.count(), 0, "refused while above the soft limit");
    let log = agent.log();
    let started = std::time::Instant::now();
    assert_eq!(agent.stop(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the drain did not hang"
    );
    assert!(log.contains("refusing data"), "{log}");

    let roomy = r#"
  memory_limiter:
    check_interval: 100ms
    limit_mib: 4000
    spike_limit_mib: 800"#;
    let agent = Agent::start(
        dir.path(),
        &config(dir.path(), sink.addr, roomy, "[memory_limiter, batch]"),
    );
    sink.wait_for(2000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.stop(), 0);
    assert_eq!(seqs(&sink.received()), (0..2000).collect::<Vec<_>>());
}

#[test]
fn unsupported_processor_settings_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "  filter:\n    logs:\n      log_record: ['IsString(body)']",
            "IsString",
        ),
        (
            "  probabilistic_sampler:\n    mode: proportional",
            "proportional",
        ),
        ("  memory_limiter:\n    limit_mib: 10", "check_interval"),
        (
            "  attributes:\n    actions:\n      - {key: a, action: shout}",
            "shout",
        ),
    ];
    for (processors, want) in cases {
        let id = processors.trim_start().split(':').next().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            config(
                dir.path(),
                "127.0.0.1:1".parse().unwrap(),
                processors,
                &format!("[{id}]"),
            ),
        )
        .unwrap();
        let out = std::process::Command::new(BIN)
            .args(["validate", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{processors}: {stderr}");
        assert!(stderr.contains(want), "{processors}: {stderr}");
    }
}
