//! Channels to the agent: its unix socket, plain TCP (loopback), or TLS with a client
//! certificate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};
use zeroize::Zeroizing;

use crate::Error;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS settings of a connection: the CA that issued the agent's certificate, and this
/// client's certificate and private key (all PEM). The key is kept in memory that is zeroed
/// when this value is dropped; its `Debug` shows no key.
#[derive(Clone)]
pub struct Tls {
    ca_pem: Vec<u8>,
    client_cert_pem: Vec<u8>,
    client_key_pem: Zeroizing<Vec<u8>>,
    server_name: Option<String>,
}

impl Tls {
    /// The settings for a client certificate issued under the same trust as the agent's.
    /// `client_key_pem` may be a `Vec<u8>` (moved, not copied) or a `Zeroizing<Vec<u8>>`.
    pub fn new(
        ca_pem: impl Into<Vec<u8>>,
        client_cert_pem: impl Into<Vec<u8>>,
        client_key_pem: impl Into<Zeroizing<Vec<u8>>>,
    ) -> Self {
        Tls {
            ca_pem: ca_pem.into(),
            client_cert_pem: client_cert_pem.into(),
            client_key_pem: client_key_pem.into(),
            server_name: None,
        }
    }

    /// The name to expect in the agent's certificate, when it is not the endpoint's host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field(
                "client_cert_pem",
                &format_args!("{} bytes", self.client_cert_pem.len()),
            )
            .field("client_key_pem", &"<redacted>")
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn endpoint(uri: String) -> Result<Endpoint, Error> {
    Ok(Endpoint::from_shared(uri)?.connect_timeout(CONNECT_TIMEOUT))
}

/// `host:port` as a URI with `scheme`, unless it names a scheme already.
fn with_scheme(address: &str, scheme: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("{scheme}://{address}")
    }
}

/// A channel over the unix socket at `path`.
pub(crate) async fn unix(path: PathBuf) -> Result<Channel, Error> {
    let channel = endpoint("http://signet.invalid".to_owned())?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path))
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(channel)
}

/// A channel over plain TCP to `address` (`host:port`).
pub(crate) async fn tcp(address: &str) -> Result<Channel, Error> {
    Ok(endpoint(with_scheme(address, "http"))?.connect().await?)
}

/// A channel over TLS to `address` (`host:port` or `https://host:port`).
pub(crate) async fn tls(address: &str, tls: Tls) -> Result<Channel, Error> {
    // tonic copies the PEM into the connection's settings, which it keeps to reconnect.
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(
            &tls.client_cert_pem,
            tls.client_key_pem.as_slice(),
        ));
    if let Some(name) = tls.server_name {
        config = config.domain_name(name);
    }
    Ok(endpoint(with_scheme(address, "https"))?
        .tls_config(config)?
        .connect()
        .await?)
}
