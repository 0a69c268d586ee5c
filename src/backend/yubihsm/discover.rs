//! Finds the signing keys on a YubiHSM2, classifies them, and applies the Tier 4 rule: a key
//! whose capabilities allow export under wrap (`EXPORTABLE_UNDER_WRAP`) can leave the device
//! wrapped, so it is reported and refused like an extractable PKCS#11 key.
//!
//! Keys are addressed by their label (the `key_id`) or by their object id written `0x` and four
//! hex digits ([`KeyRef`]). Only object information and public keys are read, never key material.

use std::collections::BTreeMap;

use yubihsm::object::{self, Origin};
use yubihsm::{asymmetric, Capability, Client};

use super::classify;
use crate::backend::verdict::Verdict;
use crate::error::Error;
use crate::key::{split_label, Algorithm, KeyDescriptor};
use crate::public_key::PublicKey;

/// How a key is named: its label, or its object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// The object label (up to 40 bytes of UTF-8).
    Label(String),
    /// The object id, written `0x0042`.
    Id(u16),
}

impl KeyRef {
    /// `0x` and exactly four hex digits is an object id; anything else a label.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("0x") {
            Some(hex) if hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u16::from_str_radix(hex, 16).map_or_else(|_| KeyRef::Label(text.into()), KeyRef::Id)
            }
            _ => KeyRef::Label(text.to_owned()),
        }
    }

    /// Whether `key` is the key this names.
    pub fn matches(&self, key: &FoundKey) -> bool {
        match self {
            KeyRef::Label(label) => key.label.as_deref() == Some(label.as_str()),
            KeyRef::Id(id) => key.object_id == *id,
        }
    }
}

/// An object id as the key commands and the configuration write it.
pub fn format_id(object_id: u16) -> String {
    format!("0x{object_id:04x}")
}

/// An asymmetric or HMAC key object found on the device.
#[derive(Debug, Clone)]
pub struct FoundKey {
    /// The object id.
    pub object_id: u16,
    /// Asymmetric key or HMAC key.
    pub object_type: object::Type,
    /// The label, if not empty and UTF-8.
    pub label: Option<String>,
    /// The algorithm, or why the key's type is not supported.
    pub algorithm: Result<Algorithm, String>,
    /// The object's capabilities.
    pub capabilities: Capability,
    /// The device's sequence number of the object (see [`ServedKey::sequence`]).
    pub sequence: u8,
    /// Generated on the device (rather than imported or unwrapped).
    pub generated: bool,
    /// The key length in bytes, as the device reports it.
    pub length: u16,
}

impl FoundKey {
    /// The name the agent serves it under: the label, or the object id when it has none.
    pub fn name(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| format_id(self.object_id))
    }

    /// Whether the key's capabilities allow the signing operation of its algorithm.
    pub fn can_sign(&self) -> bool {
        self.algorithm
            .as_ref()
            .is_ok_and(|a| self.capabilities.contains(sign_capability(*a).0))
    }

    /// A key of a type Signet signs with whose capabilities allow signing.
    pub fn is_signing_key(&self) -> bool {
        self.algorithm.is_ok() && self.can_sign()
    }

    /// Whether the key may leave the device, wrapped under a wrap key.
    pub fn exportable(&self) -> bool {
        self.capabilities
            .contains(Capability::EXPORTABLE_UNDER_WRAP)
    }

    /// Why the key breaks the Tier 4 rule, or `None` if its material can never leave the HSM.
    pub fn tier4_violation(&self) -> Option<String> {
        self.exportable().then(|| {
            "its capabilities include EXPORTABLE_UNDER_WRAP (it can be exported under a wrap \
             key). Signet serves only keys whose material can never leave the HSM (the SWT3 \
             Tier 4 rule); generate or import the key again with `signet keys generate` or \
             `signet keys import-*` and destroy this one"
                .to_owned()
        })
    }
}

