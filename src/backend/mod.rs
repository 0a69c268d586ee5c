//! The seam between the agent and an HSM: a small, synchronous, object-safe trait.
//!
//! Calls block (they talk to hardware) and are made from the [`crate::executor::Executor`]'s
//! worker threads, never from async tasks.

pub mod admin;
pub mod pkcs11;
mod supervisor;
pub mod verdict;
pub mod yubihsm;

use tokio::sync::watch;

use crate::error::Error;
use crate::key::KeyDescriptor;

/// Whether a backend can sign right now; the health service follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HsmState {
    /// The HSM answers.
    Serving,
    /// The connection was lost; the backend is re-establishing it by itself.
    Recovering,
    /// The backend cannot recover by itself (for example, the PIN was refused at re-login);
    /// the text says what an operator must do.
    Failed(String),
}

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

    /// The backend's state, as it changes. A backend that cannot lose its HSM is always
    /// [`HsmState::Serving`].
    fn state(&self) -> watch::Receiver<HsmState> {
        watch::channel(HsmState::Serving).1
    }

    /// Closes sessions and releases the HSM. Called once, after every worker has stopped.
    fn shutdown(&self);
}
