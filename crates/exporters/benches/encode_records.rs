//! Encoding records as the filelog receiver does for json-ingest (DESIGN §7): entries shaped
//! like those `json_parser` (with timestamp and severity) and `move` make of
//! `../shared/peers/perf/gen_logs.py --format json` lines, encoded by [`OtlpRecords`] into
//! one group.
//!
//!     cargo bench -p centimane-exporters --bench encode_records

use centimane_core::{EncodedLogs, Entry, Map, Timestamp, Value};
use centimane_exporters::OtlpRecords;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// `n` entries with the fields and attributes a json-ingest line ends with.
fn entries(n: usize) -> Vec<Entry> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % m
    };
    let services = [
        "orders", "payments", "auth", "search", "cart", "catalog", "gateway",
    ];
    let paths = [
        "/api/v1/orders/",
        "/api/v1/users/",
        "/health",
        "/api/v1/cart/",
    ];
    let observed = Timestamp::now();
    (0..n)
        .map(|i| {
            let ts = format!("2024-05-01T12:00:{:02}.{:03}Z", i / 1000 % 60, i % 1000);
            let mut attributes = Map::with_capacity(12);
            for (key, value) in [
                ("log.file.name", Value::from("json-1000000.log")),
                ("ts", Value::from(ts.as_str())),
                ("level", Value::from("info")),
                ("host", Value::from(format!("web-{:02}", next(40)))),
                ("svc", Value::from(services[next(7) as usize])),
                ("seq", Value::Double(i as f64)),
                ("status", Value::Double(200.0)),
                ("dur_ms", Value::Double(next(200_000) as f64 / 1000.0)),
                (
                    "trace_id",
                    Value::from(format!("{:016x}{:016x}", next(u64::MAX), next(u64::MAX))),
                ),
            ] {
                attributes.insert(key.into(), value);
            }
            Entry {
                timestamp: Some(ts.parse().expect("RFC 3339")),
                observed_timestamp: observed,
                body: Value::from(format!(
                    "GET {}{} 200",
                    paths[next(4) as usize],
                    next(1_000_000)
                )),
                attributes,
                severity: 9,
                severity_text: "info".into(),
                ..Entry::default()
            }
        })
        .collect()
}

fn encode_records(c: &mut Criterion) {
    let entries = entries(1000);
    let mut group = c.benchmark_group("encode_records");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("json-ingest records into one group", |b| {
        b.iter(|| {
            let mut logs = EncodedLogs::default();
            let done = logs.push_entries(&OtlpRecords, black_box(&entries), 64);
            assert_eq!(done, entries.len());
            black_box(logs)
        })
    });
    group.finish();
}

criterion_group!(benches, encode_records);
criterion_main!(benches);
