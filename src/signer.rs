//! The agent's domain logic, free of gRPC: key lookup, limits, the ECDSA prehash and encodings,
//! the SWT3 formula, and verify-after-sign. Every HSM call goes through the `Executor`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backend::Backend;
use crate::config::Limits;
use crate::error::Error;
use crate::executor::Executor;
use crate::key::{Algorithm, KeyDescriptor, SignatureFormat};
use crate::public_key::PublicKey;
use crate::swt3::Anchor;

mod call;
mod run;
mod verify;

pub use verify::{Checked, Claim, Verdict, VerifyItem};

use call::HsmCall;
use run::Job;

/// The longest key id accepted; longer ones are refused without being echoed.
pub const MAX_KEY_ID_BYTES: usize = 256;

/// A signature and what produced it.
#[derive(Debug, Clone)]
pub struct Signature {
    /// The signature bytes in `format`.
    pub bytes: Vec<u8>,
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// The encoding of `bytes`.
    pub format: SignatureFormat,
    /// The key version that signed (the primary version when the call was made).
    pub key_version: u32,
}

/// A minted and signed SWT3 anchor.
#[derive(Debug, Clone)]
pub struct Witness {
    /// 12 lowercase hex characters.
    pub fingerprint: String,
    /// The key's signature over the signed payload, lowercase hex: HMAC-SHA256 (64 characters)
    /// or ML-DSA-65 (6,618 characters).
    pub signature: String,
    /// The algorithm that signed (SWT3 `signing_algorithm`).
    pub algorithm: Algorithm,
    /// The timestamp used in the formula.
    pub timestamp_ms: i64,
    /// The key version whose HMAC this is (SWT3 `signing_key_version`).
    pub key_version: u32,
}

/// The public key of one version of an asymmetric key, with the key set of all its versions
/// that may verify.
#[derive(Debug, Clone)]
pub struct PublicKeyInfo {
    /// The version whose public key this is.
    pub key: KeyDescriptor,
    /// Its public key.
    pub public_key: PublicKey,
    /// An RFC 7517 JWK Set (`{"keys":[…]}`) of every version of the key that may verify, each
    /// JWK with its own `kid` ([`KeyDescriptor::kid`]: the bare key id for version 1, `id#n`
    /// for version n).
    pub jwks: String,
}

/// Signs on behalf of callers with the keys a backend serves.
pub struct Signer {
    /// The backend, for its registry of served keys (its calls go through the executor).
    backend: Arc<dyn Backend>,
    executor: Executor,
    max_message_bytes: usize,
    /// How many HSM workers there are (batches are split into at most this many chunks).
    workers: usize,
}

impl Signer {
    /// Serves the backend's keys through `executor`.
    pub fn new(
        backend: Arc<dyn Backend>,
        executor: Executor,
        max_message_bytes: usize,
        workers: usize,
    ) -> Self {
        Signer {
            backend,
            executor,
            max_message_bytes,
            workers: workers.max(1),
        }
    }

    /// Whether `key_id` is a key this agent serves.
    pub fn serves(&self, key_id: &str) -> bool {
        self.backend.registry().contains(key_id)
    }

    /// The HSM queue and workers right now (for the metrics).
    pub fn load(&self) -> crate::metrics::Load {
        self.executor.load()
    }

    /// The served keys, sorted by id.
    pub fn keys(&self) -> Vec<KeyDescriptor> {
        self.backend.registry().to_vec()
    }

    /// The primary version of `key_id`, the one that signs; `FAILED_PRECONDITION` when the key
    /// is served but no version of it may sign (verify-only key objects).
    fn primary(&self, key_id: &str) -> Result<Arc<KeyDescriptor>, Error> {
        check_key_id(key_id)?;
        let registry = self.backend.registry();
        match registry.primary(key_id) {
            Some(key) => Ok(Arc::clone(key)),
            None if registry.contains(key_id) => Err(Error::FailedPrecondition(format!(
                "key '{key_id}' has no version that may sign: it is served for verification \
                 only (CKA_SIGN is false)"
            ))),
            None => Err(Error::KeyNotFound(key_id.to_owned())),
        }
    }

