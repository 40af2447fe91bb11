//! Exporters: the last stage of a pipeline. Each runs as a task that reads batches from a
//! bounded channel, hands them to a backend (an OTLP server over gRPC or HTTP, a file,
//! stderr) and settles their acknowledgements.
//!
//! Invariant (see `centimane_core::ack`): a batch's acks are settled as delivered only
//! once the backend accepted it, once a persistent sending queue stored it durably (the
//! queue then keeps it until the backend accepts it), or when the backend rejected it
//! permanently (logged at error and counted in [`ExporterStats`]: retrying could never
//! succeed, and holding the ack would stall the receiver's checkpoint for good). Anything
//! else (abandoned at shutdown, given up after `max_elapsed_time`) drops the acks
//! unsettled, so the receiver does not commit those offsets and the lines are read again
//! after a restart.
//!
//! The network exporters (`otlp`, `otlphttp`) put batches in a bounded sending queue
//! ([`queue`]), in memory or persistent, and deliver from it with several consumers
//! ([`sending`]); the `file` and `debug` exporters write one batch at a time. Either way,
//! when an exporter cannot keep up it takes no new batch, so its bounded input channel
//! fills and pushes back on the pipeline.

mod client;
mod config;
mod convert;
mod debug;
mod encode;
mod file;
mod otlp;
mod otlp_json;
mod otlphttp;
mod queue;
mod retry;
mod rpc;
mod sending;
mod stats;
#[cfg(test)]
mod test_support;
mod tls;

use centimane_core::SharedBatch;
use centimane_core::config::ComponentId;
use sending::Sending;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::{Compression, Headers};
pub use convert::to_otlp_request;
pub use debug::{DebugConfig, Verbosity};
pub use encode::OtlpRecords;
pub use file::{FileConfig, FileFormat, Rotation};
pub use otlp::OtlpConfig;
pub use otlphttp::{Encoding, OtlpHttpConfig};
pub use queue::{SendingQueueConfig, Sizer};
pub use retry::RetryConfig;
pub use stats::{ExporterStats, StatsSnapshot};
pub use tls::TlsConfig;

/// Every exporter type this build has.
pub const EXPORTER_TYPES: &[&str] = &["debug", "file", "otlp", "otlphttp"];

/// A validated exporter config.
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    Debug(DebugConfig),
    File(FileConfig),
    Otlp(OtlpConfig),
    OtlpHttp(OtlpHttpConfig),
}

impl ExporterConfig {
    /// The `file_storage` extension the exporter keeps its sending queue in, if any
    /// (`sending_queue.storage`). [`spawn`] needs that extension's directory.
    pub fn storage(&self) -> Option<&ComponentId> {
        let queue = match self {
            ExporterConfig::Otlp(c) => &c.sending_queue,
            ExporterConfig::OtlpHttp(c) => &c.sending_queue,
            ExporterConfig::Debug(_) | ExporterConfig::File(_) => return None,
        };
        queue.storage.as_ref().filter(|_| queue.enabled)
    }

    /// Whether the exporter sends OTLP requests, which it can build from records a batch
    /// processor encoded ([`OtlpRecords`]) as well as from entries.
    pub fn takes_encoded_records(&self) -> bool {
        match self {
            ExporterConfig::Otlp(_) | ExporterConfig::OtlpHttp(_) => true,
            ExporterConfig::Debug(_) | ExporterConfig::File(_) => false,
        }
    }
}

/// Parses and validates one exporter's config block (YAML already turned into JSON, env
/// vars substituted). Unknown keys, wrong types and missing required keys are errors whose
/// text names the key in backticks (`retry_on_failure.multiplier`).
pub fn parse_config(kind: &str, config: serde_json::Value) -> Result<ExporterConfig, String> {
    match kind {
        "debug" => debug::parse(config).map(ExporterConfig::Debug),
        "file" => file::parse(config).map(ExporterConfig::File),
        "otlp" => otlp::parse(config).map(ExporterConfig::Otlp),
        "otlphttp" => otlphttp::parse(config).map(ExporterConfig::OtlpHttp),
        other => Err(format!(
            "unknown exporter type `{other}` (this build has: {})",
            EXPORTER_TYPES.join(", ")
        )),
    }
}

