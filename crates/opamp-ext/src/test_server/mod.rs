//! A small OpAMP server for tests and the `opamp-test-server` binary: WebSocket and plain
//! HTTP on one port (path `/v1/opamp`), remembering each agent's last reported state and
//! able to push remote configs, ask for the full state, assign instance uids and exchange
//! custom messages.
//!
//! Unlike opamp-go's example server it keeps HTTP agents between polls, and it offers
//! config only to agents that declare AcceptsRemoteConfig.

mod http;
mod state;
mod ws;

pub use state::{AgentRecord, Received, ServerState, Via};

use crate::proto::{
    AgentConfigFile, AgentConfigMap, AgentRemoteConfig, AgentToServer, CustomMessage,
    TelemetryConnectionSettings,
};
use axum::http::HeaderMap;
use bytes::Bytes;
use state::Shared;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The OpAMP default path.
pub const PATH: &str = "/v1/opamp";

/// How long a new connection may take to send its request head.
const CLASSIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// A running test server. Stops when dropped (without waiting); [`TestServer::stop`]
/// waits until the port is free again.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    accept: Option<JoinHandle<()>>,
    http: Option<JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestServer {
    /// Listens on `addr` (use port 0 for any free port).
    pub async fn start(addr: SocketAddr) -> io::Result<TestServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new());
        let stop = CancellationToken::new();
        let (http_tx, http_rx) = mpsc::channel(64);
        let http = tokio::spawn({
            let router = http::router(shared.clone());
            let stop = stop.clone();
            async move {
                let listener = HttpConnections { rx: http_rx, addr };
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "test server HTTP side stopped");
                }
            }
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), stop.clone(), http_tx));
        Ok(TestServer {
            addr,
            shared,
            stop,
            accept: Some(accept),
            http: Some(http),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}{PATH}", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// A copy of everything the server knows.
    pub fn state(&self) -> ServerState {
        self.shared.lock().clone()
    }

    pub fn agent(&self, uid: Uuid) -> Option<AgentRecord> {
        self.shared.lock().agents.get(&uid).cloned()
    }

    /// Waits until `check` returns `Some`, re-checking after every change. The error names
    /// `what` and shows the state, so a failing test says what it waited for.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&ServerState) -> Option<T>,
    ) -> Result<T, String> {
        let mut changes = self.shared.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = check(&self.shared.lock()) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let state = self.state();
                let summary: Vec<String> = state.agents.values().map(summarize).collect();
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; agents: {summary:#?}"
                ));
            }
        }
    }

    /// Offers `config` to every agent that accepts remote config and has none of its own.
    pub fn set_default_config(&self, config: Option<AgentRemoteConfig>) {
        self.shared.lock().default_config = config;
        self.shared.changed();
    }

    /// Makes `config` this agent's config and offers it now (WebSocket) or in the next
    /// response (HTTP), even if the agent already reported its hash.
    pub fn push_config(&self, uid: Uuid, config: AgentRemoteConfig) -> Result<(), String> {
        self.shared.push(uid, |r| r.offer(config))
    }

    /// Offers `settings` as the agent's `own_metrics` destination (ConnectionSettingsOffers,
    /// with a hash of the settings).
    pub fn offer_own_metrics(
        &self,
        uid: Uuid,
        settings: TelemetryConnectionSettings,
    ) -> Result<(), String> {
        self.shared.push(uid, |r| r.offer_own_metrics(settings))
    }

    /// Sets ReportFullState in the next message to the agent.
    pub fn request_full_state(&self, uid: Uuid) -> Result<(), String> {
        self.shared.push(uid, AgentRecord::ask_full_state)
    }

    pub fn send_custom_message(&self, uid: Uuid, msg: CustomMessage) -> Result<(), String> {
        self.shared.push(uid, |r| r.queue_custom(msg))
    }

    /// Sends AgentIdentification with `new`; the record moves to the new uid.
    pub fn assign_instance_uid(&self, uid: Uuid, new: Uuid) -> Result<(), String> {
        self.shared.push(uid, |r| r.assign_uid(new))
    }

    /// The next message from this agent is dropped unseen, as if lost on the way.
    pub fn lose_next_message(&self, uid: Uuid) -> Result<(), String> {
        self.shared.push(uid, AgentRecord::lose_next)
    }

    /// Answers the agent's next message (or at once, on WebSocket) with ServerErrorResponse
    /// Unavailable carrying `retry_after`.
    pub fn reply_unavailable(&self, uid: Uuid, retry_after: Duration) -> Result<(), String> {
        self.shared.push(uid, |r| r.unavailable(retry_after))
    }

    /// Answers the next `count` HTTP requests and WebSocket upgrades with 503 and
    /// `Retry-After` (whole seconds).
    pub fn throttle(&self, count: u32, retry_after: Duration) {
        *self
            .shared
            .throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (count > 0).then_some((count, retry_after));
    }

    /// Sends raw bytes as one binary WebSocket message (e.g. a malformed one).
    pub fn send_raw(&self, uid: Uuid, data: Vec<u8>) -> Result<(), String> {
        self.shared.send_raw(uid, data)
    }

    /// Stops accepting, closes every connection, and returns once the port is free.
    pub async fn stop(mut self) {
        self.stop.cancel();
        for task in [self.accept.take(), self.http.take()].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// A config with one file `""` of YAML, its hash derived from the content (so the same
/// YAML always has the same hash).
pub fn yaml_config(yaml: &str) -> AgentRemoteConfig {
    let file = AgentConfigFile {
        body: Bytes::from(yaml.to_owned()),
        content_type: "text/yaml".into(),
    };
    let mut hash = Vec::with_capacity(16);
    for seed in [0xcbf2_9ce4_8422_2325u64, 0x6c62_272e_07bb_0142] {
        let mut h = seed;
        for byte in "text/yaml\0".bytes().chain(yaml.bytes()) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        hash.extend_from_slice(&h.to_be_bytes());
    }
    AgentRemoteConfig {
        config: Some(AgentConfigMap {
            config_map: [(String::new(), file)].into(),
        }),
        config_hash: Bytes::from(hash),
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    http: mpsc::Sender<(TcpStream, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "test server accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (shared, stop, http) = (shared.clone(), stop.clone(), http.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(CLASSIFY_TIMEOUT, is_websocket_upgrade(&stream)).await {
                Ok(Some(true)) => ws::serve(shared, stream, stop).await,
                Ok(Some(false)) => {
                    let _ = http.send((stream, peer)).await;
                }
                Ok(None) | Err(_) => {}
            }
        });
    }
}

