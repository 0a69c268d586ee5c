//! The `signet keys` commands over any [`KeyAdmin`]: what each command does beyond the HSM call
//! (self-tests after import, the sqooler and SWT3 migrations) and how its results are printed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::backend::admin::{KeyAdmin, KeyInfo};
use crate::backend::yubihsm::discover::{format_id, KeyRef};
use crate::error::Error;
use crate::key::Algorithm;
use crate::public_key::PublicKey;
use crate::secret::Secret;
use crate::sqooler;

/// The message every imported key signs once, to prove the token holds what was imported.
const SELF_TEST_MESSAGE: &[u8] = b"signet import self-test";

/// Generates a key and checks, reading the flags back, that the agent will serve it. Returns
/// the public key for asymmetric keys. With `exists_ok`, one existing key of the same type that
/// the agent accepts is success and left untouched.
pub fn generate(
    admin: &dyn KeyAdmin,
    algorithm: Algorithm,
    id: &str,
    exists_ok: bool,
) -> Result<Option<PublicKey>, Error> {
    match admin.generate(algorithm, id) {
        Ok(()) => check_created(admin, id).map_err(|e| undo_create(admin, id, e))?,
        Err(Error::AlreadyExists(_)) if exists_ok => {
            let existing = the_key(admin, id)?;
            if existing.algorithm != Ok(algorithm) || existing.refused {
                return Err(Error::FailedPrecondition(format!(
                    "a key with id '{}' exists but is not a key of type {} that the agent would \
                     serve{}",
                    id.escape_debug(),
                    algorithm.name(),
                    existing
                        .not_served
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default()
                )));
            }
        }
        Err(e) => return Err(e),
    }
    match algorithm {
        Algorithm::HmacSha256 => Ok(None),
        _ => admin.public_key(id).map(Some),
    }
}

/// The one key labelled `id` (or with that YubiHSM object id) that may sign or verify.
pub fn the_key(admin: &dyn KeyAdmin, id: &str) -> Result<KeyInfo, Error> {
    let mut matching: Vec<KeyInfo> = admin
        .list()?
        .into_iter()
        .filter(|k| {
            (k.id.as_deref() == Some(id)
                || k.object_id
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(id)))
                // A verify-only version (after a rotation) is still the key this id names.
                && (k.signing || (k.algorithm.is_ok() && k.may_verify))
        })
        .collect();
    match matching.len() {
        0 => Err(Error::NotOnToken(id.to_owned())),
        1 => Ok(matching.remove(0)),
        n => Err(Error::FailedPrecondition(format!(
            "{n} signing keys carry the label '{}'; manage them with the HSM vendor's tool, by \
             handle or CKA_ID",
            id.escape_debug()
        ))),
    }
}

