//! The agent's TOML configuration, parsed once into typed values: `raw` reads the file
//! strictly (unknown keys are errors that name the key) and checks it into a [`Config`] whose
//! values need no further parsing (a socket [`Mode`], a [`YubiHsmConnector`] address). A bad
//! value is refused by [`Config::load`] with the setting's name. `signet.example.toml`
//! documents every setting.

mod backend;
mod listen;
mod raw;
mod settings;

use std::path::Path;

pub use backend::{
    Backend, Pkcs11, SecretSource, TokenSelector, YubiHsm, YubiHsmConnector,
    DEFAULT_RESCAN_INTERVAL_MS,
};
pub use listen::{Listener, Mode};
pub use settings::{
    Audit, Client, ClientMatcher, Fsync, Limits, MetricsSettings, OnAuditFailure, Operation,
    DEFAULT_MAX_MESSAGE_BYTES,
};

use crate::error::Error;

/// The whole configuration, checked.
#[derive(Debug)]
pub struct Config {
    /// Where the agent listens; at least one entry.
    pub listen: Vec<Listener>,
    /// Request limits.
    pub limits: Limits,
    /// The HSM backend.
    pub backend: Backend,
    /// Named clients and what each may do. Sign and Fingerprint are denied to everyone else.
    pub clients: Vec<Client>,
    /// The tamper-evident audit log of signing operations; absent means no audit log.
    pub audit: Option<Audit>,
    /// The Prometheus metrics endpoint; off when absent.
    pub metrics: Option<MetricsSettings>,
}

impl Config {
    /// Reads, parses and checks a configuration file. Relative paths in it are resolved
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

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let raw: raw::Config =
            toml::from_str(text).map_err(|e| Error::Config(describe(text, &e)))?;
        raw.check()
    }

    fn resolve_relative_to(&mut self, dir: &Path) {
        let resolve = |p: &mut std::path::PathBuf| {
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
mod tests;
