//! The native YubiHSM2 backend, over the `yubihsm` crate: reaches the device through
//! `yubihsm-connector` (HTTP) or USB, opens an authenticated session with one attempt, checks the
//! served keys against the Tier 4 rule ([`discover`]), and signs through one session that is kept
//! alive, reopened when it expires, and re-made after a connector outage ([`YubiHsmBackend`]).
//!
//! A YubiHSM2 executes one command at a time and holds at most 16 sessions, each expiring after
//! 30 s without a command; so the backend keeps exactly one session and sends one command at a
//! time through it (more sessions would only queue inside the device).

pub mod admin;
pub mod discover;
mod serving;

use yubihsm::client::ErrorKind as ClientKind;
use yubihsm::device::ErrorKind as DeviceKind;
use yubihsm::{Client, Connector, Credentials};

pub use serving::{Timing, YubiHsmBackend};

use crate::config::{self, YubiHsmConnector};
use crate::error::Error;
use crate::key::Algorithm;
use crate::secret::Secret;

/// The longest message the device signs whole (Ed25519, HMAC): a command travels in one
/// 2048-byte buffer with the session's framing, padding and MAC around it.
pub const MAX_WHOLE_MESSAGE: usize = 2019;

/// How long the HTTP connector should wait for `yubihsm-connector`. `yubihsm` 0.42 ignores it and
/// uses its own 20 s for connecting, reading and writing; it is set for when it does not.
const HTTP_TIMEOUT_MS: u64 = 5_000;

/// What opens sessions on one device: the connector and the authentication key's credentials
/// (derived from the password; the `yubihsm` crate wipes them when dropped).
#[derive(Clone)]
pub struct Device {
    connector: Connector,
    credentials: Credentials,
}

impl Device {
    /// The configured connector and credentials; nothing is sent to the device yet.
    pub fn new(config: &config::YubiHsm, password: &Secret) -> Result<Self, Error> {
        Ok(Self::with_connector(
            connector(&config.connector)?,
            config.auth_key,
            password,
        ))
    }

    /// A device behind `connector` (tests use one to an in-process MockHsm).
    pub fn with_connector(connector: Connector, auth_key: u16, password: &Secret) -> Self {
        Device {
            connector,
            credentials: Credentials::from_password(auth_key, password.expose().as_bytes()),
        }
    }

    /// The object id of the authentication key sessions open with (`backend.auth_key`).
    pub fn auth_key(&self) -> u16 {
        self.credentials.authentication_key_id
    }

    /// Opens one authenticated session: exactly one authentication attempt, never repeated by
    /// the client (a closed session is reopened by the caller, deliberately).
    pub fn open_session(&self) -> Result<Client, Error> {
        Client::open(self.connector.clone(), self.credentials.clone(), false)
            .map_err(|e| self.open_error(e))
    }

    fn open_error(&self, e: yubihsm::client::Error) -> Error {
        let auth_key = self.credentials.authentication_key_id;
        match (*e.kind(), device_error(&e)) {
            (_, Some(DeviceKind::SessionsFull)) => Error::YubiHsmUnavailable {
                operation: "opening a session (all 16 sessions of the device are in use; they \
                            expire after 30 s idle)",
                source: e,
            },
            (_, Some(DeviceKind::ObjectNotFound)) => Error::LoginRefused(format!(
                "the YubiHSM has no authentication key with object id {auth_key}; check \
                 backend.auth_key"
            )),
            (ClientKind::AuthenticationError, _) | (_, Some(DeviceKind::AuthenticationFailed)) => {
                Error::LoginRefused(format!(
                "the YubiHSM refused the password of authentication key {auth_key} ({e}). Signet \
                 made exactly one authentication attempt and will not retry; check the password \
                 source named in backend.password and backend.auth_key"
            ))
            }
            _ => classify("opening a session", e),
        }
    }
}

