//! Black-box tests of the `otlp` receiver against real peers: the official OpenTelemetry
//! Python SDK exporters (gRPC and HTTP) and the OpenTelemetry Collector's `otlphttp`
//! exporter send to the real binary, which forwards with its `otlp` exporter to a sink on
//! 127.0.0.1. The peers come from `scripts/python-peers.sh`; if it can't install them (no
//! PyPI), these tests fail saying so.

mod common;

use common::{Agent, BIN};
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
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---- the peers ----

/// The venv with the Python peers, installed once per test run by the project's script.
fn peers() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-peers.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("bash runs scripts/python-peers.sh");
        assert!(
            out.status.success(),
            "scripts/python-peers.sh could not install the Python peers (is PyPI reachable?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("the script prints the venv path")
                .trim(),
        )
    })
}

/// Emits `count` log records through the SDK's `LoggerProvider` + `BatchLogRecordProcessor`
/// + `OTLPLogExporter`, and prints the exporter's results as a JSON list.
const PY_SENDER: &str = r#"
import json, sys
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

protocol, endpoint, count, compression = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if protocol == "grpc":
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=10,
        compression=grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression)
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=endpoint, timeout=10,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)

results = []
inner = exporter.export
def export(batch):
    result = inner(batch)
    results.append(result.name)
    return result
exporter.export = export

provider = LoggerProvider(resource=Resource.create({"service.name": "py-peer", "peer.protocol": protocol}))
provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=100, max_export_batch_size=64))
logger = provider.get_logger("peer.scope", "1.2.3")
for i in range(count):
    span = SpanContext(trace_id=0x5b8efff798038103d269b633813fc600 + i, span_id=0xeee19b7ec3c1b174,
                       is_remote=False, trace_flags=TraceFlags(1))
    body = f"py line {i}" if i % 2 == 0 else {"msg": f"py line {i}", "n": i}
    logger.emit(timestamp=1_700_000_000_000_000_000 + i, context=trace.set_span_in_context(NonRecordingSpan(span)),
                severity_number=SeverityNumber.WARN, severity_text="WARN", body=body,
                attributes={"seq": i, "ratio": i / 4, "even": i % 2 == 0, "tags": ["a", "b"]})
provider.force_flush()
provider.shutdown()
print(json.dumps(results))
"#;

