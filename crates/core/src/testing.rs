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
