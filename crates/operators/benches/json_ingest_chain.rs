//! The operators of json-ingest (DESIGN §7; `benches/ingest.py`): `json_parser` into
//! attributes with its timestamp and severity, then `move` of `msg` to the body, on batches
//! of entries made as the filelog receiver makes them (the raw line as body, the file name
//! as an attribute), then freed, as the receiver frees them after encoding.
//!
//!     cargo bench -p centimane-operators --bench json_ingest_chain

use centimane_core::{Entry, Map, OperatorChain, Value};
use centimane_operators::build_chain;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// `n` lines in `../shared/peers/perf/gen_logs.py --format json`'s layout, from a fixed seed.
fn lines(n: usize) -> Vec<String> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % m
    };
    let levels = ["info", "info", "info", "debug", "warn", "error"];
    let services = [
        "orders", "payments", "auth", "search", "cart", "catalog", "gateway",
    ];
    let paths = [
        "/api/v1/orders/",
        "/api/v1/users/",
        "/health",
        "/api/v1/cart/",
    ];
    (0..n)
        .map(|i| {
            let ms = i as u64 * 997 / 1000;
            format!(
                r#"{{"ts":"2024-05-01T12:{:02}:{:02}.{:03}Z","level":"{}","host":"web-{:02}","svc":"{}","seq":{i},"msg":"GET {}{} 200","status":200,"dur_ms":{}.{:03},"trace_id":"{:016x}{:016x}"}}"#,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000,
                levels[next(6) as usize],
                next(40),
                services[next(7) as usize],
                paths[next(4) as usize],
                next(1_000_000),
                next(200),
                next(1000),
                next(u64::MAX),
                next(u64::MAX),
            )
        })
        .collect()
}

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
    let lines = lines(1000);
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
