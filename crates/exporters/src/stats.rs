//! What an exporter did, as counters another part of the agent (health, self-metrics) can
//! read while it runs. Every exporter gets one [`ExporterStats`]; [`crate::spawn`] returns it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters of one exporter. Records are log records; requests are exported batches.
///
/// Invariant: every record the exporter took from its input ends up in exactly one of
/// `sent_records`, `partially_rejected_records`, `rejected_records` or `failed_records`,
/// or is still held (`queued` is not zero) when the counters are read. The exception is a
/// persistent queue at startup: records queued by an earlier run are counted when they leave.
#[derive(Debug, Default)]
pub struct ExporterStats {
    sent_records: AtomicU64,
    sent_requests: AtomicU64,
    rejected_records: AtomicU64,
    rejected_requests: AtomicU64,
    partially_rejected_records: AtomicU64,
    failed_records: AtomicU64,
    queued: AtomicU64,
    queue_capacity: AtomicU64,
    failing: AtomicBool,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Records the backend accepted.
    pub sent_records: u64,
    /// Requests the backend accepted, in whole or in part.
    pub sent_requests: u64,
    /// Records dropped because the backend rejected their request permanently (e.g. gRPC
    /// INVALID_ARGUMENT, HTTP 400), or because they could not be encoded.
    pub rejected_records: u64,
    /// Requests dropped for the same reasons.
    pub rejected_requests: u64,
    /// Records the backend reported as rejected in a partial success.
    pub partially_rejected_records: u64,
    /// Records not delivered for now: retrying gave up, or the agent abandoned them at
    /// shutdown. They are read again (in-memory queue) or sent again (persistent queue)
    /// after the next start.
    pub failed_records: u64,
    /// What the sending queue holds now (waiting or in flight), in its sizer's unit.
    pub queued: u64,
    /// The sending queue's `queue_size`; 0 for exporters without a queue.
    pub queue_capacity: u64,
}

impl ExporterStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            sent_records: get(&self.sent_records),
            sent_requests: get(&self.sent_requests),
            rejected_records: get(&self.rejected_records),
            rejected_requests: get(&self.rejected_requests),
            partially_rejected_records: get(&self.partially_rejected_records),
            failed_records: get(&self.failed_records),
            queued: get(&self.queued),
            queue_capacity: get(&self.queue_capacity),
        }
    }

    /// A request of `records` records was accepted, `rejected` of them refused by the
    /// backend in a partial success.
    pub(crate) fn sent(&self, records: u64, rejected: u64) {
        self.sent_records
            .fetch_add(records.saturating_sub(rejected), Ordering::Relaxed);
        self.partially_rejected_records
            .fetch_add(rejected.min(records), Ordering::Relaxed);
        self.sent_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was dropped for good; returns the total of rejected records so far.
    pub(crate) fn rejected(&self, records: u64) -> u64 {
        self.rejected_requests.fetch_add(1, Ordering::Relaxed);
        self.rejected_records.fetch_add(records, Ordering::Relaxed) + records
    }

    /// The last attempt to reach the backend failed and is being retried (the backend is
    /// down or refusing for now): what health checks report.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub(crate) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, records: u64) {
        self.failed_records.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn set_queued(&self, units: u64) {
        self.queued.store(units, Ordering::Relaxed);
    }

    pub(crate) fn set_queue_capacity(&self, units: u64) {
        self.queue_capacity.store(units, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_rejections_are_not_counted_as_sent() {
        let s = ExporterStats::default();
        s.sent(10, 3);
        s.sent(5, 0);
        assert_eq!(s.rejected(4), 4);
        assert_eq!(s.rejected(2), 6);
        s.failed(7);
        let snap = s.snapshot();
        assert_eq!(snap.sent_records, 12);
        assert_eq!(snap.partially_rejected_records, 3);
        assert_eq!(snap.sent_requests, 2);
        assert_eq!(snap.rejected_records, 6);
        assert_eq!(snap.rejected_requests, 2);
        assert_eq!(snap.failed_records, 7);
    }

    #[test]
    fn a_server_reporting_more_rejections_than_records_does_not_underflow() {
        let s = ExporterStats::default();
        s.sent(2, 9);
        let snap = s.snapshot();
        assert_eq!((snap.sent_records, snap.partially_rejected_records), (0, 2));
    }
}
