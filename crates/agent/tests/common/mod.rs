//! Test harness: the real `centimane` binary as a child process, and an OTLP/gRPC
//! `LogsService` sink on 127.0.0.1 that records what arrives.

#![allow(dead_code)] // each test file uses a different part of the harness

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

pub const BIN: &str = env!("CARGO_BIN_EXE_centimane");

/// A record as received, flattened with its resource attributes.
#[derive(Debug, Clone)]
pub struct Received {
    pub record: LogRecord,
    pub resource: HashMap<String, String>,
}

impl Received {
    pub fn body(&self) -> String {
        text(self.record.body.as_ref().and_then(|b| b.value.as_ref()))
    }

    pub fn attr(&self, key: &str) -> Option<String> {
        self.record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
    }
}

fn text(v: Option<&Any>) -> String {
    match v {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

#[derive(Clone, Default)]
struct SinkService {
    received: Arc<Mutex<Vec<Received>>>,
    /// Compact mode: only bodies are kept (for tests of millions of records).
    bodies_only: bool,
    bodies: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<usize>>,
}

#[tonic::async_trait]
impl LogsService for SinkService {
    async fn export(
        &self,
        req: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        *self.requests.lock().unwrap() += 1;
        if self.bodies_only {
            let mut bodies = self.bodies.lock().unwrap();
            for rl in req.into_inner().resource_logs {
                for sl in rl.scope_logs {
                    for r in sl.log_records {
                        bodies.push(text(r.body.as_ref().and_then(|b| b.value.as_ref())));
                    }
                }
            }
            return Ok(Response::new(ExportLogsServiceResponse {
                partial_success: None,
            }));
        }
        let mut got = self.received.lock().unwrap();
        for rl in req.into_inner().resource_logs {
            let resource: HashMap<String, String> = rl
                .resource
                .map(|r| {
                    r.attributes
                        .into_iter()
                        .map(|kv| {
                            (
                                kv.key,
                                text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            for sl in rl.scope_logs {
                for record in sl.log_records {
                    got.push(Received {
                        record,
                        resource: resource.clone(),
                    });
                }
            }
        }
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC sink on its own runtime thread.
pub struct Sink {
    pub addr: SocketAddr,
    service: SinkService,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    /// Starts a sink on a free port.
    pub fn start() -> Sink {
        Sink::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Starts a sink that keeps only bodies (`bodies()`), for very many records.
    pub fn start_compact() -> Sink {
        Sink::start_with("127.0.0.1:0".parse().unwrap(), true)
    }

    /// Starts a sink on the given address (to bring a "down" backend up).
    pub fn start_on(addr: SocketAddr) -> Sink {
        Sink::start_with(addr, false)
    }

    fn start_with(addr: SocketAddr, bodies_only: bool) -> Sink {
        let service = SinkService {
            bodies_only,
            ..SinkService::default()
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let svc = service.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind(addr).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                Server::builder()
                    .add_service(
                        LogsServiceServer::new(svc)
                            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                            .max_decoding_message_size(64 << 20),
                    )
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("sink started");
        Sink {
            addr,
            service,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.service.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        if self.service.bodies_only {
            return self.service.bodies.lock().unwrap().len();
        }
        self.service.received.lock().unwrap().len()
    }

    /// The bodies received by a compact sink.
    pub fn bodies(&self) -> Vec<String> {
        self.service.bodies.lock().unwrap().clone()
    }

    /// Waits until at least `n` records arrived; panics with what did arrive after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count() >= n {
                return self.received();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "expected {n} records within {timeout:?}, got {}",
            self.count()
        );
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

/// A running agent.
pub struct Agent {
    child: Child,
    pub stderr_path: PathBuf,
}

impl Agent {
    /// Runs `centimane run --config <dir>/config.yaml` with `config` written there. The
    /// agent's stderr goes to `<dir>/agent-N.log`.
    pub fn start(dir: &Path, config: &str) -> Agent {
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let n = std::fs::read_dir(dir).unwrap().count();
        let stderr_path = dir.join(format!("agent-{n}.log"));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("agent starts");
        let agent = Agent { child, stderr_path };
        agent.wait_until_started();
        agent
    }

    /// Waits for the "centimane started" log line: signals sent before it would find no
    /// handler installed yet. Returns early if the agent exits (a config error).
    fn wait_until_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = self.log();
            if log.contains("centimane started") || log.contains("error") {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(30))
    }

    /// SIGKILL: no chance to flush or save.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "agent did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A config tailing `<dir>/logs/*.log` from the beginning into an OTLP exporter.
pub fn otlp_config(dir: &Path, endpoint: SocketAddr, operators: &str) -> String {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    format!(
        r#"
extensions:
  file_storage:
    directory: {storage}
receivers:
  filelog:
    include: ["{logs}/*.log"]
    start_at: beginning
    poll_interval: 50ms
    storage: file_storage
    operators: {operators}
processors:
  batch:
    timeout: 50ms
exporters:
  otlp:
    endpoint: http://{endpoint}
    timeout: 2s
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
service:
  extensions: [file_storage]
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlp]
"#,
        storage = storage.display(),
        logs = dir.join("logs").display(),
    )
}

/// Appends `lines` JSON lines `{"seq":N,...}` numbered from `from`.
pub fn append_json_lines(path: &Path, from: usize, count: usize) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for seq in from..from + count {
        text.push_str(&format!(
            "{{\"time\":\"2026-11-25T08:00:{:02}.{:03}Z\",\"level\":\"{}\",\"seq\":{seq},\"msg\":\"line {seq}\"}}\n",
            seq % 60,
            seq % 1000,
            if seq % 2 == 0 { "info" } else { "error" },
        ));
    }
    f.write_all(text.as_bytes()).unwrap();
}

pub const JSON_OPERATORS: &str = r#"
      - type: json_parser
        parse_ints: true
        timestamp:
          parse_from: attributes.time
          layout_type: gotime
          layout: "2006-01-02T15:04:05.000Z07:00"
        severity:
          parse_from: attributes.level
      - type: move
        from: attributes.msg
        to: body"#;

/// The `seq` attribute of every record, sorted, to check for loss and duplicates.
pub fn seqs(records: &[Received]) -> Vec<usize> {
    let mut s: Vec<usize> = records
        .iter()
        .map(|r| {
            r.attr("seq")
                .unwrap_or_default()
                .parse()
                .unwrap_or(usize::MAX)
        })
        .collect();
    s.sort_unstable();
    s
}

/// Asserts that `seqs` (sorted) is exactly `0..total`, reporting missing and repeated
/// numbers compactly instead of printing both lists.
pub fn assert_each_once(seqs: &[usize], total: usize, what: &str) {
    let mut counts = vec![0usize; total];
    let mut foreign = Vec::new();
    for &s in seqs {
        match counts.get_mut(s) {
            Some(c) => *c += 1,
            None => foreign.push(s),
        }
    }
    let missing: Vec<usize> = (0..total).filter(|&i| counts[i] == 0).collect();
    let repeated: Vec<usize> = (0..total).filter(|&i| counts[i] > 1).collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && foreign.is_empty(),
        "{what}: {} missing (first {:?}), {} repeated (first {:?}), {} never written (first {:?})",
        missing.len(),
        &missing[..missing.len().min(5)],
        repeated.len(),
        &repeated[..repeated.len().min(5)],
        foreign.len(),
        &foreign[..foreign.len().min(5)],
    );
}
