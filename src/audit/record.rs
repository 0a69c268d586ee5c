//! The audit record: what one audited call was and how it ended.

use std::time::Instant;

use serde::{Deserialize, Serialize};

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
    /// The version of the key that signed, or that matched (or was tried) in a verification,
    /// when the call was answered. Absent from other records (and from logs written before
    /// key versions existed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// SHA-256 of the signed bytes (never the bytes themselves), hex.
    pub message_sha256: Option<String>,
    /// How the call ended.
    pub outcome: Outcome,
    /// For an answered `Verify`/`VerifyFingerprint` (and their batch items): whether the
    /// signature was valid. Absent from every other record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The gRPC status code name (`OK`, `PERMISSION_DENIED`, …).
    pub code: &'static str,
    /// From the call's arrival to its answer, in microseconds.
    pub latency_us: u64,
    /// Denials not recorded just before this one (see [`AuditLog::record_denial`](super::AuditLog::record_denial)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_denials: Option<u64>,
    /// With [`Outcome::Undelivered`]: the `seq` of the earlier record whose answer did not
    /// reach the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undelivered_seq: Option<u64>,
}

/// How an audited call ended, as the record's `outcome` says it.
///
/// An `allowed` record means the agent produced the answer and handed it to the transport; if
/// the call was then cancelled or the client vanished before the answer left, an
/// `undelivered` record follows, naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Allowed by the policy and answered (signed).
    Allowed,
    /// Refused by the policy.
    Denied,
    /// Allowed (or not yet decided), but it ended in an error.
    Failed,
    /// The answer of an earlier `allowed` record (named by `undelivered_seq`) was not
    /// delivered: the call was cancelled or the client went away after it was recorded.
    Undelivered,
}

/// The answer of an audited verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The signature verified (for `VerifyFingerprint`: fingerprint and signature both).
    Valid,
    /// It did not.
    Invalid,
}

impl Verdict {
    /// `Valid` when `valid`.
    pub fn of(valid: bool) -> Self {
        if valid {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }
}

impl Outcome {
    /// The name the log uses (`allowed`, `denied`, `failed`, `undelivered`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
            Outcome::Undelivered => "undelivered",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Record {
    /// Sets the latency to the time since `arrived`.
    pub fn with_latency(mut self, arrived: Instant) -> Self {
        self.latency_us = arrived.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
        self
    }

    /// The record saying that the answer recorded as record `seq` (this record, as written)
    /// did not reach the caller; `code` is the gRPC code name the call ended with.
    pub fn undelivered(&self, seq: u64, code: &'static str) -> Record {
        Record {
            outcome: Outcome::Undelivered,
            code,
            suppressed_denials: None,
            undelivered_seq: Some(seq),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_written_as_the_log_has_always_named_them() {
        for (outcome, name) in [
            (Outcome::Allowed, "allowed"),
            (Outcome::Denied, "denied"),
            (Outcome::Failed, "failed"),
            (Outcome::Undelivered, "undelivered"),
        ] {
            let json = serde_json::to_string(&outcome).expect("serialise");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(outcome.as_str(), name);
            assert_eq!(outcome.to_string(), name);
            let back: Outcome = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, outcome);
        }
        assert!(serde_json::from_str::<Outcome>("\"Allowed\"").is_err());
    }

    #[test]
    fn an_undelivered_record_names_the_answer_it_withdraws() {
        let allowed = Record {
            client: Some("c".into()),
            identity: "uid=1".into(),
            listener: "unix:/s".into(),
            rpc: "Sign",
            key_id: "k".into(),
            algorithm: Some("ed25519"),
            key_version: None,
            message_sha256: Some("ab".repeat(32)),
            outcome: Outcome::Allowed,
            verdict: None,
            code: "OK",
            latency_us: 7,
            suppressed_denials: None,
            undelivered_seq: None,
        };
        let json = serde_json::to_value(&allowed).expect("json");
        assert_eq!(json["outcome"], "allowed");
        assert!(
            json.get("undelivered_seq").is_none(),
            "records other than undelivered ones are written as before: {json}"
        );
        let json = serde_json::to_value(allowed.undelivered(41, "CANCELLED")).expect("json");
        assert_eq!(json["outcome"], "undelivered");
        assert_eq!(json["code"], "CANCELLED");
        assert_eq!(json["undelivered_seq"], 41);
        assert_eq!(json["key_id"], "k");
        assert!(json.get("verdict").is_none(), "{json}");
        let verified = Record {
            rpc: "Verify",
            verdict: Some(Verdict::of(false)),
            ..allowed
        };
        let json = serde_json::to_value(&verified).expect("json");
        assert_eq!(json["verdict"], "invalid");
        assert_eq!(json["outcome"], "allowed");
    }
}
