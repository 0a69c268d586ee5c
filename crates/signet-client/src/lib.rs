//! A Rust client of the Signet signing agent: connect over its unix socket or TLS, then sign,
//! read public keys, witness SWT3 anchors and list keys, with typed answers and typed errors.
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod code;
mod connect;
mod error;
mod types;
mod verify;

use std::path::Path;
use std::time::Duration;

use tonic::transport::Channel;

pub use code::Code;
pub use connect::Tls;
pub use error::Error;
/// The tonic this crate is built on, for calls through [`Client::stub`].
pub use tonic;
pub use types::{Algorithm, Anchor, KeyInfo, PublicKey, Signature, SignatureFormat, Witness};
pub use verify::{AnchorVerdict, Verdict};
pub use zeroize::Zeroizing;

/// The generated protobuf types and tonic stub of `signet.v1` (the agent's own
/// `proto/signet/v1/signer.proto`), for RPCs this crate does not wrap; see [`Client::stub`].
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("signet.v1");
}

use proto::signer_client::SignerClient;

/// The deadline of each call unless [`Client::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer accepted (a batch of signatures can be large).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// A connection to an agent. Cloning is cheap and shares the connection; calls may run
/// concurrently.
#[derive(Debug, Clone)]
pub struct Client {
    stub: SignerClient<Channel>,
    timeout: Duration,
}

impl Client {
    /// Connects to the agent's unix socket (the agent identifies the caller by its uid/gid).
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Client, Error> {
        Ok(Client::over(
            connect::unix(path.as_ref().to_path_buf()).await?,
        ))
    }

    /// Connects over plain TCP to `address` (`host:port`): only for an agent listening on
    /// loopback, where the caller is nobody in particular.
    pub async fn connect_tcp(address: &str) -> Result<Client, Error> {
        Ok(Client::over(connect::tcp(address).await?))
    }

    /// Connects over TLS to `endpoint` (`host:port` or `https://host:port`), trusting `ca_pem`
    /// and proving who we are with a client certificate and its key (PEM). The key may be a
    /// `Vec<u8>` or a [`Zeroizing`] one; this crate's copy is zeroed when the client goes.
    pub async fn connect_tls(
        endpoint: &str,
        ca_pem: impl Into<Vec<u8>>,
        client_cert_pem: impl Into<Vec<u8>>,
        client_key_pem: impl Into<Zeroizing<Vec<u8>>>,
    ) -> Result<Client, Error> {
        let tls = Tls::new(ca_pem, client_cert_pem, client_key_pem);
        Client::connect_tls_with(endpoint, tls).await
    }

    /// [`Client::connect_tls`] with all the [`Tls`] settings (e.g. the expected server name).
    pub async fn connect_tls_with(endpoint: &str, tls: Tls) -> Result<Client, Error> {
        Ok(Client::over(connect::tls(endpoint, tls).await?))
    }

