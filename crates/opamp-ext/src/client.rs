//! The OpAMP client task: connects, reports, handles what the server sends, applies remote
//! configs through [`AgentControl`], reconnects with backoff, and says goodbye.
//!
//! One task owns all protocol state, so nothing here needs a lock. Work that may take long
//! (applying a config, taking a snapshot) runs in its own task and reports back through a
//! channel, so the connection keeps being served meanwhile (heartbeats, pushes).

use crate::backoff::BackoffState;
use crate::config::{OpampConfig, Transport};
use crate::control::AgentControl;
use crate::description::describe;
use crate::own_metrics::{self, Destination, Target};
use crate::proto::{
    AgentDescription, AgentRemoteConfig, ConnectionSettingsOffers, CustomCapabilities,
    CustomMessage, ServerErrorResponseType, ServerToAgent, ServerToAgentFlags,
    server_error_response,
};
use crate::protocol::{Reporter, SNAPSHOT_CAPABILITY, Status, capability_bits, effective_config};
use crate::remote_config::{Job, Offer, RemoteConfigMachine};
use crate::snapshot;
use crate::state::StateStore;
use crate::transport::{Connection, Connector, TransportError};
use bytes::Bytes;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

/// How long shutdown waits for the goodbye (AgentDisconnect and close) to go out.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// The running client. Call [`OpampHandle::shutdown`] to stop it: it sends AgentDisconnect
/// and waits for the goodbye. Dropping the handle stops the client too, but nothing waits
/// for its goodbye.
pub struct OpampHandle {
    shutdown: CancellationToken,
    changed: Arc<Notify>,
    task: JoinHandle<()>,
    _stop_on_drop: DropGuard,
}

/// Tells the client that the effective config or the health changed. Cheap to clone and
/// to call often: calls between two reports are merged into one.
#[derive(Clone)]
pub struct ChangeNotifier(Arc<Notify>);

impl ChangeNotifier {
    pub fn notify_changed(&self) {
        self.0.notify_one();
    }
}

impl OpampHandle {
    /// The effective config or health changed: report what differs from the last report.
    pub fn notify_changed(&self) {
        self.changed.notify_one();
    }

    /// A clonable notifier to hand to the parts of the agent that change health or config.
    /// Once the client stopped, notifying does nothing.
    pub fn notifier(&self) -> ChangeNotifier {
        ChangeNotifier(self.changed.clone())
    }

    /// Sends AgentDisconnect (when connected), closes the connection and stops the task.
    /// Bounded: gives up after a few seconds if the server doesn't cooperate.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let mut task = self.task;
        if tokio::time::timeout(GOODBYE_TIMEOUT * 2, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Starts the OpAMP client on the current Tokio runtime.
///
/// `state_dir` holds the instance UID and the last good remote config (created if
/// missing); pass the same directory to [`crate::last_remote_config`] at start-up.
/// Fails only on local problems (no runtime, unusable state dir or TLS files); an
/// unreachable server is retried in the background.
pub fn start(
    config: OpampConfig,
    state_dir: PathBuf,
    control: Arc<dyn AgentControl>,
) -> Result<OpampHandle, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "the OpAMP client must be started inside a Tokio runtime".to_owned())?;
    let mut store = StateStore::open(&state_dir)?;
    let uid = match (config.instance_uid, store.instance_uid()) {
        (Some(pinned), _) => pinned,
        (None, Some(saved)) => saved,
        (None, None) => {
            let uid = Uuid::now_v7();
            store.set_instance_uid(uid)?;
            uid
        }
    };
    let connector = Connector::new(&config.server)?;
    if config.capabilities.accepts_remote_config && config.allow == Default::default() {
        tracing::warn!(
            "OpAMP remote config is accepted without a `remote_config.allow` policy: the server may make this agent read any file and send it anywhere"
        );
    }
    let remote = RemoteConfigMachine::new(config.allow.clone(), store.remote_status());
    let shutdown = CancellationToken::new();
    let description = describe(uid, &config.non_identifying_attributes);
    let own_metrics = config.capabilities.reports_own_metrics.then(|| {
        let destination = store.own_metrics().and_then(|offer| {
            Destination::from_offer(&offer)
                .inspect_err(|e| tracing::error!(error = %e, "ignoring the persisted own_metrics destination"))
                .ok()
                .map(Arc::new)
        });
        let target = Target {
            destination,
            resource: own_metrics::resource(&description),
        };
        own_metrics::spawn(
            control.clone(),
            config.own_metrics_interval,
            target,
            shutdown.clone(),
        )
    });
    let changed = Arc::new(Notify::new());
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let runner = Runner {
        reporter: Reporter::new(uid, capability_bits(&config.capabilities)),
        description,
        own_metrics,
        connection_settings_hash: Bytes::new(),
        backoff: BackoffState::new(config.reconnect),
        config,
        control,
        connector,
        store,
        remote,
        shutdown: shutdown.clone(),
        changed: changed.clone(),
        done_tx,
        done_rx,
        outbox: VecDeque::new(),
        apply_deadline: None,
        to_start: None,
        last_send: Instant::now(),
    };
    tracing::info!(instance_uid = %uid, "OpAMP client starting");
    let task = runtime.spawn(runner.run());
    Ok(OpampHandle {
        _stop_on_drop: shutdown.clone().drop_guard(),
        shutdown,
        changed,
        task,
    })
}

