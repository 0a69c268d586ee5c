//! How a call checks an HMAC tag inside the token (`C_VerifyInit` + `C_Verify` with
//! `CKM_SHA256_HMAC`), looking the key up again as signing does ([`Shared::with_handle`]) when
//! its handle is missing or stale. The token says whether the tag matches; the agent never
//! computes or compares one.

use super::{Connection, Shared};
use crate::backend::pkcs11::{ckr, mechanism};
use crate::error::Error;
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
        self.with_handle(connection, key, |handle| {
            connection.pool.with_session(|session| {
                ckr::verified(
                    session.verify(&mechanism, handle, input, signature),
                    &key.label(),
                )
            })
        })
    }
}
