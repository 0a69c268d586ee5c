//! Public-key encodings (raw, SubjectPublicKeyInfo DER, PEM, JWK, RFC 7638 thumbprint) and the
//! software verification used by verify-after-sign.
//!
//! ML-DSA-65 keys (FIPS 204) have no curve point: the token gives the 1,952-byte encoded public
//! key (`CKA_VALUE` of the public-key object), their SubjectPublicKeyInfo carries the OID
//! id-ml-dsa-65 (2.16.840.1.101.3.4.3.18, parameters absent; RFC 9881), and their JWK is the
//! `AKP` form of draft-ietf-cose-dilithium-11 (`{"alg":"ML-DSA-65","kty":"AKP","pub":…}`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use der::asn1::OctetStringRef;
use der::Decode;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use fips204::ml_dsa_65;
use fips204::traits::{SerDes as _, Verifier as _};
use p256::pkcs8::der::{Encode as _, EncodePem as _};
use p256::pkcs8::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use p256::pkcs8::LineEnding;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::key::Algorithm;

/// The length of an encoded ML-DSA-65 public key (FIPS 204, table 2).
pub const ML_DSA_65_PUBLIC_KEY_LEN: usize = ml_dsa_65::PK_LEN;
/// The length of an ML-DSA-65 signature (FIPS 204, table 2).
pub const ML_DSA_65_SIGNATURE_LEN: usize = ml_dsa_65::SIG_LEN;
/// id-ml-dsa-65 (NIST CSOR; RFC 9881): the SubjectPublicKeyInfo algorithm of ML-DSA-65.
pub const ID_ML_DSA_65: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");

/// The public half of an asymmetric key served by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 verifying key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A P-256 ECDSA verifying key.
    P256(p256::ecdsa::VerifyingKey),
    /// An ML-DSA-65 public key in its FIPS 204 encoding, checked to decode.
    MlDsa65(Box<[u8; ML_DSA_65_PUBLIC_KEY_LEN]>),
}

impl PublicKey {
    /// Builds a public key from a token's `CKA_EC_POINT`.
    ///
    /// The spec says the point is a DER OCTET STRING (`04 20 ‖ key` for Ed25519, `04 41 04 ‖ X ‖ Y`
    /// for P-256); some tokens (and SoftHSM for imported Ed25519 keys) store the bare point. A
    /// value of exactly the bare point's length (32 or 65 bytes) is the bare point, since its
    /// DER form is always two bytes longer; anything else must be a DER OCTET STRING that a DER
    /// parser consumes completely. Deciding by content instead would misread a bare point whose
    /// first bytes happen to look like a DER header.
    pub fn from_ec_point(algorithm: Algorithm, ec_point: &[u8]) -> Result<Self, Error> {
        let bare_len = match algorithm {
            Algorithm::Ed25519 => 32,
            _ => 65,
        };
        let point = if ec_point.len() == bare_len {
            ec_point
        } else {
            OctetStringRef::from_der(ec_point)
                .map(|inner| inner.as_bytes())
                .unwrap_or(ec_point)
        };
        let bad = |why: &str| {
            Error::Startup(format!(
                "the token's CKA_EC_POINT is not a valid {} public key: {why}",
                algorithm.name()
            ))
        };
        match algorithm {
            Algorithm::Ed25519 => {
                let bytes: [u8; 32] = point
                    .try_into()
                    .map_err(|_| bad(&format!("{} bytes, expected 32", point.len())))?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(PublicKey::Ed25519)
                    .map_err(|_| bad("not a point on the curve"))
            }
            Algorithm::EcdsaP256Sha256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(PublicKey::P256)
                .map_err(|_| bad("not a SEC1 point on P-256")),
            Algorithm::HmacSha256 => Err(bad("HMAC keys have no public key")),
            Algorithm::MlDsa65 => Err(bad("ML-DSA keys have no curve point")),
        }
    }

