//! Re-reading the token's keys while serving (SIGHUP, and every `backend.rescan_interval_ms`):
//! the registry is replaced whole when the token answers before and after the search, and kept
//! as it was when it does not (SoftHSM2 whose storage went away finds no objects at all).

use std::collections::HashMap;

use super::Shared;
use crate::backend::pkcs11::{discover, lookup};
use crate::backend::Registry;
use crate::error::Error;

impl Shared {
    /// Finds the keys again on a session of the working connection and replaces the registry;
    /// an error (the HSM unavailable) leaves the last good registry in place.
    pub(super) fn rescan(&self) -> Result<(), Error> {
        // Inserts and replacements only: a poisoned lock guards nothing inconsistent.
        let _one_at_a_time = self.rescanning.lock().unwrap_or_else(|p| p.into_inner());
        let connection = self.current()?;
        let strict = self.config.require_generated;
        let wanted = self.config.keys.as_deref();
        let result = connection.pool.with_session(|session| {
            lookup::token_answers(&self.pkcs11, connection.slot)?;
            let found = discover::find_keys(session)?;
            let chosen = discover::choose(session, &found, wanted, strict);
            // Only a token that still answers vouches for what the search found.
            lookup::token_answers(&self.pkcs11, connection.slot)?;
            Ok(chosen)
        });
        let (served, problems) = match result {
            Ok(chosen) => chosen,
            Err(e) => {
                if e.is_connection_loss() {
                    self.lost(&connection, &e);
                }
                tracing::warn!(error = %e, "re-reading the token's keys failed; the keys served stay as they were");
                return Err(e);
            }
        };
        for problem in problems {
            tracing::warn!("re-reading the token's keys: {problem}; it is not served");
        }
        let mut handles = HashMap::new();
        let mut object_ids = HashMap::new();
        for key in &served {
            let label = key.descriptor.label();
            handles.insert(label.clone(), key.handle);
            object_ids.insert(label, key.object_id.clone());
        }
        let registry = Registry::new(served.into_iter().map(|k| k.descriptor));
        let before = self.keys.load();
        crate::backend::log_changes(&before, &registry);
        *connection.lock_handles() = handles;
        *self.object_ids.write().unwrap_or_else(|p| p.into_inner()) = object_ids;
        self.keys.store(registry);
        Ok(())
    }
}
