//! Gateway delivery: a request is answered with success only once its entries were
//! acknowledged downstream.
//!
//! Each request gets its own [`AckToken`], whose listener completes a oneshot. The batch
//! goes to every pipeline the receiver feeds, waiting for room in each bounded channel (no
//! buffering of our own), and then the request waits for the acknowledgement. Any failure
//! — stopping, no room before the deadline, an acknowledgement that failed or didn't come
//! in time — is a [`Refused`], which the protocols turn into a retryable status
//! (gRPC `UNAVAILABLE`, HTTP 503): the client sends again, so data is never lost, only
//! possibly repeated (at-least-once).
//!
//! Invariant: the channel senders are held only while a batch is being handed over, so
//! once the receiver is stopped the pipelines can drain and close.

use crate::Outputs;
use centimane_core::{AckListener, AckSet, AckStatus, AckToken, Batch, Entry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

/// How long a request may wait when its client set no deadline (OTLP/HTTP has no deadline
/// header): long enough for a busy pipeline, short enough that a stuck one answers with a
/// retryable error instead of holding the connection forever.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Why a request was not accepted; every reason is worth a retry by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The receiver is stopping.
    Stopping,
    /// The pipeline had no room before the deadline.
    Busy,
    /// Downstream reported failure (e.g. the exporter gave up).
    Failed,
    /// The acknowledgement did not come before the deadline.
    NoAck,
}

impl Refused {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refused::Stopping => "the receiver is shutting down; retry",
            Refused::Busy => "the pipeline is full (backpressure); retry later",
            Refused::Failed => "the data could not be delivered downstream; retry",
            Refused::NoAck => "the data was not acknowledged downstream in time; retry",
        }
    }
}

/// Where requests hand their entries: the receiver's outputs until it stops.
pub(crate) struct Gateway {
    outputs: Mutex<Option<Outputs>>,
    next_id: AtomicU64,
}

impl Gateway {
    pub(crate) fn new(outputs: Outputs) -> Self {
        Gateway {
            outputs: Mutex::new(Some(outputs)),
            next_id: AtomicU64::new(1),
        }
    }

    /// Stops taking requests and lets go of the channels (see the module invariant).
    pub(crate) fn close(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outputs>> {
        // A panic elsewhere while holding this lock can't leave the Option inconsistent.
        self.outputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `entries` down every pipeline and waits for them to be acknowledged, until
    /// `deadline` at the latest.
    pub(crate) async fn deliver(
        &self,
        entries: Vec<Entry>,
        deadline: Instant,
    ) -> Result<(), Refused> {
        if entries.is_empty() {
            return Ok(());
        }
        let outputs = self.lock().clone().ok_or(Refused::Stopping)?;
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = AckToken::new(id, Arc::new(OneshotListener(Mutex::new(Some(tx)))));
        let batch = Batch::new(entries, AckSet::from(token));
        for (channel, copy) in outputs.fan_out(batch) {
            match timeout_at(deadline, channel.reserve()).await {
                Ok(Ok(permit)) => permit.send(copy),
                Ok(Err(_closed)) => return Err(Refused::Stopping),
                Err(_elapsed) => return Err(Refused::Busy),
            }
        }
        drop(outputs);
        match timeout_at(deadline, rx).await {
            Ok(Ok(AckStatus::Delivered)) => Ok(()),
            // A listener dropped without a word can't happen (tokens always report), but
            // it would mean "not delivered".
            Ok(Ok(AckStatus::Failed)) | Ok(Err(_)) => Err(Refused::Failed),
            Err(_elapsed) => Err(Refused::NoAck),
        }
    }
}

/// Hands the acknowledgement of one request to the task answering it.
struct OneshotListener(Mutex<Option<oneshot::Sender<AckStatus>>>);

impl AckListener for OneshotListener {
    fn on_ack(&self, _id: u64, status: AckStatus) {
        let sender = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = sender {
            // The request may be gone (client disconnected, deadline passed): nothing to tell.
            let _ = tx.send(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n).map(|i| Entry::new((i as i64).into())).collect()
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn success_only_after_every_pipeline_delivered() {
        let (a_tx, mut a_rx) = mpsc::channel(1);
        let (b_tx, mut b_rx) = mpsc::channel(1);
        let gw = Arc::new(Gateway::new(Outputs::new(vec![a_tx, b_tx])));
        let g = gw.clone();
        let request = tokio::spawn(async move { g.deliver(entries(3), soon(5000)).await });
        let a: Batch = a_rx.recv().await.unwrap();
        let b: Batch = b_rx.recv().await.unwrap();
        assert_eq!((a.len(), b.len()), (3, 3));
        a.acks.delivered();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!request.is_finished(), "pipeline b has not delivered yet");
        b.acks.delivered();
        assert_eq!(request.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_failed_ack_is_refused() {
        let (tx, mut rx) = mpsc::channel(1);
        let gw = Arc::new(Gateway::new(Outputs::new(vec![tx])));
        let g = gw.clone();
        let request = tokio::spawn(async move { g.deliver(entries(1), soon(5000)).await });
        drop(rx.recv().await.unwrap()); // dropped without delivering
        assert_eq!(request.await.unwrap(), Err(Refused::Failed));
    }

    #[tokio::test]
    async fn a_full_pipeline_is_waited_for_until_the_deadline() {
        let (tx, mut rx) = mpsc::channel(1);
        tx.send(Batch::default()).await.unwrap(); // the channel is full
        let gw = Gateway::new(Outputs::new(vec![tx]));
        assert_eq!(gw.deliver(entries(1), soon(100)).await, Err(Refused::Busy));
        // Room appears while waiting: the request goes through.
        let gw = Arc::new(gw);
        let g = gw.clone();
        let request = tokio::spawn(async move { g.deliver(entries(1), soon(5000)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        rx.recv().await.unwrap();
        rx.recv().await.unwrap().acks.delivered();
        assert_eq!(request.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn no_ack_in_time_and_closing() {
        let (tx, mut rx) = mpsc::channel(1);
        let gw = Gateway::new(Outputs::new(vec![tx]));
        assert_eq!(gw.deliver(entries(1), soon(100)).await, Err(Refused::NoAck));
        let held = rx.recv().await.unwrap();
        gw.close();
        assert_eq!(
            gw.deliver(entries(1), soon(100)).await,
            Err(Refused::Stopping)
        );
        assert!(rx.recv().await.is_none(), "closing let go of the channel");
        held.acks.delivered();
        assert_eq!(
            gw.deliver(Vec::new(), soon(1)).await,
            Ok(()),
            "nothing to send"
        );
    }
}
