//! Verification: a signature (`Verify`) or an SWT3 anchor (`VerifyFingerprint`) checked against
//! the verify-enabled versions of a key. HMAC tags are checked inside the HSM
//! ([`Backend::verify`]); Ed25519, P-256 and ML-DSA-65 signatures against the cached public key with the
//! verifier verify-after-sign uses ([`PublicKey::verify`]). Malformed input is refused before any
//! work, naming the field; a signature that does not verify is a verdict, not an error.

use std::sync::Arc;
use std::time::Instant;

use super::{check_key_id, Job, Signer};
use crate::backend::Backend;
use crate::error::Error;
use crate::key::{Algorithm, KeyDescriptor, SignatureFormat};
use crate::swt3::Anchor;

/// Whether a signature verified, and with which key version.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The signature is valid for the message and the key.
    pub valid: bool,
    /// The version that matched; when none did, the version tried (the newest).
    pub key_version: u32,
    /// The key's algorithm.
    pub algorithm: Algorithm,
}

/// What `VerifyFingerprint` found: both parts, separately.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The fingerprint recomputed from the anchor equals the claimed one.
    pub fingerprint_matches: bool,
    /// The signature is the key's (HMAC tag or ML-DSA-65 signature) over the payload built
    /// from the *claimed* fingerprint.
    pub signature_matches: bool,
    /// The fingerprint recomputed from the anchor.
    pub expected_fingerprint: String,
    /// The version that matched; when none did, the version tried.
    pub key_version: u32,
    /// The key's algorithm.
    pub algorithm: Algorithm,
}

impl Checked {
    /// Both parts hold.
    pub fn valid(&self) -> bool {
        self.fingerprint_matches && self.signature_matches
    }
}

/// A `Verify` as the signer takes it.
#[derive(Debug)]
pub struct VerifyItem {
    /// The key.
    pub key_id: String,
    /// The exact bytes that were signed.
    pub message: Vec<u8>,
    /// The signature, encoded as `format` says.
    pub signature: Vec<u8>,
    /// The encoding of `signature`.
    pub format: SignatureFormat,
    /// The version asked for, if any.
    pub key_version: Option<u32>,
}

/// A `VerifyFingerprint` as the signer takes it.
#[derive(Debug)]
pub struct Claim<'a> {
    /// The anchor fields (timestamp required).
    pub anchor: Anchor<'a>,
    /// The fingerprint the witness claims.
    pub fingerprint: &'a str,
    /// The witness's signature, hex.
    pub signature: &'a str,
    /// The version asked for, if any.
    pub key_version: Option<u32>,
}

impl Signer {
    /// The versions of `key_id` that may verify, lowest first. A served key none of whose
    /// versions may verify (an HMAC key made before `CKA_VERIFY` was set on new keys) is
    /// `FAILED_PRECONDITION`, saying what to do.
    pub fn verifiers(&self, key_id: &str) -> Result<Vec<Arc<KeyDescriptor>>, Error> {
        check_key_id(key_id)?;
        let registry = self.backend.registry();
        let verifiers: Vec<_> = registry.verifiers(key_id).into_iter().cloned().collect();
        if !verifiers.is_empty() {
            return Ok(verifiers);
        }
        if registry.contains(key_id) {
            return Err(Error::FailedPrecondition(format!(
                "key '{}' was created without CKA_VERIFY; see the README to enable \
                 verification on it, or rotate it to a version that may verify",
                key_id.escape_debug()
            )));
        }
        Err(Error::KeyNotFound(key_id.to_owned()))
    }

    /// The versions to try: the one asked for (`NOT_FOUND` when the key has no such version
    /// that may verify), or every verify-enabled one.
    fn versions_to_try(
        &self,
        key_id: &str,
        wanted: Option<u32>,
    ) -> Result<Vec<Arc<KeyDescriptor>>, Error> {
        let versions = self.verifiers(key_id)?;
        match wanted {
            None => Ok(versions),
            Some(version) => versions
                .into_iter()
                .find(|k| k.version == version)
                .map(|k| vec![k])
                .ok_or_else(|| Error::VersionNotFound {
                    key_id: key_id.to_owned(),
                    version,
                }),
        }
    }

    /// Checks one signature.
    pub async fn verify(&self, item: VerifyItem, deadline: Instant) -> Result<Verdict, Error> {
        let (call, found) = self.run_one(self.prepare_verify(item)?, deadline).await?;
        Ok(call.verdict(found))
    }

