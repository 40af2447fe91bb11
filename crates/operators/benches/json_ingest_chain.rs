//! The operators of json-ingest (DESIGN §7; `benches/ingest.py`): `json_parser` into
//! attributes with its timestamp and severity, then `move` of `msg` to the body, on batches
//! of entries made as the filelog receiver makes them (the raw line as body, the file name
//! as an attribute), then freed, as the receiver frees them after encoding.
//!
//!     cargo bench -p centimane-operators --bench json_ingest_chain

use centimane_core::testing::json_ingest_lines;
use centimane_core::{Entry, Map, OperatorChain, Value};
use centimane_operators::build_chain;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn json_ingest_chain(c: &mut Criterion) {
    let operators = serde_json::json!([
        {
            "type": "json_parser",
            "parse_from": "body",
            "parse_to": "attributes",
            "timestamp": {
                "parse_from": "attributes.ts",
                "layout_type": "gotime",
                "layout": "2006-01-02T15:04:05.000Z07:00"
            },
            "severity": {"parse_from": "attributes.level"}
        },
        {"type": "move", "from": "attributes.msg", "to": "body"}
    ]);
    let mut chain = build_chain(&operators).expect("the json-ingest operators build");
    let lines = json_ingest_lines(1000);
    let mut file = Map::with_capacity(12);
    file.insert("log.file.name".into(), Value::from("json-1000000.log"));
    let batch = || {
        lines
            .iter()
            .map(|line| Entry {
                body: Value::from(line.as_str()),
                attributes: file.clone_with_capacity(12),
                ..Entry::default()
            })
            .collect::<Vec<_>>()
    };
    let mut out = Vec::with_capacity(lines.len());
    let mut group = c.benchmark_group("json_ingest_chain");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("entries made, processed and freed", |b| {
        b.iter(|| {
            chain.process(batch(), &mut out);
            assert_eq!(out.len(), lines.len());
            out.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, json_ingest_chain);
criterion_main!(benches);