/// The capability that signs with a key of `algorithm`, and its name.
pub fn sign_capability(algorithm: Algorithm) -> (Capability, &'static str) {
    match algorithm {
        Algorithm::Ed25519 => (Capability::SIGN_EDDSA, "SIGN_EDDSA"),
        Algorithm::EcdsaP256Sha256 => (Capability::SIGN_ECDSA, "SIGN_ECDSA"),
        Algorithm::HmacSha256 => (Capability::SIGN_HMAC, "SIGN_HMAC"),
        // Never found on a YubiHSM ([`algorithm_of`] has no ML-DSA): nothing grants it.
        Algorithm::MlDsa65 => (Capability::all(), "none (the YubiHSM 2 has no ML-DSA)"),
    }
}

/// The capabilities of the authentication key the session opened with: a key is only
/// usable through it when both carry the signing capability.
pub fn auth_key_capabilities(client: &Client, auth_key: u16) -> Result<Capability, Error> {
    client
        .get_object_info(auth_key, object::Type::AuthenticationKey)
        .map(|info| info.capabilities)
        .map_err(|e| classify("Get Object Info (authentication key)", e))
}

/// Lists every asymmetric and HMAC key the session can see, sorted by name.
pub fn find_keys(client: &Client) -> Result<Vec<FoundKey>, Error> {
    let mut found = Vec::new();
    for object_type in [object::Type::AsymmetricKey, object::Type::HmacKey] {
        let entries = client
            .list_objects(&[object::Filter::Type(object_type)])
            .map_err(|e| classify("List Objects", e))?;
        for entry in entries {
            let info = client
                .get_object_info(entry.object_id, entry.object_type)
                .map_err(|e| classify("Get Object Info", e))?;
            found.push(inspect(&info));
        }
    }
    found.sort_by_key(|k| (k.name(), k.object_id));
    Ok(found)
}

fn inspect(info: &object::Info) -> FoundKey {
    let label = info
        .label
        .try_as_str()
        .ok()
        .filter(|l| !l.is_empty())
        .map(str::to_owned);
    FoundKey {
        object_id: info.object_id,
        object_type: info.object_type,
        label,
        algorithm: algorithm_of(info.algorithm),
        capabilities: info.capabilities,
        sequence: info.sequence,
        generated: info.origin == Origin::Generated,
        length: info.length,
    }
}

fn algorithm_of(algorithm: yubihsm::Algorithm) -> Result<Algorithm, String> {
    match algorithm {
        yubihsm::Algorithm::Asymmetric(asymmetric::Algorithm::Ed25519) => Ok(Algorithm::Ed25519),
        yubihsm::Algorithm::Asymmetric(asymmetric::Algorithm::EcP256) => {
            Ok(Algorithm::EcdsaP256Sha256)
        }
        yubihsm::Algorithm::Hmac(yubihsm::hmac::Algorithm::Sha256) => Ok(Algorithm::HmacSha256),
        other => Err(format!(
            "has algorithm {other:?}, which Signet does not serve"
        )),
    }
}