    /// Checks many signatures, each with its own result (a bad item fails alone).
    pub async fn verify_batch(
        &self,
        items: Vec<VerifyItem>,
        deadline: Instant,
    ) -> Vec<Result<Verdict, Error>> {
        let calls = items
            .into_iter()
            .map(|item| self.prepare_verify(item))
            .collect();
        self.run_batch(calls, deadline)
            .await
            .into_iter()
            .map(|done| done.map(|(call, found)| call.verdict(found)))
            .collect()
    }

    /// Checks one SWT3 anchor: the fingerprint here; an HMAC tag in the HSM, an ML-DSA-65
    /// signature against the key's public key.
    pub async fn verify_fingerprint(
        &self,
        key_id: &str,
        claim: Claim<'_>,
        deadline: Instant,
    ) -> Result<Checked, Error> {
        let call = self.prepare_verify_fingerprint(key_id, claim)?;
        let (call, found) = self.run_one(call, deadline).await?;
        call.checked(found)
    }

    /// Checks many SWT3 anchors, each with its own result.
    pub async fn verify_fingerprint_batch(
        &self,
        items: Vec<(String, Claim<'_>)>,
        deadline: Instant,
    ) -> Vec<Result<Checked, Error>> {
        let calls = items
            .into_iter()
            .map(|(key_id, claim)| self.prepare_verify_fingerprint(&key_id, claim))
            .collect();
        self.run_batch(calls, deadline)
            .await
            .into_iter()
            .map(|done| done.and_then(|(call, found)| call.checked(found)))
            .collect()
    }

    /// Checks a Verify request and prepares its work.
    fn prepare_verify(&self, item: VerifyItem) -> Result<VerifyCall, Error> {
        let VerifyItem {
            key_id,
            message,
            signature,
            format,
            key_version,
        } = item;
        let versions = self.versions_to_try(&key_id, key_version)?;
        let algorithm = versions[0].algorithm;
        if message.len() > self.max_message_bytes {
            return Err(Error::ResourceExhausted(format!(
                "message is {} bytes, over this agent's limit of {} bytes; it was not checked",
                message.len(),
                self.max_message_bytes
            )));
        }
        let signature = raw_signature(&key_id, algorithm, format, &signature)?;
        Ok(VerifyCall {
            versions,
            algorithm,
            key_id,
            input: message,
            signature,
            fingerprint: None,
        })
    }

    /// Checks a VerifyFingerprint request and prepares its work: the fingerprint is compared
    /// here; the signature over the claimed fingerprint's payload is checked as `Verify`
    /// checks one (an HMAC tag by the HSM, an ML-DSA-65 signature against the public key).
    fn prepare_verify_fingerprint(
        &self,
        key_id: &str,
        claim: Claim<'_>,
    ) -> Result<VerifyCall, Error> {
        let versions = self.versions_to_try(key_id, claim.key_version)?;
        let algorithm = versions[0].algorithm;
        if !matches!(algorithm, Algorithm::HmacSha256 | Algorithm::MlDsa65) {
            return Err(Error::FailedPrecondition(format!(
                "key '{key_id}' is an {} key; VerifyFingerprint needs an hmac-sha256 or \
                 ml-dsa-65 key",
                algorithm.name()
            )));
        }
        if claim.anchor.timestamp_ms == 0 {
            return Err(Error::InvalidArgument(
                "timestamp_ms is required: give the anchor's timestamp (0 means \"now\" only \
                 when minting)"
                    .into(),
            ));
        }
        let claimed = claim.fingerprint;
        if claimed.len() != 12
            || !claimed
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::InvalidArgument(format!(
                "fingerprint must be 12 lowercase hex characters; got {} bytes that are not",
                claimed.len()
            )));
        }
        let signature = hex_signature(algorithm, claim.signature)?;
        let expected = claim.anchor.fingerprint();
        Ok(VerifyCall {
            versions,
            key_id: key_id.to_owned(),
            algorithm,
            input: claim.anchor.signed_payload(claimed).into_bytes(),
            signature,
            fingerprint: Some((expected == claimed, expected)),
        })
    }
}

