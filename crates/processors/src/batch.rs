//! The `batch` processor: groups entries into larger batches so exporters send fewer,
//! bigger requests. Same keys and defaults as the Collector's.
//!
//! Given a [`RecordEncoder`] (the pipeline's exporters all send OTLP, nothing reads the
//! entries after this processor, and it never cuts a batch: `send_batch_max_size` 0), it
//! encodes each entry as it arrives and lets go of it, and sends the encoded records, in
//! one group per resource and scope. An entry that would make more than [`MAX_GROUPS`]
//! groups first sends those waiting.

use centimane_core::config::{ComponentId, GoDuration};
use centimane_core::{Batch, RecordEncoder, RecordGroup};
use serde::Deserialize;
use std::sync::Arc;
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

pub use centimane_core::batch::MAX_GROUPS;

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
    encoder: Option<Arc<dyn RecordEncoder>>,
    mut input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
) {
    debug_assert!(encoder.is_none() || config.send_batch_max_size == 0);
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
        if let Some(encoder) = &encoder
            && batch.encoded.is_none()
        {
            if !encode_into(&mut pending, batch, encoder.as_ref(), &config, &output).await {
                break;
            }
        } else if batch.encoded.is_some() {
            // Records the receiver encoded join those waiting (entries waiting go first).
            if !pending.entries.is_empty() && !send(&mut pending, &config, &output, true).await {
                break;
            }
            if !merge_encoded(&mut pending, batch, &config, &output).await {
                break;
            }
        } else {
            if pending.encoded.is_some() && !send(&mut pending, &config, &output, true).await {
                break;
            }
            if !pending.is_empty() && config.send_batch_size > 0 {
                // Room for a whole batch once, rather than growing (and copying) step by step.
                let want = config.send_batch_size.max(pending.len() + batch.len());
                pending.entries.reserve(want - pending.len());
            }
            pending.append(batch);
        }
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

/// Encodes `batch`'s entries into `pending`'s records and lets go of them (to be freed on
/// the thread that made them). An entry that needs a group beyond [`MAX_GROUPS`] first
/// sends what waits; both sent batches then hold `batch`'s tokens. Returns false when the
/// next stage is gone.
async fn encode_into(
    pending: &mut Batch,
    mut batch: Batch,
    encoder: &dyn RecordEncoder,
    config: &BatchConfig,
    output: &mpsc::Sender<Batch>,
) -> bool {
    debug_assert!(
        pending.entries.is_empty(),
        "an encoding batch holds no entries"
    );
    // The group of the previous entry: where the next one usually goes.
    let mut last = 0;
    for entry in &batch.entries {
        let logs = pending.encoded.get_or_insert_with(Default::default);
        last = match logs.group_of(entry, last) {
            Some(at) => at,
            None => {
                if logs.groups.len() >= MAX_GROUPS {
                    pending.acks.append(&mut batch.acks.clone());
                    if !send(pending, config, output, true).await {
                        return false;
                    }
                }
                let logs = pending.encoded.get_or_insert_with(Default::default);
                logs.groups
                    .push(encoder.start(&entry.resource, &entry.scope_name));
                logs.groups.len() - 1
            }
        };
        let logs = pending.encoded.as_mut().expect("made above");
        encoder.push(&mut logs.groups[last], entry);
        logs.count += 1;
    }
    reserve_for_batch(pending, config);
    centimane_core::recycle::dispose(std::mem::take(&mut batch.entries));
    pending.acks.append(&mut batch.acks);
    true
}

/// Adds records encoded upstream to those waiting: each group's records join the waiting
/// group of their resource and scope, or become a group; one that would make more than
/// [`MAX_GROUPS`] groups first sends what waits (both sent batches then hold `batch`'s
/// tokens). Records that would make the waiting batch larger than `send_batch_size` go
/// after it instead, uncopied: a receiver hands over full batches. Returns false when the
/// next stage is gone.
async fn merge_encoded(
    pending: &mut Batch,
    mut batch: Batch,
    config: &BatchConfig,
    output: &mpsc::Sender<Batch>,
) -> bool {
    debug_assert!(pending.entries.is_empty() && batch.entries.is_empty());
    if !pending.is_empty()
        && config.send_batch_size > 0
        && pending.len() + batch.len() > config.send_batch_size
        && !send(pending, config, output, true).await
    {
        return false;
    }
    let incoming = batch.encoded.take().expect("encoded records");
    for group in incoming.groups {
        let logs = pending.encoded.get_or_insert_with(Default::default);
        let same =
            |g: &RecordGroup| g.resource == group.resource && g.scope_name == group.scope_name;
        if let Some(waiting) = logs.groups.iter_mut().find(|g| same(g)) {
            waiting.bytes.extend_from_slice(group.records());
            waiting.count += group.count;
            logs.count += group.count;
            continue;
        }
        if logs.groups.len() >= MAX_GROUPS {
            pending.acks.append(&mut batch.acks.clone());
            if !send(pending, config, output, true).await {
                return false;
            }
        }
        let logs = pending.encoded.get_or_insert_with(Default::default);
        logs.count += group.count;
        logs.groups.push(group);
    }
    // Not `reserve_for_batch`: a receiver's records come in a vector it sized for a batch,
    // and reserving for the few records short of `send_batch_size` moved (copied) every
    // gathered batch to a new vector.
    pending.acks.append(&mut batch.acks);
    true
}

/// With one group waiting, reserves room for the rest of a full batch at once (a growing
/// vector would be copied as it doubles).
fn reserve_for_batch(pending: &mut Batch, config: &BatchConfig) {
    if let Some(logs) = pending.encoded.as_mut()
        && let [group] = logs.groups.as_mut_slice()
    {
        group.reserve_records(config.send_batch_size.saturating_sub(group.count));
    }
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
        // Encoded records are never cut (their processor has no maximum; one passed on
        // from upstream goes whole).
        let size = match config.send_batch_max_size {
            0 => pending.len(),
            _ if pending.encoded.is_some() => pending.len(),
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
    use centimane_core::testing::{AckRecorder as Recorder, LineEncoder};
    use centimane_core::{AckSet, AckStatus, AckToken, Entry, Value};
    use std::sync::Arc;
    use std::time::Duration;

    fn batch(n: usize, token: Option<AckToken>) -> Batch {
        let entries = (0..n).map(|i| Entry::new((i as i64).into())).collect();
        Batch::new(entries, token.map(AckSet::from).unwrap_or_default())
    }

    fn start(c: BatchConfig) -> (mpsc::Sender<Batch>, mpsc::Receiver<Batch>) {
        start_with(c, None)
    }

    fn start_with(
        c: BatchConfig,
        encoder: Option<Arc<dyn RecordEncoder>>,
    ) -> (mpsc::Sender<Batch>, mpsc::Receiver<Batch>) {
        let (in_tx, in_rx) = mpsc::channel(16);
        let (out_tx, out_rx) = mpsc::channel(16);
        tokio::spawn(run("batch".parse().unwrap(), c, encoder, in_rx, out_tx));
        (in_tx, out_rx)
    }

    /// Each group's host and records.
    fn groups(b: &Batch) -> Vec<(String, String)> {
        let logs = b.encoded.as_ref().expect("encoded records");
        assert_eq!(
            logs.count,
            logs.groups.iter().map(|g| g.count).sum::<usize>()
        );
        logs.groups
            .iter()
            .map(|g| {
                let host = g.resource.get("host").map(|v| v.to_text().to_string());
                let records = String::from_utf8(g.records().to_vec()).unwrap();
                (host.unwrap_or_default(), records)
            })
            .collect()
    }

    /// `b` as its receiver hands it over when it encodes (`Outputs::encoding`), if
    /// `upstream`.
    fn encoded_if(upstream: bool, mut b: Batch) -> Batch {
        if upstream {
            let mut logs = centimane_core::EncodedLogs::default();
            logs.push_entries(&LineEncoder, &b.entries, usize::MAX);
            b.entries.clear();
            b.encoded = Some(Box::new(logs));
        }
        b
    }

    fn on_host(mut b: Batch, host: &str) -> Batch {
        for e in &mut b.entries {
            e.resource.insert("host".into(), Value::from(host));
        }
        b
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

    /// Entries are encoded as they arrive; records the receiver encoded join them.
    #[tokio::test]
    async fn an_encoding_batch_holds_records_not_entries() {
        for upstream in [false, true] {
            let rec = Arc::new(Recorder::default());
            let (tx, mut rx) = start_with(
                BatchConfig {
                    send_batch_size: 5,
                    ..BatchConfig::default()
                },
                Some(Arc::new(LineEncoder)),
            );
            let first = batch(3, Some(AckToken::new(1, rec.clone())));
            tx.send(encoded_if(upstream, first)).await.unwrap();
            tx.send(batch(2, Some(AckToken::new(2, rec.clone()))))
                .await
                .unwrap();
            let out = rx.recv().await.unwrap();
            assert!(out.entries.is_empty());
            assert_eq!(out.len(), 5);
            assert_eq!(
                groups(&out),
                [(String::new(), "0\n1\n2\n0\n1\n".to_string())]
            );
            out.acks.delivered();
            drop(tx);
            assert!(rx.recv().await.is_none());
            let mut acked = rec.0.lock().unwrap().clone();
            acked.sort_by_key(|(id, _)| *id);
            assert_eq!(
                acked,
                [(1, AckStatus::Delivered), (2, AckStatus::Delivered)]
            );
        }
    }

    #[tokio::test]
    async fn records_are_grouped_by_resource_in_first_seen_order() {
        for upstream in [false, true] {
            let (tx, mut rx) = start_with(
                BatchConfig {
                    send_batch_size: 100,
                    timeout: GoDuration::from_secs(3600),
                    ..BatchConfig::default()
                },
                Some(Arc::new(LineEncoder)),
            );
            tx.send(encoded_if(upstream, on_host(batch(2, None), "b")))
                .await
                .unwrap();
            let mut mixed = on_host(batch(3, None), "a");
            mixed.entries[1]
                .resource
                .insert("host".into(), Value::from("b"));
            tx.send(encoded_if(upstream, mixed)).await.unwrap();
            drop(tx);
            let out = rx.recv().await.unwrap();
            assert_eq!(
                groups(&out),
                [
                    ("b".to_string(), "0\n1\n1\n".to_string()),
                    ("a".to_string(), "0\n2\n".to_string())
                ],
                "encoded by the receiver: {upstream}"
            );
            assert!(rx.recv().await.is_none());
        }
    }

    #[tokio::test]
    async fn too_many_groups_send_those_waiting_first() {
        for upstream in [false, true] {
            let rec = Arc::new(Recorder::default());
            let (tx, mut rx) = start_with(
                BatchConfig {
                    send_batch_size: 1000,
                    timeout: GoDuration::from_secs(3600),
                    ..BatchConfig::default()
                },
                Some(Arc::new(LineEncoder)),
            );
            let mut hosts = batch(MAX_GROUPS + 1, Some(AckToken::new(7, rec.clone())));
            for (i, e) in hosts.entries.iter_mut().enumerate() {
                e.resource
                    .insert("host".into(), Value::from(format!("h{i}")));
            }
            tx.send(encoded_if(upstream, hosts)).await.unwrap();
            let first = rx.recv().await.unwrap();
            assert_eq!(first.encoded.as_ref().unwrap().groups.len(), MAX_GROUPS);
            assert_eq!(first.len(), MAX_GROUPS);
            drop(tx);
            let second = rx.recv().await.unwrap();
            assert_eq!(
                groups(&second),
                [(format!("h{MAX_GROUPS}"), format!("{MAX_GROUPS}\n"))]
            );
            first.acks.delivered();
            assert!(
                rec.0.lock().unwrap().is_empty(),
                "the token also covers the record still to be delivered"
            );
            second.acks.delivered();
            assert!(rx.recv().await.is_none());
            assert_eq!(*rec.0.lock().unwrap(), [(7, AckStatus::Delivered)]);
        }
    }

    /// A receiver's batch that would make the waiting one larger than `send_batch_size`
    /// goes after it, whole.
    #[tokio::test]
    async fn encoded_records_beyond_the_batch_size_follow_those_waiting() {
        let (tx, mut rx) = start_with(
            BatchConfig {
                send_batch_size: 5,
                timeout: GoDuration::from_secs(3600),
                ..BatchConfig::default()
            },
            Some(Arc::new(LineEncoder)),
        );
        tx.send(encoded_if(true, batch(3, None))).await.unwrap();
        tx.send(encoded_if(true, batch(4, None))).await.unwrap();
        tx.send(encoded_if(true, batch(1, None))).await.unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!(groups(&first), [(String::new(), "0\n1\n2\n".to_string())]);
        let second = rx.recv().await.unwrap();
        assert_eq!(
            groups(&second),
            [(String::new(), "0\n1\n2\n3\n0\n".to_string())],
            "merged up to the batch size"
        );
        drop(tx);
        assert!(rx.recv().await.is_none());
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
