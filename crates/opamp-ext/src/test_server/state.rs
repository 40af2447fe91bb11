//! What the test server knows about each agent, and how it answers an AgentToServer.
//! Both transports go through [`Shared::handle`], so they behave the same.

use crate::proto::{
    AgentCapabilities, AgentDescription, AgentIdentification, AgentRemoteConfig, AgentToServer,
    ComponentHealth, ConnectionSettingsOffers, CustomCapabilities, CustomMessage, EffectiveConfig,
    RemoteConfigStatus, RetryInfo, ServerCapabilities, ServerErrorResponse,
    ServerErrorResponseType, ServerToAgent, ServerToAgentFlags, TelemetryConnectionSettings,
    server_error_response,
};
use crate::protocol::SNAPSHOT_CAPABILITY;
use bytes::Bytes;
use prost::Message;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// How many received messages each agent record keeps (oldest dropped first).
const HISTORY: usize = 1000;

/// Which transport an agent used last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    WebSocket,
    Http,
}

/// One received AgentToServer and when it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub msg: AgentToServer,
}

impl Received {
    /// A message with no status sub-message, custom message or disconnect: a heartbeat
    /// (WebSocket) or a poll (HTTP).
    pub fn is_heartbeat(&self) -> bool {
        let m = &self.msg;
        m.agent_description.is_none()
            && m.health.is_none()
            && m.effective_config.is_none()
            && m.remote_config_status.is_none()
            && m.custom_capabilities.is_none()
            && m.custom_message.is_none()
            && m.agent_disconnect.is_none()
    }
}

/// Everything the server has seen from one agent: the last value of each status
/// sub-message (compression means a message only carries what changed).
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub instance_uid: Uuid,
    pub via: Via,
    pub capabilities: u64,
    pub description: Option<AgentDescription>,
    pub effective_config: Option<EffectiveConfig>,
    pub health: Option<ComponentHealth>,
    pub remote_config_status: Option<RemoteConfigStatus>,
    /// Every distinct remote config status, in order (APPLYING → APPLIED ...).
    pub remote_config_history: Vec<RemoteConfigStatus>,
    pub custom_capabilities: Option<CustomCapabilities>,
    pub custom_messages: Vec<CustomMessage>,
    pub last_sequence_num: Option<u64>,
    pub messages: VecDeque<Received>,
    /// When each WebSocket connection (or the first HTTP request) of this agent began.
    pub connections: Vec<Instant>,
    /// Headers of the last WebSocket upgrade or HTTP request, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The last message carried AgentDisconnect.
    pub disconnected: bool,
    /// How often the server set ReportFullState in a reply.
    pub full_state_requests: u64,
    /// Messages dropped unseen by [`super::TestServer::lose_next_message`].
    pub lost_messages: u64,
    /// The config the server offers this agent (else the server-wide default).
    pub remote_config: Option<AgentRemoteConfig>,
    pending: Pending,
    conn: Option<(u64, mpsc::UnboundedSender<Outgoing>)>,
}

/// Server-initiated content waiting for the next message to the agent.
#[derive(Debug, Clone, Default)]
struct Pending {
    force_config: bool,
    flags: u64,
    custom: VecDeque<CustomMessage>,
    new_uid: Option<Uuid>,
    connection_settings: Option<ConnectionSettingsOffers>,
    lose_next: bool,
    unavailable: Option<Duration>,
}

/// What a WebSocket connection task writes to its socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Message(Box<ServerToAgent>),
    Raw(Vec<u8>),
}

/// The server's view of all agents.
#[derive(Debug, Clone, Default)]
pub struct ServerState {
    pub agents: BTreeMap<Uuid, AgentRecord>,
    /// Offered to every agent that accepts remote config and has no config of its own.
    pub default_config: Option<AgentRemoteConfig>,
    /// When each 503 from [`super::TestServer::throttle`] went out.
    pub throttled: Vec<Instant>,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<ServerState>,
    /// Bumped on every change, so waiters wake up.
    pub(crate) changes: watch::Sender<u64>,
    /// Requests or upgrades still to answer with 503 + Retry-After.
    pub(crate) throttle: Mutex<Option<(u32, Duration)>>,
}

