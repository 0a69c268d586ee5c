//! The one mapping from [`Error`] to a gRPC [`Status`]. Client-facing errors keep their message;
//! HSM and internal failures are logged with their cause (the vendor's error and its source
//! chain) and answered with a short message that reveals no path, PKCS#11 code or secret.

use tonic::{Code, Status};

use crate::error::{Error, ErrorKind, HsmError};

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

/// An error and its sources, joined with ": ", for the log.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Logs an HSM error with its vendor detail and answers with what the fault says, no more.
fn hsm_message(e: &HsmError, kind: ErrorKind) -> String {
    let detail = chain(&*e.source);
    match kind {
        ErrorKind::Internal => {
            tracing::error!(op = e.op, fault = ?e.fault, error = %detail, "HSM error")
        }
        _ => tracing::warn!(op = e.op, fault = ?e.fault, error = %detail, "HSM error"),
    }
    match kind {
        ErrorKind::Unavailable => "the HSM is unavailable; retry later".to_owned(),
        ErrorKind::Internal => "internal error; the agent's log has the details".to_owned(),
        _ => e.fault.describe().to_owned(),
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = code_of(error.kind());
        if let Error::Hsm(e) = &error {
            return Status::new(code, hsm_message(e, error.kind()));
        }
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
    use crate::error::HsmFault;

    /// An HSM error as a vendor table would make it, with details that must stay in the log.
    fn hsm(fault: HsmFault) -> Error {
        HsmError::new(
            fault,
            "C_Sign",
            "C_Sign returned CKR_GENERAL_ERROR for /var/lib/softhsm/tokens",
        )
        .into()
    }

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
            (hsm(HsmFault::Lost), Code::Unavailable),
            (hsm(HsmFault::Busy), Code::Unavailable),
            (hsm(HsmFault::KeyGone), Code::NotFound),
            (hsm(HsmFault::BadInput), Code::InvalidArgument),
            (hsm(HsmFault::NotPermitted), Code::FailedPrecondition),
            (hsm(HsmFault::LoginRefused), Code::Internal),
            (hsm(HsmFault::Other), Code::Internal),
            (
                Error::SignatureCheckFailed { key_id: "k".into() },
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }

    #[test]
    fn hsm_details_stay_out_of_the_message() {
        for fault in [
            HsmFault::Lost,
            HsmFault::Busy,
            HsmFault::KeyGone,
            HsmFault::BadInput,
            HsmFault::NotPermitted,
            HsmFault::LoginRefused,
            HsmFault::Other,
        ] {
            let status = Status::from(hsm(fault));
            for secret in ["CKR", "C_Sign", "/var"] {
                assert!(
                    !status.message().contains(secret),
                    "{fault:?}: {}",
                    status.message()
                );
            }
        }
        let status = Status::from(Error::Config("/etc/signet/pin".into()));
        assert!(!status.message().contains("/etc"), "{}", status.message());
        // A confirmed gone key says so, and gives no restart advice.
        let status = Status::from(Error::KeyGone("ed".into()));
        assert!(status.message().contains("no longer on the token"));
        assert!(
            !status.message().contains("restart"),
            "{}",
            status.message()
        );
    }
}
