//! Helpers of `delivery.rs`: OTLP sinks (gRPC, HTTP, TLS) that can be stopped and started
//! again on the same port while keeping one record of what arrived, can answer slowly or
//! reject "poison" records, and agent configs for the delivery scenarios.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// What every incarnation of a sink received, by `seq` attribute.
#[derive(Default)]
pub struct Recorder {
    /// How many times each seq arrived (index = seq).
    counts: Mutex<Vec<u32>>,
    /// Requests rejected for holding a poison record.
    pub poison_requests: AtomicUsize,
    /// `content-type content-encoding` of each HTTP request seen.
    pub http_formats: Mutex<BTreeSet<String>>,
}

impl Recorder {
    /// Records the request's seqs; `false` (and nothing recorded) if it holds a record
    /// whose body mentions "poison".
    fn accept(&self, request: &ExportLogsServiceRequest) -> bool {
        let records = request
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records);
        let mut seqs = Vec::new();
        for record in records {
            if let Some(Any::StringValue(body)) =
                record.body.as_ref().and_then(|b| b.value.as_ref())
                && body.contains("poison")
            {
                self.poison_requests.fetch_add(1, Ordering::SeqCst);
                return false;
            }
            let seq = record
                .attributes
                .iter()
                .find(|kv| kv.key == "seq")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Any::IntValue(i) => usize::try_from(*i).ok(),
                    _ => None,
                });
            seqs.push(seq.expect("every test line has an integer seq"));
        }
        let mut counts = self.counts.lock().unwrap();
        for seq in seqs {
            if counts.len() <= seq {
                counts.resize(seq + 1, 0);
            }
            counts[seq] += 1;
        }
        true
    }

    /// How many distinct seqs arrived.
    pub fn distinct(&self) -> usize {
        self.counts
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c > 0)
            .count()
    }

    /// Records that arrived more than once (extra copies).
    pub fn duplicates(&self) -> usize {
        let counts = self.counts.lock().unwrap();
        counts.iter().map(|c| c.saturating_sub(1) as usize).sum()
    }

    /// The seqs below `n` that never arrived.
    pub fn missing(&self, n: usize) -> Vec<usize> {
        let counts = self.counts.lock().unwrap();
        (0..n)
            .filter(|&s| counts.get(s).is_none_or(|c| *c == 0))
            .collect()
    }

    /// Waits until `n` distinct seqs arrived; panics after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.distinct() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} records within {timeout:?}, got {}",
                self.distinct()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How a sink answers.
#[derive(Clone, Copy, Default)]
pub struct Behavior {
    /// Wait this long before answering each request.
    pub delay: Duration,
    /// Reject requests holding a poison record: gRPC INVALID_ARGUMENT, HTTP 400.
    pub reject_poison: bool,
}

#[derive(Clone)]
struct GrpcService {
    recorder: Arc<Recorder>,
    behavior: Behavior,
}

#[tonic::async_trait]
impl LogsService for GrpcService {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        if !self.behavior.delay.is_zero() {
            tokio::time::sleep(self.behavior.delay).await;
        }
        let request = request.into_inner();
        if !self.recorder.accept(&request) && self.behavior.reject_poison {
            return Err(Status::invalid_argument("a poison record"));
        }
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

#[derive(Clone)]
struct HttpState {
    recorder: Arc<Recorder>,
    behavior: Behavior,
}

/// `POST /v1/logs` as an OTLP/HTTP server decodes it.
async fn http_export(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, encoding) = (header("content-type"), header("content-encoding"));
    state
        .recorder
        .http_formats
        .lock()
        .unwrap()
        .insert(format!("{content_type} {encoding}").trim().to_owned());
    let raw = match encoding.as_str() {
        "gzip" => {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(body.as_ref())
                .read_to_end(&mut out)
                .is_err()
            {
                return (StatusCode::BAD_REQUEST, "bad gzip").into_response();
            }
            out
        }
        "" => body.to_vec(),
        _ => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "encoding").into_response(),
    };
    let request: Result<ExportLogsServiceRequest, String> = if content_type == "application/json" {
        serde_json::from_slice(&raw).map_err(|e| e.to_string())
    } else {
        ExportLogsServiceRequest::decode(raw.as_slice()).map_err(|e| e.to_string())
    };
    let request = match request {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    if !state.behavior.delay.is_zero() {
        tokio::time::sleep(state.behavior.delay).await;
    }
    if !state.recorder.accept(&request) && state.behavior.reject_poison {
        let status = r#"{"code":3,"message":"a poison record"}"#;
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            status,
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        Vec::new(),
    )
        .into_response()
}

