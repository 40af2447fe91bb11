use super::*;
use crate::queue::SendingQueueConfig;
use crate::rpc::{ProtoAny, ProtoDuration, RETRY_INFO_TYPE, RetryInfo, RpcStatus};
use crate::test_support::{Acks, Pki, entry_with_all_fields};
use crate::{ExporterConfig, parse_config, spawn};
use centimane_core::SharedBatch;
use centimane_core::{AckStatus, Batch, Entry, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use prost::Message;
use serde_json::json;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response};

// ---- config ----

fn parse_otlp(config: serde_json::Value) -> Result<OtlpConfig, String> {
    match parse_config("otlp", config)? {
        ExporterConfig::Otlp(c) => Ok(c),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn config_defaults() {
    let c = parse_otlp(json!({"endpoint": "collector:4317"})).unwrap();
    assert_eq!(
        c,
        OtlpConfig {
            endpoint: "collector:4317".into(),
            tls: TlsConfig::default(),
            headers: Headers::default(),
            compression: Compression::Gzip,
            timeout: Duration::from_secs(5),
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
        }
    );
}

#[test]
fn config_everything() {
    let c = parse_otlp(json!({
        "endpoint": "localhost:4317",
        "tls": {"insecure": true},
        "headers": {"X-Scope-OrgID": "acme", "authorization": "Bearer s3cret"},
        "compression": "none",
        "timeout": "250ms",
        "retry_on_failure": {"enabled": false},
    }))
    .unwrap();
    assert!(c.tls.insecure);
    assert_eq!(c.compression, Compression::None);
    assert_eq!(c.timeout, Duration::from_millis(250));
    assert!(!c.retry_on_failure.enabled);
    assert_eq!(c.headers.0[0], ("X-Scope-OrgID".into(), "acme".into()));
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert_eq!(
        parse_otlp(json!({"endpoint": "h:1", "compression": "zstd"})).map(|c| c.compression),
        Ok(Compression::Zstd)
    );
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        (json!({}), "`endpoint` is required"),
        (json!({"endpoint": null}), "`endpoint` is required"),
        (json!({"endpoint": 4317}), "`endpoint`: invalid type"),
        (
            json!({"endpoint": "h:1", "endpont": "x"}),
            "unknown key `endpont`; did you mean `endpoint`?",
        ),
        (
            json!({"endpoint": "h:1", "sending_queue": {"blocking": true}}),
            "unknown key `sending_queue.blocking`",
        ),
        (
            json!({"endpoint": "h:1", "sending_queue": {"storage": "a b"}}),
            "`sending_queue.storage`",
        ),
        (
            json!({"endpoint": "h:1", "timeout": "5 sec"}),
            "`timeout`: invalid duration",
        ),
        (json!({"endpoint": "h:1", "timeout": -1}), "`timeout`"),
        (
            json!({"endpoint": "h:1", "retry_on_failure": {"max_interval": "x"}}),
            "`retry_on_failure.max_interval`",
        ),
        (
            json!({"endpoint": "h:1", "headers": {"bad header": "v"}}),
            "`headers.bad header`",
        ),
        (
            json!({"endpoint": "h:1", "headers": {"x-bin": "v"}}),
            "`headers.x-bin`",
        ),
        (
            json!({"endpoint": "h:1", "headers": {"x": "line\nbreak"}}),
            "`headers.x`",
        ),
        (
            json!({"endpoint": "h:1", "headers": {"x": 5}}),
            "`headers.x`",
        ),
        (json!({"endpoint": "h:1", "headers": ["x"]}), "`headers`"),
        (
            json!({"endpoint": "h:1", "compression": "snappy"}),
            "`compression`",
        ),
        (
            json!({"endpoint": "h:1", "tls": {"ca_pem": "/x"}}),
            "unknown key `tls.ca_pem`",
        ),
        (
            json!({"endpoint": "h:1", "tls": {"insecure": "yes"}}),
            "`tls.insecure`",
        ),
        (
            json!({"endpoint": "collector"}),
            "`endpoint`: \"collector\" has no port",
        ),
        (json!({"endpoint": "unix:///tmp/s"}), "`endpoint`"),
        (json!({"endpoint": "http://h:4318/v1/logs"}), "`endpoint`"),
        (json!({"endpoint": "http://:4317"}), "`endpoint`"),
        (json!({"endpoint": "a b:1"}), "`endpoint`"),
    ];
    for (block, want) in cases {
        let err = parse_otlp(block.clone()).unwrap_err();
        assert!(err.contains(want), "{block}: {err}");
    }
}

#[test]
fn endpoint_schemes_decide_tls() {
    let cases = [
        ("h:4317", false, "https://h:4317/", true),
        ("h:4317", true, "http://h:4317/", false),
        ("http://h:4317", false, "http://h:4317/", false),
        ("https://h:4317", true, "https://h:4317/", true),
        ("https://h", false, "https://h/", true),
        ("[::1]:4317", true, "http://[::1]:4317/", false),
    ];
    for (endpoint, insecure, uri, tls) in cases {
        let (got_uri, got_tls) = target(endpoint, insecure).unwrap();
        assert_eq!(
            (got_uri.to_string().as_str(), got_tls),
            (uri, tls),
            "{endpoint}"
        );
    }
}

// ---- classification ----

fn retry_info_details(delay: Option<(i64, i32)>) -> Vec<u8> {
    let info = RetryInfo {
        retry_delay: delay.map(|(seconds, nanos)| ProtoDuration { seconds, nanos }),
    };
    RpcStatus {
        message: String::new(),
        details: vec![
            ProtoAny {
                type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                value: vec![1, 2, 3],
            },
            ProtoAny {
                type_url: RETRY_INFO_TYPE.into(),
                value: info.encode_to_vec(),
            },
        ],
    }
    .encode_to_vec()
}

#[test]
fn every_code_is_classified_as_the_spec_says() {
    let retry = Verdict::Retry { at_least: None };
    let table = [
        (Code::Ok, Verdict::Permanent),
        (Code::Cancelled, retry),
        (Code::Unknown, Verdict::Permanent),
        (Code::InvalidArgument, Verdict::Permanent),
        (Code::DeadlineExceeded, retry),
        (Code::NotFound, Verdict::Permanent),
        (Code::AlreadyExists, Verdict::Permanent),
        (Code::PermissionDenied, Verdict::Permanent),
        (Code::ResourceExhausted, Verdict::Permanent),
        (Code::FailedPrecondition, Verdict::Permanent),
        (Code::Aborted, retry),
        (Code::OutOfRange, retry),
        (Code::Unimplemented, Verdict::Permanent),
        (Code::Internal, Verdict::Permanent),
        (Code::Unavailable, retry),
        (Code::DataLoss, retry),
        (Code::Unauthenticated, Verdict::Permanent),
    ];
    for (code, want) in table {
        assert_eq!(classify_code(code, &[]), want, "{code:?}");
        assert_eq!(
            classify(&Status::new(code, "from the server")),
            want,
            "{code:?}"
        );
    }
}

#[test]
fn retry_info_makes_resource_exhausted_retryable_and_sets_the_delay() {
    let with_delay = retry_info_details(Some((2, 500_000_000)));
    let wait = Verdict::Retry {
        at_least: Some(Duration::from_millis(2500)),
    };
    assert_eq!(classify_code(Code::ResourceExhausted, &with_delay), wait);
    assert_eq!(classify_code(Code::Unavailable, &with_delay), wait);
    assert_eq!(
        classify_code(Code::InvalidArgument, &with_delay),
        Verdict::Permanent
    );

    let without_delay = retry_info_details(None);
    assert_eq!(
        classify_code(Code::ResourceExhausted, &without_delay),
        Verdict::Retry { at_least: None }
    );
    // A negative delay is ignored, not honoured.
    let negative = retry_info_details(Some((-1, 0)));
    assert_eq!(
        classify_code(Code::ResourceExhausted, &negative),
        Verdict::Retry { at_least: None }
    );
    // Details that are not a google.rpc.Status are ignored.
    assert_eq!(
        classify_code(Code::ResourceExhausted, &[0xff, 0xff]),
        Verdict::Permanent
    );
    let status = Status::with_details(Code::ResourceExhausted, "slow down", with_delay.into());
    assert_eq!(classify(&status), wait);
}

#[test]
fn local_transport_failures_are_retried_whatever_their_code() {
    let mut status = Status::unknown("transport error");
    status.set_source(std::sync::Arc::new(std::io::Error::other(
        "connection reset",
    )));
    assert_eq!(classify(&status), Verdict::Retry { at_least: None });
}

// ---- against a server ----

/// What the test server answers, in order; once the script is used up it answers OK.
enum Reply {
    Ok(ExportLogsServiceResponse),
    Fail(Status),
    Hang(Duration),
}

struct Received {
    metadata: MetadataMap,
    request: ExportLogsServiceRequest,
    at: Instant,
}

struct Sink {
    script: Mutex<VecDeque<Reply>>,
    received: mpsc::UnboundedSender<Received>,
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let _ = self.received.send(Received {
            metadata,
            request,
            at: Instant::now(),
        });
        let reply = self.script.lock().unwrap().pop_front();
        match reply {
            None => Ok(Response::new(ExportLogsServiceResponse::default())),
            Some(Reply::Ok(response)) => Ok(Response::new(response)),
            Some(Reply::Fail(status)) => Err(status),
            Some(Reply::Hang(time)) => {
                tokio::time::sleep(time).await;
                Ok(Response::new(ExportLogsServiceResponse::default()))
            }
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    async fn start(script: Vec<Reply>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    fn serve(listener: TcpListener, script: Vec<Reply>) -> TestServer {
        Self::serve_with(listener, script, None)
    }

    fn serve_with(
        listener: TcpListener,
        script: Vec<Reply>,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> TestServer {
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let sink = Sink {
            script: Mutex::new(script.into()),
            received: tx,
        };
        let service = LogsServiceServer::new(sink)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let task = tokio::spawn(async move {
            let _ = builder
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await;
        });
        TestServer {
            addr,
            received,
            task,
        }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.received.recv())
            .await
            .expect("a request within 5s")
            .expect("server running")
    }
}

fn fast_retry() -> serde_json::Value {
    json!({"initial_interval": "10ms", "max_interval": "20ms", "randomization_factor": 0})
}

struct Exporter {
    tx: Option<mpsc::Sender<SharedBatch>>,
    abandon: CancellationToken,
    task: JoinHandle<()>,
    acks: Acks,
}

impl Exporter {
    fn start(config: serde_json::Value) -> Exporter {
        let config = parse_config("otlp", config).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let abandon = CancellationToken::new();
        let task = spawn(
            "otlp/test".parse().unwrap(),
            config,
            rx,
            abandon.clone(),
            &Default::default(),
        )
        .unwrap()
        .task;
        Exporter {
            tx: Some(tx),
            abandon,
            task,
            acks: Acks::new(),
        }
    }

    async fn send(&self, id: u64, entries: Vec<Entry>) {
        let batch = Batch::new(entries, self.acks.token(id).into()).into_shared();
        self.tx.as_ref().unwrap().send(batch).await.unwrap();
    }

    /// Closes the input and waits for the task to drain and return.
    async fn finish(mut self) -> Acks {
        self.tx = None;
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("drains within 5s")
            .unwrap();
        self.acks
    }
}

/// One entry, fully deterministic (no "now"), so requests can be compared.
fn one_entry(body: &str) -> Vec<Entry> {
    vec![Entry {
        body: Value::from(body),
        ..Entry::default()
    }]
}

#[tokio::test]
async fn records_arrive_with_every_field_headers_and_gzip() {
    let mut server = TestServer::start(vec![]).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", server.addr),
        "headers": {"X-Scope-OrgID": "acme"},
    }));
    let entries = vec![entry_with_all_fields(), Entry::new(Value::Int(2))];
    exporter.send(1, entries.clone()).await;
    let got = server.next().await;
    assert_eq!(got.request, crate::to_otlp_request(&entries));
    assert_eq!(got.metadata.get("x-scope-orgid").unwrap(), "acme");
    assert_eq!(got.metadata.get("grpc-encoding").unwrap(), "gzip");
    assert!(
        got.metadata
            .get("user-agent")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("centimane/")
    );
    let acks = exporter.finish().await;
    assert_eq!(acks.wait_for(1).await, [(1, AckStatus::Delivered)]);
}

