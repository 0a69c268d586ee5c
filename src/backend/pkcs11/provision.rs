//! Creates keys inside the token: generated there as token objects, sensitive and
//! non-extractable, with a label (the key id) and a random `CKA_ID`. Nothing here can create a
//! key that the agent would refuse.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::Session;

use super::ckr::classify;
use super::discover::{ED25519_PARAMS, P256_PARAMS};
use crate::error::Error;
use crate::key::Algorithm;

/// Whether [`generate`] made a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Generated {
    /// The key was generated.
    Created,
    /// A key with this label existed and `exists_ok` was set; nothing was changed.
    AlreadyExists,
}

/// Generates a key of `algorithm` labelled `label`. When any object already carries that label
/// the token is not touched: with `exists_ok` that is success, otherwise an error.
pub fn generate(
    session: &Session,
    algorithm: Algorithm,
    label: &str,
    exists_ok: bool,
) -> Result<Generated, Error> {
    if label.is_empty() {
        return Err(Error::InvalidArgument(
            "the key id must not be empty".into(),
        ));
    }
    if label_exists(session, label)? {
        if exists_ok {
            return Ok(Generated::AlreadyExists);
        }
        return Err(already_exists(label));
    }
    let id = session.generate_random_vec(16).map_err(classify)?;
    let common = |extra: &[Attribute]| {
        let mut template = vec![
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        template.extend_from_slice(extra);
        template
    };
    let private = common(&[
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ]);
    match algorithm {
        Algorithm::Ed25519 | Algorithm::EcdsaP256Sha256 => {
            let (mechanism, params) = if algorithm == Algorithm::Ed25519 {
                (Mechanism::EccEdwardsKeyPairGen, ED25519_PARAMS)
            } else {
                (Mechanism::EccKeyPairGen, P256_PARAMS)
            };
            let public = common(&[
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(params.to_vec()),
            ]);
            session
                .generate_key_pair(&mechanism, &public, &private)
                .map_err(classify)?;
        }
        Algorithm::HmacSha256 => {
            let mut template = private;
            template.extend([
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen(32.into()),
            ]);
            session
                .generate_key(&Mechanism::GenericSecretKeyGen, &template)
                .map_err(classify)?;
        }
    }
    Ok(Generated::Created)
}

fn label_exists(session: &Session, label: &str) -> Result<bool, Error> {
    let existing = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(classify)?;
    Ok(!existing.is_empty())
}

fn already_exists(label: &str) -> Error {
    Error::FailedPrecondition(format!(
        "a key with id '{label}' already exists on the token; it is never overwritten"
    ))
}

/// Stores `secret` (the UTF-8 bytes of an SWT3 signing secret) as a sensitive, non-extractable
/// HMAC key labelled `label`. The copy handed to the token is wiped once the call returns.
pub fn import_hmac(session: &Session, label: &str, secret: &[u8]) -> Result<(), Error> {
    if label.is_empty() {
        return Err(Error::InvalidArgument(
            "the key id must not be empty".into(),
        ));
    }
    if secret.is_empty() {
        return Err(Error::InvalidArgument("the secret is empty".into()));
    }
    if label_exists(session, label)? {
        return Err(already_exists(label));
    }
    let id = session.generate_random_vec(16).map_err(classify)?;
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id),
        Attribute::Value(secret.to_vec()),
    ];
    let result = session.create_object(&template);
    for attribute in &mut template {
        if let Attribute::Value(bytes) = attribute {
            zeroize::Zeroize::zeroize(bytes);
        }
    }
    result.map(|_| ()).map_err(classify)
}
