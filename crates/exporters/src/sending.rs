//! The shared body of the network exporters: encode each batch once, put it in the
//! sending queue, and let `num_consumers` consumers deliver from the queue through a
//! [`Transport`], with retries.
//!
//! ```text
//! input channel ──► producer (encode, push: waits while the queue is full)
//!                        │
//!                        ▼
//!                   sending queue ──► consumer × num_consumers ──► Transport::send
//!                        ▲                  │ retry::deliver
//!                        └──── finish ◄─────┘
//! ```
//!
//! Shutdown: when the input is closed and empty, the queue is closed. An in-memory queue
//! is drained (until `abandon`); a persistent queue lets the attempts under way finish and
//! keeps the rest on disk for the next start.

use crate::queue::{Item, Queue, SendingQueueConfig};
use crate::retry::{self, Attempt, Outcome, RetryConfig};
use crate::stats::ExporterStats;
use bytes::Bytes;
use centimane_core::SharedBatch;
use centimane_core::config::ComponentId;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// One way of sending an encoded request to a backend.
pub(crate) trait Transport: Send + Sync + 'static {
    /// One attempt at sending `payload` (an OTLP `ExportLogsServiceRequest` in protobuf)
    /// of `records` records. Never panics on what the backend answers.
    fn send(&self, payload: Bytes, records: u64) -> impl Future<Output = Attempt> + Send;
}

/// What a network exporter runs with.
pub(crate) struct Sending<T> {
    id: ComponentId,
    transport: T,
    retry: RetryConfig,
    queue: Queue,
    consumers: usize,
    stats: Arc<ExporterStats>,
}

impl<T: Transport> Sending<T> {
    /// Opens the sending queue `queue` describes (in `storage_dir` if persistent).
    pub(crate) fn new(
        id: ComponentId,
        transport: T,
        retry: RetryConfig,
        queue: &SendingQueueConfig,
        storage_dir: Option<&Path>,
        stats: &Arc<ExporterStats>,
    ) -> Result<Self, String> {
        let (queue, consumers) = Queue::open(&id, queue, storage_dir, stats.clone())?;
        Ok(Sending {
            id,
            transport,
            retry,
            queue,
            consumers,
            stats: stats.clone(),
        })
    }

    /// Runs the exporter until its input is closed and the queue is done, or `abandon`.
    pub(crate) async fn run(
        self,
        mut input: mpsc::Receiver<SharedBatch>,
        abandon: CancellationToken,
    ) {
        let shared = Arc::new(Shared {
            id: self.id,
            transport: self.transport,
            retry: self.retry,
            queue: self.queue,
            stats: self.stats,
            stop: CancellationToken::new(),
            abandon,
        });
        let mut consumers = JoinSet::new();
        for _ in 0..self.consumers {
            consumers.spawn(shared.clone().consume());
        }
        while let Some(batch) = crate::next_batch(&mut input, &shared.abandon).await {
            if batch.is_empty() {
                // Everything was filtered out upstream: nothing to send, the tokens settle.
                batch.acks.delivered();
                continue;
            }
            let item = encode(batch);
            if !shared.queue.push(item, &shared.abandon).await {
                break; // abandoned: the batch's acks were dropped unsettled
            }
        }
        shared.queue.close();
        if shared.queue.is_persistent() {
            // Stored requests are safe: stop waiting to retry them.
            shared.stop.cancel();
        }
        while consumers.join_next().await.is_some() {}
    }
}

/// A batch as a queue item: the OTLP request encoded once, whatever is retried later,
/// straight from the entries, or around the records a batch processor encoded (see
/// [`crate::encode`]).
fn encode(batch: SharedBatch) -> Item {
    let records = batch.len() as u64;
    let payload = match batch.encoded {
        Some(logs) => {
            debug_assert!(
                batch.entries.is_empty(),
                "entries and encoded records mixed"
            );
            crate::encode::request_of_records(logs)
        }
        None => crate::encode::encode_request(&batch.entries),
    };
    Item {
        payload,
        records,
        acks: batch.acks,
    }
}

struct Shared<T> {
    id: ComponentId,
    transport: T,
    retry: RetryConfig,
    queue: Queue,
    stats: Arc<ExporterStats>,
    /// Cancelled when a persistent queue closes: ends waits between attempts.
    stop: CancellationToken,
    abandon: CancellationToken,
}

impl<T: Transport> Shared<T> {
    async fn consume(self: Arc<Self>) {
        while let Some(lease) = self.queue.pop(&self.abandon).await {
            let (payload, records) = (lease.payload.clone(), lease.records);
            let outcome = retry::deliver(
                &self.id,
                records,
                &self.retry,
                &self.abandon,
                Some(&self.stop),
                || {
                    let attempt = self.transport.send(payload.clone(), records);
                    let stats = &self.stats;
                    async move {
                        let result = attempt.await;
                        // Health: failing while attempts fail for a reason worth retrying.
                        stats.set_failing(matches!(result, retry::Attempt::Retry { .. }));
                        result
                    }
                },
            )
            .await;
            retry::report(&self.id, &self.stats, records, &outcome, self.queue.later());
            self.queue.finish(lease, &outcome).await;
            if matches!(outcome, Outcome::Abandoned) {
                return;
            }
        }
    }
}
