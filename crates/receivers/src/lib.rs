//! Receivers: where entries enter a pipeline. `filelog` tails files on its own thread (file
//! reading is blocking I/O and stays off the async runtime) and hands batches to the
//! pipeline's bounded channel; acknowledgements flow back to commit file offsets.

pub mod filelog;
pub mod otlp;

use centimane_core::config::ComponentId;
use centimane_core::{Batch, OperatorChain, RecordEncoder};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::mpsc;

/// Every receiver type this build has.
pub const RECEIVER_TYPES: &[&str] = &["filelog", "otlp"];

/// A validated receiver config.
// Built once per (re)start and moved around a handful of times: the size difference
// between variants costs nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ReceiverConfig {
    Filelog(filelog::FilelogConfig),
    Otlp(otlp::OtlpConfig),
}

impl ReceiverConfig {
    /// The operators the agent builds into the receiver's chain: the `operators:` list,
    /// after `add` operators for the receiver-level `attributes` and `resource` (which
    /// apply to every entry before the user's operators, as in the Collector).
    pub fn operators(&self) -> Option<serde_json::Value> {
        match self {
            ReceiverConfig::Filelog(c) => Some(filelog::operators_with_static_fields(c)),
            ReceiverConfig::Otlp(_) => None,
        }
    }

    /// The chain of `header.metadata_operators`, when the receiver reads file headers.
    pub fn header_operators(&self) -> Option<&serde_json::Value> {
        match self {
            ReceiverConfig::Filelog(c) => c.header.as_ref().map(|h| &h.metadata_operators),
            ReceiverConfig::Otlp(_) => None,
        }
    }

    /// The storage extension the receiver keeps its state in, if any.
    pub fn storage(&self) -> Option<&str> {
        match self {
            ReceiverConfig::Filelog(c) => c.storage.as_deref(),
            ReceiverConfig::Otlp(_) => None,
        }
    }
}

/// Parses one receiver's config block. Errors name the offending key in backticks.
pub fn parse_config(kind: &str, config: serde_json::Value) -> Result<ReceiverConfig, String> {
    match kind {
        "filelog" => filelog::FilelogConfig::parse(config).map(ReceiverConfig::Filelog),
        "otlp" => otlp::OtlpConfig::parse(config).map(ReceiverConfig::Otlp),
        other => Err(format!("unknown receiver type `{other}`")),
    }
}

/// What a receiver gets from the service besides its config.
pub struct ReceiverContext {
    pub id: ComponentId,
    /// The chain built from the receiver's `operators()`.
    pub chain: Box<dyn OperatorChain>,
    /// The chain built from `header_operators()`.
    pub header_chain: Option<Box<dyn OperatorChain>>,
    /// The directory of the storage extension named by the receiver's `storage`.
    pub storage_dir: Option<PathBuf>,
    pub outputs: Outputs,
    /// The runtime the pipeline's channels live on.
    pub runtime: tokio::runtime::Handle,
    /// How long to wait at shutdown for in-flight batches to be acknowledged.
    pub drain_timeout: Duration,
}

/// A running receiver.
pub enum ReceiverHandle {
    Filelog(filelog::FilelogHandle),
    Otlp(otlp::OtlpHandle),
}

impl ReceiverHandle {
    /// Asks the receiver to stop taking in data; it then drains (see each receiver).
    pub fn stop(&self) {
        match self {
            ReceiverHandle::Filelog(h) => h.stop(),
            ReceiverHandle::Otlp(h) => h.stop(),
        }
    }

    /// File-tailing figures, for receivers that tail files.
    pub fn filelog_stats(&self) -> Option<Arc<filelog::FilelogStats>> {
        match self {
            ReceiverHandle::Filelog(h) => Some(h.stats()),
            ReceiverHandle::Otlp(_) => None,
        }
    }

    /// Waits until the receiver has finished (blocking).
    pub fn join(self) {
        match self {
            ReceiverHandle::Filelog(h) => h.join(),
            ReceiverHandle::Otlp(h) => h.join(),
        }
    }
}

