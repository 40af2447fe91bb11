//! What the OpAMP extension sees of the agent: the effective config, health, remote config
//! application (through the supervisor, so a swap drains like a SIGHUP reload) and
//! snapshots of recent records.

use crate::config;
use crate::remote;
use crate::supervisor::Supervisor;
use crate::taps::Taps;
use centimane_opamp_ext::{AgentControl, BoxFuture, ChangeNotifier, Health, MetricSample};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The supervisor, shared by the signal loop and the OpAMP client; `None` once stopping.
pub type SharedSupervisor = Arc<tokio::sync::Mutex<Option<Supervisor>>>;

pub struct Control {
    supervisor: SharedSupervisor,
    /// The local config file's text: the base every remote config is merged into.
    local: Mutex<String>,
    /// The running config, redacted.
    effective: Mutex<String>,
    /// A hash of the running config, for `centimane_config_info`.
    config_hash: Mutex<String>,
    health: Mutex<Health>,
    taps: Option<Arc<Taps>>,
    notifier: Mutex<Option<ChangeNotifier>>,
}

fn now_nanos() -> u64 {
    centimane_core::Timestamp::now()
        .as_nanosecond()
        .try_into()
        .unwrap_or(0)
}

impl Control {
    pub fn new(
        supervisor: SharedSupervisor,
        local: String,
        running: &str,
        pipelines: &[String],
        taps: Option<Arc<Taps>>,
    ) -> Self {
        let control = Control {
            supervisor,
            local: Mutex::new(local),
            effective: Mutex::new(remote::redact(running)),
            config_hash: Mutex::new(String::new()),
            health: Mutex::new(Health::default()),
            taps,
            notifier: Mutex::new(None),
        };
        control.set_running(running, pipelines, "");
        control
    }

    pub fn config_hash(&self) -> String {
        self.config_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_notifier(&self, notifier: ChangeNotifier) {
        *self.notifier.lock().unwrap_or_else(|e| e.into_inner()) = Some(notifier);
    }

    /// The local config file changed (SIGHUP).
    pub fn set_local(&self, text: String) {
        *self.local.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    /// Records what runs now and tells the server.
    pub fn set_running(&self, text: &str, pipelines: &[String], last_error: &str) {
        *self.effective.lock().unwrap_or_else(|e| e.into_inner()) = remote::redact(text);
        *self.config_hash.lock().unwrap_or_else(|e| e.into_inner()) = config::fnv1a_hex(text);
        let now = now_nanos();
        let components: BTreeMap<String, Health> = pipelines
            .iter()
            .map(|p| {
                (
                    format!("pipeline:{p}"),
                    Health {
                        healthy: true,
                        status: "StatusOK".into(),
                        start_time_unix_nano: now,
                        status_time_unix_nano: now,
                        ..Health::default()
                    },
                )
            })
            .collect();
        *self.health.lock().unwrap_or_else(|e| e.into_inner()) = Health {
            healthy: true,
            status: "StatusOK".into(),
            last_error: last_error.to_owned(),
            start_time_unix_nano: now,
            status_time_unix_nano: now,
            components,
        };
        if let Some(n) = self
            .notifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            n.notify_changed();
        }
    }
}

/// Applies a remote config: merged into the local one, validated, swapped in.
async fn apply(control: Arc<Control>, remote_text: String) -> Result<(), String> {
    let local = control
        .local
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let merged = remote::merge(&local, &remote_text)?;
    let env = |name: &str| std::env::var(name).ok();
    let parsed = config::parse(&merged, &env)
        .map_err(|e| format!("the remote config is not valid:\n{e}"))?;
    let pipelines: Vec<String> = parsed.pipelines.keys().cloned().collect();
    let mut guard = control.supervisor.lock().await;
    let supervisor = guard.as_mut().ok_or("the agent is shutting down")?;
    match supervisor.swap(parsed).await {
        Ok(()) => {
            drop(guard);
            control.set_running(&merged, &pipelines, "");
            tracing::info!(pipelines = ?pipelines, "remote config applied");
            Ok(())
        }
        Err(e) => {
            tracing::error!("remote config failed to start, running the previous one: {e}");
            Err(e)
        }
    }
}

/// `Control` behind an `Arc`, which is what the extension gets.
pub struct SharedControl(pub Arc<Control>);

impl AgentControl for SharedControl {
    fn effective_config(&self) -> String {
        self.0
            .effective
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn health(&self) -> Health {
        self.0
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn apply_remote_config(&self, yaml: &str) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(apply(self.0.clone(), yaml.to_owned()))
    }

    fn snapshot(&self, point: &str, n: usize) -> Result<String, String> {
        let taps = self
            .0
            .taps
            .as_ref()
            .ok_or("snapshots are not enabled (`capabilities.snapshot`)")?;
        let point = if point.contains(':') {
            point.to_owned()
        } else {
            format!("pipeline:{point}")
        };
        let entries = taps.last(&point, n)?;
        let request = centimane_exporters::to_otlp_request(&entries);
        serde_json::to_string(&request).map_err(|e| e.to_string())
    }

    fn own_metrics(&self) -> BoxFuture<'static, Vec<MetricSample>> {
        let control = self.0.clone();
        Box::pin(async move { crate::telemetry::own_metrics(&control.supervisor, &control).await })
    }
}
