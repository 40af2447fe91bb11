//! The `otlp` receiver: OTLP logs over gRPC (`protocols.grpc`, default `localhost:4317`)
//! and HTTP (`protocols.http`, default `localhost:4318`, path `/v1/logs`), as the
//! Collector's since v0.104 (listening on every interface must be asked for).
//!
//! It works as a gateway with at-least-once delivery: a request is answered with success
//! only after its entries were acknowledged by every pipeline the receiver feeds; a
//! failure, a full pipeline past the request's deadline, or a shutdown answers with a
//! retryable status so the client sends again (see [`deliver`]). Nothing is buffered
//! beyond the pipelines' bounded channels. The operator chain of the receiver context is
//! not used: OTLP data arrives structured.
//!
//! Lifecycle: [`start`] binds the listeners (so a taken port is a start error) and serves
//! on the pipeline runtime. [`OtlpHandle::stop`] stops accepting connections, lets
//! requests in flight finish, and lets go of the pipeline channels so the pipelines can
//! drain; [`OtlpHandle::join`] waits for the servers to end (bounded by the drain timeout,
//! after which they are aborted).

mod config;
mod convert;
mod deliver;
mod grpc;
mod http;

pub use config::{GrpcConfig, HttpConfig, OtlpConfig};

use crate::Outputs;
use centimane_core::config::ComponentId;
use deliver::Gateway;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything an otlp receiver needs to run.
pub struct OtlpSetup {
    pub id: ComponentId,
    pub config: OtlpConfig,
    pub outputs: Outputs,
    pub runtime: tokio::runtime::Handle,
    /// How long `join` waits for the servers before aborting them.
    pub drain_timeout: Duration,
}

/// A running otlp receiver.
pub struct OtlpHandle {
    gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    /// Reports each server's end, so `join` can wait without a runtime.
    done: std::sync::mpsc::Receiver<()>,
    drain_timeout: Duration,
    /// The bound addresses (useful when the config asked for port 0).
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
}

impl OtlpHandle {
    /// Stops accepting new connections and requests; requests in flight still get their
    /// answer. The pipeline channels are released at once.
    pub fn stop(&self) {
        self.gateway.close();
        self.shutdown.send_replace(true);
    }

    /// Waits (blocking) for the servers to end, at most the drain timeout; servers still
    /// running then are aborted (their clients get a connection error and retry).
    pub fn join(self) {
        let deadline = std::time::Instant::now() + self.drain_timeout;
        for _ in 0..self.servers.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.done.recv_timeout(left).is_err() {
                tracing::warn!("otlp receiver: servers did not stop in time; closing them");
                break;
            }
        }
        for server in &self.servers {
            server.abort();
        }
    }
}

/// Binds the configured listeners and starts serving.
pub fn start(setup: OtlpSetup) -> Result<OtlpHandle, String> {
    let OtlpSetup {
        id,
        config,
        outputs,
        runtime,
        drain_timeout,
    } = setup;
    let _entered = runtime.enter();
    let gateway = Arc::new(Gateway::new(outputs));
    let (shutdown, _) = watch::channel(false);
    let (done_tx, done) = std::sync::mpsc::channel();
    let mut servers = Vec::new();
    let mut grpc_addr = None;
    let mut http_addr = None;

    if let Some(g) = &config.grpc {
        let listener = bind(&g.endpoint, "grpc")?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        grpc_addr = Some(addr);
        let service = grpc::LogsService::new(gateway.clone(), g.max_message_bytes());
        let signal = stopped(shutdown.subscribe());
        let done_tx = done_tx.clone();
        let task_id = id.clone();
        servers.push(runtime.spawn(async move {
            let result = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    service,
                    tonic::transport::server::TcpIncoming::from(listener),
                    signal,
                )
                .await;
            if let Err(e) = result {
                tracing::error!(receiver = %task_id, "otlp gRPC server failed: {e}");
            }
            let _ = done_tx.send(());
        }));
        tracing::info!(receiver = %id, %addr, "otlp receiver listening for gRPC");
    }

    if let Some(h) = &config.http {
        let listener = bind(&h.endpoint, "http")?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        http_addr = Some(addr);
        let router = http::router(gateway.clone(), h);
        let signal = stopped(shutdown.subscribe());
        let done_tx = done_tx.clone();
        let task_id = id.clone();
        servers.push(runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(receiver = %task_id, "otlp HTTP server failed: {e}");
            }
            let _ = done_tx.send(());
        }));
        tracing::info!(receiver = %id, %addr, path = %h.logs_url_path, "otlp receiver listening for HTTP");
    }

    Ok(OtlpHandle {
        gateway,
        shutdown,
        servers,
        done,
        drain_timeout,
        grpc_addr,
        http_addr,
    })
}

/// Binds `endpoint` now, so that a taken port fails the start rather than a later task.
fn bind(endpoint: &str, protocol: &str) -> Result<tokio::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(endpoint)
        .map_err(|e| format!("protocols.{protocol}: can't listen on {endpoint}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("protocols.{protocol}: {e}"))?;
    tokio::net::TcpListener::from_std(listener).map_err(|e| format!("protocols.{protocol}: {e}"))
}

/// Resolves once `stop` was called.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests;