fn run_python_sender(
    dir: &Path,
    protocol: &str,
    endpoint: &str,
    count: usize,
    compression: &str,
) -> Vec<String> {
    let script = dir.join("sender.py");
    std::fs::write(&script, PY_SENDER).unwrap();
    let out = Command::new(peers().join("bin/python"))
        .arg(&script)
        .args([protocol, endpoint, &count.to_string(), compression])
        .output()
        .expect("the venv's python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python sender failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("[]"))
        .unwrap_or_else(|e| panic!("sender output {stdout:?}: {e}\n{stderr}"))
}

// ---- a sink that keeps scopes too ----

#[derive(Debug, Clone)]
struct Got {
    resource: HashMap<String, Option<Any>>,
    scope: String,
    record: LogRecord,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&Any> {
        self.record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn seq(&self) -> usize {
        match self.attr("seq") {
            Some(Any::IntValue(i)) => *i as usize,
            Some(Any::DoubleValue(d)) => *d as usize,
            other => panic!("no seq: {other:?}"),
        }
    }

    fn body(&self) -> Option<&Any> {
        self.record.body.as_ref()?.value.as_ref()
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl LogsService for Recorder {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rl in req.into_inner().resource_logs {
            let resource: HashMap<String, Option<Any>> = rl
                .resource
                .map(|r| {
                    r.attributes
                        .into_iter()
                        .map(|kv| (kv.key, kv.value.and_then(|v| v.value)))
                        .collect()
                })
                .unwrap_or_default();
            for sl in rl.scope_logs {
                let scope = sl.scope.map(|s| s.name).unwrap_or_default();
                for record in sl.log_records {
                    got.push(Got {
                        resource: resource.clone(),
                        scope: scope.clone(),
                        record,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

struct Sink {
    addr: SocketAddr,
    got: Recorder,
    _runtime: tokio::runtime::Runtime,
}

impl Sink {
    fn start() -> Sink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Recorder::default();
        // The otlp exporter compresses with gzip by default, as the Collector's does.
        let service = LogsServiceServer::new(got.clone())
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
            .max_decoding_message_size(64 << 20);
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Sink {
            addr,
            got,
            _runtime: runtime,
        }
    }

    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Got> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got.0.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} records within {timeout:?}, got {}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---- the agent ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The agent with an `otlp` receiver (gRPC and HTTP on free ports) exporting to `sink`;
/// returns once both ports accept connections.
fn start_agent(dir: &Path, sink: SocketAddr) -> (Agent, u16, u16) {
    let (grpc, http) = (free_port(), free_port());
    let config = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
processors:
  batch:
    timeout: 50ms
exporters:
  otlp:
    endpoint: http://{sink}
    timeout: 2s
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"#
    );
    let agent = Agent::start(dir, &config);
    let deadline = Instant::now() + Duration::from_secs(15);
    for port in [grpc, http] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "agent not listening:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (agent, grpc, http)
}

fn sorted_seqs(got: &[Got]) -> Vec<usize> {
    let mut s: Vec<usize> = got.iter().map(Got::seq).collect();
    s.sort_unstable();
    s
}

/// Every field the SDK set arrives at the sink unchanged.
fn check_sdk_records(got: &[Got], count: usize, protocol: &str) {
    assert_eq!(
        sorted_seqs(got),
        (0..count).collect::<Vec<_>>(),
        "each record once"
    );
    for g in got {
        let i = g.seq();
        assert_eq!(g.scope, "peer.scope");
        assert_eq!(
            g.resource["service.name"],
            Some(Any::StringValue("py-peer".into()))
        );
        assert_eq!(
            g.resource["peer.protocol"],
            Some(Any::StringValue(protocol.into()))
        );
        assert!(g.resource.contains_key("telemetry.sdk.version"));
        assert_eq!(
            g.record.time_unix_nano,
            1_700_000_000_000_000_000 + i as u64
        );
        assert!(g.record.observed_time_unix_nano > 0);
        assert_eq!(g.record.severity_number, 13);
        assert_eq!(g.record.severity_text, "WARN");
        let trace_id = (0x5b8efff798038103d269b633813fc600u128 + i as u128).to_be_bytes();
        assert_eq!(g.record.trace_id, trace_id);
        assert_eq!(g.record.span_id, 0xeee19b7ec3c1b174u64.to_be_bytes());
        assert_eq!(g.record.flags & 0xff, 1);
        assert_eq!(g.attr("ratio"), Some(&Any::DoubleValue(i as f64 / 4.0)));
        assert_eq!(g.attr("even"), Some(&Any::BoolValue(i % 2 == 0)));
        match g.attr("tags") {
            Some(Any::ArrayValue(a)) => assert_eq!(a.values.len(), 2),
            other => panic!("tags: {other:?}"),
        }
        match g.body() {
            Some(Any::StringValue(s)) => {
                assert!(i % 2 == 0);
                assert_eq!(s, &format!("py line {i}"));
            }
            Some(Any::KvlistValue(kv)) => {
                assert!(i % 2 == 1);
                let keys: Vec<&str> = kv.values.iter().map(|k| k.key.as_str()).collect();
                assert_eq!(keys, ["msg", "n"]);
            }
            other => panic!("body of {i}: {other:?}"),
        }
    }
}

#[test]
fn python_sdk_grpc_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let (agent, grpc, _) = start_agent(dir.path(), sink.addr);
    let count = 200;
    let results = run_python_sender(
        dir.path(),
        "grpc",
        &format!("http://127.0.0.1:{grpc}"),
        count,
        "gzip",
    );
    assert!(
        !results.is_empty() && results.iter().all(|r| r == "SUCCESS"),
        "{results:?}"
    );
    // The SDK got SUCCESS only after delivery, so everything is there already.
    let got = sink.wait_for(count, Duration::from_secs(1));
    check_sdk_records(&got, count, "grpc");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn python_sdk_http_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let (agent, _, http) = start_agent(dir.path(), sink.addr);
    let count = 150;
    for (compression, from) in [("none", 0), ("gzip", count)] {
        let results = run_python_sender(
            dir.path(),
            "http",
            &format!("http://127.0.0.1:{http}/v1/logs"),
            count,
            compression,
        );
        assert!(
            !results.is_empty() && results.iter().all(|r| r == "SUCCESS"),
            "{compression}: {results:?}"
        );
        let got = sink.wait_for(from + count, Duration::from_secs(1));
        check_sdk_records(&got[from..], count, "http");
    }
    assert_eq!(agent.stop(), 0);
}

/// The Collector tails a file and sends it with its `otlphttp` exporter to our receiver.
fn collector_sends(encoding: &str, compression: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let (agent, _, http) = start_agent(dir.path(), sink.addr);
    let input = dir.path().join("in.log");
    let count = 500;
    let lines: String = (0..count)
        .map(|i| {
            format!(
                "{{\"seq\":{i},\"msg\":\"collector line {i}\",\"status\":{}}}\n",
                200 + i % 3
            )
        })
        .collect();
    std::fs::write(&input, &lines).unwrap();
    let config = dir.path().join("otelcol.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  filelog:
    include: ["{input}"]
    start_at: beginning
    operators:
      - type: json_parser
        parse_to: attributes
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{http}
    encoding: {encoding}
    compression: {compression}
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlphttp]
"#,
            input = input.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("otelcol.log")).unwrap();
    let mut collector = Command::new(peers().join("bin/otelcol-contrib"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("otelcol-contrib starts");
    let got = std::panic::catch_unwind(|| sink.wait_for(count, Duration::from_secs(60)));
    let _ = collector.kill();
    let _ = collector.wait();
    let got = got.unwrap_or_else(|_| {
        panic!(
            "collector log:\n{}\nagent log:\n{}",
            std::fs::read_to_string(dir.path().join("otelcol.log")).unwrap_or_default(),
            agent.log()
        )
    });
    assert_eq!(agent.stop(), 0);
    assert_eq!(
        sorted_seqs(&got),
        (0..count).collect::<Vec<_>>(),
        "each line once"
    );
    let line_of = |seq: usize| lines.lines().nth(seq).unwrap().to_owned();
    for g in &got {
        let seq = g.seq();
        assert_eq!(g.body(), Some(&Any::StringValue(line_of(seq))));
        assert_eq!(
            g.attr("msg"),
            Some(&Any::StringValue(format!("collector line {seq}")))
        );
        assert_eq!(
            g.attr("status"),
            Some(&Any::DoubleValue((200 + seq % 3) as f64))
        );
        assert_eq!(
            g.attr("log.file.name"),
            Some(&Any::StringValue("in.log".into()))
        );
        assert!(g.record.observed_time_unix_nano > 0);
    }
}

#[test]
fn collector_otlphttp_protobuf_gzip() {
    collector_sends("proto", "gzip");
}

#[test]
fn collector_otlphttp_json_zstd() {
    collector_sends("json", "zstd");
}

#[test]
fn bad_requests_are_refused_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let (agent, _, http) = start_agent(dir.path(), sink.addr);
    use std::io::{Read, Write};
    let exchange = |content_type: &str, body: &[u8]| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        let head = format!(
            "POST /v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let resp = exchange(
        "application/json",
        b"{\"resourceLogs\":[{\"scopeLogs\":7}]}",
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("\"code\":3"), "{resp}");
    let resp = exchange("application/xml", b"<logs/>");
    assert!(resp.starts_with("HTTP/1.1 415"), "{resp}");
    assert_eq!(agent.stop(), 0, "still healthy after bad input");
    assert!(BIN.ends_with("centimane"));
}
