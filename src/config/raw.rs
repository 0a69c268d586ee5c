//! The configuration file as it is written ([`Config`], parsed strictly by serde: unknown
//! keys are errors that name the key), and its one check into the typed [`valid::Config`]:
//! every value that needs parsing beyond TOML (a socket mode, a connector address, a USB
//! serial, a client's matcher) is parsed here, once, and a bad one is refused with the
//! setting's name.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super as valid;
use super::{
    Audit, ClientMatcher, Limits, MetricsSettings, Mode, Operation, Pkcs11, SecretSource,
    TokenSelector,
};
use crate::error::Error;

// Each raw type has the name of the type it becomes (`raw::Client` becomes a `valid::Client`):
// serde names the type in some messages ("expected struct Client").

/// The largest message size limit the configuration accepts: 64 MiB.
const MAX_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The whole configuration file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    #[serde(default)]
    listen: Vec<Listener>,
    #[serde(default)]
    limits: Limits,
    backend: Backend,
    #[serde(default)]
    clients: Vec<Client>,
    audit: Option<Audit>,
    #[serde(default)]
    metrics: Option<MetricsSettings>,
}

/// One `[[listen]]` entry, as written (see [`valid::Listener`]).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Listener {
    Unix {
        path: PathBuf,
        mode: Option<String>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    Tcp {
        address: SocketAddr,
        #[serde(default)]
        plaintext: bool,
    },
    Tls {
        address: SocketAddr,
        cert: PathBuf,
        key: PathBuf,
        client_ca: PathBuf,
    },
}

/// One `[[clients]]` entry, as written (see [`valid::Client`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Client {
    name: String,
    uid: Option<u32>,
    gid: Option<u32>,
    cert_cn: Option<String>,
    cert_san: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    operations: Vec<Operation>,
    rate_per_second: Option<f64>,
    burst: Option<u32>,
}

/// `[backend]`, as written (see [`valid::Backend`]).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Backend {
    Pkcs11(Pkcs11),
    Yubihsm(YubiHsm),
}

/// `[backend]` with `type = "yubihsm"`, as written (see [`valid::YubiHsm`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YubiHsm {
    connector: YubiHsmConnector,
    auth_key: u16,
    password: SecretSource,
    domain: Option<u8>,
    keys: Option<Vec<String>>,
    require_generated: Option<bool>,
    rescan_interval_ms: Option<u64>,
}

/// `connector = { http = "…" }` or `{ usb = "…" }`, as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum YubiHsmConnector {
    Http(String),
    Usb(String),
}

impl Config {
    /// Checks what the types cannot (at least one listener, loopback-only plain TCP, sane
    /// limits, distinct clients) and parses the values written as strings.
    pub(super) fn check(self) -> Result<valid::Config, Error> {
        if self.listen.is_empty() {
            return Err(Error::Config(
                "no [[listen]] entry: add a unix socket or a loopback TCP address".into(),
            ));
        }
        let listen = self
            .listen
            .into_iter()
            .map(Listener::check)
            .collect::<Result<Vec<_>, _>>()?;
        let clients = check_clients(self.clients)?;
        check_limits(&self.limits)?;
        let backend = match self.backend {
            Backend::Pkcs11(p) => valid::Backend::Pkcs11(check_pkcs11(p)?),
            Backend::Yubihsm(y) => valid::Backend::Yubihsm(y.check()?),
        };
        Ok(valid::Config {
            listen,
            limits: self.limits,
            backend,
            clients,
            audit: self.audit,
            metrics: self.metrics,
        })
    }
}

impl Listener {
    fn check(self) -> Result<valid::Listener, Error> {
        match self {
            Listener::Unix {
                path,
                mode,
                uid,
                gid,
            } => Ok(valid::Listener::Unix {
                path,
                mode: mode.as_deref().map_or(Ok(Mode::DEFAULT), Mode::parse)?,
                uid,
                gid,
            }),
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
                Ok(valid::Listener::Tcp { address })
            }
            Listener::Tls {
                address,
                cert,
                key,
                client_ca,
            } => Ok(valid::Listener::Tls {
                address,
                cert,
                key,
                client_ca,
            }),
        }
    }
}

