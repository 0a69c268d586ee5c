//! The one mapping from [`Error`] to a gRPC [`Status`]. Client-facing errors keep their message;
//! HSM and internal failures are logged with their cause and answered with a short message
//! that reveals no path, PKCS#11 code or secret.

use tonic::{Code, Status};

use crate::error::{Error, ErrorKind};

/// The gRPC code of each kind of error.
pub fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The canonical name of a gRPC code (`OK`, `PERMISSION_DENIED`, …), as the audit log writes it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = code_of(error.kind());
        let message = match error.kind() {
            ErrorKind::Unavailable => match error {
                Error::ShuttingDown => {
                    "the agent is shutting down; retry on another replica".into()
                }
                Error::Recovering => {
                    "the agent lost its HSM connection and is re-establishing it; retry shortly"
                        .into()
                }
                Error::AuditUnavailable(why) => {
                    tracing::error!(reason = %why, "audit log unwritable; call refused");
                    "the agent cannot write its audit log, so it signs nothing; see its log".into()
                }
                Error::HsmFailed(why) => {
                    tracing::error!(reason = %why, "HSM in failed state");
                    "the agent cannot use its HSM until an operator acts; see the agent's log"
                        .into()
                }
                _ => {
                    tracing::warn!(error = %error, "HSM unavailable");
                    "the HSM is unavailable; retry later".to_owned()
                }
            },
            ErrorKind::Internal => {
                tracing::error!(error = %error, "internal error");
                match error {
                    Error::SignatureCheckFailed { .. } => {
                        "the HSM produced a signature that does not verify; it was withheld"
                            .to_owned()
                    }
                    _ => "internal error; the agent's log has the details".to_owned(),
                }
            }
            _ => error.to_string(),
        };
        Status::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;
    use cryptoki::error::RvError;

    #[test]
    fn each_kind_has_its_code() {
        let cases = [
            (Error::InvalidArgument("x".into()), Code::InvalidArgument),
            (Error::KeyNotFound("k".into()), Code::NotFound),
            (Error::KeyGone("k".into()), Code::NotFound),
            (Error::AlreadyExists("k".into()), Code::AlreadyExists),
            (
                Error::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (
                Error::ResourceExhausted("x".into()),
                Code::ResourceExhausted,
            ),
            (
                Error::HsmUnavailable {
                    function: Function::Sign,
                    rv: RvError::DeviceRemoved,
                },
                Code::Unavailable,
            ),
            (
                Error::Hsm {
                    function: Function::Sign,
                    rv: RvError::GeneralError,
                },
                Code::Internal,
            ),
            (
                Error::SignatureCheckFailed { key_id: "k".into() },
                Code::Internal,
            ),
            (
                Error::YubiHsmUnavailable {
                    operation: "Sign EdDSA",
                    source: yubihsm::client::ErrorKind::ConnectorError.into(),
                },
                Code::Unavailable,
            ),
            (
                Error::YubiHsm {
                    operation: "Sign EdDSA",
                    source: yubihsm::client::ErrorKind::ResponseError.into(),
                },
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }

    #[test]
    fn hsm_details_stay_out_of_the_message() {
        let status = Status::from(Error::Hsm {
            function: Function::Sign,
            rv: RvError::GeneralError,
        });
        assert!(!status.message().contains("CKR"), "{}", status.message());
        assert!(!status.message().contains("Sign"), "{}", status.message());
        let status = Status::from(Error::Config("/etc/signet/pin".into()));
        assert!(!status.message().contains("/etc"), "{}", status.message());
    }
}
