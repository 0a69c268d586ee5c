//! The one table from PKCS#11 return codes (`CKR_*`) to Signet's [`HsmFault`]s, and the few
//! codes that mean success in context (already initialised, already logged in). Nothing else
//! in Signet reads a `CKR_*` code.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, HsmError, HsmFault};

/// What a PKCS#11 return code means for Signet.
///
/// SoftHSM2 whose token directory is moved away, made unreadable or cannot be opened (no file
/// descriptors left) answers `CKR_OBJECT_HANDLE_INVALID` for the keys it had, an empty
/// `C_FindObjects`, and `CKR_GENERAL_ERROR` for `C_GetTokenInfo`; until the module is
/// re-initialised it keeps answering so even after the directory is back. So a general error
/// is a lost connection (the reconnect resets the module), and a handle error is only a hint
/// that the backend must confirm (see `serving.rs`).
pub fn fault_of(rv: RvError) -> HsmFault {
    use RvError::*;
    match rv {
        // The device, the token, its storage or the session went away: re-make the connection.
        DeviceError
        | DeviceRemoved
        | TokenNotPresent
        | TokenNotRecognized
        | SlotIdInvalid
        | SessionHandleInvalid
        | SessionClosed
        | CryptokiNotInitialized
        | UserNotLoggedIn
        | GeneralError => HsmFault::Lost,
        // Out of sessions or memory, or cancelled: retry later on the same connection.
        DeviceMemory | SessionCount | FunctionCanceled | HostMemory => HsmFault::Busy,
        // The handle is stale or the object destroyed: confirmed by a lookup before it counts.
        KeyHandleInvalid | ObjectHandleInvalid => HsmFault::KeyGone,
        // The HSM refused the data we passed (length or content); the agent validates inputs
        // before calling, so these are reported as invalid arguments.
        DataLenRange | DataInvalid => HsmFault::BadInput,
        KeyTypeInconsistent
        | KeyFunctionNotPermitted
        | MechanismInvalid
        | MechanismParamInvalid => HsmFault::NotPermitted,
        PinIncorrect | PinLocked | PinExpired | PinLenRange | PinInvalid => HsmFault::LoginRefused,
        _ => HsmFault::Other,
    }
}

/// Converts an error from a PKCS#11 call into a domain error, keeping the failing function and
/// the return code for the log.
pub fn classify(error: CkError) -> Error {
    match error {
        // A fact about the key that the key commands explain to the operator.
        CkError::Pkcs11(RvError::KeySizeRange, _) => Error::KeySizeRange,
        // Kryoptic answers `C_SignInit` on a key another process destroyed (its handle still
        // cached, the object gone from the sqlite store) with `CKR_GENERAL_ERROR`: a hint, like
        // a handle error, that a lookup on a working session confirms or refutes.
        CkError::Pkcs11(rv @ RvError::GeneralError, function @ Function::SignInit) => {
            HsmError::new(HsmFault::KeyGone, op_of(function), Ckr { rv, function }).into()
        }
        CkError::Pkcs11(rv, function) => {
            HsmError::new(fault_of(rv), op_of(function), Ckr { rv, function }).into()
        }
        other => HsmError::new(HsmFault::Other, "the PKCS#11 library", other).into(),
    }
}

