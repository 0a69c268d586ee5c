//! The agent's TOML configuration: parsed strictly (unknown keys are errors that name the key),
//! then checked by [`Config::validate`]. `signet.example.toml` documents every setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::secret::Secret;

/// The default limit on the size of a message to sign: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The largest limit the configuration accepts: 64 MiB.
const MAX_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the agent listens; at least one entry.
    #[serde(default)]
    pub listen: Vec<Listener>,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// The HSM backend.
    pub backend: Backend,
    /// Named clients and what each may do. Sign and Fingerprint are denied to everyone else.
    #[serde(default)]
    pub clients: Vec<Client>,
    /// The tamper-evident audit log of signing operations; absent means no audit log.
    pub audit: Option<Audit>,
    /// The Prometheus metrics endpoint; off when absent.
    #[serde(default)]
    pub metrics: Option<MetricsSettings>,
}

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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// The name used in the audit log and in error messages.
    pub name: String,
    /// Matches a unix-socket caller running as this user id.
    pub uid: Option<u32>,
    /// Matches a unix-socket caller running with this primary group id.
    pub gid: Option<u32>,
    /// Matches a TLS caller whose verified certificate has this subject common name.
    pub cert_cn: Option<String>,
    /// Matches a TLS caller whose verified certificate has this DNS name, URI or e-mail SAN.
    pub cert_san: Option<String>,
    /// The key ids it may use; `"*"` means every served key.
    #[serde(default)]
    pub keys: Vec<String>,
    /// What it may do with them: `sign`, `fingerprint` (and `public_key`, `list`, which every
    /// identified caller may do anyway).
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Sustained requests per second allowed to this client; absent means no limit.
    pub rate_per_second: Option<f64>,
    /// Requests it may make at once above the rate (default: one second's worth).
    pub burst: Option<u32>,
}

/// An operation a client can be granted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `Sign`.
    Sign,
    /// `Fingerprint`.
    Fingerprint,
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

/// One listening endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Listener {
    /// A unix domain socket at `path`; callers are identified by their peer credentials. A
    /// stale socket file there is replaced.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// The socket file's mode, in octal (default `"0660"`).
        mode: Option<String>,
        /// The socket file's owner (numeric user id); needs the privilege to chown.
        uid: Option<u32>,
        /// The socket file's group (numeric group id).
        gid: Option<u32>,
    },
    /// Plain TCP (no TLS, no caller identity): only on a loopback address, and only with
    /// `plaintext = true`.
    Tcp {
        /// The address to bind, e.g. `127.0.0.1:50051`.
        address: SocketAddr,
        /// Must be set to `true`: plain TCP has no authentication or encryption.
        #[serde(default)]
        plaintext: bool,
    },
    /// TCP with TLS and required client certificates; callers are identified by their
    /// verified certificate.
    Tls {
        /// The address to bind.
        address: SocketAddr,
        /// The server certificate chain (PEM).
        cert: PathBuf,
        /// The server private key (PEM); read once and not kept by the agent.
        key: PathBuf,
        /// The CA (PEM) that client certificates must chain to.
        client_ca: PathBuf,
    },
}

impl Listener {
    /// How the listener is named in logs and in the audit log.
    pub fn name(&self) -> String {
        match self {
            Listener::Unix { path, .. } => format!("unix:{}", path.display()),
            Listener::Tcp { address, .. } => format!("tcp:{address}"),
            Listener::Tls { address, .. } => format!("tls:{address}"),
        }
    }
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

/// The HSM backend, selected by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Backend {
    /// Any PKCS#11 module (SoftHSM2, YubiHSM2, Luna, CloudHSM, Nitrokey).
    Pkcs11(Pkcs11),
    /// A YubiHSM2 through the native `yubihsm` client (`yubihsm-connector` over HTTP, or USB).
    Yubihsm(YubiHsm),
}

impl Backend {
    /// `backend.keys`: the keys to serve, or `None` for every supported signing key.
    pub fn keys(&self) -> Option<&[String]> {
        match self {
            Backend::Pkcs11(p) => p.keys.as_deref(),
            Backend::Yubihsm(y) => y.keys.as_deref(),
        }
    }
}

