//! [`Pkcs11Backend`]: signs with the served keys through a session pool, and survives the loss
//! of the device, its sessions or the module's initialisation.
//!
//! A call that fails with a connection-loss code (`ckr` classifies them) marks the connection
//! lost: the pool is abandoned, callers get `UNAVAILABLE` at once, the state turns
//! [`HsmState::Recovering`] (health `NOT_SERVING`), and a supervisor thread re-initialises the
//! module if needed, finds the token, logs in again and re-finds the keys, with bounded
//! exponential backoff. While serving, the supervisor probes the login session every
//! [`PROBE_INTERVAL`], so an outage is noticed even when no call is made. A refused PIN is never
//! retried: the state turns [`HsmState::Failed`] with what the operator must do.
//!
//! A key is declared gone only after a working session confirms it ([`lookup`]): when the token
//! says a key's handle is not valid, or a reconnect could not find the key, the next call looks
//! it up again by label and `CKA_ID`; found, the call goes on with the new handle; the lookup
//! failing is an outage (`UNAVAILABLE`, connection lost); only a token that answers and no
//! longer has the key makes the call `NOT_FOUND`. Absence is never remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::object::ObjectHandle;
use cryptoki::slot::Slot;
use tokio::sync::watch;

use super::lookup::{self, Wanted};
use super::session::SessionPool;
use super::{ckr, classify, discover, finalize, find_token, initialize, login, mechanisms, Token};
use crate::backend::supervisor::{Supervised, Supervisor};
use crate::backend::{Backend, HsmState};
use crate::backend::{Registry, RegistryCell};
use crate::config;
use crate::error::Error;
use crate::secret::Secret;

mod rescan;
mod sign;
mod verify;

/// How often the supervisor checks that the token still answers while nothing fails.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a reconnect waits for calls still inside the lost connection to return before it
/// resets the module under them (and how long a shutdown waits for the supervisor).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// A logged-in PKCS#11 token and the keys served from it.
pub struct Pkcs11Backend {
    shared: Arc<Shared>,
}

/// One working connection: a pool of sessions sharing one login, and the key handles found
/// through it, by object label (a key missing here is looked up again by the next call).
/// Replaced as a whole after a loss.
struct Connection {
    pool: SessionPool,
    slot: Slot,
    handles: Mutex<HashMap<String, ObjectHandle>>,
}

