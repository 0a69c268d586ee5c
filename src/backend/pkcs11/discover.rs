//! Finds the signing keys on a token, classifies them, and applies the Tier 4 rule: a served
//! private or secret key must be `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`.
//!
//! Only attributes that describe a key are read (class, type, label, id, flags, curve, and the
//! public point of the public-key object); never `CKA_VALUE` or any other key material.

use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;

use super::ckr::classify;
pub use crate::backend::verdict::Verdict;
use crate::error::Error;
use crate::key::{split_label, Algorithm, KeyDescriptor};
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
    /// `CKA_VERIFY` (secret keys; a private key's is on its public-key object).
    pub can_verify: bool,
    /// `CKA_DERIVE`: a derivation mechanism may take the key as its base.
    pub derive: bool,
    /// Whether this is a secret (symmetric) key rather than a private key.
    pub secret: bool,
    /// `CKA_ALWAYS_SENSITIVE`: sensitive since it was created (false for imported keys).
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`: never extractable since it was created (false for imported
    /// keys).
    pub never_extractable: bool,
    /// `CKA_LOCAL`: generated inside the token rather than imported.
    pub local: bool,
    /// `CKA_VALUE_LEN` in bytes, for secret keys.
    pub value_len: Option<u64>,
}

impl FoundKey {
    /// A key of a type Signet signs with and that allows signing: the only keys Signet
    /// manages. Other objects that share a label (a decrypt-only AES key, say) are left alone.
    pub fn is_signing_key(&self) -> bool {
        self.algorithm.is_ok() && self.can_sign
    }

    /// A version of a key Signet manages: a supported type that may sign or verify, or any
    /// private key of a supported type (whose verify flag is on its public-key object). What
    /// competes for a label, and what the version commands work on.
    pub fn is_managed(&self) -> bool {
        self.algorithm.is_ok() && (self.can_sign || self.can_verify || !self.secret)
    }

    /// The key was once outside the HSM (imported, or made extractable or not sensitive at
    /// some point): `CKA_ALWAYS_SENSITIVE` or `CKA_NEVER_EXTRACTABLE` is false.
    pub fn ever_outside(&self) -> bool {
        !self.always_sensitive || !self.never_extractable
    }

    /// Why strict mode (`backend.require_generated`) refuses the key, if it does.
    pub fn strict_violation(&self) -> Option<String> {
        self.ever_outside().then(|| {
            format!(
                "backend.require_generated is set and this key was once outside the HSM \
                 (CKA_ALWAYS_SENSITIVE {}, CKA_NEVER_EXTRACTABLE {}: imported). Rotate to a \
                 version generated inside the HSM (`signet keys rotate`), then retire this one \
                 (`signet keys disable` or `signet keys destroy --version`)",
                self.always_sensitive, self.never_extractable
            )
        })
    }

    /// Why the key breaks the Tier 4 rule, or `None` if its material can never leave the HSM.
    pub fn tier4_violation(&self) -> Option<String> {
        let mut flags = Vec::new();
        if self.extractable {
            flags.push("CKA_EXTRACTABLE is true");
        }
        if !self.sensitive {
            flags.push("CKA_SENSITIVE is false");
        }
        // A derivation from a secret key (for example XOR with zeros, or extracting bits) can
        // produce an extractable copy of the secret; private keys derive only shared secrets.
        if self.secret && self.derive {
            flags.push("CKA_DERIVE is true on a secret key (a derivation could copy it out)");
        }
        if flags.is_empty() {
            return None;
        }
        Some(format!(
            "{}. Signet serves only keys whose material can never leave the HSM (sensitive, \
             non-extractable and, for secret keys, not derivable: the SWT3 Tier 4 rule); \
             generate or import the key again with `signet keys generate` or \
             `signet keys import-*` and destroy this one",
            flags.join(" and ")
        ))
    }
}

/// Decides, for each found key (in the same order), whether the agent serves it; `strict`
/// (`backend.require_generated`) refuses keys that were ever outside the HSM.
pub fn assess(session: &Session, found: &[FoundKey], strict: bool) -> Vec<Verdict> {
    // Only keys the agent could sign with compete for a label: a decrypt-only AES key that
    // shares a label with a signing key does not make it ambiguous.
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for key in found.iter().filter(|k| k.is_managed()) {
        if let Some(label) = key.label.as_deref() {
            *counts.entry(label).or_default() += 1;
        }
    }
    found
        .iter()
        .map(|key| {
            let Some(label) = key.label.as_deref() else {
                return Verdict::Ignored("has no CKA_LABEL, so it cannot be addressed".into());
            };
            let not_signing = match &key.algorithm {
                Err(why) => Some(why.clone()),
                Ok(_) if !key.is_managed() => Some("CKA_SIGN is false".to_owned()),
                Ok(_) if !key.can_sign && disabled(session, key, label) => {
                    Some("disabled: it may neither sign nor verify".to_owned())
                }
                Ok(_) => None,
            };
            if let Some(why) = not_signing {
                return match counts.get(label) {
                    Some(_) => Verdict::Unrelated(why),
                    None => Verdict::Ignored(why),
                };
            }
            let Ok(algorithm) = key.algorithm else {
                return Verdict::Ignored("unsupported".into());
            };
            if counts.get(label).copied().unwrap_or(0) > 1 {
                return Verdict::Refused("ambiguous: several signing keys carry this label".into());
            }
            if let Some(violation) = key.tier4_violation() {
                return Verdict::Refused(violation);
            }
            if let Some(violation) = strict.then(|| key.strict_violation()).flatten() {
                return Verdict::Refused(violation);
            }
            match algorithm {
                Algorithm::HmacSha256 => Verdict::Served(None),
                _ => match public_key_of(session, key, label) {
                    Ok(public_key) => Verdict::Served(Some(public_key)),
                    Err(e) => Verdict::Refused(e.to_string()),
                },
            }
        })
        .collect()
}

/// Whether a key that may not sign may not verify either: a secret key's `CKA_VERIFY`, or the
/// `CKA_VERIFY` of a private key's public-key object.
fn disabled(session: &Session, key: &FoundKey, label: &str) -> bool {
    if key.secret {
        return !key.can_verify;
    }
    !public_verify(session, key, label)
}

/// The `CKA_VERIFY` of a private key's public-key object (false when there is none).
pub fn public_verify(session: &Session, key: &FoundKey, label: &str) -> bool {
    let Ok(Some(handle)) = public_object_of(session, key, label) else {
        return false;
    };
    matches!(
        session
            .get_attributes(handle, &[AttributeType::Verify])
            .as_deref(),
        Ok([Attribute::Verify(true)])
    )
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
                AttributeType::Verify,
                AttributeType::Derive,
                AttributeType::Class,
                AttributeType::EcParams,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::ValueLen,
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
        can_verify: false,
        // Assume the worst until the token says otherwise.
        derive: true,
        secret: false,
        always_sensitive: false,
        never_extractable: false,
        local: false,
        value_len: None,
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
            Attribute::Verify(b) => key.can_verify = b,
            Attribute::Derive(b) => key.derive = b,
            Attribute::Class(c) => key.secret = c == ObjectClass::SECRET_KEY,
            Attribute::EcParams(p) => params = Some(p),
            Attribute::AlwaysSensitive(b) => key.always_sensitive = b,
            Attribute::NeverExtractable(b) => key.never_extractable = b,
            Attribute::Local(b) => key.local = b,
            // CK_ULONG is 32 bits on some platforms; widening is lossless everywhere.
            #[allow(clippy::unnecessary_cast)]
            Attribute::ValueLen(n) => key.value_len = Some(*n as u64),
            _ => {}
        }
    }
    if let Some(t) = key_type {
        key.algorithm = if t == KeyType::ML_DSA {
            ml_dsa_of(session, handle)
        } else {
            algorithm_of(t, params.as_deref())
        };
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

/// The algorithm of a `CKK_ML_DSA` key: ML-DSA-65 when its `CKA_PARAMETER_SET` says so. Read
/// apart from the other attributes, since only a PKCS#11 3.2 token knows this one.
fn ml_dsa_of(session: &Session, handle: ObjectHandle) -> Result<Algorithm, String> {
    let attributes = session
        .get_attributes(handle, &[AttributeType::ParameterSet])
        .map_err(|e| format!("is an ML-DSA key whose CKA_PARAMETER_SET cannot be read: {e}"))?;
    match attributes.first() {
        Some(Attribute::ParameterSet(set))
            if MlDsaParameterSetType::from(*set) == MlDsaParameterSetType::ML_DSA_65 =>
        {
            Ok(Algorithm::MlDsa65)
        }
        Some(Attribute::ParameterSet(set)) => Err(format!(
            "is an ML-DSA key with parameter set {}; Signet serves ML-DSA-65 only",
            MlDsaParameterSetType::from(*set)
        )),
        _ => Err("is an ML-DSA key without CKA_PARAMETER_SET".into()),
    }
}

/// Reads the public key that belongs to an asymmetric private key: the public-key object with
/// the same label (and the same `CKA_ID`, when the private key has one).
pub fn public_key_of(session: &Session, key: &FoundKey, label: &str) -> Result<PublicKey, Error> {
    let algorithm = key
        .algorithm
        .clone()
        .map_err(|why| Error::FailedPrecondition(why.to_string()))?;
    let handle = public_object_of(session, key, label)?.ok_or_else(|| {
        Error::FailedPrecondition(
            "there is no public-key object with the same label and CKA_ID".into(),
        )
    })?;
    if algorithm == Algorithm::MlDsa65 {
        let value = session
            .get_attributes(handle, &[AttributeType::Value])
            .map_err(classify)?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| {
                Error::FailedPrecondition("the public-key object has no CKA_VALUE".into())
            })?;
        return PublicKey::from_ml_dsa_65(&value)
            .map_err(|e| Error::FailedPrecondition(e.to_string()));
    }
    let point = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(classify)?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| {
            Error::FailedPrecondition("the public-key object has no CKA_EC_POINT".into())
        })?;
    PublicKey::from_ec_point(algorithm, &point)
        .map_err(|e| Error::FailedPrecondition(e.to_string()))
}

/// The public-key object paired with `key` (same label, same `CKA_ID` when set), if there is
/// exactly one; an error if there are several.
pub fn public_object_of(
    session: &Session,
    key: &FoundKey,
    label: &str,
) -> Result<Option<ObjectHandle>, Error> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if !key.id.is_empty() {
        template.push(Attribute::Id(key.id.clone()));
    }
    let handles = session.find_objects(&template).map_err(classify)?;
    match handles[..] {
        [] => Ok(None),
        [handle] => Ok(Some(handle)),
        _ => Err(Error::FailedPrecondition(format!(
            "{} public-key objects carry the same label and CKA_ID",
            handles.len()
        ))),
    }
}

/// A key the agent will serve, with its handle.
pub struct ServedKey {
    /// What callers see.
    pub descriptor: KeyDescriptor,
    /// The private or secret key object.
    pub handle: ObjectHandle,
    /// Its `CKA_ID`: with the label, what identifies the same key again after a reconnect.
    pub object_id: Vec<u8>,
}

/// Chooses the keys to serve: the `wanted` key ids (every version of each), or (when `None`)
/// every key [`assess`] does not ignore. Fails, naming every offending key, when a key to be
/// served is refused or when a wanted key is missing or ignored.
pub fn select(
    session: &Session,
    found: &[FoundKey],
    wanted: Option<&[String]>,
    strict: bool,
) -> Result<Vec<ServedKey>, Error> {
    let (served, problems) = choose(session, found, wanted, strict);
    crate::backend::verdict::served_unless(problems, served)
}

/// [`select`] without failing: the keys to serve, and the problems that would stop a start
/// (a re-scan logs them and serves the rest).
pub fn choose(
    session: &Session,
    found: &[FoundKey],
    wanted: Option<&[String]>,
    strict: bool,
) -> (Vec<ServedKey>, Vec<String>) {
    let mut problems = Vec::new();
    let ring_of = |key: &FoundKey| key.label.as_deref().map(|l| split_label(l).0.to_owned());
    if let Some(ids) = wanted {
        for id in ids {
            if !found
                .iter()
                .any(|k| ring_of(k).as_deref() == Some(id.as_str()))
            {
                problems.push(format!(
                    "key '{id}' (listed in backend.keys) is not on the token"
                ));
            }
        }
    }
    let mut served = Vec::new();
    for (key, verdict) in found.iter().zip(assess(session, found, strict)) {
        let name = key.label.as_deref().unwrap_or("<no label>");
        let is_wanted = match wanted {
            Some(ids) => ring_of(key).is_some_and(|id| ids.contains(&id)),
            None => true,
        };
        if !is_wanted {
            continue;
        }
        match verdict {
            Verdict::Served(public_key) => {
                let (Some(label), Ok(algorithm)) = (&key.label, &key.algorithm) else {
                    continue;
                };
                let (id, version) = split_label(label);
                served.push(ServedKey {
                    descriptor: KeyDescriptor {
                        id: id.to_owned(),
                        version,
                        algorithm: *algorithm,
                        public_key,
                        can_sign: key.can_sign,
                        // A served private key is not disabled: its public key verifies.
                        can_verify: key.can_verify || !key.secret,
                    },
                    handle: key.handle,
                    object_id: key.id.clone(),
                });
            }
            verdict => verdict.report_unserved(name, wanted.is_some(), &mut problems),
        }
    }
    (served, problems)
}
