//! The key commands' view of an HSM: list, generate, import, read the public key, destroy.
//!
//! It is separate from [`super::Backend`] (the signing path) because it needs a read-write
//! session and runs without the agent; each backend implements both.

use crate::error::Error;
use crate::key::Algorithm;
use crate::public_key::PublicKey;

/// A private or secret key found on the token, as `signet keys list` reports it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key id (the object label), if it has one.
    pub id: Option<String>,
    /// Another name the key answers to in the key commands: a YubiHSM object id, written
    /// `0x` and four hex digits. `None` on PKCS#11 tokens.
    pub object_id: Option<String>,
    /// The algorithm, or why the key's type is not supported.
    pub algorithm: Result<Algorithm, String>,
    /// The key size in bits, for secret keys whose length the token reports.
    pub size_bits: Option<u64>,
    /// The key material is sensitive (cannot be read in plaintext).
    pub sensitive: bool,
    /// The key can be exported (wrapped).
    pub extractable: bool,
    /// The key has been sensitive since it was created (false for imported keys).
    pub always_sensitive: bool,
    /// The key has never been extractable (false for imported keys).
    pub never_extractable: bool,
    /// The key was generated inside the token rather than imported.
    pub local: bool,
    /// Why the agent would not serve it, or `None` if it would.
    pub not_served: Option<String>,
    /// The key breaks a rule (Tier 4, ambiguous label, missing public key): the agent refuses
    /// to start while the key is selected.
    pub refused: bool,
    /// A key of a type Signet signs with that allows signing: the keys Signet manages.
    pub signing: bool,
    /// The configuration selects the key (`backend.keys` names it, or is absent).
    pub selected: bool,
    /// The token lets the key sign (`CKA_SIGN`; the sign capability on a YubiHSM).
    pub may_sign: bool,
    /// The token lets the key verify (`CKA_VERIFY` of a secret key or of a private key's
    /// public-key object; always on a YubiHSM).
    pub may_verify: bool,
}

impl KeyInfo {
    /// Whether this key keeps `signet serve` from starting.
    pub fn blocks_start(&self) -> bool {
        self.refused && self.selected
    }
}

/// The one signing key among `matching` (those named `id`): [`Error::NotOnToken`] for none,
/// `FAILED_PRECONDITION` for several, with `hint` on how to name one.
pub fn the_one<K>(mut matching: Vec<K>, id: &str, hint: &str) -> Result<K, Error> {
    match matching.len() {
        0 => Err(Error::NotOnToken(id.to_owned())),
        1 => Ok(matching.remove(0)),
        n => Err(Error::FailedPrecondition(format!(
            "{n} signing keys carry the label '{}'{hint}",
            id.escape_debug()
        ))),
    }
}

/// Refuses `keys public` for an HMAC key, which has none.
pub fn has_public_key(id: &str, algorithm: &Result<Algorithm, String>) -> Result<(), Error> {
    if *algorithm == Ok(Algorithm::HmacSha256) {
        return Err(Error::FailedPrecondition(format!(
            "key '{}' is an HMAC key; it has no public key",
            id.escape_debug()
        )));
    }
    Ok(())
}

/// Key management on one token. Every method makes its own HSM calls; nothing is cached.
pub trait KeyAdmin {
    /// Every private and secret key on the token, sorted by id.
    fn list(&self) -> Result<Vec<KeyInfo>, Error>;

    /// Generates a sensitive, non-extractable key inside the token. An existing id gives
    /// [`Error::AlreadyExists`].
    fn generate(&self, algorithm: Algorithm, id: &str) -> Result<(), Error>;

    /// Stores `secret` as a sensitive, non-extractable HMAC-SHA256 key.
    fn import_hmac(&self, id: &str, secret: &[u8]) -> Result<(), Error>;

    /// Stores an Ed25519 key pair (seed and the public key it derives) as a sensitive,
    /// non-extractable private key and its public key.
    fn import_ed25519(&self, id: &str, seed: &[u8; 32], public: &[u8; 32]) -> Result<(), Error>;

    /// The public key of the asymmetric key `id`.
    fn public_key(&self, id: &str) -> Result<PublicKey, Error>;

    /// Signs `input` with key `id` (the same input rules as [`super::Backend::sign`]); used to
    /// check a key right after it was made.
    fn sign(&self, id: &str, input: &[u8]) -> Result<Vec<u8>, Error>;

    /// Destroys the key `id` and its public-key object; returns how many objects went.
    fn destroy(&self, id: &str) -> Result<usize, Error>;

    /// Sets what the key object labelled `label` may do: sign (`CKA_SIGN`), verify
    /// (`CKA_VERIFY` of the secret key, or of the private key's public-key object). The version
    /// commands' only way to change a version's state. Fails on a token whose objects cannot
    /// change ([`fixed_usage`](Self::fixed_usage)).
    fn set_usage(&self, label: &str, sign: bool, verify: bool) -> Result<(), Error>;

    /// Whether the token's key objects keep the uses they were created with (a YubiHSM's
    /// capabilities never change): then a version's state follows from its number alone (the
    /// highest is primary) and only `rotate` and `destroy` change a ring.
    fn fixed_usage(&self) -> bool;
}
