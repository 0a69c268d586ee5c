//! Proto messages to operations and answers back to proto messages: the only place that
//! knows both the generated types and the domain types.

use tonic::Status;

use super::proto;
use crate::error::Error;
use crate::key::{Algorithm, KeyDescriptor, SignatureFormat};
use crate::service::{
    AnchorChecked, FingerprintOp, Minted, SignOp, Signed, Verified, VerifyFingerprintOp, VerifyOp,
};
use crate::signer::PublicKeyInfo;

/// A Sign request (or SignBatch item) as an operation.
pub fn sign_op(request: proto::SignRequest) -> SignOp {
    SignOp {
        format: signature_format(request.signature_format),
        key_id: request.key_id,
        message: request.message,
        message_crc32c: request.message_crc32c,
    }
}

/// A Fingerprint request (or FingerprintBatch item) as an operation.
pub fn fingerprint_op(request: proto::FingerprintRequest) -> FingerprintOp {
    FingerprintOp {
        key_id: request.key_id,
        tenant_id: request.tenant_id,
        procedure_id: request.procedure_id,
        factors: [request.factor_a, request.factor_b, request.factor_c],
        timestamp_ms: request.timestamp_ms,
        agent_id: request.agent_id,
    }
}

/// A Verify request (or VerifyBatch item) as an operation.
pub fn verify_op(request: proto::VerifyRequest) -> VerifyOp {
    VerifyOp {
        format: signature_format(request.signature_format),
        key_id: request.key_id,
        message: request.message,
        signature: request.signature,
        key_version: request.key_version,
        message_crc32c: request.message_crc32c,
        signature_crc32c: request.signature_crc32c,
    }
}

/// A VerifyFingerprint request (or batch item) as an operation.
pub fn verify_fingerprint_op(request: proto::VerifyFingerprintRequest) -> VerifyFingerprintOp {
    VerifyFingerprintOp {
        anchor: FingerprintOp {
            key_id: request.key_id,
            tenant_id: request.tenant_id,
            procedure_id: request.procedure_id,
            factors: [request.factor_a, request.factor_b, request.factor_c],
            timestamp_ms: request.timestamp_ms,
            agent_id: request.agent_id,
        },
        fingerprint: request.fingerprint,
        signature: request.signature,
        key_version: request.key_version,
    }
}

/// The answer to a Verify.
pub fn verify_response(verified: Verified) -> proto::VerifyResponse {
    proto::VerifyResponse {
        valid: verified.verdict.valid,
        key_id: verified.key_id,
        key_version: verified.verdict.key_version,
        algorithm: algorithm(verified.verdict.algorithm).into(),
        verified_message_crc32c: verified.message_crc32c_checked,
        verified_signature_crc32c: verified.signature_crc32c_checked,
    }
}

/// The answer to a VerifyFingerprint.
pub fn verify_fingerprint_response(done: AnchorChecked) -> proto::VerifyFingerprintResponse {
    proto::VerifyFingerprintResponse {
        valid: done.checked.valid(),
        fingerprint_matches: done.checked.fingerprint_matches,
        signature_matches: done.checked.signature_matches,
        key_id: done.key_id,
        key_version: done.checked.key_version,
        expected_fingerprint: done.checked.expected_fingerprint,
    }
}

/// The answer to a VerifyBatch: one result per item, in order.
pub fn verify_batch_response(results: Vec<Result<Verified, Error>>) -> proto::VerifyBatchResponse {
    use proto::verify_batch_result::Result as One;
    proto::VerifyBatchResponse {
        results: each(results, |r| proto::VerifyBatchResult {
            result: Some(r.map_or_else(One::Error, |ok| One::Verdict(verify_response(ok)))),
        }),
    }
}

/// The answer to a VerifyFingerprintBatch: one result per item, in order.
pub fn verify_fingerprint_batch_response(
    results: Vec<Result<AnchorChecked, Error>>,
) -> proto::VerifyFingerprintBatchResponse {
    use proto::verify_fingerprint_batch_result::Result as One;
    proto::VerifyFingerprintBatchResponse {
        results: each(results, |r| proto::VerifyFingerprintBatchResult {
            result: Some(r.map_or_else(One::Error, |ok| {
                One::Verdict(verify_fingerprint_response(ok))
            })),
        }),
    }
}