/// Work finished outside the client task.
enum Done {
    Applied {
        hash: Bytes,
        yaml: String,
        result: Result<(), String>,
    },
    Snapshot(CustomMessage),
}

enum Event {
    Shutdown,
    Changed,
    Done(Done),
    ApplyDeadline,
    /// Heartbeat / HTTP poll time, or the end of a reconnect wait.
    Timer,
    Server(Result<Box<ServerToAgent>, TransportError>),
}

/// Why a connection ended.
enum End {
    Shutdown,
    /// Reconnect after this long.
    Retry(Duration),
}

struct Runner {
    config: OpampConfig,
    control: Arc<dyn AgentControl>,
    connector: Connector,
    store: StateStore,
    reporter: Reporter,
    description: AgentDescription,
    remote: RemoteConfigMachine,
    /// Where own metrics go; `None` unless ReportsOwnMetrics is declared.
    own_metrics: Option<watch::Sender<Target>>,
    /// The last `ConnectionSettingsOffers.hash` handled (offers with it are skipped).
    connection_settings_hash: Bytes,
    backoff: BackoffState,
    shutdown: CancellationToken,
    changed: Arc<Notify>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Custom messages to send, one per AgentToServer.
    outbox: VecDeque<CustomMessage>,
    /// When the running apply is reported as timed out.
    apply_deadline: Option<Instant>,
    /// An accepted offer, started once its APPLYING status went out.
    to_start: Option<Job>,
    last_send: Instant,
}

