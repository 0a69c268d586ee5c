//! The key-version commands over any [`KeyAdmin`]: `signet keys rotate|versions|set-primary|
//! disable|destroy --version`.
//!
//! A key id names a ring of versions on the token: the object labelled `id` is version 1 (every
//! key made before versions existed), the object labelled `id#n` is version n. What a version
//! may do is kept on the object itself: `CKA_SIGN` (may sign) and `CKA_VERIFY` (may verify; on
//! the public-key object for asymmetric keys). The **primary** version is the highest one that
//! may sign; `rotate` and `set-primary` leave exactly one such version, making the state on the
//! token unambiguous for every replica. A YubiHSM cannot change an object's capabilities: there
//! the highest version is primary, and only `rotate` and `destroy --version` change a ring.

use crate::backend::admin::{KeyAdmin, KeyInfo};
use crate::error::Error;
use crate::key::{split_label, version_label, Algorithm};
use crate::keys::{check_created, undo_create};
use crate::public_key::PublicKey;

/// What a version of a key does, as its flags on the token say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The highest version that may sign: it signs.
    Primary,
    /// May sign but is not the highest such version (left by a tool other than Signet's, or
    /// an older version on a YubiHSM): served for verification.
    SignCapable,
    /// May verify only: served for verification.
    VerifyOnly,
    /// May neither sign nor verify: not served.
    Disabled,
}

impl State {
    /// How `keys versions` writes it.
    pub fn name(self) -> &'static str {
        match self {
            State::Primary => "primary",
            State::SignCapable => "verify (may sign, not primary)",
            State::VerifyOnly => "verify-only",
            State::Disabled => "disabled",
        }
    }
}

/// One version of a key on the token.
#[derive(Debug, Clone)]
pub struct Version {
    /// The version number.
    pub version: u32,
    /// The object label (`id` or `id#n`).
    pub label: String,
    /// What it does.
    pub state: State,
    /// The object as `keys list` reports it.
    pub info: KeyInfo,
}

/// The versions of key `id` on the token, lowest first; [`Error::NotOnToken`] when it has none.
pub fn ring(admin: &dyn KeyAdmin, id: &str) -> Result<Vec<Version>, Error> {
    let mut keys: Vec<(u32, KeyInfo)> = admin
        .list()?
        .into_iter()
        .filter(|k| k.algorithm.is_ok())
        .filter_map(|k| {
            let (ring, version) = split_label(k.id.as_deref()?);
            (ring == id).then_some((version, k))
        })
        .collect();
    if keys.is_empty() {
        return Err(Error::NotOnToken(id.to_owned()));
    }
    keys.sort_by_key(|(v, _)| *v);
    let primary = keys.iter().rev().find(|(_, k)| k.may_sign).map(|(v, _)| *v);
    Ok(keys
        .into_iter()
        .map(|(version, info)| Version {
            version,
            label: version_label(id, version),
            state: match (Some(version) == primary, info.may_sign, info.may_verify) {
                (true, _, _) => State::Primary,
                (false, true, _) => State::SignCapable,
                (false, false, true) => State::VerifyOnly,
                (false, false, false) => State::Disabled,
            },
            info,
        })
        .collect())
}

/// What `rotate` made.
#[derive(Debug)]
pub struct Rotated {
    /// The new version's number.
    pub version: u32,
    /// Whether it is the primary now (not `--stage`).
    pub primary: bool,
    /// Its public key (asymmetric keys).
    pub public_key: Option<PublicKey>,
}

/// Generates version n+1 of `id` inside the HSM (same type, the same flags and read-back
/// checks as `keys generate`) and makes it primary, demoting the others to verify-only; with
/// `stage`, adds it verify-only and leaves the primary as it is.
pub fn rotate(admin: &dyn KeyAdmin, id: &str, stage: bool) -> Result<Rotated, Error> {
    let versions = ring(admin, id)?;
    let algorithm = same_algorithm(id, &versions)?;
    if stage && admin.fixed_usage() {
        return Err(Error::FailedPrecondition(
            "a YubiHSM cannot stage a version: its objects' capabilities never change, and the \
             highest version is primary as soon as it exists"
                .into(),
        ));
    }
    let version = versions.last().map_or(1, |v| v.version) + 1;
    let label = version_label(id, version);
    admin.generate(algorithm, &label)?;
    check_created(admin, &label).map_err(|e| undo_create(admin, &label, e))?;
    if stage {
        admin
            .set_usage(&label, false, true)
            .map_err(|e| undo_create(admin, &label, e))?;
    } else if !admin.fixed_usage() {
        // The new version may sign and is the highest: primary already. The others stop
        // signing; an agent that still signs with one is refused by the token, re-reads its
        // keys and signs with the new version.
        for old in versions.iter().filter(|v| v.info.may_sign) {
            admin.set_usage(&old.label, false, old.info.may_verify || old.info.may_sign)?;
        }
    }
    let public_key = match algorithm {
        Algorithm::HmacSha256 => None,
        _ => Some(admin.public_key(&label)?),
    };
    Ok(Rotated {
        version,
        primary: !stage,
        public_key,
    })
}