#[tokio::test]
async fn plaintext_without_scheme_and_without_compression() {
    let mut server = TestServer::start(vec![]).await;
    let exporter = Exporter::start(json!({
        "endpoint": server.addr.to_string(),
        "tls": {"insecure": true},
        "compression": "none",
    }));
    exporter.send(1, one_entry("x")).await;
    let got = server.next().await;
    assert!(got.metadata.get("grpc-encoding").is_none());
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn zstd_works_too() {
    let mut server = TestServer::start(vec![]).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", server.addr),
        "compression": "zstd",
    }));
    exporter.send(1, one_entry("x")).await;
    assert_eq!(
        server.next().await.metadata.get("grpc-encoding").unwrap(),
        "zstd"
    );
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn unavailable_twice_then_ok_is_delivered_once() {
    let mut server = TestServer::start(vec![
        Reply::Fail(Status::unavailable("busy")),
        Reply::Fail(Status::unavailable("still busy")),
    ])
    .await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", server.addr),
        "retry_on_failure": fast_retry(),
    }));
    exporter.send(7, one_entry("x")).await;
    let attempts = [
        server.next().await,
        server.next().await,
        server.next().await,
    ];
    assert!(attempts.iter().all(|a| a.request == attempts[0].request));
    let acks = exporter.finish().await;
    assert_eq!(acks.wait_for(1).await, [(7, AckStatus::Delivered)]);
    assert!(server.received.try_recv().is_err(), "no fourth attempt");
}

