//! The two OpAMP transports behind one interface: WebSocket (full duplex) and plain HTTP
//! (the client POSTs, the answer comes back in the response). [`Connection::recv`] hands
//! out what the server sent; for HTTP those are the responses to earlier sends.

pub(crate) mod http;
pub(crate) mod ws;

use crate::config::{ServerConfig, Transport};
use crate::proto::{AgentToServer, ServerToAgent};
use std::io::{Read, Write};
use std::time::Duration;

/// The spec's recommended limit for one message, in both directions (after decompression).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How long a connect or an HTTP exchange may take before it counts as a failure.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TransportError {
    /// The connection is gone or unusable: reconnect after a backoff.
    Lost(String),
    /// The server is overloaded (HTTP 429/503): reconnect after at least `retry_after`.
    Throttled {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server refused this message for good (HTTP 413): drop it and go on.
    Rejected(String),
}

/// Opens connections to the configured server.
pub(crate) enum Connector {
    Ws(ws::WsConnector),
    Http(http::HttpConnector),
}

pub(crate) enum Connection {
    Ws(ws::WsConnection),
    Http(http::HttpConnection),
}

impl Connector {
    pub(crate) fn new(server: &ServerConfig) -> Result<Connector, String> {
        match server.transport {
            Transport::WebSocket => ws::WsConnector::new(server).map(Connector::Ws),
            Transport::Http { .. } => http::HttpConnector::new(server).map(Connector::Http),
        }
    }

    pub(crate) async fn connect(&self) -> Result<Connection, TransportError> {
        match self {
            Connector::Ws(c) => c.connect().await.map(Connection::Ws),
            Connector::Http(c) => Ok(Connection::Http(c.connect())),
        }
    }
}

impl Connection {
    pub(crate) async fn send(&mut self, msg: &AgentToServer) -> Result<(), TransportError> {
        match self {
            Connection::Ws(c) => c.send(msg).await,
            Connection::Http(c) => c.send(msg).await,
        }
    }

    pub(crate) fn is_websocket(&self) -> bool {
        matches!(self, Connection::Ws(_))
    }

    /// The next message from the server. Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn recv(&mut self) -> Result<ServerToAgent, TransportError> {
        match self {
            Connection::Ws(c) => c.recv().await,
            Connection::Http(c) => c.recv().await,
        }
    }

    /// Ends the connection politely (WebSocket close handshake); the caller has already
    /// sent the AgentDisconnect.
    pub(crate) async fn close(self) {
        if let Connection::Ws(c) = self {
            c.close().await;
        }
    }
}

/// A WebSocket message: the varint header (0 in this spec version, one byte) followed by
/// the protobuf.
pub fn encode_ws_frame<M: prost::Message>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.encoded_len() + 1);
    out.push(0);
    msg.encode(&mut out).expect("a Vec grows as needed");
    out
}

/// Decodes a WebSocket message; a header other than 0 makes it malformed, as the spec says.
pub fn decode_ws_frame<M: prost::Message + Default>(data: &[u8]) -> Result<M, String> {
    let mut buf = data;
    let header = prost::encoding::decode_varint(&mut buf)
        .map_err(|e| format!("bad WebSocket message header: {e}"))?;
    if header != 0 {
        return Err(format!("unknown WebSocket message header {header}"));
    }
    M::decode(buf).map_err(|e| format!("malformed protobuf: {e}"))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec does not fail");
    enc.finish().expect("writing to a Vec does not fail")
}

/// Decompresses at most [`MAX_MESSAGE_BYTES`]; more is an error (a gzip bomb is refused
/// without being inflated whole).
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad gzip body: {e}"))?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "body over {MAX_MESSAGE_BYTES} bytes once decompressed"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_frames_round_trip_and_bad_ones_are_errors() {
        let msg = AgentToServer {
            sequence_num: 7,
            capabilities: 1,
            ..AgentToServer::default()
        };
        let frame = encode_ws_frame(&msg);
        assert_eq!(frame[0], 0);
        assert_eq!(decode_ws_frame::<AgentToServer>(&frame).unwrap(), msg);
        // An empty message is valid (all fields unset).
        assert_eq!(
            decode_ws_frame::<AgentToServer>(&[0]).unwrap(),
            AgentToServer::default()
        );
        assert!(decode_ws_frame::<AgentToServer>(&[1, 8, 1]).is_err());
        assert!(decode_ws_frame::<AgentToServer>(&[]).is_err());
        assert!(decode_ws_frame::<AgentToServer>(&[0, 0xff, 0xff]).is_err());
    }

    #[test]
    fn gzip_round_trip_and_garbage() {
        let data = b"hello hello hello".repeat(100);
        assert_eq!(gunzip(&gzip(&data)).unwrap(), data);
        assert!(gunzip(b"not gzip").is_err());
    }
}
