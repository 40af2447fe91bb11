//! `json_parser` into attributes, the largest step of json-ingest (benches/README.md):
//! lines shaped like `../shared/peers/perf/gen_logs.py --format json` merged into a record's
//! attributes that already hold `log.file.name`.
//!
//!     cargo bench -p centimane-core --bench json_merge

use centimane_core::testing::json_ingest_lines;
use centimane_core::value::NumberMode;
use centimane_core::{Map, Value};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn json_merge(c: &mut Criterion) {
    let lines = json_ingest_lines(4096);
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
