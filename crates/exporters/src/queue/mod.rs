//! `sending_queue`: where a network exporter keeps encoded requests between taking them
//! from the pipeline and the backend accepting them.
//!
//! Two kinds, one contract:
//! - in memory ([`memory`]): a request's acknowledgements travel with it and are settled
//!   only when the backend accepted it (or rejected it for good). Lost on a crash, but
//!   then the receiver's offsets were not committed either, so the lines are read again.
//! - persistent ([`persistent`], `storage:` names a `file_storage` extension): a request
//!   is written to a redb database and its acknowledgements are settled as soon as the
//!   write is durable, so the receiver may commit its offsets; it is removed only once the
//!   backend accepted it. What a crash leaves in the database is sent first at the next
//!   start.
//!
//! Both are bounded by `queue_size`, counted with `sizer`, and count everything they hold,
//! waiting or being sent. When full, [`Queue::push`] waits: the exporter takes nothing
//! more from its input channel, which fills, and the pipeline pushes back on the readers.
//! Nothing is dropped to make room.

mod memory;
mod persistent;

use crate::config::Fields;
use crate::retry::Outcome;
use crate::stats::ExporterStats;
use bytes::Bytes;
use centimane_core::AckSet;
use centimane_core::config::ComponentId;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `sending_queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendingQueueConfig {
    /// `false`: no queue; one request is sent at a time and the next is taken only when it
    /// is done.
    pub enabled: bool,
    /// How many requests are sent at the same time.
    pub num_consumers: usize,
    /// The most the queue holds, in `sizer` units.
    pub queue_size: u64,
    pub sizer: Sizer,
    /// The `file_storage` extension to keep the queue in; in memory when `None`.
    pub storage: Option<ComponentId>,
}

impl Default for SendingQueueConfig {
    /// The Collector's defaults, except `queue_size`: the Collector's 1000 requests of the
    /// batch processor's default 8192 records would hold well over a gigabyte of encoded
    /// records in memory during an outage (DESIGN §5 wants memory bounded). 100 such
    /// requests are ~150 MB at most; with smaller batches, far less.
    fn default() -> Self {
        SendingQueueConfig {
            enabled: true,
            num_consumers: 10,
            queue_size: 100,
            sizer: Sizer::Requests,
            storage: None,
        }
    }
}

impl SendingQueueConfig {
    /// What `enabled: false` means here: one request at a time, one waiting.
    fn effective(&self) -> (usize, u64, Sizer) {
        if self.enabled {
            (self.num_consumers, self.queue_size, self.sizer)
        } else {
            (1, 1, Sizer::Requests)
        }
    }
}

/// What `queue_size` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizer {
    /// Requests (batches as the pipeline delivered them).
    Requests,
    /// Log records.
    Items,
    /// Bytes of encoded OTLP protobuf.
    Bytes,
}

impl Sizer {
    fn units(self, records: u64, payload: &[u8]) -> u64 {
        match self {
            Sizer::Requests => 1,
            Sizer::Items => records,
            Sizer::Bytes => payload.len() as u64,
        }
    }
}

const KEYS: &[&str] = &["enabled", "num_consumers", "queue_size", "sizer", "storage"];

/// Parses a `sending_queue` block; missing keys keep their defaults.
pub(crate) fn parse(block: Option<serde_json::Value>) -> Result<SendingQueueConfig, String> {
    let d = SendingQueueConfig::default();
    let Some(block) = block else {
        return Ok(d);
    };
    let mut f = Fields::new("sending_queue.", block, KEYS)?;
    let sizer = match f.take::<String>("sizer")?.as_deref() {
        None | Some("requests") => Sizer::Requests,
        Some("items") => Sizer::Items,
        Some("bytes") => Sizer::Bytes,
        Some(other) => {
            return Err(format!(
                "`sending_queue.sizer` must be `requests`, `items` or `bytes`, not {other:?}"
            ));
        }
    };
    let storage = match f.take::<String>("storage")? {
        None => None,
        Some(text) => Some(
            text.parse::<ComponentId>()
                .map_err(|e| format!("`sending_queue.storage`: {e}"))?,
        ),
    };
    let config = SendingQueueConfig {
        enabled: f.take("enabled")?.unwrap_or(d.enabled),
        num_consumers: f.take("num_consumers")?.unwrap_or(d.num_consumers),
        queue_size: f.take("queue_size")?.unwrap_or(d.queue_size),
        sizer,
        storage,
    };
    if config.num_consumers == 0 {
        return Err("`sending_queue.num_consumers` must be at least 1".into());
    }
    if config.queue_size == 0 {
        return Err("`sending_queue.queue_size` must be at least 1".into());
    }
    Ok(config)
}

/// One encoded request on its way into the queue.
pub(crate) struct Item {
    /// An OTLP `ExportLogsServiceRequest` in protobuf, whatever the exporter sends: one
    /// stable format for what a persistent queue keeps across versions and settings.
    pub(crate) payload: Bytes,
    pub(crate) records: u64,
    pub(crate) acks: AckSet,
}

/// A request handed to a consumer; it goes back to the queue through [`Queue::finish`].
pub(crate) struct Lease {
    pub(crate) payload: Bytes,
    pub(crate) records: u64,
    slot: Slot,
}

/// Where a leased request lives, and how much of the queue's capacity it holds.
enum Slot {
    Memory { acks: AckSet, units: u64 },
    Persistent { key: u64, units: u64 },
}

pub(crate) enum Queue {
    Memory(memory::MemoryQueue),
    Persistent(persistent::PersistentQueue),
}

impl Queue {
    /// Opens the queue `config` asks for. A persistent queue needs `storage_dir` (the
    /// directory of the extension `config.storage` names) and reads what an earlier run left.
    pub(crate) fn open(
        id: &ComponentId,
        config: &SendingQueueConfig,
        storage_dir: Option<&Path>,
        stats: Arc<ExporterStats>,
    ) -> Result<(Queue, usize), String> {
        let (consumers, size, sizer) = config.effective();
        let capacity = Capacity::new(size, stats);
        let queue = match (&config.storage, storage_dir) {
            (Some(_), Some(dir)) if config.enabled => {
                Queue::Persistent(persistent::PersistentQueue::open(id, dir, sizer, capacity)?)
            }
            (Some(storage), None) if config.enabled => {
                return Err(format!(
                    "`sending_queue.storage` names `{storage}`, which is not a `file_storage` extension listed in `service.extensions`"
                ));
            }
            _ => Queue::Memory(memory::MemoryQueue::new(sizer, capacity)),
        };
        Ok((queue, consumers))
    }

    pub(crate) fn is_persistent(&self) -> bool {
        matches!(self, Queue::Persistent(_))
    }

    /// Adds a request, waiting for room. Returns `false` if `abandon` was cancelled first
    /// (the request is dropped, its acks unsettled). A persistent queue settles the
    /// request's acks as delivered once it is stored durably.
    pub(crate) async fn push(&self, item: Item, abandon: &CancellationToken) -> bool {
        match self {
            Queue::Memory(q) => q.push(item, abandon).await,
            Queue::Persistent(q) => q.push(item, abandon).await,
        }
    }

    /// The oldest request not yet handed out; `None` when the consumers should stop: the
    /// queue is closed (and, in memory, empty) or `abandon` was cancelled.
    pub(crate) async fn pop(&self, abandon: &CancellationToken) -> Option<Lease> {
        match self {
            Queue::Memory(q) => q.pop(abandon).await,
            Queue::Persistent(q) => q.pop(abandon).await,
        }
    }

    /// Settles a leased request after delivering it ended with `outcome`.
    ///
    /// Accepted or rejected for good: done (acks delivered, or removed from storage).
    /// Otherwise in memory the acks fail (the lines are read again after a restart); a
    /// persistent queue keeps the request, to retry after the others if retrying gave up,
    /// or at the next start if the exporter is stopping.
    pub(crate) async fn finish(&self, lease: Lease, outcome: &Outcome) {
        match (self, lease.slot) {
            (Queue::Memory(q), Slot::Memory { acks, units }) => q.finish(acks, units, outcome),
            (Queue::Persistent(q), Slot::Persistent { key, units }) => {
                q.finish(key, units, outcome).await;
            }
            // A lease only ever comes from its own queue.
            _ => {}
        }
    }

    /// No more pushes. An in-memory queue hands out what it holds, then `None`; a persistent
    /// queue hands out nothing more (what it holds is safe on disk).
    pub(crate) fn close(&self) {
        match self {
            Queue::Memory(q) => q.close(),
            Queue::Persistent(q) => q.close(),
        }
    }

    /// What happens to records not delivered now, for the log.
    pub(crate) fn later(&self) -> &'static str {
        match self {
            Queue::Memory(_) => "their lines will be read again after a restart",
            Queue::Persistent(_) => "they stay in the persistent queue and are sent again later",
        }
    }
}

/// The queue's bound: units reserved by requests it holds, against `queue_size`.
///
/// Invariant: `used <= limit`, except that a request larger than the whole limit is let
/// in alone when the queue is empty (refusing it would stall the pipeline for good), and a
/// persistent queue may start over its limit with what an earlier run left.
pub(crate) struct Capacity {
    limit: u64,
    used: Mutex<u64>,
    freed: Notify,
    stats: Arc<ExporterStats>,
}

impl Capacity {
    fn new(limit: u64, stats: Arc<ExporterStats>) -> Self {
        stats.set_queue_capacity(limit);
        Capacity {
            limit,
            used: Mutex::new(0),
            freed: Notify::new(),
            stats,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `units` without waiting (what a persistent queue found at startup).
    fn add(&self, units: u64) {
        let mut used = self.lock();
        *used = used.saturating_add(units);
        self.stats.set_queued(*used);
    }

    /// Waits until `units` fit, then takes them; `false` if `abandon` was cancelled first.
    async fn reserve(&self, units: u64, abandon: &CancellationToken) -> bool {
        loop {
            // Registered before checking, so a release between the check and the wait is
            // not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut used = self.lock();
                if *used == 0 || used.saturating_add(units) <= self.limit {
                    *used = used.saturating_add(units);
                    self.stats.set_queued(*used);
                    return true;
                }
            }
            tokio::select! {
                biased;
                () = abandon.cancelled() => return false,
                () = freed => {}
            }
        }
    }

    fn release(&self, units: u64) {
        {
            let mut used = self.lock();
            *used = used.saturating_sub(units);
            self.stats.set_queued(*used);
        }
        self.freed.notify_waiters();
    }
}

/// Waits on `ready` for `take` to yield something: the consumers' side of both queues.
/// `take` returns `Some(Some(x))` for a value, `Some(None)` when consumers should stop, and
/// `None` to wait for the next notification. `None` also when `abandon` is cancelled.
async fn wait_for<T>(
    ready: &Notify,
    abandon: &CancellationToken,
    mut take: impl FnMut() -> Option<Option<T>>,
) -> Option<T> {
    loop {
        let notified = ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if abandon.is_cancelled() {
            return None;
        }
        if let Some(result) = take() {
            return result;
        }
        tokio::select! {
            biased;
            () = abandon.cancelled() => return None,
            () = notified => {}
        }
    }
}

#[cfg(test)]
mod tests;
