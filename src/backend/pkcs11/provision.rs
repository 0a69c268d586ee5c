//! Creates and destroys keys inside the token, and sets what a key version may do. Keys are
//! token objects, private, sensitive, non-extractable and usable for signing and verifying only
//! (no derive, decrypt, unwrap, encrypt, wrap), with
//! a label (the key id) and a random `CKA_ID`; the commands read the flags back after creation
//! (see `crate::keys`). An existing label is never overwritten.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, MlDsaParameterSetType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroize;

use super::ckr::classify;
use super::discover::{self, ED25519_PARAMS, P256_PARAMS};
use crate::error::Error;
use crate::key::Algorithm;

/// Generates a key of `algorithm` labelled `label` inside the token.
pub fn generate(session: &Session, algorithm: Algorithm, label: &str) -> Result<(), Error> {
    let id = claim_label(session, label)?;
    let private = private_template(label, &id);
    match algorithm {
        Algorithm::Ed25519 | Algorithm::EcdsaP256Sha256 => {
            let (mechanism, params) = if algorithm == Algorithm::Ed25519 {
                (Mechanism::EccEdwardsKeyPairGen, ED25519_PARAMS)
            } else {
                (Mechanism::EccKeyPairGen, P256_PARAMS)
            };
            let public = public_template(label, &id, params, None);
            session
                .generate_key_pair(&mechanism, &public, &private)
                .map_err(classify)?;
        }
        Algorithm::MlDsa65 => {
            // PKCS#11 3.2: the parameter set goes in the public-key template; the token copies
            // it to the private key.
            let mut public = public_common(label, &id);
            public.push(Attribute::ParameterSet(
                MlDsaParameterSetType::ML_DSA_65.into(),
            ));
            session
                .generate_key_pair(&Mechanism::MlDsaKeyPairGen, &public, &private)
                .map_err(classify)?;
        }
        Algorithm::HmacSha256 => {
            let mut template = private;
            template.extend([
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen(32.into()),
            ]);
            template.extend(secret_only_sign());
            session
                .generate_key(&Mechanism::GenericSecretKeyGen, &template)
                .map_err(classify)?;
        }
    }
    Ok(())
}

/// Stores `secret` (the UTF-8 bytes of an SWT3 signing secret) as an HMAC key labelled `label`.
/// The copy handed to the token is wiped once the call returns.
pub fn import_hmac(session: &Session, label: &str, secret: &[u8]) -> Result<(), Error> {
    if secret.is_empty() {
        return Err(Error::InvalidArgument("the secret is empty".into()));
    }
    let id = claim_label(session, label)?;
    let mut template = private_template(label, &id);
    template.extend([
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Value(secret.to_vec()),
    ]);
    template.extend(secret_only_sign());
    create_and_wipe(session, template).map(|_| ())
}

/// Stores an Ed25519 key pair labelled `label`: the private key from its 32-byte seed (RFC 8032
/// "private key"), and the public key object with `public` as its point. The caller has checked
/// that `seed` derives `public`. The seed's copy handed to the token is wiped afterwards.
pub fn import_ed25519(
    session: &Session,
    label: &str,
    seed: &[u8; 32],
    public: &[u8; 32],
) -> Result<(), Error> {
    let id = claim_label(session, label)?;
    let mut point = vec![0x04, 0x20];
    point.extend_from_slice(public);
    let mut public_object = public_template(label, &id, ED25519_PARAMS, Some(point));
    public_object.extend([
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC_EDWARDS),
    ]);
    let public_handle = session.create_object(&public_object).map_err(classify)?;
    let mut template = private_template(label, &id);
    template.extend([
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::EcParams(ED25519_PARAMS.to_vec()),
        Attribute::Value(seed.to_vec()),
    ]);
    match create_and_wipe(session, template) {
        Ok(_) => Ok(()),
        Err(e) => {
            // Leave no half-imported key behind.
            if let Err(cleanup) = session.destroy_object(public_handle) {
                tracing::warn!(error = %cleanup, key = label, "removing the public half failed");
            }
            Err(e)
        }
    }
}

