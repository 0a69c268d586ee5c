//! The one error type of Signet, with a [`ErrorKind`] that says what a caller can do next.
//!
//! Messages of the client-facing variants are safe to return to callers: they never contain
//! paths, PKCS#11 return codes, PINs or key material. Everything else carries its cause for the
//! log and is reduced to a short message at the gRPC edge (see `grpc::status`).

use cryptoki::context::Function;
use cryptoki::error::RvError;

/// Every failure Signet knows about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; the message says which field and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// No served key has this id.
    #[error("no key with id '{}' is served by this agent", .0.escape_debug())]
    KeyNotFound(String),
    /// No private or secret key with this id is on the token (key commands).
    #[error("no key with id '{}' is on the token", .0.escape_debug())]
    NotOnToken(String),
    /// The key was served at start-up but is no longer on the token (destroyed since).
    #[error(
        "key '{}' is no longer on the token (destroyed after the agent started); restart the \
         agent to refresh its key list",
        .0.escape_debug()
    )]
    KeyGone(String),
    /// A key with this id already exists on the token; keys are never overwritten.
    #[error(
        "a key with id '{}' already exists on the token; keys are never overwritten (destroy it \
         first with `signet keys destroy`, or choose another id)",
        .0.escape_debug()
    )]
    AlreadyExists(String),
    /// The token refuses to use a key of this size with its mechanism (`CKR_KEY_SIZE_RANGE`).
    #[error(
        "the token cannot use this key: its size is outside the range the token accepts for \
         this mechanism (SoftHSM2, for one, refuses HMAC-SHA256 keys shorter than 32 bytes)"
    )]
    KeySizeRange,
    /// The key exists but cannot do what was asked (for example HMAC for GetPublicKey).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was reached: message size, queue depth.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The HSM (or the path to it) is not answering; retrying later may succeed.
    #[error("HSM unavailable during C_{function:?}: {rv:?} ({rv})")]
    HsmUnavailable {
        /// The PKCS#11 function that failed.
        function: Function,
        /// The return value of that function.
        rv: RvError,
    },
    /// The HSM returned an error that is neither the caller's fault nor a lost device.
    #[error("HSM error during C_{function:?}: {rv:?} ({rv})")]
    Hsm {
        /// The PKCS#11 function that failed.
        function: Function,
        /// The return value of that function.
        rv: RvError,
    },
    /// The YubiHSM2 or its connector is not answering (connector down, device unplugged,
    /// session lost); retrying later may succeed.
    #[error(
        "YubiHSM unavailable during {operation}: {}",
        crate::backend::yubihsm::describe(source)
    )]
    YubiHsmUnavailable {
        /// The YubiHSM command or step that failed.
        operation: &'static str,
        /// The `yubihsm` client's error.
        #[source]
        source: yubihsm::client::Error,
    },
    /// The YubiHSM2 refused a command for a reason that is neither the caller's fault nor a
    /// lost connection.
    #[error(
        "YubiHSM error during {operation}: {}",
        crate::backend::yubihsm::describe(source)
    )]
    YubiHsm {
        /// The YubiHSM command or step that failed.
        operation: &'static str,
        /// The `yubihsm` client's error.
        #[source]
        source: yubihsm::client::Error,
    },
    /// The PKCS#11 library failed outside a PKCS#11 call (loading, conversions).
    #[error("PKCS#11 library error: {0}")]
    Pkcs11Library(#[source] cryptoki::error::Error),
    /// A signature produced by the HSM did not verify against the key's public key and was
    /// withheld.
    #[error("signature from key '{key_id}' failed verify-after-sign and was withheld")]
    SignatureCheckFailed {
        /// The key that produced the bad signature.
        key_id: String,
    },
    /// The configuration is invalid; the message names the setting.
    #[error("configuration: {0}")]
    Config(String),
    /// The agent cannot start: token, login, key checks. The message says what to do.
    #[error("{0}")]
    Startup(String),
    /// An I/O failure outside the HSM (reading a PIN file, binding a socket).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The connection to the HSM was lost and is being re-established in the background.
    #[error("the HSM connection is being re-established")]
    Recovering,
    /// The agent lost its HSM login and will not retry by itself (the PIN was refused).
    #[error("{0}")]
    HsmFailed(String),
    /// The token refused the login (wrong, locked, expired or malformed PIN, or any other
    /// answer that is not a lost connection). Never retried: HSMs lock PINs after failures.
    #[error("{0}")]
    LoginRefused(String),
    /// The call's deadline passed before its HSM work could start or finish.
    #[error("the deadline passed before the HSM {0}")]
    DeadlineExceeded(&'static str),
    /// The message does not match the CRC32C the caller sent with it.
    #[error(
        "message_crc32c does not match the message received (got {received:#010x}, expected \
         {expected:#010x}): the request was corrupted in transit; it was not signed"
    )]
    ChecksumMismatch {
        /// The CRC32C the caller sent.
        expected: u32,
        /// The CRC32C of the bytes that arrived.
        received: u32,
    },
    /// The caller has no identity and the operation needs one.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this; the message never says whether the key exists.
    #[error("{0}")]
    PermissionDenied(String),
    /// The audit record could not be written, so the call was refused (fail closed).
    #[error("the audit log cannot be written: {0}")]
    AuditUnavailable(String),
    /// The agent is shutting down and takes no new HSM work.
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// A bug or an impossible state; the message is for the log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input from the caller.
    InvalidArgument,
    /// Unknown key.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// Wrong key type for the operation, or a key that may not be used.
    FailedPrecondition,
    /// A limit was reached.
    ResourceExhausted,
    /// The HSM is gone or busy; retry later.
    Unavailable,
    /// The caller's deadline passed.
    DeadlineExceeded,
    /// The caller has no identity.
    Unauthenticated,
    /// The caller may not do this.
    PermissionDenied,
    /// Anything else; details stay in the log.
    Internal,
}

