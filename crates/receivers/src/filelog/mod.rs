//! The `filelog` receiver: finds files by glob, identifies them by fingerprint (their first
//! bytes, so renames and rotations keep their identity), reads new lines, runs the operator
//! chain and sends batches downstream. Offsets are committed to the checkpoint only once
//! the batches holding their lines were acknowledged (DESIGN §5).
//!
//! Everything runs on one plain thread per receiver: file I/O is blocking and must not
//! stall the async runtime, and one thread keeps the file bookkeeping free of locks.

mod checkpoint;
mod config;
pub(crate) mod discover;
mod fileinfo;
mod order;
mod reader;
mod split;
mod tracker;

pub use config::{
    Compression, FilelogConfig, HeaderConfig, MaxLogSizeBehavior, MultilineConfig, OnTruncate,
    OrderingCriteria, SortRule, SortType, StartAt,
};

use crate::Outputs;
use centimane_core::batch::MAX_GROUPS;
use centimane_core::config::ComponentId;
use centimane_core::{AckListener, AckStatus, Batch, OperatorChain};
use crossbeam_channel::{Receiver, Sender, select};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracker::Tracker;

/// The `operators:` list preceded by `add` operators for the receiver-level `attributes`
/// and `resource` maps.
pub fn operators_with_static_fields(c: &FilelogConfig) -> serde_json::Value {
    use serde_json::{Value as J, json};
    let user = match &c.operators {
        J::Array(user) => user.as_slice(),
        J::Null => &[],
        // Not a list: the chain builder reports it.
        other => return other.clone(),
    };
    let mut ops = Vec::new();
    for (root, map) in [("attributes", &c.attributes), ("resource", &c.resource)] {
        for (i, (key, value)) in map.iter().enumerate() {
            let field = if key.contains('"') {
                format!("{root}['{key}']")
            } else {
                format!("{root}[\"{key}\"]")
            };
            ops.push(json!({"type": "add", "id": format!("filelog_{root}_{i}"), "field": field, "value": value}));
        }
    }
    ops.extend(user.iter().cloned());
    J::Array(ops)
}

/// Everything a filelog receiver needs to run.
pub struct FilelogSetup {
    pub id: ComponentId,
    pub config: FilelogConfig,
    pub chain: Box<dyn OperatorChain>,
    /// The chain of `header.metadata_operators`, when `header` is set.
    pub header_chain: Option<Box<dyn OperatorChain>>,
    /// The storage extension's directory, when `storage` names one.
    pub checkpoint_dir: Option<PathBuf>,
    pub outputs: Outputs,
    /// The runtime the pipeline's channels live on (for waiting on a full channel).
    pub runtime: tokio::runtime::Handle,
    /// How long to wait at shutdown for in-flight batches to be acknowledged.
    pub drain_timeout: Duration,
}

/// What a filelog receiver reports about its files, updated after every poll.
#[derive(Debug, Default)]
pub struct FilelogStats {
    /// Files held open.
    pub files_open: AtomicU64,
    /// Bytes written to the open files that are not read yet (how far behind it is).
    pub bytes_behind: AtomicU64,
    /// When the checkpoint was last saved, Unix nanoseconds (0: never).
    pub checkpoint_saved_unix_nanos: AtomicU64,
}

/// A running filelog receiver.
pub struct FilelogHandle {
    stats: Arc<FilelogStats>,
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl FilelogHandle {
    /// Asks the receiver to stop reading. It then waits for its in-flight batches to be
    /// acknowledged (bounded by `drain_timeout`), saves its checkpoint and ends.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
    }

    pub fn stats(&self) -> Arc<FilelogStats> {
        self.stats.clone()
    }

    /// Waits for the receiver's thread to end.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("a filelog receiver thread panicked");
        }
    }
}

/// Sends acknowledgements into the receiver thread's channel.
struct AckSender(Sender<(u64, AckStatus)>);

impl AckListener for AckSender {
    fn on_ack(&self, id: u64, status: AckStatus) {
        // The receiver may already be gone after an abandoned shutdown; then the checkpoint
        // was saved without this batch, which is the safe outcome.
        let _ = self.0.send((id, status));
    }
}