/// Destroys the private or secret key labelled `label` and its public-key object. Refuses when
/// the label is ambiguous, so an operator never destroys a key they did not mean.
pub fn destroy(session: &Session, label: &str) -> Result<usize, Error> {
    let found = discover::find_keys(session)?;
    let matching: Vec<_> = found
        .iter()
        .filter(|k| k.label.as_deref() == Some(label) && k.is_managed())
        .collect();
    let key = match matching[..] {
        [] => return Err(Error::NotOnToken(label.to_owned())),
        [key] => key,
        _ => {
            return Err(Error::FailedPrecondition(format!(
                "{} signing keys carry the label '{}'; destroy them with the HSM vendor's \
                 tool, by handle or CKA_ID",
                matching.len(),
                label.escape_debug()
            )))
        }
    };
    let public = match key.algorithm {
        Ok(Algorithm::HmacSha256) => None,
        _ => discover::public_object_of(session, key, label)?,
    };
    session.destroy_object(key.handle).map_err(classify)?;
    if let Some(public) = public {
        session.destroy_object(public).map_err(classify)?;
        return Ok(2);
    }
    Ok(1)
}

/// Sets `CKA_SIGN` of the private or secret key labelled `label`, and `CKA_VERIFY` of the
/// secret key or of the private key's public-key object: a version's state (primary,
/// verify-only, disabled). Refuses an ambiguous label, like [`destroy`].
pub fn set_usage(session: &Session, label: &str, sign: bool, verify: bool) -> Result<(), Error> {
    let found = discover::find_keys(session)?;
    let matching: Vec<_> = found
        .iter()
        .filter(|k| k.label.as_deref() == Some(label) && k.is_managed())
        .collect();
    let key = match matching[..] {
        [] => return Err(Error::NotOnToken(label.to_owned())),
        [key] => key,
        _ => {
            return Err(Error::FailedPrecondition(format!(
                "{} keys carry the label '{}'",
                matching.len(),
                label.escape_debug()
            )))
        }
    };
    if key.secret {
        session
            .update_attributes(
                key.handle,
                &[Attribute::Sign(sign), Attribute::Verify(verify)],
            )
            .map_err(classify)?;
        return Ok(());
    }
    session
        .update_attributes(key.handle, &[Attribute::Sign(sign)])
        .map_err(classify)?;
    if let Some(public) = discover::public_object_of(session, key, label)? {
        session
            .update_attributes(public, &[Attribute::Verify(verify)])
            .map_err(classify)?;
    }
    Ok(())
}

/// Checks that `label` is usable and free, and returns a fresh random `CKA_ID` for it.
fn claim_label(session: &Session, label: &str) -> Result<Vec<u8>, Error> {
    if label.is_empty() {
        return Err(Error::InvalidArgument(
            "the key id must not be empty".into(),
        ));
    }
    if label.len() > crate::signer::MAX_KEY_ID_BYTES {
        return Err(Error::InvalidArgument(format!(
            "the key id is {} bytes long; at most {} are allowed",
            label.len(),
            crate::signer::MAX_KEY_ID_BYTES
        )));
    }
    let existing = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(classify)?;
    if !existing.is_empty() {
        return Err(Error::AlreadyExists(label.to_owned()));
    }
    session.generate_random_vec(16).map_err(classify)
}

fn private_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        // Nothing but signing: no other use is left to the token's defaults.
        Attribute::Derive(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
    ]
}

/// What a secret key may not do beyond [`private_template`]'s limits. It may verify: the
/// agent checks HMAC tags inside the HSM (`C_Verify`) for `Verify` and `VerifyFingerprint`.
fn secret_only_sign() -> [Attribute; 3] {
    [
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Verify(true),
    ]
}

fn public_template(
    label: &str,
    id: &[u8],
    params: &[u8],
    point: Option<Vec<u8>>,
) -> Vec<Attribute> {
    let mut template = public_common(label, id);
    template.push(Attribute::EcParams(params.to_vec()));
    template.extend(point.map(Attribute::EcPoint));
    template
}

/// The public-key object's attributes every key type shares: a token object that verifies and
/// does nothing else.
fn public_common(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Derive(false),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
    ]
}

/// `C_CreateObject`, then wipes every `CKA_VALUE` in the template, whatever the outcome.
fn create_and_wipe(session: &Session, mut template: Vec<Attribute>) -> Result<ObjectHandle, Error> {
    let result = session.create_object(&template);
    for attribute in &mut template {
        if let Attribute::Value(bytes) = attribute {
            bytes.zeroize();
        }
    }
    result.map_err(classify)
}
