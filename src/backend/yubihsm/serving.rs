//! [`YubiHsmBackend`]: signs with the served keys through one session, one command at a time,
//! and survives session expiry and connector outages.
//!
//! - **Keep-alive.** The device closes a session after 30 s without a command; a supervisor
//!   thread sends an Echo when the session has been idle for [`Timing::keepalive`].
//! - **Transparent reopen.** A session idle for [`Timing::session_reuse`] (the keep-alive could
//!   not run: the process was stopped, say), or one the device says is gone, is replaced by a
//!   new one before the command is retried once; the caller sees nothing.
//! - **Connector loss.** A command that cannot reach the device marks the connection lost:
//!   callers get `UNAVAILABLE` at once, the state turns [`HsmState::Recovering`] (health
//!   `NOT_SERVING`), and the supervisor opens a new session with bounded exponential backoff,
//!   finds the keys again and checks that each is still the key that was served.
//! - **Refused authentication** is never retried: the state turns [`HsmState::Failed`].
//! - **A key is gone only when the device confirms it.** A command that answers "object not
//!   found", or a key a reconnect did not find, makes the call look the key up again on the
//!   session; found, the call goes on; only a device that answers the lookup and no longer has
//!   the key makes the call `NOT_FOUND`. Absence is never remembered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use yubihsm::Client;

use super::discover::{self, ServedKey};
use super::fault::session_gone;
use super::{classify, Device};
use crate::backend::supervisor::{Supervised, Supervisor};
use crate::backend::{Backend, HsmState};
use crate::backend::{Registry, RegistryCell};
use crate::config;
use crate::error::{Error, HsmError, HsmFault};
use crate::secret::Secret;

mod sign;
mod verify;

use sign::find_served;

/// How long a shutdown waits for the supervisor to leave a device call.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The backend's clocks. The defaults suit a real device; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Idle time after which the supervisor sends an Echo to keep the session open; it also
    /// bounds how long a silent connector outage goes unnoticed.
    pub keepalive: Duration,
    /// Idle time after which the session is not trusted any more and a new one is opened
    /// before the next command (the device expires sessions after 30 s idle).
    pub session_reuse: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            keepalive: Duration::from_secs(2),
            session_reuse: Duration::from_secs(25),
        }
    }
}

/// A YubiHSM2 and the keys served from it.
pub struct YubiHsmBackend {
    shared: Arc<Shared>,
}

/// The one open session and where the served keys are in it. Replaced as a whole.
struct Session {
    client: Client,
    last_used: Instant,
    /// Served key version (object label) → object id, for the keys found again in this
    /// connection.
    object_ids: HashMap<String, u16>,
}

struct Shared {
    device: Device,
    timing: Timing,
    keys: RegistryCell,
    /// The served key versions, replaced with the registry by a re-scan.
    served: RwLock<Arc<Vec<ServedKey>>>,
    /// `backend.keys`: the keys to serve (all when `None`).
    wanted: Option<Vec<String>>,
    /// `backend.require_generated`: refuse keys imported into the device.
    strict: bool,
    /// The session, or `None` while the connection is lost. Held for the length of one device
    /// command: the device executes one command at a time.
    session: Mutex<Option<Session>>,
    sessions_opened: AtomicU64,
    supervisor: Supervisor,
}

impl YubiHsmBackend {
    /// Opens a session (one authentication attempt) and chooses the keys to serve; fails with a
    /// message that says what to do when the connector, the password or a key is not right.
    pub fn open(config: &config::YubiHsm, password: &Secret) -> Result<Self, Error> {
        Self::open_selecting(
            Device::new(config, password)?,
            config.keys.as_deref(),
            config.require_generated,
            Timing::default(),
        )
    }

    /// Opens the backend on `device`, serving the `wanted` keys (all when `None`).
    pub fn open_with(
        device: Device,
        wanted: Option<&[String]>,
        timing: Timing,
    ) -> Result<Self, Error> {
        Self::open_selecting(device, wanted, false, timing)
    }

