//! The one table from the `yubihsm` crate's errors (client error kinds and the device's own
//! error codes) to Signet's [`HsmFault`]s. Nothing else in Signet reads a YubiHSM error code.

use yubihsm::client::ErrorKind as ClientKind;
use yubihsm::device::ErrorKind as DeviceKind;

use crate::error::{Error, HsmError, HsmFault};

/// What a failed command means for Signet. The client reports I/O errors of the HTTP
/// connection (connection refused, reset) as protocol errors.
pub fn fault_of(e: &yubihsm::client::Error) -> HsmFault {
    match (*e.kind(), e.device_error()) {
        // Connector down, session gone, secure channel broken: re-make the connection.
        (
            ClientKind::ConnectorError
            | ClientKind::ClosedSessionError
            | ClientKind::CreateFailed
            | ClientKind::ProtocolError,
            _,
        )
        | (_, Some(DeviceKind::InvalidSession | DeviceKind::SessionFailed)) => HsmFault::Lost,
        // All 16 sessions in use (they expire after 30 s idle): re-made with backoff.
        (_, Some(DeviceKind::SessionsFull)) => HsmFault::Lost,
        (_, Some(DeviceKind::ObjectNotFound)) => HsmFault::KeyGone,
        (_, Some(DeviceKind::InvalidData | DeviceKind::WrongLength)) => HsmFault::BadInput,
        (_, Some(DeviceKind::InsufficientPermissions)) => HsmFault::NotPermitted,
        _ => HsmFault::Other,
    }
}

/// What a failed session opening means: an authentication failure, or an authentication key
/// that does not exist, is a refused login (never retried); the rest as [`fault_of`].
pub fn open_fault(e: &yubihsm::client::Error) -> HsmFault {
    match (*e.kind(), e.device_error()) {
        (_, Some(DeviceKind::SessionsFull)) => HsmFault::Lost,
        (ClientKind::AuthenticationError, _)
        | (_, Some(DeviceKind::AuthenticationFailed | DeviceKind::ObjectNotFound)) => {
            HsmFault::LoginRefused
        }
        _ => fault_of(e),
    }
}

/// Converts a failed command into a domain error, keeping the command and the client's error.
pub fn classify(op: &'static str, source: yubihsm::client::Error) -> Error {
    HsmError::new(fault_of(&source), op, YubiError(source)).into()
}

/// The HMAC-verify command's result. The `yubihsm` client reports a tag that does not match as
/// a response error without a device code, whose message is exactly
/// [`HMAC_MISMATCH`]: that is `Ok(false)`. A key without the `verify-hmac` capability is
/// refused by the device with insufficient permissions: `FailedPrecondition`, saying so.
pub fn verified(result: Result<(), yubihsm::client::Error>, key_id: &str) -> Result<bool, Error> {
    let e = match result {
        Ok(()) => return Ok(true),
        Err(e) => e,
    };
    let mismatch = *e.kind() == ClientKind::ResponseError
        && e.device_error().is_none()
        && std::error::Error::source(&e).is_some_and(|s| s.to_string() == HMAC_MISMATCH);
    if mismatch {
        return Ok(false);
    }
    if e.device_error() == Some(DeviceKind::InsufficientPermissions) {
        return Err(Error::FailedPrecondition(format!(
            "key '{}' was created without the verify-hmac capability (the YubiHSM's CKA_VERIFY); \
             see the README to enable verification or rotate",
            key_id.escape_debug()
        )));
    }
    Err(classify("Verify HMAC", e))
}

/// The message of the `yubihsm` client's error for an HMAC tag that does not match.
const HMAC_MISMATCH: &str = "HMAC verification failure";

/// Converts a failed session opening (see [`open_fault`]), with what the operator should do
/// about a refusal.
pub fn open_error(auth_key: u16, source: yubihsm::client::Error) -> Error {
    let fault = open_fault(&source);
    if fault != HsmFault::LoginRefused {
        return HsmError::new(fault, "opening a session", YubiError(source)).into();
    }
    let advice = if source.device_error() == Some(DeviceKind::ObjectNotFound) {
        format!(
            "the YubiHSM has no authentication key with object id {auth_key}; check \
             backend.auth_key"
        )
    } else {
        format!(
            "the YubiHSM refused the password of authentication key {auth_key} ({}). Signet \
             made exactly one authentication attempt and will not retry; check the password \
             source named in backend.password and backend.auth_key",
            describe(&source)
        )
    };
    HsmError::new(fault, "opening a session", advice).into()
}

/// Maps a failed put or generate: an existing object id or a full device say so.
pub fn creation_error(operation: &'static str, id: &str, e: yubihsm::client::Error) -> Error {
    match e.device_error() {
        Some(DeviceKind::ObjectExists) => Error::AlreadyExists(id.to_owned()),
        Some(DeviceKind::StorageFailed) => {
            Error::ResourceExhausted("the YubiHSM's object storage is full".into())
        }
        Some(DeviceKind::InsufficientPermissions) => Error::FailedPrecondition(
            "the authentication key lacks the capability or domain to create this key (it \
             needs GENERATE_ASYMMETRIC_KEY, GENERATE_HMAC_KEY, PUT_ASYMMETRIC_KEY or \
             PUT_HMAC_KEY, the signing capability in its delegated capabilities, and \
             backend.domain)"
                .into(),
        ),
        _ => classify(operation, e),
    }
}

