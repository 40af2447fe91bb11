//! The `otlphttp` exporter: OTLP/HTTP, `POST <endpoint>/v1/logs` with a protobuf
//! (`encoding: proto`, the default) or OTLP/JSON (`encoding: json`) body, through reqwest
//! with rustls.
//!
//! Which answers are worth retrying follows the OTLP/HTTP specification ([`classify`]):
//! 429, 502, 503 and 504 are retried, honouring `Retry-After`; any other status outside
//! 2xx rejects the request for good. Failures before an answer (connection refused, reset,
//! timeout, TLS) are retried.

use crate::client::{self, Compression, Headers};
use crate::config::Fields;
use crate::otlp_json;
use crate::queue::{self, SendingQueueConfig};
use crate::retry::{self, Attempt, Partial, RetryConfig};
use crate::rpc::RpcStatus;
use crate::sending::Transport;
use crate::tls::{self, TlsConfig};
use bytes::Bytes;
use centimane_core::config::GoDuration;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The `otlphttp` exporter's config.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpHttpConfig {
    /// Where logs are posted: `logs_endpoint` as written, or `endpoint` + `/v1/logs`.
    pub logs_url: String,
    pub encoding: Encoding,
    pub tls: TlsConfig,
    pub headers: Headers,
    pub compression: Compression,
    /// Per request, until the whole answer is read; zero means no limit.
    pub timeout: Duration,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf` (the default).
    Proto,
    /// `application/json`, OTLP/JSON.
    Json,
}

const KEYS: &[&str] = &[
    "endpoint",
    "logs_endpoint",
    "encoding",
    "tls",
    "headers",
    "compression",
    "timeout",
    "retry_on_failure",
    "sending_queue",
];

/// The most of an answer's body that is read (a partial success or an error message).
const BODY_LIMIT: usize = 64 << 10;

pub(crate) fn parse(config: serde_json::Value) -> Result<OtlpHttpConfig, String> {
    let mut f = Fields::new("", config, KEYS)?;
    let endpoint = f.take::<String>("endpoint")?;
    let logs_endpoint = f.take::<String>("logs_endpoint")?;
    let logs_url = match (logs_endpoint, endpoint) {
        (Some(url), _) => parse_url("logs_endpoint", &url)?,
        (None, Some(base)) => {
            let mut url = parse_url("endpoint", &base)?;
            // As the Collector: the signal's path is appended to whatever path is there.
            let path = format!("{}/v1/logs", url.path().trim_end_matches('/'));
            url.set_path(&path);
            url
        }
        (None, None) => {
            return Err(
                "`endpoint` is required: the backend's base URL, e.g. `https://collector:4318` (or set `logs_endpoint`)"
                    .into(),
            );
        }
    };
    let encoding = match f.take::<String>("encoding")?.as_deref() {
        None | Some("proto") => Encoding::Proto,
        Some("json") => Encoding::Json,
        Some(other) => {
            return Err(format!(
                "`encoding` must be `proto` or `json`, not {other:?}"
            ));
        }
    };
    let tls = tls::parse(f.take_raw("tls"))?;
    let headers = client::take_headers(&mut f, |name, value| header_pair(name, value).map(|_| ()))?;
    let compression = client::take_compression(&mut f)?;
    let timeout = f
        .take::<GoDuration>("timeout")?
        .map_or(Duration::from_secs(30), Duration::from);
    let retry_on_failure = match f.take_raw("retry_on_failure") {
        None => RetryConfig::default(),
        Some(block) => retry::parse(block)?,
    };
    let sending_queue = queue::parse(f.take_raw("sending_queue"))?;
    Ok(OtlpHttpConfig {
        logs_url: logs_url.to_string(),
        encoding,
        tls,
        headers,
        compression,
        timeout,
        retry_on_failure,
        sending_queue,
    })
}

fn parse_url(key: &str, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| {
        format!("`{key}`: {text:?} is not a URL ({e}); write it like `https://collector:4318`")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{key}`: {text:?} must start with http:// or https://"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{key}`: {text:?} has no host"));
    }
    Ok(url)
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let key = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`headers.{name}`: not a valid HTTP header name"))?;
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        format!("`headers.{name}`: the value must be visible ASCII characters and spaces only")
    })?;
    // Keeps it out of HTTP/2 header compression tables and Debug output.
    value.set_sensitive(true);
    Ok((key, value))
}

/// Builds the client (no connection yet): reads the TLS files and checks them.
pub(crate) fn transport(config: &OtlpHttpConfig) -> Result<HttpTransport, String> {
    let url = Url::parse(&config.logs_url).map_err(|e| format!("`endpoint`: {e}"))?;
    let tls = if url.scheme() == "https" {
        tls::client_config(&config.tls)?
    } else {
        tls::unused_client_config()?
    };
    let client = reqwest::Client::builder()
        .user_agent(concat!("centimane/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", tls::error_chain(&e)))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers.0 {
        let (name, value) = header_pair(name, value)?;
        headers.append(name, value);
    }
    let content_type = match config.encoding {
        Encoding::Proto => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(name) = config.compression.name() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
    }
    Ok(HttpTransport {
        client,
        url,
        headers,
        encoding: config.encoding,
        compression: config.compression,
        timeout: config.timeout,
        tls_failing: AtomicBool::new(false),
    })
}