/// Validates the setup (loads the checkpoint) and starts the receiver thread.
pub fn start(mut setup: FilelogSetup) -> Result<FilelogHandle, String> {
    let (ack_tx, ack_rx) = crossbeam_channel::unbounded();
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(FilelogStats::default());
    let tracker = Tracker::new(
        &mut setup,
        Arc::new(AckSender(ack_tx)),
        stop.clone(),
        stats.clone(),
    )?;
    let id = setup.id.to_string();
    let watcher = watch(&tracker, wake_tx.clone(), &id);
    let thread = std::thread::Builder::new()
        .name(format!("filelog {id}"))
        .spawn(move || {
            // Owned by the thread so events stop when it ends.
            let _watcher = watcher;
            run(setup, tracker, ack_rx, wake_rx)
        })
        .map_err(|e| format!("can't start the thread of receiver {id}: {e}"))?;
    Ok(FilelogHandle {
        stats,
        stop,
        wake: wake_tx,
        thread: Some(thread),
    })
}

/// File events only wake the poll loop early; polling stays the source of truth (events
/// overflow, watch limits run out, network filesystems send none). A watcher that can't be
/// set up is logged and polling carries on alone.
fn watch(tracker: &Tracker, wake: Sender<()>, id: &str) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = wake.try_send(());
        }
    })
    .map_err(|e| tracing::debug!(receiver = %id, error = %e, "no file events; polling only"))
    .ok()?;
    for (root, recursive) in tracker.watch_roots() {
        let mode = if recursive {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        if let Err(e) = watcher.watch(&root, mode) {
            tracing::debug!(receiver = %id, path = %root.display(), error = %e, "can't watch directory; polling only");
        }
    }
    Some(watcher)
}

/// After a file event, poll this soon (events come in bursts: one poll covers a burst).
const EVENT_DELAY: Duration = Duration::from_millis(10);

fn run(
    setup: FilelogSetup,
    mut tracker: Tracker,
    acks: Receiver<(u64, AckStatus)>,
    wake: Receiver<()>,
) {
    // This thread allocated the entries: it frees them too once exporters are done with
    // them (see `centimane_core::recycle`), whenever it wakes up or builds a batch.
    let _collector = centimane_core::recycle::Collector::register();
    let poll_interval = setup.config.poll_interval.0;
    let FilelogSetup {
        mut chain,
        outputs,
        runtime,
        drain_timeout,
        ..
    } = setup;
    let sender = BatchSender::new(outputs, runtime, tracker.stop_flag());
    // The first poll happens one interval after start, as in the Collector.
    let mut next_poll = std::time::Instant::now() + poll_interval;
    let mut last_poll = std::time::Instant::now();
    while !tracker.stopping() {
        centimane_core::recycle::collect();
        select! {
            recv(acks) -> msg => {
                if let Ok((id, status)) = msg {
                    tracker.on_ack(id, status);
                }
            }
            recv(wake) -> _ => {
                // Bursts of events on a busy file must not turn into a poll per write.
                let soon = (last_poll + poll_interval / 4).max(std::time::Instant::now() + EVENT_DELAY);
                // Not before the first regular poll: `start_at: end` applies to what exists
                // one interval after start.
                if tracker.polled() && soon < next_poll {
                    next_poll = soon;
                }
            }
            default(next_poll.saturating_duration_since(std::time::Instant::now())) => {
                while let Ok((id, status)) = acks.try_recv() {
                    tracker.on_ack(id, status);
                }
                last_poll = std::time::Instant::now();
                tracker.poll(chain.as_mut(), &sender);
                // Entries operators hold (recombine, CRI partials) whose hold period ran
                // out go now, not only when more input arrives.
                let mut expired = Vec::new();
                chain.flush_expired(&mut expired);
                if !expired.is_empty() {
                    sender.send(Batch::new(expired, Default::default()));
                }
                sender.flush();
                tracker.save_checkpoint();
                next_poll = last_poll + poll_interval;
            }
        }
    }
    // Held entries carry no offsets: their lines' offsets were committed with the batches
    // that brought them in. (A crash while entries are held therefore loses them; the ack
    // tokens should travel with held entries — a known gap.)
    let mut held = Vec::new();
    chain.flush(&mut held);
    if !held.is_empty() {
        sender.send(Batch::new(held, Default::default()));
    }
    sender.flush();
    // Closing our side of the pipeline lets it drain; wait for what is in flight.
    drop(sender);
    let deadline = std::time::Instant::now() + drain_timeout;
    while tracker.in_flight() > 0 {
        centimane_core::recycle::collect();
        match acks.recv_deadline(deadline) {
            Ok((id, status)) => tracker.on_ack(id, status),
            Err(_) => {
                tracing::warn!(
                    batches = tracker.in_flight(),
                    "shutting down with unacknowledged batches; their lines will be read again at the next start"
                );
                break;
            }
        }
    }
    tracker.close_files();
    tracker.save_checkpoint();
}

