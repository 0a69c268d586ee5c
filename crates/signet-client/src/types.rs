//! What the calls take and answer: plain Rust types converted from the generated protobuf
//! messages, so callers need not know the wire format.

use crate::proto;

/// A key's signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Pure EdDSA over Ed25519 (RFC 8032); 64-byte signatures. JWS `EdDSA`.
    Ed25519,
    /// ECDSA on P-256 over the SHA-256 of the message. JWS `ES256`.
    EcdsaP256Sha256,
    /// HMAC-SHA256; 32-byte signatures. JWS `HS256`.
    HmacSha256,
    /// ML-DSA-65 (FIPS 204), pure, empty context; 3,309-byte signatures. JOSE `ML-DSA-65`.
    MlDsa65,
    /// A value this crate does not know (a newer agent).
    Unknown(i32),
}

impl Algorithm {
    /// The name the `signet` command prints: `ed25519`, `ecdsa-p256-sha256`, `hmac-sha256`,
    /// `ml-dsa-65` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::MlDsa65 => "ml-dsa-65",
            Algorithm::Unknown(_) => "unknown",
        }
    }

    /// The algorithm of a protobuf `Algorithm` value.
    pub fn from_i32(value: i32) -> Algorithm {
        match proto::Algorithm::try_from(value) {
            Ok(proto::Algorithm::Ed25519) => Algorithm::Ed25519,
            Ok(proto::Algorithm::EcdsaP256Sha256) => Algorithm::EcdsaP256Sha256,
            Ok(proto::Algorithm::HmacSha256) => Algorithm::HmacSha256,
            Ok(proto::Algorithm::MlDsa65) => Algorithm::MlDsa65,
            _ => Algorithm::Unknown(value),
        }
    }
}

/// How a signature is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureFormat {
    /// The fixed-size form: 64 bytes r‖s for P-256 (JWS), 64 for Ed25519, 32 for HMAC.
    Raw,
    /// ASN.1 DER `SEQUENCE { r, s }` (X.509, OpenSSL). ECDSA keys only.
    Der,
}

impl SignatureFormat {
    pub(crate) fn to_proto(self) -> proto::SignatureFormat {
        match self {
            SignatureFormat::Raw => proto::SignatureFormat::Raw,
            SignatureFormat::Der => proto::SignatureFormat::Der,
        }
    }
}

/// A signature made by the agent, checked against its CRC32C.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Signature {
    /// The signature, encoded as `format` says.
    pub bytes: Vec<u8>,
    /// The algorithm of the key that signed.
    pub algorithm: Algorithm,
    /// The encoding of `bytes` (the one asked for).
    pub format: SignatureFormat,
    /// The key that signed.
    pub key_id: String,
    /// The version of the key that signed (its primary version then).
    pub key_version: u32,
}

/// The public half of an asymmetric key, in the encodings callers commonly need.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublicKey {
    /// The key's id.
    pub key_id: String,
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// 32 bytes for Ed25519, the 65-byte uncompressed SEC1 point for P-256.
    pub raw: Vec<u8>,
    /// The DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// `spki_der` as a PEM `PUBLIC KEY` block.
    pub pem: String,
    /// The public JWK as compact JSON, with `kid`, `alg` and `key_ops`.
    pub jwk: String,
    /// The RFC 7638 SHA-256 thumbprint of the JWK, base64url without padding.
    pub jwk_thumbprint: String,
    /// The key version these encodings are of.
    pub key_version: u32,
    /// The RFC 7517 JWK Set of every version that may verify, each with its own `kid`.
    pub jwks: String,
}

impl From<proto::GetPublicKeyResponse> for PublicKey {
    fn from(r: proto::GetPublicKeyResponse) -> Self {
        PublicKey {
            key_id: r.key_id,
            algorithm: Algorithm::from_i32(r.algorithm),
            raw: r.raw,
            spki_der: r.spki_der,
            pem: r.pem,
            jwk: r.jwk,
            jwk_thumbprint: r.jwk_thumbprint,
            key_version: r.key_version,
            jwks: r.jwks,
        }
    }
}

