//! Processors: stages between a pipeline's receivers and its exporters. Each runs as a task
//! that reads batches from a bounded channel and writes to the next; when its input closes
//! it flushes what it holds and closes its output, so a pipeline drains front to back.
//!
//! Invariant for every processor that drops entries (`filter`, `probabilistic_sampler`): the
//! batch's acknowledgement tokens are never lost with the entries. A batch that still has
//! entries goes on with all its tokens; a batch left with none has its tokens settled as
//! delivered (a deliberate drop is a delivery), so the receivers' offsets still commit.

mod actions;
mod attributes;
mod batch;
mod filter;
mod memory_limiter;
mod sampler;
mod sha256;
mod stage;
mod text;

use centimane_core::config::ComponentId;
use centimane_core::{Batch, RecordEncoder};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use attributes::AttributesConfig;
pub use batch::BatchConfig;
pub use filter::FilterConfig;
pub use memory_limiter::MemoryLimiterConfig;
pub use sampler::SamplerConfig;

/// Every processor type this build has.
pub const PROCESSOR_TYPES: &[&str] = &[
    "batch",
    "memory_limiter",
    "attributes",
    "resource",
    "filter",
    "probabilistic_sampler",
];

/// A validated processor config.
#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    Batch(BatchConfig),
    MemoryLimiter(MemoryLimiterConfig),
    /// `attributes` and `resource`: the same actions on a record's or its resource's map.
    Attributes(AttributesConfig),
    Filter(FilterConfig),
    ProbabilisticSampler(SamplerConfig),
}

/// Parses one processor's config block. Errors name the offending key in backticks.
pub fn parse_config(kind: &str, config: serde_json::Value) -> Result<ProcessorConfig, String> {
    match kind {
        "batch" => batch::parse(config).map(ProcessorConfig::Batch),
        "memory_limiter" => memory_limiter::parse(config).map(ProcessorConfig::MemoryLimiter),
        "attributes" => {
            attributes::parse(attributes::Target::Record, config).map(ProcessorConfig::Attributes)
        }
        "resource" => {
            attributes::parse(attributes::Target::Resource, config).map(ProcessorConfig::Attributes)
        }
        "filter" => filter::parse(config).map(ProcessorConfig::Filter),
        "probabilistic_sampler" => {
            sampler::parse(config).map(ProcessorConfig::ProbabilisticSampler)
        }
        other => Err(format!("unknown processor type `{other}`")),
    }
}

/// Starts the processor as a task on the current runtime. `encoder`: for a batch processor
/// whose batches only OTLP exporters read (see the `batch` module); ignored by the others.
pub fn spawn(
    id: ComponentId,
    config: ProcessorConfig,
    encoder: Option<Arc<dyn RecordEncoder>>,
    input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
) -> JoinHandle<()> {
    match config {
        ProcessorConfig::Batch(c) => tokio::spawn(batch::run(id, c, encoder, input, output)),
        ProcessorConfig::MemoryLimiter(c) => {
            tokio::spawn(memory_limiter::run(id, c, input, output))
        }
        ProcessorConfig::Attributes(c) => {
            tokio::spawn(stage::run(id, input, output, move |b| c.apply(b)))
        }
        ProcessorConfig::Filter(c) => {
            tokio::spawn(stage::run(id, input, output, move |b| c.apply(b)))
        }
        ProcessorConfig::ProbabilisticSampler(c) => {
            tokio::spawn(stage::run(id, input, output, move |b| c.apply(b)))
        }
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