    /// [`open_with`](Self::open_with), refusing imported keys when `strict`
    /// (`backend.require_generated`).
    pub fn open_selecting(
        device: Device,
        wanted: Option<&[String]>,
        strict: bool,
        timing: Timing,
    ) -> Result<Self, Error> {
        let client = device.open_session().map_err(|e| match e {
            Error::Hsm(HsmError {
                fault: HsmFault::Lost,
                op,
                source,
            }) => Error::Startup(format!(
                "cannot reach the YubiHSM ({op}: {source}); check that yubihsm-connector runs at \
                 backend.connector and the device is plugged in"
            )),
            other => other,
        })?;
        let found = discover::find_keys(&client)?;
        let served = discover::select(&client, device.auth_key(), &found, wanted, strict)?;
        let session = Session {
            client,
            last_used: Instant::now(),
            object_ids: served
                .iter()
                .map(|k| (k.descriptor.label(), k.object_id))
                .collect(),
        };
        let shared = Arc::new(Shared {
            device,
            timing,
            keys: RegistryCell::new(Registry::new(served.iter().map(|k| k.descriptor.clone()))),
            served: RwLock::new(Arc::new(served)),
            wanted: wanted.map(<[String]>::to_vec),
            strict,
            session: Mutex::new(Some(session)),
            sessions_opened: AtomicU64::new(1),
            supervisor: Supervisor::new("YubiHSM", timing.keepalive / 2),
        });
        Supervisor::start(&shared)?;
        Ok(YubiHsmBackend { shared })
    }

    /// How many sessions this backend has opened (1 at start, one more per reopen or
    /// reconnection): for diagnostics and tests.
    pub fn sessions_opened(&self) -> u64 {
        self.shared.sessions_opened.load(Ordering::Relaxed)
    }
}

impl Drop for YubiHsmBackend {
    /// Stops the supervisor even when [`Backend::shutdown`] was not called (a backend dropped
    /// on a start-up error path), so its keep-alive does not outlive the backend.
    fn drop(&mut self) {
        self.shared.supervisor.stop();
    }
}

impl Backend for YubiHsmBackend {
    fn registry(&self) -> Arc<Registry> {
        self.shared.keys.load()
    }