    /// Builds an ML-DSA-65 public key from its FIPS 204 encoding (the `CKA_VALUE` of a
    /// PKCS#11 3.2 `CKK_ML_DSA` public-key object): 1,952 bytes that decode.
    pub fn from_ml_dsa_65(encoded: &[u8]) -> Result<Self, Error> {
        let bad = |why: String| {
            Error::Startup(format!(
                "the token's CKA_VALUE is not a valid ML-DSA-65 public key: {why}"
            ))
        };
        let bytes: [u8; ML_DSA_65_PUBLIC_KEY_LEN] = encoded.try_into().map_err(|_| {
            bad(format!(
                "{} bytes, expected {ML_DSA_65_PUBLIC_KEY_LEN}",
                encoded.len()
            ))
        })?;
        ml_dsa_65::PublicKey::try_from_bytes(bytes).map_err(|e| bad(e.to_owned()))?;
        Ok(PublicKey::MlDsa65(Box::new(bytes)))
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
            PublicKey::P256(_) => Algorithm::EcdsaP256Sha256,
            PublicKey::MlDsa65(_) => Algorithm::MlDsa65,
        }
    }

    /// The raw key: 32 bytes for Ed25519, the uncompressed SEC1 point for P-256, the 1,952-byte
    /// FIPS 204 encoding for ML-DSA-65.
    pub fn raw(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::P256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            PublicKey::MlDsa65(k) => k.to_vec(),
        }
    }

    /// The DER-encoded SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Result<Vec<u8>, Error> {
        let doc = match self {
            PublicKey::Ed25519(k) => k.to_public_key_der(),
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_der(),
            PublicKey::MlDsa65(k) => {
                return ml_dsa_65_spki(k)
                    .and_then(|spki| spki.to_der())
                    .map_err(|e| Error::Internal(format!("encoding SubjectPublicKeyInfo: {e}")))
            }
        };
        doc.map(|d| d.into_vec())
            .map_err(|e| Error::Internal(format!("encoding SubjectPublicKeyInfo: {e}")))
    }

    /// The SubjectPublicKeyInfo as a PEM `PUBLIC KEY` block.
    pub fn pem(&self) -> Result<String, Error> {
        let pem = match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_pem(LineEnding::LF),
            PublicKey::MlDsa65(k) => {
                return ml_dsa_65_spki(k)
                    .and_then(|spki| spki.to_pem(LineEnding::LF))
                    .map_err(|e| Error::Internal(format!("encoding PEM: {e}")))
            }
        };
        pem.map_err(|e| Error::Internal(format!("encoding PEM: {e}")))
    }

    /// The members that define the key (RFC 7638 "required members"), in lexicographic order.
    fn jwk_required_members(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = match self {
            PublicKey::Ed25519(k) => json!({
                "crv": "Ed25519",
                "kty": "OKP",
                "x": URL_SAFE_NO_PAD.encode(k.as_bytes()),
            }),
            PublicKey::P256(k) => {
                let point = k.to_encoded_point(false);
                // An uncompressed point always has both coordinates.
                let x = point.x().map(|x| URL_SAFE_NO_PAD.encode(x));
                let y = point.y().map(|y| URL_SAFE_NO_PAD.encode(y));
                json!({ "crv": "P-256", "kty": "EC", "x": x, "y": y })
            }
            // draft-ietf-cose-dilithium: the AKP ("Algorithm Key Pair") key type, whose
            // thumbprint members are alg, kty and pub.
            PublicKey::MlDsa65(k) => json!({
                "alg": Algorithm::MlDsa65.jws_alg(),
                "kty": "AKP",
                "pub": URL_SAFE_NO_PAD.encode(k.as_slice()),
            }),
        };
        match value {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// The public JWK with `kid`, `alg` and `key_ops: ["verify"]`, as compact JSON.
    pub fn jwk(&self, kid: &str) -> String {
        let mut members = self.jwk_required_members();
        members.insert("kid".into(), json!(kid));
        members.insert("alg".into(), json!(self.algorithm().jws_alg()));
        members.insert("key_ops".into(), json!(["verify"]));
        serde_json::Value::Object(members).to_string()
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
    pub fn jwk_thumbprint(&self) -> String {
        // serde_json's Map is a BTreeMap (no `preserve_order` feature), so keys serialize in
        // lexicographic order and without whitespace, which is RFC 7638's canonical form.
        let canonical = serde_json::Value::Object(self.jwk_required_members()).to_string();
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Verifies a raw signature over `message`: Ed25519 (strict, RFC 8032), or ECDSA P-256
    /// with SHA-256 (r‖s). Returns false for anything that does not verify.
    ///
    /// This runs after every signature (verify-after-sign), so the verifier is chosen by
    /// measured speed: for P-256, `ring` (about 60 µs here) rather than the pure-Rust `p256`
    /// crate (about 330 µs); for Ed25519, `ed25519-dalek` (about 48 µs, `ring` 53 µs).
    /// `examples/verify_speed.rs` measures them. ML-DSA-65 is pure ML-DSA with an empty
    /// context (FIPS 204 algorithm 3), checked by the `fips204` crate (see the README for why).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify_strict(message, &sig).is_ok()),
            PublicKey::P256(k) => {
                let point = k.to_encoded_point(false);
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point.as_bytes(),
                )
                .verify(message, signature)
                .is_ok()
            }
            PublicKey::MlDsa65(k) => {
                let Ok(signature) = <&[u8; ML_DSA_65_SIGNATURE_LEN]>::try_from(signature) else {
                    return false;
                };
                ml_dsa_65::PublicKey::try_from_bytes(**k)
                    .is_ok_and(|pk| pk.verify(message, signature, &[]))
            }
        }
    }
}

