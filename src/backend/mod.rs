//! The seam between the agent and an HSM: a small, synchronous, object-safe trait.
//!
//! Calls block (they talk to hardware) and are made from the [`crate::executor::Executor`]'s
//! worker threads, never from async tasks.

pub mod admin;
pub mod pkcs11;

use crate::error::Error;
use crate::key::KeyDescriptor;

/// An HSM that signs with keys it holds.
pub trait Backend: Send + Sync {
    /// The keys this backend serves, checked against the Tier 4 rule when the backend opened.
    fn keys(&self) -> Vec<KeyDescriptor>;

    /// Signs `input` with the key `key_id` and returns the raw signature.
    ///
    /// `input` is what the key's mechanism takes: the whole message for Ed25519 (pure EdDSA)
    /// and HMAC-SHA256, the 32-byte SHA-256 digest of the message for ECDSA P-256, whose
    /// signature comes back as the 64-byte r‖s.
    fn sign(&self, key_id: &str, input: &[u8]) -> Result<Vec<u8>, Error>;

    /// Closes sessions and releases the HSM. Called once, after every worker has stopped.
    fn shutdown(&self);
}