/// Settings of the native YubiHSM2 backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YubiHsm {
    /// How the device is reached.
    pub connector: YubiHsmConnector,
    /// The object id of the authentication key the sessions open with (the factory default
    /// key is 1).
    pub auth_key: u16,
    /// Where the authentication key's password comes from.
    pub password: SecretSource,
    /// The domain (1 to 16) given to the keys `signet keys` creates; the authentication key
    /// must have it. Default 1.
    pub domain: Option<u8>,
    /// The keys to serve: labels, or object ids written `0x` and four hex digits
    /// (`"0x0042"`). Absent: every signing key of a supported type the session can see.
    pub keys: Option<Vec<String>>,
}

/// How the YubiHSM backend reaches the device.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum YubiHsmConnector {
    /// `connector = { http = "http://127.0.0.1:12345" }`: a `yubihsm-connector` process.
    Http(String),
    /// `connector = { usb = "0123456789" }` (a serial number) or `{ usb = "any" }`: the device
    /// over USB, without `yubihsm-connector`. Needs a build with the `yubihsm-usb` feature.
    Usb(String),
}

impl YubiHsmConnector {
    /// The host and port of an `http://HOST:PORT` connector address.
    pub fn http_address(url: &str) -> Result<(String, u16), Error> {
        let bad = |why: &str| {
            Error::Config(format!(
                "backend.connector: '{url}' is not an http://HOST:PORT address ({why})"
            ))
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("it must start with http://; yubihsm-connector speaks HTTP"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("the port is missing"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad("the host is missing or has a path"));
        }
        if host.contains(':') {
            return Err(bad(
                "IPv6 addresses are not supported by the YubiHSM client; use a host name or an \
                 IPv4 address",
            ));
        }
        Ok((host.to_owned(), port))
    }
}

/// Settings of the PKCS#11 backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11 {
    /// Path of the PKCS#11 module (`.so`).
    pub module: PathBuf,
    /// Which token to use: by label or by serial number, never by slot number.
    pub token: TokenSelector,
    /// Where the user PIN comes from.
    pub pin: SecretSource,
    /// How many HSM sessions (and worker threads) to keep; defaults to the number of CPUs.
    pub sessions: Option<usize>,
    /// The key ids (labels) to serve. Absent: every signing key of a supported type on the token.
    pub keys: Option<Vec<String>>,
}

/// How the token is found.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum TokenSelector {
    /// `token = { label = "signet" }`
    Label(String),
    /// `token = { serial = "0123456789abcdef" }`
    Serial(String),
}

/// Where a secret comes from. Never the command line, never inline in the file.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// `pin = { file = "/run/credentials/signet.service/pin" }` (recommended, mode 0600).
    File(PathBuf),
    /// `pin = { env = "SIGNET_PIN" }`; the variable is removed from the environment once read.
    Env(String),
}

