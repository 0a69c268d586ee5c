//! How a call signs with a served key, looking it up again on the session when this session
//! has no object id for it or the device says it cannot find it; a key is gone only when the
//! device answers the lookup and no longer has it.

use std::sync::MutexGuard;

use yubihsm::Client;

use super::{Session, Shared};
use crate::backend::verdict::Verdict;
use crate::backend::yubihsm::discover::{self, FoundKey, ServedKey};
use crate::backend::yubihsm::sign;
use crate::error::{Error, HsmFault};

impl Shared {
    /// Signs with `served` on the session. A key without an object id in this session, or one
    /// the device says it cannot find, is looked up again first and the command sent once more.
    pub(super) fn sign_on(
        &self,
        guard: &mut MutexGuard<'_, Option<Session>>,
        served: &ServedKey,
        input: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let algorithm = served.descriptor.algorithm;
        let known = guard
            .as_ref()
            .ok_or(Error::Recovering)?
            .object_ids
            .get(&served.descriptor.label())
            .copied();
        let object_id = match known {
            Some(object_id) => object_id,
            None => self.find_again(guard, served)?,
        };
        let command =
            |object_id| move |session: &Session| sign(&session.client, algorithm, object_id, input);
        match self.with_session(guard, command(object_id)) {
            Err(e) if e.fault() == Some(HsmFault::KeyGone) => {
                tracing::warn!(
                    key = %served.descriptor.label(),
                    error = %e,
                    "the YubiHSM did not find the key; looking it up again"
                );
                let object_id = self.find_again(guard, served)?;
                self.with_session(guard, command(object_id))
                    // Listed, yet not found by the command: the device is not sound.
                    .map_err(|e| e.refault(HsmFault::KeyGone, HsmFault::Lost))
            }
            other => other,
        }
    }

    /// Looks `served` up on the session and records its object id; `KeyGone` only when the
    /// device answers the lookup and no longer has the key.
    pub(super) fn find_again(
        &self,
        guard: &mut MutexGuard<'_, Option<Session>>,
        served: &ServedKey,
    ) -> Result<u16, Error> {
        let label = served.descriptor.label();
        let id = &label;
        if let Some(session) = guard.as_mut() {
            session.object_ids.remove(id);
        }
        let auth_key = self.device.auth_key();
        let found = self.with_session(guard, |session| {
            let found = discover::find_keys(&session.client)?;
            let verdicts = discover::assess(&session.client, auth_key, &found, self.strict)?;
            find_served(&session.client, served, &found, &verdicts)
        })?;
        let Some(object_id) = found else {
            tracing::error!(
                key = %id,
                "the key is no longer on the YubiHSM (the device answers, and has no such key); \
                 calls for it answer NOT_FOUND, and each looks again"
            );
            return Err(Error::KeyGone(served.descriptor.id.clone()));
        };
        tracing::info!(key = %id, "found the key again on the YubiHSM");
        if let Some(session) = guard.as_mut() {
            session.object_ids.insert(id.clone(), object_id);
        }
        Ok(object_id)
    }
}

/// The object id of the found key that is still `served` (same object id and type, sequence,
/// label, algorithm and public key, still within the Tier 4 rule), if any. A connection lost
/// while its public key was read is an outage, not a changed key: an error then.
pub(super) fn find_served(
    client: &Client,
    served: &ServedKey,
    found: &[FoundKey],
    verdicts: &[Verdict],
) -> Result<Option<u16>, Error> {
    let key = &served.descriptor;
    let again = found.iter().zip(verdicts).find(|(f, v)| match v {
        Verdict::Served(public_key) => {
            f.object_id == served.object_id
                && f.object_type == served.object_type
                && f.sequence == served.sequence
                && f.name() == key.label()
                && f.algorithm.as_ref().ok() == Some(&key.algorithm)
                && *public_key == key.public_key
        }
        _ => false,
    });
    if let Some((f, _)) = again {
        return Ok(Some(f.object_id));
    }
    if let Some(f) = found
        .iter()
        .find(|f| f.object_id == served.object_id && f.object_type == served.object_type)
    {
        if key.public_key.is_some() {
            if let Err(e) = discover::public_key_of(client, f) {
                if e.is_connection_loss() {
                    return Err(e);
                }
            }
        }
    }
    Ok(None)
}