    /// The public key of an asymmetric key: of version `version`, or (when `None`) of the
    /// version that signs (the newest served one when none may sign).
    pub fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo, Error> {
        check_key_id(key_id)?;
        let registry = self.backend.registry();
        let key = match version {
            Some(v) => registry
                .version(key_id, v)
                .ok_or_else(|| Error::KeyNotFound(crate::key::version_label(key_id, v)))?,
            None => registry
                .get(key_id)
                .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?,
        };
        let Some(public_key) = key.public_key.clone() else {
            return Err(Error::FailedPrecondition(format!(
                "key '{key_id}' is an {} key: a symmetric key has no public key",
                key.algorithm.name()
            )));
        };
        let jwks = registry
            .verifiers(key_id)
            .iter()
            .filter_map(|k| k.public_key.as_ref().map(|pk| pk.jwk(&k.kid())))
            .collect::<Vec<_>>()
            .join(",");
        Ok(PublicKeyInfo {
            key: KeyDescriptor::clone(key),
            public_key,
            jwks: format!("{{\"keys\":[{jwks}]}}"),
        })
    }

    /// Signs exactly `message`. Asymmetric signatures are verified against the cached public
    /// key before they are returned; one that does not verify is withheld.
    pub async fn sign(
        &self,
        key_id: &str,
        message: Vec<u8>,
        format: SignatureFormat,
        deadline: Instant,
    ) -> Result<Signature, Error> {
        let (call, raw) = self
            .run_one(self.prepare_sign(key_id, message, format)?, deadline)
            .await?;
        call.finish(raw)
    }

    /// Mints an SWT3 anchor fingerprint and signs it with an HMAC or ML-DSA-65 key inside the
    /// HSM.
    /// A `timestamp_ms` of 0 means now, by this agent's clock.
    pub async fn fingerprint(
        &self,
        key_id: &str,
        anchor: Anchor<'_>,
        deadline: Instant,
    ) -> Result<Witness, Error> {
        let (call, raw) = self
            .run_one(self.prepare_fingerprint(key_id, anchor)?, deadline)
            .await?;
        call.finish_witness(raw)
    }

    /// Signs many messages in one go: each item gets its own result (a bad item fails alone).
    /// The valid items are spread over the HSM workers in chunks, one queue slot per chunk.
    pub async fn sign_batch(
        &self,
        items: Vec<(String, Vec<u8>, SignatureFormat)>,
        deadline: Instant,
    ) -> Vec<Result<Signature, Error>> {
        let calls = items
            .into_iter()
            .map(|(key_id, message, format)| self.prepare_sign(&key_id, message, format))
            .collect();
        self.run_batch(calls, deadline)
            .await
            .into_iter()
            .map(|done| done.and_then(|(call, raw)| call.finish(raw)))
            .collect()
    }