/// A started exporter.
pub struct RunningExporter {
    /// Ends when the exporter is done (see [`spawn`]).
    pub task: JoinHandle<()>,
    /// What it did so far, readable while it runs.
    pub stats: Arc<ExporterStats>,
}

/// Starts the exporter as a task on the current tokio runtime. The task reads batches
/// until `input` is closed and empty, then returns (an in-memory sending queue is drained
/// first; a persistent one keeps what it holds for the next start). When `abandon` is
/// cancelled (the shutdown drain deadline passed) it stops retrying, drops what is unsent
/// — its acks unsettled, so their offsets are not committed — and returns promptly.
///
/// `storage_dirs` maps the enabled `file_storage` extensions to their directories; an
/// exporter whose `sending_queue.storage` names one keeps its queue there.
///
/// Errors are problems found while setting up: no runtime, the file cannot be opened, TLS
/// files cannot be read, the persistent queue cannot be opened. A backend that is down is
/// not one: the exporter connects on first use and retries.
pub fn spawn(
    id: ComponentId,
    config: ExporterConfig,
    input: mpsc::Receiver<SharedBatch>,
    abandon: CancellationToken,
    storage_dirs: &HashMap<ComponentId, PathBuf>,
) -> Result<RunningExporter, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| format!("{id}: exporters must be started inside a tokio runtime"))?;
    let stats = Arc::new(ExporterStats::default());
    let storage_dir = config
        .storage()
        .and_then(|s| storage_dirs.get(s))
        .map(PathBuf::as_path);
    let task = match config {
        ExporterConfig::Debug(config) => {
            let out: Box<dyn std::io::Write + Send> = if config.use_internal_logger {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            };
            runtime.spawn(debug::run(id, config, out, stats.clone(), input, abandon))
        }
        ExporterConfig::File(config) => {
            let file = file::open(&config.path)
                .map_err(|e| format!("{id}: cannot open {}: {e}", config.path.display()))?;
            let retry = file::io_retry();
            runtime.spawn(file::run(
                id,
                config,
                file,
                retry,
                stats.clone(),
                input,
                abandon,
            ))
        }
        ExporterConfig::Otlp(config) => {
            let transport = otlp::transport(&config)?;
            let retry = config.retry_on_failure;
            let queue = &config.sending_queue;
            let sending = Sending::new(id, transport, retry, queue, storage_dir, &stats)?;
            runtime.spawn(sending.run(input, abandon))
        }
        ExporterConfig::OtlpHttp(config) => {
            let transport = otlphttp::transport(&config)?;
            let retry = config.retry_on_failure;
            let queue = &config.sending_queue;
            let sending = Sending::new(id, transport, retry, queue, storage_dir, &stats)?;
            runtime.spawn(sending.run(input, abandon))
        }
    };
    Ok(RunningExporter { task, stats })
}

/// The next batch, or `None` once `input` is closed and empty or `abandon` is cancelled.
/// Abandoning wins over queued batches: those are dropped, their acks unsettled.
async fn next_batch(
    input: &mut mpsc::Receiver<SharedBatch>,
    abandon: &CancellationToken,
) -> Option<SharedBatch> {
    tokio::select! {
        biased;
        () = abandon.cancelled() => None,
        batch = input.recv() => batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_listed_type_parses_with_its_minimal_config() {
        let minimal = [
            ("debug", json!(null)),
            ("file", json!({"path": "/tmp/out.jsonl"})),
            ("otlp", json!({"endpoint": "collector:4317"})),
            ("otlphttp", json!({"endpoint": "https://collector:4318"})),
        ];
        assert_eq!(minimal.len(), EXPORTER_TYPES.len());
        for (kind, config) in minimal {
            assert!(EXPORTER_TYPES.contains(&kind));
            parse_config(kind, config).unwrap();
        }
        let err = parse_config("otlpgrpc", json!({})).unwrap_err();
        assert!(err.contains("`otlpgrpc`"), "{err}");
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error() {
        let (_tx, rx) = mpsc::channel(1);
        let err = spawn(
            "debug".parse().unwrap(),
            ExporterConfig::Debug(DebugConfig::default()),
            rx,
            CancellationToken::new(),
            &HashMap::new(),
        )
        .err()
        .unwrap();
        assert!(err.contains("tokio runtime"), "{err}");
    }
}