/// `C_VerifyInit` + `C_Verify`'s result: `CKR_SIGNATURE_INVALID` and `CKR_SIGNATURE_LEN_RANGE`
/// are the token's answer "does not verify" (`Ok(false)`); `CKR_KEY_FUNCTION_NOT_PERMITTED`
/// means the key object was created with `CKA_VERIFY = false`, which the operator must fix.
pub fn verified(result: Result<(), CkError>, key_id: &str) -> Result<bool, Error> {
    match result {
        Ok(()) => Ok(true),
        Err(CkError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => {
            Ok(false)
        }
        Err(CkError::Pkcs11(RvError::KeyFunctionNotPermitted, _)) => {
            Err(Error::FailedPrecondition(format!(
                "key '{}' was created without CKA_VERIFY; see the README to enable \
                 verification or rotate",
                key_id.escape_debug()
            )))
        }
        Err(e) => Err(classify(e)),
    }
}

/// `C_GetMechanismInfo`'s result: `CKR_MECHANISM_INVALID` is the token's answer "I do not
/// offer this mechanism" (`Ok(None)`).
pub fn mechanism_info(
    result: Result<cryptoki::mechanism::MechanismInfo, CkError>,
) -> Result<Option<cryptoki::mechanism::MechanismInfo>, Error> {
    match result {
        Ok(info) => Ok(Some(info)),
        Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => Ok(None),
        Err(e) => Err(classify(e)),
    }
}

/// `C_Initialize`'s result: a module that is already initialised is fine.
pub fn initialized(result: Result<(), CkError>) -> Result<(), Error> {
    match result {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(classify(e)),
    }
}

/// `C_Finalize`'s result: a module that is not initialised is already finalised.
pub fn finalized(result: Result<(), CkError>) -> Result<(), Error> {
    match result {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) => Ok(()),
        Err(e) => Err(classify(e)),
    }
}

/// `C_Login`'s result. Already logged in (the login belongs to the whole token) is success. A
/// lost or busy token is an outage; every other answer is a refusal, which is never retried
/// because HSMs lock the PIN after a few failures.
pub fn logged_in(result: Result<(), CkError>) -> Result<(), Error> {
    let e = match result {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => return Ok(()),
        Err(e) => e,
    };
    let advice = match &e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => {
            "the token refused the PIN (CKR_PIN_INCORRECT). Signet made exactly one login \
             attempt and will not retry, because HSMs lock the PIN after a few failures. Check \
             the PIN source named in backend.pin"
        }
        CkError::Pkcs11(RvError::PinLocked, _) => {
            "the token's user PIN is locked (CKR_PIN_LOCKED): the security officer must unlock \
             or reset it before Signet can log in"
        }
        CkError::Pkcs11(RvError::PinExpired, _) => {
            "the token's user PIN has expired (CKR_PIN_EXPIRED): set a new PIN on the token"
        }
        CkError::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => {
            "the token refused the PIN's format; check the PIN source named in backend.pin (a \
             stray character or newline?)"
        }
        _ => match classify(e) {
            lost if matches!(lost.fault(), Some(HsmFault::Lost | HsmFault::Busy)) => {
                return Err(lost)
            }
            other => {
                return Err(HsmError::new(
                    HsmFault::LoginRefused,
                    "C_Login",
                    format!(
                        "logging in to the token failed: {other}. Signet made one attempt and \
                         will not retry a login the token refused"
                    ),
                )
                .into())
            }
        },
    };
    Err(HsmError::new(
        HsmFault::LoginRefused,
        "C_Login",
        Explained { advice, source: e },
    )
    .into())
}

/// A `CKR_*` code and the function that returned it, for the log.
#[derive(Debug)]
struct Ckr {
    rv: RvError,
    function: Function,
}

impl std::fmt::Display for Ckr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "C_{:?} returned {} ({})",
            self.function,
            ckr_name(self.rv),
            self.rv
        )
    }
}

impl std::error::Error for Ckr {}

/// What the operator should do about a refused login, with the module's error as the source.
#[derive(Debug, thiserror::Error)]
#[error("{advice}")]
struct Explained {
    advice: &'static str,
    source: CkError,
}

