//! The gRPC status codes, named as the agent's audit log and the `signet` command write them.

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
