//! The one error type of Signet, with a [`ErrorKind`] that says what a caller can do next.
//!
//! Messages of the client-facing variants are safe to return to callers: they never contain
//! paths, PKCS#11 return codes, PINs or key material. Everything else carries its cause for the
//! log and is reduced to a short message at the gRPC edge (see `grpc::status`).
//!
//! HSM failures of either backend are one [`HsmError`]: what happened ([`HsmFault`]), the call,
//! and the vendor's error as its source. This module knows no vendor type: each backend's
//! table (`backend/pkcs11/ckr.rs`, `backend/yubihsm/fault.rs`) makes the fault.

/// Every failure Signet knows about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; the message says which field and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// No served key has this id.
    #[error("no key with id '{}' is served by this agent", .0.escape_debug())]
    KeyNotFound(String),
    /// The key is served, but has no (verify-enabled) version with this number.
    #[error("key '{}' has no version {version}", .key_id.escape_debug())]
    VersionNotFound {
        /// The key asked for.
        key_id: String,
        /// The version asked for.
        version: u32,
    },
    /// No private or secret key with this id is on the token (key commands).
    #[error("no key with id '{}' is on the token", .0.escape_debug())]
    NotOnToken(String),
    /// The key was served at start-up, and a working session on the token confirmed it is no
    /// longer there (destroyed, or replaced by a different key under the same label).
    #[error(
        "key '{}' is no longer on the token (it was destroyed or replaced after the agent \
         started)",
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
    /// An HSM (PKCS#11 module or YubiHSM) call failed; [`HsmError::fault`] says how, and the
    /// vendor's error is kept as the source for the log.
    #[error(transparent)]
    Hsm(#[from] HsmError),
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
            Error::KeyNotFound(_)
            | Error::KeyGone(_)
            | Error::NotOnToken(_)
            | Error::VersionNotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::FailedPrecondition(_) | Error::KeySizeRange => ErrorKind::FailedPrecondition,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::Hsm(e) => e.fault.kind(),
            Error::ShuttingDown
            | Error::Recovering
            | Error::HsmFailed(_)
            | Error::AuditUnavailable(_) => ErrorKind::Unavailable,
            Error::SignatureCheckFailed { .. }
            | Error::Config(_)
            | Error::Startup(_)
            | Error::Io { .. }
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// What went wrong in the HSM, when this is an HSM error.
    pub fn fault(&self) -> Option<HsmFault> {
        match self {
            Error::Hsm(e) => Some(e.fault),
            _ => None,
        }
    }

    /// Whether the connection to the HSM is gone (device removed, sessions closed, module
    /// finalised, logged out, storage unreadable): the sessions must be discarded and the
    /// connection re-made.
    pub fn is_connection_loss(&self) -> bool {
        self.fault() == Some(HsmFault::Lost)
    }

    /// Whether the HSM refused the login or authentication (never retried).
    pub fn is_login_refused(&self) -> bool {
        self.fault() == Some(HsmFault::LoginRefused)
    }

    /// This error with the HSM fault `from` changed to `to`; any other error as it is.
    pub fn refault(self, from: HsmFault, to: HsmFault) -> Error {
        match self {
            Error::Hsm(mut e) if e.fault == from => {
                e.fault = to;
                Error::Hsm(e)
            }
            e => e,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// What happened in an HSM call, independent of the vendor. Each backend has one table from its
/// vendor's codes to these (`backend/pkcs11/ckr.rs`, `backend/yubihsm/fault.rs`); nothing else
/// reads vendor codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HsmFault {
    /// The device, its sessions, the module's initialisation or the token's storage went away:
    /// the connection must be re-made; retrying later may succeed.
    Lost,
    /// The device is out of sessions or memory, or cancelled the call: retry later; the
    /// connection itself still works.
    Busy,
    /// The HSM says the key (or object) handle is not valid. Not proof the key is gone: a
    /// backend confirms on a working session before it answers [`Error::KeyGone`].
    KeyGone,
    /// The HSM refused the data passed in (length or content).
    BadInput,
    /// The key or the credentials Signet uses may not do this operation.
    NotPermitted,
    /// The HSM refused the login or authentication (wrong, locked or expired PIN or password,
    /// unknown authentication key). Never retried: HSMs lock credentials after failures.
    LoginRefused,
    /// Anything else; the source has the detail.
    Other,
}

impl HsmFault {
    /// What a caller can do next about this fault.
    pub fn kind(self) -> ErrorKind {
        match self {
            HsmFault::Lost | HsmFault::Busy => ErrorKind::Unavailable,
            HsmFault::KeyGone => ErrorKind::NotFound,
            HsmFault::BadInput => ErrorKind::InvalidArgument,
            HsmFault::NotPermitted => ErrorKind::FailedPrecondition,
            HsmFault::LoginRefused | HsmFault::Other => ErrorKind::Internal,
        }
    }

    /// A short description, safe to show to a caller (no codes, paths or secrets).
    pub fn describe(self) -> &'static str {
        match self {
            HsmFault::Lost => "the HSM is unavailable",
            HsmFault::Busy => "the HSM is busy",
            HsmFault::KeyGone => "the key is not usable on the HSM",
            HsmFault::BadInput => {
                "the HSM refused the message: its length or content is not accepted by this \
                 key's mechanism"
            }
            HsmFault::NotPermitted => "the HSM does not allow this operation with this key",
            HsmFault::LoginRefused => "the HSM refused the login",
            HsmFault::Other => "the HSM reported an error",
        }
    }
}

/// A failed HSM call: what happened ([`HsmFault`]), which call (`C_Sign`, `Sign EdDSA`), and the
/// vendor's error as the source. Its `Display` (for logs and operators) includes the source; the
/// gRPC layer answers callers with [`HsmFault::describe`] only.
#[derive(Debug, thiserror::Error)]
#[error("{} during {op}: {source}", .fault.describe())]
pub struct HsmError {
    /// What happened.
    pub fault: HsmFault,
    /// The HSM call or step that failed.
    pub op: &'static str,
    /// The vendor's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl HsmError {
    /// An HSM error of `fault` during `op`, caused by `source`.
    pub fn new(
        fault: HsmFault,
        op: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        HsmError {
            fault,
            op,
            source: source.into(),
        }
    }
}
