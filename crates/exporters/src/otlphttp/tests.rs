use super::*;
use crate::test_support::{Acks, Pki, entry_with_all_fields};
use crate::{ExporterConfig, ExporterStats, parse_config, spawn};
use axum::extract::State;
use axum::http::HeaderMap as AxumHeaders;
use axum::response::{IntoResponse, Response};
use centimane_core::{AckStatus, Batch, Entry, SharedBatch, Value};
use serde_json::json;
use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// ---- config ----

fn parse_http(config: serde_json::Value) -> Result<OtlpHttpConfig, String> {
    match parse_config("otlphttp", config)? {
        ExporterConfig::OtlpHttp(c) => Ok(c),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn config_defaults_and_urls() {
    let c = parse_http(json!({"endpoint": "https://collector:4318"})).unwrap();
    assert_eq!(c.logs_url, "https://collector:4318/v1/logs");
    assert_eq!(c.encoding, Encoding::Proto);
    assert_eq!(c.compression, Compression::Gzip);
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert_eq!(c.sending_queue, SendingQueueConfig::default());
    for (config, url) in [
        (
            json!({"endpoint": "http://h:4318/"}),
            "http://h:4318/v1/logs",
        ),
        (
            json!({"endpoint": "http://h/otlp"}),
            "http://h/otlp/v1/logs",
        ),
        (
            json!({"endpoint": "http://h", "logs_endpoint": "https://l:1/custom"}),
            "https://l:1/custom",
        ),
        (json!({"logs_endpoint": "http://l/x"}), "http://l/x"),
    ] {
        assert_eq!(
            parse_http(config.clone()).unwrap().logs_url,
            url,
            "{config}"
        );
    }
    let c = parse_http(json!({
        "endpoint": "http://h", "encoding": "json", "compression": "zstd", "timeout": "2s",
        "headers": {"Authorization": "Bearer s3cret"},
        "sending_queue": {"num_consumers": 2}, "retry_on_failure": {"enabled": false},
        "tls": {"insecure_skip_verify": true},
    }))
    .unwrap();
    assert_eq!(c.encoding, Encoding::Json);
    assert_eq!(c.compression, Compression::Zstd);
    assert_eq!(c.sending_queue.num_consumers, 2);
    assert!(c.tls.insecure_skip_verify);
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn config_errors_name_the_key() {
    for (config, want) in [
        (json!({}), "`endpoint` is required"),
        (json!({"endpoint": "collector:4318"}), "`endpoint`"),
        (json!({"endpoint": "ftp://h"}), "`endpoint`"),
        (json!({"endpoint": "h:4318"}), "`endpoint`"),
        (json!({"logs_endpoint": "nope"}), "`logs_endpoint`"),
        (
            json!({"endpoint": "http://h", "encoding": "xml"}),
            "`encoding`",
        ),
        (
            json!({"endpoint": "http://h", "headers": {"a b": "x"}}),
            "`headers.a b`",
        ),
        (
            json!({"endpoint": "http://h", "headers": {"x": "a\nb"}}),
            "`headers.x`",
        ),
        (
            json!({"endpoint": "http://h", "endpont": 1}),
            "did you mean `endpoint`",
        ),
        (
            json!({"endpoint": "http://h", "compression": "br"}),
            "`compression`",
        ),
    ] {
        let err = parse_http(config.clone()).unwrap_err();
        assert!(err.contains(want), "{config}: {err}");
    }
}

// ---- answers ----

fn verdict(attempt: Attempt) -> String {
    match attempt {
        Attempt::Accepted(None) => "accepted".into(),
        Attempt::Accepted(Some(p)) => format!("partial {} {}", p.rejected, p.message),
        Attempt::Rejected(e) => format!("rejected: {e}"),
        Attempt::Retry { error, at_least } => format!("retry {at_least:?}: {error}"),
    }
}

#[test]
fn status_codes_follow_the_specification() {
    let secs = Some(Duration::from_secs(3));
    for (code, want) in [
        (200, "accepted"),
        (202, "accepted"),
        (429, "retry Some(3s): HTTP 429 Too Many Requests"),
        (502, "retry Some(3s): HTTP 502 Bad Gateway"),
        (503, "retry Some(3s): HTTP 503 Service Unavailable"),
        (504, "retry Some(3s): HTTP 504 Gateway Timeout"),
        (400, "rejected: HTTP 400 Bad Request"),
        (401, "rejected: HTTP 401 Unauthorized"),
        (404, "rejected: HTTP 404 Not Found"),
        (413, "rejected: HTTP 413 Payload Too Large"),
        (500, "rejected: HTTP 500 Internal Server Error"),
    ] {
        let status = StatusCode::from_u16(code).unwrap();
        assert_eq!(verdict(classify(status, secs, false, b"")), want, "{code}");
    }
}

#[test]
fn error_bodies_give_the_message() {
    let proto = RpcStatus {
        message: "record too big".into(),
        details: vec![],
    }
    .encode_to_vec();
    let bad = StatusCode::BAD_REQUEST;
    assert_eq!(
        verdict(classify(bad, None, false, &proto)),
        "rejected: HTTP 400 Bad Request: record too big"
    );
    let json = br#"{"code": 3, "message": "no such tenant"}"#;
    assert_eq!(
        verdict(classify(bad, None, true, json)),
        "rejected: HTTP 400 Bad Request: no such tenant"
    );
    let text = b"<html>\n  oops\n</html>";
    assert_eq!(
        verdict(classify(bad, None, false, text)),
        "rejected: HTTP 400 Bad Request: <html> oops </html>"
    );
    let long = vec![b'x'; 10_000];
    assert!(verdict(classify(bad, None, false, &long)).len() < 400);
}

#[test]
fn partial_successes_in_both_encodings() {
    let proto = ExportLogsServiceResponse {
        partial_success: Some(
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            },
        ),
    }
    .encode_to_vec();
    let ok = StatusCode::OK;
    assert_eq!(
        verdict(classify(ok, None, false, &proto)),
        "partial 2 too old"
    );
    let json = br#"{"partialSuccess":{"rejectedLogRecords":"5","errorMessage":"dup"}}"#;
    assert_eq!(verdict(classify(ok, None, true, json)), "partial 5 dup");
    let number = br#"{"partialSuccess":{"rejectedLogRecords":1}}"#;
    assert_eq!(verdict(classify(ok, None, true, number)), "partial 1 ");
    for harmless in [&b"{}"[..], b"not json", br#"{"partialSuccess":{}}"#] {
        assert_eq!(verdict(classify(ok, None, true, harmless)), "accepted");
    }
    assert_eq!(verdict(classify(ok, None, false, b"\xff\xff")), "accepted");
}

#[test]
fn retry_after_as_seconds_or_a_date() {
    let now: jiff::Timestamp = "2015-10-21T07:28:00Z".parse().unwrap();
    assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(
        retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO),
        "a date in the past: no wait"
    );
    assert_eq!(retry_after("soon", now), None);
    assert_eq!(retry_after("-1", now), None);
}

// ---- against a server ----

/// What the sink answers, in order; once the script is used up it answers 200.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
        }
    }
}

