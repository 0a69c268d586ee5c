//! A pool of open PKCS#11 sessions on one token, shared by the executor's worker threads.
//!
//! A session is checked out for one call and returned afterwards; it is never held across an
//! `.await` (the pool is only used from worker threads). The pool grows to the number of
//! concurrent callers, which the executor bounds, and a session that failed with a
//! session-loss error is discarded instead of returned.

use std::sync::Mutex;

use cryptoki::context::Pkcs11;
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use super::ckr::classify;
use crate::error::{Error, ErrorKind};

/// Idle sessions on one token, and the session that holds the login.
pub struct SessionPool {
    pkcs11: Pkcs11,
    slot: Slot,
    idle: Mutex<Vec<Session>>,
    /// The session the agent logged in with. It is never lent out, so discarding every pooled
    /// session after errors never closes the application's last session, which would log the
    /// token out.
    login: Mutex<Option<Session>>,
}

impl SessionPool {
    /// A pool whose sessions share the login made on `login`.
    pub fn new(pkcs11: Pkcs11, slot: Slot, login: Session) -> Self {
        SessionPool {
            pkcs11,
            slot,
            idle: Mutex::new(Vec::new()),
            login: Mutex::new(Some(login)),
        }
    }

    /// Runs `f` with a session from the pool, opening one if none is idle.
    pub fn with_session<R>(
        &self,
        f: impl FnOnce(&Session) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let idle = self.lock().pop();
        let session = match idle {
            Some(session) => session,
            None => self.pkcs11.open_ro_session(self.slot).map_err(classify)?,
        };
        let result = f(&session);
        match &result {
            Err(e) if e.kind() == ErrorKind::Unavailable => drop(session),
            _ => self.lock().push(session),
        }
        result
    }

    /// Closes every idle session, then the login session. Called at shutdown, after the
    /// workers have stopped.
    pub fn close_all(&self) {
        let login = self
            .login
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        for session in self.lock().drain(..).chain(login) {
            if let Err(e) = session.close() {
                tracing::warn!(error = %e, "closing an HSM session at shutdown failed");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        // A panic while holding this lock cannot leave the Vec half-updated (push and pop are
        // the only operations), so a poisoned lock is safe to keep using.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
