//! The `otlp` exporter: OTLP/gRPC `LogsService/Export` through tonic.
//!
//! One batch is one request, sent and retried until the backend accepts it, rejects it for
//! good, or the agent abandons the drain (see [`crate::retry`]). Which failures are worth
//! retrying follows the OTLP specification ([`classify`]). The channel connects lazily, so
//! a backend that is down at startup is retried like any other outage rather than failing
//! the pipeline.

use crate::config::Fields;
use crate::retry::{self, Attempt, RetryConfig};
use centimane_core::SharedBatch;
use centimane_core::config::{ComponentId, GoDuration};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use std::fmt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Uri};
use tonic::{Code, Status};

/// The `otlp` exporter's config.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// As written: `host:port`, `http://host:port` or `https://host:port`.
    pub endpoint: String,
    pub tls: TlsConfig,
    pub headers: Headers,
    pub compression: Compression,
    /// Per request; zero means no limit.
    pub timeout: Duration,
    pub retry_on_failure: RetryConfig,
}

/// `tls`. Only `insecure` so far; other keys are refused rather than silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Plaintext for an endpoint without a scheme (a scheme decides on its own).
    pub insecure: bool,
}

/// `headers`: gRPC metadata sent with every request, in config order. Each name and value
/// was checked to be valid metadata when the config was parsed. Values are left out of
/// `Debug` output, since they are usually credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, _)| (name, "<redacted>")))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// The default, as in the Collector.
    Gzip,
    Zstd,
}

const KEYS: &[&str] = &[
    "endpoint",
    "tls",
    "headers",
    "compression",
    "timeout",
    "retry_on_failure",
];
const TLS_KEYS: &[&str] = &["insecure"];

pub(crate) fn parse(config: serde_json::Value) -> Result<OtlpConfig, String> {
    let mut f = Fields::new("", config, KEYS)?;
    let endpoint: String = f
        .take("endpoint")?
        .ok_or("`endpoint` is required: the backend's `host:port`")?;
    let tls = match f.take_raw("tls") {
        None => TlsConfig::default(),
        Some(block) => {
            let mut t = Fields::new("tls.", block, TLS_KEYS)?;
            TlsConfig {
                insecure: t.take("insecure")?.unwrap_or(false),
            }
        }
    };
    target(&endpoint, tls.insecure)?;
    let headers = match f.take::<serde_json::Map<String, serde_json::Value>>("headers")? {
        None => Headers::default(),
        Some(map) => {
            let mut headers = Vec::with_capacity(map.len());
            for (name, value) in map {
                let serde_json::Value::String(value) = value else {
                    return Err(format!("`headers.{name}`: the value must be a string"));
                };
                metadata_pair(&name, &value)?;
                headers.push((name, value));
            }
            Headers(headers)
        }
    };
    let compression = match f.take::<String>("compression")?.as_deref() {
        None | Some("gzip") => Compression::Gzip,
        Some("none" | "") => Compression::None,
        Some("zstd") => Compression::Zstd,
        Some(other) => {
            return Err(format!(
                "`compression` must be `gzip`, `zstd` or `none`, not {other:?}"
            ));
        }
    };
    let timeout = f
        .take::<GoDuration>("timeout")?
        .map_or(Duration::from_secs(5), Duration::from);
    let retry_on_failure = match f.take_raw("retry_on_failure") {
        None => RetryConfig::default(),
        Some(block) => retry::parse(block)?,
    };
    Ok(OtlpConfig {
        endpoint,
        tls,
        headers,
        compression,
        timeout,
        retry_on_failure,
    })
}