/// The `yubihsm` connector the configuration names (its address was parsed when the
/// configuration was loaded).
pub fn connector(config: &YubiHsmConnector) -> Result<Connector, Error> {
    match config {
        YubiHsmConnector::Http { host, port } => {
            Ok(Connector::http(&yubihsm::connector::HttpConfig {
                addr: host.clone(),
                port: *port,
                timeout_ms: HTTP_TIMEOUT_MS,
            }))
        }
        YubiHsmConnector::Usb(serial) => usb(*serial),
    }
}

#[cfg(feature = "yubihsm-usb")]
fn usb(serial: Option<yubihsm::device::SerialNumber>) -> Result<Connector, Error> {
    Ok(Connector::usb(&yubihsm::connector::UsbConfig {
        serial,
        timeout_ms: yubihsm::connector::UsbConfig::DEFAULT_TIMEOUT_MILLIS,
    }))
}

#[cfg(not(feature = "yubihsm-usb"))]
fn usb(_: Option<yubihsm::device::SerialNumber>) -> Result<Connector, Error> {
    Err(Error::Config(
        "backend.connector: this signet was built without USB support (the yubihsm-usb cargo \
         feature, which needs libusb); run yubihsm-connector and use { http = \"http://…\" }"
            .into(),
    ))
}

/// The device's own error code inside a client error, if the device answered with one.
pub fn device_error(e: &yubihsm::client::Error) -> Option<DeviceKind> {
    e.device_error()
}

/// A `yubihsm` error for people: the crate's Display repeats each layer's kind ("protocol
/// error: protocol error: I/O error: I/O error") and its HTTP client keeps the OS error
/// ("Connection refused (os error 111)") only in its Debug form, so the innermost cause is
/// spelled out from there when it is; otherwise the Display as it is.
pub fn describe(error: &yubihsm::client::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let debug = format!("{innermost:?}");
    let detail = debug
        .split_once("description: Some(\"")
        .and_then(|(_, rest)| rest.split_once("\")"))
        .map(|(detail, _)| detail);
    match detail {
        Some(detail) => format!("{innermost}: {detail}"),
        None => error.to_string(),
    }
}

/// Sorts a failed command into a connection loss (connector down, session gone, a broken
/// secure channel: re-make the connection) or an HSM error. The client reports I/O errors of
/// the HTTP connection (connection refused, reset) as protocol errors.
pub fn classify(operation: &'static str, source: yubihsm::client::Error) -> Error {
    let lost = matches!(
        *source.kind(),
        ClientKind::ConnectorError
            | ClientKind::ClosedSessionError
            | ClientKind::CreateFailed
            | ClientKind::ProtocolError
    ) || matches!(
        device_error(&source),
        Some(DeviceKind::InvalidSession | DeviceKind::SessionFailed | DeviceKind::SessionsFull)
    );
    if lost {
        Error::YubiHsmUnavailable { operation, source }
    } else if matches!(
        device_error(&source),
        Some(DeviceKind::InsufficientPermissions)
    ) {
        Error::FailedPrecondition(format!(
            "the YubiHSM refused {operation}: the key or the authentication key Signet uses \
             lacks the capability (the authentication key needs sign-eddsa, sign-ecdsa and \
             sign-hmac for the keys it serves)"
        ))
    } else {
        Error::YubiHsm { operation, source }
    }
}

/// Whether a command failed because the session is gone (expired on the device, or aborted by
/// the client) while the connector still answers: a new session fixes it. A real device
/// answers a command on a session it no longer knows with an unencrypted error frame, which
/// the client reports as a response error without a device error code; a new session and one
/// retry are harmless for any other such error (signing is idempotent).
fn session_gone(e: &Error) -> bool {
    match e {
        Error::YubiHsmUnavailable { source, .. } | Error::YubiHsm { source, .. } => {
            matches!(
                *source.kind(),
                ClientKind::ClosedSessionError | ClientKind::AuthenticationError
            ) || (*source.kind() == ClientKind::ResponseError && device_error(source).is_none())
                || matches!(
                    device_error(source),
                    Some(DeviceKind::InvalidSession | DeviceKind::SessionFailed)
                )
        }
        _ => false,
    }
}

