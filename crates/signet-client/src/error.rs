//! What can go wrong in a call, as an [`Error`] whose variant says what the caller can do next;
//! each carries the gRPC [`Code`] and the agent's message.

use std::fmt;

/// A gRPC status code (the `google.rpc.Code` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The call was cancelled.
    Cancelled = 1,
    /// An error with no better code.
    Unknown = 2,
    /// The request is wrong; repeating it will not help.
    InvalidArgument = 3,
    /// The deadline passed before the answer came.
    DeadlineExceeded = 4,
    /// No such key.
    NotFound = 5,
    /// It exists already.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// A limit was reached (queue full, message too large).
    ResourceExhausted = 8,
    /// The key or agent is not in a state that allows the call.
    FailedPrecondition = 9,
    /// Aborted (a conflict).
    Aborted = 10,
    /// Out of range.
    OutOfRange = 11,
    /// The agent does not know this call.
    Unimplemented = 12,
    /// The agent failed; its log says why.
    Internal = 13,
    /// The agent or its HSM is not reachable now; retry later.
    Unavailable = 14,
    /// The answer was damaged.
    DataLoss = 15,
    /// The caller could not be identified.
    Unauthenticated = 16,
}

impl Code {
    /// The canonical name, e.g. `NOT_FOUND`, as the agent's audit log writes it.
    pub fn name(self) -> &'static str {
        match self {
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

    /// The code of a number (as a batch item's `ItemError.code` carries it); `Unknown` for a
    /// number that is no gRPC code.
    pub fn from_i32(value: i32) -> Code {
        Code::from(tonic::Code::from_i32(value))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<tonic::Code> for Code {
    fn from(code: tonic::Code) -> Self {
        match code {
            tonic::Code::Ok => Code::Ok,
            tonic::Code::Cancelled => Code::Cancelled,
            tonic::Code::Unknown => Code::Unknown,
            tonic::Code::InvalidArgument => Code::InvalidArgument,
            tonic::Code::DeadlineExceeded => Code::DeadlineExceeded,
            tonic::Code::NotFound => Code::NotFound,
            tonic::Code::AlreadyExists => Code::AlreadyExists,
            tonic::Code::PermissionDenied => Code::PermissionDenied,
            tonic::Code::ResourceExhausted => Code::ResourceExhausted,
            tonic::Code::FailedPrecondition => Code::FailedPrecondition,
            tonic::Code::Aborted => Code::Aborted,
            tonic::Code::OutOfRange => Code::OutOfRange,
            tonic::Code::Unimplemented => Code::Unimplemented,
            tonic::Code::Internal => Code::Internal,
            tonic::Code::Unavailable => Code::Unavailable,
            tonic::Code::DataLoss => Code::DataLoss,
            tonic::Code::Unauthenticated => Code::Unauthenticated,
        }
    }
}

/// Why a call failed. The variant says what the caller can do; [`Error::code`] is the gRPC code
/// and [`Error::message`] the agent's message (or, for the local checks, this crate's). Its
/// `Display` is `CODE: message`, e.g. `NOT_FOUND: no key "x"`, except [`Error::Transport`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is wrong (a bad key id, DER asked of a non-ECDSA key, a bad anchor, a
    /// message that failed its CRC32C on the way): fix it; repeating it will not help.
    #[error("INVALID_ARGUMENT: {message}")]
    InvalidArgument {
        /// The agent's message.
        message: String,
    },
    /// No key with this id is served.
    #[error("NOT_FOUND: {message}")]
    NotFound {
        /// The agent's message.
        message: String,
    },
    /// This caller may not use this key (the agent's policy).
    #[error("PERMISSION_DENIED: {message}")]
    PermissionDenied {
        /// The agent's message.
        message: String,
    },
    /// The agent could not tell who the caller is.
    #[error("UNAUTHENTICATED: {message}")]
    Unauthenticated {
        /// The agent's message.
        message: String,
    },
    /// A limit was reached (the agent's queue is full, the message is too large): send less,
    /// or retry later with a backoff.
    #[error("RESOURCE_EXHAUSTED: {message}")]
    ResourceExhausted {
        /// The agent's message.
        message: String,
    },
    /// The agent or its HSM is unavailable now: retry later with a backoff.
    #[error("UNAVAILABLE: {message}")]
    Unavailable {
        /// The agent's message.
        message: String,
    },
    /// The deadline passed (the call's, see [`crate::Client::with_timeout`]); the call may or
    /// may not have been carried out.
    #[error("DEADLINE_EXCEEDED: {message}")]
    DeadlineExceeded {
        /// The agent's message, or this crate's when the deadline passed here.
        message: String,
    },
    /// The key cannot do this (an HMAC key has no public key; a key of the wrong type).
    #[error("FAILED_PRECONDITION: {message}")]
    FailedPrecondition {
        /// The agent's message.
        message: String,
    },
    /// The agent failed; its log has the cause.
    #[error("INTERNAL: {message}")]
    Internal {
        /// The agent's message.
        message: String,
    },
    /// The answer failed an integrity check (its CRC32C does not match, or it is not the
    /// answer to what was asked): do not use it; the call may be repeated.
    #[error("DATA_LOSS: {message}")]
    Corrupted {
        /// What did not match.
        message: String,
    },
    /// Any other gRPC status (`UNIMPLEMENTED` from an older agent, `CANCELLED`, ...).
    #[error("{code}: {message}")]
    Other {
        /// The gRPC code.
        code: Code,
        /// The agent's message.
        message: String,
    },
    /// No connection to the agent (no socket, refused, a TLS handshake that failed, a bad
    /// address or certificate): the code is `UNAVAILABLE`.
    #[error("cannot connect to the agent: {message}")]
    Transport {
        /// What failed, with its causes.
        message: String,
    },
}

impl Error {
    /// The gRPC code.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::PermissionDenied { .. } => Code::PermissionDenied,
            Error::Unauthenticated { .. } => Code::Unauthenticated,
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::Unavailable { .. } | Error::Transport { .. } => Code::Unavailable,
            Error::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Error::FailedPrecondition { .. } => Code::FailedPrecondition,
            Error::Internal { .. } => Code::Internal,
            Error::Corrupted { .. } => Code::DataLoss,
            Error::Other { code, .. } => *code,
        }
    }

