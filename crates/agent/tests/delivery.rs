//! Black-box tests of delivery when the backend misbehaves: the real binary tails real
//! files and exports to sinks on 127.0.0.1 that go down, answer slowly, reject records or
//! speak TLS. Every test checks that no line is lost (DESIGN §5).
//!
//! Figures (peak RSS, outage length, duplicates) are printed with `--nocapture`.

mod common;
mod delivery_support;

use common::Agent;
use delivery_support::*;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fast retries, so a test does not wait out the default 5 s backoff.
const RETRY: &str = "
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 1s";

fn otlp_exporter(endpoint: &str, extra: &str) -> String {
    format!("    endpoint: {endpoint}\n    timeout: 5s{RETRY}{extra}")
}

fn log_file(dir: &Path) -> std::path::PathBuf {
    dir.join("logs").join("app.log")
}

/// Lines flow while the backend goes away for 8 s and comes back on the same port: every
/// line arrives and memory stays bounded (the in-memory sending queue is bounded, then
/// the channels fill and the reader waits). `CENTIMANE_OUTAGE_LINES` changes the number of
/// lines (default 200,000; the figure is 500,000).
#[test]
fn an_outage_loses_nothing_and_memory_stays_bounded() {
    let lines: usize = std::env::var("CENTIMANE_OUTAGE_LINES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    const OUTAGE: Duration = Duration::from_secs(8);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let sink = Sink::start(
        Protocol::Grpc,
        "127.0.0.1:0".parse().unwrap(),
        recorder.clone(),
        Behavior::default(),
        None,
    );
    let addr = sink.addr;
    let exporter = otlp_exporter(
        &format!("http://{addr}"),
        "
    sending_queue:
      queue_size: 20",
    );
    let config = config(dir.path(), true, 2000, "otlp", &exporter);
    let file = log_file(dir.path());
    let writer = {
        let file = file.clone();
        // Chunks of 1000 lines, 40 ms apart: 200,000 lines take about 8 s to write.
        std::thread::spawn(move || {
            for chunk in 0..lines.div_ceil(1000) {
                let from = chunk * 1000;
                append_lines(&file, from, 1000.min(lines - from), "line");
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let agent = Agent::start(dir.path(), &config);
    recorder.wait_for(20_000, Duration::from_secs(60));
    sink.stop();
    let down_at = recorder.distinct();
    std::thread::sleep(OUTAGE);
    assert!(
        recorder.distinct() == down_at,
        "nothing arrives while the sink is down"
    );
    let sink = Sink::start(
        Protocol::Grpc,
        addr,
        recorder.clone(),
        Behavior::default(),
        None,
    );
    let back = Instant::now();
    writer.join().unwrap();
    recorder.wait_for(lines, Duration::from_secs(180));
    let caught_up = back.elapsed();
    let peak = proc_kib(agent.pid(), "VmHWM");
    assert_eq!(agent.stop(), 0);
    drop(sink);
    eprintln!(
        "outage: {lines} lines, sink down {OUTAGE:?} after {down_at} records, all in {caught_up:?} after it came back; duplicates {}; agent peak RSS (VmHWM) {} MiB",
        recorder.duplicates(),
        peak / 1024
    );
    assert_eq!(recorder.missing(lines), Vec::<usize>::new());
    // The pipeline holds at most 20 requests of 2000 records in the queue plus a few
    // batches in channels: a few MiB of records. Everything read ahead would be ~100 MiB
    // more. The bound leaves room for a debug build's allocator behaviour.
    assert!(peak > 0 && peak < 150 * 1024, "peak RSS {peak} KiB");
}

/// The agent keeps its sending queue in a file_storage directory; it is SIGKILLed while the
/// sink is down. A run that reads no files at all then delivers what the queue kept, and a
/// normal run delivers the rest: nothing is lost.
#[test]
fn a_crash_with_a_persistent_queue_loses_nothing() {
    const LINES: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let down = free_addr();
    let exporter = otlp_exporter(
        &format!("http://{down}"),
        "
    sending_queue:
      storage: file_storage/queue
      queue_size: 1000",
    );
    let config_with_files = config(dir.path(), true, 2000, "otlp", &exporter);
    append_lines(&log_file(dir.path()), 0, LINES, "line");
    let agent = Agent::start(dir.path(), &config_with_files);
    // Reading and queueing is done when the queue file and the checkpoints stop changing.
    let watched = || {
        let queue = dir.path().join("queue").join("exporter_otlp_queue.redb");
        let mut state = std::fs::read(queue).unwrap_or_default();
        for entry in std::fs::read_dir(dir.path().join("checkpoints")).unwrap() {
            state.extend(std::fs::read(entry.unwrap().path()).unwrap_or_default());
        }
        state
    };
    let (mut state, mut since) = (Vec::new(), Instant::now());
    let deadline = Instant::now() + Duration::from_secs(60);
    while since.elapsed() < Duration::from_millis(1500) || state.is_empty() {
        assert!(Instant::now() < deadline, "the agent never settled");
        let now = watched();
        if now != state {
            (state, since) = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.kill();

    // Same exporter, same queue, but no checkpoint and nothing to read: whatever arrives
    // now came out of the queue.
    let recorder = Arc::new(Recorder::default());
    let sink = Sink::start(
        Protocol::Grpc,
        down,
        recorder.clone(),
        Behavior::default(),
        None,
    );
    let queue_only = tempfile::tempdir().unwrap();
    let mut config_queue_only = config(queue_only.path(), false, 2000, "otlp", &exporter);
    config_queue_only = config_queue_only.replace(
        &queue_only.path().join("queue").display().to_string(),
        &dir.path().join("queue").display().to_string(),
    );
    let agent = Agent::start(queue_only.path(), &config_queue_only);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (0, Instant::now());
    while last.1.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        let n = recorder.distinct();
        if n != last.0 {
            last = (n, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let from_queue = recorder.distinct();
    assert_eq!(agent.stop(), 0);
    assert!(from_queue > 0, "the queue kept nothing across the crash");

    // The normal config again: its checkpoint says how far the lines were queued.
    let agent = Agent::start(dir.path(), &config_with_files);
    recorder.wait_for(LINES, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.stop(), 0);
    drop(sink);
    eprintln!(
        "crash: {LINES} lines; after SIGKILL the queue alone delivered {from_queue}; duplicates {}",
        recorder.duplicates()
    );
    assert_eq!(recorder.missing(LINES), Vec::<usize>::new());
}

/// A sink that answers after 1 s: the agent sends at the sink's pace with two requests in
/// flight, reads only as fast as that, and loses nothing.
#[test]
fn a_slow_sink_slows_the_reader_down() {
    const LINES: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let slow = Behavior {
        delay: Duration::from_secs(1),
        ..Behavior::default()
    };
    let sink = Sink::start(
        Protocol::Grpc,
        "127.0.0.1:0".parse().unwrap(),
        recorder.clone(),
        slow,
        None,
    );
    let exporter = otlp_exporter(
        &format!("http://{}", sink.addr),
        "
    sending_queue:
      num_consumers: 2
      queue_size: 4",
    );
    append_lines(&log_file(dir.path()), 0, LINES, "line");
    let agent = Agent::start(dir.path(), &exporter_config(dir.path(), &exporter));
    std::thread::sleep(Duration::from_secs(4));
    let early = recorder.distinct();
    let rss = proc_kib(agent.pid(), "VmRSS");
    // 2 requests of 1000 records per second.
    assert!(early <= 4 * 2 * 1000, "{early} records after 4 s");
    recorder.wait_for(LINES, Duration::from_secs(60));
    let peak = proc_kib(agent.pid(), "VmHWM");
    assert_eq!(agent.stop(), 0);
    eprintln!(
        "slow sink: {early} records after 4 s, RSS then {} MiB, peak {} MiB",
        rss / 1024,
        peak / 1024
    );
    assert_eq!(recorder.missing(LINES), Vec::<usize>::new());
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
}

fn exporter_config(dir: &Path, exporter: &str) -> String {
    config(dir, true, 1000, "otlp", exporter)
}

/// Poison records are rejected for good by the backend (gRPC INVALID_ARGUMENT, HTTP
/// 400): their batch is dropped with an error naming the count, it is not retried, and
/// the lines around it arrive.
#[test]
fn permanent_rejections_are_dropped_counted_and_not_retried() {
    for protocol in [Protocol::Grpc, Protocol::Http] {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::default());
        let picky = Behavior {
            reject_poison: true,
            ..Behavior::default()
        };
        let sink = Sink::start(
            protocol,
            "127.0.0.1:0".parse().unwrap(),
            recorder.clone(),
            picky,
            None,
        );
        let (id, exporter) = match protocol {
            Protocol::Grpc => ("otlp", otlp_exporter(&format!("http://{}", sink.addr), "")),
            Protocol::Http => (
                "otlphttp",
                format!("    endpoint: http://{}\n    timeout: 5s{RETRY}", sink.addr),
            ),
        };
        let file = log_file(dir.path());
        append_lines(&file, 0, 100, "line");
        let agent = Agent::start(dir.path(), &config(dir.path(), true, 1000, id, &exporter));
        recorder.wait_for(100, Duration::from_secs(30));
        append_lines(&file, 100, 10, "poison");
        let deadline = Instant::now() + Duration::from_secs(30);
        while recorder
            .poison_requests
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            assert!(
                Instant::now() < deadline,
                "the poison never reached the sink"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        append_lines(&file, 110, 100, "line");
        recorder.wait_for(200, Duration::from_secs(30));
        // Time for several retries, had there been any.
        std::thread::sleep(Duration::from_millis(1500));
        let poison_requests = recorder
            .poison_requests
            .load(std::sync::atomic::Ordering::SeqCst);
        let log_path = agent.stderr_path.clone();
        assert_eq!(agent.stop(), 0);
        let log = plain(&std::fs::read_to_string(log_path).unwrap());
        assert_eq!(poison_requests, 1, "rejected once, never retried");
        let missing = recorder.missing(210);
        assert_eq!(
            missing,
            (100..110).collect::<Vec<_>>(),
            "only the poison is lost"
        );
        assert!(
            log.contains("the backend rejected the records permanently")
                && log.contains("rejected_total=10"),
            "{log}"
        );
    }
}

/// TLS with a CA made for the test: the agent that trusts it delivers; the agent that
/// trusts another CA delivers nothing and says why.
#[test]
fn tls_with_a_test_ca_and_with_the_wrong_one() {
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki_dir.path());
    let recorder = Arc::new(Recorder::default());
    let sink = Sink::start(
        Protocol::Grpc,
        "127.0.0.1:0".parse().unwrap(),
        recorder.clone(),
        Behavior::default(),
        Some(ca.server_tls()),
    );
    let endpoint = format!("https://{}", sink.addr);
    let tls = |ca_file: &Path| format!("\n    tls:\n      ca_file: {}", ca_file.display());

    let wrong = tempfile::tempdir().unwrap();
    append_lines(&log_file(wrong.path()), 1000, 100, "line");
    let exporter = otlp_exporter(&endpoint, &tls(&ca.other_ca_file));
    let wrong_agent = Agent::start(
        wrong.path(),
        &config(wrong.path(), true, 1000, "otlp", &exporter),
    );

    let right = tempfile::tempdir().unwrap();
    append_lines(&log_file(right.path()), 0, 100, "line");
    let exporter = otlp_exporter(&endpoint, &tls(&ca.ca_file));
    let agent = Agent::start(
        right.path(),
        &config(right.path(), true, 1000, "otlp", &exporter),
    );
    recorder.wait_for(100, Duration::from_secs(30));
    assert_eq!(agent.stop(), 0);

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    while !log.contains("UnknownIssuer") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        log = plain(&wrong_agent.log());
    }
    assert_eq!(
        recorder.distinct(),
        100,
        "nothing through an untrusted server"
    );
    wrong_agent.kill();
    assert!(
        log.contains("TLS with the backend failed")
            && log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
    assert_eq!(recorder.missing(100), Vec::<usize>::new());
}

/// The otlphttp exporter, protobuf and JSON, both gzipped, to an OTLP/HTTP sink.
#[test]
fn otlphttp_proto_and_json_with_gzip() {
    for encoding in ["proto", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::default());
        let sink = Sink::start(
            Protocol::Http,
            "127.0.0.1:0".parse().unwrap(),
            recorder.clone(),
            Behavior::default(),
            None,
        );
        let exporter = format!(
            "    endpoint: http://{}\n    encoding: {encoding}\n    compression: gzip{RETRY}",
            sink.addr
        );
        append_lines(&log_file(dir.path()), 0, 3000, "line");
        let agent = Agent::start(
            dir.path(),
            &config(dir.path(), true, 1000, "otlphttp", &exporter),
        );
        recorder.wait_for(3000, Duration::from_secs(30));
        assert_eq!(agent.stop(), 0);
        assert_eq!(recorder.missing(3000), Vec::<usize>::new());
        assert_eq!(recorder.duplicates(), 0);
        let content_type = match encoding {
            "proto" => "application/x-protobuf",
            _ => "application/json",
        };
        let formats = recorder.http_formats.lock().unwrap().clone();
        assert_eq!(
            formats.into_iter().collect::<Vec<_>>(),
            [format!("{content_type} gzip")]
        );
    }
}