/// The URI to dial and whether to use TLS. A scheme decides (`http://` plaintext,
/// `https://` TLS); without one, TLS unless `tls.insecure`, as in the Collector.
fn target(endpoint: &str, insecure: bool) -> Result<(Uri, bool), String> {
    let bad = |why: &str| format!("`endpoint`: {endpoint:?} {why}");
    let (text, tls) = if endpoint.starts_with("http://") {
        (endpoint.to_owned(), false)
    } else if endpoint.starts_with("https://") {
        (endpoint.to_owned(), true)
    } else if endpoint.contains("://") {
        return Err(bad("has a scheme other than http:// or https://"));
    } else if insecure {
        (format!("http://{endpoint}"), false)
    } else {
        (format!("https://{endpoint}"), true)
    };
    let uri: Uri = text
        .parse()
        .map_err(|e| bad(&format!("is not a valid `host:port` or URL ({e})")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !endpoint.contains("://") && uri.port().is_none() {
        return Err(bad(
            "has no port: write it as `host:port`, e.g. `collector:4317`",
        ));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad(
            "has a path, which gRPC does not use (for OTLP/HTTP use the otlphttp exporter)",
        ));
    }
    Ok((uri, tls))
}

/// One `headers` entry as gRPC metadata; errors name the key.
fn metadata_pair(
    name: &str,
    value: &str,
) -> Result<(AsciiMetadataKey, AsciiMetadataValue), String> {
    let key = AsciiMetadataKey::from_bytes(name.as_bytes()).map_err(|_| {
        format!(
            "`headers.{name}`: not a valid header name (letters, digits and `-_.` only; binary `-bin` headers are not supported)"
        )
    })?;
    let mut value = AsciiMetadataValue::try_from(value).map_err(|_| {
        format!("`headers.{name}`: the value must be visible ASCII characters and spaces only")
    })?;
    // Keeps it out of Debug output and out of HTTP/2 header compression tables.
    value.set_sensitive(true);
    Ok((key, value))
}

/// Builds the client (no connection yet) and returns the exporter's task.
pub(crate) fn start(
    id: ComponentId,
    config: OtlpConfig,
    input: mpsc::Receiver<SharedBatch>,
    abandon: CancellationToken,
) -> Result<impl Future<Output = ()> + Send + 'static, String> {
    let (uri, tls) = target(&config.endpoint, config.tls.insecure)?;
    let mut endpoint = Endpoint::from(uri)
        .user_agent(concat!("centimane/", env!("CARGO_PKG_VERSION")))
        .map_err(|e| e.to_string())?;
    if !config.timeout.is_zero() {
        endpoint = endpoint.connect_timeout(config.timeout);
    }
    if tls {
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().with_native_roots())
            .map_err(|e| format!("cannot set up TLS for {}: {e}", config.endpoint))?;
    }
    let mut client = LogsServiceClient::new(endpoint.connect_lazy());
    client = match config.compression {
        Compression::None => client,
        Compression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
        Compression::Zstd => client.send_compressed(CompressionEncoding::Zstd),
    };
    let headers = config
        .headers
        .0
        .iter()
        .map(|(name, value)| metadata_pair(name, value))
        .collect::<Result<Vec<_>, _>>()?;
    let sender = Sender {
        client,
        headers,
        timeout: config.timeout,
    };
    Ok(run(id, sender, config.retry_on_failure, input, abandon))
}

async fn run(
    id: ComponentId,
    sender: Sender,
    retry: RetryConfig,
    mut input: mpsc::Receiver<SharedBatch>,
    abandon: CancellationToken,
) {
    while let Some(batch) = crate::next_batch(&mut input, &abandon).await {
        let records = batch.len();
        if records == 0 {
            // Everything was filtered out upstream: nothing to send, the tokens still settle.
            batch.acks.delivered();
            continue;
        }
        let request = crate::to_otlp_request(&batch.entries);
        let outcome = retry::deliver(&id, records, &retry, &abandon, || {
            sender.send(&id, request.clone())
        })
        .await;
        if !retry::settle(&id, batch.acks, records, outcome) {
            return;
        }
    }
}

/// What one attempt needs.
struct Sender {
    client: LogsServiceClient<Channel>,
    headers: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    timeout: Duration,
}