impl ErrorKind {
    /// The canonical name of the gRPC code this kind is answered with (`INVALID_ARGUMENT`,
    /// …), as the audit log, the metrics and the log write it.
    pub fn code_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorKind::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::Internal => "INTERNAL",
        }
    }
}

impl Error {
    /// The kind of this error; the gRPC layer maps kinds to status codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) | Error::ChecksumMismatch { .. } => {
                ErrorKind::InvalidArgument
            }
            Error::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::KeyNotFound(_) | Error::KeyGone(_) | Error::NotOnToken(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::FailedPrecondition(_) | Error::KeySizeRange => ErrorKind::FailedPrecondition,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::HsmUnavailable { .. }
            | Error::YubiHsmUnavailable { .. }
            | Error::ShuttingDown
            | Error::Recovering
            | Error::HsmFailed(_)
            | Error::AuditUnavailable(_) => ErrorKind::Unavailable,
            Error::Hsm { .. }
            | Error::YubiHsm { .. }
            | Error::Pkcs11Library(_)
            | Error::SignatureCheckFailed { .. }
            | Error::Config(_)
            | Error::Startup(_)
            | Error::LoginRefused(_)
            | Error::Io { .. }
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether the connection to the HSM is gone (device removed, sessions closed, module
    /// finalised, logged out): the sessions must be discarded and the connection re-made.
    pub fn is_connection_loss(&self) -> bool {
        use cryptoki::error::RvError::*;
        if let Error::YubiHsmUnavailable { .. } = self {
            return true;
        }
        matches!(
            self,
            Error::HsmUnavailable {
                rv: DeviceError
                    | DeviceRemoved
                    | TokenNotPresent
                    | TokenNotRecognized
                    | SessionHandleInvalid
                    | SessionClosed
                    | CryptokiNotInitialized
                    | UserNotLoggedIn,
                ..
            }
        )
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