/// Each client names exactly one matcher and a sane rate, and no two clients share a
/// matcher or a name.
fn check_clients(raw: Vec<Client>) -> Result<Vec<valid::Client>, Error> {
    let mut clients = Vec::with_capacity(raw.len());
    for client in raw {
        let matcher = match (client.uid, client.gid, client.cert_cn, client.cert_san) {
            (Some(uid), None, None, None) => ClientMatcher::Uid(uid),
            (None, Some(gid), None, None) => ClientMatcher::Gid(gid),
            (None, None, Some(cn), None) => ClientMatcher::CertCn(cn),
            (None, None, None, Some(san)) => ClientMatcher::CertSan(san),
            _ => {
                return Err(Error::Config(format!(
                    "clients: '{}' must name exactly one of uid, gid, cert_cn, cert_san",
                    client.name
                )))
            }
        };
        if client
            .rate_per_second
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            return Err(Error::Config(format!(
                "clients: '{}': rate_per_second must be a positive number",
                client.name
            )));
        }
        clients.push(valid::Client {
            name: client.name,
            matcher,
            keys: client.keys,
            operations: client.operations,
            rate_per_second: client.rate_per_second,
            burst: client.burst,
        });
    }
    let mut matchers: Vec<&ClientMatcher> = clients.iter().map(|c| &c.matcher).collect();
    matchers.sort_unstable();
    if matchers.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Config(
            "clients: two clients match the same uid, gid, cert_cn or cert_san; merge them".into(),
        ));
    }
    let mut names: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Config(format!(
            "clients: the name '{}' is used twice",
            w[0]
        )));
    }
    Ok(clients)
}

/// Every limit within its range.
fn check_limits(limits: &Limits) -> Result<(), Error> {
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
    Ok(())
}

/// `backend.sessions` in range, a token selector that is not empty, a sane key list.
fn check_pkcs11(p: Pkcs11) -> Result<Pkcs11, Error> {
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
    check_key_list(p.keys.as_deref())?;
    check_rescan_interval(p.rescan_interval_ms)?;
    Ok(p)
}

impl YubiHsm {
    fn check(self) -> Result<valid::YubiHsm, Error> {
        let connector = match &self.connector {
            YubiHsmConnector::Http(url) => valid::YubiHsmConnector::http(url)?,
            YubiHsmConnector::Usb(serial) => valid::YubiHsmConnector::usb(serial)?,
        };
        if self.auth_key == 0 {
            return Err(Error::Config(
                "backend.auth_key: 0 is not an object id (the factory default key is 1)".into(),
            ));
        }
        let domain = self.domain.unwrap_or(1);
        if !(1..=16).contains(&domain) {
            return Err(Error::Config(format!(
                "backend.domain must be between 1 and 16, got {domain}"
            )));
        }
        check_key_list(self.keys.as_deref())?;
        let rescan_interval_ms = self
            .rescan_interval_ms
            .unwrap_or(valid::DEFAULT_RESCAN_INTERVAL_MS);
        check_rescan_interval(rescan_interval_ms)?;
        Ok(valid::YubiHsm {
            connector,
            auth_key: self.auth_key,
            password: self.password,
            domain,
            keys: self.keys,
            require_generated: self.require_generated.unwrap_or(false),
            rescan_interval_ms,
        })
    }
}

/// `backend.rescan_interval_ms`: 0 (off) or between 100 ms and one day.
fn check_rescan_interval(ms: u64) -> Result<(), Error> {
    if ms != 0 && !(100..=86_400_000).contains(&ms) {
        return Err(Error::Config(format!(
            "backend.rescan_interval_ms must be 0 (re-read keys on SIGHUP only) or between 100 \
             and 86400000, got {ms}"
        )));
    }
    Ok(())
}

/// `backend.keys`: no empty entry, none twice.
fn check_key_list(keys: Option<&[String]>) -> Result<(), Error> {
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
