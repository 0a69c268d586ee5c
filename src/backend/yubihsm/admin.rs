//! [`KeyAdmin`] on a YubiHSM2: one authenticated session, used by the `signet keys` commands.
//!
//! Keys Signet creates get exactly the one signing capability of their algorithm (never
//! `EXPORTABLE_UNDER_WRAP`), the configured domain, the key id as their label, and a random
//! object id that no object uses yet.

use yubihsm::object::{self, Label};
use yubihsm::{asymmetric, Capability, Client, Domain};

use super::discover::{self, format_id, FoundKey, KeyRef};
use super::fault::creation_error;
use super::{classify, sign, Device};
use crate::backend::admin::{KeyAdmin, KeyInfo};
use crate::config;
use crate::error::Error;
use crate::key::Algorithm;
use crate::public_key::PublicKey;
use crate::secret::Secret;

/// The HMAC-SHA256 key lengths the YubiHSM2 accepts, in bytes.
const HMAC_KEY_BYTES: std::ops::RangeInclusive<usize> = 8..=64;

/// An authenticated session on the configured YubiHSM2.
pub struct YubiHsmAdmin {
    client: Client,
    domain: Domain,
    /// The object id of the authentication key the session opened with.
    auth_key: u16,
    /// `backend.keys`: the keys the agent serves (all, when absent).
    wanted: Option<Vec<String>>,
    /// `backend.require_generated`: `keys list` marks imported keys refused.
    strict: bool,
}

impl YubiHsmAdmin {
    /// Opens a session (one authentication attempt).
    pub fn open(config: &config::YubiHsm, password: &Secret) -> Result<Self, Error> {
        let mut admin = Self::open_with(
            &Device::new(config, password)?,
            config.domain,
            config.keys.clone(),
        )?;
        admin.strict = config.require_generated;
        Ok(admin)
    }

    /// Opens a session on `device`; new keys go to `domain` (1 to 16).
    pub fn open_with(
        device: &Device,
        domain: u8,
        wanted: Option<Vec<String>>,
    ) -> Result<Self, Error> {
        let domain = Domain::at(usize::from(domain))
            .map_err(|e| Error::Config(format!("backend.domain {domain}: {e}")))?;
        Ok(YubiHsmAdmin {
            client: device.open_session()?,
            auth_key: device.auth_key(),
            domain,
            wanted,
            strict: false,
        })
    }

    /// The one signing key named `id` (a label or `0xNNNN`).
    fn find(&self, id: &str) -> Result<FoundKey, Error> {
        let key_ref = KeyRef::parse(id);
        let matching = discover::find_keys(&self.client)?
            .into_iter()
            .filter(|k| key_ref.matches(k) && k.is_signing_key())
            .collect();
        crate::backend::admin::the_one(matching, id, "; name one by its object id (0xNNNN)")
    }

    /// Checks that `id` can be a new key's label and that no signing key has it; returns the
    /// label and a free object id.
    fn prepare(&self, id: &str) -> Result<(Label, u16), Error> {
        if id.is_empty() || matches!(KeyRef::parse(id), KeyRef::Id(_)) {
            return Err(Error::InvalidArgument(format!(
                "'{}' cannot be a YubiHSM key id: it must be a non-empty label that does not \
                 look like an object id (0xNNNN)",
                id.escape_debug()
            )));
        }
        let label = Label::from_bytes(id.as_bytes()).map_err(|_| {
            Error::InvalidArgument(format!(
                "the key id '{}' is {} bytes; YubiHSM labels hold at most {}",
                id.escape_debug(),
                id.len(),
                object::LABEL_SIZE
            ))
        })?;
        let used: std::collections::HashSet<u16> = self
            .client
            .list_objects(&[])
            .map_err(|e| classify("List Objects", e))?
            .into_iter()
            .map(|entry| entry.object_id)
            .collect();
        let found = discover::find_keys(&self.client)?;
        if found
            .iter()
            .any(|k| k.label.as_deref() == Some(id) && k.is_signing_key())
        {
            return Err(Error::AlreadyExists(id.to_owned()));
        }
        Ok((label, free_object_id(&used)?))
    }
}

/// A random object id that no object uses: a destroyed key's id is then unlikely to be given
/// to a new key while an agent still serves the old one under it (an HMAC key has no
/// verify-after-sign to notice the swap). The device's ids are 1 to 0xfffe.
fn free_object_id(used: &std::collections::HashSet<u16>) -> Result<u16, Error> {
    use ring::rand::SecureRandom as _;
    let random = ring::rand::SystemRandom::new();
    for _ in 0..64 {
        let mut bytes = [0u8; 2];
        random
            .fill(&mut bytes)
            .map_err(|_| Error::Internal("the system random generator failed".into()))?;
        let candidate = u16::from_be_bytes(bytes);
        if (1..=0xfffe).contains(&candidate) && !used.contains(&candidate) {
            return Ok(candidate);
        }
    }
    (1..=0xfffe)
        .find(|candidate| !used.contains(candidate))
        .ok_or_else(|| Error::ResourceExhausted("the YubiHSM has no free object id".into()))
}