/// A key the agent serves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key's id.
    pub key_id: String,
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// True for asymmetric keys ([`crate::Client::public_key`] works), false for HMAC keys.
    pub has_public_key: bool,
    /// The version listed (one entry per served version).
    pub key_version: u32,
    /// Whether this version signs (the primary) or only verifies.
    pub can_sign: bool,
}

impl From<proto::KeyInfo> for KeyInfo {
    fn from(k: proto::KeyInfo) -> Self {
        KeyInfo {
            key_id: k.key_id,
            algorithm: Algorithm::from_i32(k.algorithm),
            has_public_key: k.has_public_key,
            key_version: k.key_version,
            can_sign: k.can_sign,
        }
    }
}

/// An SWT3 anchor to witness: the agent mints the fingerprint
/// `SHA-256("WITNESS:{tenant}:{procedure}:{a}:{b}:{c}:{timestamp_ms}")[..12 hex]` and signs it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Anchor {
    /// The tenant (no `:`).
    pub tenant_id: String,
    /// The procedure, e.g. `AI-INF.1` (no `:`).
    pub procedure_id: String,
    /// The factors a, b and c.
    pub factors: [f64; 3],
    /// Milliseconds since the Unix epoch; `None`: the agent's clock.
    pub timestamp_ms: Option<i64>,
    /// The agent id bound into the signed payload, if any.
    pub agent_id: Option<String>,
}

impl Anchor {
    /// An anchor stamped by the agent's clock, with no agent id.
    pub fn new(
        tenant_id: impl Into<String>,
        procedure_id: impl Into<String>,
        factors: [f64; 3],
    ) -> Self {
        Anchor {
            tenant_id: tenant_id.into(),
            procedure_id: procedure_id.into(),
            factors,
            timestamp_ms: None,
            agent_id: None,
        }
    }

    /// The same anchor at `timestamp_ms` (milliseconds since the epoch).
    pub fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// The same anchor with `agent_id` bound into the signed payload.
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    pub(crate) fn request(&self, key_id: &str) -> proto::FingerprintRequest {
        let [factor_a, factor_b, factor_c] = self.factors;
        // `..Default::default()`: fields the proto gains need no change here.
        #[allow(clippy::needless_update)]
        proto::FingerprintRequest {
            key_id: key_id.to_owned(),
            tenant_id: self.tenant_id.clone(),
            procedure_id: self.procedure_id.clone(),
            factor_a,
            factor_b,
            factor_c,
            timestamp_ms: self.timestamp_ms.unwrap_or(0),
            agent_id: self.agent_id.clone(),
            ..Default::default()
        }
    }
}

/// A witnessed anchor: its fingerprint and the HMAC over it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Witness {
    /// 12 lowercase hex characters.
    pub fingerprint: String,
    /// The key's signature over `fingerprint` (or `fingerprint:agent_id`), lowercase hex: 64
    /// characters for HMAC-SHA256, 6,618 for ML-DSA-65.
    pub signature: String,
    /// The timestamp in the formula (the agent's clock when the anchor had none).
    pub timestamp_ms: i64,
    /// The key that signed (SWT3's `signing_key_id`).
    pub key_id: String,
    /// The version that signed (SWT3's `signing_key_version`).
    pub key_version: u32,
    /// The algorithm that signed (SWT3's `signing_algorithm`: `hmac-sha256` or `ml-dsa-65`).
    pub algorithm: Algorithm,
}

impl From<proto::FingerprintResponse> for Witness {
    fn from(r: proto::FingerprintResponse) -> Self {
        Witness {
            fingerprint: r.fingerprint,
            signature: r.signature,
            timestamp_ms: r.timestamp_ms,
            key_id: r.key_id,
            key_version: r.key_version,
            // An agent from before ML-DSA leaves it unset: its anchors are HMAC-SHA256.
            algorithm: match r.algorithm {
                0 => Algorithm::HmacSha256,
                value => Algorithm::from_i32(value),
            },
        }
    }
}
