//! What the OpAMP client keeps across restarts, in one JSON file in the state directory:
//! the instance UID, the last good remote config with its hash, and the status of the last
//! remote config received (so a config that failed is not applied again after a restart,
//! and the server sees the same hash and status it saw before).
//!
//! Invariant: the file is only ever replaced whole (temp file, fsync, rename), so a crash
//! leaves either the old or the new state. It is written with mode 0600: remote configs
//! carry credentials.

use crate::proto::{RemoteConfigStatus, RemoteConfigStatuses, TelemetryConnectionSettings};
use bytes::Bytes;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The file's name inside the state directory.
pub const STATE_FILE: &str = "opamp_state.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Persisted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_good: Option<GoodConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_status: Option<StoredStatus>,
    /// Hex of the protobuf `TelemetryConnectionSettings` last offered for own metrics:
    /// servers offer it once, not again after the agent restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    own_metrics: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GoodConfig {
    /// Hex of the server's opaque `config_hash`.
    config_hash: String,
    body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredStatus {
    config_hash: String,
    applied: bool,
    #[serde(default)]
    error_message: String,
}

/// The state file, loaded once and rewritten on each change.
pub(crate) struct StateStore {
    path: PathBuf,
    data: Persisted,
}

impl StateStore {
    /// Creates the directory if needed and loads the file. A file that can't be parsed is
    /// logged and replaced at the next write: losing the UID is better than an agent that
    /// can't start.
    pub(crate) fn open(dir: &Path) -> Result<StateStore, String> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create the OpAMP state directory {}: {e}",
                dir.display()
            )
        })?;
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "OpAMP state file is damaged; starting with a fresh one");
                Persisted::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(StateStore { path, data })
    }

    pub(crate) fn instance_uid(&self) -> Option<Uuid> {
        let text = self.data.instance_uid.as_deref()?;
        Uuid::parse_str(text)
            .inspect_err(|e| tracing::error!(uid = text, error = %e, "ignoring a damaged persisted instance uid"))
            .ok()
    }

    pub(crate) fn set_instance_uid(&mut self, uid: Uuid) -> Result<(), String> {
        self.data.instance_uid = Some(uid.to_string());
        self.save()
    }

    /// The status to report at start, from the last config received before a restart.
    pub(crate) fn remote_status(&self) -> Option<RemoteConfigStatus> {
        let s = self.data.last_status.as_ref()?;
        Some(RemoteConfigStatus {
            last_remote_config_hash: Bytes::from(hex::decode(&s.config_hash).ok()?),
            status: if s.applied {
                RemoteConfigStatuses::Applied
            } else {
                RemoteConfigStatuses::Failed
            } as i32,
            error_message: s.error_message.clone(),
        })
    }

    pub(crate) fn record_applied(&mut self, hash: &[u8], yaml: &str) -> Result<(), String> {
        self.data.last_good = Some(GoodConfig {
            config_hash: hex::encode(hash),
            body: yaml.to_owned(),
        });
        self.data.last_status = Some(StoredStatus {
            config_hash: hex::encode(hash),
            applied: true,
            error_message: String::new(),
        });
        self.save()
    }

    pub(crate) fn record_failed(&mut self, hash: &[u8], error: &str) -> Result<(), String> {
        self.data.last_status = Some(StoredStatus {
            config_hash: hex::encode(hash),
            applied: false,
            error_message: error.to_owned(),
        });
        self.save()
    }

    /// The own-metrics destination offered before a restart.
    pub(crate) fn own_metrics(&self) -> Option<TelemetryConnectionSettings> {
        let bytes = hex::decode(self.data.own_metrics.as_deref()?).ok()?;
        TelemetryConnectionSettings::decode(bytes.as_slice())
            .inspect_err(|e| tracing::error!(error = %e, "ignoring a damaged persisted own_metrics destination"))
            .ok()
    }

    pub(crate) fn set_own_metrics(
        &mut self,
        offer: &TelemetryConnectionSettings,
    ) -> Result<(), String> {
        self.data.own_metrics = Some(hex::encode(offer.encode_to_vec()));
        self.save()
    }

    fn save(&self) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", self.path.display());
        let json = serde_json::to_vec_pretty(&self.data)
            .map_err(|e| format!("cannot encode the OpAMP state: {e}"))?;
        let mut options = atomic_write_file::OpenOptions::new();
        #[cfg(unix)]
        {
            use atomic_write_file::unix::OpenOptionsExt as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            options.preserve_mode(false).mode(0o600);
        }
        let mut file = options.open(&self.path).map_err(fail)?;
        file.write_all(&json).map_err(fail)?;
        file.commit().map_err(fail)
    }
}

/// The last remote config that was applied successfully, as persisted in `state_dir`, so
/// the agent can start on it after a restart without waiting for the server. `None` if
/// there is none (or the state can't be read).
pub fn last_remote_config(state_dir: &Path) -> Option<String> {
    let bytes = std::fs::read(state_dir.join(STATE_FILE)).ok()?;
    let data: Persisted = serde_json::from_slice(&bytes).ok()?;
    data.last_good.map(|g| g.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_last_good_survives_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("nested/state");
        let uid = Uuid::now_v7();
        {
            let mut s = StateStore::open(&state_dir).unwrap();
            assert_eq!(s.instance_uid(), None);
            assert_eq!(s.remote_status(), None);
            s.set_instance_uid(uid).unwrap();
            s.record_applied(&[1, 2], "receivers: {}\n").unwrap();
            s.record_failed(&[3], "bad").unwrap();
            assert_eq!(s.own_metrics(), None);
            s.set_own_metrics(&TelemetryConnectionSettings {
                destination_endpoint: "https://m:4318/v1/metrics".into(),
                ..TelemetryConnectionSettings::default()
            })
            .unwrap();
        }
        let s = StateStore::open(&state_dir).unwrap();
        assert_eq!(
            s.own_metrics().unwrap().destination_endpoint,
            "https://m:4318/v1/metrics"
        );
        assert_eq!(s.instance_uid(), Some(uid));
        let status = s.remote_status().unwrap();
        assert_eq!(status.last_remote_config_hash.as_ref(), &[3]);
        assert_eq!(status.status, RemoteConfigStatuses::Failed as i32);
        assert_eq!(status.error_message, "bad");
        assert_eq!(
            last_remote_config(&state_dir).as_deref(),
            Some("receivers: {}\n")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state_dir.join(STATE_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn damaged_file_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.instance_uid(), None);
        assert_eq!(last_remote_config(dir.path()), None);
    }
}
