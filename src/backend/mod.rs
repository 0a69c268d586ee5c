//! The seam between the agent and an HSM: a small, synchronous, object-safe trait.
//!
//! Calls block (they talk to hardware) and are made from the `Executor`'s
//! worker threads, never from async tasks.

pub mod admin;
pub mod pkcs11;
mod registry;
mod supervisor;
pub mod verdict;
pub mod yubihsm;

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{self, Config};
use crate::error::Error;
pub use registry::{log_changes, Registry, RegistryCell};

use self::admin::KeyAdmin;
use self::pkcs11::admin::Pkcs11Admin;
use self::pkcs11::Pkcs11Backend;
use self::yubihsm::admin::YubiHsmAdmin;
use self::yubihsm::YubiHsmBackend;

/// Worker threads in front of a YubiHSM: the device runs one command at a time, so one thread
/// talks to it while the other verifies the last signature or reads the next request.
pub const YUBIHSM_WORKERS: usize = 2;

/// A backend opened for serving, and how many worker threads should call it.
pub struct Opened {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The worker threads: one per HSM session (`backend.sessions`, by default one per CPU)
    /// for PKCS#11, [`YUBIHSM_WORKERS`] for a YubiHSM.
    pub workers: usize,
}

/// Opens the configured backend for serving (blocking; call before serving). This and
/// [`open_admin`] are the only places that choose a backend by its kind.
pub fn open(config: &Config) -> Result<Opened, Error> {
    match &config.backend {
        config::Backend::Pkcs11(p) => {
            let pin = p.pin.read()?;
            // The backend keeps the PIN (zeroizing) to log in again after an HSM outage.
            let backend = Pkcs11Backend::open(p, pin)?;
            let workers = p
                .sessions
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            Ok(Opened {
                backend: Arc::new(backend),
                workers,
            })
        }
        config::Backend::Yubihsm(y) => {
            let password = y.password.read()?;
            // The backend keeps only the credentials derived from the password (wiped when
            // dropped), to open new sessions.
            let backend = YubiHsmBackend::open(y, &password)?;
            drop(password);
            Ok(Opened {
                backend: Arc::new(backend),
                workers: YUBIHSM_WORKERS,
            })
        }
    }
}

/// Opens the configured backend for key management (read-write, logged in).
pub fn open_admin(config: &Config) -> Result<Box<dyn KeyAdmin>, Error> {
    match &config.backend {
        config::Backend::Pkcs11(p) => {
            let pin = p.pin.read()?;
            Ok(Box::new(Pkcs11Admin::open(p, &pin)?))
        }
        config::Backend::Yubihsm(y) => {
            let password = y.password.read()?;
            Ok(Box::new(YubiHsmAdmin::open(y, &password)?))
        }
    }
}

/// The PKCS#11 settings, for the commands that work on a PKCS#11 module only (`signet token
/// init`, `signet bench raw`); `None` when the configuration names a YubiHSM.
pub fn pkcs11_only(config: &Config) -> Option<&config::Pkcs11> {
    match &config.backend {
        config::Backend::Pkcs11(p) => Some(p),
        config::Backend::Yubihsm(_) => None,
    }
}

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
    /// The keys this backend serves right now, checked against the Tier 4 rule when they were
    /// found: a snapshot, taken once per call (a re-scan replaces it whole).
    fn registry(&self) -> Arc<Registry>;

    /// Signs `input` with version `version` of the key `key_id` and returns the raw signature.
    ///
    /// `input` is what the key's mechanism takes: the whole message for Ed25519 (pure EdDSA)
    /// and HMAC-SHA256, the 32-byte SHA-256 digest of the message for ECDSA P-256, whose
    /// signature comes back as the 64-byte r‖s.
    fn sign(&self, key_id: &str, version: u32, input: &[u8]) -> Result<Vec<u8>, Error>;

    /// Reads the token's keys again and replaces the registry: new keys and versions are
    /// served, destroyed and disabled ones leave, a key that breaks the Tier 4 rule (or, in
    /// strict mode, was ever outside the HSM) is refused and logged. When the HSM cannot be
    /// read the error is returned and the last good registry stays. Blocking.
    fn rescan(&self) -> Result<(), Error>;

    /// Checks `signature` over `input` with the HMAC key `key_id`, inside the HSM (PKCS#11
    /// `C_Verify`, the YubiHSM's HMAC-verify command): the agent never computes or compares a
    /// tag itself. `Ok(false)` when the HSM says the tag does not match; an error when the HSM
    /// could not check it (a key made without `CKA_VERIFY` is `FailedPrecondition`).
    /// Asymmetric signatures are checked by the signer against the public key, not here.
    fn verify(
        &self,
        key_id: &str,
        version: u32,
        input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error>;

    /// The backend's state, as it changes. A backend that cannot lose its HSM is always
    /// [`HsmState::Serving`].
    fn state(&self) -> watch::Receiver<HsmState> {
        watch::channel(HsmState::Serving).1
    }

    /// Closes sessions and releases the HSM. Called once, after every worker has stopped.
    fn shutdown(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTEN: &str = "[[listen]]\ntype = \"unix\"\npath = \"/run/signet/signet.sock\"\n";

    #[test]
    fn only_a_pkcs11_configuration_has_pkcs11_settings() {
        let pkcs11 = Config::parse(&format!(
            "{LISTEN}[backend]\ntype = \"pkcs11\"\nmodule = \"m.so\"\n\
             token = {{ label = \"signet\" }}\npin = {{ env = \"PIN\" }}\n"
        ))
        .expect("pkcs11");
        assert!(pkcs11_only(&pkcs11)
            .is_some_and(|p| p.token == config::TokenSelector::Label("signet".into())));
        let yubihsm = Config::parse(&format!(
            "{LISTEN}[backend]\ntype = \"yubihsm\"\nconnector = {{ http = \"http://h:1\" }}\n\
             auth_key = 1\npassword = {{ env = \"PW\" }}\n"
        ))
        .expect("yubihsm");
        assert!(pkcs11_only(&yubihsm).is_none());
    }

    #[test]
    fn opening_reads_the_secret_of_the_backend_the_configuration_names() {
        // Neither backend is reached: the secret source is read first, and it is missing.
        let yubihsm = Config::parse(&format!(
            "{LISTEN}[backend]\ntype = \"yubihsm\"\nconnector = {{ http = \"http://h:1\" }}\n\
             auth_key = 1\npassword = {{ file = \"/nonexistent/signet-test-password\" }}\n"
        ))
        .expect("yubihsm");
        for e in [
            open(&yubihsm).err().expect("no password file"),
            open_admin(&yubihsm).err().expect("no password file"),
        ] {
            assert!(e.to_string().contains("signet-test-password"), "{e}");
        }
    }
}
