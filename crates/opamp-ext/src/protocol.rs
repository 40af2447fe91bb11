//! Building AgentToServer messages: instance UID, sequence numbers, capabilities, and the
//! spec's compression (a status sub-message is sent only when it changed since it was last
//! sent, or when the server asked for the full state).
//!
//! Invariants:
//! * every message carries `instance_uid`, `sequence_num` and `capabilities`;
//! * `sequence_num` grows by one per message built, and a message is built only to be sent
//!   (a failed send still uses its number, so the server sees the gap);
//! * a report with nothing new is not built unless the caller forces one (heartbeat, HTTP
//!   poll): that is what keeps the client from answering every server message (no
//!   ping-pong).

use crate::config::Capabilities;
use crate::proto::{
    AgentCapabilities, AgentConfigFile, AgentConfigMap, AgentDescription, AgentDisconnect,
    AgentToServer, ComponentHealth, CustomCapabilities, CustomMessage, EffectiveConfig,
    RemoteConfigStatus,
};
use bytes::Bytes;
use uuid::Uuid;

/// The custom capability that serves record snapshots.
pub const SNAPSHOT_CAPABILITY: &str = "io.centimane.snapshot";

/// The capability bits for the config. ReportsStatus is always set (the spec requires it).
pub(crate) fn capability_bits(c: &Capabilities) -> u64 {
    let mut bits = AgentCapabilities::ReportsStatus as u64;
    for (on, bit) in [
        (
            c.accepts_remote_config,
            AgentCapabilities::AcceptsRemoteConfig,
        ),
        (
            c.reports_effective_config,
            AgentCapabilities::ReportsEffectiveConfig,
        ),
        (c.reports_health, AgentCapabilities::ReportsHealth),
        (
            c.reports_remote_config,
            AgentCapabilities::ReportsRemoteConfig,
        ),
        (c.reports_heartbeat, AgentCapabilities::ReportsHeartbeat),
        (c.reports_own_metrics, AgentCapabilities::ReportsOwnMetrics),
    ] {
        if on {
            bits |= bit as u64;
        }
    }
    bits
}

/// The effective config as OpAMP carries it: one file named `""`, YAML.
pub(crate) fn effective_config(yaml: String) -> EffectiveConfig {
    let file = AgentConfigFile {
        body: Bytes::from(yaml),
        content_type: "text/yaml".into(),
    };
    EffectiveConfig {
        config_map: Some(AgentConfigMap {
            config_map: [(String::new(), file)].into(),
        }),
    }
}

/// The agent's current status; `None` for what its capabilities don't report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub description: Option<AgentDescription>,
    pub effective_config: Option<EffectiveConfig>,
    pub health: Option<ComponentHealth>,
    pub remote_config_status: Option<RemoteConfigStatus>,
    pub custom_capabilities: Option<CustomCapabilities>,
}

/// Builds messages and remembers what was last sent, for compression.
pub(crate) struct Reporter {
    uid: Uuid,
    next_seq: u64,
    capabilities: u64,
    sent: Status,
    /// The next report carries every sub-message (first message on a connection, or the
    /// server set ReportFullState).
    full: bool,
}

impl Reporter {
    pub(crate) fn new(uid: Uuid, capabilities: u64) -> Self {
        Reporter {
            uid,
            next_seq: 0,
            capabilities,
            sent: Status::default(),
            full: true,
        }
    }

    pub(crate) fn uid(&self) -> Uuid {
        self.uid
    }

    pub(crate) fn set_uid(&mut self, uid: Uuid) {
        self.uid = uid;
    }

    pub(crate) fn request_full(&mut self) {
        self.full = true;
    }

