//! The remote config state machine: dedupe by `config_hash`, refuse what can't or may
//! not be applied, and track APPLYING → APPLIED | FAILED.
//!
//! Invariants:
//! * `status.last_remote_config_hash` is the hash of the last config *received* (also
//!   when it failed), so the server does not offer a refused config again;
//! * an offer whose hash equals the last received one, or the one waiting, does nothing
//!   and sends nothing;
//! * at most one config is being applied; an offer arriving meanwhile waits, and a newer
//!   one replaces it (only the latest matters).

use crate::policy::AllowPolicy;
use crate::proto::{AgentRemoteConfig, RemoteConfigStatus, RemoteConfigStatuses};
use bytes::Bytes;
use std::time::Duration;

/// A config to hand to the agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Job {
    pub hash: Bytes,
    pub yaml: String,
}

/// What an offer led to.
#[derive(Debug, PartialEq)]
pub(crate) enum Offer {
    /// Same hash as before: nothing to do, nothing to report.
    Ignored,
    /// Refused before applying: the status is FAILED with the reason.
    Refused,
    /// To apply now: the status is APPLYING.
    Start(Job),
    /// Another config is being applied; this one follows.
    Queued,
}

pub(crate) struct RemoteConfigMachine {
    policy: AllowPolicy,
    status: RemoteConfigStatus,
    applying: Option<Bytes>,
    queued: Option<AgentRemoteConfig>,
}

/// Content types taken as YAML (JSON is YAML too); an empty one means "agent's format".
const YAML_TYPES: &[&str] = &[
    "",
    "text/yaml",
    "text/x-yaml",
    "application/yaml",
    "application/x-yaml",
    "application/json",
    "text/plain",
];

impl RemoteConfigMachine {
    /// `initial`: the status persisted before a restart, if any.
    pub(crate) fn new(policy: AllowPolicy, initial: Option<RemoteConfigStatus>) -> Self {
        RemoteConfigMachine {
            policy,
            status: initial.unwrap_or_default(),
            applying: None,
            queued: None,
        }
    }

    pub(crate) fn status(&self) -> &RemoteConfigStatus {
        &self.status
    }

    pub(crate) fn offer(&mut self, offer: AgentRemoteConfig) -> Offer {
        let seen = offer.config_hash == self.status.last_remote_config_hash
            || self
                .queued
                .as_ref()
                .is_some_and(|q| q.config_hash == offer.config_hash);
        if seen {
            return Offer::Ignored;
        }
        if self.applying.is_some() {
            self.queued = Some(offer);
            return Offer::Queued;
        }
        self.evaluate(offer)
    }

    fn evaluate(&mut self, offer: AgentRemoteConfig) -> Offer {
        let hash = offer.config_hash.clone();
        match config_yaml(&offer).and_then(|yaml| self.policy.check(&yaml).map(|()| yaml)) {
            Err(reason) => {
                self.set(hash, RemoteConfigStatuses::Failed, reason);
                Offer::Refused
            }
            Ok(yaml) => {
                self.set(hash.clone(), RemoteConfigStatuses::Applying, String::new());
                self.applying = Some(hash.clone());
                Offer::Start(Job { hash, yaml })
            }
        }
    }

    /// The apply outlived `config_apply_timeout`: report FAILED now. The apply keeps
    /// running (cutting a swap short is worse than a slow one), and its outcome replaces
    /// this status when it arrives.
    pub(crate) fn timed_out(&mut self, timeout: Duration) {
        if let Some(hash) = self.applying.clone() {
            let reason = format!(
                "config apply timeout exceeded ({timeout:?}); the agent is still applying it"
            );
            self.set(hash, RemoteConfigStatuses::Failed, reason);
        }
    }

    /// The agent finished applying `hash`.
    pub(crate) fn finished(&mut self, hash: Bytes, result: &Result<(), String>) {
        self.applying = None;
        match result {
            Ok(()) => self.set(hash, RemoteConfigStatuses::Applied, String::new()),
            Err(e) => self.set(hash, RemoteConfigStatuses::Failed, e.clone()),
        }
    }

    /// The offer that waited for the previous apply, evaluated now.
    pub(crate) fn next_queued(&mut self) -> Option<Offer> {
        let offer = self.queued.take()?;
        Some(self.evaluate(offer))
    }

    fn set(&mut self, hash: Bytes, status: RemoteConfigStatuses, error_message: String) {
        self.status = RemoteConfigStatus {
            last_remote_config_hash: hash,
            status: status as i32,
            error_message,
        };
    }
}

