//! [`KeyAdmin`] on a PKCS#11 token: a read-write session logged in as the user, used by the
//! `signet keys` commands and closed when dropped.

use super::discover::{self, FoundKey};
use super::{classify, mechanism, mechanisms, provision, Token};
use crate::backend::admin::{KeyAdmin, KeyInfo};
use crate::config;
use crate::error::Error;
use crate::key::Algorithm;
use crate::public_key::PublicKey;
use crate::secret::Secret;

/// A logged-in read-write session on the configured token.
pub struct Pkcs11Admin {
    token: Option<Token>,
    /// `backend.keys`: the keys the agent serves (all, when absent).
    wanted: Option<Vec<String>>,
    /// `backend.require_generated`: `keys list` marks keys once outside the HSM refused.
    strict: bool,
}

impl Pkcs11Admin {
    /// Opens the token read-write and logs in (one attempt).
    pub fn open(config: &config::Pkcs11, pin: &Secret) -> Result<Self, Error> {
        Ok(Pkcs11Admin {
            token: Some(Token::open(config, pin, true)?),
            wanted: config.keys.clone(),
            strict: config.require_generated,
        })
    }

    fn session(&self) -> Result<&cryptoki::session::Session, Error> {
        self.token
            .as_ref()
            .map(|t| &t.session)
            .ok_or_else(|| Error::Internal("the token was already closed".into()))
    }

    /// The one private or secret key labelled `id` that Signet manages (it may sign or verify).
    fn find(&self, id: &str) -> Result<FoundKey, Error> {
        let matching = discover::find_keys(self.session()?)?
            .into_iter()
            .filter(|k| k.label.as_deref() == Some(id) && k.is_managed())
            .collect();
        crate::backend::admin::the_one(matching, id, "")
    }
}

impl Drop for Pkcs11Admin {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.close();
        }
    }
}

impl KeyAdmin for Pkcs11Admin {
    fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let session = self.session()?;
        let found = discover::find_keys(session)?;
        let verdicts = discover::assess(session, &found, self.strict);
        Ok(found
            .into_iter()
            .zip(verdicts)
            .map(|(key, verdict)| {
                let selected = match (&self.wanted, &key.label) {
                    (None, _) => true,
                    (Some(wanted), Some(label)) => wanted.contains(label),
                    (Some(_), None) => false,
                };
                let (not_served, refused) = verdict.as_listed(selected, self.wanted.is_some());
                let may_verify = if key.secret {
                    key.can_verify
                } else {
                    key.label
                        .as_deref()
                        .is_some_and(|label| discover::public_verify(session, &key, label))
                };
                KeyInfo {
                    may_sign: key.can_sign,
                    may_verify,
                    not_served,
                    refused,
                    selected,
                    signing: key.is_signing_key(),
                    id: key.label,
                    object_id: None,
                    algorithm: key.algorithm,
                    size_bits: key.value_len.map(|bytes| bytes * 8),
                    sensitive: key.sensitive,
                    extractable: key.extractable,
                    always_sensitive: key.always_sensitive,
                    never_extractable: key.never_extractable,
                    local: key.local,
                }
            })
            .collect())
    }

    fn generate(&self, algorithm: Algorithm, id: &str) -> Result<(), Error> {
        let token = self
            .token
            .as_ref()
            .ok_or_else(|| Error::Internal("the token was already closed".into()))?;
        mechanisms::require(
            &token.pkcs11,
            token.slot,
            algorithm,
            mechanisms::Use::Generate,
        )?;
        provision::generate(self.session()?, algorithm, id)
    }

    fn import_hmac(&self, id: &str, secret: &[u8]) -> Result<(), Error> {
        provision::import_hmac(self.session()?, id, secret)
    }

    fn import_ed25519(&self, id: &str, seed: &[u8; 32], public: &[u8; 32]) -> Result<(), Error> {
        provision::import_ed25519(self.session()?, id, seed, public)
    }

    fn public_key(&self, id: &str) -> Result<PublicKey, Error> {
        let key = self.find(id)?;
        crate::backend::admin::has_public_key(id, &key.algorithm)?;
        discover::public_key_of(self.session()?, &key, id)
    }

    fn sign(&self, id: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
        let key = self.find(id)?;
        let algorithm = key.algorithm.map_err(Error::FailedPrecondition)?;
        self.session()?
            .sign(&mechanism(algorithm), key.handle, input)
            .map_err(classify)
    }

    fn destroy(&self, id: &str) -> Result<usize, Error> {
        provision::destroy(self.session()?, id)
    }

    fn set_usage(&self, label: &str, sign: bool, verify: bool) -> Result<(), Error> {
        provision::set_usage(self.session()?, label, sign, verify)
    }

    fn fixed_usage(&self) -> bool {
        false
    }
}
