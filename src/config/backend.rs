//! The backend settings once checked: which HSM, how it is reached (a parsed connector
//! address), and where its secret comes from.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Error;
use crate::secret::Secret;

/// The HSM backend, selected by `type`.
#[derive(Debug)]
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

    /// `backend.require_generated`: serve only keys that were never outside the HSM.
    pub fn require_generated(&self) -> bool {
        match self {
            Backend::Pkcs11(p) => p.require_generated,
            Backend::Yubihsm(y) => y.require_generated,
        }
    }

    /// How often the serving agent re-reads the token's keys (`backend.rescan_interval_ms`,
    /// default 30 s); `None` when set to 0 (only SIGHUP re-reads them).
    pub fn rescan_interval(&self) -> Option<std::time::Duration> {
        let ms = match self {
            Backend::Pkcs11(p) => p.rescan_interval_ms,
            Backend::Yubihsm(y) => y.rescan_interval_ms,
        };
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }
}

/// The default of `backend.rescan_interval_ms`: 30 s.
pub const DEFAULT_RESCAN_INTERVAL_MS: u64 = 30_000;

fn default_rescan_interval_ms() -> u64 {
    DEFAULT_RESCAN_INTERVAL_MS
}

/// Settings of the native YubiHSM2 backend.
#[derive(Debug, Clone)]
pub struct YubiHsm {
    /// How the device is reached.
    pub connector: YubiHsmConnector,
    /// The object id of the authentication key the sessions open with (the factory default
    /// key is 1; never 0).
    pub auth_key: u16,
    /// Where the authentication key's password comes from.
    pub password: SecretSource,
    /// The domain (1 to 16) given to the keys `signet keys` creates; the authentication key
    /// must have it. Default 1.
    pub domain: u8,
    /// The keys to serve: labels, or object ids written `0x` and four hex digits
    /// (`"0x0042"`). Absent: every signing key of a supported type the session can see.
    pub keys: Option<Vec<String>>,
    /// Strict Tier 4: refuse every key that was ever outside the HSM (imported).
    pub require_generated: bool,
    /// How often the serving agent re-reads the keys, in milliseconds; 0: only on SIGHUP.
    pub rescan_interval_ms: u64,
}

/// How the YubiHSM backend reaches the device, parsed from `backend.connector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YubiHsmConnector {
    /// `connector = { http = "http://HOST:PORT" }`: a `yubihsm-connector` process.
    Http {
        /// A host name or IPv4 address (the YubiHSM client does not take IPv6).
        host: String,
        /// The TCP port.
        port: u16,
    },
    /// `connector = { usb = "0123456789" }` (a serial number) or `{ usb = "any" }` (`None`):
    /// the device over USB, without `yubihsm-connector`. Needs a build with the `yubihsm-usb`
    /// feature.
    Usb(Option<yubihsm::device::SerialNumber>),
}

impl YubiHsmConnector {
    /// Parses `connector = { http = URL }`: `http://HOST:PORT`, an optional trailing `/`.
    pub fn http(url: &str) -> Result<Self, Error> {
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
        Ok(YubiHsmConnector::Http {
            host: host.to_owned(),
            port,
        })
    }

    /// Parses `connector = { usb = SERIAL }`: ten digits, or `any`.
    pub fn usb(serial: &str) -> Result<Self, Error> {
        match serial {
            "" => Err(Error::Config(
                "backend.connector: usb needs a serial number or \"any\"".into(),
            )),
            "any" => Ok(YubiHsmConnector::Usb(None)),
            s => s
                .parse()
                .map(|n| YubiHsmConnector::Usb(Some(n)))
                .map_err(|e| {
                    Error::Config(format!(
                        "backend.connector: usb = '{s}' is not a YubiHSM serial number: {e}"
                    ))
                }),
        }
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
    /// Strict Tier 4: refuse every key that was ever outside the HSM (`CKA_ALWAYS_SENSITIVE`
    /// or `CKA_NEVER_EXTRACTABLE` false). Default false.
    #[serde(default)]
    pub require_generated: bool,
    /// How often the serving agent re-reads the token's keys, in milliseconds; 0: only on
    /// SIGHUP. Default 30 000.
    #[serde(default = "default_rescan_interval_ms")]
    pub rescan_interval_ms: u64,
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
