//! A pool of open PKCS#11 sessions on one token, shared by the executor's worker threads.
//!
//! A session is checked out for one call and returned afterwards; it is never held across an
//! `.await` (the pool is only used from worker threads). The pool grows to the number of
//! concurrent callers, which the executor bounds.
//!
//! When the connection to the token is lost, the pool is *abandoned*: its session handles are
//! forgotten rather than closed. After the module is re-initialised, a new session may get the
//! number of an old one, and closing the old handle would close the new session (and log the
//! agent out).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use cryptoki::context::Pkcs11;
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use super::ckr::classify;
use crate::error::Error;

/// Idle sessions on one token, and the session that holds the login.
pub struct SessionPool {
    pkcs11: Pkcs11,
    slot: Slot,
    idle: Mutex<Vec<Session>>,
    /// The session the agent logged in with. It is never lent out, so discarding pooled
    /// sessions never closes the application's last session, which would log the token out.
    login: Mutex<Option<Session>>,
    abandoned: AtomicBool,
}

impl SessionPool {
    /// A pool whose sessions share the login made on `login`.
    pub fn new(pkcs11: Pkcs11, slot: Slot, login: Session) -> Self {
        SessionPool {
            pkcs11,
            slot,
            idle: Mutex::new(Vec::new()),
            login: Mutex::new(Some(login)),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Runs `f` with a session from the pool, opening one if none is idle. A session whose
    /// call failed because the token or session went away is forgotten, not returned.
    ///
    /// Once the pool is abandoned it makes no more PKCS#11 calls: it answers `Recovering`.
    pub fn with_session<R>(
        &self,
        f: impl FnOnce(&Session) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let idle = {
            let mut idle = self.lock_idle();
            if self.abandoned.load(Ordering::Acquire) {
                return Err(Error::Recovering);
            }
            idle.pop()
        };
        let session = match idle {
            Some(session) => session,
            None => self.pkcs11.open_ro_session(self.slot).map_err(classify)?,
        };
        let result = f(&session);
        let lost = matches!(&result, Err(e) if e.is_connection_loss());
        let mut idle = self.lock_idle();
        // Checked under the lock that `abandon` takes, so a session is never put back into a
        // pool that was abandoned meanwhile.
        if lost || self.abandoned.load(Ordering::Acquire) {
            std::mem::forget(session);
        } else {
            idle.push(session);
        }
        result
    }

    /// Asks the token about the login session: a cheap call that fails when the device, the
    /// session or the module's initialisation is gone.
    ///
    /// The session is taken out of its slot for the call, so a probe that hangs in the HSM
    /// does not hold a lock that [`abandon`](Self::abandon) needs.
    pub fn probe(&self) -> Result<(), Error> {
        let Some(session) = self.login.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Err(Error::Recovering);
        };
        let result = session.get_session_info().map(|_| ()).map_err(classify);
        let mut login = self.login.lock().unwrap_or_else(|p| p.into_inner());
        if self.abandoned.load(Ordering::Acquire) {
            std::mem::forget(session);
        } else {
            *login = Some(session);
        }
        result
    }

    /// Forgets every session without closing it: the connection is gone and the handles may be
    /// reused by the next connection.
    pub fn abandon(&self) {
        let mut idle = self.lock_idle();
        self.abandoned.store(true, Ordering::Release);
        let login = self.login.lock().unwrap_or_else(|p| p.into_inner()).take();
        for session in idle.drain(..).chain(login) {
            std::mem::forget(session);
        }
    }

    /// Closes every idle session, then the login session. Called at shutdown, after the
    /// workers have stopped.
    pub fn close_all(&self) {
        let login = self.login.lock().unwrap_or_else(|p| p.into_inner()).take();
        for session in self.lock_idle().drain(..).chain(login) {
            if let Err(e) = session.close() {
                tracing::warn!(error = %e, "closing an HSM session at shutdown failed");
            }
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        // A panic while holding this lock cannot leave the Vec half-updated (push and pop are
        // the only operations), so a poisoned lock is safe to keep using.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SessionPool {
    fn drop(&mut self) {
        if self.abandoned.load(Ordering::Acquire) {
            self.abandon();
        }
        // Otherwise the sessions close as they drop (C_CloseSession).
    }
}