/// Hands batches to the pipeline, waiting while its channel is full (backpressure) but
/// giving up when the receiver is asked to stop.
///
/// When the output encodes (`Outputs::encoding`), records are gathered up to a batch
/// processor's worth (never past it, unless one batch holds more), at most [`GATHER_WAIT`] (checked after each batch and each
/// file) or until the poll ends ([`BatchSender::flush`]): while catching up, the batch
/// processor gets full batches and sends them as they are, instead of copying many small
/// ones together. A batch whose entries need more than `MAX_GROUPS` resource-and-scope
/// groups goes in several.
struct BatchSender {
    outputs: Outputs,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    gathered: RefCell<Batch>,
    /// When the oldest gathered record was.
    gathered_at: Cell<Option<Instant>>,
}

/// The longest records wait in a receiver to be gathered, before the batch processor's own
/// `timeout` starts for them.
const GATHER_WAIT: Duration = Duration::from_millis(100);

impl BatchSender {
    fn new(outputs: Outputs, runtime: tokio::runtime::Handle, stop: Arc<AtomicBool>) -> Self {
        BatchSender {
            outputs,
            runtime,
            stop,
            gathered: RefCell::default(),
            gathered_at: Cell::new(None),
        }
    }

    /// False when the batch could not be handed over (stopping, or the pipeline is gone);
    /// its acknowledgement then fails and the offsets stay uncommitted.
    fn send(&self, mut batch: Batch) -> bool {
        let Some((encoder, batch_size)) = self.outputs.encoder() else {
            return self.hand_over(batch);
        };
        // What is gathered goes first when this batch would take it past a batch's worth:
        // records past the room reserved for a batch doubled its vector (a copy of
        // megabytes and as much fresh heap per batch), and the batch processor would copy
        // them once more to send `send_batch_size` at a time.
        let would_hold = self.gathered.borrow().len() + batch.entries.len();
        if would_hold > batch_size && !self.gathered.borrow().is_empty() && !self.flush() {
            return false;
        }
        let mut done = 0;
        loop {
            let mut gathered = self.gathered.borrow_mut();
            let catching_up = !gathered.is_empty();
            let logs = gathered.encoded.get_or_insert_with(Default::default);
            done += logs.push_entries(encoder, &batch.entries[done..], MAX_GROUPS);
            if done < batch.entries.len() {
                // The rest needs groups beyond the limit: what is gathered goes first, and
                // holds this batch's tokens too.
                gathered.acks.append(&mut batch.acks.clone());
                let full = std::mem::take(&mut *gathered);
                drop(gathered);
                self.gathered_at.set(None);
                if !self.hand_over(full) {
                    return false;
                }
                continue;
            }
            if catching_up && let [group] = logs.groups.as_mut_slice() {
                // A second batch in one poll: room for a whole batch processor's worth.
                group.reserve_records(batch_size.saturating_sub(group.count));
            }
            // The entries are freed here and now, their vector kept for the next batch.
            centimane_core::recycle::keep(std::mem::take(&mut batch.entries));
            gathered.acks.append(&mut batch.acks);
            if self.gathered_at.get().is_none() {
                self.gathered_at.set(Some(Instant::now()));
            }
            let full = gathered.len() >= batch_size;
            drop(gathered);
            return if full {
                self.flush()
            } else {
                self.flush_waited()
            };
        }
    }

    /// Hands over what was gathered if it has waited [`GATHER_WAIT`].
    fn flush_waited(&self) -> bool {
        match self.gathered_at.get() {
            Some(since) if since.elapsed() >= GATHER_WAIT => self.flush(),
            _ => true,
        }
    }

    /// Hands over the records gathered so far (see [`BatchSender`]).
    fn flush(&self) -> bool {
        self.gathered_at.set(None);
        let gathered = std::mem::take(&mut *self.gathered.borrow_mut());
        if gathered.is_empty() && gathered.acks.is_empty() {
            return true;
        }
        self.hand_over(gathered)
    }

