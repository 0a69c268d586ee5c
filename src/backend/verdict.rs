//! [`Verdict`]: whether the agent serves a key a backend found, and why not. Every backend
//! decides it with its own rules (PKCS#11 flags, YubiHSM capabilities) and reports it the same
//! ([`Verdict::report_unserved`], [`served_unless`]).

use crate::error::Error;
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

    /// How `keys list` reports a key: why it is not served (`None` when it is), and whether it
    /// keeps `signet serve` from starting, given whether the configuration selects it and
    /// whether `backend.keys` is `listed` at all.
    pub fn as_listed(&self, selected: bool, listed: bool) -> (Option<String>, bool) {
        let not_served = match (self, selected) {
            (Verdict::Served(_), false) => Some("not listed in backend.keys".to_owned()),
            _ => self.reason().map(str::to_owned),
        };
        // A key named in backend.keys that cannot be served stops the agent too.
        let refused = match self {
            Verdict::Refused(_) => true,
            Verdict::Ignored(_) => listed && selected,
            Verdict::Served(_) | Verdict::Unrelated(_) => false,
        };
        (not_served, refused)
    }

    /// What start-up does with a selected key that is not served: logs why when it is merely
    /// not a key to sign with (ignored while `backend.keys` is absent, or unrelated), and adds a
    /// problem naming it to `problems` when it is refused, or ignored although `backend.keys`
    /// (`listed`) names it. Does nothing for a served key.
    pub fn report_unserved(self, name: &str, listed: bool, problems: &mut Vec<String>) {
        match (self, listed) {
            (Verdict::Served(_), _) => {}
            (Verdict::Ignored(why), false) | (Verdict::Unrelated(why), _) => {
                tracing::info!(key = name, "not served: {why}");
            }
            (Verdict::Ignored(why) | Verdict::Refused(why), _) => {
                problems.push(format!("key '{name}' is refused: {why}"));
            }
        }
    }
}

/// The keys start-up chose to serve, or (when there are `problems`) the error naming every one.
pub fn served_unless<T>(problems: Vec<String>, served: Vec<T>) -> Result<Vec<T>, Error> {
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
