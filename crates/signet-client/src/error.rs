//! What can go wrong in a call, as an [`Error`] whose variant says what the caller can do next;
//! each carries the gRPC [`Code`] and the agent's message.

use crate::code::Code;

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
    /// No connection to the agent, or it closed before the answer (no socket, refused, a TLS
    /// handshake that failed, a bad address or certificate): the code is `UNAVAILABLE`. A call
    /// cut off this way may or may not have been carried out.
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
        Error::transport_from(error.to_string(), error.source())
    }

    /// A connection failure said as `message`, with `source` and its causes after it.
    fn transport_from(
        mut message: String,
        mut source: Option<&(dyn std::error::Error + 'static)>,
    ) -> Error {
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
        // A status with a source was made here from a failed connection (refused, closed
        // before the answer, a TLS handshake the agent rejected), not answered by the agent.
        let local = matches!(
            status.code(),
            tonic::Code::Cancelled | tonic::Code::Unknown | tonic::Code::Unavailable
        );
        if local && std::error::Error::source(&status).is_some() {
            let source = std::error::Error::source(&status);
            return Error::transport_from(status.message().to_owned(), source);
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

    #[test]
    fn a_status_made_from_a_failed_connection_is_a_transport_error() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let status = tonic::Status::from_error(Box::new(io));
        assert!(std::error::Error::source(&status).is_some(), "{status:?}");
        let error = Error::from(status);
        assert!(matches!(error, Error::Transport { .. }), "{error:?}");
        assert_eq!(error.code(), Code::Unavailable);
        assert!(!error.message().contains("metadata"), "{error}");
    }
}
