//! How a call checks an HMAC tag inside the token (`C_VerifyInit` + `C_Verify` with
//! `CKM_SHA256_HMAC`), looking the key up again as signing does when its handle is missing or
//! stale. The token says whether the tag matches; the agent never computes or compares one.

use super::{Connection, Shared};
use crate::backend::pkcs11::{ckr, mechanism};
use crate::error::{Error, HsmFault};
use crate::key::KeyDescriptor;

impl Shared {
    /// Checks `signature` over `input` with `key` on `connection`: `Ok(false)` when the token
    /// answers that it does not verify.
    pub(super) fn verify_on(
        &self,
        connection: &Connection,
        key: &KeyDescriptor,
        input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        let mechanism = mechanism(key.algorithm);
        let verify = |handle| {
            connection.pool.with_session(|session| {
                ckr::verified(
                    session.verify(&mechanism, handle, input, signature),
                    &key.label(),
                )
            })
        };
        let handle = match connection.handle(&key.label()) {
            Some(handle) => handle,
            None => self.find_again(connection, key)?,
        };
        match verify(handle) {
            Err(e) if e.fault() == Some(HsmFault::KeyGone) => {
                tracing::warn!(
                    key = %key.label(),
                    error = %e,
                    "the token says the key's handle is not valid; looking the key up again"
                );
                let handle = self.find_again(connection, key)?;
                verify(handle).map_err(|e| e.refault(HsmFault::KeyGone, HsmFault::Lost))
            }
            other => other,
        }
    }
}
