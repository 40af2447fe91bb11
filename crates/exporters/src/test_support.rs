//! Helpers shared by the tests of several modules.

use centimane_core::{AckListener, AckStatus, AckToken, Entry, Timestamp, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Records what the acknowledgements of a test reported.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(u64, AckStatus)>>,
    notify: Notify,
}

impl AckListener for Recorder {
    fn on_ack(&self, id: u64, status: AckStatus) {
        self.seen.lock().unwrap().push((id, status));
        self.notify.notify_one();
    }
}

pub(crate) struct Acks(Arc<Recorder>);

impl Acks {
    pub(crate) fn new() -> Self {
        Acks(Arc::default())
    }

    pub(crate) fn token(&self, id: u64) -> AckToken {
        AckToken::new(id, self.0.clone())
    }

    /// What was reported so far.
    pub(crate) fn seen(&self) -> Vec<(u64, AckStatus)> {
        self.0.seen.lock().unwrap().clone()
    }

    /// Waits (at most 5 s) until `n` acknowledgements were reported, then returns them all.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<(u64, AckStatus)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, self.0.notify.notified())
                .await
                .is_err()
            {
                return seen;
            }
        }
    }
}

/// An entry with every field set.
pub(crate) fn entry_with_all_fields() -> Entry {
    let mut e = Entry::new(Value::from("user logged in\nagain"));
    e.timestamp = Some(
        "2026-11-23T21:00:00.123456789Z"
            .parse::<Timestamp>()
            .unwrap(),
    );
    e.observed_timestamp = "2026-11-23T21:00:00.2Z".parse::<Timestamp>().unwrap();
    e.severity = 9;
    e.severity_text = "INFO".into();
    e.resource.insert("host.name".into(), Value::from("web-1"));
    e.attributes.insert("n".into(), Value::Int(5));
    e.attributes.insert("ratio".into(), Value::Double(0.25));
    e.trace_id = (1..=16).collect();
    e.span_id = (0xa1..=0xa8).collect();
    e.trace_flags = vec![1];
    e.scope_name = "app".into();
    e
}

/// A throwaway PKI in a temporary directory: a CA, a server certificate it signed for
/// `127.0.0.1` and `localhost`, a client certificate it signed, and an unrelated CA.
pub(crate) struct Pki {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) ca_file: std::path::PathBuf,
    pub(crate) other_ca_file: std::path::PathBuf,
    pub(crate) ca_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
    pub(crate) client_cert_file: std::path::PathBuf,
    pub(crate) client_key_file: std::path::PathBuf,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let (ca_pem, issuer) = ca("centimane test CA");
        let (other_ca_pem, _) = ca("some other CA");
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert_pem, client_key_pem) = leaf(vec!["client.test".into()]);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca_file: write("ca.pem", &ca_pem),
            other_ca_file: write("other-ca.pem", &other_ca_pem),
            client_cert_file: write("client.pem", &client_cert_pem),
            client_key_file: write("client-key.pem", &client_key_pem),
            ca_pem,
            server_cert_pem,
            server_key_pem,
            _dir: dir,
        }
    }

    /// tonic's server TLS setup with the server certificate; `client_auth` also requires
    /// clients to present a certificate signed by the CA.
    pub(crate) fn server_tls(&self, client_auth: bool) -> tonic::transport::ServerTlsConfig {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let identity = Identity::from_pem(&self.server_cert_pem, &self.server_key_pem);
        let config = ServerTlsConfig::new().identity(identity);
        if client_auth {
            config.client_ca_root(Certificate::from_pem(&self.ca_pem))
        } else {
            config
        }
    }
}