/// The table form of [`SecretSource`]; parsed through this so that a mistaken inline value
/// (`pin = "1234"`) is refused without the parser's message echoing it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSourceTable {
    file: Option<PathBuf>,
    env: Option<String>,
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        const EXPECTED: &str =
            "a secret must be given as { file = \"PATH\" } or { env = \"VAR\" }; \
                                inline values are not accepted";
        let value = toml::Value::deserialize(d)?;
        let toml::Value::Table(table) = value else {
            return Err(D::Error::custom(EXPECTED));
        };
        // The parser's own message could quote a value typed into the wrong field: drop it.
        let parsed = SecretSourceTable::deserialize(toml::Value::Table(table))
            .map_err(|_| D::Error::custom(EXPECTED))?;
        match (parsed.file, parsed.env) {
            (Some(file), None) => Ok(SecretSource::File(file)),
            (None, Some(env)) => Ok(SecretSource::Env(env)),
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

impl SecretSource {
    /// Reads the secret.
    pub fn read(&self) -> Result<Secret, Error> {
        match self {
            SecretSource::File(path) => Secret::from_file(path),
            SecretSource::Env(var) => Secret::from_env(var),
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths in it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading configuration {}", path.display()), e))?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            Error::Config(why) => Error::Config(format!("{}: {why}", path.display())),
            other => other,
        })?;
        if let Some(dir) = path.parent() {
            config.resolve_relative_to(dir);
        }
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Config(describe(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: at least one listener, loopback-only plain TCP, sane limits.
    pub fn validate(&self) -> Result<(), Error> {
        if self.listen.is_empty() {
            return Err(Error::Config(
                "no [[listen]] entry: add a unix socket or a loopback TCP address".into(),
            ));
        }
        for listener in &self.listen {
            match listener {
                Listener::Tcp { address, plaintext } => {
                    if !address.ip().is_loopback() {
                        return Err(Error::Config(format!(
                            "listen: plain TCP on {address} is refused: plain TCP carries no \
                             authentication or encryption, so only loopback addresses \
                             (127.0.0.1, [::1]) are allowed; use type = \"tls\" with client \
                             certificates for remote callers"
                        )));
                    }
                    if !plaintext {
                        return Err(Error::Config(format!(
                            "listen: plain TCP on {address} needs `plaintext = true`: its \
                             callers have no identity, so they may only read public keys"
                        )));
                    }
                }
                Listener::Unix {
                    mode: Some(mode), ..
                } => {
                    parse_mode(mode)?;
                }
                _ => {}
            }
        }
        for client in &self.clients {
            let matchers = [
                client.uid.is_some(),
                client.gid.is_some(),
                client.cert_cn.is_some(),
                client.cert_san.is_some(),
            ];
            if matchers.iter().filter(|m| **m).count() != 1 {
                return Err(Error::Config(format!(
                    "clients: '{}' must name exactly one of uid, gid, cert_cn, cert_san",
                    client.name
                )));
            }
            if client
                .rate_per_second
                .is_some_and(|r| !(r > 0.0 && r.is_finite()))
            {
                return Err(Error::Config(format!(
                    "clients: '{}': rate_per_second must be a positive number",
                    client.name
                )));
            }
        }
        let mut matchers: Vec<String> = self
            .clients
            .iter()
            .map(|c| format!("{:?}{:?}{:?}{:?}", c.uid, c.gid, c.cert_cn, c.cert_san))
            .collect();
        matchers.sort_unstable();
        if matchers.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Config(
                "clients: two clients match the same uid, gid, cert_cn or cert_san; merge them"
                    .into(),
            ));
        }
        let mut names: Vec<&str> = self.clients.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Config(format!(
                "clients: the name '{}' is used twice",
                w[0]
            )));
        }
        let limits = &self.limits;
        if limits.max_message_bytes == 0 || limits.max_message_bytes > MAX_MAX_MESSAGE_BYTES {
            return Err(Error::Config(format!(
                "limits.max_message_bytes must be between 1 and {MAX_MAX_MESSAGE_BYTES}, got {}",
                limits.max_message_bytes
            )));
        }
        if limits.queue_depth == 0 || limits.queue_depth > 1 << 20 {
            return Err(Error::Config(format!(
                "limits.queue_depth must be between 1 and {}, got {}",
                1 << 20,
                limits.queue_depth
            )));
        }
        if limits.max_queued_bytes < limits.max_message_bytes {
            return Err(Error::Config(format!(
                "limits.max_queued_bytes ({}) must be at least limits.max_message_bytes ({})",
                limits.max_queued_bytes, limits.max_message_bytes
            )));
        }
        if !(1..=3_600_000).contains(&limits.request_timeout_ms) {
            return Err(Error::Config(format!(
                "limits.request_timeout_ms must be between 1 and 3600000, got {}",
                limits.request_timeout_ms
            )));
        }
        if let Some(n) = limits.io_threads_setting {
            if !(1..=256).contains(&n) {
                return Err(Error::Config(format!(
                    "limits.io_threads must be between 1 and 256, got {n}"
                )));
            }
        }
        if !(1..=1 << 20).contains(&limits.max_connections) {
            return Err(Error::Config(format!(
                "limits.max_connections must be between 1 and {}, got {}",
                1 << 20,
                limits.max_connections
            )));
        }
        let p = match &self.backend {
            Backend::Pkcs11(p) => p,
            Backend::Yubihsm(y) => return validate_yubihsm(y),
        };
        if let Some(n) = p.sessions {
            if !(1..=256).contains(&n) {
                return Err(Error::Config(format!(
                    "backend.sessions must be between 1 and 256, got {n}"
                )));
            }
        }
        match &p.token {
            TokenSelector::Label(s) | TokenSelector::Serial(s) if s.is_empty() => {
                return Err(Error::Config(
                    "backend.token: the label or serial is empty".into(),
                ))
            }
            _ => {}
        }
        validate_key_list(p.keys.as_deref())
    }

    fn resolve_relative_to(&mut self, dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for listener in &mut self.listen {
            match listener {
                Listener::Unix { path, .. } => resolve(path),
                Listener::Tls {
                    cert,
                    key,
                    client_ca,
                    ..
                } => {
                    resolve(cert);
                    resolve(key);
                    resolve(client_ca);
                }
                Listener::Tcp { .. } => {}
            }
        }
        if let Some(audit) = &mut self.audit {
            resolve(&mut audit.path);
        }
        let secret = match &mut self.backend {
            Backend::Pkcs11(p) => {
                // A bare module name (no '/') is left for the dynamic loader's search path.
                if p.module.components().count() > 1 {
                    resolve(&mut p.module);
                }
                &mut p.pin
            }
            Backend::Yubihsm(y) => &mut y.password,
        };
        if let SecretSource::File(path) = secret {
            resolve(path);
        }
    }
}

