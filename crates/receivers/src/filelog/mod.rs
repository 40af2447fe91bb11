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
use centimane_core::config::ComponentId;
use centimane_core::{AckListener, AckStatus, Batch, OperatorChain};
use crossbeam_channel::{Receiver, Sender, select};
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
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
    let sender = BatchSender {
        outputs,
        runtime,
        stop: tracker.stop_flag(),
        gathered: RefCell::default(),
    };
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
/// When the output encodes (`Outputs::encoding`), the records of a poll are gathered until
/// there are a batch processor's worth, and what is left is handed over when the poll
/// ends ([`BatchSender::flush`]): while catching up, the batch processor gets full batches
/// it sends as they are, instead of copying many small ones together.
struct BatchSender {
    outputs: Outputs,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    gathered: RefCell<Batch>,
}

impl BatchSender {
    /// False when the batch could not be handed over (stopping, or the pipeline is gone);
    /// its acknowledgement then fails and the offsets stay uncommitted.
    fn send(&self, batch: Batch) -> bool {
        let mut gathered = self.gathered.borrow_mut();
        match self.outputs.gather(&mut gathered, batch) {
            Ok(false) => true,
            Ok(true) => {
                let full = std::mem::take(&mut *gathered);
                drop(gathered);
                self.hand_over(full)
            }
            Err(batch) => {
                drop(gathered);
                self.hand_over(batch)
            }
        }
    }

    /// Hands over the records gathered so far (see [`BatchSender`]).
    fn flush(&self) -> bool {
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
