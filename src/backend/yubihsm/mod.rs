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
mod fault;
mod serving;

use yubihsm::{Client, Connector, Credentials};

pub use fault::{classify, describe};
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
            .map_err(|e| fault::open_error(self.credentials.authentication_key_id, e))
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
        Algorithm::MlDsa65 => Err(admin::no_ml_dsa()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