/// `backend.keys`: no empty entry, none twice.
fn validate_key_list(keys: Option<&[String]>) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    for key in keys.unwrap_or_default() {
        if key.is_empty() {
            return Err(Error::Config("backend.keys: an entry is empty".into()));
        }
        if !seen.insert(key) {
            return Err(Error::Config(format!(
                "backend.keys: '{key}' is listed twice"
            )));
        }
    }
    Ok(())
}

fn validate_yubihsm(y: &YubiHsm) -> Result<(), Error> {
    match &y.connector {
        YubiHsmConnector::Http(url) => {
            YubiHsmConnector::http_address(url)?;
        }
        YubiHsmConnector::Usb(serial) => {
            if serial.is_empty() {
                return Err(Error::Config(
                    "backend.connector: usb needs a serial number or \"any\"".into(),
                ));
            }
        }
    }
    if y.auth_key == 0 {
        return Err(Error::Config(
            "backend.auth_key: 0 is not an object id (the factory default key is 1)".into(),
        ));
    }
    if let Some(domain) = y.domain {
        if !(1..=16).contains(&domain) {
            return Err(Error::Config(format!(
                "backend.domain must be between 1 and 16, got {domain}"
            )));
        }
    }
    validate_key_list(y.keys.as_deref())
}

/// Parses a unix file mode written in octal (`"0660"`).
pub fn parse_mode(mode: &str) -> Result<u32, Error> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| Error::Config(format!("listen: mode '{mode}' is not an octal file mode")))
}

