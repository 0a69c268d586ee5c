//! The `signet sign | public-key | fingerprint | list` commands: a small client of a running
//! agent over its unix socket, plain TCP (loopback) or TLS with a client certificate. Answers
//! are printed as base64, hex, PEM or JSON; a refused call prints its gRPC code and message.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use super::proto::signer_client::SignerClient;
use super::proto::{
    Algorithm, FingerprintRequest, GetPublicKeyRequest, ListKeysRequest, SignRequest,
    SignatureFormat,
};
use super::status::code_name;

/// Where the agent is, and how to prove who we are.
#[derive(Debug, Clone)]
pub enum Target {
    /// A unix socket (the caller is identified by its uid and gid).
    Unix(PathBuf),
    /// `host:port` over plain TCP (loopback only; identifies nobody).
    Tcp(String),
    /// `host:port` over TLS with a client certificate.
    Tls {
        /// `host:port`.
        address: String,
        /// The CA that issued the agent's certificate (PEM).
        ca: PathBuf,
        /// This client's certificate (PEM).
        cert: PathBuf,
        /// This client's private key (PEM).
        key: PathBuf,
        /// The name in the agent's certificate, if it is not the host of `address`.
        server_name: Option<String>,
    },
}

/// An agent to call, and how long a call may take (connection included).
#[derive(Debug, Clone)]
pub struct Agent {
    /// Where it is.
    pub target: Target,
    /// The deadline of each call, sent to the agent as `grpc-timeout`.
    pub timeout: Duration,
}

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong: a refused call keeps its gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent answered with an error status.
    #[error("{code}: {message}")]
    Status {
        /// The gRPC code's name, e.g. `NOT_FOUND`.
        code: &'static str,
        /// The agent's message.
        message: String,
    },
    /// No connection, or a local problem (files, arguments).
    #[error("{0}")]
    Local(String),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Status {
            code: code_name(status.code()),
            message: status.message().to_owned(),
        }
    }
}

/// How to print a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Standard base64 (default for signatures).
    Base64,
    /// Lowercase hex.
    Hex,
    /// A JSON object with the signature and what made it.
    Json,
    /// PEM (public keys only; the default for them).
    Pem,
    /// The JWK (public keys only).
    Jwk,
}

/// Connects to the agent.
pub async fn connect(agent: &Agent) -> Result<SignerClient<Channel>, ClientError> {
    let failed = |e: tonic::transport::Error| {
        ClientError::Local(format!("cannot connect to the agent: {e} ({e:?})"))
    };
    let endpoint = |uri: String| {
        Endpoint::from_shared(uri)
            .map(|e| e.connect_timeout(CONNECT_TIMEOUT).timeout(agent.timeout))
    };
    let channel = match &agent.target {
        Target::Unix(path) => {
            let path = path.clone();
            endpoint("http://signet.invalid".to_owned())
                .map_err(failed)?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::time::timeout(
                            CONNECT_TIMEOUT,
                            tokio::net::UnixStream::connect(path),
                        )
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(failed)?
        }
        Target::Tcp(address) => endpoint(format!("http://{address}"))
            .map_err(failed)?
            .connect()
            .await
            .map_err(failed)?,
        Target::Tls {
            address,
            ca,
            cert,
            key,
            server_name,
        } => {
            let read = |p: &PathBuf| {
                std::fs::read(p)
                    .map_err(|e| ClientError::Local(format!("reading {}: {e}", p.display())))
            };
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(ca)?))
                .identity(Identity::from_pem(read(cert)?, read(key)?));
            if let Some(name) = server_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint(format!("https://{address}"))
                .map_err(failed)?
                .tls_config(tls)
                .map_err(failed)?
                .connect()
                .await
                .map_err(failed)?
        }
    };
    Ok(SignerClient::new(channel).max_decoding_message_size(64 << 20))
}