/// Starts a receiver.
pub fn start(config: ReceiverConfig, ctx: ReceiverContext) -> Result<ReceiverHandle, String> {
    match config {
        ReceiverConfig::Filelog(c) => filelog::start(filelog::FilelogSetup {
            id: ctx.id,
            config: c,
            chain: ctx.chain,
            header_chain: ctx.header_chain,
            checkpoint_dir: ctx.storage_dir,
            outputs: ctx.outputs,
            runtime: ctx.runtime,
            drain_timeout: ctx.drain_timeout,
        })
        .map(ReceiverHandle::Filelog),
        // OTLP data arrives structured: the operator chains are not used.
        ReceiverConfig::Otlp(c) => otlp::start(otlp::OtlpSetup {
            id: ctx.id,
            config: c,
            outputs: ctx.outputs,
            runtime: ctx.runtime,
            drain_timeout: ctx.drain_timeout,
        })
        .map(ReceiverHandle::Otlp),
    }
}

/// Where a receiver sends its batches: one channel per pipeline that lists the receiver.
/// A batch going to several pipelines is copied, and each copy holds the acknowledgement
/// tokens, so offsets commit only when every pipeline delivered.
#[derive(Clone)]
pub struct Outputs {
    senders: Vec<mpsc::Sender<Batch>>,
    /// Records handed to the pipelines (`otelcol_receiver_accepted_log_records`).
    accepted: Arc<AtomicU64>,
    /// Encodes the entries before they are handed over (see [`Outputs::encoding`]).
    encoder: Option<Arc<dyn RecordEncoder>>,
    /// How many records the pipeline's batch processor sends at once.
    batch_size: usize,
}

impl Outputs {
    pub fn new(senders: Vec<mpsc::Sender<Batch>>) -> Self {
        Outputs {
            senders,
            accepted: Arc::default(),
            encoder: None,
            batch_size: 0,
        }
    }

    /// Lets the receiver hand batches over as encoded records, freeing their entries on its
    /// own thread while they are still in its cache. For one pipeline whose only processor
    /// is a `batch` that encodes, sending `batch_size` records at once: it would encode
    /// every entry anyway, the moment it arrived. (`filelog` does; see its `BatchSender`.)
    pub fn encoding(mut self, encoder: Arc<dyn RecordEncoder>, batch_size: usize) -> Self {
        debug_assert_eq!(self.senders.len(), 1, "one pipeline");
        self.encoder = Some(encoder);
        self.batch_size = batch_size;
        self
    }

    /// The encoder batches may be handed over with, and the pipeline's batch size.
    pub(crate) fn encoder(&self) -> Option<(&dyn RecordEncoder, usize)> {
        self.encoder.as_deref().map(|e| (e, self.batch_size))
    }

    /// The count of records this receiver handed to its pipelines, for self-metrics.
    pub fn accepted(&self) -> Arc<AtomicU64> {
        self.accepted.clone()
    }

    /// Copies of `batch`, one per pipeline, paired with their channels.
    fn fan_out(&self, batch: Batch) -> Vec<(&mpsc::Sender<Batch>, Batch)> {
        self.accepted
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::with_capacity(self.senders.len());
        let (last, rest) = match self.senders.split_last() {
            Some(split) => split,
            None => return out,
        };
        for tx in rest {
            out.push((tx, Batch::new(batch.entries.clone(), batch.acks.clone())));
        }
        out.push((last, batch));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::{AckSet, Entry};

    fn batch(n: usize) -> Batch {
        let entries = (0..n).map(|i| Entry::new((i as i64).into())).collect();
        Batch::new(entries, AckSet::default())
    }

    #[test]
    fn outputs_to_several_pipelines_copy_entries() {
        let (a, _ra) = mpsc::channel(1);
        let (b, _rb) = mpsc::channel(1);
        let outputs = Outputs::new(vec![a, b]);
        let sent = outputs.fan_out(batch(2));
        assert_eq!(sent.len(), 2);
        for (_, copy) in &sent {
            assert_eq!(copy.entries.len(), 2);
            assert!(copy.encoded.is_none());
        }
        assert_eq!(
            outputs
                .accepted()
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }
}
