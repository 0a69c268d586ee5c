//! Whether a token offers the mechanisms a key type needs (`C_GetMechanismInfo`: the
//! mechanism's flags, or `CKR_MECHANISM_INVALID` for one the token does not have): checked
//! before generating a key and when the agent starts serving one, so a token without ML-DSA
//! (SoftHSM2 2.6.1, any PKCS#11 2.40 module) gets a sentence instead of a CKR code.
//!
//! `C_GetMechanismInfo` for the one mechanism rather than `C_GetMechanismList`: the list would
//! say the same, but `cryptoki` logs an error line for every vendor mechanism in it that it does
//! not know (over a hundred on Kryoptic).

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::MechanismType;
use cryptoki::slot::Slot;

use super::ckr;
use crate::error::Error;
use crate::key::Algorithm;

/// What a mechanism is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Making a key pair inside the token.
    Generate,
    /// Signing with a served key.
    Sign,
}

/// Checks that the token in `slot` offers what `algorithm` needs for `usage`. Only ML-DSA is
/// checked: the other types predate PKCS#11 3.2 and every supported token has them (a token
/// without them answers `CKR_MECHANISM_INVALID`, which [`classify`] already words).
pub fn require(pkcs11: &Pkcs11, slot: Slot, algorithm: Algorithm, usage: Use) -> Result<(), Error> {
    if algorithm != Algorithm::MlDsa65 {
        return Ok(());
    }
    let mechanism = match usage {
        Use::Generate => MechanismType::ML_DSA_KEY_PAIR_GEN,
        Use::Sign => MechanismType::ML_DSA,
    };
    let flag_set =
        ckr::mechanism_info(pkcs11.get_mechanism_info(slot, mechanism))?.is_some_and(|info| {
            match usage {
                Use::Generate => info.generate_key_pair(),
                Use::Sign => info.sign(),
            }
        });
    if flag_set {
        return Ok(());
    }
    let doing = match usage {
        Use::Generate => "generate ML-DSA-65 key pairs",
        Use::Sign => "sign with ML-DSA-65 keys",
    };
    Err(Error::FailedPrecondition(format!(
        "this token does not offer {mechanism} (ML-DSA, PKCS#11 3.2), so it cannot {doing}; \
         SoftHSM2 2.6.1 and the YubiHSM 2 have no ML-DSA, Kryoptic 1.5 (with its pqc feature) \
         has it"
    )))
}
