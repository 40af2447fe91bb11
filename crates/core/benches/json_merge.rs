//! `json_parser` into attributes, the largest step of json-ingest (benches/README.md):
//! lines shaped like `../shared/peers/perf/gen_logs.py --format json` merged into a record's
//! attributes that already hold `log.file.name`.
//!
//!     cargo bench -p centimane-core --bench json_merge

use centimane_core::value::NumberMode;
use centimane_core::{Map, Value};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// `n` lines in gen_logs.py's json layout, from a fixed seed.
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

fn json_merge(c: &mut Criterion) {
    let lines = lines(4096);
    let mut base = Map::new();
    base.insert("log.file.name".into(), Value::from("json-1000000.log"));
    let mut group = c.benchmark_group("json_merge");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("into attributes, then dropped", |b| {
        b.iter(|| {
            for line in &lines {
                let mut attributes = base.clone_with_capacity(12);
                attributes
                    .merge_json_object(black_box(line), NumberMode::IntsWhenIntegral)
                    .expect("valid line");
                black_box(&attributes);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, json_merge);
criterion_main!(benches);
