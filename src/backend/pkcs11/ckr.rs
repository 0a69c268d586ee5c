//! The table from PKCS#11 return codes (`CKR_*`) to Signet's error kinds.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::error::Error;

/// Converts an error from a PKCS#11 call into a domain error, keeping the failing function and
/// the return code for the log.
pub fn classify(error: CkError) -> Error {
    match error {
        CkError::Pkcs11(rv, function) => classify_rv(rv, function),
        other => Error::Pkcs11Library(other),
    }
}

fn classify_rv(rv: RvError, function: Function) -> Error {
    use RvError::*;
    match rv {
        // The device, the token or the session went away: the caller can retry later.
        DeviceError
        | DeviceRemoved
        | DeviceMemory
        | TokenNotPresent
        | TokenNotRecognized
        | SessionHandleInvalid
        | SessionClosed
        | SessionCount
        | CryptokiNotInitialized
        | UserNotLoggedIn
        | FunctionCanceled
        | HostMemory => Error::HsmUnavailable { function, rv },
        // The HSM refused the data we passed (length or content); the agent validates inputs
        // before calling, so these are reported as invalid arguments.
        DataLenRange | DataInvalid => Error::InvalidArgument(
            "the HSM refused the message: its length or content is not accepted by this key's \
             mechanism"
                .into(),
        ),
        // The key was destroyed or its handle went stale since start-up.
        KeyHandleInvalid | ObjectHandleInvalid => Error::FailedPrecondition(
            "the key is no longer usable on the token (it may have been destroyed)".into(),
        ),
        KeySizeRange => Error::KeySizeRange,
        KeyTypeInconsistent
        | KeyFunctionNotPermitted
        | MechanismInvalid
        | MechanismParamInvalid => Error::FailedPrecondition(
            "the token does not allow this operation with this key".into(),
        ),
        _ => Error::Hsm { function, rv },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn device_loss_is_unavailable_and_keeps_the_function() {
        let e = classify(CkError::Pkcs11(RvError::DeviceRemoved, Function::Sign));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("Sign"), "{e}");
        for rv in [
            RvError::SessionHandleInvalid,
            RvError::TokenNotPresent,
            RvError::UserNotLoggedIn,
        ] {
            assert_eq!(
                classify(CkError::Pkcs11(rv, Function::Sign)).kind(),
                ErrorKind::Unavailable
            );
        }
    }

    #[test]
    fn other_codes_are_internal_or_precondition() {
        assert_eq!(
            classify(CkError::Pkcs11(RvError::GeneralError, Function::Sign)).kind(),
            ErrorKind::Internal
        );
        assert_eq!(
            classify(CkError::Pkcs11(
                RvError::KeyFunctionNotPermitted,
                Function::SignInit
            ))
            .kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(
            classify(CkError::Pkcs11(RvError::DataLenRange, Function::Sign)).kind(),
            ErrorKind::InvalidArgument
        );
        // SoftHSM2 answers short HMAC keys this way at C_SignInit; callers see why.
        let short = classify(CkError::Pkcs11(RvError::KeySizeRange, Function::SignInit));
        assert_eq!(short.kind(), ErrorKind::FailedPrecondition);
        assert!(
            short.to_string().contains("shorter than 32 bytes"),
            "{short}"
        );
    }
}