    fn hand_over(&self, batch: Batch) -> bool {
        for (tx, copy) in self.outputs.fan_out(batch) {
            let mut copy = Some(copy);
            loop {
                let reserved = self.runtime.block_on(async {
                    tokio::time::timeout(Duration::from_millis(100), tx.reserve()).await
                });
                match reserved {
                    Ok(Ok(permit)) => {
                        permit.send(copy.take().expect("sent once"));
                        break;
                    }
                    Ok(Err(_closed)) => return false,
                    Err(_timeout) if self.stop.load(Ordering::Acquire) => return false,
                    // Waiting for room downstream: free what exporters are done with.
                    Err(_timeout) => centimane_core::recycle::collect(),
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::testing::{AckRecorder as Recorder, LineEncoder};
    use centimane_core::{AckSet, AckToken, Entry, Value};
    use tokio::sync::mpsc;

    fn batch(n: usize, acks: AckSet) -> Batch {
        let entries = (0..n).map(|i| Entry::new((i as i64).into())).collect();
        Batch::new(entries, acks)
    }

    /// A sender encoding for a pipeline that sends `batch_size` records at once, and what
    /// it hands over.
    fn sender(batch_size: usize) -> (BatchSender, mpsc::Receiver<Batch>, tokio::runtime::Runtime) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let outputs = Outputs::new(vec![tx]).encoding(Arc::new(LineEncoder), batch_size);
        let sender = BatchSender::new(outputs, runtime.handle().clone(), Arc::default());
        (sender, rx, runtime)
    }

    fn records(b: &Batch) -> String {
        let logs = b.encoded.as_ref().expect("encoded");
        logs.groups
            .iter()
            .map(|g| String::from_utf8(g.records().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn records_are_gathered_up_to_the_batch_size_and_flushed_at_the_end() {
        let (sender, mut rx, _rt) = sender(4);
        assert!(sender.send(batch(3, AckSet::default())));
        assert!(rx.try_recv().is_err(), "gathering");
        assert!(sender.send(batch(2, AckSet::default())));
        assert_eq!(
            records(&rx.try_recv().unwrap()),
            "0\n1\n2\n",
            "five would pass the batch size: the three gathered go first"
        );
        assert!(rx.try_recv().is_err(), "the two wait");
        assert!(sender.send(batch(2, AckSet::default())));
        let full = rx.try_recv().unwrap();
        assert!(full.entries.is_empty());
        assert_eq!(records(&full), "0\n1\n0\n1\n");
        assert!(sender.send(batch(1, AckSet::default())));
        assert!(rx.try_recv().is_err());
        assert!(sender.flush());
        assert_eq!(records(&rx.try_recv().unwrap()), "0\n");
        assert!(sender.flush());
        assert!(rx.try_recv().is_err(), "nothing left");
        assert!(sender.send(batch(6, AckSet::default())));
        assert_eq!(
            records(&rx.try_recv().unwrap()).lines().count(),
            6,
            "a batch larger than the batch size goes whole"
        );
    }

    #[test]
    fn gathered_records_wait_at_most_a_while() {
        let (sender, mut rx, _rt) = sender(1000);
        assert!(sender.send(batch(1, AckSet::default())));
        assert!(sender.flush_waited());
        assert!(rx.try_recv().is_err());
        std::thread::sleep(GATHER_WAIT);
        assert!(sender.flush_waited());
        assert_eq!(records(&rx.try_recv().unwrap()), "0\n");
    }

    #[test]
    fn a_batch_of_many_resources_goes_in_several_holding_its_tokens() {
        let (sender, mut rx, _rt) = sender(1000);
        let rec = Arc::new(Recorder::default());
        let mut hosts = batch(MAX_GROUPS + 1, AckSet::from(AckToken::new(7, rec.clone())));
        for (i, e) in hosts.entries.iter_mut().enumerate() {
            e.resource
                .insert("host".into(), Value::from(format!("h{i}")));
        }
        assert!(sender.send(hosts));
        let first = rx.try_recv().unwrap();
        assert_eq!(first.encoded.as_ref().unwrap().groups.len(), MAX_GROUPS);
        assert!(sender.flush());
        let second = rx.try_recv().unwrap();
        assert_eq!(second.len(), 1);
        first.acks.delivered();
        assert!(
            rec.0.lock().unwrap().is_empty(),
            "the rest is not delivered yet"
        );
        second.acks.delivered();
        assert_eq!(*rec.0.lock().unwrap(), [(7, AckStatus::Delivered)]);
    }

    #[test]
    fn without_an_encoder_batches_go_as_they_are() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let sender = BatchSender::new(
            Outputs::new(vec![tx]),
            runtime.handle().clone(),
            Arc::default(),
        );
        assert!(sender.send(batch(2, AckSet::default())));
        let got = rx.try_recv().unwrap();
        assert_eq!(got.entries.len(), 2);
        assert!(got.encoded.is_none());
    }
}