#[tokio::test]
async fn invalid_argument_is_given_up_and_the_next_batch_goes_through() {
    let mut server =
        TestServer::start(vec![Reply::Fail(Status::invalid_argument("bad record"))]).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", server.addr),
        "retry_on_failure": fast_retry(),
    }));
    exporter.send(1, one_entry("rejected")).await;
    exporter.send(2, one_entry("accepted")).await;
    server.next().await;
    let second = server.next().await;
    assert_eq!(
        second.request,
        crate::to_otlp_request(&one_entry("accepted"))
    );
    let acks = exporter.finish().await;
    assert_eq!(
        acks.wait_for(2).await,
        [(1, AckStatus::Delivered), (2, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn partial_success_is_delivered() {
    let partial = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 1,
            error_message: "one was too old".into(),
        }),
    };
    let mut server = TestServer::start(vec![Reply::Ok(partial)]).await;
    let exporter = Exporter::start(json!({"endpoint": format!("http://{}", server.addr)}));
    exporter
        .send(1, vec![Entry::new(Value::Null), Entry::new(Value::Null)])
        .await;
    server.next().await;
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn the_servers_retry_delay_is_honoured() {
    let details = retry_info_details(Some((0, 300_000_000)));
    let throttled = Status::with_details(Code::ResourceExhausted, "slow down", details.into());
    let mut server = TestServer::start(vec![Reply::Fail(throttled)]).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", server.addr),
        "retry_on_failure": fast_retry(),
    }));
    exporter.send(1, one_entry("x")).await;
    let first = server.next().await.at;
    let second = server.next().await.at;
    assert!(
        second - first >= Duration::from_millis(300),
        "{:?}",
        second - first
    );
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn a_slow_server_times_out_and_is_retried() {
    let mut server = TestServer::start(vec![Reply::Hang(Duration::from_secs(10))]).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", server.addr),
        "timeout": "200ms",
        "retry_on_failure": fast_retry(),
    }));
    exporter.send(1, one_entry("x")).await;
    let first = server.next().await.at;
    let second = server.next().await.at;
    assert!(
        second - first >= Duration::from_millis(200),
        "{:?}",
        second - first
    );
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn retries_disabled_gives_up_and_reports_failure() {
    let mut server = TestServer::start(vec![Reply::Fail(Status::unavailable("down"))]).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", server.addr),
        "retry_on_failure": {"enabled": false},
    }));
    exporter.send(1, one_entry("x")).await;
    server.next().await;
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Failed)]
    );
}

