//! Domain types that describe a served key: its algorithm and what the agent knows about it.

use crate::public_key::PublicKey;

/// The signature algorithms Signet serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Pure EdDSA on Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA on P-256 over SHA-256 of the message.
    EcdsaP256Sha256,
    /// HMAC with SHA-256.
    HmacSha256,
}

impl Algorithm {
    /// The name used in key listings, logs and configuration (`ed25519`, `p256`, `hmac-sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "p256",
            Algorithm::HmacSha256 => "hmac-sha256",
        }
    }

    /// The JOSE `alg` name (RFC 7518, RFC 8037).
    pub fn jws_alg(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "EdDSA",
            Algorithm::EcdsaP256Sha256 => "ES256",
            Algorithm::HmacSha256 => "HS256",
        }
    }

    /// Parses [`Algorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Ed25519, Self::EcdsaP256Sha256, Self::HmacSha256]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// The encoding of an ECDSA signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureFormat {
    /// Fixed-size r‖s (JWS form); the only form for Ed25519 and HMAC.
    #[default]
    Raw,
    /// ASN.1 DER `SEQUENCE { r, s }`; ECDSA only.
    Der,
}

/// A key the agent serves, as found on the token at start-up.
#[derive(Debug, Clone)]
pub struct KeyDescriptor {
    /// The key id (the token object's label).
    pub id: String,
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// The public key, for asymmetric keys.
    pub public_key: Option<PublicKey>,
}