/// Decides, for each found key (in the same order), whether the agent serves it through a
/// session of authentication key `auth_key`.
/// `strict` (`backend.require_generated`) refuses keys that were not generated on the device.
pub fn assess(
    client: &Client,
    auth_key: u16,
    found: &[FoundKey],
    strict: bool,
) -> Result<Vec<Verdict>, Error> {
    let auth_capabilities = auth_key_capabilities(client, auth_key)?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for key in found.iter().filter(|k| k.is_signing_key()) {
        *counts.entry(key.name()).or_default() += 1;
    }
    Ok(found
        .iter()
        .map(|key| {
            let name = key.name();
            let not_signing = match &key.algorithm {
                Err(why) => Some(why.clone()),
                Ok(algorithm) if !key.can_sign() => Some(format!(
                    "its capabilities do not include {}",
                    sign_capability(*algorithm).1
                )),
                Ok(_) => None,
            };
            if let Some(why) = not_signing {
                return match counts.get(&name) {
                    Some(_) => Verdict::Unrelated(why),
                    None => Verdict::Ignored(why),
                };
            }
            let Ok(algorithm) = key.algorithm else {
                return Verdict::Ignored("unsupported".into());
            };
            if counts.get(&name).copied().unwrap_or(0) > 1 {
                return Verdict::Refused(
                    "ambiguous: several signing keys carry this label; select one by object id \
                     (0xNNNN) or relabel"
                        .into(),
                );
            }
            if key.label.is_some() && matches!(KeyRef::parse(&name), KeyRef::Id(_)) {
                return Verdict::Refused(
                    "its label looks like an object id (0xNNNN), which would be ambiguous".into(),
                );
            }
            if let Some(violation) = key.tier4_violation() {
                return Verdict::Refused(violation);
            }
            if strict && !key.generated {
                return Verdict::Refused(
                    "backend.require_generated is set and this key was imported (not generated \
                     on the YubiHSM). Rotate to a version generated on the device (`signet keys \
                     rotate`), then retire this one (`signet keys destroy --version`)"
                        .into(),
                );
            }
            let (needed, needed_name) = sign_capability(algorithm);
            if !auth_capabilities.contains(needed) {
                // The device would refuse every signature (InsufficientPermissions).
                return Verdict::Ignored(format!(
                    "the authentication key {} lacks {needed_name}, so the device would refuse \
                     to sign with it; give that key the capability, or use another",
                    format_id(auth_key)
                ));
            }
            match algorithm {
                Algorithm::HmacSha256 => Verdict::Served(None),
                _ => match public_key_of(client, key) {
                    Ok(public_key) => Verdict::Served(Some(public_key)),
                    Err(e) => Verdict::Refused(e.to_string()),
                },
            }
        })
        .collect())
}