/// Looks at the request head without consuming it: WebSocket upgrades and plain POSTs
/// share the port and path, and the `Upgrade` header tells them apart. `None` if the
/// peer closed before sending a head.
async fn is_websocket_upgrade(stream: &TcpStream) -> Option<bool> {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if let Some(end) = head.find("\r\n\r\n") {
            return Some(head[..end].lines().any(|line| {
                line.split_once(':').is_some_and(|(name, value)| {
                    name.trim() == "upgrade" && value.contains("websocket")
                })
            }));
        }
        if n == buf.len() {
            return Some(false);
        }
        // Only part of the head has arrived; peek again shortly.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Feeds the connections classified as plain HTTP to axum.
struct HttpConnections {
    rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for HttpConnections {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop ended: the server is stopping.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn log_message(msg: &AgentToServer, via: &str) {
    let uid = Uuid::from_slice(&msg.instance_uid)
        .map(|u| u.to_string())
        .unwrap_or_default();
    let status = msg.remote_config_status.as_ref().map(|s| {
        format!(
            "{} {}{}",
            hex::encode(&s.last_remote_config_hash),
            s.status,
            if s.error_message.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.error_message)
            }
        )
    });
    tracing::info!(
        via,
        %uid,
        seq = msg.sequence_num,
        capabilities = format!("{:#x}", msg.capabilities),
        description = msg.agent_description.is_some(),
        effective_config = msg.effective_config.is_some(),
        health = msg.health.as_ref().map(|h| h.healthy),
        remote_config_status = status.as_deref(),
        custom_message = msg.custom_message.as_ref().map(|c| c.r#type.as_str()),
        disconnect = msg.agent_disconnect.is_some(),
        "agent message"
    );
}

fn summarize(r: &AgentRecord) -> String {
    format!(
        "{} via {:?}: {} messages, last seq {:?}, caps {:#x}, description {}, effective config {}, health {:?}, remote config status {:?}, custom messages {}, disconnected {}",
        r.instance_uid,
        r.via,
        r.messages.len(),
        r.last_sequence_num,
        r.capabilities,
        r.description.is_some(),
        r.effective_config.is_some(),
        r.health.as_ref().map(|h| h.healthy),
        r.remote_config_status.as_ref().map(|s| (
            hex::encode(&s.last_remote_config_hash),
            s.status,
            s.error_message.clone()
        )),
        r.custom_messages.len(),
        r.disconnected,
    )
}
