//! The settings that are used as they are written: request limits, named clients, the audit
//! log and the metrics endpoint (checked by [`super::raw`] when the file is loaded).

use serde::Deserialize;
use std::path::PathBuf;

/// The default limit on the size of a message to sign: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Where the Prometheus metrics endpoint listens (plain HTTP, `GET /metrics`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port`; loopback by default. The metrics hold no secrets and no message contents,
    /// but key ids, client names and rates: keep the listener off untrusted networks.
    #[serde(default = "default_metrics_address")]
    pub address: std::net::SocketAddr,
}

fn default_metrics_address() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// A named client: how it is recognised, and what it may do.
#[derive(Debug, Clone)]
pub struct Client {
    /// The name used in the audit log and in error messages.
    pub name: String,
    /// How its calls are recognised: the one of `uid`, `gid`, `cert_cn`, `cert_san` the file
    /// names.
    pub matcher: ClientMatcher,
    /// The key ids it may use; `"*"` means every served key.
    pub keys: Vec<String>,
    /// What it may do with them: `sign`, `fingerprint` (and `public_key`, `list`, which every
    /// identified caller may do anyway).
    pub operations: Vec<Operation>,
    /// Sustained requests per second allowed to this client (positive and finite); absent
    /// means no limit.
    pub rate_per_second: Option<f64>,
    /// Requests it may make at once above the rate (default: one second's worth).
    pub burst: Option<u32>,
}

/// How a client's calls are recognised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientMatcher {
    /// `uid`: a unix-socket caller running as this user id.
    Uid(u32),
    /// `gid`: a unix-socket caller running with this primary group id.
    Gid(u32),
    /// `cert_cn`: a TLS caller whose verified certificate has this subject common name.
    CertCn(String),
    /// `cert_san`: a TLS caller whose verified certificate has this DNS name, URI or e-mail
    /// SAN.
    CertSan(String),
}

/// An operation a client can be granted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `Sign`.
    Sign,
    /// `Fingerprint`.
    Fingerprint,
    /// `Verify`, `VerifyFingerprint` and their batches. Granted on its own, it never allows
    /// signing.
    Verify,
    /// `GetPublicKey`.
    PublicKey,
    /// `ListKeys`.
    List,
}

impl Operation {
    /// The name used in configuration, logs and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Sign => "sign",
            Operation::Fingerprint => "fingerprint",
            Operation::Verify => "verify",
            Operation::PublicKey => "public_key",
            Operation::List => "list",
        }
    }
}

/// The audit log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// The JSON Lines file; rotated files get `.1`, `.2`, … appended.
    pub path: PathBuf,
    /// `always` (fsync every record before answering) or `interval`.
    #[serde(default)]
    pub fsync: Fsync,
    /// With `fsync = "interval"`: the most time between fsyncs, in milliseconds.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// Rotate when the file reaches this size in bytes.
    #[serde(default = "default_audit_max_bytes")]
    pub max_bytes: u64,
    /// When a record cannot be written: `deny` (the call fails with UNAVAILABLE; the default)
    /// or `allow` (the call proceeds and the failure is logged).
    #[serde(default)]
    pub on_failure: OnAuditFailure,
}

/// When audit records reach the disk.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before every answer.
    #[default]
    Always,
    /// With the first record written `fsync_interval_ms` or more after the last sync, and at
    /// shutdown (there is no timer).
    Interval,
}

/// What happens to a call whose audit record cannot be written.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnAuditFailure {
    /// Fail closed: UNAVAILABLE, no signature.
    #[default]
    Deny,
    /// Fail open: the call proceeds.
    Allow,
}

fn default_fsync_interval_ms() -> u64 {
    1000
}

fn default_audit_max_bytes() -> u64 {
    64 << 20
}

/// Limits that protect the agent and the HSM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest message `Sign` accepts, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// How many requests may wait for an HSM session before new ones get RESOURCE_EXHAUSTED.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// How many message bytes may wait for the HSM at once; beyond it, RESOURCE_EXHAUSTED. This
    /// bounds the memory held by queued requests whatever their number and size.
    #[serde(default = "default_max_queued_bytes")]
    pub max_queued_bytes: usize,
    /// The deadline of a call whose client set none, in milliseconds. No call waits longer.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The most items a SignBatch or FingerprintBatch may carry.
    #[serde(default = "default_max_batch_items")]
    pub max_batch_items: usize,
    /// Threads that serve the network (gRPC, TLS); the HSM calls run on their own threads.
    /// `None`: half the CPUs, at least one (see [`Limits::io_threads`]).
    #[serde(default, rename = "io_threads")]
    pub io_threads_setting: Option<usize>,
    /// The most connections one listener holds open; a connection beyond it is answered
    /// RESOURCE_EXHAUSTED on its first call and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Limits {
    /// The network threads to start: the setting, or half the CPUs (at least one). On a
    /// 2-core machine one network thread costs 5–10 % less CPU per call than two
    /// (BENCHMARKS.md), because the HSM workers need the other core.
    pub fn io_threads(&self) -> usize {
        self.io_threads_setting.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: default_max_message_bytes(),
            queue_depth: default_queue_depth(),
            max_queued_bytes: default_max_queued_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
            max_batch_items: default_max_batch_items(),
            io_threads_setting: None,
            max_connections: default_max_connections(),
        }
    }
}

/// Connections per listener: well above what the agent's clients need, and far below the file
/// descriptors the agent's unit allows, so one local user cannot exhaust them.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}

fn default_queue_depth() -> usize {
    1024
}

fn default_max_queued_bytes() -> usize {
    64 << 20
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

fn default_max_batch_items() -> usize {
    1000
}