impl KeyAdmin for YubiHsmAdmin {
    fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let found = discover::find_keys(&self.client)?;
        let verdicts = discover::assess(&self.client, self.auth_key, &found, self.strict)?;
        Ok(found
            .into_iter()
            .zip(verdicts)
            .map(|(key, verdict)| {
                let selected = discover::selected(&key, self.wanted.as_deref());
                let (not_served, refused) = verdict.as_listed(selected, self.wanted.is_some());
                let exportable = key.exportable();
                KeyInfo {
                    may_sign: key.can_sign(),
                    may_verify: true,
                    not_served,
                    refused,
                    selected,
                    signing: key.is_signing_key(),
                    id: Some(key.name()),
                    object_id: Some(format_id(key.object_id)),
                    size_bits: (key.algorithm == Ok(Algorithm::HmacSha256))
                        .then_some(u64::from(key.length) * 8),
                    // The device never reveals key material in plaintext.
                    sensitive: true,
                    extractable: exportable,
                    // An imported key was outside an HSM once, as PKCS#11 reports it.
                    always_sensitive: key.generated,
                    // A YubiHSM object's capabilities are fixed when it is created.
                    never_extractable: key.generated && !exportable,
                    local: key.generated,
                    algorithm: key.algorithm,
                }
            })
            .collect())
    }

    fn generate(&self, algorithm: Algorithm, id: &str) -> Result<(), Error> {
        let (label, object_id) = self.prepare(id)?;
        let result = match algorithm {
            Algorithm::Ed25519 => self.client.generate_asymmetric_key(
                object_id,
                label,
                self.domain,
                Capability::SIGN_EDDSA,
                asymmetric::Algorithm::Ed25519,
            ),
            Algorithm::EcdsaP256Sha256 => self.client.generate_asymmetric_key(
                object_id,
                label,
                self.domain,
                Capability::SIGN_ECDSA,
                asymmetric::Algorithm::EcP256,
            ),
            Algorithm::HmacSha256 => self.client.generate_hmac_key(
                object_id,
                label,
                self.domain,
                Capability::SIGN_HMAC | Capability::VERIFY_HMAC,
                yubihsm::hmac::Algorithm::Sha256,
            ),
            Algorithm::MlDsa65 => return Err(no_ml_dsa()),
        };
        result
            .map(drop)
            .map_err(|e| creation_error("Generate Key", id, e))
    }

    fn import_hmac(&self, id: &str, secret: &[u8]) -> Result<(), Error> {
        // HMAC hashes a key longer than its 64-byte block first (RFC 2104), so storing the
        // SHA-256 of a longer secret gives the same tags; the device takes at most 64 bytes.
        let hashed;
        let secret = if secret.len() > *HMAC_KEY_BYTES.end() {
            use sha2::Digest as _;
            hashed = zeroize::Zeroizing::new(<[u8; 32]>::from(sha2::Sha256::digest(secret)));
            &hashed[..]
        } else {
            secret
        };
        if !HMAC_KEY_BYTES.contains(&secret.len()) {
            return Err(Error::InvalidArgument(format!(
                "the secret is {} bytes; the YubiHSM2 stores HMAC-SHA256 keys of {} to {} bytes",
                secret.len(),
                HMAC_KEY_BYTES.start(),
                HMAC_KEY_BYTES.end()
            )));
        }
        let (label, object_id) = self.prepare(id)?;
        self.client
            .put_hmac_key(
                object_id,
                label,
                self.domain,
                Capability::SIGN_HMAC | Capability::VERIFY_HMAC,
                yubihsm::hmac::Algorithm::Sha256,
                // The yubihsm crate copies it into a command buffer it does not wipe.
                secret,
            )
            .map(drop)
            .map_err(|e| creation_error("Put HMAC Key", id, e))
    }

    fn import_ed25519(&self, id: &str, seed: &[u8; 32], _public: &[u8; 32]) -> Result<(), Error> {
        // The device derives the public key from the seed; the caller checks a signature
        // against the public key it expects.
        let (label, object_id) = self.prepare(id)?;
        self.client
            .put_asymmetric_key(
                object_id,
                label,
                self.domain,
                Capability::SIGN_EDDSA,
                asymmetric::Algorithm::Ed25519,
                seed.as_slice(),
            )
            .map(drop)
            .map_err(|e| creation_error("Put Asymmetric Key", id, e))
    }

    fn public_key(&self, id: &str) -> Result<PublicKey, Error> {
        let key = self.find(id)?;
        crate::backend::admin::has_public_key(id, &key.algorithm)?;
        discover::public_key_of(&self.client, &key)
    }

    fn sign(&self, id: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
        let key = self.find(id)?;
        let algorithm = key.algorithm.map_err(Error::FailedPrecondition)?;
        sign(&self.client, algorithm, key.object_id, input)
    }

    fn destroy(&self, id: &str) -> Result<usize, Error> {
        let key = self.find(id)?;
        self.client
            .delete_object(key.object_id, key.object_type)
            .map_err(|e| classify("Delete Object", e))?;
        Ok(1)
    }

    fn set_usage(&self, label: &str, _sign: bool, _verify: bool) -> Result<(), Error> {
        Err(Error::FailedPrecondition(format!(
            "a YubiHSM object's capabilities never change, so version '{}' cannot be made \
             primary, verify-only or disabled; on a YubiHSM the highest version is primary: \
             destroy newer versions to go back, or destroy a version to retire it",
            label.escape_debug()
        )))
    }

    fn fixed_usage(&self) -> bool {
        true
    }
}

/// The YubiHSM 2 has no ML-DSA (its firmware signs with Ed25519, ECDSA, RSA and HMAC only).
pub(crate) fn no_ml_dsa() -> Error {
    Error::FailedPrecondition(
        "the YubiHSM 2 has no ML-DSA: it cannot make or use ml-dsa-65 keys; use a PKCS#11 token \
         with CKM_ML_DSA (PKCS#11 3.2, e.g. Kryoptic)"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_object_ids_are_free_and_valid() {
        let used: std::collections::HashSet<u16> = (1..=0xfff0).collect();
        for _ in 0..5 {
            let id = free_object_id(&used).expect("a free id");
            assert!((0xfff1..=0xfffe).contains(&id), "{id:#x}");
        }
        let full: std::collections::HashSet<u16> = (1..=0xfffe).collect();
        assert!(free_object_id(&full).is_err());
    }
}
