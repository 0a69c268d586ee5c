//! sqooler's key formats: the private-key config string that `sqoolerkey` prints (to import a
//! spooler's key into the token) and the public JWK exactly as sqooler stores it.
//!
//! sqooler (0.9) builds both from a pydantic model `JWK {x, key_ops, kid, d, kty, alg, crv}`
//! whose `x` and `d` hold *padded* base64url strings; the config string is the padded
//! base64url of the model's compact JSON.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::Error;

/// base64url that accepts input with or without padding, and writes padding (as Python's
/// `base64.urlsafe_b64encode` does).
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A spooler's Ed25519 key read from its config string. The seed is wiped on drop and never
/// printed (`Debug` shows only the `kid` and the public key).
pub struct PrivateKey {
    /// sqooler's key id, kept so the published public JWK does not change.
    pub kid: String,
    /// The public key `x`, checked to be derived from the seed.
    pub public: [u8; 32],
    seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.kid)
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

/// The JSON members sqooler writes; all optional here so that each missing one gets its own
/// message. Unknown members are ignored, as pydantic ignores them.
#[derive(Deserialize)]
struct Jwk {
    x: Option<String>,
    key_ops: Option<String>,
    kid: Option<String>,
    d: Option<Zeroizing<String>>,
    kty: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
}

