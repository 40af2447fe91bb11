//! `tls`: the Collector's client TLS settings, turned into one rustls setup shared by the
//! gRPC (tonic) and HTTP (reqwest) exporters, with the ring crypto provider.
//!
//! Certificates are verified by [`verifier`] in both exporters, so `ca_file`,
//! `insecure_skip_verify` and `server_name_override` mean the same thing in both. Files are
//! read when the exporter starts (not when the config is validated, which may happen on
//! another machine), and every error names the key and the file.

use crate::config::Fields;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Plaintext for an endpoint without a scheme (gRPC only: a scheme decides on its own).
    pub insecure: bool,
    /// Trust only the CA certificates (PEM) in this file instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. The connection is encrypted but anyone in between
    /// can read it: for tests only.
    pub insecure_skip_verify: bool,
    /// Check the server's certificate against this name instead of the endpoint's host
    /// (and send it as SNI).
    pub server_name_override: Option<String>,
}

const KEYS: &[&str] = &[
    "insecure",
    "ca_file",
    "cert_file",
    "key_file",
    "insecure_skip_verify",
    "server_name_override",
];

/// Parses a `tls` block; a missing block is `TlsConfig::default()`.
pub(crate) fn parse(block: Option<serde_json::Value>) -> Result<TlsConfig, String> {
    let Some(block) = block else {
        return Ok(TlsConfig::default());
    };
    let mut f = Fields::new("tls.", block, KEYS)?;
    let mut path = |key: &str| -> Result<Option<PathBuf>, String> {
        Ok(f.take::<String>(key)?
            .filter(|p| !p.is_empty())
            .map(PathBuf::from))
    };
    let (ca_file, cert_file, key_file) = (path("ca_file")?, path("cert_file")?, path("key_file")?);
    let config = TlsConfig {
        insecure: f.take("insecure")?.unwrap_or(false),
        ca_file,
        cert_file,
        key_file,
        insecure_skip_verify: f.take("insecure_skip_verify")?.unwrap_or(false),
        server_name_override: f
            .take::<String>("server_name_override")?
            .filter(|n| !n.is_empty()),
    };
    if config.cert_file.is_some() != config.key_file.is_some() {
        return Err(
            "`tls.cert_file` and `tls.key_file` go together: set both for a client certificate, or neither"
                .into(),
        );
    }
    if let Some(name) = &config.server_name_override {
        ServerName::try_from(name.as_str()).map_err(|_| {
            format!("`tls.server_name_override`: {name:?} is not a valid DNS name or IP address")
        })?;
    }
    Ok(config)
}

/// The crypto provider every TLS connection of ours uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// A client certificate and its key, read and checked.
pub(crate) struct ClientIdentity {
    /// The files' PEM text, for tonic (which parses it itself).
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

/// Reads `cert_file` and `key_file`, if set.
pub(crate) fn client_identity(config: &TlsConfig) -> Result<Option<ClientIdentity>, String> {
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Ok(None);
    };
    let cert_pem = read("tls.cert_file", cert_file)?;
    let key_pem = read("tls.key_file", key_file)?;
    let chain = certificates("tls.cert_file", cert_file, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "`tls.key_file`: no usable private key in {}: {e}",
            key_file.display()
        )
    })?;
    Ok(Some(ClientIdentity {
        cert_pem,
        key_pem,
        chain,
        key,
    }))
}

/// How server certificates are checked: against `ca_file` (or the system's CA certificates
/// without it), for the endpoint's host or `server_name_override`; or not at all with
/// `insecure_skip_verify`.
pub(crate) fn verifier(config: &TlsConfig) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let provider = provider();
    if config.insecure_skip_verify {
        return Ok(Arc::new(SkipVerify(provider)));
    }
    let mut roots = RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let pem = read("tls.ca_file", path)?;
            for cert in certificates("tls.ca_file", path, &pem)? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "`tls.ca_file`: a certificate in {} is not usable as a CA: {e}",
                        path.display()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "cannot set up TLS: no CA certificates found on this system ({} errors while looking); set `tls.ca_file`",
                    found.errors.len()
                ));
            }
        }
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("cannot set up TLS certificate verification: {e}"))?;
    Ok(match &config.server_name_override {
        None => webpki,
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|_| {
                format!(
                    "`tls.server_name_override`: {name:?} is not a valid DNS name or IP address"
                )
            })?;
            Arc::new(NameOverride {
                inner: webpki,
                name,
            })
        }
    })
}

