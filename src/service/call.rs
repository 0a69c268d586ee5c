//! What the gate knows about one call before it runs: who called, through which listener,
//! when it arrived, by when it must be answered, and the ticket that learns whether its answer
//! was delivered.

use std::time::Instant;

use super::delivery::Delivery;
use crate::config::Operation;
use crate::identity::Caller;

/// The RPCs the gate serves, as the log, the metrics and the audit log name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// `Sign`.
    Sign,
    /// `SignBatch` (each item is audited and counted under this name).
    SignBatch,
    /// `Fingerprint`.
    Fingerprint,
    /// `FingerprintBatch`.
    FingerprintBatch,
    /// `GetPublicKey`.
    GetPublicKey,
    /// `ListKeys`.
    ListKeys,
    /// `Verify`.
    Verify,
    /// `VerifyBatch` (each item is audited and counted under this name).
    VerifyBatch,
    /// `VerifyFingerprint`.
    VerifyFingerprint,
    /// `VerifyFingerprintBatch`.
    VerifyFingerprintBatch,
}

impl Rpc {
    /// The RPC's name in the proto.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Sign => "Sign",
            Rpc::SignBatch => "SignBatch",
            Rpc::Fingerprint => "Fingerprint",
            Rpc::FingerprintBatch => "FingerprintBatch",
            Rpc::GetPublicKey => "GetPublicKey",
            Rpc::ListKeys => "ListKeys",
            Rpc::Verify => "Verify",
            Rpc::VerifyBatch => "VerifyBatch",
            Rpc::VerifyFingerprint => "VerifyFingerprint",
            Rpc::VerifyFingerprintBatch => "VerifyFingerprintBatch",
        }
    }

    /// The grant the RPC needs.
    pub fn operation(self) -> Operation {
        match self {
            Rpc::Sign | Rpc::SignBatch => Operation::Sign,
            Rpc::Fingerprint | Rpc::FingerprintBatch => Operation::Fingerprint,
            Rpc::GetPublicKey => Operation::PublicKey,
            Rpc::ListKeys => Operation::List,
            Rpc::Verify
            | Rpc::VerifyBatch
            | Rpc::VerifyFingerprint
            | Rpc::VerifyFingerprintBatch => Operation::Verify,
        }
    }

    /// Whether the RPC uses a key (signs or verifies), and so is audited.
    pub fn audited(self) -> bool {
        matches!(
            self.operation(),
            Operation::Sign | Operation::Fingerprint | Operation::Verify
        )
    }
}

/// One call as the transport delivered it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who called and through which listener.
    pub caller: Caller,
    /// When the request's headers arrived.
    pub arrived: Instant,
    /// When the call must be answered: the client's deadline, capped at the agent's.
    pub deadline: Instant,
    /// Learns whether the answer reached the transport; `None` where nothing can tell
    /// (in-process callers).
    pub delivery: Option<Delivery>,
}
