//! Finds the signing keys on a token, classifies them, and applies the Tier 4 rule: a served
//! private or secret key must be `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`.
//!
//! Only attributes that describe a key are read (class, type, label, id, flags, curve, and the
//! public point of the public-key object); never `CKA_VALUE` or any other key material.

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::ckr::classify;
use crate::error::Error;
use crate::key::{Algorithm, KeyDescriptor};
use crate::public_key::PublicKey;

/// DER of the OID 1.2.840.10045.3.1.7 (prime256v1 / P-256).
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the OID 1.3.101.112 (id-Ed25519, RFC 8410).
pub const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER of PrintableString "edwards25519", the other form PKCS#11 3.0 allows.
const ED25519_PARAMS_NAME: &[u8] = b"\x13\x0cedwards25519";

/// A private or secret key object found on the token, with what decides whether it is served.
#[derive(Debug, Clone)]
pub struct FoundKey {
    /// The object handle.
    pub handle: ObjectHandle,
    /// `CKA_LABEL`, if set and UTF-8.
    pub label: Option<String>,
    /// `CKA_ID`.
    pub id: Vec<u8>,
    /// The algorithm, or why the key's type is not supported.
    pub algorithm: Result<Algorithm, String>,
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_SIGN`.
    pub can_sign: bool,
}

impl FoundKey {
    /// Why the agent would refuse to serve this key, or `None` if it would serve it.
    pub fn refusal(&self) -> Option<String> {
        let name = self.label.as_deref().unwrap_or("<no label>");
        if let Err(why) = &self.algorithm {
            return Some(format!("key '{name}': {why}"));
        }
        if self.extractable || !self.sensitive {
            let mut flags = Vec::new();
            if self.extractable {
                flags.push("CKA_EXTRACTABLE is true");
            }
            if !self.sensitive {
                flags.push("CKA_SENSITIVE is false");
            }
            return Some(format!(
                "key '{name}' is refused: {}. Signet serves only keys whose material can never \
                 leave the HSM (sensitive and non-extractable, the SWT3 Tier 4 rule); generate or \
                 import the key again with `signet keys generate` and destroy this one",
                flags.join(" and ")
            ));
        }
        if !self.can_sign {
            return Some(format!("key '{name}' is refused: CKA_SIGN is false"));
        }
        None
    }
}

/// Lists every private and secret key object on the token.
pub fn find_keys(session: &Session) -> Result<Vec<FoundKey>, Error> {
    let mut found = Vec::new();
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
        for handle in session
            .find_objects(&[Attribute::Class(class)])
            .map_err(classify)?
        {
            found.push(inspect(session, handle)?);
        }
    }
    found.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(found)
}

fn inspect(session: &Session, handle: ObjectHandle) -> Result<FoundKey, Error> {
    let attributes = session
        .get_attributes(
            handle,
            &[
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::KeyType,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Sign,
                AttributeType::EcParams,
            ],
        )
        .map_err(classify)?;
    let mut key = FoundKey {
        handle,
        label: None,
        id: Vec::new(),
        algorithm: Err("has no CKA_KEY_TYPE".into()),
        sensitive: false,
        // Assume the worst until the token says otherwise.
        extractable: true,
        can_sign: false,
    };
    let mut key_type = None;
    let mut params = None;
    for attribute in attributes {
        match attribute {
            Attribute::Label(bytes) => key.label = String::from_utf8(bytes).ok(),
            Attribute::Id(id) => key.id = id,
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Sensitive(b) => key.sensitive = b,
            Attribute::Extractable(b) => key.extractable = b,
            Attribute::Sign(b) => key.can_sign = b,
            Attribute::EcParams(p) => params = Some(p),
            _ => {}
        }
    }
    if let Some(t) = key_type {
        key.algorithm = algorithm_of(t, params.as_deref());
    }
    Ok(key)
}

fn algorithm_of(key_type: KeyType, params: Option<&[u8]>) -> Result<Algorithm, String> {
    if key_type == KeyType::EC_EDWARDS {
        match params {
            Some(p) if p == ED25519_PARAMS || p == ED25519_PARAMS_NAME => Ok(Algorithm::Ed25519),
            _ => Err("is an Edwards-curve key on a curve other than Ed25519".into()),
        }
    } else if key_type == KeyType::EC {
        match params {
            Some(P256_PARAMS) => Ok(Algorithm::EcdsaP256Sha256),
            _ => Err("is an EC key on a curve other than P-256".into()),
        }
    } else if key_type == KeyType::GENERIC_SECRET || key_type == KeyType::SHA256_HMAC {
        Ok(Algorithm::HmacSha256)
    } else {
        Err(format!(
            "has key type {key_type}, which Signet does not serve"
        ))
    }
}

/// Reads the public key that belongs to an asymmetric private key: the public-key object with
/// the same label (and the same `CKA_ID`, when the private key has one).
pub fn public_key_of(session: &Session, key: &FoundKey, label: &str) -> Result<PublicKey, Error> {
    let algorithm = key
        .algorithm
        .clone()
        .map_err(|why| Error::Startup(format!("key '{label}' {why}")))?;
    let mut template = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if !key.id.is_empty() {
        template.push(Attribute::Id(key.id.clone()));
    }
    let handles = session.find_objects(&template).map_err(classify)?;
    let [handle] = handles[..] else {
        return Err(Error::Startup(format!(
            "key '{label}': expected exactly one public-key object with the same label and \
             CKA_ID, found {}",
            handles.len()
        )));
    };
    let point = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(classify)?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| {
            Error::Startup(format!(
                "key '{label}': the public-key object has no CKA_EC_POINT"
            ))
        })?;
    PublicKey::from_ec_point(algorithm, &point)
        .map_err(|e| Error::Startup(format!("key '{label}': {e}")))
}

/// A key the agent will serve, with its handle.
pub struct ServedKey {
    /// What callers see.
    pub descriptor: KeyDescriptor,
    /// The private or secret key object.
    pub handle: ObjectHandle,
}

/// Chooses the keys to serve: the `wanted` labels, or (when `None`) every signing key
/// (`CKA_SIGN`) of a supported type. Fails, naming every offending key, when a key to be served breaks the Tier 4 rule,
/// when a wanted key is missing, or when a label is ambiguous.
pub fn select(
    session: &Session,
    found: &[FoundKey],
    wanted: Option<&[String]>,
) -> Result<Vec<ServedKey>, Error> {
    let mut problems = Vec::new();
    let mut served = Vec::new();
    let candidates: Vec<&FoundKey> = match wanted {
        Some(labels) => {
            for label in labels {
                if !found
                    .iter()
                    .any(|k| k.label.as_deref() == Some(label.as_str()))
                {
                    problems.push(format!(
                        "key '{label}' (listed in backend.keys) is not on the token"
                    ));
                }
            }
            found
                .iter()
                .filter(|k| k.label.as_ref().is_some_and(|l| labels.contains(l)))
                .collect()
        }
        None => found
            .iter()
            .filter(|k| match (&k.label, &k.algorithm) {
                (label, Ok(_)) if !k.can_sign => {
                    tracing::info!(
                        key = label.as_deref().unwrap_or("<no label>"),
                        "not served: CKA_SIGN is false"
                    );
                    false
                }
                (Some(_), Ok(_)) => true,
                (label, Err(why)) => {
                    tracing::info!(
                        key = label.as_deref().unwrap_or("<no label>"),
                        "not served: {why}"
                    );
                    false
                }
                (None, Ok(_)) => {
                    tracing::info!("a key without CKA_LABEL is not served: it cannot be addressed");
                    false
                }
            })
            .collect(),
    };
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for label in candidates.iter().filter_map(|k| k.label.as_deref()) {
        *counts.entry(label).or_default() += 1;
    }
    for (label, _) in counts.iter().filter(|(_, &n)| n > 1) {
        problems.push(format!(
            "key '{label}' is ambiguous: several private or secret keys carry this label"
        ));
    }
    for key in &candidates {
        let Some(label) = key.label.as_deref() else {
            continue;
        };
        if counts.get(label).copied().unwrap_or(0) > 1 {
            continue;
        }
        if let Some(refusal) = key.refusal() {
            problems.push(refusal);
            continue;
        }
        let Ok(algorithm) = key.algorithm.clone() else {
            continue;
        };
        let public_key = match algorithm {
            Algorithm::HmacSha256 => None,
            _ => match public_key_of(session, key, label) {
                Ok(pk) => Some(pk),
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            },
        };
        served.push(ServedKey {
            descriptor: KeyDescriptor {
                id: label.to_owned(),
                algorithm,
                public_key,
            },
            handle: key.handle,
        });
    }
    if problems.is_empty() {
        Ok(served)
    } else {
        Err(Error::Startup(format!(
            "refusing to start, {} key problem(s):\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        )))
    }
}
