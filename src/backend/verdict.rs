//! [`Verdict`]: whether the agent serves a key a backend found, and why not. Every backend
//! decides it with its own rules (PKCS#11 flags, YubiHSM capabilities) and reports it the same.

use crate::public_key::PublicKey;

/// Whether the agent serves a key found on the token.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Served, with its public key (asymmetric keys only).
    Served(Option<PublicKey>),
    /// Not a key the agent can sign with (no label, unsupported type, signing not allowed:
    /// `CKA_SIGN` false, or no signing capability on a YubiHSM). The agent skips it unless the
    /// configuration names it.
    Ignored(String),
    /// Not a signing key, and a signing key carries the same label: the label means that
    /// one, so this object is skipped even when the configuration names the label.
    Unrelated(String),
    /// A signing key the agent must not serve (Tier 4 rule: extractable, or exportable under
    /// wrap; ambiguous label; missing public key). The agent refuses to start while it is
    /// selected.
    Refused(String),
}

impl Verdict {
    /// The reason the key is not served, or `None` when it is.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Served(_) => None,
            Verdict::Ignored(why) | Verdict::Unrelated(why) | Verdict::Refused(why) => Some(why),
        }
    }
}