/// The rustls client config for the HTTP exporter (HTTP/2 or HTTP/1.1 by ALPN).
pub(crate) fn client_config(config: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier(config)?);
    let mut client = match client_identity(config)? {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|e| format!("`tls.cert_file`/`tls.key_file`: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(client)
}

/// A TLS setup for a plain-HTTP endpoint. reqwest wants one all the same (built with
/// `rustls-no-provider`, it would otherwise look for a process-wide crypto provider and
/// panic without one); with no trusted roots, a redirect to https fails instead of going
/// to a server nobody configured.
pub(crate) fn unused_client_config() -> Result<rustls::ClientConfig, String> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("`{key}`: cannot read {}: {e}", path.display()))
}

fn certificates(
    key: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{key}`: {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "`{key}`: no certificate (`-----BEGIN CERTIFICATE-----`) in {}",
            path.display()
        ));
    }
    Ok(certs)
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake signatures are
/// still checked, so the connection is at least encrypted end to end with whoever answered.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `server_name_override`: full verification, but against the configured name. (reqwest
/// always checks the URL's host; tonic's `domain_name` alone would do for gRPC.)
#[derive(Debug)]
struct NameOverride {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether a failure somewhere in `error`'s chain is a TLS error (a certificate that does
/// not verify, a handshake the server refused). Such failures are configuration problems,
/// worth a hint in the log.
pub(crate) fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        // io::Error hides the error it wraps from `source()`; look inside.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && is_tls_failure(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// `error` and all its sources, `: `-separated, leaving out messages already said (errors
/// often repeat their source's message in their own).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    append_chain(&mut text, error);
    text
}

/// Appends `error` and its sources to `text` as [`error_chain`] does.
pub(crate) fn append_chain(text: &mut String, error: &(dyn std::error::Error + 'static)) {
    let mut next = Some(error);
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = e.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_keys() {
        assert_eq!(parse(None), Ok(TlsConfig::default()));
        let c = parse(Some(json!({
            "ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/k.pem",
            "insecure_skip_verify": true, "server_name_override": "backend.internal",
        })))
        .unwrap();
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        assert!(c.insecure_skip_verify);
        assert_eq!(c.server_name_override.as_deref(), Some("backend.internal"));
        for (block, want) in [
            (json!({"cert_file": "/c.pem"}), "`tls.key_file` go together"),
            (json!({"ca_fil": "/x"}), "did you mean `tls.ca_file`"),
            (
                json!({"server_name_override": "a b"}),
                "`tls.server_name_override`",
            ),
            (json!({"insecure": 1}), "`tls.insecure`"),
        ] {
            let err = parse(Some(block.clone())).unwrap_err();
            assert!(err.contains(want), "{block}: {err}");
        }
    }

    #[test]
    fn file_errors_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            ca_file: Some(dir.path().join("nope.pem")),
            ..TlsConfig::default()
        };
        let err = verifier(&missing).err().unwrap();
        assert!(
            err.starts_with("`tls.ca_file`: cannot read") && err.contains("nope.pem"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all").unwrap();
        let err = verifier(&TlsConfig {
            ca_file: Some(empty.clone()),
            ..TlsConfig::default()
        })
        .err()
        .unwrap();
        assert!(err.contains("no certificate"), "{err}");
        let err = client_identity(&TlsConfig {
            cert_file: Some(empty.clone()),
            key_file: Some(empty),
            ..TlsConfig::default()
        })
        .err()
        .unwrap();
        assert!(err.starts_with("`tls.cert_file`"), "{err}");
    }

    #[test]
    fn tls_failures_are_found_inside_io_errors() {
        let inner = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_tls_failure(&inner));
        assert!(!is_tls_failure(&std::io::Error::other("refused")));
        assert!(
            error_chain(&inner).contains("UnknownIssuer"),
            "{}",
            error_chain(&inner)
        );
    }
}
