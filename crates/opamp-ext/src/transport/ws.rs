//! WebSocket transport: one binary WebSocket message per OpAMP message.

use super::{
    EXCHANGE_TIMEOUT, MAX_MESSAGE_BYTES, TransportError, decode_ws_frame, encode_ws_frame,
};
use crate::backoff::parse_retry_after;
use crate::config::ServerConfig;
use crate::proto::{AgentToServer, ServerToAgent};
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// How long the close handshake may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct WsConnector {
    endpoint: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `None` for `ws://`.
    tls: Option<Arc<ClientConfig>>,
}

pub(crate) struct WsConnection {
    /// Boxed: the stream is large and lives in an enum with the small HTTP connection.
    ws: Box<WebSocketStream<MaybeTlsStream<TcpStream>>>,
}

impl WsConnector {
    pub(crate) fn new(server: &ServerConfig) -> Result<WsConnector, String> {
        let tls = if server.endpoint.starts_with("wss://") {
            Some(crate::tls::client_config(&server.tls)?)
        } else {
            None
        };
        Ok(WsConnector {
            endpoint: server.endpoint.clone(),
            headers: super::http::header_pairs(&server.headers)?,
            tls,
        })
    }

    pub(crate) async fn connect(&self) -> Result<WsConnection, TransportError> {
        let mut request = self
            .endpoint
            .as_str()
            .into_client_request()
            .map_err(|e| TransportError::Lost(format!("bad WebSocket request: {e}")))?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connector = match &self.tls {
            Some(tls) => Connector::Rustls(tls.clone()),
            None => Connector::Plain,
        };
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            Some(connector),
        );
        match tokio::time::timeout(EXCHANGE_TIMEOUT, connecting).await {
            Err(_) => Err(TransportError::Lost(format!(
                "WebSocket connect to {} timed out",
                self.endpoint
            ))),
            Ok(Ok((ws, _))) => Ok(WsConnection { ws: Box::new(ws) }),
            Ok(Err(WsError::Http(response))) => {
                let status = response.status();
                let reason = format!(
                    "{} refused the WebSocket upgrade: HTTP {status}",
                    self.endpoint
                );
                if status.as_u16() == 429 || status.as_u16() == 503 {
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    Err(TransportError::Throttled {
                        reason,
                        retry_after,
                    })
                } else {
                    Err(TransportError::Lost(reason))
                }
            }
            Ok(Err(e)) => Err(TransportError::Lost(format!(
                "WebSocket connect to {} failed: {e}",
                self.endpoint
            ))),
        }
    }
}

impl WsConnection {
    pub(crate) async fn send(&mut self, msg: &AgentToServer) -> Result<(), TransportError> {
        let frame = encode_ws_frame(msg);
        if frame.len() > MAX_MESSAGE_BYTES {
            tracing::error!(
                bytes = frame.len(),
                "OpAMP message over the size limit dropped"
            );
            return Ok(());
        }
        self.ws
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|e| TransportError::Lost(format!("WebSocket send failed: {e}")))
    }

    pub(crate) async fn recv(&mut self) -> Result<ServerToAgent, TransportError> {
        loop {
            let msg = match self.ws.next().await {
                None => {
                    return Err(TransportError::Lost(
                        "the server closed the WebSocket".into(),
                    ));
                }
                Some(Err(e)) => {
                    return Err(TransportError::Lost(format!("WebSocket read failed: {e}")));
                }
                Some(Ok(msg)) => msg,
            };
            match msg {
                Message::Binary(data) => match decode_ws_frame::<ServerToAgent>(&data) {
                    Ok(msg) => return Ok(msg),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a malformed OpAMP message from the server")
                    }
                },
                Message::Close(frame) => {
                    let why = frame
                        .map(|f| format!(" ({} {})", f.code, f.reason))
                        .unwrap_or_default();
                    return Err(TransportError::Lost(format!(
                        "the server closed the WebSocket{why}"
                    )));
                }
                Message::Text(_) => {
                    tracing::warn!("ignoring a text WebSocket message (OpAMP is binary)")
                }
                // Pings are answered by tungstenite itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    pub(crate) async fn close(mut self) {
        let handshake = async {
            if self.ws.as_mut().close(None).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, handshake)
            .await
            .is_err()
        {
            tracing::debug!("WebSocket close handshake timed out");
        }
    }
}
