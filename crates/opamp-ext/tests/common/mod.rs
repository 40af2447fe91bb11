//! Shared by the integration tests: a fake agent behind [`AgentControl`], client configs
//! pointed at a [`TestServer`], and small readers of the server's records.
#![allow(dead_code)] // each test binary uses a different part of this module

use centimane_opamp_ext::proto::{RemoteConfigStatuses, any_value};
use centimane_opamp_ext::test_server::{AgentRecord, TestServer};
use centimane_opamp_ext::{
    AgentControl, Backoff, BoxFuture, Health, MetricKind, MetricSample, MetricValue, OpampConfig,
    parse_config,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Bound for every wait: generous, since CI shares two cores with other builds.
pub const WAIT: Duration = Duration::from_secs(20);

pub const INITIAL_CONFIG: &str = "receivers:\n  filelog:\n    include: [/var/log/app/*.log]\n";

/// A config the fake applies (inside the tests' allow policy).
pub fn good_yaml(n: u32) -> String {
    format!(
        "receivers:\n  filelog:\n    include: [/var/log/app{n}/*.log]\nexporters:\n  otlp:\n    endpoint: collector:4317\n"
    )
}

/// An agent double: applies configs (refusing those that contain `refuse-me`), reports
/// health and serves snapshots.
pub struct Fake {
    inner: Arc<Inner>,
}

struct Inner {
    effective: Mutex<String>,
    health: Mutex<Health>,
    applied: Mutex<Vec<String>>,
    apply_delay: Mutex<Duration>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fake {
    pub fn new() -> Arc<Fake> {
        let pipeline = Health {
            healthy: true,
            status: "StatusOK".into(),
            start_time_unix_nano: 1,
            status_time_unix_nano: 1,
            ..Health::default()
        };
        let health = Health {
            healthy: true,
            status: "StatusOK".into(),
            start_time_unix_nano: 1,
            status_time_unix_nano: 1,
            components: BTreeMap::from([("pipeline:logs".to_owned(), pipeline)]),
            ..Health::default()
        };
        Arc::new(Fake {
            inner: Arc::new(Inner {
                effective: Mutex::new(INITIAL_CONFIG.to_owned()),
                health: Mutex::new(health),
                applied: Mutex::new(Vec::new()),
                apply_delay: Mutex::new(Duration::ZERO),
            }),
        })
    }

    pub fn set_health(&self, healthy: bool, error: &str, at: u64) {
        let mut h = lock(&self.inner.health);
        h.healthy = healthy;
        h.last_error = error.to_owned();
        h.status = if healthy {
            "StatusOK"
        } else {
            "StatusRecoverableError"
        }
        .into();
        h.status_time_unix_nano = at;
    }

    pub fn applied(&self) -> Vec<String> {
        lock(&self.inner.applied).clone()
    }

    pub fn set_apply_delay(&self, delay: Duration) {
        *lock(&self.inner.apply_delay) = delay;
    }
}

impl AgentControl for Fake {
    fn effective_config(&self) -> String {
        lock(&self.inner.effective).clone()
    }

    fn health(&self) -> Health {
        lock(&self.inner.health).clone()
    }

    fn apply_remote_config(&self, yaml: &str) -> BoxFuture<'static, Result<(), String>> {
        let inner = self.inner.clone();
        let yaml = yaml.to_owned();
        Box::pin(async move {
            let delay = *lock(&inner.apply_delay);
            tokio::time::sleep(delay).await;
            if yaml.contains("refuse-me") {
                return Err("pipeline `logs` failed to start: refuse-me is not a receiver".into());
            }
            lock(&inner.applied).push(yaml.clone());
            *lock(&inner.effective) = yaml;
            Ok(())
        })
    }

    fn snapshot(&self, point: &str, n: usize) -> Result<String, String> {
        if point != "receiver:filelog" {
            return Err(format!("no pipeline point `{point}`"));
        }
        let records: Vec<_> = (0..n)
            .map(|i| json!({"body": {"stringValue": format!("line {i}")}}))
            .collect();
        Ok(json!({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}).to_string())
    }

    fn own_metrics(&self) -> BoxFuture<'static, Vec<MetricSample>> {
        let applied = lock(&self.inner.applied).len() as i64;
        Box::pin(async move {
            vec![MetricSample {
                name: "fake_configs_applied",
                description: "Remote configs the fake applied.",
                unit: "{configs}",
                kind: MetricKind::Counter,
                attributes: vec![("agent", "fake".to_owned())],
                value: MetricValue::Int(applied),
            }]
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Ws,
    Http,
}

/// A client config for `server`: remote config and snapshots on, a policy, short timers.
pub fn client_config(server: &TestServer, kind: Kind) -> OpampConfig {
    let server_block = match kind {
        Kind::Ws => {
            json!({"ws": {"endpoint": server.ws_url(), "headers": {"Authorization": "Bearer test-token"}}})
        }
        Kind::Http => json!({"http": {
            "endpoint": server.http_url(),
            "headers": {"Authorization": "Bearer test-token"},
            "polling_interval": "200ms"
        }}),
    };
    let mut config = parse_config(json!({
        "server": server_block,
        "capabilities": {"accepts_remote_config": true, "snapshot": true},
        "agent_description": {"non_identifying_attributes": {"deployment.environment": "test"}},
        "remote_config": {"allow": {
            "include_globs": ["/var/log/**"],
            "exporter_endpoints": ["collector:4317"]
        }},
        "heartbeat_interval": "300ms",
        "config_apply_timeout": "5s"
    }))
    .expect("test config is valid");
    config.reconnect = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };
    config
}

/// The only agent the server knows that has sent a description.
pub async fn agent_uid(server: &TestServer) -> Uuid {
    server
        .wait_for(WAIT, "an agent with a description", |s| {
            s.agents
                .values()
                .find(|a| a.description.is_some())
                .map(|a| a.instance_uid)
        })
        .await
        .unwrap()
}

pub fn status_name(code: i32) -> &'static str {
    match RemoteConfigStatuses::try_from(code) {
        Ok(RemoteConfigStatuses::Applied) => "APPLIED",
        Ok(RemoteConfigStatuses::Applying) => "APPLYING",
        Ok(RemoteConfigStatuses::Failed) => "FAILED",
        _ => "UNSET",
    }
}

/// The remote config statuses the agent reported for `hash`, in order, with messages.
pub fn statuses_for(record: &AgentRecord, hash: &[u8]) -> Vec<(&'static str, String)> {
    record
        .remote_config_history
        .iter()
        .filter(|s| s.last_remote_config_hash.as_ref() == hash)
        .map(|s| (status_name(s.status), s.error_message.clone()))
        .collect()
}

/// A string attribute of the agent's description (identifying or not).
pub fn attribute(record: &AgentRecord, key: &str) -> Option<String> {
    let d = record.description.as_ref()?;
    d.identifying_attributes
        .iter()
        .chain(&d.non_identifying_attributes)
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// The body of the effective config's `""` file.
pub fn effective_yaml(record: &AgentRecord) -> Option<String> {
    let file = record
        .effective_config
        .as_ref()?
        .config_map
        .as_ref()?
        .config_map
        .get("")?;
    Some(String::from_utf8_lossy(&file.body).into_owned())
}
