//! The receiver end to end on 127.0.0.1: real gRPC and HTTP clients, and a fake pipeline
//! that acknowledges (or not) what it gets.

use super::convert::tests::request;
use super::*;
use centimane_core::{Batch, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use prost::Message;
use std::io::Write;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::Code;
use tonic::codec::CompressionEncoding;

/// What the fake pipeline does with each batch.
#[derive(Clone, Copy)]
enum Downstream {
    Deliver,
    Fail,
}

struct Running {
    handle: OtlpHandle,
    /// Every batch the pipeline took, in order.
    seen: mpsc::UnboundedReceiver<Batch>,
}

fn config(grpc: bool, http: bool) -> OtlpConfig {
    OtlpConfig {
        grpc: grpc.then(|| GrpcConfig {
            endpoint: "127.0.0.1:0".into(),
            ..GrpcConfig::default()
        }),
        http: http.then(|| HttpConfig {
            endpoint: "127.0.0.1:0".into(),
            max_request_body_size: 64 * 1024,
            ..HttpConfig::default()
        }),
    }
}

/// Starts a receiver whose pipeline settles each batch as `downstream` says, after
/// reporting a copy of its entries.
fn start_with(config: OtlpConfig, downstream: Downstream) -> Running {
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            let _ = seen_tx.send(Batch::new(batch.entries.clone(), Default::default()));
            match downstream {
                Downstream::Deliver => batch.acks.delivered(),
                Downstream::Fail => drop(batch),
            }
        }
    });
    let handle = start(OtlpSetup {
        id: "otlp".parse().unwrap(),
        config,
        outputs: Outputs::new(vec![tx]),
        runtime: tokio::runtime::Handle::current(),
        drain_timeout: Duration::from_secs(5),
    })
    .unwrap();
    Running { handle, seen }
}

