//! Helpers shared by the tests of several modules.

use centimane_core::{AckListener, AckStatus, AckToken, Entry, Timestamp, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Records what the acknowledgements of a test reported.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(u64, AckStatus)>>,
    notify: Notify,
}

impl AckListener for Recorder {
    fn on_ack(&self, id: u64, status: AckStatus) {
        self.seen.lock().unwrap().push((id, status));
        self.notify.notify_one();
    }
}

pub(crate) struct Acks(Arc<Recorder>);

impl Acks {
    pub(crate) fn new() -> Self {
        Acks(Arc::default())
    }

    pub(crate) fn token(&self, id: u64) -> AckToken {
        AckToken::new(id, self.0.clone())
    }

    /// What was reported so far.
    pub(crate) fn seen(&self) -> Vec<(u64, AckStatus)> {
        self.0.seen.lock().unwrap().clone()
    }

    /// Waits (at most 5 s) until `n` acknowledgements were reported, then returns them all.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<(u64, AckStatus)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, self.0.notify.notified())
                .await
                .is_err()
            {
                return seen;
            }
        }
    }
}

/// An entry with every field set.
pub(crate) fn entry_with_all_fields() -> Entry {
    let mut e = Entry::new(Value::from("user logged in\nagain"));
    e.timestamp = Some(
        "2026-11-23T21:00:00.123456789Z"
            .parse::<Timestamp>()
            .unwrap(),
    );
    e.observed_timestamp = "2026-11-23T21:00:00.2Z".parse::<Timestamp>().unwrap();
    e.severity = 9;
    e.severity_text = "INFO".into();
    e.resource.insert("host.name".into(), Value::from("web-1"));
    e.attributes.insert("n".into(), Value::Int(5));
    e.attributes.insert("ratio".into(), Value::Double(0.25));
    e.trace_id = (1..=16).collect();
    e.span_id = (0xa1..=0xa8).collect();
    e.trace_flags = vec![1];
    e.scope_name = "app".into();
    e
}
