//! The listeners once checked: a unix socket with its parsed file mode, loopback-only plain
//! TCP, or TLS with client certificates.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::Error;

/// One listening endpoint.
#[derive(Debug, Clone)]
pub enum Listener {
    /// A unix domain socket at `path`; callers are identified by their peer credentials. A
    /// stale socket file there is replaced.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// The socket file's mode (`mode = "0660"` when not set).
        mode: Mode,
        /// The socket file's owner (numeric user id); needs the privilege to chown.
        uid: Option<u32>,
        /// The socket file's group (numeric group id).
        gid: Option<u32>,
    },
    /// Plain TCP (no TLS, no caller identity) on a loopback address; the file said
    /// `plaintext = true`.
    Tcp {
        /// The address to bind, e.g. `127.0.0.1:50051`.
        address: SocketAddr,
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

/// A unix file mode: permission bits only (at most `0o777`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(u32);

impl Mode {
    /// A socket's mode when the configuration sets none: owner and group read and write.
    pub const DEFAULT: Mode = Mode(0o660);

    /// Parses `listen.mode`, written in octal (`"0660"`).
    pub fn parse(mode: &str) -> Result<Self, Error> {
        u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .map(Mode)
            .ok_or_else(|| {
                Error::Config(format!("listen: mode '{mode}' is not an octal file mode"))
            })
    }

    /// The permission bits, for `chmod`.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}