/// Posts requests through one pooled client, shared by every consumer.
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    url: Url,
    /// The configured headers plus Content-Type and Content-Encoding.
    headers: HeaderMap,
    encoding: Encoding,
    compression: Compression,
    timeout: Duration,
    /// Whether the last attempt failed in TLS, so that the hint is logged once per outage.
    tls_failing: AtomicBool,
}

impl HttpTransport {
    /// The request body: the payload in the configured encoding, compressed.
    fn body(&self, payload: &Bytes) -> Result<Bytes, String> {
        let encoded = match self.encoding {
            Encoding::Proto => payload.clone(),
            Encoding::Json => {
                let request = ExportLogsServiceRequest::decode(payload.as_ref())
                    .map_err(|e| format!("a queued request does not decode: {e}"))?;
                let mut json = Vec::new();
                otlp_json::write_line(&request, &mut json)
                    .map_err(|e| format!("cannot write the request as JSON: {e}"))?;
                json.pop(); // the line's `\n`
                Bytes::from(json)
            }
        };
        match self.compression {
            Compression::None => Ok(encoded),
            other => other
                .apply(&encoded)
                .map(Bytes::from)
                .map_err(|e| format!("cannot compress the request: {e}")),
        }
    }
}

impl Transport for HttpTransport {
    async fn send(&self, payload: Bytes, _records: u64) -> Attempt {
        let body = match self.body(&payload) {
            Ok(body) => body,
            Err(error) => return Attempt::Rejected(error),
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body);
        if !self.timeout.is_zero() {
            request = request.timeout(self.timeout);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let error = tls::error_chain(&e);
                if tls::is_tls_failure(&e) && !self.tls_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(url = %self.url, %error, "TLS with the backend failed; check `tls.ca_file` (the CA that signed the server's certificate), `tls.server_name_override` and the client certificate");
                }
                return Attempt::Retry {
                    error,
                    at_least: None,
                };
            }
        };
        self.tls_failing.store(false, Ordering::Relaxed);
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, jiff::Timestamp::now()));
        let json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = read_limited(response).await;
        classify(status, retry_after, json, &body)
    }
}

/// Up to [`BODY_LIMIT`] bytes of the answer's body; whatever arrived if reading fails
/// (the status alone decides what happens to the request).
async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = BODY_LIMIT - body.len();
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if body.len() >= BODY_LIMIT {
            break;
        }
    }
    body
}

/// What an answer means for the request (see the module docs). `json` says how the body
/// is encoded (OTLP/JSON, else protobuf).
fn classify(status: StatusCode, retry_after: Option<Duration>, json: bool, body: &[u8]) -> Attempt {
    if status.is_success() {
        return Attempt::Accepted(partial_success(json, body));
    }
    let error = match error_message(json, body) {
        Some(message) => format!("HTTP {status}: {message}"),
        None => format!("HTTP {status}"),
    };
    match status.as_u16() {
        429 | 502 | 503 | 504 => Attempt::Retry {
            error,
            at_least: retry_after,
        },
        _ => Attempt::Rejected(error),
    }
}

/// The partial success in a 2xx answer's body, if the server rejected records.
fn partial_success(json: bool, body: &[u8]) -> Option<Partial> {
    if body.is_empty() {
        return None;
    }
    let (rejected, message) = if json {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let partial = value.get("partialSuccess")?;
        // int64 is a string in OTLP/JSON; accept a bare number too.
        let rejected = match partial.get("rejectedLogRecords") {
            Some(serde_json::Value::String(s)) => s.parse::<i64>().ok()?,
            Some(serde_json::Value::Number(n)) => n.as_i64()?,
            _ => 0,
        };
        let message = partial
            .get("errorMessage")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        (rejected, message)
    } else {
        let partial = ExportLogsServiceResponse::decode(body)
            .ok()?
            .partial_success?;
        (partial.rejected_log_records, partial.error_message)
    };
    let rejected = u64::try_from(rejected).unwrap_or(0);
    if rejected == 0 {
        if !message.is_empty() {
            tracing::warn!(%message, "the backend accepted a request with a warning");
        }
        return None;
    }
    Some(Partial { rejected, message })
}

/// The message of an error answer: a `google.rpc.Status` (protobuf or JSON) as OTLP
/// servers send, else the start of the body as text.
fn error_message(json: bool, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let from_status = if json {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
    } else {
        RpcStatus::decode(body).ok().map(|s| s.message)
    };
    let message = from_status
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let one_line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(one_line.chars().take(300).collect())
}

/// A `Retry-After` value: delay seconds or an HTTP date (past dates mean no wait).
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.as_nanosecond().saturating_sub(now.as_nanosecond());
    Some(Duration::from_nanos(u64::try_from(wait).unwrap_or(0)))
}

#[cfg(test)]
mod tests;
