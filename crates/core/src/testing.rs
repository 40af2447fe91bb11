//! Helpers for tests, here and in other crates (feature `testing`).

use crate::ack::{AckListener, AckStatus};
use crate::batch::{RecordEncoder, RecordGroup};
use crate::entry::Entry;
use crate::value::{Map, Text};
use std::sync::Mutex;

/// A record encoder whose records are each an entry's body and a newline, after one byte of
/// room.
pub struct LineEncoder;

impl RecordEncoder for LineEncoder {
    fn start(&self, resource: &Map, scope_name: &Text) -> RecordGroup {
        RecordGroup {
            resource: resource.clone(),
            scope_name: scope_name.clone(),
            bytes: vec![0],
            prefix: 1,
            count: 0,
        }
    }

    fn push(&self, group: &mut RecordGroup, entry: &Entry) {
        group
            .bytes
            .extend_from_slice(entry.body.to_text().as_bytes());
        group.bytes.push(b'\n');
        group.count += 1;
    }
}

/// Records every acknowledgement it hears of, in order.
#[derive(Default)]
pub struct AckRecorder(pub Mutex<Vec<(u64, AckStatus)>>);

impl AckListener for AckRecorder {
    fn on_ack(&self, id: u64, status: AckStatus) {
        self.0.lock().unwrap().push((id, status));
    }
}

/// `n` lines in the layout of `../shared/peers/perf/gen_logs.py --format json` (json-ingest,
/// DESIGN §7), from a fixed seed: the input of the json-ingest benchmarks.
pub fn json_ingest_lines(n: usize) -> Vec<String> {
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
