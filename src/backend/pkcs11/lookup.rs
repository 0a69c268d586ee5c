//! Finds a served key again on the token: after a reconnect, and when a call says its handle is
//! no longer valid. A key counts as gone only when the token, answering for itself, no longer
//! has it: SoftHSM2 whose storage is unreadable finds no objects at all rather than failing.

use cryptoki::context::Pkcs11;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use super::ckr::classify;
use super::discover::{self, FoundKey, Verdict};
use crate::error::Error;
use crate::key::KeyDescriptor;

/// A served key version as it was found: what identifies it again.
pub struct Wanted<'a> {
    /// What callers see (id = `CKA_LABEL`, algorithm, public key).
    pub descriptor: &'a KeyDescriptor,
    /// Its `CKA_ID`.
    pub object_id: &'a [u8],
    /// Strict mode (`backend.require_generated`), as the key was served under.
    pub strict: bool,
}

impl Wanted<'_> {
    /// The handle of the found key that is still this key (same label and `CKA_ID`, same
    /// algorithm, same public key, still served under the Tier 4 rule), if any.
    pub fn among(&self, found: &[FoundKey], verdicts: &[Verdict]) -> Option<ObjectHandle> {
        let key = self.descriptor;
        found.iter().zip(verdicts).find_map(|(f, v)| match v {
            Verdict::Served(public_key)
                if f.label.as_deref() == Some(key.label().as_str())
                    && f.id == self.object_id
                    && f.algorithm.as_ref().ok() == Some(&key.algorithm)
                    && *public_key == key.public_key =>
            {
                Some(f.handle)
            }
            _ => None,
        })
    }
}

/// Checks that the token answers for itself (`C_GetTokenInfo`): SoftHSM2 answers
/// `CKR_GENERAL_ERROR` while its token directory is gone or unreadable, a lost connection.
pub fn token_answers(pkcs11: &Pkcs11, slot: Slot) -> Result<(), Error> {
    pkcs11.get_token_info(slot).map(|_| ()).map_err(classify)
}

/// Looks `wanted` up on `session`: `Ok(Some(handle))` when it is there, `Ok(None)` only when
/// the token answered before and after the search and the key is not among what it found, an
/// error (usually a lost connection) when the token could not be asked.
pub fn find_again(
    pkcs11: &Pkcs11,
    slot: Slot,
    session: &Session,
    wanted: &Wanted<'_>,
) -> Result<Option<ObjectHandle>, Error> {
    token_answers(pkcs11, slot)?;
    let found = discover::find_keys(session)?;
    let verdicts = discover::assess(session, &found, wanted.strict);
    if let Some(handle) = wanted.among(&found, &verdicts) {
        return Ok(Some(handle));
    }
    // The storage may have gone during the search (an empty search, or a public key that
    // could not be read): only a token that still answers confirms the absence.
    token_answers(pkcs11, slot)?;
    Ok(None)
}
