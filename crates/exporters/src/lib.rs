//! Exporters: the last stage of a pipeline. Each runs as a task that reads batches from a
//! bounded channel, hands them to a backend (an OTLP/gRPC server, a file, stderr) and
//! settles their acknowledgements.
//!
//! Invariant (see `centimane_core::ack`): a batch's acks are settled as delivered only
//! once the backend accepted it, or when the backend rejected it permanently (logged at
//! error: retrying could never succeed, and holding the ack would stall the receiver's
//! checkpoint for good). Anything else (abandoned at shutdown, given up after
//! `max_elapsed_time`) drops the acks unsettled, so the receiver does not commit those
//! offsets and the lines are read again after a restart.
//!
//! While an exporter retries a batch it takes no new one, so the bounded input channel
//! fills and pushes back on the pipeline.

mod config;
mod convert;
mod debug;
mod file;
mod otlp;
mod otlp_json;
mod retry;
#[cfg(test)]
mod test_support;

use centimane_core::SharedBatch;
use centimane_core::config::ComponentId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use convert::to_otlp_request;
pub use debug::{DebugConfig, Verbosity};
pub use file::{FileConfig, FileFormat};
pub use otlp::{Compression, Headers, OtlpConfig, TlsConfig};
pub use retry::RetryConfig;

/// Every exporter type this build has.
pub const EXPORTER_TYPES: &[&str] = &["debug", "file", "otlp"];

/// A validated exporter config.
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    Debug(DebugConfig),
    File(FileConfig),
    Otlp(OtlpConfig),
}

/// Parses and validates one exporter's config block (YAML already turned into JSON, env
/// vars substituted). Unknown keys, wrong types and missing required keys are errors whose
/// text names the key in backticks (`retry_on_failure.multiplier`).
pub fn parse_config(kind: &str, config: serde_json::Value) -> Result<ExporterConfig, String> {
    match kind {
        "debug" => debug::parse(config).map(ExporterConfig::Debug),
        "file" => file::parse(config).map(ExporterConfig::File),
        "otlp" => otlp::parse(config).map(ExporterConfig::Otlp),
        other => Err(format!(
            "unknown exporter type `{other}` (this build has: {})",
            EXPORTER_TYPES.join(", ")
        )),
    }
}

/// Starts the exporter as a task on the current tokio runtime. The task reads batches
/// until `input` is closed and empty, then returns. When `abandon` is cancelled (the
/// shutdown drain deadline passed) it stops retrying, drops what is unsent — its acks
/// unsettled, so their offsets are not committed — and returns promptly.
///
/// Errors are problems found while setting up: no runtime, the file cannot be opened, TLS
/// roots cannot be loaded. An OTLP backend that is down is not one: the exporter connects
/// on first use and retries.
pub fn spawn(
    id: ComponentId,
    config: ExporterConfig,
    input: mpsc::Receiver<SharedBatch>,
    abandon: CancellationToken,
) -> Result<JoinHandle<()>, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| format!("{id}: exporters must be started inside a tokio runtime"))?;
    match config {
        ExporterConfig::Debug(config) => {
            Ok(runtime.spawn(debug::run(id, config, std::io::stderr(), input, abandon)))
        }
        ExporterConfig::File(config) => {
            let file = file::open(&config.path)
                .map_err(|e| format!("{id}: cannot open {}: {e}", config.path.display()))?;
            let retry = file::io_retry();
            Ok(runtime.spawn(file::run(id, config, file, retry, input, abandon)))
        }
        ExporterConfig::Otlp(config) => {
            let task = otlp::start(id, config, input, abandon)?;
            Ok(runtime.spawn(task))
        }
    }
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
        ];
        assert_eq!(minimal.len(), EXPORTER_TYPES.len());
        for (kind, config) in minimal {
            assert!(EXPORTER_TYPES.contains(&kind));
            parse_config(kind, config).unwrap();
        }
        let err = parse_config("otlphttp", json!({})).unwrap_err();
        assert!(err.contains("`otlphttp`"), "{err}");
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error() {
        let (_tx, rx) = mpsc::channel(1);
        let err = spawn(
            "debug".parse().unwrap(),
            ExporterConfig::Debug(DebugConfig::default()),
            rx,
            CancellationToken::new(),
        )
        .unwrap_err();
        assert!(err.contains("tokio runtime"), "{err}");
    }
}