async fn grpc_client(addr: SocketAddr) -> LogsServiceClient<tonic::transport::Channel> {
    LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_success_comes_after_delivery_with_every_field() {
    let mut r = start_with(config(true, false), Downstream::Deliver);
    let mut client = grpc_client(r.handle.grpc_addr.unwrap()).await;
    client.export(request(3)).await.unwrap();
    let got = r.seen.recv().await.unwrap();
    assert_eq!(got.len(), 3);
    let e = &got.entries[2];
    assert_eq!(e.body, Value::from("line 2"));
    assert_eq!(e.resource["service.name"], Value::from("svc"));
    assert_eq!(e.scope_name, "scope");
    // Compressed requests are accepted too.
    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let mut c = grpc_client(r.handle.grpc_addr.unwrap())
            .await
            .send_compressed(encoding);
        c.export(request(1)).await.unwrap();
        assert_eq!(r.seen.recv().await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_failure_downstream_is_unavailable() {
    let r = start_with(config(true, false), Downstream::Fail);
    let mut client = grpc_client(r.handle.grpc_addr.unwrap()).await;
    let status = client.export(request(1)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_full_pipeline_waits_until_the_deadline_then_is_unavailable() {
    // A pipeline that never takes anything: its channel (capacity 1) fills up.
    let (tx, _rx) = mpsc::channel::<Batch>(1);
    let handle = start(OtlpSetup {
        id: "otlp".parse().unwrap(),
        config: config(true, false),
        outputs: Outputs::new(vec![tx]),
        runtime: tokio::runtime::Handle::current(),
        drain_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let mut client = grpc_client(handle.grpc_addr.unwrap()).await;
    for _ in 0..2 {
        let mut req = tonic::Request::new(request(1));
        req.set_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let status = client.export(req).await.unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded
            ),
            "{status:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded by the deadline"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_malformed_protobuf_is_invalid_argument() {
    let r = start_with(config(true, false), Downstream::Deliver);
    let status = raw_grpc(r.handle.grpc_addr.unwrap(), vec![0x0a, 0xff, 0xff, 0xff])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("ExportLogsServiceRequest"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_json_and_compressed_bodies() {
    let mut r = start_with(config(false, true), Downstream::Deliver);
    let addr = r.handle.http_addr.unwrap();
    let proto = request(2).encode_to_vec();
    let json = serde_json::to_vec(&request(2)).unwrap();
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("application/x-protobuf", "", proto.clone()),
        ("application/json", "", json.clone()),
        ("application/x-protobuf", "gzip", gzip(&proto)),
        (
            "application/json; charset=utf-8",
            "zstd",
            zstd::bulk::compress(&json, 3).unwrap(),
        ),
        ("application/x-protobuf", "deflate", deflate(&proto)),
    ];
    for (content_type, encoding, body) in cases {
        let resp = post(addr, "/v1/logs", content_type, encoding, &body).await;
        assert_eq!(
            resp.status,
            200,
            "{content_type} {encoding}: {}",
            resp.text()
        );
        let got = r.seen.recv().await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got.entries[1].body, Value::from("line 1"));
        assert_eq!(got.entries[1].trace_id, vec![1; 16]);
        if content_type.starts_with("application/json") {
            assert_eq!(resp.header("content-type"), "application/json");
            assert_eq!(resp.body, b"{}");
        } else {
            assert_eq!(resp.header("content-type"), "application/x-protobuf");
            ExportLogsServiceResponse::decode(&resp.body[..]).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_per_the_otlp_spec() {
    let mut r = start_with(config(false, true), Downstream::Deliver);
    let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
        "scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":9,
        "severityText":"INFO","body":{"stringValue":"hi"},"attributes":[{"key":"n","value":{"intValue":"42"}},
        {"key":"f","value":{"doubleValue":1.5}},{"key":"l","value":{"arrayValue":{"values":[{"boolValue":true}]}}}],
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","flags":1,"unknownField":7}]}]}]}"#;
    let resp = post(
        r.handle.http_addr.unwrap(),
        "/v1/logs",
        "application/json",
        "",
        body,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let e = r.seen.recv().await.unwrap().entries.remove(0);
    assert_eq!(e.body, Value::from("hi"));
    assert_eq!(e.attributes["n"], Value::Int(42));
    assert_eq!(e.attributes["f"], Value::Double(1.5));
    assert_eq!(
        e.attributes["l"],
        Value::Array(Box::new(vec![Value::Bool(true)]))
    );
    assert_eq!(hex(&e.trace_id), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex(&e.span_id), "eee19b7ec3c1b174");
    assert_eq!(e.severity, 9);
    assert_eq!(
        e.timestamp.unwrap().as_nanosecond(),
        1_700_000_000_000_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_follow_the_spec() {
    let r = start_with(config(false, true), Downstream::Fail);
    let addr = r.handle.http_addr.unwrap();
    let proto = request(1).encode_to_vec();

    let resp = post(
        addr,
        "/v1/logs",
        "application/x-protobuf",
        "",
        b"\x0a\xff\xff",
    )
    .await;
    assert_eq!(resp.status, 400);
    let status = RpcStatusView::decode(&resp.body[..]).unwrap();
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("protobuf"), "{}", status.message);

    let resp = post(
        addr,
        "/v1/logs",
        "application/json",
        "",
        b"{\"resourceLogs\": 7}",
    )
    .await;
    assert_eq!(resp.status, 400);
    let status: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(status["code"], 3);

    let resp = post(addr, "/v1/logs", "text/plain", "", b"hello").await;
    assert_eq!(resp.status, 415);
    let resp = post(
        addr,
        "/v1/logs",
        "application/x-protobuf",
        "gzip",
        b"not gzip",
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    let resp = post(addr, "/v1/logs", "application/x-protobuf", "br", &proto).await;
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("unsupported Content-Encoding"));
    let resp = post(
        addr,
        "/v1/logs",
        "application/x-protobuf",
        "",
        &vec![0u8; 100 * 1024],
    )
    .await;
    assert_eq!(resp.status, 413);
    let bomb = gzip(&vec![0u8; 1024 * 1024]);
    let resp = post(addr, "/v1/logs", "application/x-protobuf", "gzip", &bomb).await;
    assert_eq!(
        resp.status, 413,
        "a small body that inflates past the limit"
    );
    let resp = post(addr, "/v1/traces", "application/x-protobuf", "", &proto).await;
    assert_eq!(resp.status, 404);
    let resp = request_raw(
        addr,
        "GET /v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 405);

    // Downstream failure: retryable.
    let resp = post(addr, "/v1/logs", "application/x-protobuf", "", &proto).await;
    assert_eq!(resp.status, 503);
    assert_eq!(
        RpcStatusView::decode(&resp.body[..]).unwrap().code,
        14,
        "UNAVAILABLE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_releases_the_pipeline_and_join_ends_the_servers() {
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let handle = start(OtlpSetup {
        id: "otlp".parse().unwrap(),
        config: config(true, true),
        outputs: Outputs::new(vec![tx]),
        runtime: tokio::runtime::Handle::current(),
        drain_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let (grpc, http) = (handle.grpc_addr.unwrap(), handle.http_addr.unwrap());
    handle.stop();
    assert!(
        rx.recv().await.is_none(),
        "the pipeline's channel is closed"
    );
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(tokio::net::TcpStream::connect(grpc).await.is_err());
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_a_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (tx, _rx) = mpsc::channel::<Batch>(1);
    let mut c = config(true, false);
    c.grpc.as_mut().unwrap().endpoint = taken.local_addr().unwrap().to_string();
    let err = start(OtlpSetup {
        id: "otlp".parse().unwrap(),
        config: c,
        outputs: Outputs::new(vec![tx]),
        runtime: tokio::runtime::Handle::current(),
        drain_timeout: Duration::from_secs(1),
    })
    .err()
    .unwrap();
    assert!(err.contains("can't listen"), "{err}");
}

// ---- helpers ----

/// `google.rpc.Status` as a client reads it.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatusView {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    encoding: &str,
    body: &[u8],
) -> HttpResponse {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !encoding.is_empty() {
        head.push_str(&format!("Content-Encoding: {encoding}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    request_bytes(addr, &bytes).await
}

async fn request_raw(addr: SocketAddr, text: &str) -> HttpResponse {
    request_bytes(addr, text.as_bytes()).await
}

/// A minimal HTTP/1.1 exchange: the responses here always carry Content-Length.
async fn request_bytes(addr: SocketAddr, bytes: &[u8]) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (413) before reading everything; a failed write is fine then.
    let _ = stream.write_all(bytes).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Sends raw bytes as the Export request message.
async fn raw_grpc(addr: SocketAddr, message: Vec<u8>) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    );
    grpc.unary(tonic::Request::new(message), path, RawCodec)
        .await
        .map(|_| ())
}

#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ExportLogsServiceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = ExportLogsServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        use bytes::Buf;
        ExportLogsServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}