/// A port that nothing listens on (until a test binds it again).
async fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn a_backend_that_starts_later_still_gets_the_batch() {
    let addr = free_port().await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{addr}"),
        "retry_on_failure": {"initial_interval": "50ms", "max_interval": "100ms"},
    }));
    exporter.send(1, one_entry("early")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(exporter.acks.seen().is_empty(), "not delivered while down");
    let mut server = TestServer::serve(TcpListener::bind(addr).await.unwrap(), vec![]);
    let got = server.next().await;
    assert_eq!(got.request, crate::to_otlp_request(&one_entry("early")));
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn abandon_while_the_backend_is_down_returns_promptly_with_failed_acks() {
    let addr = free_port().await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{addr}"),
        "retry_on_failure": {"initial_interval": "50ms", "max_interval": "100ms"},
    }));
    exporter.send(1, one_entry("in flight")).await;
    exporter.send(2, one_entry("queued")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    exporter.abandon.cancel();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), exporter.task)
        .await
        .expect("returns within 1s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    // The queued batch is dropped with the channel, once the sender goes too.
    drop(exporter.tx);
    let mut seen = exporter.acks.wait_for(2).await;
    seen.sort_by_key(|(id, _)| *id);
    assert_eq!(seen, [(1, AckStatus::Failed), (2, AckStatus::Failed)]);
}