/// The answer to a Sign.
pub fn sign_response(signed: Signed) -> proto::SignResponse {
    let signature = signed.signature;
    proto::SignResponse {
        signature_crc32c: crc32c::crc32c(&signature.bytes),
        verified_message_crc32c: signed.crc32c_checked,
        signature: signature.bytes,
        key_id: signed.key_id,
        key_version: signature.key_version,
        algorithm: algorithm(signature.algorithm).into(),
        signature_format: match signature.format {
            SignatureFormat::Raw => proto::SignatureFormat::Raw,
            SignatureFormat::Der => proto::SignatureFormat::Der,
        }
        .into(),
    }
}

/// The answer to a Fingerprint.
pub fn fingerprint_response(minted: Minted) -> proto::FingerprintResponse {
    proto::FingerprintResponse {
        fingerprint: minted.witness.fingerprint,
        signature: minted.witness.signature,
        timestamp_ms: minted.witness.timestamp_ms,
        key_version: minted.witness.key_version,
        algorithm: algorithm(minted.witness.algorithm).into(),
        key_id: minted.key_id,
    }
}

/// The answer to a SignBatch: one result per item, in order.
pub fn sign_batch_response(results: Vec<Result<Signed, Error>>) -> proto::SignBatchResponse {
    use proto::sign_batch_result::Result as One;
    proto::SignBatchResponse {
        results: each(results, |r| proto::SignBatchResult {
            result: Some(r.map_or_else(One::Error, |ok| One::Signature(sign_response(ok)))),
        }),
    }
}

/// The answer to a FingerprintBatch: one result per item, in order.
pub fn fingerprint_batch_response(
    results: Vec<Result<Minted, Error>>,
) -> proto::FingerprintBatchResponse {
    use proto::fingerprint_batch_result::Result as One;
    proto::FingerprintBatchResponse {
        results: each(results, |r| proto::FingerprintBatchResult {
            result: Some(
                r.map_or_else(One::Error, |ok| One::Fingerprint(fingerprint_response(ok))),
            ),
        }),
    }
}

/// The answer to a GetPublicKey.
pub fn public_key_response(info: PublicKeyInfo) -> Result<proto::GetPublicKeyResponse, Error> {
    let PublicKeyInfo {
        key,
        public_key,
        jwks,
    } = info;
    Ok(proto::GetPublicKeyResponse {
        algorithm: algorithm(key.algorithm).into(),
        raw: public_key.raw(),
        spki_der: public_key.spki_der()?,
        pem: public_key.pem()?,
        jwk: public_key.jwk(&key.kid()),
        jwk_thumbprint: public_key.jwk_thumbprint(),
        key_version: key.version,
        jwks,
        key_id: key.id,
    })
}

/// The answer to a ListKeys.
pub fn list_keys_response(keys: Vec<KeyDescriptor>) -> proto::ListKeysResponse {
    let keys = keys
        .into_iter()
        .map(|k| proto::KeyInfo {
            algorithm: algorithm(k.algorithm).into(),
            has_public_key: k.public_key.is_some(),
            key_version: k.version,
            can_sign: k.can_sign,
            key_id: k.id,
        })
        .collect();
    proto::ListKeysResponse { keys }
}

/// A batch's answers, one per item in order: each its own answer or its failure.
fn each<T, R>(
    results: Vec<Result<T, Error>>,
    answer: impl Fn(Result<T, proto::ItemError>) -> R,
) -> Vec<R> {
    results
        .into_iter()
        .map(|r| answer(r.map_err(item_error)))
        .collect()
}

/// One batch item's failure, exactly as the unary call would answer it.
fn item_error(error: Error) -> proto::ItemError {
    let status = Status::from(error);
    proto::ItemError {
        code: status.code() as i32,
        message: status.message().to_owned(),
    }
}

fn algorithm(a: Algorithm) -> proto::Algorithm {
    match a {
        Algorithm::Ed25519 => proto::Algorithm::Ed25519,
        Algorithm::EcdsaP256Sha256 => proto::Algorithm::EcdsaP256Sha256,
        Algorithm::HmacSha256 => proto::Algorithm::HmacSha256,
        Algorithm::MlDsa65 => proto::Algorithm::MlDsa65,
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
