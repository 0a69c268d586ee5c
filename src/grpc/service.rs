//! The `signet.v1.Signer` service: validates and converts each request at the edge, calls the
//! tonic-free [`crate::signer::Signer`], and converts the answer back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::arrival::Arrival;
use super::proto::{self, signer_server};
use crate::error::Error;
use crate::key::{Algorithm, SignatureFormat};
use crate::signer::Signer;
use crate::swt3::Anchor;

/// The most a client deadline is brought forward (see [`SignerService::deadline`]).
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// The gRPC face of a [`Signer`].
#[derive(Clone)]
pub struct SignerService {
    signer: Arc<Signer>,
    /// The deadline of calls whose client set none.
    default_timeout: Duration,
}

impl SignerService {
    /// Serves `signer`; calls without a client deadline get `default_timeout`.
    pub fn new(signer: Arc<Signer>, default_timeout: Duration) -> Self {
        SignerService {
            signer,
            default_timeout,
        }
    }

    /// The call's deadline: the client's `grpc-timeout`, capped at the default timeout, so no
    /// call waits longer than the agent allows.
    ///
    /// Measured from the request's [`Arrival`], before its body was read. A client deadline is
    /// brought forward by a small margin: tonic's server enforces the same header around this
    /// service and answers `CANCELLED` when it fires, so the agent must give its precise
    /// `DEADLINE_EXCEEDED` first.
    fn deadline<T>(&self, request: &Request<T>) -> Result<Instant, Error> {
        let arrived = request
            .extensions()
            .get::<Arrival>()
            .map_or_else(Instant::now, |a| a.0);
        let timeout = match request.metadata().get("grpc-timeout") {
            None => self.default_timeout,
            Some(value) => {
                let timeout = value
                    .to_str()
                    .ok()
                    .and_then(parse_grpc_timeout)
                    .ok_or_else(|| {
                        Error::InvalidArgument("the grpc-timeout header is malformed".into())
                    })?;
                let margin = (timeout / 10).min(DEADLINE_MARGIN);
                (timeout - margin).min(self.default_timeout)
            }
        };
        Ok(arrived + timeout)
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n), as the gRPC
/// over HTTP/2 protocol defines it.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn algorithm(a: Algorithm) -> proto::Algorithm {
    match a {
        Algorithm::Ed25519 => proto::Algorithm::Ed25519,
        Algorithm::EcdsaP256Sha256 => proto::Algorithm::EcdsaP256Sha256,
        Algorithm::HmacSha256 => proto::Algorithm::HmacSha256,
    }
}

fn signature_format(value: Option<i32>) -> Result<SignatureFormat, Error> {
    let Some(value) = value else {
        return Ok(SignatureFormat::Raw);
    };
    match proto::SignatureFormat::try_from(value) {
        Ok(proto::SignatureFormat::Raw) => Ok(SignatureFormat::Raw),
        Ok(proto::SignatureFormat::Der) => Ok(SignatureFormat::Der),
        Ok(proto::SignatureFormat::Unspecified) => Err(Error::InvalidArgument(
            "signature_format is SIGNATURE_FORMAT_UNSPECIFIED: set RAW or DER, or leave the \
             field out for RAW"
                .into(),
        )),
        Err(_) => Err(Error::InvalidArgument(format!(
            "signature_format {value} is not a known SignatureFormat"
        ))),
    }
}

#[tonic::async_trait]
impl signer_server::Signer for SignerService {
    async fn sign(
        &self,
        request: Request<proto::SignRequest>,
    ) -> Result<Response<proto::SignResponse>, Status> {
        let deadline = self.deadline(&request)?;
        let proto::SignRequest {
            key_id,
            message,
            signature_format: format,
            message_crc32c,
        } = request.into_inner();
        let format = signature_format(format)?;
        if let Some(expected) = message_crc32c {
            let received = crc32c::crc32c(&message);
            if received != expected {
                return Err(Error::ChecksumMismatch { expected, received }.into());
            }
        }
        let signature = self.signer.sign(&key_id, message, format, deadline).await?;
        Ok(Response::new(proto::SignResponse {
            signature_crc32c: crc32c::crc32c(&signature.bytes),
            verified_message_crc32c: message_crc32c.is_some(),
            signature: signature.bytes,
            key_id,
            algorithm: algorithm(signature.algorithm).into(),
            signature_format: match signature.format {
                SignatureFormat::Raw => proto::SignatureFormat::Raw,
                SignatureFormat::Der => proto::SignatureFormat::Der,
            }
            .into(),
        }))
    }

    async fn get_public_key(
        &self,
        request: Request<proto::GetPublicKeyRequest>,
    ) -> Result<Response<proto::GetPublicKeyResponse>, Status> {
        let key_id = request.into_inner().key_id;
        let (key, public_key) = self.signer.public_key(&key_id)?;
        Ok(Response::new(proto::GetPublicKeyResponse {
            algorithm: algorithm(key.algorithm).into(),
            raw: public_key.raw(),
            spki_der: public_key.spki_der()?,
            pem: public_key.pem()?,
            jwk: public_key.jwk(&key_id),
            jwk_thumbprint: public_key.jwk_thumbprint(),
            key_id,
        }))
    }

    async fn fingerprint(
        &self,
        request: Request<proto::FingerprintRequest>,
    ) -> Result<Response<proto::FingerprintResponse>, Status> {
        let deadline = self.deadline(&request)?;
        let r = request.into_inner();
        let anchor = Anchor::new(
            &r.tenant_id,
            &r.procedure_id,
            [r.factor_a, r.factor_b, r.factor_c],
            r.timestamp_ms,
            r.agent_id.as_deref(),
        )?;
        let witness = self.signer.fingerprint(&r.key_id, anchor, deadline).await?;
        Ok(Response::new(proto::FingerprintResponse {
            fingerprint: witness.fingerprint,
            signature: witness.signature,
            timestamp_ms: witness.timestamp_ms,
            key_id: r.key_id,
        }))
    }

    async fn list_keys(
        &self,
        _request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        let keys = self
            .signer
            .keys()
            .into_iter()
            .map(|k| proto::KeyInfo {
                algorithm: algorithm(k.algorithm).into(),
                has_public_key: k.public_key.is_some(),
                key_id: k.id,
            })
            .collect();
        Ok(Response::new(proto::ListKeysResponse { keys }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S", "5 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