    /// The next report, or `None` when nothing changed, no custom message waits and
    /// nothing forces a message.
    pub(crate) fn report(
        &mut self,
        status: Status,
        custom: Option<CustomMessage>,
        force: bool,
    ) -> Option<AgentToServer> {
        let full = self.full;
        fn pick<T: PartialEq + Clone>(
            full: bool,
            now: Option<T>,
            sent: &mut Option<T>,
        ) -> Option<T> {
            let now = now?;
            if full || sent.as_ref() != Some(&now) {
                *sent = Some(now.clone());
                Some(now)
            } else {
                None
            }
        }
        // Compare before touching `sent`, so a report that is not built leaves it alone.
        fn changed<T: PartialEq>(now: &Option<T>, sent: &Option<T>) -> bool {
            now.is_some() && now != sent
        }
        let anything = full
            || force
            || custom.is_some()
            || changed(&status.description, &self.sent.description)
            || changed(&status.effective_config, &self.sent.effective_config)
            || changed(&status.health, &self.sent.health)
            || changed(
                &status.remote_config_status,
                &self.sent.remote_config_status,
            )
            || changed(&status.custom_capabilities, &self.sent.custom_capabilities);
        if !anything {
            return None;
        }
        let mut msg = self.base();
        msg.agent_description = pick(full, status.description, &mut self.sent.description);
        msg.effective_config = pick(
            full,
            status.effective_config,
            &mut self.sent.effective_config,
        );
        msg.health = pick(full, status.health, &mut self.sent.health);
        msg.remote_config_status = pick(
            full,
            status.remote_config_status,
            &mut self.sent.remote_config_status,
        );
        msg.custom_capabilities = pick(
            full,
            status.custom_capabilities,
            &mut self.sent.custom_capabilities,
        );
        msg.custom_message = custom;
        self.full = false;
        Some(msg)
    }

    /// The last message of a connection.
    pub(crate) fn disconnect(&mut self) -> AgentToServer {
        let mut msg = self.base();
        msg.agent_disconnect = Some(AgentDisconnect {});
        msg
    }

    fn base(&mut self) -> AgentToServer {
        let seq = self.next_seq;
        self.next_seq += 1;
        AgentToServer {
            instance_uid: Bytes::copy_from_slice(self.uid.as_bytes()),
            sequence_num: seq,
            capabilities: self.capabilities,
            ..AgentToServer::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(health: bool) -> Status {
        Status {
            description: Some(AgentDescription::default()),
            effective_config: Some(effective_config("a: 1\n".into())),
            health: Some(ComponentHealth {
                healthy: health,
                ..ComponentHealth::default()
            }),
            remote_config_status: None,
            custom_capabilities: None,
        }
    }

    #[test]
    fn first_report_is_full_then_only_changes() {
        let mut r = Reporter::new(Uuid::now_v7(), 1);
        let first = r.report(status(true), None, false).unwrap();
        assert_eq!(first.sequence_num, 0);
        assert!(
            first.agent_description.is_some()
                && first.effective_config.is_some()
                && first.health.is_some()
        );
        assert!(
            r.report(status(true), None, false).is_none(),
            "nothing changed: no message"
        );
        let second = r.report(status(false), None, false).unwrap();
        assert_eq!(second.sequence_num, 1);
        assert!(second.agent_description.is_none() && second.effective_config.is_none());
        assert!(second.health.is_some());
        let beat = r.report(status(false), None, true).unwrap();
        assert_eq!(beat.sequence_num, 2);
        assert!(beat.health.is_none() && beat.agent_description.is_none());
        assert_eq!(beat.capabilities, 1);
        r.request_full();
        let full = r.report(status(false), None, false).unwrap();
        assert!(full.agent_description.is_some() && full.health.is_some());
        let bye = r.disconnect();
        assert!(bye.agent_disconnect.is_some());
        assert_eq!(bye.sequence_num, 4);
    }

    #[test]
    fn capability_bits_follow_the_config() {
        let c = Capabilities {
            reports_effective_config: true,
            reports_health: true,
            accepts_remote_config: true,
            reports_remote_config: true,
            reports_heartbeat: true,
            reports_own_metrics: true,
            snapshot: true,
        };
        assert_eq!(
            capability_bits(&c),
            0x1 | 0x2 | 0x4 | 0x40 | 0x800 | 0x1000 | 0x2000
        );
        let none = Capabilities {
            reports_effective_config: false,
            reports_health: false,
            accepts_remote_config: false,
            reports_remote_config: false,
            reports_heartbeat: false,
            reports_own_metrics: false,
            snapshot: false,
        };
        assert_eq!(capability_bits(&none), 0x1);
    }
}
