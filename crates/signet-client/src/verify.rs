//! Verification through the agent: HMAC tags are checked inside the HSM and asymmetric
//! signatures against the key the agent serves, so a verifier holds no secret at all.

use crate::proto;
use crate::types::{Algorithm, Anchor, SignatureFormat};
use crate::{Client, Error};

/// Whether a signature verifies, and against which version of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The signature is the key's valid signature of the message.
    pub valid: bool,
    /// The key.
    pub key_id: String,
    /// The version that matched; when none did, the version tried.
    pub key_version: u32,
    /// The key's algorithm.
    pub algorithm: Algorithm,
}

/// Whether an SWT3 anchor verifies, and which part failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnchorVerdict {
    /// `fingerprint_matches && signature_matches`.
    pub valid: bool,
    /// The fingerprint recomputed from the anchor's fields is the claimed one.
    pub fingerprint_matches: bool,
    /// The signature is the key's HMAC of the claimed fingerprint's payload.
    pub signature_matches: bool,
    /// The fingerprint the anchor's fields give.
    pub expected_fingerprint: String,
    /// The key.
    pub key_id: String,
    /// The version that matched, or the version tried.
    pub key_version: u32,
}

impl Client {
    /// Checks `signature` (encoded as `format`) over exactly `message` with the key `key_id`:
    /// the version given, or every verify-enabled version when `None`. A signature that does
    /// not verify is `Ok` with `valid: false`; malformed input is `Error::InvalidArgument`.
    /// Message and signature travel with their CRC32C, and the agent must confirm both.
    pub async fn verify(
        &self,
        key_id: &str,
        message: impl Into<Vec<u8>>,
        signature: impl Into<Vec<u8>>,
        format: SignatureFormat,
        key_version: Option<u32>,
    ) -> Result<Verdict, Error> {
        let (message, signature) = (message.into(), signature.into());
        #[allow(clippy::needless_update)]
        let request = proto::VerifyRequest {
            key_id: key_id.to_owned(),
            message_crc32c: Some(crc32c::crc32c(&message)),
            signature_crc32c: Some(crc32c::crc32c(&signature)),
            message,
            signature,
            signature_format: Some(format.to_proto().into()),
            key_version,
            ..Default::default()
        };
        let answer = self
            .stub
            .clone()
            .verify(self.request(request))
            .await?
            .into_inner();
        if !(answer.verified_message_crc32c && answer.verified_signature_crc32c) {
            return Err(Error::Corrupted {
                message: "the agent did not confirm the CRC32C of the message and the signature"
                    .to_owned(),
            });
        }
        Ok(Verdict {
            valid: answer.valid,
            key_id: answer.key_id,
            key_version: answer.key_version,
            algorithm: Algorithm::from_i32(answer.algorithm),
        })
    }

    /// Checks an SWT3 witness record: the claimed `fingerprint` against the `anchor`'s fields
    /// (its timestamp is required) and the hex `signature` over the claimed fingerprint's
    /// payload, with the HMAC key `key_id` inside the HSM.
    pub async fn verify_fingerprint(
        &self,
        key_id: &str,
        anchor: &Anchor,
        fingerprint: &str,
        signature: &str,
        key_version: Option<u32>,
    ) -> Result<AnchorVerdict, Error> {
        let [factor_a, factor_b, factor_c] = anchor.factors;
        #[allow(clippy::needless_update)]
        let request = proto::VerifyFingerprintRequest {
            key_id: key_id.to_owned(),
            tenant_id: anchor.tenant_id.clone(),
            procedure_id: anchor.procedure_id.clone(),
            factor_a,
            factor_b,
            factor_c,
            timestamp_ms: anchor.timestamp_ms.unwrap_or(0),
            agent_id: anchor.agent_id.clone(),
            fingerprint: fingerprint.to_owned(),
            signature: signature.to_owned(),
            key_version,
            ..Default::default()
        };
        let answer = self
            .stub
            .clone()
            .verify_fingerprint(self.request(request))
            .await?
            .into_inner();
        Ok(AnchorVerdict {
            valid: answer.valid,
            fingerprint_matches: answer.fingerprint_matches,
            signature_matches: answer.signature_matches,
            expected_fingerprint: answer.expected_fingerprint,
            key_id: answer.key_id,
            key_version: answer.key_version,
        })
    }
}