    /// Mints and signs many SWT3 anchors in one go, each with its own result.
    pub async fn fingerprint_batch(
        &self,
        items: Vec<(String, Anchor<'_>)>,
        deadline: Instant,
    ) -> Vec<Result<Witness, Error>> {
        let calls = items
            .into_iter()
            .map(|(key_id, anchor)| self.prepare_fingerprint(&key_id, anchor))
            .collect();
        self.run_batch(calls, deadline)
            .await
            .into_iter()
            .map(|done| done.and_then(|(call, raw)| call.finish_witness(raw)))
            .collect()
    }

    /// Checks a Sign request and prepares its HSM call.
    fn prepare_sign(
        &self,
        key_id: &str,
        message: Vec<u8>,
        format: SignatureFormat,
    ) -> Result<HsmCall, Error> {
        let key = self.primary(key_id)?;
        if message.len() > self.max_message_bytes {
            return Err(Error::ResourceExhausted(format!(
                "message is {} bytes, over this agent's limit of {} bytes; it was not signed",
                message.len(),
                self.max_message_bytes
            )));
        }
        if format == SignatureFormat::Der && key.algorithm != Algorithm::EcdsaP256Sha256 {
            return Err(Error::InvalidArgument(format!(
                "signature_format DER applies to ECDSA keys only; key '{key_id}' is {}",
                key.algorithm.name()
            )));
        }
        Ok(HsmCall {
            key_id: key_id.to_owned(),
            version: key.version,
            algorithm: key.algorithm,
            public_key: key.public_key.clone(),
            input: message,
            format,
            anchor: None,
        })
    }

    /// Checks a Fingerprint request and prepares its HSM call (the signed payload).
    fn prepare_fingerprint(&self, key_id: &str, anchor: Anchor<'_>) -> Result<HsmCall, Error> {
        let key = self.primary(key_id)?;
        // The two algorithms swt3-ai signs anchors with (`signing_algorithm`).
        if !matches!(key.algorithm, Algorithm::HmacSha256 | Algorithm::MlDsa65) {
            return Err(Error::FailedPrecondition(format!(
                "key '{key_id}' is an {} key; Fingerprint needs an hmac-sha256 or ml-dsa-65 key",
                key.algorithm.name()
            )));
        }
        let mut anchor = anchor;
        if anchor.timestamp_ms == 0 {
            anchor.timestamp_ms = now_ms()?;
        }
        let fingerprint = anchor.fingerprint();
        Ok(HsmCall {
            key_id: key_id.to_owned(),
            version: key.version,
            algorithm: key.algorithm,
            // Verify-after-sign for ML-DSA anchors too (HMAC keys have none).
            public_key: key.public_key.clone(),
            input: anchor.signed_payload(&fingerprint).into_bytes(),
            format: SignatureFormat::Raw,
            anchor: Some((fingerprint, anchor.timestamp_ms)),
        })
    }
}

impl Signer {
    /// Stops taking HSM work, finishes what is queued (waiting at most `patience`), closes the
    /// sessions and finalises the module. Blocking; later calls do nothing.
    pub fn shutdown(&self, patience: Duration) {
        self.executor.shutdown(patience);
    }
}

/// Refuses an empty key id or one over [`MAX_KEY_ID_BYTES`], without echoing it.
pub fn check_key_id(key_id: &str) -> Result<(), Error> {
    if key_id.is_empty() {
        return Err(Error::InvalidArgument("key_id must not be empty".into()));
    }
    if key_id.len() > MAX_KEY_ID_BYTES {
        return Err(Error::InvalidArgument(format!(
            "key_id is {} bytes; key ids are at most {MAX_KEY_ID_BYTES} bytes",
            key_id.len()
        )));
    }
    Ok(())
}

fn now_ms() -> Result<i64, Error> {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Internal("the system clock is before 1970".into()))?;
    i64::try_from(elapsed.as_millis())
        .map_err(|_| Error::Internal("the system clock is out of range".into()))
}

/// Builds a [`Signer`] over `backend` with `workers` HSM threads, within `limits`.
pub fn start(backend: Arc<dyn Backend>, workers: usize, limits: &Limits) -> Result<Signer, Error> {
    let executor = Executor::start(
        Arc::clone(&backend),
        workers,
        limits.queue_depth,
        limits.max_queued_bytes,
    )?;
    Ok(Signer::new(
        backend,
        executor,
        limits.max_message_bytes,
        workers,
    ))
}

#[cfg(test)]
mod tests {
    //! Faults a real token cannot produce, injected at the backend seam.
    use super::*;
    use crate::error::ErrorKind;
    use ed25519_dalek::Signer as _;

    /// Signs with a software Ed25519 key, flipping a bit of every signature (`corrupt`) or of
    /// those over messages that start with "bad".
    struct Fake {
        key: ed25519_dalek::SigningKey,
        corrupt: bool,
        registry: Arc<crate::backend::Registry>,
    }