/// Makes version `n` of `id` the primary: it may sign and verify, and every other version that
/// may sign becomes verify-only (in that order, so the key always has a primary).
pub fn set_primary(admin: &dyn KeyAdmin, id: &str, n: u32) -> Result<(), Error> {
    let versions = ring(admin, id)?;
    let target = find(id, &versions, n)?;
    if target.state == State::Primary {
        return Ok(());
    }
    admin.set_usage(&target.label, true, true)?;
    for other in versions
        .iter()
        .filter(|v| v.version != n && v.info.may_sign)
    {
        admin.set_usage(&other.label, false, true)?;
    }
    Ok(())
}

/// Disables version `n` of `id`: no signing, no verifying (the object stays on the token, and
/// `set-primary` brings it back). The primary cannot be disabled: make another version primary
/// first.
pub fn disable(admin: &dyn KeyAdmin, id: &str, n: u32) -> Result<(), Error> {
    let versions = ring(admin, id)?;
    let target = find(id, &versions, n)?;
    if target.state == State::Primary {
        return Err(primary_in_use(id, n, "disabled"));
    }
    admin.set_usage(&target.label, false, false)
}

/// Destroys version `n` of `id` (its key object and public-key object); returns how many
/// objects went. The primary of a ring with other versions cannot be destroyed on a token
/// whose flags can change (make another primary first); on a YubiHSM the next highest version
/// becomes primary.
pub fn destroy(admin: &dyn KeyAdmin, id: &str, n: u32) -> Result<usize, Error> {
    let versions = ring(admin, id)?;
    let target = find(id, &versions, n)?;
    if target.state == State::Primary && versions.len() > 1 && !admin.fixed_usage() {
        return Err(primary_in_use(id, n, "destroyed"));
    }
    admin.destroy(&target.label)
}

fn find<'a>(id: &str, versions: &'a [Version], n: u32) -> Result<&'a Version, Error> {
    versions
        .iter()
        .find(|v| v.version == n)
        .ok_or_else(|| Error::NotOnToken(version_label(id, n)))
}

fn primary_in_use(id: &str, n: u32, what: &str) -> Error {
    Error::FailedPrecondition(format!(
        "version {n} of key '{}' is its primary (it signs) and cannot be {what}; make another \
         version primary first (`signet keys set-primary` or `signet keys rotate`)",
        id.escape_debug()
    ))
}

fn same_algorithm(id: &str, versions: &[Version]) -> Result<Algorithm, Error> {
    let mut algorithms = versions
        .iter()
        .filter_map(|v| v.info.algorithm.clone().ok());
    let first = algorithms
        .next()
        .ok_or_else(|| Error::NotOnToken(id.to_owned()))?;
    if algorithms.any(|a| a != first) {
        return Err(Error::FailedPrecondition(format!(
            "the versions of key '{}' are not all of one type; rotate cannot choose",
            id.escape_debug()
        )));
    }
    Ok(first)
}

