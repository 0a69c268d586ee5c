//! The audit record: what one audited call was and how it ended.

use std::time::Instant;

use serde::Serialize;

/// What one audited call was and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The configured client's name, when the caller matched one.
    pub client: Option<String>,
    /// The caller's identity (`uid=… gid=… pid=…`, `cert CN=…`, `anonymous`).
    pub identity: String,
    /// The listener the call came through.
    pub listener: String,
    /// `Sign` or `Fingerprint`.
    pub rpc: &'static str,
    /// The key asked for.
    pub key_id: String,
    /// The key's algorithm, when the key exists and the call was allowed.
    pub algorithm: Option<&'static str>,
    /// SHA-256 of the signed bytes (never the bytes themselves), hex.
    pub message_sha256: Option<String>,
    /// `allowed` (signed), `denied` (policy), or `failed` (allowed, but an error).
    pub outcome: &'static str,
    /// The gRPC status code name (`OK`, `PERMISSION_DENIED`, …).
    pub code: &'static str,
    /// From the call's arrival to its answer, in microseconds.
    pub latency_us: u64,
    /// Denials not recorded just before this one (see [`AuditLog::record_denial`](super::AuditLog::record_denial)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_denials: Option<u64>,
}

impl Record {
    /// Sets the latency to the time since `arrived`.
    pub fn with_latency(mut self, arrived: Instant) -> Self {
        self.latency_us = arrived.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
        self
    }
}