impl PrivateKey {
    /// Parses a config string as `sqoolerkey` prints it and checks that `d` derives `x`.
    /// Error messages describe what is wrong without repeating any of the input.
    pub fn from_config_str(config: &str) -> Result<Self, Error> {
        let config = config.trim();
        if config.is_empty() {
            return Err(invalid(
                "the input is empty; paste the private-key string that `sqoolerkey` printed",
            ));
        }
        let json = Zeroizing::new(URL_SAFE_LENIENT.decode(config).map_err(|_| {
            invalid(
                "the input is not base64url: expected the private-key string that `sqoolerkey` \
                 printed (one line of letters, digits, '-', '_' and '=')",
            )
        })?);
        let jwk: Jwk = serde_json::from_slice(&json).map_err(|e| {
            invalid(format!(
                "the decoded input is not the JWK JSON that sqooler writes ({:?} error at line \
                 {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        for (member, value, expected) in [
            ("kty", &jwk.kty, "OKP"),
            ("crv", &jwk.crv, "Ed25519"),
            ("alg", &jwk.alg, "EdDSA"),
        ] {
            if value.as_deref().is_some_and(|v| v != expected) {
                return Err(invalid(format!(
                    "the JWK's {member} is not \"{expected}\": sqooler keys are Ed25519"
                )));
            }
        }
        let (Some(d), Some("sign")) = (&jwk.d, jwk.key_ops.as_deref()) else {
            return Err(invalid(
                "this JWK has no private key (no \"d\", or key_ops is not \"sign\"): it looks \
                 like a public key; import needs the private-key string from `sqoolerkey`",
            ));
        };
        let kid = jwk
            .kid
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid("the JWK has no \"kid\""))?;
        let x = jwk.x.ok_or_else(|| invalid("the JWK has no \"x\""))?;
        let seed = decode_32(d, "d")?;
        let public = *decode_32(&x, "x")?;
        let derived = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        if derived != public {
            return Err(invalid(
                "the private key \"d\" does not derive the public key \"x\": the string is \
                 corrupt or was edited. Nothing was imported",
            ));
        }
        Ok(PrivateKey { kid, public, seed })
    }

    /// The 32-byte Ed25519 seed (RFC 8032 private key), for handing to the token.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }
}

fn decode_32(value: &str, member: &str) -> Result<Zeroizing<[u8; 32]>, Error> {
    let bytes = Zeroizing::new(
        URL_SAFE_LENIENT
            .decode(value)
            .map_err(|_| invalid(format!("the JWK's \"{member}\" is not base64url")))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(invalid(format!(
            "the JWK's \"{member}\" is {} bytes long; an Ed25519 key is 32 bytes",
            bytes.len()
        )));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

/// The public JWK exactly as sqooler stores it (`public_jwk.model_dump_json()`): pydantic's
/// member order, no whitespace, padded base64url `x`, `"d": null`.
pub fn public_jwk(kid: &str, public: &[u8; 32]) -> String {
    let x = URL_SAFE_LENIENT.encode(public);
    // serde_json escapes strings the way pydantic-core does (both write UTF-8 unescaped).
    let kid = serde_json::Value::String(kid.to_owned());
    format!(
        r#"{{"x":"{x}","key_ops":"verify","kid":{kid},"d":null,"kty":"OKP","alg":"EdDSA","crv":"Ed25519"}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config string as sqooler 0.9 writes it (made with `create_jwk_pair("kid1")`).
    const CONFIG: &str = "eyJ4IjoicEhjQ1JuZi1FeFlSb3lLUEgzYzVtamtjaTA2RFMwNHY1TmxxU1pvb0lCRT0iLCJrZXlfb3BzIjoic2lnbiIsImtpZCI6ImtpZDEiLCJkIjoiSXhLTzZVVjFha251VWYyNTRiOGtwYnVUZ0JMNmxjVS1iaTVnRUs2Zm9ZQT0iLCJrdHkiOiJPS1AiLCJhbGciOiJFZERTQSIsImNydiI6IkVkMjU1MTkifQ==";
    /// sqooler's `public_jwk.model_dump_json()` for the same key.
    const PUBLIC: &str = r#"{"x":"pHcCRnf-ExYRoyKPH3c5mjkci06DS04v5NlqSZooIBE=","key_ops":"verify","kid":"kid1","d":null,"kty":"OKP","alg":"EdDSA","crv":"Ed25519"}"#;

    fn encode(json: &str) -> String {
        URL_SAFE_LENIENT.encode(json)
    }

    fn json_of(config: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_LENIENT.decode(config).expect("b64")).expect("json")
    }

    #[test]
    fn sqooler_config_string_round_trips_to_its_public_jwk() {
        let key = PrivateKey::from_config_str(&format!("{CONFIG}\n")).expect("parses");
        assert_eq!(key.kid, "kid1");
        assert_eq!(public_jwk(&key.kid, &key.public), PUBLIC);
        let debug = format!("{key:?}");
        assert!(!debug.contains("seed") && !debug.contains(&hex::encode(key.seed())));
    }

    #[test]
    fn a_d_that_does_not_derive_x_is_refused() {
        let mut jwk = json_of(CONFIG);
        let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        jwk["x"] = URL_SAFE_LENIENT
            .encode(other.verifying_key().to_bytes())
            .into();
        let err = PrivateKey::from_config_str(&encode(&jwk.to_string())).expect_err("mismatch");
        assert!(err.to_string().contains("does not derive"), "{err}");
    }

    #[test]
    fn malformed_input_is_refused_without_echo() {
        let secretish = "SECRETSECRET";
        let mut jwk = json_of(CONFIG);
        jwk["kid"] = serde_json::json!(7);
        let cases = [
            String::new(),
            format!("{secretish}!!"),
            encode(&format!("{{\"x\": \"{secretish}\"")),
            encode(&jwk.to_string()),
            encode(&format!(
                r#"{{"x":"{secretish}","key_ops":"verify","kid":"k","d":null}}"#
            )),
            encode(&format!(
                r#"{{"x":"{secretish}","key_ops":"sign","kid":"k","d":"{secretish}"}}"#
            )),
            encode(&format!(
                r#"{{"x":"{secretish}","key_ops":"sign","kid":"k","d":"{secretish}","crv":"P-256"}}"#
            )),
        ];
        for case in cases {
            let err = PrivateKey::from_config_str(&case).expect_err("refused");
            let message = err.to_string();
            assert!(!message.contains(secretish), "{message}");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{message}");
        }
    }
}
