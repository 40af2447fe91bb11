//! The test server's plain-HTTP side, on axum.

use super::state::{Shared, Source};
use crate::proto::AgentToServer;
use crate::transport::http::PROTOBUF;
use crate::transport::{MAX_MESSAGE_BYTES, gunzip, gzip};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use std::sync::Arc;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(super::PATH, post(exchange))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(shared)
}

async fn exchange(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(after) = shared.take_throttle() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, after.as_secs().to_string())],
        )
            .into_response();
    }
    // The spec's marker of a plain-HTTP request; opamp-go compares it exactly too.
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some(PROTOBUF)
    {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/x-protobuf",
        )
            .into_response();
    }
    let gzipped = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"))
    };
    let body = if gzipped(header::CONTENT_ENCODING) {
        match gunzip(&body) {
            Ok(b) => b,
            Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
        }
    } else {
        body.to_vec()
    };
    let msg = match AgentToServer::decode(body.as_slice()) {
        Ok(m) => m,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed AgentToServer: {e}"),
            )
                .into_response();
        }
    };
    super::log_message(&msg, "http");
    let source = Source::Http {
        headers: super::header_list(&headers),
    };
    let reply = shared.handle(msg, source).unwrap_or_default();
    let encoded = reply.encode_to_vec();
    if gzipped(header::ACCEPT_ENCODING) {
        (
            [
                (header::CONTENT_TYPE, PROTOBUF),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            gzip(&encoded),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, PROTOBUF)], encoded).into_response()
    }
}