/// Reads a new key's flags back from the token: a token that ignored part of the template
/// (left the key extractable, say) must not leave a key behind that the agent would refuse.
pub(crate) fn check_created(admin: &dyn KeyAdmin, id: &str) -> Result<(), Error> {
    let key = the_key(admin, id)?;
    if key.refused {
        return Err(Error::FailedPrecondition(format!(
            "the token did not create the key as asked: {}",
            key.not_served.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Removes a key whose creation check failed; if even that fails, the error tells the
/// operator to remove it.
pub(crate) fn undo_create(admin: &dyn KeyAdmin, id: &str, error: Error) -> Error {
    match admin.destroy(id) {
        Ok(_) => error,
        Err(cleanup) => still_on_token(id, error, cleanup),
    }
}

fn still_on_token(id: &str, error: Error, cleanup: Error) -> Error {
    Error::FailedPrecondition(format!(
        "{error}. Removing the key again failed too ({cleanup}): key '{}' is still on the \
         token; remove it with `signet keys destroy`",
        id.escape_debug()
    ))
}

/// Imports an SWT3 signing secret as an HMAC-SHA256 key, then checks that the token's HMAC of
/// a test message equals the HMAC computed with the secret. On any failure the key is destroyed
/// again, so a key that cannot serve SWT3 is never left behind.
pub fn import_hmac(admin: &dyn KeyAdmin, id: &str, secret: &Secret) -> Result<(), Error> {
    let bytes = secret.expose().as_bytes();
    admin.import_hmac(id, bytes)?;
    let check = check_created(admin, id).and_then(|()| admin.sign(id, SELF_TEST_MESSAGE));
    let check = check.and_then(|tag| {
        let mut mac = Hmac::<Sha256>::new_from_slice(bytes)
            .map_err(|e| Error::Internal(format!("HMAC key: {e}")))?;
        mac.update(SELF_TEST_MESSAGE);
        mac.verify_slice(&tag).map_err(|_| {
            Error::Internal(
                "the token's HMAC does not match the secret's: the token stored something else"
                    .into(),
            )
        })
    });
    let Err(e) = check else { return Ok(()) };
    Err(match (e, admin.destroy(id)) {
        (e, Err(cleanup)) => still_on_token(id, e, cleanup),
        (Error::KeySizeRange, Ok(_)) => Error::FailedPrecondition(format!(
            "the token stored the {}-byte secret but refuses to sign with it \
             (CKR_KEY_SIZE_RANGE): it accepts no HMAC-SHA256 key this short (SoftHSM2 needs at \
             least 32 bytes, while SWT3 allows 16-character secrets). Nothing was imported. \
             Create a 64-hex-character secret as SWT3 recommends (for example \
             `openssl rand -hex 32`), give it to your verifiers, and import that",
            bytes.len()
        )),
        (e, Ok(_)) => e,
    })
}

/// Imports a spooler's Ed25519 key from its sqooler config string under the id `id`, which
/// must be sqooler's `kid` (the agent publishes the key id as the JWK `kid`). Signs a test
/// message with the token and verifies it with sqooler's public key before returning; on any
/// failure the key is destroyed again.
pub fn import_sqooler(
    admin: &dyn KeyAdmin,
    id: Option<&str>,
    key: &sqooler::PrivateKey,
) -> Result<(), Error> {
    let id = id.unwrap_or(&key.kid);
    if id != key.kid {
        return Err(Error::InvalidArgument(format!(
            "--id '{}' differs from the key's sqooler kid '{}'. Signet publishes a key's id as \
             its JWK kid, and sqooler's verifiers find the key by kid: leave out --id (or pass \
             the kid) so nothing changes for them",
            id.escape_debug(),
            key.kid.escape_debug()
        )));
    }
    admin.import_ed25519(id, key.seed(), &key.public)?;
    let check = check_created(admin, id).and_then(|()| admin.sign(id, SELF_TEST_MESSAGE));
    let check = check.and_then(|signature| {
        let public = ed25519_dalek::VerifyingKey::from_bytes(&key.public)
            .map_err(|e| Error::Internal(format!("sqooler public key: {e}")))?;
        let signature = ed25519_dalek::Signature::from_slice(&signature)
            .map_err(|e| Error::Internal(format!("token signature: {e}")))?;
        public
            .verify_strict(SELF_TEST_MESSAGE, &signature)
            .map_err(|_| {
                Error::Internal(
                    "the token's signature does not verify with sqooler's public key: the token \
                     stored something else"
                        .into(),
                )
            })
    });
    check.map_err(|e| undo_create(admin, id, e))
}

/// The output formats of `signet keys public`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicFormat {
    /// The JWK with `kid`, `alg` and `key_ops`, as `GetPublicKey` returns it.
    Jwk,
    /// SubjectPublicKeyInfo in PEM.
    Pem,
    /// SubjectPublicKeyInfo in DER (binary).
    Der,
    /// The raw key: 32 bytes (Ed25519) or the 65-byte uncompressed point (P-256) (binary).
    Raw,
    /// The JWK exactly as sqooler stores a public key (Ed25519 only).
    Sqooler,
}

impl PublicFormat {
    /// Every format with its name, for the command line.
    pub const ALL: [(&'static str, PublicFormat); 5] = [
        ("jwk", PublicFormat::Jwk),
        ("pem", PublicFormat::Pem),
        ("der", PublicFormat::Der),
        ("raw", PublicFormat::Raw),
        ("sqooler", PublicFormat::Sqooler),
    ];

    /// Whether the output is binary (and should not go to a terminal).
    pub fn is_binary(self) -> bool {
        matches!(self, PublicFormat::Der | PublicFormat::Raw)
    }
}

/// The public key of `id` in `format`; text formats end with a newline.
pub fn public(admin: &dyn KeyAdmin, id: &str, format: PublicFormat) -> Result<Vec<u8>, Error> {
    let key = admin.public_key(id)?;
    Ok(match format {
        PublicFormat::Jwk => format!("{}\n", key.jwk(id)).into_bytes(),
        PublicFormat::Pem => key.pem()?.into_bytes(),
        PublicFormat::Der => key.spki_der()?,
        PublicFormat::Raw => key.raw(),
        PublicFormat::Sqooler => {
            let raw: [u8; 32] = key.raw().try_into().map_err(|_| {
                Error::FailedPrecondition(format!(
                    "key '{}' is a {} key; sqooler keys are Ed25519",
                    id.escape_debug(),
                    key.algorithm().name()
                ))
            })?;
            format!("{}\n", sqooler::public_jwk(id, &raw)).into_bytes()
        }
    })
}

/// The size column: the curve, or the key length.
fn size_of(key: &KeyInfo) -> String {
    match (&key.algorithm, key.size_bits) {
        (Ok(Algorithm::Ed25519), _) => "Ed25519".into(),
        (Ok(Algorithm::EcdsaP256Sha256), _) => "P-256".into(),
        (Ok(Algorithm::MlDsa65), _) => "ML-DSA-65".into(),
        (_, Some(bits)) => format!("{bits} bits"),
        _ => "-".into(),
    }
}

fn type_of(key: &KeyInfo) -> &'static str {
    match &key.algorithm {
        Ok(algorithm) => algorithm.name(),
        Err(_) => "unsupported",
    }
}

/// The key version its label names (`id#n`: n; any other label: 1).
fn version_of(key: &KeyInfo) -> u32 {
    key.id
        .as_deref()
        .map_or(1, |l| crate::key::split_label(l).1)
}

/// The id as printed: control characters and quotes escaped, so a label cannot play tricks
/// with the operator's terminal.
fn id_of(key: &KeyInfo) -> String {
    key.id
        .as_deref()
        .map_or_else(|| "<no label>".into(), |id| id.escape_debug().to_string())
}

/// The entries of `backend.keys` that name no key on the token (by label, or by object id on
/// a YubiHSM): `signet serve` refuses to start while any is listed.
pub fn missing(keys: &[KeyInfo], wanted: Option<&[String]>) -> Vec<String> {
    // The rule `signet serve` applies: on a YubiHSM, `0x` and four hex digits is an object
    // id; anything else (and everything on a PKCS#11 token) is a label.
    let names = |key: &KeyInfo, entry: &str| match (KeyRef::parse(entry), &key.object_id) {
        (KeyRef::Id(id), Some(object_id)) => *object_id == format_id(id),
        // A key id names every version of the key (`id`, `id#2`, …).
        _ => key.id.as_deref().map(|l| crate::key::split_label(l).0) == Some(entry),
    };
    wanted
        .unwrap_or_default()
        .iter()
        .filter(|entry| !keys.iter().any(|key| names(key, entry)))
        .cloned()
        .collect()
}

/// Why a key named in `backend.keys` is reported by `keys list` without being on the token.
const MISSING: &str = "listed in backend.keys, but not on the token";

/// `keys list`: a table of the keys, why each unserved one is not served, the keys listed in
/// `backend.keys` that are `missing`, and which of these keep the agent from starting.
pub fn list_table(keys: &[KeyInfo], missing: &[String]) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut rows = vec![[
        "ID".to_owned(),
        "TYPE".into(),
        "SIZE".into(),
        "SENSITIVE".into(),
        "EXTRACTABLE".into(),
        "ORIGIN".into(),
        "VERSION".into(),
        "SIGN".into(),
        "VERIFY".into(),
        "SERVED".into(),
    ]];
    for key in keys {
        rows.push([
            id_of(key),
            type_of(key).into(),
            size_of(key),
            yes_no(key.sensitive).into(),
            yes_no(key.extractable).into(),
            if key.local { "generated" } else { "imported" }.into(),
            version_of(key).to_string(),
            yes_no(key.may_sign).into(),
            yes_no(key.may_verify).into(),
            yes_no(key.not_served.is_none()).into(),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if keys.is_empty() {
        out.push_str("(no private or secret keys on this token)\n");
    }
    for key in keys {
        if let Some(why) = &key.not_served {
            out.push_str(&format!("\n{}: not served: {why}\n", id_of(key)));
        }
    }
    for name in missing {
        out.push_str(&format!("\n{}: {MISSING}\n", name.escape_debug()));
    }
    let blocking: Vec<String> = keys
        .iter()
        .filter(|k| k.blocks_start())
        .map(id_of)
        .chain(missing.iter().map(|name| name.escape_debug().to_string()))
        .collect();
    if !blocking.is_empty() {
        out.push_str(&format!(
            "\n`signet serve` refuses to start with this token and configuration because of: \
             {}. Destroy or fix these keys, or list the keys to serve in backend.keys.\n",
            blocking.join(", ")
        ));
    }
    out
}

/// `keys list --json`: one object per key, then one per `missing` key (`"present": false`).
pub fn list_json(keys: &[KeyInfo], missing: &[String]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| {
            serde_json::json!({
                "id": key.id,
                "present": true,
                "object_id": key.object_id,
                "type": key.algorithm.as_ref().ok().map(|a| a.name()),
                "size": size_of(key),
                "sensitive": key.sensitive,
                "extractable": key.extractable,
                "always_sensitive": key.always_sensitive,
                "never_extractable": key.never_extractable,
                "local": key.local,
                "version": version_of(key),
                "may_sign": key.may_sign,
                "may_verify": key.may_verify,
                "served": key.not_served.is_none(),
                "blocks_agent_start": key.blocks_start(),
                "not_served_reason": key.not_served,
            })
        })
        .chain(missing.iter().map(|name| {
            serde_json::json!({
                "id": name,
                "present": false,
                "served": false,
                "blocks_agent_start": true,
                "not_served_reason": MISSING,
            })
        }))
        .collect();
    format!("{}\n", serde_json::Value::Array(keys))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::error::{HsmError, HsmFault};

    fn found(label: &str, object_id: Option<&str>) -> KeyInfo {
        KeyInfo {
            id: Some(label.into()),
            object_id: object_id.map(str::to_owned),
            algorithm: Ok(Algorithm::Ed25519),
            size_bits: None,
            sensitive: true,
            extractable: false,
            always_sensitive: true,
            never_extractable: true,
            local: true,
            not_served: None,
            refused: false,
            signing: true,
            selected: true,
            may_sign: true,
            may_verify: true,
        }
    }

    #[test]
    fn missing_keys_are_named_by_the_rule_serve_applies() {
        let wanted = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        // PKCS#11: labels only, even ones that look like object ids.
        let token = [found("ed", None), found("0x0042", None)];
        assert!(missing(&token, Some(&wanted(&["ed", "0x0042"]))).is_empty());
        assert_eq!(missing(&token, Some(&wanted(&["gone"]))), ["gone"]);
        assert!(missing(&token, None).is_empty());
        // YubiHSM: `0x` and four hex digits is an object id, compared as such; `0X…` a label.
        let device = [found("ed", Some("0x00ab")), found("0x0065", Some("0x0001"))];
        assert!(missing(&device, Some(&wanted(&["ed", "0x00ab", "0x00AB"]))).is_empty());
        assert_eq!(
            missing(&device, Some(&wanted(&["0X00AB", "0x0065"]))),
            ["0X00AB", "0x0065"]
        );
    }

    /// A token that fails where a real HSM might: on import, by signing with other bytes, or
    /// by refusing to destroy.
    #[derive(Default)]
    struct FakeToken {
        refuse_import: bool,
        /// Signing fails with a short-key error instead of returning zeros.
        refuse_short_key: bool,
        refuse_destroy: bool,
        created: RefCell<Vec<String>>,
        destroyed: RefCell<Vec<String>>,
    }

    impl KeyAdmin for FakeToken {
        fn list(&self) -> Result<Vec<KeyInfo>, Error> {
            Ok(self
                .created
                .borrow()
                .iter()
                .map(|id| KeyInfo {
                    id: Some(id.clone()),
                    object_id: None,
                    algorithm: Ok(Algorithm::Ed25519),
                    size_bits: None,
                    sensitive: true,
                    extractable: false,
                    always_sensitive: false,
                    never_extractable: false,
                    local: false,
                    not_served: None,
                    refused: false,
                    signing: true,
                    selected: true,
                    may_sign: true,
                    may_verify: true,
                })
                .collect())
        }
        fn generate(&self, _: Algorithm, _: &str) -> Result<(), Error> {
            Ok(())
        }
        fn import_hmac(&self, id: &str, _: &[u8]) -> Result<(), Error> {
            self.import(id)
        }
        fn import_ed25519(&self, id: &str, _: &[u8; 32], _: &[u8; 32]) -> Result<(), Error> {
            self.import(id)
        }
        fn public_key(&self, id: &str) -> Result<PublicKey, Error> {
            Err(Error::NotOnToken(id.into()))
        }
        fn sign(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, Error> {
            if self.refuse_short_key {
                return Err(Error::KeySizeRange);
            }
            Ok(vec![0; 64])
        }
        fn destroy(&self, id: &str) -> Result<usize, Error> {
            if self.refuse_destroy {
                return Err(HsmError::new(
                    HsmFault::Other,
                    "C_DestroyObject",
                    "CKR_ACTION_PROHIBITED",
                )
                .into());
            }
            self.created.borrow_mut().retain(|k| k != id);
            self.destroyed.borrow_mut().push(id.into());
            Ok(1)
        }
        fn set_usage(&self, _: &str, _: bool, _: bool) -> Result<(), Error> {
            Ok(())
        }
        fn fixed_usage(&self) -> bool {
            false
        }
    }

    impl FakeToken {
        fn import(&self, id: &str) -> Result<(), Error> {
            if self.refuse_import {
                return Err(HsmError::new(
                    HsmFault::Other,
                    "C_CreateObject",
                    "CKR_TEMPLATE_INCONSISTENT",
                )
                .into());
            }
            self.created.borrow_mut().push(id.into());
            Ok(())
        }
    }

    fn sqooler_key() -> sqooler::PrivateKey {
        use base64::Engine;
        let seed = [5u8; 32];
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let b64 = base64::engine::general_purpose::URL_SAFE;
        let json = serde_json::json!({
            "x": b64.encode(public), "key_ops": "sign", "kid": "k", "d": b64.encode(seed),
        });
        sqooler::PrivateKey::from_config_str(&b64.encode(json.to_string())).expect("key")
    }

    #[test]
    fn a_token_that_cannot_import_ed25519_is_reported_and_nothing_is_left() {
        let token = FakeToken {
            refuse_import: true,
            ..FakeToken::default()
        };
        let err = import_sqooler(&token, None, &sqooler_key()).expect_err("refused");
        assert!(err.to_string().contains("C_CreateObject"), "{err}");
        assert!(token.destroyed.borrow().is_empty(), "nothing was created");
    }

    #[test]
    fn an_imported_key_that_signs_wrongly_is_destroyed() {
        let token = FakeToken::default();
        let err = import_sqooler(&token, None, &sqooler_key()).expect_err("bad signature");
        assert!(err.to_string().contains("does not verify"), "{err}");
        assert_eq!(*token.destroyed.borrow(), ["k"]);

        let secret = Secret::new("0123456789abcdef0123456789abcdef".into());
        let err = import_hmac(&token, "h", &secret).expect_err("bad HMAC");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert_eq!(*token.destroyed.borrow(), ["k", "h"]);
    }

    #[test]
    fn a_short_hmac_key_is_explained_and_destroyed() {
        let token = FakeToken {
            refuse_short_key: true,
            ..FakeToken::default()
        };
        let secret = Secret::new("test-signing-key".into());
        let err = import_hmac(&token, "short", &secret).expect_err("short");
        let message = err.to_string();
        assert!(
            message.contains("16-byte") && message.contains("64-hex"),
            "{message}"
        );
        assert!(!message.contains("test-signing-key"), "{message}");
        assert_eq!(*token.destroyed.borrow(), ["short"]);
    }

    #[test]
    fn a_key_that_cannot_be_removed_after_a_failed_import_is_reported() {
        let token = FakeToken {
            refuse_destroy: true,
            ..FakeToken::default()
        };
        let err = import_sqooler(&token, None, &sqooler_key()).expect_err("bad signature");
        let message = err.to_string();
        assert!(message.contains("does not verify"), "{message}");
        assert!(
            message.contains("key 'k' is still on the token"),
            "{message}"
        );
        assert!(message.contains("signet keys destroy"), "{message}");
    }
}