    fn sign(&self, key_id: &str, version: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        let served = self.shared.served();
        let served = served
            .iter()
            .find(|k| k.descriptor.id == key_id && k.descriptor.version == version)
            .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
        let mut guard = self.shared.serving_session()?;
        let result = self.shared.sign_on(&mut guard, served, input);
        if let Err(e) = &result {
            if e.is_connection_loss() {
                self.shared.lost(&mut guard, e);
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
        let served = self.shared.served();
        let served = served
            .iter()
            .find(|k| k.descriptor.id == key_id && k.descriptor.version == version)
            .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
        let mut guard = self.shared.serving_session()?;
        let result = self.shared.verify_on(&mut guard, served, input, signature);
        if let Err(e) = &result {
            if e.is_connection_loss() {
                self.shared.lost(&mut guard, e);
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
        if !self.shared.supervisor.stop_and_join(STOP_LIMIT) {
            return;
        }
        // The `yubihsm` client has no way to close a session: the device frees it after 30 s.
        self.shared
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

impl Shared {
    /// The served key versions right now.
    fn served(&self) -> Arc<Vec<ServedKey>> {
        Arc::clone(&self.served.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Finds the keys again on the session and replaces the registry; an error (the device
    /// unreachable) leaves the last good registry in place.
    fn rescan(&self) -> Result<(), Error> {
        let mut guard = self.serving_session()?;
        let auth_key = self.device.auth_key();
        let result = self.with_session(&mut guard, |session| {
            let found = discover::find_keys(&session.client)?;
            discover::choose(
                &session.client,
                auth_key,
                &found,
                self.wanted.as_deref(),
                self.strict,
            )
        });
        let (served, problems) = match result {
            Ok(chosen) => chosen,
            Err(e) => {
                if e.is_connection_loss() {
                    self.lost(&mut guard, &e);
                }
                tracing::warn!(error = %e, "re-reading the YubiHSM's keys failed; the keys served stay as they were");
                return Err(e);
            }
        };
        for problem in problems {
            tracing::warn!("re-reading the YubiHSM's keys: {problem}; it is not served");
        }
        if let Some(session) = guard.as_mut() {
            session.object_ids = served
                .iter()
                .map(|k| (k.descriptor.label(), k.object_id))
                .collect();
        }
        let registry = Registry::new(served.iter().map(|k| k.descriptor.clone()));
        crate::backend::log_changes(&self.keys.load(), &registry);
        *self.served.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(served);
        self.keys.store(registry);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session lock, if the backend is serving; `Recovering`/`Failed` otherwise, without
    /// waiting for the device.
    fn serving_session(&self) -> Result<MutexGuard<'_, Option<Session>>, Error> {
        self.check_state()?;
        let guard = self.lock();
        if guard.is_none() {
            self.check_state()?;
            return Err(Error::Recovering);
        }
        Ok(guard)
    }

    fn check_state(&self) -> Result<(), Error> {
        match self.supervisor.state() {
            HsmState::Failed(why) => Err(Error::HsmFailed(why)),
            HsmState::Recovering => Err(Error::Recovering),
            HsmState::Serving => Ok(()),
        }
    }

    /// Runs `command` on the session, opening a new session first when the current one has
    /// been idle too long, and once more (then retrying once) when the device says the session
    /// is gone.
    fn with_session<T>(
        &self,
        guard: &mut MutexGuard<'_, Option<Session>>,
        command: impl Fn(&Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let idle = guard
            .as_ref()
            .map(|s| s.last_used.elapsed())
            .ok_or(Error::Recovering)?;
        if idle >= self.timing.session_reuse {
            tracing::info!(
                idle_ms = idle.as_millis() as u64,
                "the YubiHSM session was idle too long; opening a new one"
            );
            self.reopen(guard)?;
        }
        let session = guard.as_mut().ok_or(Error::Recovering)?;
        let result = match command(session) {
            Err(e) if session_gone(&e) => {
                tracing::info!(error = %e, "the YubiHSM session is gone; opening a new one");
                self.reopen(guard)?;
                command(guard.as_ref().ok_or(Error::Recovering)?)
            }
            other => other,
        };
        if let Some(session) = guard.as_mut() {
            if result.is_ok() {
                session.last_used = Instant::now();
            }
        }
        result
    }

    /// Replaces the session with a new one on the same connector (one authentication attempt).
    fn reopen(&self, guard: &mut MutexGuard<'_, Option<Session>>) -> Result<(), Error> {
        match self.device.open_session() {
            Ok(client) => {
                self.sessions_opened.fetch_add(1, Ordering::Relaxed);
                if let Some(session) = guard.as_mut() {
                    session.client = client;
                    session.last_used = Instant::now();
                }
                Ok(())
            }
            Err(e) if e.is_login_refused() => Err(self.fail(guard, e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Turns the backend `Failed`: authentication was refused, and it is never tried again.
    fn fail(&self, guard: &mut MutexGuard<'_, Option<Session>>, why: String) -> Error {
        let why = format!(
            "opening a new YubiHSM session failed, and Signet will not try again: {why}. Fix the \
             password or the authentication key, then restart the agent"
        );
        tracing::error!("{why}");
        **guard = None;
        self.supervisor.fail(why)
    }

    /// Drops the session after a connection loss and wakes the supervisor to re-make it.
    fn lost(&self, guard: &mut MutexGuard<'_, Option<Session>>, cause: &Error) {
        if guard.take().is_none() {
            return;
        }
        self.supervisor.lost(cause);
    }

    /// Opens a session (one authentication attempt) and finds the served keys again, checking
    /// that each is still the key that was served: same object id and type, same label, same
    /// algorithm, same public key, still within the Tier 4 rule.
    fn connect(&self) -> Result<Session, Error> {
        let client = self.device.open_session()?;
        let found = discover::find_keys(&client)?;
        let verdicts = discover::assess(&client, self.device.auth_key(), &found, self.strict)?;
        let mut object_ids = HashMap::new();
        for served in self.served().iter() {
            match find_served(&client, served, &found, &verdicts)? {
                Some(object_id) => {
                    object_ids.insert(served.descriptor.label(), object_id);
                }
                None => tracing::warn!(
                    key = %served.descriptor.id,
                    "after reconnecting, the key was not found (or is no longer the key that was \
                     served); each call for it looks again, and answers NOT_FOUND only if the \
                     device confirms it is gone"
                ),
            }
        }
        Ok(Session {
            client,
            last_used: Instant::now(),
            object_ids,
        })
    }
}

impl Supervised for Shared {
    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Sends an Echo when the session has been idle for [`Timing::keepalive`].
    fn probe(&self) {
        let mut guard = self.lock();
        let idle = guard.as_ref().map(|s| s.last_used.elapsed());
        if idle.is_some_and(|idle| idle >= self.timing.keepalive) {
            let probe = self.with_session(&mut guard, |session| {
                session
                    .client
                    .echo(b"signet keep-alive".to_vec())
                    .map_err(|e| classify("Echo", e))
            });
            if let Err(e) = probe {
                if e.is_connection_loss() {
                    self.lost(&mut guard, &e);
                } else {
                    // An Echo has no reason to fail on a healthy session (a device reset or a
                    // host suspend leaves one the device no longer knows): make a new one, and
                    // treat a failure to do so as a loss.
                    tracing::warn!(error = %e, "the YubiHSM keep-alive failed; opening a new session");
                    if let Err(e) = self.reopen(&mut guard) {
                        if e.is_connection_loss() {
                            self.lost(&mut guard, &e);
                        }
                    }
                }
            }
        }
    }

    /// Makes new sessions; refused authentication is final.
    fn reconnect(&self) -> impl FnMut() -> Result<(), Error> + '_ {
        || {
            let session = self.connect().map_err(|e| {
                if e.is_login_refused() {
                    self.fail(&mut self.lock(), e.to_string())
                } else {
                    e
                }
            })?;
            *self.lock() = Some(session);
            self.sessions_opened.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }
}