    fn over(channel: Channel) -> Client {
        Client {
            stub: SignerClient::new(channel).max_decoding_message_size(MAX_ANSWER_BYTES),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same connection whose calls each have `timeout` as deadline (sent to the agent as
    /// `grpc-timeout`, and enforced here): a call past it fails with
    /// [`Error::DeadlineExceeded`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Signs exactly `message` with `key_id`, in the key's fixed-size form
    /// ([`SignatureFormat::Raw`]). The message travels with its CRC32C (the agent refuses it
    /// with `INVALID_ARGUMENT` if it arrived damaged) and the signature's CRC32C is checked
    /// here ([`Error::Corrupted`] when it does not match).
    pub async fn sign(
        &self,
        key_id: &str,
        message: impl Into<Vec<u8>>,
    ) -> Result<Signature, Error> {
        self.sign_as(key_id, message, SignatureFormat::Raw).await
    }

    /// [`Client::sign`] with a DER-encoded ECDSA signature, as X.509 and OpenSSL want it
    /// (P-256 keys only; other keys are refused with `INVALID_ARGUMENT`).
    pub async fn sign_der(
        &self,
        key_id: &str,
        message: impl Into<Vec<u8>>,
    ) -> Result<Signature, Error> {
        self.sign_as(key_id, message, SignatureFormat::Der).await
    }

    /// [`Client::sign`] with the signature encoded as `format` says.
    pub async fn sign_as(
        &self,
        key_id: &str,
        message: impl Into<Vec<u8>>,
        format: SignatureFormat,
    ) -> Result<Signature, Error> {
        let message = message.into();
        // `..Default::default()`: fields the proto gains need no change here.
        #[allow(clippy::needless_update)]
        let request = proto::SignRequest {
            key_id: key_id.to_owned(),
            message_crc32c: Some(crc32c::crc32c(&message)),
            message,
            signature_format: Some(format.to_proto().into()),
            ..Default::default()
        };
        let answer = self
            .stub
            .clone()
            .sign(self.request(request))
            .await?
            .into_inner();
        checked(answer, format)
    }

    /// The public key of the asymmetric key `key_id` (an HMAC key has none:
    /// `FAILED_PRECONDITION`).
    pub async fn public_key(&self, key_id: &str) -> Result<PublicKey, Error> {
        self.public_key_version(key_id, None).await
    }

    /// [`Client::public_key`] of one version of the key (`None`: the primary version), with
    /// the JWK Set of every version that may verify.
    pub async fn public_key_version(
        &self,
        key_id: &str,
        key_version: Option<u32>,
    ) -> Result<PublicKey, Error> {
        #[allow(clippy::needless_update)]
        let request = proto::GetPublicKeyRequest {
            key_id: key_id.to_owned(),
            key_version,
            ..Default::default()
        };
        let answer = self
            .stub
            .clone()
            .get_public_key(self.request(request))
            .await?;
        Ok(answer.into_inner().into())
    }

    /// Witnesses an SWT3 `anchor` with the HMAC key `key_id`: the agent mints the fingerprint
    /// and signs it, byte for byte as the swt3-ai SDK does.
    pub async fn fingerprint(&self, key_id: &str, anchor: &Anchor) -> Result<Witness, Error> {
        let request = self.request(anchor.request(key_id));
        let answer = self.stub.clone().fingerprint(request).await?;
        Ok(answer.into_inner().into())
    }

    /// The keys the agent serves, sorted by id.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, Error> {
        let request = self.request(proto::ListKeysRequest::default());
        let answer = self.stub.clone().list_keys(request).await?.into_inner();
        Ok(answer.keys.into_iter().map(KeyInfo::from).collect())
    }

    /// The generated tonic client on this connection, for the RPCs this crate does not wrap
    /// (batches, and whatever the agent gains). It has no deadline of its own: set one with
    /// `tonic::Request::set_timeout`.
    pub fn stub(&self) -> SignerClient<Channel> {
        self.stub.clone()
    }
}

/// The signature of a Sign answer, if it is intact and what was asked for.
fn checked(answer: proto::SignResponse, format: SignatureFormat) -> Result<Signature, Error> {
    let crc = crc32c::crc32c(&answer.signature);
    if crc != answer.signature_crc32c {
        return Err(Error::Corrupted {
            message: format!(
                "the signature's CRC32C is {crc:#010x}, the agent sent {:#010x}",
                answer.signature_crc32c
            ),
        });
    }
    if !answer.verified_message_crc32c {
        return Err(Error::Corrupted {
            message: "the agent did not confirm the message's CRC32C".to_owned(),
        });
    }
    if answer.signature_format != i32::from(format.to_proto()) {
        return Err(Error::Corrupted {
            message: format!(
                "asked for a {format:?} signature, the agent answered format {}",
                answer.signature_format
            ),
        });
    }
    Ok(Signature {
        bytes: answer.signature,
        algorithm: Algorithm::from_i32(answer.algorithm),
        format,
        key_id: answer.key_id,
        key_version: answer.key_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(signature: &[u8]) -> proto::SignResponse {
        #[allow(clippy::needless_update)]
        proto::SignResponse {
            signature: signature.to_vec(),
            key_id: "k".into(),
            algorithm: proto::Algorithm::Ed25519.into(),
            signature_format: proto::SignatureFormat::Raw.into(),
            signature_crc32c: crc32c::crc32c(signature),
            verified_message_crc32c: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_intact_answer_is_accepted() {
        let signature = checked(answer(b"sig"), SignatureFormat::Raw).expect("intact");
        assert_eq!(signature.bytes, b"sig");
        assert_eq!(signature.algorithm, Algorithm::Ed25519);
    }

    #[test]
    fn a_damaged_or_unexpected_answer_is_refused() {
        let mut damaged = answer(b"sig");
        damaged.signature[0] ^= 1;
        let mut unconfirmed = answer(b"sig");
        unconfirmed.verified_message_crc32c = false;
        for (bad, format) in [
            (damaged, SignatureFormat::Raw),
            (unconfirmed, SignatureFormat::Raw),
            (answer(b"sig"), SignatureFormat::Der),
        ] {
            let error = checked(bad, format).expect_err("refused");
            assert_eq!(error.code(), Code::DataLoss, "{error}");
        }
    }
}