/// The SubjectPublicKeyInfo of an ML-DSA-65 key: id-ml-dsa-65 with absent parameters, and the
/// encoded key as the BIT STRING (RFC 9881, section 4).
fn ml_dsa_65_spki(
    key: &[u8; ML_DSA_65_PUBLIC_KEY_LEN],
) -> Result<SubjectPublicKeyInfoOwned, p256::pkcs8::der::Error> {
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ID_ML_DSA_65,
            parameters: None,
        },
        subject_public_key: p256::pkcs8::der::asn1::BitString::from_bytes(key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_POINT_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn ed25519_point_der_wrapped_and_bare_agree() {
        let raw = hex::decode(ED_POINT_HEX).expect("hex");
        let mut wrapped = vec![0x04, 0x20];
        wrapped.extend_from_slice(&raw);
        let a = PublicKey::from_ec_point(Algorithm::Ed25519, &wrapped).expect("wrapped");
        let b = PublicKey::from_ec_point(Algorithm::Ed25519, &raw).expect("bare");
        assert_eq!(a, b);
        assert_eq!(a.raw(), raw);
    }

    #[test]
    fn a_bare_point_that_looks_like_der_is_read_as_bare() {
        // 32 bytes starting 04 1e also parse as a DER OCTET STRING of 30 bytes; they must be read
        // as the bare point. About half of all 32-byte strings are valid Ed25519 points.
        let mut parsed = 0;
        for third in 0..=255u8 {
            let mut bare = [0u8; 32];
            bare[..3].copy_from_slice(&[0x04, 0x1e, third]);
            match PublicKey::from_ec_point(Algorithm::Ed25519, &bare) {
                Ok(key) => {
                    assert_eq!(key.raw(), bare);
                    parsed += 1;
                }
                Err(e) => assert!(e.to_string().contains("not a point"), "{e}"),
            }
        }
        assert!(parsed > 0, "some of these are points on the curve");
    }

    #[test]
    fn ml_dsa_65_keys_of_the_wrong_length_are_refused() {
        let err = PublicKey::from_ml_dsa_65(&[0u8; 1312]).expect_err("an ML-DSA-44 length");
        assert!(
            err.to_string().contains("1312 bytes, expected 1952"),
            "{err}"
        );
        // Any 1,952 bytes decode (rho and t1 are unconstrained); the SPKI names id-ml-dsa-65.
        let key = PublicKey::from_ml_dsa_65(&[7u8; 1952]).expect("1,952 bytes");
        let spki = key.spki_der().expect("spki");
        // SEQUENCE(1974) { SEQUENCE(11) { OID 2.16.840.1.101.3.4.3.18 } BIT STRING(1953) { 0, key } }
        let prefix = "308207b2300b0609608648016503040312038207a100";
        assert_eq!(hex::encode(&spki[..22]), prefix);
        assert_eq!(&spki[22..], &[7u8; 1952][..]);
        assert!(!key.verify(b"m", &[0u8; 3309]));
        assert!(!key.verify(b"m", &[0u8; 64]));
    }

    #[test]
    fn ed25519_wrong_length_is_refused() {
        let err =
            PublicKey::from_ec_point(Algorithm::Ed25519, &[0x04, 0x02, 1, 2]).expect_err("short");
        assert!(err.to_string().contains("expected 32"), "{err}");
    }

    #[test]
    fn rfc8037_thumbprint_vector() {
        // RFC 8037, appendix A.3: the thumbprint of the RFC 8032 test key 1.
        let raw = hex::decode(ED_POINT_HEX).expect("hex");
        let key = PublicKey::from_ec_point(Algorithm::Ed25519, &raw).expect("key");
        assert_eq!(
            key.jwk_thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let jwk: serde_json::Value = serde_json::from_str(&key.jwk("k1")).expect("json");
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["key_ops"], json!(["verify"]));
    }

    #[test]
    fn ed25519_spki_matches_rfc8410_prefix() {
        let raw = hex::decode(ED_POINT_HEX).expect("hex");
        let key = PublicKey::from_ec_point(Algorithm::Ed25519, &raw).expect("key");
        let spki = key.spki_der().expect("spki");
        assert_eq!(
            &spki[..12],
            &hex::decode("302a300506032b6570032100").expect("hex")[..]
        );
        assert_eq!(&spki[12..], &raw[..]);
        assert!(key
            .pem()
            .expect("pem")
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn p256_point_round_trips_through_jwk() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("sk");
        let vk = *sk.verifying_key();
        let point = vk.to_encoded_point(false);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend_from_slice(point.as_bytes());
        let key = PublicKey::from_ec_point(Algorithm::EcdsaP256Sha256, &wrapped).expect("key");
        let jwk: serde_json::Value = serde_json::from_str(&key.jwk("p")).expect("json");
        assert_eq!(
            (jwk["kid"].as_str(), jwk["alg"].as_str()),
            (Some("p"), Some("ES256"))
        );
        // p256 rejects members other than the key's own, so give it only those.
        let key_only = json!({"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]});
        let parsed = p256::PublicKey::from_jwk_str(&key_only.to_string()).expect("jwk parses");
        assert_eq!(p256::ecdsa::VerifyingKey::from(parsed), vk);
    }
}
