//! The rustls client config both transports use, built from the `tls` block.
//!
//! The ring provider is passed explicitly instead of relying on a process-wide default,
//! so the client works whether or not the agent installed one.

use crate::config::TlsConfig;
use crate::proto::{TlsCertificate, TlsConnectionSettings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// Builds the client config. Only HTTP/1.1 is offered in ALPN: a WebSocket upgrade needs
/// it, and OpAMP's plain-HTTP exchange gains nothing from HTTP/2.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, String> {
    build(tls.insecure_skip_verify, roots(tls)?, None)
}

/// The client config for a destination the server offered (own telemetry): its
/// `TLSConnectionSettings` (else the system's CAs) and its client certificate, if any.
pub(crate) fn offered_client_config(
    tls: Option<&TlsConnectionSettings>,
    certificate: Option<&TlsCertificate>,
) -> Result<Arc<ClientConfig>, String> {
    let skip = tls.is_some_and(|t| t.insecure_skip_verify);
    let roots = match tls.filter(|t| !t.ca_pem_contents.is_empty()) {
        None => system_roots(),
        Some(t) => {
            let mut store = if t.include_system_ca_certs_pool {
                system_roots()
            } else {
                RootCertStore::empty()
            };
            let certs = CertificateDer::pem_slice_iter(t.ca_pem_contents.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the offered `ca_pem_contents` is not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the offered `ca_pem_contents` holds no certificate".into());
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("the offered `ca_pem_contents`: {e}"))?;
            }
            store
        }
    };
    let client_auth = match certificate.filter(|c| !c.cert.is_empty()) {
        None => None,
        Some(c) => {
            let chain = CertificateDer::pem_slice_iter(&c.cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the offered client certificate is not PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&c.private_key)
                .map_err(|e| format!("the offered client key is not a PEM private key: {e}"))?;
            Some((chain, key))
        }
    };
    build(skip, roots, client_auth)
}

type ClientAuth = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn build(
    insecure_skip_verify: bool,
    roots: RootCertStore,
    client_auth: Option<ClientAuth>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let builder = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                provider.signature_verification_algorithms,
            )))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = match client_auth {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the client certificate is unusable: {e}"))?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn roots(tls: &TlsConfig) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("`tls.ca_file`: cannot read {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "`tls.ca_file`: {} holds no certificate",
                    path.display()
                ));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("`tls.ca_file`: {}: {e}", path.display()))?;
            }
        }
        None => store = system_roots(),
    }
    Ok(store)
}

fn system_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "skipping a system CA certificate");
    }
    store.add_parsable_certificates(found.certs);
    store
}

/// `insecure_skip_verify`: any certificate is accepted, but handshake signatures are still
/// checked, so the session is at least bound to the key the server presented.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
