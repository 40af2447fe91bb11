//! The `batch` processor: groups entries into larger batches so exporters send fewer,
//! bigger requests. Same keys and defaults as the Collector's.

use centimane_core::Batch;
use centimane_core::config::{ComponentId, GoDuration};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Send once this many entries are waiting.
    pub send_batch_size: usize,
    /// Never send more than this many entries at once (0 = no limit). Must be 0 or at
    /// least `send_batch_size`.
    pub send_batch_max_size: usize,
    /// Send what is waiting this long after the first entry arrived (0 = only by size).
    pub timeout: GoDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: GoDuration::from_millis(200),
        }
    }
}

pub(crate) fn parse(config: serde_json::Value) -> Result<BatchConfig, String> {
    let c: BatchConfig =
        serde_json::from_value(crate::object_or_empty(config)).map_err(|e| e.to_string())?;
    if c.send_batch_max_size != 0 && c.send_batch_max_size < c.send_batch_size {
        return Err(format!(
            "`send_batch_max_size` ({}) must be 0 or at least `send_batch_size` ({})",
            c.send_batch_max_size, c.send_batch_size
        ));
    }
    if c.send_batch_size == 0 && c.timeout.0.is_zero() {
        return Err(
            "`send_batch_size` and `timeout` can't both be 0: nothing would ever be sent".into(),
        );
    }
    Ok(c)
}

pub(crate) async fn run(
    id: ComponentId,
    config: BatchConfig,
    mut input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
) {
    let mut pending = Batch::default();
    // When the oldest pending entry must go out; None while nothing waits.
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            Some(at) if !config.timeout.0.is_zero() => tokio::select! {
                b = input.recv() => b,
                _ = sleep_until(at) => {
                    if !send(&mut pending, &config, &output, true).await {
                        break;
                    }
                    deadline = None;
                    continue;
                }
            },
            _ => input.recv().await,
        };
        let Some(batch) = next else {
            // Input closed: the pipeline is draining. Send everything and stop.
            send(&mut pending, &config, &output, true).await;
            break;
        };
        if pending.is_empty() && pending.acks.is_empty() {
            deadline = Some(Instant::now() + config.timeout.0);
        }
        if !pending.is_empty() && config.send_batch_size > 0 {
            // Room for a whole batch once, rather than growing (and copying) step by step.
            let want = config.send_batch_size.max(pending.len() + batch.len());
            pending.entries.reserve(want - pending.len());
        }
        pending.append(batch);
        if config.send_batch_size > 0 && pending.len() >= config.send_batch_size {
            if !send(&mut pending, &config, &output, false).await {
                break;
            }
            if pending.is_empty() {
                deadline = None;
            }
        }
    }
    tracing::debug!(processor = %id, "stopped");
}

/// Sends full batches (all of `pending` when `everything`). Returns false when the next
/// stage is gone (only during a shutdown that abandons data; the unsent acks then fail).
async fn send(
    pending: &mut Batch,
    config: &BatchConfig,
    output: &mpsc::Sender<Batch>,
    everything: bool,
) -> bool {
    loop {
        let size = match config.send_batch_max_size {
            0 => pending.len(),
            max => pending.len().min(max),
        };
        let full = config.send_batch_size > 0 && pending.len() >= config.send_batch_size;
        if !(full || everything) {
            return true;
        }
        if pending.is_empty() {
            // Only acknowledgements of entries that were filtered out upstream.
            std::mem::take(&mut pending.acks).delivered();
            return true;
        }
        let out = if size < pending.len() {
            let rest = pending.split_off(size);
            std::mem::replace(pending, rest)
        } else {
            std::mem::take(pending)
        };
        if output.send(out).await.is_err() {
            return false;
        }
        if pending.is_empty() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::{AckListener, AckSet, AckStatus, AckToken, Entry};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, AckStatus)>>);
    impl AckListener for Recorder {
        fn on_ack(&self, id: u64, status: AckStatus) {
            self.0.lock().unwrap().push((id, status));
        }
    }

    fn batch(n: usize, token: Option<AckToken>) -> Batch {
        let entries = (0..n).map(|i| Entry::new((i as i64).into())).collect();
        Batch::new(entries, token.map(AckSet::from).unwrap_or_default())
    }

    fn start(c: BatchConfig) -> (mpsc::Sender<Batch>, mpsc::Receiver<Batch>) {
        let (in_tx, in_rx) = mpsc::channel(16);
        let (out_tx, out_rx) = mpsc::channel(16);
        tokio::spawn(run("batch".parse().unwrap(), c, in_rx, out_tx));
        (in_tx, out_rx)
    }

    #[tokio::test]
    async fn sends_by_size_and_splits_at_max() {
        let (tx, mut rx) = start(BatchConfig {
            send_batch_size: 4,
            send_batch_max_size: 4,
            timeout: GoDuration::from_secs(3600),
        });
        tx.send(batch(3, None)).await.unwrap();
        tx.send(batch(6, None)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 4);
        assert_eq!(rx.recv().await.unwrap().len(), 4);
        drop(tx);
        assert_eq!(rx.recv().await.unwrap().len(), 1, "rest flushed on close");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn sends_on_timeout() {
        let (tx, mut rx) = start(BatchConfig {
            send_batch_size: 100,
            send_batch_max_size: 0,
            timeout: GoDuration::from_millis(20),
        });
        tx.send(batch(2, None)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        assert_eq!(got.unwrap().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_split_batch_is_acked_when_every_piece_is() {
        let rec = Arc::new(Recorder::default());
        let (tx, mut rx) = start(BatchConfig {
            send_batch_size: 2,
            send_batch_max_size: 2,
            timeout: GoDuration::from_secs(3600),
        });
        tx.send(batch(4, Some(AckToken::new(1, rec.clone()))))
            .await
            .unwrap();
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        first.acks.delivered();
        assert!(rec.0.lock().unwrap().is_empty());
        second.acks.delivered();
        drop(tx);
        assert!(rx.recv().await.is_none());
        assert_eq!(*rec.0.lock().unwrap(), [(1, AckStatus::Delivered)]);
    }

    #[tokio::test]
    async fn entries_filtered_to_nothing_are_acked() {
        let rec = Arc::new(Recorder::default());
        let (tx, mut rx) = start(BatchConfig::default());
        tx.send(batch(0, Some(AckToken::new(9, rec.clone()))))
            .await
            .unwrap();
        drop(tx);
        assert!(rx.recv().await.is_none());
        assert_eq!(*rec.0.lock().unwrap(), [(9, AckStatus::Delivered)]);
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = parse(serde_json::json!({"send_batch_sise": 1})).unwrap_err();
        assert!(e.contains("`send_batch_sise`"), "{e}");
        let e = parse(serde_json::json!({"timeout": "soon"})).unwrap_err();
        assert!(e.contains("invalid duration"), "{e}");
        let e = parse(serde_json::json!({"send_batch_size": 10, "send_batch_max_size": 5}))
            .unwrap_err();
        assert!(e.contains("`send_batch_max_size`"), "{e}");
        assert!(parse(serde_json::Value::Null).is_ok());
    }
}