/// Reads the public key of an asymmetric key.
pub fn public_key_of(client: &Client, key: &FoundKey) -> Result<PublicKey, Error> {
    let algorithm = key.algorithm.clone().map_err(Error::FailedPrecondition)?;
    let public = client
        .get_public_key(key.object_id)
        .map_err(|e| classify("Get Public Key", e))?;
    let bad = |why: &str| {
        Error::FailedPrecondition(format!(
            "the YubiHSM returned an invalid {} public key: {why}",
            algorithm.name()
        ))
    };
    match algorithm {
        Algorithm::Ed25519 => {
            let bytes: [u8; 32] = public
                .as_slice()
                .try_into()
                .map_err(|_| bad("not 32 bytes"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map(PublicKey::Ed25519)
                .map_err(|_| bad("not a point on the curve"))
        }
        Algorithm::EcdsaP256Sha256 => {
            // The device returns X ‖ Y without the SEC1 tag of an uncompressed point.
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(0x04);
            sec1.extend_from_slice(public.as_slice());
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map(PublicKey::P256)
                .map_err(|_| bad("not a point on P-256"))
        }
        Algorithm::HmacSha256 => Err(Error::FailedPrecondition(
            "an HMAC key has no public key".into(),
        )),
        Algorithm::MlDsa65 => Err(super::admin::no_ml_dsa()),
    }
}

/// A key the agent will serve.
#[derive(Debug, Clone)]
pub struct ServedKey {
    /// What callers see.
    pub descriptor: KeyDescriptor,
    /// The object id and type: with the label, what identifies it again after a reconnect.
    pub object_id: u16,
    /// Asymmetric key or HMAC key.
    pub object_type: object::Type,
    /// The device's sequence number of the object, raised each time an object is created at
    /// this id: a key destroyed and made again under the same id and label differs here.
    pub sequence: u8,
}

/// Whether the configuration selects `key`: `backend.keys` names its label or object id, or
/// is absent.
/// A key id in `backend.keys` selects every version of the key (`id`, `id#2`, …).
pub fn selected(key: &FoundKey, wanted: Option<&[String]>) -> bool {
    let ring = key.label.as_deref().map(|l| split_label(l).0);
    wanted.is_none_or(|refs| {
        refs.iter()
            .any(|r| KeyRef::parse(r).matches(key) || ring == Some(r.as_str()))
    })
}

/// Chooses the keys to serve: the `wanted` ones, or (when `None`) every key [`assess`] does
/// not ignore. Fails, naming every offending key, when a key to be served is refused or when
/// a wanted key is missing or ignored.
pub fn select(
    client: &Client,
    auth_key: u16,
    found: &[FoundKey],
    wanted: Option<&[String]>,
    strict: bool,
) -> Result<Vec<ServedKey>, Error> {
    let (served, problems) = choose(client, auth_key, found, wanted, strict)?;
    crate::backend::verdict::served_unless(problems, served)
}

/// [`select`] without failing on key problems: the keys to serve, and the problems that would
/// stop a start (a re-scan logs them and serves the rest). Fails only when the device does.
pub fn choose(
    client: &Client,
    auth_key: u16,
    found: &[FoundKey],
    wanted: Option<&[String]>,
    strict: bool,
) -> Result<(Vec<ServedKey>, Vec<String>), Error> {
    let mut problems = Vec::new();
    for reference in wanted.unwrap_or_default() {
        let key_ref = KeyRef::parse(reference);
        if !found.iter().any(|k| {
            key_ref.matches(k)
                || k.label.as_deref().map(|l| split_label(l).0) == Some(reference.as_str())
        }) {
            problems.push(format!(
                "key '{reference}' (listed in backend.keys) is not on the YubiHSM"
            ));
        }
    }
    let mut served = Vec::new();
    for (key, verdict) in found.iter().zip(assess(client, auth_key, found, strict)?) {
        if !selected(key, wanted) {
            continue;
        }
        let name = key.name();
        match verdict {
            Verdict::Served(public_key) => {
                let Ok(algorithm) = key.algorithm else {
                    continue;
                };
                let (id, version) = split_label(&name);
                served.push(ServedKey {
                    descriptor: KeyDescriptor {
                        id: id.to_owned(),
                        version,
                        algorithm,
                        public_key,
                        can_sign: true,
                        can_verify: true,
                    },
                    object_id: key.object_id,
                    object_type: key.object_type,
                    sequence: key.sequence,
                });
            }
            verdict => verdict.report_unserved(&name, wanted.is_some(), &mut problems),
        }
    }
    Ok((served, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_and_labels_are_told_apart() {
        assert_eq!(KeyRef::parse("0x0042"), KeyRef::Id(0x42));
        assert_eq!(KeyRef::parse("0xBEEF"), KeyRef::Id(0xbeef));
        for label in ["0x42", "0x00420", "ed", "0xzzzz", ""] {
            assert_eq!(KeyRef::parse(label), KeyRef::Label(label.into()));
        }
        assert_eq!(format_id(0x42), "0x0042");
    }

    #[test]
    fn export_under_wrap_breaks_tier4() {
        let key = FoundKey {
            object_id: 7,
            object_type: object::Type::AsymmetricKey,
            label: Some("ed".into()),
            algorithm: Ok(Algorithm::Ed25519),
            capabilities: Capability::SIGN_EDDSA | Capability::EXPORTABLE_UNDER_WRAP,
            sequence: 0,
            generated: true,
            length: 32,
        };
        assert!(key.is_signing_key());
        let why = key.tier4_violation().expect("refused");
        assert!(why.contains("EXPORTABLE_UNDER_WRAP"), "{why}");
        let fine = FoundKey {
            capabilities: Capability::SIGN_EDDSA,
            ..key
        };
        assert_eq!(fine.tier4_violation(), None);
        let no_sign = FoundKey {
            capabilities: Capability::SIGN_ECDSA,
            ..fine
        };
        assert!(!no_sign.is_signing_key());
    }
}
