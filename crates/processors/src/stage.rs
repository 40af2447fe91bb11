//! The loop shared by the stateless processors (`attributes`, `resource`, `filter`,
//! `probabilistic_sampler`): take a batch, change or drop its entries, pass it on.

use centimane_core::Batch;
use centimane_core::config::ComponentId;
use tokio::sync::mpsc;

/// Runs `process` on every batch until the input closes, then closes the output.
///
/// A batch that `process` leaves without entries is not sent on: its acknowledgement
/// tokens are settled as delivered here (the crate-level invariant), which spares the next
/// stages a channel slot for nothing.
pub(crate) async fn run(
    id: ComponentId,
    mut input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
    mut process: impl FnMut(&mut Batch) + Send,
) {
    while let Some(mut batch) = input.recv().await {
        process(&mut batch);
        if batch.is_empty() {
            batch.acks.delivered();
            continue;
        }
        if output.send(batch).await.is_err() {
            // The next stage is gone (a shutdown that abandons data): the unsent batch's
            // acks fail when it is dropped, so its offsets stay uncommitted.
            break;
        }
    }
    tracing::debug!(processor = %id, "stopped");
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers the processors' unit tests share.

    use centimane_core::{AckListener, AckSet, AckStatus, AckToken, Batch, Entry};
    use std::sync::{Arc, Mutex};

    /// Records every acknowledgement it hears.
    #[derive(Default)]
    pub struct Recorder(pub Mutex<Vec<(u64, AckStatus)>>);

    impl AckListener for Recorder {
        fn on_ack(&self, id: u64, status: AckStatus) {
            self.0.lock().unwrap().push((id, status));
        }
    }

    impl Recorder {
        pub fn heard(&self) -> Vec<(u64, AckStatus)> {
            self.0.lock().unwrap().clone()
        }
    }

    /// A batch of `entries` covered by one token with `id`, reported to `rec`.
    pub fn batch_with_token(entries: Vec<Entry>, id: u64, rec: &Arc<Recorder>) -> Batch {
        let listener: Arc<dyn AckListener> = rec.clone();
        Batch::new(entries, AckSet::from(AckToken::new(id, listener)))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use centimane_core::{AckStatus, Entry};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_batch_emptied_by_the_stage_is_acked_not_sent() {
        let rec = Arc::new(Recorder::default());
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let task = tokio::spawn(run(
            "filter".parse().unwrap(),
            in_rx,
            out_tx,
            |b: &mut Batch| b.entries.retain(|e| e.body.as_str() == Some("keep")),
        ));
        in_tx
            .send(batch_with_token(vec![Entry::new("drop".into())], 1, &rec))
            .await
            .unwrap();
        in_tx
            .send(batch_with_token(
                vec![Entry::new("keep".into()), Entry::new("drop".into())],
                2,
                &rec,
            ))
            .await
            .unwrap();
        drop(in_tx);
        let kept = out_rx.recv().await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(rec.heard(), [(1, AckStatus::Delivered)]);
        kept.acks.delivered();
        assert!(out_rx.recv().await.is_none(), "output closes after input");
        task.await.unwrap();
        assert_eq!(
            rec.heard(),
            [(1, AckStatus::Delivered), (2, AckStatus::Delivered)]
        );
    }
}