impl Sender {
    /// One export call. The request is moved into tonic, so each attempt gets a copy.
    fn send(
        &self,
        id: &ComponentId,
        request: ExportLogsServiceRequest,
    ) -> impl Future<Output = Attempt> + use<> {
        // The client is a cheap handle onto the shared channel.
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(request);
        for (key, value) in &self.headers {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        let timeout = self.timeout;
        if !timeout.is_zero() {
            // Tells the server the deadline (grpc-timeout); tonic enforces it locally too.
            request.set_timeout(timeout);
        }
        let id = id.clone();
        async move {
            let call = client.export(request);
            let result = if timeout.is_zero() {
                call.await
            } else {
                // A second bound, in case connecting hangs before tonic's deadline applies.
                match tokio::time::timeout(timeout, call).await {
                    Ok(result) => result,
                    Err(_) => Err(Status::deadline_exceeded(format!(
                        "no response within {timeout:?}"
                    ))),
                }
            };
            let status = match result {
                Ok(response) => {
                    if let Some(partial) = response.into_inner().partial_success
                        && partial.rejected_log_records > 0
                    {
                        // Accepted all the same: resending would not change the verdict.
                        tracing::warn!(exporter = %id, rejected = partial.rejected_log_records, message = %partial.error_message, "the backend rejected some records of a batch it accepted");
                    }
                    return Attempt::Accepted;
                }
                Err(status) => status,
            };
            let error = format!("{:?}: {}", status.code(), status.message());
            match classify(&status) {
                Verdict::Retry { at_least } => Attempt::Retry { error, at_least },
                Verdict::Permanent => Attempt::Rejected(error),
            }
        }
    }
}

/// What to do after a failed export call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send again after backoff, waiting at least `at_least` if the server asked for it.
    Retry { at_least: Option<Duration> },
    /// Sending the same request again cannot succeed.
    Permanent,
}

/// The OTLP specification's rules for a failed call, plus one of ours: a failure raised by
/// the client's own transport (connection refused or reset, TLS handshake...) never reached
/// a server's judgement, so it is retried whatever code tonic gave it (tonic reports some of
/// them as UNKNOWN, which the specification would treat as permanent).
pub(crate) fn classify(status: &Status) -> Verdict {
    if is_transport_failure(status) {
        return Verdict::Retry { at_least: None };
    }
    classify_code(status.code(), status.details())
}

/// The specification's table: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
/// UNAVAILABLE and DATA_LOSS are retryable; RESOURCE_EXHAUSTED only when the server sent a
/// RetryInfo (it then expects to recover); everything else is permanent. A RetryInfo delay
/// in `details` (google.rpc.Status) is honoured.
pub(crate) fn classify_code(code: Code, details: &[u8]) -> Verdict {
    let retry_info = retry_info(details);
    let at_least = retry_info
        .as_ref()
        .and_then(|info| info.retry_delay.as_ref())
        .and_then(proto_duration);
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Verdict::Retry { at_least },
        Code::ResourceExhausted if retry_info.is_some() => Verdict::Retry { at_least },
        Code::Ok
        | Code::Unknown
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::Unimplemented
        | Code::Internal
        | Code::Unauthenticated => Verdict::Permanent,
    }
}

/// Whether the status was made by tonic from a local I/O or transport error rather than
/// sent by a server: such statuses carry the error as their source.
fn is_transport_failure(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::transport::Error>() || error.is::<std::io::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The subset of `google.rpc.Status` needed to find a RetryInfo (prost skips the rest).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The RetryInfo among the status details, if there is one that decodes.
fn retry_info(details: &[u8]) -> Option<RetryInfo> {
    use prost::Message;
    if details.is_empty() {
        return None;
    }
    let status = RpcStatus::decode(details).ok()?;
    status
        .details
        .iter()
        .filter(|any| any.type_url == RETRY_INFO_TYPE)
        .find_map(|any| RetryInfo::decode(any.value.as_slice()).ok())
}

/// A non-negative protobuf duration; `None` for a negative or malformed one.
fn proto_duration(d: &ProtoDuration) -> Option<Duration> {
    let seconds = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests;