/// The signature as the verifiers take it (r‖s for P-256), or `InvalidArgument` naming the
/// field: empty, DER for a key that is not ECDSA, the wrong length, or DER that does not parse.
fn raw_signature(
    key_id: &str,
    algorithm: Algorithm,
    format: SignatureFormat,
    signature: &[u8],
) -> Result<Vec<u8>, Error> {
    if signature.is_empty() {
        return Err(Error::InvalidArgument("signature must not be empty".into()));
    }
    if format == SignatureFormat::Der {
        if algorithm != Algorithm::EcdsaP256Sha256 {
            return Err(Error::InvalidArgument(format!(
                "signature_format DER applies to ECDSA keys only; key '{key_id}' is {}",
                algorithm.name()
            )));
        }
        return p256::ecdsa::Signature::from_der(signature)
            .map(|s| s.to_bytes().to_vec())
            .map_err(|_| {
                Error::InvalidArgument(
                    "signature is not an ASN.1 DER ECDSA P-256 signature (SEQUENCE { r INTEGER, \
                     s INTEGER } with 0 < r, s < n), as signature_format DER says"
                        .into(),
                )
            });
    }
    let expected = match algorithm {
        Algorithm::HmacSha256 => 32,
        Algorithm::Ed25519 | Algorithm::EcdsaP256Sha256 => 64,
        Algorithm::MlDsa65 => crate::public_key::ML_DSA_65_SIGNATURE_LEN,
    };
    if signature.len() != expected {
        return Err(Error::InvalidArgument(format!(
            "signature is {} bytes; a RAW {} signature is {expected} bytes",
            signature.len(),
            algorithm.name()
        )));
    }
    Ok(signature.to_vec())
}

/// An SWT3 signature given in hex: 64 characters for an HMAC-SHA256 tag, 6,618 for an
/// ML-DSA-65 signature.
fn hex_signature(algorithm: Algorithm, signature: &str) -> Result<Vec<u8>, Error> {
    let bytes = match algorithm {
        Algorithm::MlDsa65 => crate::public_key::ML_DSA_65_SIGNATURE_LEN,
        _ => 32,
    };
    let chars = 2 * bytes;
    if signature.is_empty() {
        return Err(Error::InvalidArgument("signature must not be empty".into()));
    }
    let decoded = hex::decode(signature).map_err(|_| {
        Error::InvalidArgument(format!(
            "signature is not hex ({chars} hex characters expected)"
        ))
    })?;
    if decoded.len() != bytes {
        return Err(Error::InvalidArgument(format!(
            "signature is {} hex characters; an {} signature is {chars}",
            signature.len(),
            algorithm.name()
        )));
    }
    Ok(decoded)
}

/// One checked verification: the input, the signature in raw form, and the versions to try.
struct VerifyCall {
    key_id: String,
    algorithm: Algorithm,
    /// The versions to try, lowest first; never empty. An asymmetric version is verified
    /// here against its own public key, an HMAC version in the HSM.
    versions: Vec<Arc<KeyDescriptor>>,
    /// The message (Verify) or the SWT3 signed payload of the claimed fingerprint.
    input: Vec<u8>,
    signature: Vec<u8>,
    /// For VerifyFingerprint: whether the fingerprint matched, and the recomputed one.
    fingerprint: Option<(bool, String)>,
}

impl Job for VerifyCall {
    /// The version that matched, if any.
    type Out = Option<u32>;

    fn bytes(&self) -> usize {
        self.input.len()
    }

    /// Tries each version, newest first, until one verifies.
    fn run(&mut self, backend: &dyn Backend) -> Result<Option<u32>, Error> {
        for key in self.versions.iter().rev() {
            let valid = match &key.public_key {
                Some(public_key) => public_key.verify(&self.input, &self.signature),
                None => backend.verify(&self.key_id, key.version, &self.input, &self.signature)?,
            };
            if valid {
                return Ok(Some(key.version));
            }
        }
        Ok(None)
    }
}

impl VerifyCall {
    fn tried(&self, found: Option<u32>) -> u32 {
        found.unwrap_or_else(|| self.versions.last().map_or(1, |k| k.version))
    }

    fn verdict(self, found: Option<u32>) -> Verdict {
        Verdict {
            valid: found.is_some(),
            key_version: self.tried(found),
            algorithm: self.algorithm,
        }
    }

    fn checked(self, found: Option<u32>) -> Result<Checked, Error> {
        let key_version = self.tried(found);
        let (fingerprint_matches, expected_fingerprint) = self
            .fingerprint
            .ok_or_else(|| Error::Internal("a VerifyFingerprint call without its anchor".into()))?;
        Ok(Checked {
            fingerprint_matches,
            signature_matches: found.is_some(),
            expected_fingerprint,
            key_version,
            algorithm: self.algorithm,
        })
    }
}
