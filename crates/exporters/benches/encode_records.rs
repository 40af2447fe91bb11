//! Encoding records as the filelog receiver does for json-ingest (DESIGN §7): entries shaped
//! like those `json_parser` (with timestamp and severity) and `move` make of
//! `../shared/peers/perf/gen_logs.py --format json` lines, encoded by [`OtlpRecords`] into
//! one group.
//!
//!     cargo bench -p centimane-exporters --bench encode_records

use centimane_core::testing::json_ingest_lines;
use centimane_core::{EncodedLogs, Entry, Map, Timestamp, Value};
use centimane_exporters::OtlpRecords;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value as Json;
use std::hint::black_box;

/// `n` entries as the json-ingest operators leave json-ingest lines: every key but `msg`
/// an attribute after the file name (numbers as doubles), `msg` the body, `ts` and `level`
/// the timestamp and severity.
fn entries(n: usize) -> Vec<Entry> {
    let observed = Timestamp::now();
    json_ingest_lines(n)
        .iter()
        .map(|line| {
            let Ok(Json::Object(fields)) = serde_json::from_str::<Json>(line) else {
                unreachable!("json-ingest lines are objects")
            };
            let mut entry = Entry {
                observed_timestamp: observed,
                attributes: Map::with_capacity(12),
                ..Entry::default()
            };
            entry
                .attributes
                .insert("log.file.name".into(), Value::from("json-1000000.log"));
            for (key, value) in fields {
                let value = match value {
                    Json::String(s) => Value::from(s),
                    Json::Number(d) => Value::Double(d.as_f64().expect("a number")),
                    other => unreachable!("json-ingest values are strings and numbers: {other}"),
                };
                match key.as_str() {
                    "msg" => entry.body = value,
                    _ => {
                        entry.attributes.insert(key.as_str().into(), value);
                    }
                }
            }
            let text = |key: &str| {
                entry
                    .attributes
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            entry.timestamp = text("ts").and_then(|ts| ts.parse().ok());
            let level = text("level").expect("a level");
            entry.severity = match level.as_str() {
                "debug" => 5,
                "warn" => 13,
                "error" => 17,
                _ => 9,
            };
            entry.severity_text = level.into();
            entry
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