/// Signs `input` with the key `object_id` (the input rules of [`crate::backend::Backend::sign`]);
/// ECDSA signatures come back from the device in DER and are returned as the 64-byte r‖s.
pub fn sign(
    client: &Client,
    algorithm: Algorithm,
    object_id: u16,
    input: &[u8],
) -> Result<Vec<u8>, Error> {
    if algorithm != Algorithm::EcdsaP256Sha256 && input.len() > MAX_WHOLE_MESSAGE {
        return Err(Error::ResourceExhausted(format!(
            "the message is {} bytes; a YubiHSM2 signs {} messages of at most {MAX_WHOLE_MESSAGE} \
             bytes (the whole message must fit in the device's command buffer); sign longer \
             messages with a P-256 key, which signs a digest",
            input.len(),
            algorithm.name()
        )));
    }
    match algorithm {
        Algorithm::Ed25519 => client
            .sign_ed25519(object_id, input)
            .map(|s| s.to_bytes().to_vec())
            .map_err(|e| classify("Sign EdDSA", e)),
        Algorithm::EcdsaP256Sha256 => {
            let der = client
                .sign_ecdsa_prehash_raw(object_id, input)
                .map_err(|e| classify("Sign ECDSA", e))?;
            let signature = p256::ecdsa::Signature::from_der(&der).map_err(|e| {
                Error::Internal(format!("the YubiHSM's ECDSA signature is not DER: {e}"))
            })?;
            Ok(signature.to_bytes().to_vec())
        }
        Algorithm::HmacSha256 => client
            .sign_hmac(object_id, input)
            .map(yubihsm::hmac::Tag::into_vec)
            .map_err(|e| classify("Sign HMAC", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_gone_sessions_are_told_from_hsm_errors() {
        for kind in [
            ClientKind::ConnectorError,
            ClientKind::ClosedSessionError,
            ClientKind::CreateFailed,
            ClientKind::ProtocolError,
        ] {
            let e = classify("Sign EdDSA", kind.into());
            assert!(e.is_connection_loss(), "{kind:?}: {e}");
            assert_eq!(e.kind(), crate::error::ErrorKind::Unavailable);
        }
        for kind in [ClientKind::ResponseError, ClientKind::DeviceError] {
            let e = classify("Sign EdDSA", kind.into());
            assert!(!e.is_connection_loss(), "{kind:?}: {e}");
            assert_eq!(e.kind(), crate::error::ErrorKind::Internal);
        }
        assert!(session_gone(&classify(
            "Echo",
            ClientKind::ClosedSessionError.into()
        )));
        // A real device's unencrypted answer to an unknown session.
        assert!(session_gone(&classify(
            "Echo",
            ClientKind::ResponseError.into()
        )));
        assert!(!session_gone(&classify(
            "Echo",
            ClientKind::DeviceError.into()
        )));
        assert!(!session_gone(&Error::Recovering));
    }

    #[test]
    fn long_whole_messages_are_refused_before_the_device_sees_them() {
        // No connector is needed: the length is checked first.
        let client = Client::create(
            connector(&YubiHsmConnector::Http {
                host: "127.0.0.1".into(),
                port: 9,
            })
            .expect("connector"),
            Credentials::from_password(1, b"unused"),
        )
        .expect("client");
        for algorithm in [Algorithm::Ed25519, Algorithm::HmacSha256] {
            let e = sign(&client, algorithm, 1, &[0; MAX_WHOLE_MESSAGE + 1]).expect_err("long");
            assert_eq!(e.kind(), crate::error::ErrorKind::ResourceExhausted, "{e}");
        }
    }

    #[test]
    #[cfg(not(feature = "yubihsm-usb"))]
    fn usb_without_the_feature_says_how_to_get_it() {
        let e = connector(&YubiHsmConnector::Usb(None))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("yubihsm-usb"), "{e}");
    }
}
