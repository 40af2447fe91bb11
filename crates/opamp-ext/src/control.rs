//! What the OpAMP client needs from the agent: the [`AgentControl`] trait and [`Health`].

use crate::proto::ComponentHealth;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future (what [`AgentControl::apply_remote_config`] returns, so the
/// trait stays object-safe without an async-trait crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The agent side of OpAMP, implemented by the agent's service.
///
/// The client calls the sync methods from its own task whenever it builds a report, so they
/// must be quick (read a snapshot, don't wait on pipelines).
pub trait AgentControl: Send + Sync + 'static {
    /// The YAML of the config that is actually running, secrets redacted.
    fn effective_config(&self) -> String;

    /// Current health: overall, plus per component (`"pipeline:logs"`,
    /// `"receiver:filelog"`...) in [`Health::components`].
    fn health(&self) -> Health;

    /// Validate, build, drain the old pipelines, start the new; `Err(message)` if refused
    /// or failed, after the agent restored the last good config itself.
    ///
    /// The future is always driven to completion (never dropped halfway through a swap),
    /// and at most one runs at a time.
    fn apply_remote_config(&self, yaml: &str) -> BoxFuture<'static, Result<(), String>>;

    /// The last `n` records seen at a pipeline point (`"receiver:filelog"`, ...) as an
    /// OTLP/JSON `ExportLogsServiceRequest`, for the `io.centimane.snapshot` custom
    /// capability. Called on a blocking thread.
    fn snapshot(&self, point: &str, n: usize) -> Result<String, String>;

    /// The agent's own metrics now, cumulative since it started, for the `own_metrics`
    /// destination a server offers. Called every `own_metrics_interval` while a
    /// destination is set.
    fn own_metrics(&self) -> BoxFuture<'static, Vec<MetricSample>>;
}

/// One point of the agent's own metrics. Names follow the OpenTelemetry semantic
/// conventions (`process.cpu.time`) or the Collector's own telemetry
/// (`otelcol_exporter_sent_log_records`) where one exists.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub name: &'static str,
    pub description: &'static str,
    /// UCUM unit: `s`, `By`, `{records}`...
    pub unit: &'static str,
    pub kind: MetricKind,
    pub attributes: Vec<(&'static str, String)>,
    pub value: MetricValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic sum, cumulative since the agent started.
    Counter,
    /// A value at this moment.
    Gauge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    Int(i64),
    Double(f64),
}

/// Health of the agent or of one component. Nest components in `components` (pipeline →
/// component), as the Collector does.
///
/// Reports are sent when the value changes, so set `status_time_unix_nano` when the status
/// changes, not on every call: a value that differs on each call is reported on each check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    /// Agent-defined status text, e.g. `StatusOK`, `StatusRecoverableError`.
    pub status: String,
    /// Should be set when not healthy.
    pub last_error: String,
    /// When the component started (0 if it is not running).
    pub start_time_unix_nano: u64,
    /// When the status last changed.
    pub status_time_unix_nano: u64,
    pub components: BTreeMap<String, Health>,
}

impl Health {
    pub(crate) fn to_proto(&self) -> ComponentHealth {
        ComponentHealth {
            healthy: self.healthy,
            start_time_unix_nano: self.start_time_unix_nano,
            last_error: self.last_error.clone(),
            status: self.status.clone(),
            status_time_unix_nano: self.status_time_unix_nano,
            component_health_map: self
                .components
                .iter()
                .map(|(name, h)| (name.clone(), h.to_proto()))
                .collect(),
            attributes: Vec::new(),
        }
    }
}