struct Got {
    headers: AxumHeaders,
    request: ExportLogsServiceRequest,
    at: Instant,
}

#[derive(Clone)]
struct SinkState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    got: mpsc::UnboundedSender<Got>,
}

/// Decodes a request as an OTLP/HTTP server does.
async fn export(
    State(state): State<SinkState>,
    headers: AxumHeaders,
    body: axum::body::Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let raw = match header("content-encoding").as_str() {
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        "zstd" => zstd::stream::decode_all(body.as_ref()).unwrap(),
        _ => body.to_vec(),
    };
    let request = if header("content-type") == "application/json" {
        serde_json::from_slice(&raw).unwrap()
    } else {
        ExportLogsServiceRequest::decode(raw.as_slice()).unwrap()
    };
    let _ = state.got.send(Got {
        headers,
        request,
        at: Instant::now(),
    });
    let reply = state.script.lock().unwrap().pop_front();
    let reply = reply.unwrap_or_else(|| Reply::status(200));
    let mut response = (
        axum::http::StatusCode::from_u16(reply.status).unwrap(),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

struct HttpSink {
    addr: SocketAddr,
    got: mpsc::UnboundedReceiver<Got>,
    task: JoinHandle<()>,
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpSink {
    /// A plain-HTTP sink, or with `tls` an HTTPS one (HTTP/2 through tonic's TLS server).
    async fn start(script: Vec<Reply>, tls: Option<tonic::transport::ServerTlsConfig>) -> HttpSink {
        let (tx, got) = mpsc::unbounded_channel();
        let state = SinkState {
            script: Arc::new(Mutex::new(script.into())),
            got: tx,
        };
        let router = axum::Router::new()
            .route("/v1/logs", axum::routing::post(export))
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            }),
            Some(tls) => tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .tls_config(tls)
                    .unwrap()
                    .add_routes(tonic::service::Routes::from(router))
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                    .await;
            }),
        };
        HttpSink { addr, got, task }
    }

    async fn next(&mut self) -> Got {
        tokio::time::timeout(Duration::from_secs(5), self.got.recv())
            .await
            .expect("a request within 5s")
            .expect("sink running")
    }
}