/// A parse error as "line L, column C: message", without the snippet of the file that
/// `toml`'s own `Display` prints: that snippet could be a secret typed in the wrong place.
fn describe(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            // Errors inside a tagged table (`[[listen]]`, `[backend]`) point at its header.
            let header = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .trim()
                .is_empty()
                && text[span.start.min(text.len())..].starts_with('[');
            let place = if header {
                format!("the table at line {line}")
            } else {
                format!("line {line}, column {column}")
            };
            format!("{place}: {}", error.message())
        }
        None => error.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[listen]]
        type = "unix"
        path = "/run/signet/signet.sock"

        [backend]
        type = "pkcs11"
        module = "/usr/lib/softhsm/libsofthsm2.so"
        token = { label = "signet" }
        pin = { file = "/etc/signet/pin" }
    "#;

    #[test]
    fn errors_name_the_line_or_the_table_they_are_in() {
        let unknown = MINIMAL.replace("[backend]\n", "[backend]\n        bogus = 1\n");
        let e = Config::parse(&unknown)
            .expect_err("unknown field")
            .to_string();
        assert!(
            e.contains("the table at line 6: unknown field `bogus`"),
            "{e}"
        );
        let array = format!("{MINIMAL}\n        [limits]\n        max_batch_items = [1]\n");
        let e = Config::parse(&array).expect_err("an array").to_string();
        assert!(
            e.contains("line 13, column 27: invalid type: sequence"),
            "{e}"
        );
    }

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.limits.max_message_bytes, 1 << 20);
        let Backend::Pkcs11(p) = &c.backend else {
            panic!("a pkcs11 backend");
        };
        assert_eq!(p.token, TokenSelector::Label("signet".into()));
        assert!(matches!(p.pin, SecretSource::File(_)));
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../signet.example.toml");
        Config::parse(text).expect("signet.example.toml must parse");
    }

    fn err(text: &str) -> String {
        Config::parse(text)
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err(&MINIMAL.replace("[backend]", "[backend]\nslot = 0"));
        assert!(e.contains("unknown field `slot`"), "{e}");
        let e = err(&format!("{MINIMAL}\n[limits]\nmax_msg = 5"));
        assert!(e.contains("unknown field `max_msg`"), "{e}");
        let e = err(&MINIMAL.replace("path =", "owner = 1\npath ="));
        assert!(e.contains("unknown field `owner`"), "{e}");
        let e = err(&format!("verbose = true\n{MINIMAL}"));
        assert!(e.contains("unknown field `verbose`"), "{e}");
    }

    #[test]
    fn pin_on_the_command_line_style_is_not_a_source() {
        for wrong in [
            r#"pin = "1234""#,
            "pin = { file = 1234 }",
            "pin = { env = 1234 }",
            "pin = 1234",
        ] {
            let e = err(&MINIMAL.replace(r#"pin = { file = "/etc/signet/pin" }"#, wrong));
            assert!(
                !e.contains("1234"),
                "the error must not echo the value: {e}"
            );
            assert!(e.contains("a secret must be given as"), "{e}");
        }
    }

    #[test]
    fn non_loopback_plain_tcp_is_refused() {
        let text = MINIMAL.replace(
            "type = \"unix\"\n        path = \"/run/signet/signet.sock\"",
            "type = \"tcp\"\n        address = \"0.0.0.0:50051\"",
        );
        assert!(err(&text).contains("only loopback"));
        let loopback = text.replace("0.0.0.0", "127.0.0.1");
        assert!(err(&loopback).contains("needs `plaintext = true`"));
        let ok = loopback.replace("address =", "plaintext = true\n        address =");
        Config::parse(&ok).expect("loopback with plaintext = true is fine");
    }

    #[test]
    fn limits_and_lists_are_checked() {
        assert!(err(&format!("{MINIMAL}\n[limits]\nmax_message_bytes = 0"))
            .contains("max_message_bytes"));
        assert!(err(&format!("{MINIMAL}\n[limits]\nmax_connections = 0"))
            .contains("limits.max_connections must be between 1 and"));
        assert!(err(&MINIMAL.replace("token =", "sessions = 0\ntoken =")).contains("sessions"));
        assert!(
            err(&MINIMAL.replace("token =", "keys = [\"a\", \"a\"]\ntoken =")).contains("twice")
        );
        assert!(err(&MINIMAL.replace(r#"{ label = "signet" }"#, "{ slot = 1 }")).contains("slot"));
        let no_listen = MINIMAL
            .replace("[[listen]]", "[unused]")
            .replace("type = \"unix\"", "");
        assert!(err(&no_listen).contains("unused") || err(&no_listen).contains("listen"));
    }

    const YUBIHSM: &str = r#"
        [[listen]]
        type = "unix"
        path = "/run/signet/signet.sock"

        [backend]
        type = "yubihsm"
        connector = { http = "http://127.0.0.1:12345" }
        auth_key = 1
        password = { file = "/etc/signet/yubihsm-password" }
    "#;

    #[test]
    fn yubihsm_backend_parses_and_is_checked() {
        let c = Config::parse(YUBIHSM).expect("valid");
        let Backend::Yubihsm(y) = &c.backend else {
            panic!("a yubihsm backend");
        };
        assert_eq!(
            YubiHsmConnector::http_address(match &y.connector {
                YubiHsmConnector::Http(url) => url,
                YubiHsmConnector::Usb(_) => panic!("http"),
            })
            .expect("address"),
            ("127.0.0.1".to_owned(), 12345)
        );
        assert!(err(&YUBIHSM.replace("http://127.0.0.1:12345", "https://h:1")).contains("http://"));
        assert!(err(&YUBIHSM.replace(":12345", "")).contains("port"));
        assert!(err(&YUBIHSM.replace("auth_key = 1", "auth_key = 0")).contains("auth_key"));
        assert!(
            err(&YUBIHSM.replace("auth_key = 1", "auth_key = 1\ndomain = 17")).contains("domain")
        );
        let e = err(&YUBIHSM.replace(
            r#"password = { file = "/etc/signet/yubihsm-password" }"#,
            r#"password = "hunter2""#,
        ));
        assert!(
            e.contains("a secret must be given as") && !e.contains("hunter2"),
            "{e}"
        );
        let e = err(&YUBIHSM.replace("auth_key = 1", "auth_key = 1\nmodule = \"x.so\""));
        assert!(e.contains("unknown field `module`"), "{e}");
        let usb = YUBIHSM.replace(
            r#"{ http = "http://127.0.0.1:12345" }"#,
            r#"{ usb = "any" }"#,
        );
        Config::parse(&usb).expect("usb parses");
    }
}
