//! Plain HTTP transport: each AgentToServer is a POST (gzip, `application/x-protobuf`,
//! `OpAMP-Instance-UID`), its ServerToAgent is the response body.

use super::{EXCHANGE_TIMEOUT, MAX_MESSAGE_BYTES, TransportError, gunzip, gzip};
use crate::backoff::parse_retry_after;
use crate::config::{Headers, ServerConfig};
use crate::proto::{AgentToServer, ServerToAgent};
use prost::Message;
use reqwest::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
    RETRY_AFTER,
};
use reqwest::{StatusCode, Url};
use std::collections::VecDeque;
use std::sync::Arc;
use uuid::Uuid;

pub const PROTOBUF: &str = "application/x-protobuf";
pub const INSTANCE_UID_HEADER: &str = "OpAMP-Instance-UID";

pub(crate) struct HttpConnector {
    target: Arc<Target>,
}

/// Where and how to POST; shared by every exchange.
struct Target {
    client: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
}

pub(crate) struct HttpConnection {
    target: Arc<Target>,
    /// Responses not yet handed out by `recv`.
    inbox: VecDeque<ServerToAgent>,
}

/// The configured headers as typed pairs (checked valid when the config was parsed).
pub(crate) fn header_pairs(headers: &Headers) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .0
        .iter()
        .map(|(name, value)| {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name:?}: {e}"))?;
            let v = HeaderValue::from_str(value).map_err(|e| format!("header {name:?}: {e}"))?;
            Ok((n, v))
        })
        .collect()
}

impl HttpConnector {
    pub(crate) fn new(server: &ServerConfig) -> Result<HttpConnector, String> {
        let endpoint =
            Url::parse(&server.endpoint).map_err(|e| format!("{:?}: {e}", server.endpoint))?;
        // Always our TLS config, even for http://: reqwest would otherwise look for a
        // process-wide rustls provider and panic without one.
        let tls = crate::tls::client_config(&server.tls)?;
        let client = reqwest::Client::builder()
            .timeout(EXCHANGE_TIMEOUT)
            .connect_timeout(EXCHANGE_TIMEOUT)
            .use_preconfigured_tls((*tls).clone())
            .build()
            .map_err(|e| format!("cannot build the OpAMP HTTP client: {e}"))?;
        Ok(HttpConnector {
            target: Arc::new(Target {
                client,
                endpoint,
                headers: header_pairs(&server.headers)?.into_iter().collect(),
            }),
        })
    }

    /// HTTP has no connection to open; each exchange stands alone.
    pub(crate) fn connect(&self) -> HttpConnection {
        HttpConnection {
            target: self.target.clone(),
            inbox: VecDeque::new(),
        }
    }
}

impl HttpConnection {
    pub(crate) async fn send(&mut self, msg: &AgentToServer) -> Result<(), TransportError> {
        let target = &self.target;
        let body = msg.encode_to_vec();
        if body.len() > MAX_MESSAGE_BYTES {
            tracing::error!(
                bytes = body.len(),
                "OpAMP message over the size limit dropped"
            );
            return Ok(());
        }
        let uid = Uuid::from_slice(&msg.instance_uid)
            .map(|u| u.to_string())
            .unwrap_or_default();
        let response = target
            .client
            .post(target.endpoint.clone())
            .headers(target.headers.clone())
            .header(CONTENT_TYPE, PROTOBUF)
            .header(CONTENT_ENCODING, "gzip")
            .header(ACCEPT_ENCODING, "gzip")
            .header(INSTANCE_UID_HEADER, uid)
            .body(gzip(&body))
            .send()
            .await
            .map_err(|e| TransportError::Lost(format!("POST {} failed: {e}", target.endpoint)))?;
        let status = response.status();
        match status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                return Err(TransportError::Throttled {
                    reason: format!("{} answered HTTP {status}", target.endpoint),
                    retry_after,
                });
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(TransportError::Rejected(format!(
                    "{} refused a message as too large (HTTP 413)",
                    target.endpoint
                )));
            }
            _ => {
                return Err(TransportError::Lost(format!(
                    "{} answered HTTP {status}",
                    target.endpoint
                )));
            }
        }
        let gzipped = response
            .headers()
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let mut response = response;
        let mut raw = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError::Lost(format!("reading the response failed: {e}")))?
        {
            if raw.len() + chunk.len() > MAX_MESSAGE_BYTES {
                tracing::error!("OpAMP response over the size limit discarded");
                return Ok(());
            }
            raw.extend_from_slice(&chunk);
        }
        let decoded = if gzipped { gunzip(&raw) } else { Ok(raw) }.and_then(|body| {
            ServerToAgent::decode(body.as_slice()).map_err(|e| format!("malformed protobuf: {e}"))
        });
        match decoded {
            Ok(msg) => self.inbox.push_back(msg),
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed OpAMP response"),
        }
        Ok(())
    }

    pub(crate) async fn recv(&mut self) -> Result<ServerToAgent, TransportError> {
        match self.inbox.pop_front() {
            Some(msg) => Ok(msg),
            None => std::future::pending().await,
        }
    }
}