struct Exporter {
    tx: Option<mpsc::Sender<SharedBatch>>,
    task: JoinHandle<()>,
    stats: Arc<ExporterStats>,
    acks: Acks,
}

impl Exporter {
    fn start(config: serde_json::Value) -> Exporter {
        let config = parse_config("otlphttp", config).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let running = spawn(
            "otlphttp/test".parse().unwrap(),
            config,
            rx,
            CancellationToken::new(),
            &Default::default(),
        )
        .unwrap();
        Exporter {
            tx: Some(tx),
            task: running.task,
            stats: running.stats,
            acks: Acks::new(),
        }
    }

    async fn send(&self, id: u64, entries: Vec<Entry>) {
        let batch = Batch::new(entries, self.acks.token(id).into()).into_shared();
        self.tx.as_ref().unwrap().send(batch).await.unwrap();
    }

    async fn finish(mut self) -> (Acks, Arc<ExporterStats>) {
        self.tx = None;
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("drains within 10s")
            .unwrap();
        (self.acks, self.stats)
    }
}

fn one_entry(body: &str) -> Vec<Entry> {
    vec![Entry {
        body: Value::from(body),
        ..Entry::default()
    }]
}

fn fast_retry() -> serde_json::Value {
    json!({"initial_interval": "10ms", "max_interval": "20ms", "randomization_factor": 0})
}

#[tokio::test]
async fn protobuf_with_gzip_and_headers() {
    let mut sink = HttpSink::start(vec![], None).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", sink.addr),
        "headers": {"X-Scope-OrgID": "acme"},
    }));
    let entries = vec![entry_with_all_fields(), Entry::new(Value::Int(2))];
    exporter.send(1, entries.clone()).await;
    let got = sink.next().await;
    assert_eq!(got.request, crate::to_otlp_request(&entries));
    assert_eq!(got.headers["content-type"], "application/x-protobuf");
    assert_eq!(got.headers["content-encoding"], "gzip");
    assert_eq!(got.headers["x-scope-orgid"], "acme");
    assert!(
        got.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("centimane/")
    );
    let (acks, stats) = exporter.finish().await;
    assert_eq!(acks.wait_for(1).await, [(1, AckStatus::Delivered)]);
    assert_eq!(stats.snapshot().sent_records, 2);
}

#[tokio::test]
async fn json_uncompressed_and_json_with_zstd() {
    for compression in ["none", "zstd"] {
        let mut sink = HttpSink::start(vec![], None).await;
        let exporter = Exporter::start(json!({
            "endpoint": format!("http://{}", sink.addr),
            "encoding": "json",
            "compression": compression,
        }));
        let entries = vec![entry_with_all_fields()];
        exporter.send(1, entries.clone()).await;
        let got = sink.next().await;
        assert_eq!(
            got.request,
            crate::to_otlp_request(&entries),
            "{compression}"
        );
        assert_eq!(got.headers["content-type"], "application/json");
        assert_eq!(
            got.headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            (compression == "zstd").then_some("zstd")
        );
        let (acks, _) = exporter.finish().await;
        assert_eq!(acks.wait_for(1).await, [(1, AckStatus::Delivered)]);
    }
}

#[tokio::test]
async fn bad_request_is_dropped_counted_and_not_retried() {
    let rejection = Reply {
        status: 400,
        headers: vec![("content-type", "application/json")],
        body: br#"{"code":3,"message":"invalid record"}"#.to_vec(),
    };
    let mut sink = HttpSink::start(vec![rejection], None).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", sink.addr),
        "retry_on_failure": fast_retry(),
        "sending_queue": {"num_consumers": 1},
    }));
    exporter
        .send(1, vec![Entry::new(Value::Null), Entry::new(Value::Null)])
        .await;
    exporter.send(2, one_entry("accepted")).await;
    sink.next().await;
    assert_eq!(
        sink.next().await.request,
        crate::to_otlp_request(&one_entry("accepted"))
    );
    let (acks, stats) = exporter.finish().await;
    assert_eq!(
        acks.wait_for(2).await,
        [(1, AckStatus::Delivered), (2, AckStatus::Delivered)]
    );
    let snap = stats.snapshot();
    assert_eq!((snap.rejected_records, snap.sent_records), (2, 1));
    assert!(
        sink.got.try_recv().is_err(),
        "no retry of the rejected request"
    );
}

