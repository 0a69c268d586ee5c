//! The `signet.v1.Signer` service: validates and converts each request at the edge, calls the
//! tonic-free [`crate::signer::Signer`], and converts the answer back.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::proto::{self, signer_server};
use crate::error::Error;
use crate::key::{Algorithm, SignatureFormat};
use crate::signer::Signer;
use crate::swt3::Anchor;

/// The gRPC face of a [`Signer`].
#[derive(Clone)]
pub struct SignerService {
    signer: Arc<Signer>,
}

impl SignerService {
    /// Serves `signer`.
    pub fn new(signer: Arc<Signer>) -> Self {
        SignerService { signer }
    }
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
        let proto::SignRequest {
            key_id,
            message,
            signature_format: format,
        } = request.into_inner();
        let format = signature_format(format)?;
        let signature = self.signer.sign(&key_id, message, format).await?;
        Ok(Response::new(proto::SignResponse {
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
        let r = request.into_inner();
        let anchor = Anchor::new(
            &r.tenant_id,
            &r.procedure_id,
            [r.factor_a, r.factor_b, r.factor_c],
            r.timestamp_ms,
            r.agent_id.as_deref(),
        )?;
        let witness = self.signer.fingerprint(&r.key_id, anchor).await?;
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
