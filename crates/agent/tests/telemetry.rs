//! Self-telemetry, black-box: `/metrics` counts what flowed, and the health check turns
//! unhealthy while the exporter's backend is down and healthy again after.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET; returns (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn with_telemetry(config: String, metrics: u16, health: u16) -> String {
    config
        .replace(
            "service:\n",
            &format!("service:\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{metrics}\n"),
        )
        .replace("  extensions: [file_storage]", "  extensions: [file_storage, health_check]")
        .replacen(
            "extensions:\n",
            &format!("extensions:\n  health_check:\n    endpoint: 127.0.0.1:{health}\n    path: /health\n"),
            1,
        )
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_count_what_flowed() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    append_json_lines(&logs.join("a.log"), 0, 300);
    let sink = Sink::start();
    let (mport, hport) = (free_port(), free_port());
    let agent = Agent::start(
        dir.path(),
        &with_telemetry(
            otlp_config(dir.path(), sink.addr, JSON_OPERATORS),
            mport,
            hport,
        ),
    );
    sink.wait_for(300, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, text) = get(mport, "/metrics").expect("metrics endpoint answers");
        assert_eq!(status, 200);
        if metric(
            &text,
            "otelcol_exporter_sent_log_records_total{exporter=\"otlp\"}",
        ) == Some(300.0)
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        metric(
            &text,
            "otelcol_receiver_accepted_log_records_total{receiver=\"filelog\"}"
        ),
        Some(300.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "otelcol_exporter_sent_log_records_total{exporter=\"otlp\"}"
        ),
        Some(300.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "otelcol_exporter_send_failed_log_records_total{exporter=\"otlp\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "centimane_filelog_files_open{receiver=\"filelog\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "centimane_filelog_bytes_behind{receiver=\"filelog\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(&text, "process_resident_memory_bytes").unwrap_or(0.0) > 1e6,
        "{text}"
    );
    assert!(text.contains("centimane_config_info{hash=\""), "{text}");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn health_follows_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    append_json_lines(&logs.join("a.log"), 0, 50);
    let backend = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (mport, hport) = (free_port(), free_port());
    let agent = Agent::start(
        dir.path(),
        &with_telemetry(
            otlp_config(dir.path(), backend, JSON_OPERATORS),
            mport,
            hport,
        ),
    );
    let wait_status = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = get(hport, "/health").map(|(s, _)| s);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "health stayed {got:?}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_status(503);
    let sink = Sink::start_on(backend);
    sink.wait_for(50, Duration::from_secs(30));
    wait_status(200);
    assert_eq!(agent.stop(), 0);
}