/// The server's capabilities: it takes status and effective config, offers remote config.
fn server_capabilities() -> u64 {
    ServerCapabilities::AcceptsStatus as u64
        | ServerCapabilities::OffersRemoteConfig as u64
        | ServerCapabilities::AcceptsEffectiveConfig as u64
        | ServerCapabilities::OffersConnectionSettings as u64
}

impl AgentRecord {
    fn new(uid: Uuid, via: Via) -> Self {
        AgentRecord {
            instance_uid: uid,
            via,
            capabilities: 0,
            description: None,
            effective_config: None,
            health: None,
            remote_config_status: None,
            remote_config_history: Vec::new(),
            custom_capabilities: None,
            custom_messages: Vec::new(),
            last_sequence_num: None,
            messages: VecDeque::new(),
            connections: Vec::new(),
            headers: Vec::new(),
            disconnected: false,
            full_state_requests: 0,
            lost_messages: 0,
            remote_config: None,
            pending: Pending::default(),
            conn: None,
        }
    }

    fn has(&self, bit: AgentCapabilities) -> bool {
        self.capabilities & bit as u64 != 0
    }

    /// A status sub-message the agent's capabilities promise is missing (opamp-go's rule
    /// for when a gap in sequence numbers calls for the full state).
    fn compressed(&self, msg: &AgentToServer) -> bool {
        msg.agent_description.is_none()
            || (self.has(AgentCapabilities::ReportsEffectiveConfig)
                && msg.effective_config.is_none())
            || (self.has(AgentCapabilities::ReportsHealth) && msg.health.is_none())
            || (self.has(AgentCapabilities::ReportsRemoteConfig)
                && msg.remote_config_status.is_none())
    }

    fn absorb(&mut self, msg: &AgentToServer) {
        self.capabilities = msg.capabilities;
        self.last_sequence_num = Some(msg.sequence_num);
        self.disconnected = msg.agent_disconnect.is_some();
        if let Some(d) = &msg.agent_description {
            self.description = Some(d.clone());
        }
        if let Some(e) = &msg.effective_config {
            self.effective_config = Some(e.clone());
        }
        if let Some(h) = &msg.health {
            self.health = Some(h.clone());
        }
        if let Some(s) = &msg.remote_config_status {
            if self.remote_config_status.as_ref() != Some(s) {
                self.remote_config_history.push(s.clone());
            }
            self.remote_config_status = Some(s.clone());
        }
        if let Some(c) = &msg.custom_capabilities {
            self.custom_capabilities = Some(c.clone());
        }
        if let Some(c) = &msg.custom_message {
            self.custom_messages.push(c.clone());
        }
        if self.messages.len() == HISTORY {
            self.messages.pop_front();
        }
        self.messages.push_back(Received {
            at: Instant::now(),
            msg: msg.clone(),
        });
    }