#[tokio::test]
async fn an_empty_batch_settles_without_a_request() {
    let mut server = TestServer::start(vec![]).await;
    let exporter = Exporter::start(json!({"endpoint": format!("http://{}", server.addr)}));
    exporter.send(1, vec![]).await;
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
    assert!(server.received.try_recv().is_err());
}

#[tokio::test]
async fn a_tls_endpoint_starts_without_a_server() {
    let config = parse_config("otlp", json!({"endpoint": "localhost:1"})).unwrap();
    let (tx, rx) = mpsc::channel(1);
    let abandon = CancellationToken::new();
    match spawn(
        "otlp".parse().unwrap(),
        config,
        rx,
        abandon.clone(),
        &Default::default(),
    ) {
        Ok(running) => {
            drop(tx);
            running.task.await.unwrap();
        }
        // A machine without CA certificates cannot verify anything: a setup error.
        Err(e) => assert!(e.contains("TLS"), "{e}"),
    }
}

// ---- TLS ----

async fn tls_server(pki: &Pki, client_auth: bool) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    TestServer::serve_with(listener, vec![], Some(pki.server_tls(client_auth)))
}

/// One attempt straight through the transport.
async fn attempt(config: serde_json::Value) -> Attempt {
    let config = parse_otlp(config).unwrap();
    let payload = Bytes::from(crate::to_otlp_request(&one_entry("tls")).encode_to_vec());
    transport(&config).unwrap().send(payload, 1).await
}

fn verdict(attempt: Attempt) -> String {
    match attempt {
        Attempt::Accepted(_) => "accepted".into(),
        Attempt::Rejected(e) => format!("rejected: {e}"),
        Attempt::Retry { error, .. } => format!("retry: {error}"),
    }
}

#[tokio::test]
async fn tls_with_the_test_ca_delivers() {
    let pki = Pki::new();
    let mut server = tls_server(&pki, false).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("https://{}", server.addr),
        "tls": {"ca_file": pki.ca_file},
    }));
    exporter.send(1, one_entry("secret")).await;
    assert_eq!(
        server.next().await.request,
        crate::to_otlp_request(&one_entry("secret"))
    );
    assert_eq!(
        exporter.finish().await.wait_for(1).await,
        [(1, AckStatus::Delivered)]
    );
}

#[tokio::test]
async fn tls_failures_are_retried_with_a_clear_error() {
    let pki = Pki::new();
    let _server = tls_server(&pki, false).await;
    let endpoint = format!("https://{}", _server.addr);
    let wrong_ca = json!({"endpoint": endpoint, "tls": {"ca_file": pki.other_ca_file}});
    let text = verdict(attempt(wrong_ca).await);
    assert!(
        text.starts_with("retry") && text.contains("invalid peer certificate: UnknownIssuer"),
        "{text}"
    );
    let wrong_name = json!({"endpoint": endpoint, "tls": {
        "ca_file": pki.ca_file, "server_name_override": "elsewhere.test",
    }});
    let text = verdict(attempt(wrong_name).await);
    assert!(
        text.contains("not valid for name \"elsewhere.test\""),
        "{text}"
    );
    let skip = json!({"endpoint": endpoint, "tls": {
        "ca_file": pki.other_ca_file, "insecure_skip_verify": true,
    }});
    assert_eq!(verdict(attempt(skip).await), "accepted");
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let pki = Pki::new();
    let server = tls_server(&pki, true).await;
    let endpoint = format!("https://{}", server.addr);
    let without = json!({"endpoint": endpoint, "tls": {"ca_file": pki.ca_file}});
    assert!(verdict(attempt(without).await).starts_with("retry"));
    let with = json!({"endpoint": endpoint, "tls": {
        "ca_file": pki.ca_file,
        "cert_file": pki.client_cert_file,
        "key_file": pki.client_key_file,
    }});
    assert_eq!(verdict(attempt(with).await), "accepted");
}