impl Connection {
    fn handle(&self, label: &str) -> Option<ObjectHandle> {
        self.lock_handles().get(label).copied()
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, ObjectHandle>> {
        // Inserts and removals only: a poisoned map is still consistent.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Shared {
    pkcs11: Pkcs11,
    config: config::Pkcs11,
    /// Kept (zeroizing) for logging in again after a loss; never logged.
    pin: Secret,
    keys: RegistryCell,
    /// The `CKA_ID` of each served key version, by object label, to recognise it after a
    /// reconnect. Replaced with the registry by a re-scan.
    object_ids: RwLock<HashMap<String, Vec<u8>>>,
    /// Held for the whole of a re-scan: re-scans run one at a time, so an older one never
    /// replaces what a newer one found.
    rescanning: Mutex<()>,
    connection: RwLock<Option<Arc<Connection>>>,
    /// Connections that were lost but may still be used by calls in flight.
    lost: Mutex<Vec<Weak<Connection>>>,
    supervisor: Supervisor,
}

impl Pkcs11Backend {
    /// Opens the token and chooses the keys to serve; fails with a message that says what to do
    /// when the module, the token, the PIN or a key is not right.
    pub fn open(config: &config::Pkcs11, pin: Secret) -> Result<Self, Error> {
        let token = Token::open(config, &pin, false)?;
        let served = discover::find_keys(&token.session).and_then(|found| {
            discover::select(
                &token.session,
                &found,
                config.keys.as_deref(),
                config.require_generated,
            )
        });
        let served = served.and_then(|served| {
            for key in &served {
                mechanisms::require(
                    &token.pkcs11,
                    token.slot,
                    key.descriptor.algorithm,
                    mechanisms::Use::Sign,
                )
                .map_err(|e| Error::Startup(format!("key '{}': {e}", key.descriptor.label())))?;
            }
            Ok(served)
        });
        let served = match served {
            Ok(served) => served,
            Err(e) => {
                token.close();
                return Err(e);
            }
        };
        let handles = served
            .iter()
            .map(|k| (k.descriptor.label(), k.handle))
            .collect();
        let object_ids = served
            .iter()
            .map(|k| (k.descriptor.label(), k.object_id.clone()))
            .collect();
        let keys = Registry::new(served.into_iter().map(|k| k.descriptor));
        let Token {
            pkcs11,
            slot,
            session,
        } = token;
        let connection = Connection {
            pool: SessionPool::new(pkcs11.clone(), slot, session),
            slot,
            handles: Mutex::new(handles),
        };
        let shared = Arc::new(Shared {
            pkcs11,
            config: config.clone(),
            pin,
            keys: RegistryCell::new(keys),
            object_ids: RwLock::new(object_ids),
            rescanning: Mutex::new(()),
            connection: RwLock::new(Some(Arc::new(connection))),
            lost: Mutex::new(Vec::new()),
            supervisor: Supervisor::new("HSM", PROBE_INTERVAL),
        });
        Supervisor::start(&shared)?;
        Ok(Pkcs11Backend { shared })
    }
}

impl Drop for Pkcs11Backend {
    /// Stops the supervisor even when [`Backend::shutdown`] was not called (a backend dropped
    /// on a start-up error path), so its probes do not outlive the backend.
    fn drop(&mut self) {
        self.shared.supervisor.stop();
    }
}

impl Backend for Pkcs11Backend {
    fn registry(&self) -> Arc<Registry> {
        self.shared.keys.load()
    }

    fn sign(&self, key_id: &str, version: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        let registry = self.shared.keys.load();
        let descriptor = registry
            .version(key_id, version)
            .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
        let connection = self.shared.current()?;
        let result = self.shared.sign_on(&connection, descriptor, input);
        if let Err(e) = &result {
            if e.is_connection_loss() {
                self.shared.lost(&connection, e);
            }
        }
        result
    }

    fn verify(
        &self,
        key_id: &str,
        version: u32,
        input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        let registry = self.shared.keys.load();
        let descriptor = registry
            .version(key_id, version)
            .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
        let connection = self.shared.current()?;
        let result = self
            .shared
            .verify_on(&connection, descriptor, input, signature);
        if let Err(e) = &result {
            if e.is_connection_loss() {
                self.shared.lost(&connection, e);
            }
        }
        result
    }

    fn rescan(&self) -> Result<(), Error> {
        self.shared.rescan()
    }

    fn state(&self) -> watch::Receiver<HsmState> {
        self.shared.supervisor.subscribe()
    }

    fn shutdown(&self) {
        // The supervisor may be inside a blocking HSM call (a probe, a login): wait for it a
        // bounded time, and do not close the HSM under it.
        if !self.shared.supervisor.stop_and_join(DRAIN_LIMIT) {
            return;
        }
        let connection = self
            .shared
            .connection
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(connection) = connection {
            connection.pool.close_all();
        }
        finalize(self.shared.pkcs11.clone());
    }
}

impl Shared {
    /// The `CKA_ID` of the served key version labelled `label` (empty if unknown).
    fn object_id_of(&self, label: &str) -> Vec<u8> {
        self.object_ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(label)
            .cloned()
            .unwrap_or_default()
    }

    /// The working connection, or `Recovering`/`Failed` while there is none.
    fn current(&self) -> Result<Arc<Connection>, Error> {
        if let HsmState::Failed(why) = self.supervisor.state() {
            return Err(Error::HsmFailed(why));
        }
        self.connection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::Recovering)
    }

    /// Marks `connection` lost (unless another caller already replaced it) and wakes the
    /// supervisor.
    fn lost(&self, connection: &Arc<Connection>, cause: &Error) {
        let mut current = self.connection.write().unwrap_or_else(|p| p.into_inner());
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, connection)) {
            return;
        }
        *current = None;
        drop(current);
        connection.pool.abandon();
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(connection));
        self.supervisor.lost(cause);
    }

    /// Turns the backend failed: logging in again was refused, and it is never tried again.
    fn fail(&self, why: String) -> Error {
        let why = format!(
            "logging in again after an HSM outage failed, and Signet will not try again: {why}. \
             Fix the PIN, then restart the agent"
        );
        tracing::error!("{why}");
        self.supervisor.fail(why)
    }

    /// Waits (at most [`DRAIN_LIMIT`]) until no call still uses a lost connection. Returns
    /// whether none does, so the module can be reset: `C_Finalize` closes every session the
    /// lost connections leave open, and PKCS#11 forbids it while other calls are in flight.
    fn drain_lost_connections(&self) -> bool {
        let until = Instant::now() + DRAIN_LIMIT;
        loop {
            let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
            lost.retain(|c| c.strong_count() > 0);
            if lost.is_empty() {
                return true;
            }
            drop(lost);
            if Instant::now() >= until {
                tracing::warn!(
                    "calls are still inside the lost HSM connection (hung?); reconnecting \
                     without resetting the module"
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Makes a new connection: resets the module when `reset` (see
    /// [`drain_lost_connections`](Self::drain_lost_connections)), finds the token, logs in (one
    /// attempt) and finds the served keys again, checking that each is still the key that was
    /// served (same label and `CKA_ID`, same algorithm, same public key, still Tier 4).
    fn connect(&self, reset: bool) -> Result<Connection, Error> {
        if reset {
            // Nothing uses the module now: finalising closes whatever the lost connection left
            // open (sessions the HSM still holds), so none leak across outages.
            if let Err(e) = ckr::finalized(self.pkcs11.clone().finalize()) {
                tracing::warn!(error = %e, "finalising the module before reconnecting");
            }
        }
        initialize(&self.pkcs11)?;
        let slot = find_token(&self.pkcs11, &self.config.token)?;
        let session = self.pkcs11.open_ro_session(slot).map_err(classify)?;
        login(&session, &self.pin)?;
        let found = discover::find_keys(&session)?;
        let verdicts = discover::assess(&session, &found, self.config.require_generated);
        let mut handles = HashMap::new();
        let keys = self.keys.load();
        for key in keys.all() {
            let label = key.label();
            let object_id = self.object_id_of(&label);
            let wanted = Wanted {
                descriptor: key,
                object_id: &object_id,
                strict: self.config.require_generated,
            };
            match wanted.among(&found, &verdicts) {
                Some(handle) => {
                    handles.insert(label, handle);
                }
                None => tracing::warn!(
                    key = %key.id,
                    "after reconnecting, the key was not found (or is no longer the key that was \
                     served); each call for it looks again, and answers NOT_FOUND only if the \
                     token confirms it is gone"
                ),
            }
        }
        if handles.len() < keys.all().count() {
            // A search on a token whose storage went away finds nothing: that is an outage
            // (this attempt fails and is tried again), not missing keys.
            lookup::token_answers(&self.pkcs11, slot)?;
        }
        Ok(Connection {
            pool: SessionPool::new(self.pkcs11.clone(), slot, session),
            slot,
            handles: Mutex::new(handles),
        })
    }
}

impl Supervised for Shared {
    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Checks the login session, and that the token answers for itself (its storage is
    /// readable).
    fn probe(&self) {
        if let Ok(connection) = self.current() {
            let probe = connection
                .pool
                .probe()
                .and_then(|()| lookup::token_answers(&self.pkcs11, connection.slot));
            if let Err(e) = probe {
                if e.is_connection_loss() {
                    self.lost(&connection, &e);
                }
            }
        }
    }

    /// Waits for calls still inside the lost connections, then makes new connections; a
    /// refused login is final.
    fn reconnect(&self) -> impl FnMut() -> Result<(), Error> + '_ {
        let reset = self.drain_lost_connections();
        move || {
            let connection = self.connect(reset).map_err(|e| {
                if e.is_login_refused() {
                    self.fail(e.to_string())
                } else {
                    e
                }
            })?;
            *self.connection.write().unwrap_or_else(|p| p.into_inner()) =
                Some(Arc::new(connection));
            Ok(())
        }
    }
}