    /// A ServerToAgent with whatever the server has for this agent. Takes the pending
    /// content; `None` when there is nothing to say and nothing forces an answer.
    fn compose(
        &mut self,
        default_config: Option<&AgentRemoteConfig>,
        answer: bool,
        custom_capabilities: bool,
    ) -> Option<ServerToAgent> {
        let uid = Bytes::copy_from_slice(self.instance_uid.as_bytes());
        if let Some(after) = self.pending.unavailable.take() {
            return Some(ServerToAgent {
                instance_uid: uid,
                error_response: Some(ServerErrorResponse {
                    r#type: ServerErrorResponseType::Unavailable as i32,
                    error_message: "the test server is unavailable".into(),
                    details: Some(server_error_response::Details::RetryInfo(RetryInfo {
                        retry_after_nanoseconds: u64::try_from(after.as_nanos())
                            .unwrap_or(u64::MAX),
                    })),
                }),
                ..ServerToAgent::default()
            });
        }
        let config = self.remote_config.as_ref().or(default_config);
        let reported = self
            .remote_config_status
            .as_ref()
            .map(|s| s.last_remote_config_hash.clone());
        let force = std::mem::take(&mut self.pending.force_config);
        let remote_config = config
            .filter(|c| {
                self.has(AgentCapabilities::AcceptsRemoteConfig)
                    && (force || reported.as_ref() != Some(&c.config_hash))
            })
            .cloned();
        let flags = std::mem::take(&mut self.pending.flags);
        if flags & ServerToAgentFlags::ReportFullState as u64 != 0 {
            self.full_state_requests += 1;
        }
        let msg = ServerToAgent {
            instance_uid: uid,
            capabilities: server_capabilities(),
            remote_config,
            flags,
            custom_message: self.pending.custom.pop_front(),
            custom_capabilities: custom_capabilities.then(|| CustomCapabilities {
                capabilities: vec![SNAPSHOT_CAPABILITY.into()],
            }),
            agent_identification: self.pending.new_uid.map(|new| AgentIdentification {
                new_instance_uid: Bytes::copy_from_slice(new.as_bytes()),
            }),
            connection_settings: self.pending.connection_settings.take(),
            ..ServerToAgent::default()
        };
        let says_something = msg.remote_config.is_some()
            || msg.connection_settings.is_some()
            || msg.flags != 0
            || msg.custom_message.is_some()
            || msg.agent_identification.is_some();
        (answer || says_something).then_some(msg)
    }
}

/// Where an AgentToServer came from.
pub(crate) enum Source {
    WebSocket {
        conn_id: u64,
        first: bool,
        tx: mpsc::UnboundedSender<Outgoing>,
        headers: Vec<(String, String)>,
    },
    Http {
        headers: Vec<(String, String)>,
    },
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            state: Mutex::new(ServerState::default()),
            changes: watch::channel(0).0,
            throttle: Mutex::new(None),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        // A test that panicked while holding the lock must not hide the state from others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// Consumes one throttled answer, if any: the Retry-After to send with a 503.
    pub(crate) fn take_throttle(&self) -> Option<Duration> {
        let after = {
            let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
            let (left, after) = (*t)?;
            *t = (left > 1).then_some((left - 1, after));
            after
        };
        self.lock().throttled.push(Instant::now());
        self.changed();
        Some(after)
    }

    /// Records a message and returns the answer (`None`: say nothing, WebSocket only).
    pub(crate) fn handle(&self, msg: AgentToServer, from: Source) -> Option<ServerToAgent> {
        let Ok(uid) = Uuid::from_slice(&msg.instance_uid) else {
            return Some(ServerToAgent {
                error_response: Some(ServerErrorResponse {
                    r#type: ServerErrorResponseType::BadRequest as i32,
                    error_message: "instance_uid must be 16 bytes".into(),
                    details: None,
                }),
                ..ServerToAgent::default()
            });
        };
        let (via, headers, is_http) = match &from {
            Source::WebSocket { headers, .. } => (Via::WebSocket, headers.clone(), false),
            Source::Http { headers } => (Via::Http, headers.clone(), true),
        };
        let reply = {
            let mut state = self.lock();
            let default_config = state.default_config.clone();
            let record = state
                .agents
                .entry(uid)
                .or_insert_with(|| AgentRecord::new(uid, via));
            record.via = via;
            record.headers = headers;
            if std::mem::take(&mut record.pending.lose_next) {
                // Simulates a message lost on the way: never seen, so not recorded.
                record.lost_messages += 1;
                drop(state);
                self.changed();
                return is_http.then(|| ServerToAgent {
                    instance_uid: msg.instance_uid.clone(),
                    capabilities: server_capabilities(),
                    ..ServerToAgent::default()
                });
            }
            let first_contact = match &from {
                Source::WebSocket {
                    conn_id, first, tx, ..
                } => {
                    record.conn = Some((*conn_id, tx.clone()));
                    *first
                }
                Source::Http { .. } => record.messages.is_empty() || record.disconnected,
            };
            if first_contact {
                record.connections.push(Instant::now());
            }
            let in_order = record
                .last_sequence_num
                .is_some_and(|prev| msg.sequence_num == prev.wrapping_add(1));
            record.absorb(&msg);
            if !in_order && record.compressed(&msg) {
                record.pending.flags |= ServerToAgentFlags::ReportFullState as u64;
            }
            // opamp-go sends custom capabilities in its first WebSocket reply and in every
            // HTTP reply; so does this server.
            let reply = record.compose(default_config.as_ref(), true, is_http || first_contact);
            self.rekey(&mut state, uid);
            reply
        };
        self.changed();
        reply
    }