impl Runner {
    async fn run(mut self) {
        let mut delay = Duration::ZERO;
        loop {
            if !delay.is_zero() && !self.wait(delay).await {
                return;
            }
            let connecting = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                c = self.connector.connect() => c,
            };
            let conn = match connecting {
                Ok(conn) => conn,
                Err(e) => {
                    delay = self.delay_after(&e);
                    tracing::warn!(error = ?e, retry_in = ?delay, "OpAMP connect failed");
                    continue;
                }
            };
            match self.session(conn).await {
                End::Shutdown => return,
                End::Retry(d) => delay = d,
            }
        }
    }

    fn delay_after(&mut self, error: &TransportError) -> Duration {
        match error {
            TransportError::Throttled {
                retry_after: Some(after),
                ..
            } => self.backoff.after_server_asked(*after),
            _ => self.backoff.next_delay(),
        }
    }

    /// Waits while disconnected, still finishing applies and snapshots. False on shutdown.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            self.start_pending_apply();
            match self.next_event(None, Some(until)).await {
                Event::Shutdown => return false,
                Event::Timer => return true,
                // Reported in full on the next connection.
                Event::Changed | Event::Server(_) => {}
                Event::Done(done) => self.on_done(done),
                Event::ApplyDeadline => self.on_apply_deadline(),
            }
        }
    }

    /// Serves one connection until it fails, the server asks to back off, or shutdown.
    async fn session(&mut self, mut conn: Connection) -> End {
        // The first message after connecting is a full status report.
        self.reporter.request_full();
        if let Err(e) = self.flush(&mut conn, true).await {
            return self.lost(e);
        }
        loop {
            // Started only now, after the report carrying its APPLYING status went out.
            self.start_pending_apply();
            let beat = self.beat_interval().map(|i| self.last_send + i);
            let event = self.next_event(Some(&mut conn), beat).await;
            let sent = match event {
                Event::Shutdown => {
                    self.goodbye(conn).await;
                    return End::Shutdown;
                }
                Event::Server(Err(e)) => return self.lost(e),
                Event::Server(Ok(msg)) => {
                    self.backoff.reset();
                    if let Some(end) = self.on_server(*msg) {
                        // WebSocket: AgentDisconnect and a close before reconnecting, as
                        // the spec asks. HTTP has no connection to close, and an
                        // overloaded server needs no extra request.
                        if conn.is_websocket() {
                            self.goodbye(conn).await;
                        }
                        return end;
                    }
                    self.flush(&mut conn, false).await
                }
                Event::Changed => self.flush(&mut conn, false).await,
                Event::Timer => self.flush(&mut conn, true).await,
                Event::Done(done) => {
                    self.on_done(done);
                    self.flush(&mut conn, false).await
                }
                Event::ApplyDeadline => {
                    self.on_apply_deadline();
                    self.flush(&mut conn, false).await
                }
            };
            if let Err(e) = sent {
                return self.lost(e);
            }
        }
    }

    fn lost(&mut self, error: TransportError) -> End {
        let delay = self.delay_after(&error);
        tracing::warn!(error = ?error, retry_in = ?delay, "OpAMP connection lost");
        End::Retry(delay)
    }

    async fn next_event(&mut self, conn: Option<&mut Connection>, timer: Option<Instant>) -> Event {
        let deadline = self.apply_deadline;
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Event::Shutdown,
            Some(done) = self.done_rx.recv() => Event::Done(done),
            msg = async {
                match conn {
                    Some(c) => c.recv().await,
                    None => std::future::pending().await,
                }
            } => Event::Server(msg.map(Box::new)),
            _ = self.changed.notified() => Event::Changed,
            _ = sleep_until(deadline) => Event::ApplyDeadline,
            _ = sleep_until(timer) => Event::Timer,
        }
    }

    /// WebSocket: heartbeats if declared and not disabled. HTTP: the polling interval.
    fn beat_interval(&self) -> Option<Duration> {
        match self.config.server.transport {
            Transport::Http { polling_interval } => Some(polling_interval),
            Transport::WebSocket => (self.config.capabilities.reports_heartbeat
                && !self.config.heartbeat_interval.is_zero())
            .then_some(self.config.heartbeat_interval),
        }
    }

    fn status(&self) -> Status {
        let caps = &self.config.capabilities;
        Status {
            description: Some(self.description.clone()),
            effective_config: caps
                .reports_effective_config
                .then(|| effective_config(self.control.effective_config())),
            health: caps
                .reports_health
                .then(|| self.control.health().to_proto()),
            remote_config_status: caps
                .reports_remote_config
                .then(|| self.remote.status().clone()),
            custom_capabilities: caps.snapshot.then(|| CustomCapabilities {
                capabilities: vec![SNAPSHOT_CAPABILITY.into()],
            }),
        }
    }

    /// Sends what changed (or a bare message when `force`), then any queued custom
    /// messages. Only a lost connection is an error; a message the server refused for good
    /// is dropped.
    async fn flush(
        &mut self,
        conn: &mut Connection,
        mut force: bool,
    ) -> Result<(), TransportError> {
        loop {
            let custom = self.outbox.pop_front();
            let Some(msg) = self.reporter.report(self.status(), custom, force) else {
                return Ok(());
            };
            force = false;
            self.last_send = Instant::now();
            match conn.send(&msg).await {
                Ok(()) => {}
                Err(TransportError::Rejected(why)) => {
                    tracing::error!(%why, "OpAMP message dropped")
                }
                Err(e) => return Err(e),
            }
            if self.outbox.is_empty() {
                return Ok(());
            }
        }
    }

    /// AgentDisconnect, then close. Bounded, errors only logged: we are leaving anyway.
    async fn goodbye(&mut self, mut conn: Connection) {
        let msg = self.reporter.disconnect();
        match tokio::time::timeout(GOODBYE_TIMEOUT, conn.send(&msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = ?e, "AgentDisconnect not delivered"),
            Err(_) => tracing::debug!("AgentDisconnect timed out"),
        }
        conn.close().await;
    }

    /// Handles one server message; `Some` when the connection must end.
    fn on_server(&mut self, msg: ServerToAgent) -> Option<End> {
        let uid = self.reporter.uid();
        // Empty means "this connection's agent" (opamp-go's UI pushes leave it empty).
        if !msg.instance_uid.is_empty() && msg.instance_uid.as_ref() != uid.as_bytes() {
            tracing::debug!("ignoring a server message for another instance uid");
            return None;
        }
        if let Some(err) = msg.error_response {
            let kind = ServerErrorResponseType::try_from(err.r#type)
                .unwrap_or(ServerErrorResponseType::Unknown);
            if kind == ServerErrorResponseType::Unavailable {
                let delay = match err.details {
                    Some(server_error_response::Details::RetryInfo(info)) => self
                        .backoff
                        .after_server_asked(Duration::from_nanos(info.retry_after_nanoseconds)),
                    None => self.backoff.next_delay(),
                };
                tracing::warn!(message = %err.error_message, retry_in = ?delay, "OpAMP server unavailable");
                return Some(End::Retry(delay));
            }
            // BadRequest: the message is not resent (it would be refused again).
            tracing::warn!(kind = ?kind, message = %err.error_message, "OpAMP server reported an error");
            return None;
        }
        if msg.flags & ServerToAgentFlags::ReportFullState as u64 != 0 {
            self.reporter.request_full();
        }
        if let Some(id) = msg.agent_identification {
            self.adopt_uid(&id.new_instance_uid);
        }
        if let Some(offers) = msg.connection_settings {
            self.on_connection_settings(offers);
        }
        if let Some(offer) = msg.remote_config {
            if self.config.capabilities.accepts_remote_config {
                self.on_offer(offer);
            } else {
                tracing::debug!("ignoring a remote config: accepts_remote_config is off");
            }
        }
        if let Some(custom) = msg.custom_message {
            if self.config.capabilities.snapshot && snapshot::is_request(&custom) {
                let control = self.control.clone();
                let tx = self.done_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let reply = snapshot::answer(control.as_ref(), &custom);
                    // The receiver lives as long as the client; after it, nobody needs it.
                    let _ = tx.send(Done::Snapshot(reply));
                });
            } else {
                tracing::debug!(capability = %custom.capability, kind = %custom.r#type, "ignoring a custom message");
            }
        }
        if msg.command.is_some() {
            tracing::debug!("ignoring a command: AcceptsRestartCommand is not declared");
        }
        None
    }

    fn adopt_uid(&mut self, raw: &[u8]) {
        let Ok(new) = Uuid::from_slice(raw) else {
            tracing::warn!(
                len = raw.len(),
                "ignoring a server-assigned instance uid that is not 16 bytes"
            );
            return;
        };
        if new == self.reporter.uid() {
            return;
        }
        tracing::info!(old = %self.reporter.uid(), new = %new, "OpAMP server assigned a new instance uid");
        self.reporter.set_uid(new);
        self.description = describe(new, &self.config.non_identifying_attributes);
        if let Some(tx) = &self.own_metrics {
            let resource = own_metrics::resource(&self.description);
            tx.send_modify(|t| t.resource = resource);
        }
        if let Err(e) = self.store.set_instance_uid(new) {
            tracing::error!(error = %e, "cannot persist the new instance uid");
        }
    }

    /// Own metrics is the one offer acted on; an unset `own_metrics` keeps the current
    /// destination, and a bad one is refused (logged) while the current one stays.
    fn on_connection_settings(&mut self, offers: ConnectionSettingsOffers) {
        if !offers.hash.is_empty() && offers.hash == self.connection_settings_hash {
            return;
        }
        self.connection_settings_hash = offers.hash;
        let (Some(tx), Some(offer)) = (&self.own_metrics, offers.own_metrics) else {
            return;
        };
        match Destination::from_offer(&offer) {
            Ok(destination) => {
                tracing::info!(endpoint = %offer.destination_endpoint, "sending own metrics where the OpAMP server offered");
                tx.send_modify(|t| t.destination = Some(Arc::new(destination)));
                if let Err(e) = self.store.set_own_metrics(&offer) {
                    tracing::error!(error = %e, "cannot persist the own_metrics destination");
                }
            }
            Err(e) => tracing::error!(error = %e, "refusing the offered own_metrics destination"),
        }
    }

    fn on_offer(&mut self, offer: AgentRemoteConfig) {
        match self.remote.offer(offer) {
            Offer::Ignored => tracing::debug!("remote config unchanged (same hash)"),
            Offer::Queued => {
                tracing::info!("remote config received; it follows the one being applied")
            }
            Offer::Refused => self.persist_failure(),
            Offer::Start(job) => self.to_start = Some(job),
        }
    }

    fn persist_failure(&mut self) {
        let status = self.remote.status().clone();
        tracing::warn!(reason = %status.error_message, "remote config refused");
        if let Err(e) = self
            .store
            .record_failed(&status.last_remote_config_hash, &status.error_message)
        {
            tracing::error!(error = %e, "cannot persist the remote config status");
        }
    }

    /// Hands an accepted config to the agent. The agent's future runs in its own task (a
    /// panic in it becomes a FAILED status instead of a stuck APPLYING).
    fn start_pending_apply(&mut self) {
        let Some(job) = self.to_start.take() else {
            return;
        };
        tracing::info!(hash = %hex::encode(&job.hash), "applying a remote config");
        let applying = tokio::spawn(self.control.apply_remote_config(&job.yaml));
        let tx = self.done_tx.clone();
        tokio::spawn(async move {
            let result = applying
                .await
                .unwrap_or_else(|e| Err(format!("applying the config failed: {e}")));
            // The receiver lives as long as the client; after it, nobody needs it.
            let _ = tx.send(Done::Applied {
                hash: job.hash,
                yaml: job.yaml,
                result,
            });
        });
        self.apply_deadline = Some(Instant::now() + self.config.config_apply_timeout);
    }

    fn on_apply_deadline(&mut self) {
        self.apply_deadline = None;
        self.remote.timed_out(self.config.config_apply_timeout);
        self.persist_failure();
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Snapshot(reply) => self.outbox.push_back(reply),
            Done::Applied { hash, yaml, result } => {
                self.apply_deadline = None;
                self.remote.finished(hash.clone(), &result);
                match &result {
                    Ok(()) => {
                        tracing::info!(hash = %hex::encode(&hash), "remote config applied");
                        if let Err(e) = self.store.record_applied(&hash, &yaml) {
                            tracing::error!(error = %e, "cannot persist the applied remote config");
                        }
                    }
                    Err(_) => self.persist_failure(),
                }
                if let Some(next) = self.remote.next_queued() {
                    match next {
                        Offer::Start(job) => self.to_start = Some(job),
                        Offer::Refused => self.persist_failure(),
                        Offer::Ignored | Offer::Queued => {}
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
