//! Processors: stages between a pipeline's receivers and its exporters. Each runs as a task
//! that reads batches from a bounded channel and writes to the next; when its input closes
//! it flushes what it holds and closes its output, so a pipeline drains front to back.

mod batch;

use centimane_core::Batch;
use centimane_core::config::ComponentId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use batch::BatchConfig;

/// Every processor type this build has.
pub const PROCESSOR_TYPES: &[&str] = &["batch"];

/// A validated processor config.
#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    Batch(BatchConfig),
}

/// Parses one processor's config block. Errors name the offending key in backticks.
pub fn parse_config(kind: &str, config: serde_json::Value) -> Result<ProcessorConfig, String> {
    match kind {
        "batch" => batch::parse(config).map(ProcessorConfig::Batch),
        other => Err(format!("unknown processor type `{other}`")),
    }
}

/// Starts the processor as a task on the current runtime.
pub fn spawn(
    id: ComponentId,
    config: ProcessorConfig,
    input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
) -> JoinHandle<()> {
    match config {
        ProcessorConfig::Batch(c) => tokio::spawn(batch::run(id, c, input, output)),
    }
}

/// A config block that may be `null` (a component written as `batch:` with no settings).
fn object_or_empty(config: serde_json::Value) -> serde_json::Value {
    if config.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        config
    }
}