/// `keys versions`: a table of the versions.
pub fn table(versions: &[Version]) -> String {
    let mut out = format!(
        "{:<8} {:<34} {:<12} {:<10} {:<6} {:<7} STATE\n",
        "VERSION", "LABEL", "TYPE", "ORIGIN", "SIGN", "VERIFY"
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for v in versions {
        out.push_str(&format!(
            "{:<8} {:<34} {:<12} {:<10} {:<6} {:<7} {}\n",
            v.version,
            v.label.escape_debug().to_string(),
            v.info.algorithm.as_ref().map_or("-", |a| a.name()),
            if v.info.local {
                "generated"
            } else {
                "imported"
            },
            yes_no(v.info.may_sign),
            yes_no(v.info.may_verify),
            v.state.name(),
        ));
    }
    out
}

/// `keys versions --json`.
pub fn json(versions: &[Version]) -> String {
    let rows: Vec<serde_json::Value> = versions
        .iter()
        .map(|v| {
            serde_json::json!({
                "version": v.version,
                "label": v.label,
                "kid": v.label,
                "type": v.info.algorithm.as_ref().ok().map(|a| a.name()),
                "state": match v.state {
                    State::Primary => "primary",
                    State::SignCapable | State::VerifyOnly => "verify",
                    State::Disabled => "disabled",
                },
                "may_sign": v.info.may_sign,
                "may_verify": v.info.may_verify,
                "local": v.info.local,
                "served": v.info.not_served.is_none(),
            })
        })
        .collect();
    format!("{}\n", serde_json::Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A token of HMAC key objects with the given (label, may sign, may verify), recording
    /// what the commands change.
    struct Token {
        keys: RefCell<Vec<(String, bool, bool)>>,
        calls: RefCell<Vec<String>>,
    }

    impl Token {
        fn new(keys: &[(&str, bool, bool)]) -> Self {
            Token {
                keys: RefCell::new(keys.iter().map(|(l, s, v)| ((*l).into(), *s, *v)).collect()),
                calls: RefCell::new(Vec::new()),
            }
        }
    }

    impl KeyAdmin for Token {
        fn list(&self) -> Result<Vec<KeyInfo>, Error> {
            Ok(self
                .keys
                .borrow()
                .iter()
                .map(|(label, sign, verify)| KeyInfo {
                    id: Some(label.clone()),
                    object_id: None,
                    algorithm: Ok(Algorithm::HmacSha256),
                    size_bits: Some(256),
                    sensitive: true,
                    extractable: false,
                    always_sensitive: true,
                    never_extractable: true,
                    local: true,
                    not_served: None,
                    refused: false,
                    signing: *sign,
                    selected: true,
                    may_sign: *sign,
                    may_verify: *verify,
                })
                .collect())
        }
        fn generate(&self, _: Algorithm, id: &str) -> Result<(), Error> {
            self.calls.borrow_mut().push(format!("generate {id}"));
            self.keys.borrow_mut().push((id.into(), true, true));
            Ok(())
        }
        fn import_hmac(&self, _: &str, _: &[u8]) -> Result<(), Error> {
            unreachable!()
        }
        fn import_ed25519(&self, _: &str, _: &[u8; 32], _: &[u8; 32]) -> Result<(), Error> {
            unreachable!()
        }
        fn public_key(&self, id: &str) -> Result<PublicKey, Error> {
            Err(Error::NotOnToken(id.into()))
        }
        fn sign(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, Error> {
            unreachable!()
        }
        fn destroy(&self, id: &str) -> Result<usize, Error> {
            self.calls.borrow_mut().push(format!("destroy {id}"));
            self.keys.borrow_mut().retain(|(l, _, _)| l != id);
            Ok(1)
        }
        fn set_usage(&self, label: &str, sign: bool, verify: bool) -> Result<(), Error> {
            self.calls
                .borrow_mut()
                .push(format!("{label} sign={sign} verify={verify}"));
            for key in self.keys.borrow_mut().iter_mut().filter(|k| k.0 == label) {
                (key.1, key.2) = (sign, verify);
            }
            Ok(())
        }
        fn fixed_usage(&self) -> bool {
            false
        }
    }

    fn states(token: &Token) -> Vec<(u32, State)> {
        ring(token, "w")
            .expect("ring")
            .iter()
            .map(|v| (v.version, v.state))
            .collect()
    }

    #[test]
    fn the_flags_on_the_token_are_the_state_and_the_highest_signer_is_primary() {
        let token = Token::new(&[
            ("w", true, false),
            ("w#2", false, true),
            ("w#3", false, false),
            ("other", true, true),
            ("w#02", true, true),
        ]);
        // "w#02" is not a version label: it is version 1 of the key "w#02".
        assert_eq!(
            states(&token),
            [
                (1, State::Primary),
                (2, State::VerifyOnly),
                (3, State::Disabled)
            ]
        );
        assert!(matches!(ring(&token, "none"), Err(Error::NotOnToken(_))));
    }

    #[test]
    fn rotate_adds_the_next_version_and_demotes_the_others_after_it_exists() {
        let token = Token::new(&[("w", true, true), ("w#2", false, true)]);
        let rotated = rotate(&token, "w", false).expect("rotate");
        assert_eq!((rotated.version, rotated.primary), (3, true));
        assert_eq!(
            *token.calls.borrow(),
            ["generate w#3", "w sign=false verify=true"]
        );
        assert_eq!(states(&token)[2], (3, State::Primary));
        let staged = rotate(&token, "w", true).expect("stage");
        assert_eq!((staged.version, staged.primary), (4, false));
        assert_eq!(
            states(&token)[2..],
            [(3, State::Primary), (4, State::VerifyOnly)]
        );
    }

    #[test]
    fn set_primary_promotes_first_and_the_primary_is_never_disabled_or_destroyed() {
        let token = Token::new(&[("w", false, true), ("w#2", true, true)]);
        set_primary(&token, "w", 1).expect("set-primary");
        assert_eq!(
            *token.calls.borrow(),
            ["w sign=true verify=true", "w#2 sign=false verify=true"]
        );
        for e in [disable(&token, "w", 1), destroy(&token, "w", 1).map(|_| ())] {
            let e = e.expect_err("the primary");
            assert!(e.to_string().contains("primary"), "{e}");
        }
        disable(&token, "w", 2).expect("disable");
        assert_eq!(states(&token), [(1, State::Primary), (2, State::Disabled)]);
        assert!(matches!(disable(&token, "w", 9), Err(Error::NotOnToken(_))));
        destroy(&token, "w", 2).expect("destroy");
        assert_eq!(states(&token), [(1, State::Primary)]);
    }
}
