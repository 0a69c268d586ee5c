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
}

/// One listening endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Listener {
    /// A unix domain socket at `path`. A stale socket file there is replaced.
    Unix {
        /// The socket file.
        path: PathBuf,
    },
    /// Plain TCP (no TLS): only a loopback address is accepted.
    Tcp {
        /// The address to bind, e.g. `127.0.0.1:50051`.
        address: SocketAddr,
    },
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: default_max_message_bytes(),
            queue_depth: default_queue_depth(),
            max_queued_bytes: default_max_queued_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }
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

/// The HSM backend, selected by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Backend {
    /// Any PKCS#11 module (SoftHSM2, YubiHSM2, Luna, CloudHSM, Nitrokey).
    Pkcs11(Pkcs11),
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
        let mut config =
            Self::parse(&text).map_err(|e| Error::Config(format!("{}: {}", path.display(), e)))?;
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
            if let Listener::Tcp { address } = listener {
                if !address.ip().is_loopback() {
                    return Err(Error::Config(format!(
                        "listen: plain TCP on {address} is refused: plain TCP carries no \
                         authentication or encryption, so only loopback addresses \
                         (127.0.0.1, [::1]) are allowed"
                    )));
                }
            }
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
        let Backend::Pkcs11(p) = &self.backend;
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
        if let Some(keys) = &p.keys {
            let mut seen = std::collections::HashSet::new();
            for key in keys {
                if key.is_empty() {
                    return Err(Error::Config("backend.keys: an entry is empty".into()));
                }
                if !seen.insert(key) {
                    return Err(Error::Config(format!(
                        "backend.keys: '{key}' is listed twice"
                    )));
                }
            }
        }
        Ok(())
    }

    fn resolve_relative_to(&mut self, dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for listener in &mut self.listen {
            if let Listener::Unix { path } = listener {
                resolve(path);
            }
        }
        let Backend::Pkcs11(p) = &mut self.backend;
        // A bare module name (no '/') is left for the dynamic loader's search path.
        if p.module.components().count() > 1 {
            resolve(&mut p.module);
        }
        if let SecretSource::File(path) = &mut p.pin {
            resolve(path);
        }
    }
}

/// A parse error as "line L, column C: message", without the snippet of the file that
/// `toml`'s own `Display` prints: that snippet could be a secret typed in the wrong place.
fn describe(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", error.message())
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
    fn minimal_config_parses_with_defaults() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.limits.max_message_bytes, 1 << 20);
        let Backend::Pkcs11(p) = &c.backend;
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
        let e = err(&MINIMAL.replace("path =", "mode = 1\npath ="));
        assert!(e.contains("unknown field `mode`"), "{e}");
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
        let ok = text.replace("0.0.0.0", "127.0.0.1");
        Config::parse(&ok).expect("loopback is fine");
    }

    #[test]
    fn limits_and_lists_are_checked() {
        assert!(err(&format!("{MINIMAL}\n[limits]\nmax_message_bytes = 0"))
            .contains("max_message_bytes"));
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
}