    /// After an AgentIdentification went out, the record lives under the new uid.
    pub(crate) fn rekey(&self, state: &mut ServerState, uid: Uuid) {
        let new = state
            .agents
            .get_mut(&uid)
            .and_then(|r| r.pending.new_uid.take());
        if let Some(new) = new
            && let Some(mut record) = state.agents.remove(&uid)
        {
            record.instance_uid = new;
            state.agents.insert(new, record);
        }
    }

    /// Changes what is pending for an agent; a WebSocket agent gets it at once.
    pub(crate) fn push(
        &self,
        uid: Uuid,
        change: impl FnOnce(&mut AgentRecord),
    ) -> Result<(), String> {
        {
            let mut state = self.lock();
            let default_config = state.default_config.clone();
            let record = state
                .agents
                .get_mut(&uid)
                .ok_or_else(|| format!("no agent {uid}"))?;
            change(record);
            if let Some((_, tx)) = record.conn.clone() {
                // Custom messages go one per ServerToAgent.
                while let Some(msg) = record.compose(default_config.as_ref(), false, false) {
                    if tx.send(Outgoing::Message(Box::new(msg))).is_err() {
                        break;
                    }
                    if record.pending.custom.is_empty() {
                        break;
                    }
                }
                self.rekey(&mut state, uid);
            }
        }
        self.changed();
        Ok(())
    }

    pub(crate) fn send_raw(&self, uid: Uuid, data: Vec<u8>) -> Result<(), String> {
        let state = self.lock();
        let record = state
            .agents
            .get(&uid)
            .ok_or_else(|| format!("no agent {uid}"))?;
        let (_, tx) = record
            .conn
            .as_ref()
            .ok_or_else(|| format!("agent {uid} has no WebSocket connection"))?;
        tx.send(Outgoing::Raw(data))
            .map_err(|_| format!("agent {uid}'s connection is gone"))
    }

    /// The WebSocket connection `conn_id` ended.
    pub(crate) fn unbind(&self, conn_id: u64) {
        let mut state = self.lock();
        for record in state.agents.values_mut() {
            if record.conn.as_ref().is_some_and(|(id, _)| *id == conn_id) {
                record.conn = None;
            }
        }
    }
}

/// Test hooks on a record, used by `TestServer`'s methods.
impl AgentRecord {
    pub(crate) fn offer(&mut self, config: AgentRemoteConfig) {
        self.remote_config = Some(config);
        self.pending.force_config = true;
    }

    pub(crate) fn ask_full_state(&mut self) {
        self.pending.flags |= ServerToAgentFlags::ReportFullState as u64;
    }

    pub(crate) fn queue_custom(&mut self, msg: CustomMessage) {
        self.pending.custom.push_back(msg);
    }

    pub(crate) fn assign_uid(&mut self, new: Uuid) {
        self.pending.new_uid = Some(new);
    }

    pub(crate) fn offer_own_metrics(&mut self, settings: TelemetryConnectionSettings) {
        let hash = settings.encode_to_vec();
        self.pending.connection_settings = Some(ConnectionSettingsOffers {
            hash: Bytes::from(hash),
            own_metrics: Some(settings),
            ..ConnectionSettingsOffers::default()
        });
    }

    pub(crate) fn lose_next(&mut self) {
        self.pending.lose_next = true;
    }

    pub(crate) fn unavailable(&mut self, retry_after: Duration) {
        self.pending.unavailable = Some(retry_after);
    }
}
