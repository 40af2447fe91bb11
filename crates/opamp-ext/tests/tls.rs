//! Both transports over TLS, against small rustls servers on loopback with a certificate
//! made for the test: `tls.ca_file`, `tls.insecure_skip_verify`, and refusal of an unknown
//! certificate.

mod common;

use centimane_opamp_ext::proto::{AgentToServer, ServerToAgent};
use centimane_opamp_ext::{Backoff, OpampConfig, parse_config, start};
use common::Fake;
use prost::Message as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio_tungstenite::tungstenite;

/// What a TLS server received: the instance uid and the Authorization header.
type Seen = (Vec<u8>, Option<String>);

struct TlsServer {
    port: u16,
    seen: mpsc::Receiver<Seen>,
    ca_pem: String,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

fn server_config(cert_pem: &str, key_pem: &str) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap(),
    )
}

/// Serves on 127.0.0.1 until the test process ends; `websocket` picks the protocol.
fn tls_server(websocket: bool) -> TlsServer {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let ca_pem = certified.cert.pem();
    let config = server_config(&ca_pem, &certified.signing_key.serialize_pem());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (config, tx) = (config.clone(), tx.clone());
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let conn = rustls::ServerConnection::new(config).unwrap();
                let tls = rustls::StreamOwned::new(conn, stream);
                if websocket {
                    serve_ws(tls, &tx);
                } else {
                    serve_http(tls, &tx);
                }
            });
        }
    });
    TlsServer {
        port,
        seen,
        ca_pem,
        _dir: dir,
        ca_file,
    }
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn serve_ws(tls: Tls, tx: &mpsc::Sender<Seen>) {
    let mut auth = None;
    // The handshake's Callback trait fixes the (large) error type.
    #[allow(clippy::result_large_err)]
    let callback = |req: &tungstenite::handshake::server::Request, resp| {
        auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(tls, callback) else {
        return;
    };
    while let Ok(msg) = ws.read() {
        if let tungstenite::Message::Binary(data) = msg {
            let msg = AgentToServer::decode(&data[1..]).unwrap();
            let _ = tx.send((msg.instance_uid.to_vec(), auth.clone()));
            let mut reply = vec![0];
            ServerToAgent {
                instance_uid: msg.instance_uid,
                ..ServerToAgent::default()
            }
            .encode(&mut reply)
            .unwrap();
            if ws.send(tungstenite::Message::Binary(reply.into())).is_err() {
                return;
            }
        }
    }
}

fn serve_http(tls: Tls, tx: &mpsc::Sender<Seen>) {
    let mut reader = BufReader::new(tls);
    loop {
        let mut length = 0;
        let mut auth = None;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => auth = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        let msg = AgentToServer::decode(raw.as_slice()).unwrap();
        let _ = tx.send((msg.instance_uid.to_vec(), auth));
        let reply = ServerToAgent {
            instance_uid: msg.instance_uid,
            ..ServerToAgent::default()
        }
        .encode_to_vec();
        let tls = reader.get_mut();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        );
        if tls
            .write_all(head.as_bytes())
            .and_then(|()| tls.write_all(&reply))
            .is_err()
        {
            return;
        }
    }
}

fn config(endpoint: String, websocket: bool, tls: Value) -> OpampConfig {
    let block =
        json!({"endpoint": endpoint, "headers": {"Authorization": "Bearer tls"}, "tls": tls});
    let server = if websocket {
        json!({"ws": block})
    } else {
        json!({"http": block})
    };
    let mut config = parse_config(json!({"server": server})).unwrap();
    config.reconnect = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };
    config
}

async fn first_message(server: &TlsServer, config: OpampConfig, wait: Duration) -> Option<Seen> {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(config, dir.path().into(), Fake::new()).unwrap();
    let seen = tokio::task::block_in_place(|| server.seen.recv_timeout(wait).ok());
    handle.shutdown().await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_with_a_ca_file() {
    for websocket in [false, true] {
        let server = tls_server(websocket);
        let scheme = if websocket { "wss" } else { "https" };
        let endpoint = format!("{scheme}://127.0.0.1:{}/v1/opamp", server.port);
        let seen = first_message(
            &server,
            config(endpoint, websocket, json!({"ca_file": server.ca_file})),
            Duration::from_secs(20),
        )
        .await;
        let (uid, auth) = seen.unwrap_or_else(|| panic!("{scheme}: nothing arrived"));
        assert_eq!(uid.len(), 16);
        assert_eq!(auth.as_deref(), Some("Bearer tls"), "{scheme}");
        assert!(server.ca_pem.contains("BEGIN CERTIFICATE"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_verify_accepts_an_unknown_certificate() {
    let server = tls_server(true);
    let endpoint = format!("wss://127.0.0.1:{}/v1/opamp", server.port);
    let seen = first_message(
        &server,
        config(endpoint, true, json!({"insecure_skip_verify": true})),
        Duration::from_secs(20),
    )
    .await;
    assert!(seen.is_some(), "nothing arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_certificate_is_refused() {
    for websocket in [false, true] {
        let server = tls_server(websocket);
        let scheme = if websocket { "wss" } else { "https" };
        let endpoint = format!("{scheme}://127.0.0.1:{}/v1/opamp", server.port);
        // Long enough for several attempts: every one must fail.
        let seen = first_message(
            &server,
            config(endpoint, websocket, json!({})),
            Duration::from_millis(1500),
        )
        .await;
        assert!(
            seen.is_none(),
            "{scheme}: a message got through an unverified certificate"
        );
    }
}

#[test]
fn a_missing_ca_file_is_a_start_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        "wss://127.0.0.1:1/v1/opamp".into(),
        true,
        json!({"ca_file": "/nonexistent/ca.pem"}),
    );
    let err = start(cfg, dir.path().into(), Fake::new())
        .err()
        .expect("start must fail");
    assert!(
        err.contains("tls.ca_file") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
