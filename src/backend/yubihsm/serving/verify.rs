//! How a call checks an HMAC tag with the YubiHSM's own HMAC-verify command, looking the key up
//! again as signing does when the device cannot find it. The device says whether the tag
//! matches; the agent never computes or compares one.

use std::sync::MutexGuard;

use super::{Session, Shared};
use crate::backend::yubihsm::discover::ServedKey;
use crate::backend::yubihsm::fault;
use crate::backend::yubihsm::MAX_WHOLE_MESSAGE;
use crate::error::{Error, HsmFault};
use crate::key::Algorithm;

/// The bytes of an HMAC-SHA256 tag, which the verify command carries before the message.
const TAG_BYTES: usize = 32;

impl Shared {
    /// Checks `signature` over `input` with the HMAC key `served`: `Ok(false)` when the device
    /// answers that the tag does not match.
    pub(super) fn verify_on(
        &self,
        guard: &mut MutexGuard<'_, Option<Session>>,
        served: &ServedKey,
        input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        let key_id = &served.descriptor.label();
        if served.descriptor.algorithm != Algorithm::HmacSha256 {
            return Err(Error::Internal(format!(
                "key '{key_id}' is asymmetric: the signer verifies it with its public key"
            )));
        }
        let limit = MAX_WHOLE_MESSAGE - TAG_BYTES;
        if input.len() > limit {
            return Err(Error::ResourceExhausted(format!(
                "the message is {} bytes; a YubiHSM2 verifies HMAC tags over messages of at \
                 most {limit} bytes (the tag and the whole message must fit in the device's \
                 command buffer)",
                input.len()
            )));
        }
        let known = guard
            .as_ref()
            .ok_or(Error::Recovering)?
            .object_ids
            .get(key_id.as_str())
            .copied();
        let object_id = match known {
            Some(object_id) => object_id,
            None => self.find_again(guard, served)?,
        };
        let command = |object_id| {
            move |session: &Session| {
                fault::verified(
                    session
                        .client
                        .verify_hmac(object_id, input.to_vec(), signature.to_vec()),
                    key_id,
                )
            }
        };
        match self.with_session(guard, command(object_id)) {
            Err(e) if e.fault() == Some(HsmFault::KeyGone) => {
                tracing::warn!(
                    key = %key_id,
                    error = %e,
                    "the YubiHSM did not find the key; looking it up again"
                );
                let object_id = self.find_again(guard, served)?;
                self.with_session(guard, command(object_id))
                    .map_err(|e| e.refault(HsmFault::KeyGone, HsmFault::Lost))
            }
            other => other,
        }
    }
}
