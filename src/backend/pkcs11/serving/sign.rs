//! How a call signs on a connection, looking a key up again (by label and `CKA_ID`, on a working
//! session) when it has no handle for it or the token says its handle is not valid; a key is
//! gone only when the token, answering for itself, no longer has it ([`lookup::find_again`]).

use cryptoki::object::ObjectHandle;

use super::{Connection, Shared};
use crate::backend::pkcs11::lookup::{self, Wanted};
use crate::backend::pkcs11::{classify, mechanism};
use crate::error::{Error, HsmFault};
use crate::key::KeyDescriptor;

impl Shared {
    /// Signs on `connection`. A key without a handle, or whose handle the token says is not
    /// valid, is looked up again first (see [`lookup::find_again`]) and the call made once more.
    pub(super) fn sign_on(
        &self,
        connection: &Connection,
        key: &KeyDescriptor,
        input: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mechanism = mechanism(key.algorithm);
        self.with_handle(connection, key, |handle| {
            connection
                .pool
                .with_session(|session| session.sign(&mechanism, handle, input).map_err(classify))
        })
    }

    /// Runs `call` with `key`'s handle on `connection`. A key without a handle, or whose handle
    /// the token says is not valid, is looked up again first (see [`lookup::find_again`]) and
    /// the call made once more; a new handle refused too means the token is not sound.
    pub(super) fn with_handle<T>(
        &self,
        connection: &Connection,
        key: &KeyDescriptor,
        call: impl Fn(ObjectHandle) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let handle = match connection.handle(&key.label()) {
            Some(handle) => handle,
            None => self.find_again(connection, key)?,
        };
        match call(handle) {
            Err(e) if e.fault() == Some(HsmFault::KeyGone) => {
                tracing::warn!(
                    key = %key.label(),
                    error = %e,
                    "the token says the key's handle is not valid; looking the key up again"
                );
                let handle = self.find_again(connection, key)?;
                call(handle).map_err(|e| e.refault(HsmFault::KeyGone, HsmFault::Lost))
            }
            other => other,
        }
    }

    /// Looks `key` up on a working session of `connection` and records its (new) handle;
    /// `KeyGone` only when the token answers and no longer has the key.
    pub(super) fn find_again(
        &self,
        connection: &Connection,
        key: &KeyDescriptor,
    ) -> Result<ObjectHandle, Error> {
        let label = key.label();
        connection.lock_handles().remove(&label);
        let object_id = self.object_id_of(&label);
        let wanted = Wanted {
            descriptor: key,
            object_id: &object_id,
            strict: self.config.require_generated,
        };
        let found = connection.pool.with_session(|session| {
            lookup::find_again(&self.pkcs11, connection.slot, session, &wanted)
        })?;
        let Some(handle) = found else {
            tracing::error!(
                key = %label,
                "the key is no longer on the token (the token answers, and has no such key); \
                 calls for it answer NOT_FOUND, and each looks again"
            );
            return Err(Error::KeyGone(key.id.clone()));
        };
        tracing::info!(key = %label, "found the key again on the token");
        connection.lock_handles().insert(label, handle);
        Ok(handle)
    }
}