/// The YAML of an offer: exactly one file, YAML (or JSON), UTF-8, not blank. An empty
/// config is refused rather than applied: swapping to no pipelines would silently stop
/// the agent (and opamp-go's example server offers an empty config to every new agent).
fn config_yaml(offer: &AgentRemoteConfig) -> Result<String, String> {
    let files = offer.config.as_ref().map(|c| &c.config_map);
    let Some(files) = files.filter(|f| !f.is_empty()) else {
        return Err("the remote config is empty; an empty config is refused".into());
    };
    if files.len() > 1 {
        let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(format!(
            "the remote config has {} files ({:?}); Centimane takes one YAML file",
            files.len(),
            names
        ));
    }
    let Some((name, file)) = files.iter().next() else {
        return Err("the remote config is empty; an empty config is refused".into());
    };
    let content_type = file.content_type.split(';').next().unwrap_or("").trim();
    if !YAML_TYPES.contains(&content_type.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "remote config file {name:?} has content type {:?}; Centimane takes YAML",
            file.content_type
        ));
    }
    let yaml = std::str::from_utf8(&file.body)
        .map_err(|_| format!("remote config file {name:?} is not UTF-8"))?;
    if yaml.trim().is_empty() {
        return Err("the remote config is empty; an empty config is refused".into());
    }
    Ok(yaml.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PathGlob;
    use crate::proto::{AgentConfigFile, AgentConfigMap};

    fn offer(hash: &[u8], files: &[(&str, &str, &str)]) -> AgentRemoteConfig {
        AgentRemoteConfig {
            config: Some(AgentConfigMap {
                config_map: files
                    .iter()
                    .map(|(name, ct, body)| {
                        (
                            name.to_string(),
                            AgentConfigFile {
                                body: Bytes::from(body.to_string()),
                                content_type: ct.to_string(),
                            },
                        )
                    })
                    .collect(),
            }),
            config_hash: Bytes::copy_from_slice(hash),
        }
    }

    fn status(m: &RemoteConfigMachine) -> (Vec<u8>, RemoteConfigStatuses, String) {
        let s = m.status();
        (
            s.last_remote_config_hash.to_vec(),
            RemoteConfigStatuses::try_from(s.status).unwrap(),
            s.error_message.clone(),
        )
    }

    #[test]
    fn apply_then_same_hash_is_ignored() {
        let mut m = RemoteConfigMachine::new(AllowPolicy::default(), None);
        let job = match m.offer(offer(b"h1", &[("", "text/yaml", "a: 1")])) {
            Offer::Start(job) => job,
            other => panic!("{other:?}"),
        };
        assert_eq!(job.yaml, "a: 1");
        assert_eq!(status(&m).1, RemoteConfigStatuses::Applying);
        assert_eq!(m.offer(offer(b"h1", &[("", "", "a: 1")])), Offer::Ignored);
        m.finished(job.hash, &Ok(()));
        assert_eq!(
            status(&m),
            (b"h1".to_vec(), RemoteConfigStatuses::Applied, String::new())
        );
        assert_eq!(m.offer(offer(b"h1", &[("", "", "a: 1")])), Offer::Ignored);
    }

    #[test]
    fn refusals_report_failed_with_the_reason() {
        let mut m = RemoteConfigMachine::new(AllowPolicy::default(), None);
        let cases = [
            (offer(b"e1", &[]), "empty"),
            (offer(b"e2", &[("", "text/yaml", "  \n")]), "empty"),
            (
                offer(b"e3", &[("a", "", "x: 1"), ("b", "", "y: 1")]),
                "2 files",
            ),
            (
                offer(b"e4", &[("", "application/octet-stream", "x: 1")]),
                "content type",
            ),
        ];
        for (o, needle) in cases {
            assert_eq!(m.offer(o), Offer::Refused);
            let (_, s, msg) = status(&m);
            assert_eq!(s, RemoteConfigStatuses::Failed);
            assert!(msg.contains(needle), "{msg}");
        }
        let policy = AllowPolicy {
            include_globs: Some(vec![PathGlob::parse("/var/log/**").unwrap()]),
            ..AllowPolicy::default()
        };
        let mut m = RemoteConfigMachine::new(policy, None);
        let yaml = "receivers:\n  filelog:\n    include: [/etc/shadow]\n";
        assert_eq!(
            m.offer(offer(b"p", &[("", "text/yaml", yaml)])),
            Offer::Refused
        );
        assert!(status(&m).2.contains("/etc/shadow"));
    }

    #[test]
    fn offers_during_an_apply_wait_and_the_latest_wins() {
        let mut m = RemoteConfigMachine::new(AllowPolicy::default(), None);
        let Offer::Start(job) = m.offer(offer(b"1", &[("", "", "a: 1")])) else {
            panic!()
        };
        assert_eq!(m.offer(offer(b"2", &[("", "", "a: 2")])), Offer::Queued);
        assert_eq!(m.offer(offer(b"3", &[("", "", "a: 3")])), Offer::Queued);
        assert_eq!(m.offer(offer(b"3", &[("", "", "a: 3")])), Offer::Ignored);
        m.timed_out(Duration::from_secs(1));
        assert_eq!(status(&m).1, RemoteConfigStatuses::Failed);
        m.finished(job.hash, &Err("no".into()));
        assert_eq!(
            status(&m),
            (b"1".to_vec(), RemoteConfigStatuses::Failed, "no".into())
        );
        match m.next_queued() {
            Some(Offer::Start(job)) => assert_eq!(job.yaml, "a: 3"),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.next_queued(), None);
    }

    #[test]
    fn persisted_status_dedupes_after_restart() {
        let before = RemoteConfigStatus {
            last_remote_config_hash: Bytes::from_static(b"h"),
            status: RemoteConfigStatuses::Applied as i32,
            error_message: String::new(),
        };
        let mut m = RemoteConfigMachine::new(AllowPolicy::default(), Some(before));
        assert_eq!(m.offer(offer(b"h", &[("", "", "a: 1")])), Offer::Ignored);
    }
}