#[tokio::test]
async fn unavailable_with_retry_after_waits_as_asked() {
    let busy = Reply {
        status: 503,
        headers: vec![("retry-after", "1")],
        body: vec![],
    };
    let mut sink = HttpSink::start(vec![busy], None).await;
    let exporter = Exporter::start(json!({
        "endpoint": format!("http://{}", sink.addr),
        "retry_on_failure": fast_retry(),
    }));
    exporter.send(1, one_entry("x")).await;
    let first = sink.next().await.at;
    let second = sink.next().await.at;
    assert!(
        second - first >= Duration::from_secs(1),
        "{:?}",
        second - first
    );
    let (acks, _) = exporter.finish().await;
    assert_eq!(acks.wait_for(1).await, [(1, AckStatus::Delivered)]);
}

#[tokio::test]
async fn partial_success_is_delivered_and_counted() {
    let partial = Reply {
        status: 200,
        headers: vec![("content-type", "application/json")],
        body: br#"{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"too old"}}"#.to_vec(),
    };
    let mut sink = HttpSink::start(vec![partial], None).await;
    let exporter = Exporter::start(json!({"endpoint": format!("http://{}", sink.addr)}));
    exporter
        .send(1, vec![Entry::new(Value::Null), Entry::new(Value::Null)])
        .await;
    sink.next().await;
    let (acks, stats) = exporter.finish().await;
    assert_eq!(acks.wait_for(1).await, [(1, AckStatus::Delivered)]);
    let snap = stats.snapshot();
    assert_eq!((snap.sent_records, snap.partially_rejected_records), (1, 1));
}

/// One attempt straight through the transport, for the TLS cases.
async fn attempt(config: serde_json::Value) -> Attempt {
    let ExporterConfig::OtlpHttp(config) = parse_config("otlphttp", config).unwrap() else {
        unreachable!("parsed as otlphttp");
    };
    let payload = Bytes::from(crate::to_otlp_request(&one_entry("tls")).encode_to_vec());
    transport(&config).unwrap().send(payload, 1).await
}

#[tokio::test]
async fn https_with_the_test_ca_and_the_ways_it_can_fail() {
    let pki = Pki::new();
    let mut sink = HttpSink::start(vec![], Some(pki.server_tls(false))).await;
    let url = format!("https://{}", sink.addr);
    let ca = pki.ca_file.to_str().unwrap();
    let other = pki.other_ca_file.to_str().unwrap();

    let ok = attempt(json!({"endpoint": url, "tls": {"ca_file": ca}})).await;
    assert_eq!(verdict(ok), "accepted");
    assert_eq!(
        sink.next().await.request,
        crate::to_otlp_request(&one_entry("tls"))
    );

    let wrong_ca = attempt(json!({"endpoint": url, "tls": {"ca_file": other}})).await;
    let text = verdict(wrong_ca);
    assert!(
        text.starts_with("retry") && text.contains("UnknownIssuer"),
        "{text}"
    );

    let wrong_name =
        json!({"endpoint": url, "tls": {"ca_file": ca, "server_name_override": "elsewhere.test"}});
    let text = verdict(attempt(wrong_name).await);
    assert!(
        text.contains("not valid for name \"elsewhere.test\""),
        "{text}"
    );
    let right_name =
        json!({"endpoint": url, "tls": {"ca_file": ca, "server_name_override": "localhost"}});
    assert_eq!(verdict(attempt(right_name).await), "accepted");

    let skip = json!({"endpoint": url, "tls": {"ca_file": other, "insecure_skip_verify": true}});
    assert_eq!(verdict(attempt(skip).await), "accepted");
}

#[tokio::test]
async fn https_with_a_client_certificate() {
    let pki = Pki::new();
    let mut sink = HttpSink::start(vec![], Some(pki.server_tls(true))).await;
    let url = format!("https://{}", sink.addr);
    let ca = pki.ca_file.to_str().unwrap();
    let without = verdict(attempt(json!({"endpoint": url, "tls": {"ca_file": ca}})).await);
    assert!(without.starts_with("retry"), "{without}");
    let with = json!({"endpoint": url, "tls": {
        "ca_file": ca,
        "cert_file": pki.client_cert_file,
        "key_file": pki.client_key_file,
    }});
    assert_eq!(verdict(attempt(with).await), "accepted");
    sink.next().await;
}

#[test]
fn unreadable_tls_files_are_startup_errors() {
    let config = parse_http(json!({
        "endpoint": "https://h:4318",
        "tls": {"ca_file": "/nonexistent/ca.pem"},
    }))
    .unwrap();
    let err = transport(&config).err().unwrap();
    assert!(
        err.contains("`tls.ca_file`") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