#[derive(Clone, Copy)]
pub enum Protocol {
    Grpc,
    Http,
}

/// A sink on its own thread and runtime; dropping or [`Sink::stop`] stops it gracefully.
pub struct Sink {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    /// Starts a sink on `addr` (port 0: any free port) that adds to `recorder`.
    pub fn start(
        protocol: Protocol,
        addr: SocketAddr,
        recorder: Arc<Recorder>,
        behavior: Behavior,
        tls: Option<ServerTlsConfig>,
    ) -> Sink {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind(addr).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let stopped = async {
                    let _ = stop_rx.await;
                };
                match protocol {
                    Protocol::Grpc => {
                        let service = GrpcService { recorder, behavior };
                        let mut builder = Server::builder();
                        if let Some(tls) = tls {
                            builder = builder.tls_config(tls).unwrap();
                        }
                        builder
                            .add_service(
                                LogsServiceServer::new(service)
                                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                                    .max_decoding_message_size(64 << 20),
                            )
                            .serve_with_incoming_shutdown(TcpIncoming::from(listener), stopped)
                            .await
                            .unwrap();
                    }
                    Protocol::Http => {
                        let state = HttpState { recorder, behavior };
                        let router = axum::Router::new()
                            .route("/v1/logs", axum::routing::post(http_export))
                            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
                            .with_state(state);
                        axum::serve(listener, router)
                            .with_graceful_shutdown(stopped)
                            .await
                            .unwrap();
                    }
                }
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("sink started");
        Sink {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A port nothing listens on, for a backend that is down from the start.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Appends `count` JSON lines numbered from `from` whose message is `"<word> <seq>"`,
/// creating the file and its directory if needed.
pub fn append_lines(path: &Path, from: usize, count: usize, word: &str) {
    let mut text = String::with_capacity(count * 100);
    for seq in from..from + count {
        text.push_str(&format!(
            "{{\"time\":\"2026-11-25T08:00:{:02}.{:03}Z\",\"level\":\"info\",\"seq\":{seq},\"msg\":\"{word} {seq}\"}}\n",
            seq % 60,
            seq % 1000,
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A value from `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`); 0 if unreadable.
pub fn proc_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// An agent config: filelog on `<dir>/logs/*.log` (checkpoints in `<dir>/checkpoints`
/// unless `checkpoints` is false) with the JSON operators, a batch processor of
/// `batch_size`, and one exporter `id` whose settings are `exporter` (YAML indented by
/// four spaces). `<dir>/queue` is a second `file_storage` extension, `file_storage/queue`.
pub fn config(
    dir: &Path,
    checkpoints: bool,
    batch_size: usize,
    id: &str,
    exporter: &str,
) -> String {
    let dirs: Vec<PathBuf> = ["logs", "checkpoints", "queue"]
        .iter()
        .map(|d| dir.join(d))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let storage = if checkpoints {
        "\n    storage: file_storage"
    } else {
        ""
    };
    format!(
        r#"
extensions:
  file_storage:
    directory: {checkpoint_dir}
  file_storage/queue:
    directory: {queue_dir}
receivers:
  filelog:
    include: ["{logs}/*.log"]
    start_at: beginning
    poll_interval: 50ms{storage}
    operators: {operators}
processors:
  batch:
    timeout: 50ms
    send_batch_size: {batch_size}
    send_batch_max_size: {batch_size}
exporters:
  {id}:
{exporter}
service:
  extensions: [file_storage, file_storage/queue]
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [{id}]
"#,
        logs = dirs[0].display(),
        checkpoint_dir = dirs[1].display(),
        queue_dir = dirs[2].display(),
        operators = super::common::JSON_OPERATORS,
    )
}

/// A throwaway CA and a server certificate it signed for 127.0.0.1; the CA's PEM is written
/// to `<dir>/ca.pem`, and an unrelated CA's to `<dir>/other-ca.pem`.
pub struct TestCa {
    pub ca_file: PathBuf,
    pub other_ca_file: PathBuf,
    cert_pem: String,
    key_pem: String,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = KeyPair::generate().unwrap();
            let pem = params.self_signed(&key).unwrap().pem();
            (pem, Issuer::new(params, key))
        };
        let (ca_pem, issuer) = ca("delivery test CA");
        let (other_pem, _) = ca("some other CA");
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let ca_file = dir.join("ca.pem");
        let other_ca_file = dir.join("other-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        std::fs::write(&other_ca_file, other_pem).unwrap();
        TestCa {
            ca_file,
            other_ca_file,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }
}

/// `text` without ANSI colour sequences (the agent's log colours field names).
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