    impl Backend for Fake {
        fn registry(&self) -> Arc<crate::backend::Registry> {
            Arc::clone(&self.registry)
        }

        fn rescan(&self) -> Result<(), Error> {
            Ok(())
        }

        fn sign(&self, _key_id: &str, _version: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
            let mut signature = self.key.sign(input).to_bytes().to_vec();
            if self.corrupt || input.starts_with(b"bad") {
                signature[5] ^= 0x01;
            }
            Ok(signature)
        }

        fn verify(
            &self,
            _key_id: &str,
            _version: u32,
            _input: &[u8],
            _sig: &[u8],
        ) -> Result<bool, Error> {
            Err(Error::Internal("not an HMAC backend".into()))
        }

        fn shutdown(&self) {}
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn signer(corrupt: bool) -> Signer {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let registry = Arc::new(crate::backend::Registry::new([KeyDescriptor::new(
            "ed",
            Algorithm::Ed25519,
            Some(PublicKey::Ed25519(key.verifying_key())),
        )]));
        let backend = Arc::new(Fake {
            key,
            corrupt,
            registry,
        });
        let limits = Limits {
            max_message_bytes: 1024,
            queue_depth: 4,
            ..Limits::default()
        };
        start(backend, 1, &limits).expect("executor")
    }

    #[tokio::test]
    async fn a_signature_that_does_not_verify_is_withheld() {
        let err = signer(true)
            .sign("ed", b"m".to_vec(), SignatureFormat::Raw, soon())
            .await
            .expect_err("corrupted signature");
        assert!(matches!(err, Error::SignatureCheckFailed { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Internal);
    }

    #[tokio::test]
    async fn a_batch_withholds_exactly_the_signatures_that_do_not_verify() {
        let signer = signer(false);
        let messages = ["good 1", "bad 1", "good 2", "good 3", "bad 2", "good 4"];
        let items = messages
            .iter()
            .map(|m| ("ed".to_owned(), m.as_bytes().to_vec(), SignatureFormat::Raw))
            .collect();
        let results = signer.sign_batch(items, soon()).await;
        let public = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        for (message, result) in messages.iter().zip(results) {
            if message.starts_with("bad") {
                let err = result.expect_err("a corrupted signature is withheld");
                assert!(matches!(err, Error::SignatureCheckFailed { .. }), "{err}");
            } else {
                let sig = result.expect("a good signature passes");
                let sig = ed25519_dalek::Signature::from_slice(&sig.bytes).expect("64 bytes");
                public
                    .verify_strict(message.as_bytes(), &sig)
                    .expect("verifies independently");
            }
        }
        // All good: the one batch verification passes them all.
        let items = (0..8)
            .map(|i| ("ed".to_owned(), vec![i; 40], SignatureFormat::Raw))
            .collect();
        for (i, result) in signer
            .sign_batch(items, soon())
            .await
            .into_iter()
            .enumerate()
        {
            let sig = result.expect("good");
            let sig = ed25519_dalek::Signature::from_slice(&sig.bytes).expect("64 bytes");
            public
                .verify_strict(&[i as u8; 40], &sig)
                .expect("verifies");
        }
    }

    #[tokio::test]
    async fn a_good_signature_passes_and_shutdown_refuses_new_work() {
        let signer = signer(false);
        let sig = signer
            .sign("ed", b"m".to_vec(), SignatureFormat::Raw, soon())
            .await
            .expect("sign");
        assert_eq!(sig.bytes.len(), 64);
        signer.shutdown(Duration::from_secs(1));
        let err = signer
            .sign("ed", b"m".to_vec(), SignatureFormat::Raw, soon())
            .await
            .expect_err("stopped");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let long = "k".repeat(MAX_KEY_ID_BYTES + 1);
        let err = signer
            .sign(&long, Vec::new(), SignatureFormat::Raw, soon())
            .await
            .expect_err("long id");
        assert!(
            !err.to_string().contains(&long),
            "a long key id is not echoed"
        );
    }
}
