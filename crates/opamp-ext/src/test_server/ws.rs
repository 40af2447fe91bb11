//! The test server's WebSocket side: one task per connection.

use super::state::{Outgoing, Shared, Source};
use crate::proto::AgentToServer;
use crate::transport::{MAX_MESSAGE_BYTES, decode_ws_frame, encode_ws_frame};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

fn refuse(status: StatusCode, retry_after: Option<u64>) -> ErrorResponse {
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = status;
    if let Some(secs) = retry_after {
        response.headers_mut().insert(
            "retry-after",
            secs.to_string().parse().expect("digits are a header value"),
        );
    }
    response
}

pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, stop: CancellationToken) {
    let mut headers = Vec::new();
    // The handshake's Callback trait fixes the (large) error type.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        if request.uri().path() != super::PATH {
            return Err(refuse(StatusCode::NOT_FOUND, None));
        }
        if let Some(after) = shared.take_throttle() {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(after.as_secs()),
            ));
        }
        headers = super::header_list(request.headers());
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let mut ws =
        match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
        {
            Ok(ws) => ws,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket handshake failed");
                return;
            }
        };
    let conn_id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut first = true;
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(None).await;
                break;
            }
            Some(out) = rx.recv() => {
                let frame = match out {
                    Outgoing::Message(msg) => encode_ws_frame(msg.as_ref()),
                    Outgoing::Raw(data) => data,
                };
                if ws.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            incoming = ws.next() => {
                let data = match incoming {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let msg = match decode_ws_frame::<AgentToServer>(&data) {
                    Ok(msg) => msg,
                    Err(e) => {
                        tracing::warn!(error = %e, "test server: malformed message from an agent");
                        continue;
                    }
                };
                super::log_message(&msg, "ws");
                let source = Source::WebSocket { conn_id, first, tx: tx.clone(), headers: headers.clone() };
                first = false;
                if let Some(reply) = shared.handle(msg, source)
                        && ws.send(Message::Binary(encode_ws_frame(&reply).into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    shared.unbind(conn_id);
}
