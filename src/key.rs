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
    /// ML-DSA-65 (FIPS 204), pure, with an empty context.
    MlDsa65,
}

impl Algorithm {
    /// The name used in key listings, logs and configuration (`ed25519`, `p256`, `hmac-sha256`,
    /// `ml-dsa-65`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "p256",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::MlDsa65 => "ml-dsa-65",
        }
    }

    /// The JOSE `alg` name (RFC 7518, RFC 8037; `ML-DSA-65` from draft-ietf-cose-dilithium-11).
    pub fn jws_alg(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "EdDSA",
            Algorithm::EcdsaP256Sha256 => "ES256",
            Algorithm::HmacSha256 => "HS256",
            Algorithm::MlDsa65 => "ML-DSA-65",
        }
    }

    /// Parses [`Algorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Ed25519,
            Self::EcdsaP256Sha256,
            Self::HmacSha256,
            Self::MlDsa65,
        ]
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

/// One version of a key the agent serves, as found on the token.
///
/// A key id names a ring of versions 1..n ([`split_label`]): version 1 is the object labelled
/// with the bare id (every key made before versions existed), version n ≥ 2 the object
/// labelled `id#n`.
#[derive(Debug, Clone)]
pub struct KeyDescriptor {
    /// The key id (the ring: the object label without its `#n` suffix).
    pub id: String,
    /// The version within the ring (1 for the bare label).
    pub version: u32,
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// The public key, for asymmetric keys.
    pub public_key: Option<PublicKey>,
    /// The token lets this version sign (`CKA_SIGN`, or the sign capability on a YubiHSM).
    pub can_sign: bool,
    /// The token lets this version verify (`CKA_VERIFY` of the secret key or of the public-key
    /// object).
    pub can_verify: bool,
}

impl KeyDescriptor {
    /// Version 1 of `id`, allowed to sign and verify: a key as it was before versions.
    pub fn new(id: impl Into<String>, algorithm: Algorithm, public_key: Option<PublicKey>) -> Self {
        KeyDescriptor {
            id: id.into(),
            version: 1,
            algorithm,
            public_key,
            can_sign: true,
            can_verify: true,
        }
    }

    /// The object label of this version on the token ([`version_label`]).
    pub fn label(&self) -> String {
        version_label(&self.id, self.version)
    }

    /// The JWK `kid` of this version: the bare key id for version 1 (what sqooler has always
    /// used), `id#n` for the others: the object label.
    pub fn kid(&self) -> String {
        self.label()
    }
}

/// The object label of version `version` of key `id`: the bare id for version 1, `id#n` for
/// the others.
pub fn version_label(id: &str, version: u32) -> String {
    if version <= 1 {
        id.to_owned()
    } else {
        format!("{id}#{version}")
    }
}

/// Splits an object label into key id and version: `id#n` with n a decimal number ≥ 2
/// written without leading zeros is version n of `id`; any other label is version 1 of itself.
pub fn split_label(label: &str) -> (&str, u32) {
    if let Some((id, n)) = label.rsplit_once('#') {
        let canonical = !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && !n.starts_with('0')
            && !id.is_empty();
        if let Some(version) = n.parse::<u32>().ok().filter(|v| canonical && *v >= 2) {
            return (id, version);
        }
    }
    (label, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_versions_and_bare_labels_are_version_one() {
        assert_eq!(split_label("witness"), ("witness", 1));
        assert_eq!(split_label("witness#2"), ("witness", 2));
        assert_eq!(split_label("a#b#17"), ("a#b", 17));
        for odd in ["w#1", "w#0", "w#02", "w#", "#3", "w#x", "w#99999999999"] {
            assert_eq!(split_label(odd), (odd, 1), "{odd}");
        }
        for v in [1, 2, 40] {
            let label = version_label("k", v);
            assert_eq!(split_label(&label), ("k", v));
        }
    }
}