/// `signet sign`: signs `message` and renders the signature.
pub async fn sign(
    agent: &Agent,
    key_id: String,
    message: Vec<u8>,
    der: bool,
    output: Output,
) -> Result<String, ClientError> {
    let crc = crc32c::crc32c(&message);
    let format = if der {
        SignatureFormat::Der
    } else {
        SignatureFormat::Raw
    };
    let response = connect(agent)
        .await?
        .sign(SignRequest {
            key_id,
            message,
            signature_format: Some(format.into()),
            message_crc32c: Some(crc),
        })
        .await?
        .into_inner();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&response.signature);
    Ok(match output {
        Output::Hex => hex::encode(&response.signature),
        Output::Json => serde_json::json!({
            "key_id": response.key_id,
            "key_version": response.key_version,
            "algorithm": algorithm_name(response.algorithm),
            "signature_format": if der { "der" } else { "raw" },
            "signature": b64,
        })
        .to_string(),
        Output::Base64 | Output::Pem | Output::Jwk => b64,
    })
}

/// `signet public-key`: the key's public key as PEM (default), JWK, base64 or hex of the raw
/// key, or a JSON object with every form.
pub async fn public_key(
    agent: &Agent,
    key_id: String,
    key_version: Option<u32>,
    output: Output,
) -> Result<String, ClientError> {
    let r = connect(agent)
        .await?
        .get_public_key(GetPublicKeyRequest {
            key_id,
            key_version,
        })
        .await?
        .into_inner();
    Ok(match output {
        Output::Pem => r.pem.trim_end().to_owned(),
        Output::Jwk => r.jwk,
        Output::Base64 => base64::engine::general_purpose::STANDARD.encode(&r.raw),
        Output::Hex => hex::encode(&r.raw),
        Output::Json => serde_json::json!({
            "key_id": r.key_id,
            "key_version": r.key_version,
            "algorithm": algorithm_name(r.algorithm),
            "raw_hex": hex::encode(&r.raw),
            "pem": r.pem,
            "jwk": serde_json::from_str::<serde_json::Value>(&r.jwk).unwrap_or_default(),
            "jwk_thumbprint": r.jwk_thumbprint,
            "jwks": serde_json::from_str::<serde_json::Value>(&r.jwks).unwrap_or_default(),
        })
        .to_string(),
    })
}

/// `signet fingerprint`: mints and signs an SWT3 anchor.
pub async fn fingerprint(
    agent: &Agent,
    request: FingerprintRequest,
    output: Output,
) -> Result<String, ClientError> {
    let r = connect(agent)
        .await?
        .fingerprint(request)
        .await?
        .into_inner();
    Ok(match output {
        Output::Json | Output::Pem | Output::Jwk => serde_json::json!({
            "key_id": r.key_id,
            "key_version": r.key_version,
            "signing_key_id": r.key_id,
            "signing_key_version": r.key_version,
            "fingerprint": r.fingerprint,
            "signature": r.signature,
            "timestamp_ms": r.timestamp_ms,
        })
        .to_string(),
        Output::Hex | Output::Base64 => format!("{} {}", r.fingerprint, r.signature),
    })
}

/// `signet list`: the keys the agent serves, as a table or JSON.
pub async fn list(agent: &Agent, json: bool) -> Result<String, ClientError> {
    let keys = connect(agent)
        .await?
        .list_keys(ListKeysRequest {})
        .await?
        .into_inner()
        .keys;
    if json {
        let keys: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key_id": k.key_id,
                    "algorithm": algorithm_name(k.algorithm),
                    "has_public_key": k.has_public_key,
                    "key_version": k.key_version,
                    "can_sign": k.can_sign,
                })
            })
            .collect();
        return Ok(serde_json::Value::Array(keys).to_string());
    }
    let mut text = format!("{:<32} ALGORITHM", "KEY ID");
    for k in keys {
        text.push_str(&format!(
            "\n{:<32} {}",
            k.key_id,
            algorithm_name(k.algorithm)
        ));
    }
    Ok(text)
}

fn algorithm_name(value: i32) -> &'static str {
    match Algorithm::try_from(value) {
        Ok(Algorithm::Ed25519) => "ed25519",
        Ok(Algorithm::EcdsaP256Sha256) => "ecdsa-p256-sha256",
        Ok(Algorithm::HmacSha256) => "hmac-sha256",
        _ => "unknown",
    }
}