    /// The agent's message (or this crate's, for the local checks and connection failures).
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument { message }
            | Error::NotFound { message }
            | Error::PermissionDenied { message }
            | Error::Unauthenticated { message }
            | Error::ResourceExhausted { message }
            | Error::Unavailable { message }
            | Error::DeadlineExceeded { message }
            | Error::FailedPrecondition { message }
            | Error::Internal { message }
            | Error::Corrupted { message }
            | Error::Other { message, .. }
            | Error::Transport { message } => message,
        }
    }

    /// Whether the same call may succeed later unchanged (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
    /// `DEADLINE_EXCEEDED`, a damaged answer, no connection).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::ResourceExhausted { .. }
                | Error::DeadlineExceeded { .. }
                | Error::Corrupted { .. }
                | Error::Transport { .. }
        )
    }

    /// The error of a status `code` and `message`, as the agent answers it (and as a batch
    /// item's `ItemError` carries it).
    pub fn from_code(code: Code, message: impl Into<String>) -> Error {
        let message = message.into();
        match code {
            Code::InvalidArgument => Error::InvalidArgument { message },
            Code::NotFound => Error::NotFound { message },
            Code::PermissionDenied => Error::PermissionDenied { message },
            Code::Unauthenticated => Error::Unauthenticated { message },
            Code::ResourceExhausted => Error::ResourceExhausted { message },
            Code::Unavailable => Error::Unavailable { message },
            Code::DeadlineExceeded => Error::DeadlineExceeded { message },
            Code::FailedPrecondition => Error::FailedPrecondition { message },
            Code::Internal => Error::Internal { message },
            Code::DataLoss => Error::Corrupted { message },
            code => Error::Other { code, message },
        }
    }

    /// A connection failure, with its causes on one line.
    pub(crate) fn transport(error: &(dyn std::error::Error + 'static)) -> Error {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let said = cause.to_string();
            if !message.contains(&said) {
                message.push_str(": ");
                message.push_str(&said);
            }
            source = cause.source();
        }
        Error::Transport { message }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        // tonic ends a call whose deadline passed on this side with CANCELLED "Timeout expired".
        let expired = tonic::TimeoutExpired(()).to_string();
        if status.code() == tonic::Code::Cancelled && status.message() == expired {
            return Error::DeadlineExceeded {
                message: format!("{expired} (the call's deadline passed before the answer)"),
            };
        }
        Error::from_code(status.code().into(), status.message())
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(error: tonic::transport::Error) -> Self {
        Error::transport(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_keeps_its_code_and_message() {
        for value in 0..=16 {
            let code = tonic::Code::from_i32(value);
            let error = Error::from(tonic::Status::new(code, "why"));
            assert_eq!(error.code() as i32, value, "{error:?}");
            assert_eq!(error.message(), "why");
            assert_eq!(error.to_string(), format!("{}: why", error.code().name()));
            assert_eq!(Code::from_i32(value), error.code());
        }
        assert_eq!(Code::from_i32(99), Code::Unknown);
    }

    #[test]
    fn a_local_timeout_is_deadline_exceeded() {
        let status = tonic::Status::cancelled(tonic::TimeoutExpired(()).to_string());
        let error = Error::from(status);
        assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
        assert!(error.is_retryable());
        let other = Error::from(tonic::Status::cancelled("the caller went away"));
        assert_eq!(other.code(), Code::Cancelled);
    }
}