/// `CKR_GENERAL_ERROR` from `GeneralError`.
fn ckr_name(rv: RvError) -> String {
    let mut name = String::from("CKR");
    for c in format!("{rv:?}").chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// The `C_*` name of the functions Signet calls (the source names any other).
fn op_of(function: Function) -> &'static str {
    match function {
        Function::Sign => "C_Sign",
        Function::SignInit => "C_SignInit",
        Function::Verify => "C_Verify",
        Function::VerifyInit => "C_VerifyInit",
        Function::FindObjectsInit => "C_FindObjectsInit",
        Function::FindObjects => "C_FindObjects",
        Function::FindObjectsFinal => "C_FindObjectsFinal",
        Function::GetAttributeValue => "C_GetAttributeValue",
        Function::OpenSession => "C_OpenSession",
        Function::CloseSession => "C_CloseSession",
        Function::GetSessionInfo => "C_GetSessionInfo",
        Function::GetTokenInfo => "C_GetTokenInfo",
        Function::GetSlotList => "C_GetSlotList",
        Function::Login => "C_Login",
        Function::Logout => "C_Logout",
        Function::Initialize => "C_Initialize",
        Function::Finalize => "C_Finalize",
        Function::InitToken => "C_InitToken",
        Function::InitPIN => "C_InitPIN",
        Function::CreateObject => "C_CreateObject",
        Function::DestroyObject => "C_DestroyObject",
        Function::GenerateKey => "C_GenerateKey",
        Function::GenerateKeyPair => "C_GenerateKeyPair",
        Function::GenerateRandom => "C_GenerateRandom",
        _ => "a PKCS#11 call",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// Every code the table lists, with the fault it says.
    const TABLE: &[(RvError, HsmFault)] = &[
        (RvError::DeviceError, HsmFault::Lost),
        (RvError::DeviceRemoved, HsmFault::Lost),
        (RvError::TokenNotPresent, HsmFault::Lost),
        (RvError::TokenNotRecognized, HsmFault::Lost),
        (RvError::SlotIdInvalid, HsmFault::Lost),
        (RvError::SessionHandleInvalid, HsmFault::Lost),
        (RvError::SessionClosed, HsmFault::Lost),
        (RvError::CryptokiNotInitialized, HsmFault::Lost),
        (RvError::UserNotLoggedIn, HsmFault::Lost),
        (RvError::GeneralError, HsmFault::Lost),
        (RvError::DeviceMemory, HsmFault::Busy),
        (RvError::SessionCount, HsmFault::Busy),
        (RvError::FunctionCanceled, HsmFault::Busy),
        (RvError::HostMemory, HsmFault::Busy),
        (RvError::KeyHandleInvalid, HsmFault::KeyGone),
        (RvError::ObjectHandleInvalid, HsmFault::KeyGone),
        (RvError::DataLenRange, HsmFault::BadInput),
        (RvError::DataInvalid, HsmFault::BadInput),
        (RvError::KeyTypeInconsistent, HsmFault::NotPermitted),
        (RvError::KeyFunctionNotPermitted, HsmFault::NotPermitted),
        (RvError::MechanismInvalid, HsmFault::NotPermitted),
        (RvError::MechanismParamInvalid, HsmFault::NotPermitted),
        (RvError::PinIncorrect, HsmFault::LoginRefused),
        (RvError::PinLocked, HsmFault::LoginRefused),
        (RvError::PinExpired, HsmFault::LoginRefused),
        (RvError::PinLenRange, HsmFault::LoginRefused),
        (RvError::PinInvalid, HsmFault::LoginRefused),
        (RvError::FunctionFailed, HsmFault::Other),
        (RvError::ActionProhibited, HsmFault::Other),
    ];

    #[test]
    fn every_listed_code_maps_where_the_table_says() {
        for &(rv, fault) in TABLE {
            assert_eq!(fault_of(rv), fault, "{rv:?}");
            let e = classify(CkError::Pkcs11(rv, Function::Sign));
            assert_eq!(e.fault(), Some(fault), "{rv:?}");
            assert_eq!(e.kind(), fault.kind(), "{rv:?}");
            assert_eq!(e.is_connection_loss(), fault == HsmFault::Lost, "{rv:?}");
            // The log line names the call and the code.
            let text = e.to_string();
            assert!(text.contains("C_Sign"), "{text}");
            assert!(text.contains(&ckr_name(rv)), "{text}");
        }
        assert_eq!(ckr_name(RvError::GeneralError), "CKR_GENERAL_ERROR");
    }

    #[test]
    fn kinds_follow_the_fault() {
        let kind = |rv| classify(CkError::Pkcs11(rv, Function::Sign)).kind();
        assert_eq!(kind(RvError::DeviceRemoved), ErrorKind::Unavailable);
        assert_eq!(kind(RvError::SessionCount), ErrorKind::Unavailable);
        assert_eq!(kind(RvError::GeneralError), ErrorKind::Unavailable);
        // At C_SignInit a general error is only a hint that the key is gone (Kryoptic).
        let at_sign_init = classify(CkError::Pkcs11(RvError::GeneralError, Function::SignInit));
        assert_eq!(at_sign_init.fault(), Some(HsmFault::KeyGone));
        assert_eq!(kind(RvError::FunctionFailed), ErrorKind::Internal);
        assert_eq!(kind(RvError::DataLenRange), ErrorKind::InvalidArgument);
        assert_eq!(
            kind(RvError::KeyFunctionNotPermitted),
            ErrorKind::FailedPrecondition
        );
        // SoftHSM2 answers short HMAC keys this way at C_SignInit; callers see why.
        let short = classify(CkError::Pkcs11(RvError::KeySizeRange, Function::SignInit));
        assert_eq!(short.kind(), ErrorKind::FailedPrecondition);
        assert!(
            short.to_string().contains("shorter than 32 bytes"),
            "{short}"
        );
    }

    #[test]
    fn verify_answers_are_valid_invalid_not_permitted_or_a_fault() {
        let verify = |rv| verified(Err(CkError::Pkcs11(rv, Function::Verify)), "h");
        assert!(verified(Ok(()), "h").expect("valid"));
        assert!(!verify(RvError::SignatureInvalid).expect("invalid"));
        assert!(!verify(RvError::SignatureLenRange).expect("invalid"));
        let e = verified(
            Err(CkError::Pkcs11(
                RvError::KeyFunctionNotPermitted,
                Function::VerifyInit,
            )),
            "h",
        )
        .expect_err("no CKA_VERIFY");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(
            e.to_string()
                .contains("key 'h' was created without CKA_VERIFY"),
            "{e}"
        );
        let lost = verify(RvError::DeviceRemoved).expect_err("lost");
        assert!(lost.is_connection_loss());
        assert!(lost.to_string().contains("C_Verify"), "{lost}");
    }

    #[test]
    fn login_answers_are_success_outage_or_refusal() {
        let login = |rv| logged_in(Err(CkError::Pkcs11(rv, Function::Login)));
        assert!(logged_in(Ok(())).is_ok());
        assert!(login(RvError::UserAlreadyLoggedIn).is_ok());
        for rv in [RvError::DeviceRemoved, RvError::GeneralError] {
            assert!(login(rv).err().is_some_and(|e| e.is_connection_loss()));
        }
        for rv in [
            RvError::PinIncorrect,
            RvError::PinLocked,
            RvError::PinExpired,
            RvError::PinLenRange,
            RvError::FunctionFailed,
        ] {
            let e = login(rv).expect_err("refused");
            assert!(e.is_login_refused(), "{rv:?}: {e}");
        }
        let e = login(RvError::PinIncorrect).expect_err("refused");
        assert!(e.to_string().contains("CKR_PIN_INCORRECT"), "{e}");
        assert!(e.to_string().contains("exactly one login attempt"), "{e}");
        assert!(initialized(Err(CkError::Pkcs11(
            RvError::CryptokiAlreadyInitialized,
            Function::Initialize
        )))
        .is_ok());
        assert!(finalized(Err(CkError::Pkcs11(
            RvError::CryptokiNotInitialized,
            Function::Finalize
        )))
        .is_ok());
    }
}
