//! One signing operation on a worker: the HSM call with the key's primary version (following
//! a rotation that retired it under the call), verify-after-sign, and the answer's encoding.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::run::Job;
use super::{Signature, Witness};
use crate::backend::Backend;
use crate::error::{Error, HsmFault};
use crate::key::{Algorithm, SignatureFormat};
use crate::public_key::PublicKey;

/// How long a call waits before it looks a key the token says is gone up again (twice as long
/// the second time): a token can miss an object for a moment while another process rewrites it.
const KEY_GONE_PAUSE: Duration = Duration::from_millis(20);

/// One checked HSM operation: what to sign with which key, and how to check and encode the
/// result.
pub(super) struct HsmCall {
    pub(super) key_id: String,
    /// The key version to sign with: the primary when the call was prepared.
    pub(super) version: u32,
    pub(super) algorithm: Algorithm,
    pub(super) public_key: Option<PublicKey>,
    /// The message (Sign) or the SWT3 signed payload (Fingerprint).
    pub(super) input: Vec<u8>,
    pub(super) format: SignatureFormat,
    /// For Fingerprint: the fingerprint and the timestamp used.
    pub(super) anchor: Option<(String, i64)>,
}

impl Job for HsmCall {
    type Out = Vec<u8>;

    fn bytes(&self) -> usize {
        self.input.len()
    }

    /// The HSM call and verify-after-sign, on a worker thread. When the token no longer lets
    /// the version sign (a rotation or `set-primary` since the registry was read), the backend
    /// re-reads its keys and the call is made once more with the new
    /// primary version, so a rotation fails no call.
    ///
    /// A key the token says it no longer has is looked up once more before the call answers
    /// `NOT_FOUND`: a token can miss an object for a moment while another process rewrites it
    /// (SoftHSM2 while `signet keys rotate` changes the old version's flags).
    fn run(&mut self, backend: &dyn Backend) -> Result<Vec<u8>, Error> {
        let mut retries = 0;
        let signature = loop {
            match self.sign(backend) {
                Ok(signature) => break signature,
                Err(e) if retries < 2 && retired(&e) && self.follow_primary(backend) => {}
                Err(Error::KeyGone(_)) if retries < 2 => {
                    // Give the other process a moment to finish writing the object.
                    std::thread::sleep(KEY_GONE_PAUSE * (retries + 1));
                }
                Err(e) => return Err(e),
            }
            retries += 1;
        };
        self.check(&signature)?;
        Ok(signature)
    }
}

impl HsmCall {
    /// Re-reads the backend's keys and switches to the key's primary version; whether it
    /// changed.
    fn follow_primary(&mut self, backend: &dyn Backend) -> bool {
        if let Err(e) = backend.rescan() {
            tracing::warn!(key = %self.key_id, error = %e, "re-reading the keys after a refused signature failed");
            return false;
        }
        match backend.registry().primary(&self.key_id) {
            Some(key) if key.version != self.version && key.algorithm == self.algorithm => {
                tracing::info!(
                    key = %self.key_id,
                    from = self.version,
                    to = key.version,
                    "the token retired the version this call was to sign with; signing with the \
                     new primary version"
                );
                self.version = key.version;
                self.public_key = key.public_key.clone();
                true
            }
            _ => false,
        }
    }

    /// The HSM call alone. ECDSA signs the SHA-256 of the message; the other mechanisms take
    /// it whole.
    fn sign(&self, backend: &dyn Backend) -> Result<Vec<u8>, Error> {
        let digest = (self.algorithm == Algorithm::EcdsaP256Sha256)
            .then(|| Sha256::digest(&self.input).to_vec());
        backend.sign(
            &self.key_id,
            self.version,
            digest.as_deref().unwrap_or(&self.input),
        )
    }

    /// Verify-after-sign: an asymmetric signature that does not verify against the key's
    /// public key is withheld.
    fn check(&self, signature: &[u8]) -> Result<(), Error> {
        match &self.public_key {
            Some(pk) if !pk.verify(&self.input, signature) => {
                tracing::error!(key = %self.key_id, "verify-after-sign failed: signature withheld");
                Err(Error::SignatureCheckFailed {
                    key_id: self.key_id.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The signature in the requested encoding.
    pub(super) fn finish(self, raw: Vec<u8>) -> Result<Signature, Error> {
        let bytes = match self.format {
            SignatureFormat::Raw => raw,
            SignatureFormat::Der => p256::ecdsa::Signature::from_slice(&raw)
                .map_err(|e| Error::Internal(format!("ECDSA signature from the HSM: {e}")))?
                .to_der()
                .as_bytes()
                .to_vec(),
        };
        Ok(Signature {
            bytes,
            algorithm: self.algorithm,
            format: self.format,
            key_version: self.version,
        })
    }

    /// The SWT3 witness from the HMAC or ML-DSA-65 signature (already verified after signing).
    pub(super) fn finish_witness(self, mac: Vec<u8>) -> Result<Witness, Error> {
        let expected = match self.algorithm {
            Algorithm::MlDsa65 => crate::public_key::ML_DSA_65_SIGNATURE_LEN,
            _ => 32,
        };
        if mac.len() != expected {
            return Err(Error::Internal(format!(
                "the HSM returned a {}-byte {} signature",
                mac.len(),
                self.algorithm.name()
            )));
        }
        let (fingerprint, timestamp_ms) = self
            .anchor
            .ok_or_else(|| Error::Internal("a Fingerprint call without its anchor".into()))?;
        Ok(Witness {
            fingerprint,
            signature: hex::encode(mac),
            algorithm: self.algorithm,
            timestamp_ms,
            key_version: self.version,
        })
    }
}

/// Whether a signing error says the version was retired under the call: the token no longer
/// lets it sign. (A key the token no longer has is `NOT_FOUND` for the call, as before; the
/// next re-scan drops it from the registry.)
fn retired(error: &Error) -> bool {
    error.fault() == Some(HsmFault::NotPermitted)
}
