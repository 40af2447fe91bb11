//! The `otlp` exporter: OTLP/gRPC `LogsService/Export` through tonic.
//!
//! Requests come out of the sending queue already encoded ([`crate::sending`]), so the
//! call goes through [`codec::Raw`], which puts those bytes on the wire as they are. Which
//! failures are worth retrying follows the OTLP specification ([`classify`]). The channel
//! connects lazily, so a backend that is down at startup is retried like any other outage
//! rather than failing the pipeline.

mod codec;

use crate::client::{self, Compression, Headers};
use crate::config::Fields;
use crate::queue::{self, SendingQueueConfig};
use crate::retry::{self, Attempt, Partial, RetryConfig};
use crate::rpc::{proto_duration, retry_info};
use crate::sending::Transport;
use crate::tls::{self, TlsConfig};
use bytes::Bytes;
use centimane_core::config::GoDuration;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tonic::client::Grpc;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity, Uri};
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
    pub sending_queue: SendingQueueConfig,
}

const KEYS: &[&str] = &[
    "endpoint",
    "tls",
    "headers",
    "compression",
    "timeout",
    "retry_on_failure",
    "sending_queue",
];

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

pub(crate) fn parse(config: serde_json::Value) -> Result<OtlpConfig, String> {
    let mut f = Fields::new("", config, KEYS)?;
    let endpoint: String = f
        .take("endpoint")?
        .ok_or("`endpoint` is required: the backend's `host:port`")?;
    let tls = tls::parse(f.take_raw("tls"))?;
    target(&endpoint, tls.insecure)?;
    let headers =
        client::take_headers(&mut f, |name, value| metadata_pair(name, value).map(|_| ()))?;
    let compression = client::take_compression(&mut f)?;
    let timeout = f
        .take::<GoDuration>("timeout")?
        .map_or(Duration::from_secs(5), Duration::from);
    let retry_on_failure = match f.take_raw("retry_on_failure") {
        None => RetryConfig::default(),
        Some(block) => retry::parse(block)?,
    };
    let sending_queue = queue::parse(f.take_raw("sending_queue"))?;
    Ok(OtlpConfig {
        endpoint,
        tls,
        headers,
        compression,
        timeout,
        retry_on_failure,
        sending_queue,
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

/// Builds the client (no connection yet): reads the TLS files and checks them.
pub(crate) fn transport(config: &OtlpConfig) -> Result<GrpcTransport, String> {
    let (uri, use_tls) = target(&config.endpoint, config.tls.insecure)?;
    let mut endpoint = Endpoint::from(uri)
        .user_agent(concat!("centimane/", env!("CARGO_PKG_VERSION")))
        .map_err(|e| e.to_string())?;
    if !config.timeout.is_zero() {
        endpoint = endpoint.connect_timeout(config.timeout);
    }
    if use_tls {
        let mut tls_config = ClientTlsConfig::new();
        if let Some(identity) = tls::client_identity(&config.tls)? {
            tls_config =
                tls_config.identity(Identity::from_pem(identity.cert_pem, identity.key_pem));
        }
        if let Some(name) = &config.tls.server_name_override {
            tls_config = tls_config.domain_name(name.clone());
        }
        endpoint = endpoint
            .tls_config_with_verifier(tls_config, tls::verifier(&config.tls)?)
            .map_err(|e| {
                format!(
                    "cannot set up TLS for {}: {}",
                    config.endpoint,
                    tls::error_chain(&e)
                )
            })?;
    }
    let mut grpc = Grpc::new(endpoint.connect_lazy());
    if let Some(encoding) = match config.compression {
        Compression::None => None,
        Compression::Gzip => Some(CompressionEncoding::Gzip),
        Compression::Zstd => Some(CompressionEncoding::Zstd),
    } {
        grpc = grpc.send_compressed(encoding);
    }
    let headers = config
        .headers
        .0
        .iter()
        .map(|(name, value)| metadata_pair(name, value))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GrpcTransport {
        grpc,
        headers,
        timeout: config.timeout,
        endpoint: config.endpoint.clone(),
        tls_failing: AtomicBool::new(false),
    })
}

/// Sends requests over one lazily connected channel, shared by every consumer.
pub(crate) struct GrpcTransport {
    grpc: Grpc<Channel>,
    headers: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    timeout: Duration,
    endpoint: String,
    /// Whether the last attempt failed in TLS, so that the hint is logged once per outage.
    tls_failing: AtomicBool,
}

impl Transport for GrpcTransport {
    fn send(&self, payload: Bytes, _records: u64) -> impl Future<Output = Attempt> + Send {
        // The client is a cheap handle onto the shared channel.
        let mut grpc = self.grpc.clone();
        let mut request = tonic::Request::new(payload);
        for (key, value) in &self.headers {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        let timeout = self.timeout;
        if !timeout.is_zero() {
            // Tells the server the deadline (grpc-timeout); tonic enforces it locally too.
            request.set_timeout(timeout);
        }
        async move {
            let call = async {
                grpc.ready()
                    .await
                    .map_err(|e| Status::from_error(Box::new(e)))?;
                grpc.unary(request, PathAndQuery::from_static(EXPORT_PATH), codec::Raw)
                    .await
            };
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
                    self.tls_failing.store(false, Ordering::Relaxed);
                    return Attempt::Accepted(partial(response.into_inner()));
                }
                Err(status) => status,
            };
            let error = describe(&status);
            if tls::is_tls_failure(&status) && !self.tls_failing.swap(true, Ordering::Relaxed) {
                tracing::error!(endpoint = %self.endpoint, %error, "TLS with the backend failed; check `tls.ca_file` (the CA that signed the server's certificate), `tls.server_name_override` and the client certificate");
            }
            match classify(&status) {
                Verdict::Retry { at_least } => Attempt::Retry { error, at_least },
                Verdict::Permanent => Attempt::Rejected(error),
            }
        }
    }
}

/// The partial success of a response, if the server rejected records.
fn partial(response: ExportLogsServiceResponse) -> Option<Partial> {
    let partial = response.partial_success?;
    let rejected = u64::try_from(partial.rejected_log_records).unwrap_or(0);
    if rejected == 0 {
        if !partial.error_message.is_empty() {
            // The specification's way for a server to warn about an accepted request.
            tracing::warn!(message = %partial.error_message, "the backend accepted a request with a warning");
        }
        return None;
    }
    Some(Partial {
        rejected,
        message: partial.error_message,
    })
}

/// A status as one line: code, message and the chain of local errors behind it.
fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        tls::append_chain(&mut text, source);
    }
    text
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

#[cfg(test)]
mod tests;