/// Whether a command failed because the session is gone (expired on the device, or aborted by
/// the client) while the connector still answers: a new session fixes it. A real device
/// answers a command on a session it no longer knows with an unencrypted error frame, which
/// the client reports as a response error without a device error code; a new session and one
/// retry are harmless for any other such error (signing is idempotent).
pub fn session_gone(e: &Error) -> bool {
    let Error::Hsm(HsmError { source, .. }) = e else {
        return false;
    };
    let Some(YubiError(source)) = source.downcast_ref::<YubiError>() else {
        return false;
    };
    matches!(
        *source.kind(),
        ClientKind::ClosedSessionError | ClientKind::AuthenticationError
    ) || (*source.kind() == ClientKind::ResponseError && source.device_error().is_none())
        || matches!(
            source.device_error(),
            Some(DeviceKind::InvalidSession | DeviceKind::SessionFailed)
        )
}

/// A `yubihsm` error for the log, shown with [`describe`].
#[derive(Debug)]
struct YubiError(yubihsm::client::Error);

impl std::fmt::Display for YubiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

impl std::error::Error for YubiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// A `yubihsm` error for people: the crate's Display repeats each layer's kind ("protocol
/// error: protocol error: I/O error: I/O error") and its HTTP client keeps the OS error
/// ("Connection refused (os error 111)") only in its Debug form, so the innermost cause is
/// spelled out from there when it is; otherwise the Display as it is.
pub fn describe(error: &yubihsm::client::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let debug = format!("{innermost:?}");
    let detail = debug
        .split_once("description: Some(\"")
        .and_then(|(_, rest)| rest.split_once("\")"))
        .map(|(detail, _)| detail);
    match detail {
        Some(detail) => format!("{innermost}: {detail}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn every_client_kind_maps_where_the_table_says() {
        for (kind, fault) in [
            (ClientKind::ConnectorError, HsmFault::Lost),
            (ClientKind::ClosedSessionError, HsmFault::Lost),
            (ClientKind::CreateFailed, HsmFault::Lost),
            (ClientKind::ProtocolError, HsmFault::Lost),
            (ClientKind::ResponseError, HsmFault::Other),
            (ClientKind::DeviceError, HsmFault::Other),
            (ClientKind::AuthenticationError, HsmFault::Other),
        ] {
            let e = classify("Sign EdDSA", kind.into());
            assert_eq!(e.fault(), Some(fault), "{kind:?}: {e}");
            assert_eq!(e.kind(), fault.kind(), "{kind:?}");
            assert_eq!(e.is_connection_loss(), fault == HsmFault::Lost, "{kind:?}");
            assert!(e.to_string().contains("Sign EdDSA"), "{e}");
        }
        // Opening a session: an authentication failure is a refusal, never retried.
        let e = open_error(2, ClientKind::AuthenticationError.into());
        assert!(e.is_login_refused(), "{e}");
        assert!(
            e.to_string().contains("exactly one authentication attempt"),
            "{e}"
        );
        assert_eq!(
            open_fault(&ClientKind::ConnectorError.into()),
            HsmFault::Lost
        );
    }

    #[test]
    fn every_device_code_maps_where_the_table_says() {
        for (code, fault, open) in [
            (DeviceKind::InvalidSession, HsmFault::Lost, HsmFault::Lost),
            (DeviceKind::SessionFailed, HsmFault::Lost, HsmFault::Lost),
            (DeviceKind::SessionsFull, HsmFault::Lost, HsmFault::Lost),
            (
                DeviceKind::ObjectNotFound,
                HsmFault::KeyGone,
                HsmFault::LoginRefused,
            ),
            (
                DeviceKind::InvalidData,
                HsmFault::BadInput,
                HsmFault::BadInput,
            ),
            (
                DeviceKind::WrongLength,
                HsmFault::BadInput,
                HsmFault::BadInput,
            ),
            (
                DeviceKind::InsufficientPermissions,
                HsmFault::NotPermitted,
                HsmFault::NotPermitted,
            ),
            (
                DeviceKind::AuthenticationFailed,
                HsmFault::Other,
                HsmFault::LoginRefused,
            ),
            (DeviceKind::StorageFailed, HsmFault::Other, HsmFault::Other),
        ] {
            let e = device_error(code);
            assert_eq!(e.device_error(), Some(code), "the fixture carries the code");
            assert_eq!(fault_of(&e), fault, "{code:?}");
            assert_eq!(open_fault(&e), open, "{code:?} when opening a session");
        }
        assert_eq!(
            classify("Sign EdDSA", device_error(DeviceKind::ObjectNotFound)).kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn gone_sessions_are_told_from_other_errors() {
        assert!(session_gone(&classify(
            "Echo",
            ClientKind::ClosedSessionError.into()
        )));
        // A real device's unencrypted answer to an unknown session.
        assert!(session_gone(&classify(
            "Echo",
            ClientKind::ResponseError.into()
        )));
        assert!(session_gone(&classify(
            "Echo",
            device_error(DeviceKind::InvalidSession)
        )));
        assert!(!session_gone(&classify(
            "Echo",
            ClientKind::DeviceError.into()
        )));
        assert!(!session_gone(&Error::Recovering));
    }

    /// A client error carrying the device's `code`, as the client builds one from a device's
    /// error response.
    fn device_error(code: DeviceKind) -> yubihsm::client::Error {
        let session: yubihsm::session::Error = code.into();
        session.into()
    }
}
