//! OTLP/HTTP: `POST <logs_url_path>` with a protobuf (`application/x-protobuf`) or JSON
//! (`application/json`) `ExportLogsServiceRequest`, optionally compressed (`gzip`,
//! `deflate` or `zstd` `Content-Encoding`).
//!
//! Answers as the OTLP/HTTP spec says, in the request's encoding: 200 with an
//! `ExportLogsServiceResponse` once the data is acknowledged downstream; 400 with a
//! `google.rpc.Status` (code `INVALID_ARGUMENT`) for a body that can't be decoded or
//! decompressed; 413 for a body over `max_request_body_size` (before or after
//! decompression); 415 for another content type; 503 with a `google.rpc.Status` (code
//! `UNAVAILABLE`) when the data was not accepted, so the client retries. Other methods get
//! 405 and other paths 404.

use super::config::HttpConfig;
use super::convert::to_entries;
use super::deliver::{DEFAULT_WAIT, Gateway};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use std::io::Read;
use std::sync::Arc;
use tokio::time::Instant;

/// gRPC status codes used in `google.rpc.Status` bodies.
const INVALID_ARGUMENT: i32 = 3;
const UNAVAILABLE: i32 = 14;

struct HttpState {
    gateway: Arc<Gateway>,
    max_body: usize,
}

pub(crate) fn router(gateway: Arc<Gateway>, config: &HttpConfig) -> Router {
    let state = Arc::new(HttpState {
        gateway,
        max_body: config.max_request_body_size,
    });
    Router::new()
        .route(&config.logs_url_path, post(export))
        .with_state(state)
}

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn from_headers(headers: &HeaderMap) -> Option<Format> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media_type = value.split(';').next()?.trim().to_ascii_lowercase();
        match media_type.as_str() {
            "application/x-protobuf" => Some(Format::Protobuf),
            "application/json" => Some(Format::Json),
            _ => None,
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        })
    }

    fn decode(self, data: &[u8]) -> Result<ExportLogsServiceRequest, String> {
        match self {
            Format::Protobuf => ExportLogsServiceRequest::decode(data).map_err(|e| {
                format!("the body is not a valid protobuf ExportLogsServiceRequest: {e}")
            }),
            Format::Json => serde_json::from_slice(data).map_err(|e| {
                format!("the body is not a valid OTLP/JSON ExportLogsServiceRequest: {e}")
            }),
        }
    }
}

/// `google.rpc.Status`, without details.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn export(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    let Some(format) = Format::from_headers(&headers) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(header::CONTENT_TYPE, "text/plain")],
            "415 unsupported media type, supported: [application/json, application/x-protobuf]",
        )
            .into_response();
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let data = match read_body(body, state.max_body).await {
        Ok(raw) => decompress(&encoding, raw, state.max_body),
        Err(e) => Err(e),
    };
    let data = match data {
        Ok(d) => d,
        Err((code, message)) => return status(format, code, INVALID_ARGUMENT, message),
    };
    let request = match format.decode(&data) {
        Ok(r) => r,
        Err(message) => return status(format, StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message),
    };
    drop(data);
    let entries = to_entries(request);
    match state
        .gateway
        .deliver(entries, Instant::now() + DEFAULT_WAIT)
        .await
    {
        Ok(()) => {
            let body = match format {
                Format::Protobuf => ExportLogsServiceResponse::default().encode_to_vec(),
                Format::Json => b"{}".to_vec(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, format.content_type())],
                body,
            )
                .into_response()
        }
        Err(refused) => status(
            format,
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            refused.message().to_owned(),
        ),
    }
}

type Failure = (StatusCode, String);

/// The whole body, refusing it as soon as it is over `limit`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Failure> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("can't read the request body: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Undoes `Content-Encoding`, reading at most `limit` bytes of output (a small compressed
/// body can expand without bound).
fn decompress(encoding: &str, data: Bytes, limit: usize) -> Result<Bytes, Failure> {
    let reader: Box<dyn Read + '_> = match encoding {
        "" | "identity" => return Ok(data),
        "gzip" => Box::new(flate2::read::MultiGzDecoder::new(&data[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&data[..])),
        "zstd" => Box::new(zstd::stream::read::Decoder::new(&data[..]).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("can't start zstd decoding: {e}"),
            )
        })?),
        other => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("unsupported Content-Encoding {other:?} (supported: gzip, deflate, zstd)"),
            ));
        }
    };
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the {encoding} body can't be decompressed: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(out))
}

fn too_large(limit: usize) -> Failure {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over the {limit}-byte limit (`max_request_body_size`)"),
    )
}

/// An error response carrying a `google.rpc.Status` in the request's encoding.
fn status(format: Format, http: StatusCode, code: i32, message: String) -> Response {
    let body = match format {
        Format::Protobuf => RpcStatus { code, message }.encode_to_vec(),
        Format::Json => serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    };
    (http, [(header::CONTENT_TYPE, format.content_type())], body).into_response()
}
