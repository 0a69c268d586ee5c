//! The TLS listener's side of a connection: the server configuration (its certificate and key,
//! client certificates required and verified against `client_ca`, ALPN `h2`), and the
//! handshake, which yields the verified client certificate's identity.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::error::Error;
use crate::identity::Identity;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// The server TLS settings: its certificate and key, and the CA that client certificates must
/// chain to (client certificates are required). `name` is the listener's, for errors.
pub(super) fn acceptor(
    name: &str,
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<TlsAcceptor, Error> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
    };
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        Error::Config(format!(
            "listen: {name}: the TLS configuration is invalid: {what}: {e}"
        ))
    };
    let certificates = |path: &Path| -> Result<Vec<CertificateDer<'static>>, Error> {
        let pem = read(path)?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&path.display().to_string(), &e))?;
        if certificates.is_empty() {
            return Err(invalid(&path.display().to_string(), &"no certificate"));
        }
        Ok(certificates)
    };
    let chain = certificates(cert)?;
    let key = {
        let pem = zeroize::Zeroizing::new(read(key)?);
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| invalid("the private key", &e))?
    };
    let mut roots = RootCertStore::empty();
    for ca in certificates(client_ca)? {
        roots
            .add(ca)
            .map_err(|e| invalid(&client_ca.display().to_string(), &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| invalid("client_ca", &e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("protocol versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| invalid("cert and key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the handshake (bounded by [`HANDSHAKE_TIME`]) and returns the stream with the identity
/// in the client's verified certificate.
pub(super) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Result<(TlsStream<TcpStream>, Identity), String> {
    let stream = tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(tcp))
        .await
        .map_err(|_| format!("no handshake within {} s", HANDSHAKE_TIME.as_secs()))?
        .map_err(|e| e.to_string())?;
    // The verifier requires a certificate, so a finished handshake has one; without one the
    // caller is nobody, whom no client rule matches.
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[_]>::first)
        .map_or(Identity::Anonymous, |c| {
            Identity::from_certificate_der(c.as_ref())
        });
    Ok((stream, identity))
}
