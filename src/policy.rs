//! Who may do what: matches a caller to a configured client, checks its grant for the
//! operation and key, and applies its rate limit. `Sign`, `Fingerprint` and `Verify` are denied
//! unless granted (each on its own: a `verify` grant never allows signing, nor a `sign` grant
//! verifying); `GetPublicKey` and `ListKeys` are open to every caller. Denials never say whether
//! the key exists.
//!
//! Anonymous callers (plain TCP) may not verify, with any key: an HMAC check is a secret-key
//! operation, and for asymmetric keys a caller without an identity needs no agent (the public
//! key is open through `GetPublicKey`), while every verify the agent does is attributed and
//! audited.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::{self, ClientMatcher as Matcher, Operation};
use crate::error::Error;
use crate::identity::Identity;

/// The configured clients and their grants.
pub struct Policy {
    clients: Vec<Rule>,
}

struct Rule {
    name: String,
    matcher: Matcher,
    keys: Vec<String>,
    operations: Vec<Operation>,
    bucket: Option<Mutex<TokenBucket>>,
}

/// Whether `identity` is the caller a client's matcher names.
fn matches(matcher: &Matcher, identity: &Identity) -> bool {
    match (matcher, identity) {
        (Matcher::Uid(want), Identity::Unix { uid, .. }) => want == uid,
        (Matcher::Gid(want), Identity::Unix { gid, .. }) => want == gid,
        (Matcher::CertCn(want), Identity::Certificate { cn, .. }) => {
            cn.as_deref() == Some(want.as_str())
        }
        (Matcher::CertSan(want), Identity::Certificate { sans, .. }) => sans.contains(want),
        _ => false,
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Policy {
    /// The policy of the configured clients (checked when the configuration was loaded).
    pub fn new(clients: &[config::Client]) -> Self {
        let clients = clients
            .iter()
            .map(|c| {
                let bucket = c.rate_per_second.map(|rate| {
                    let burst = c.burst.map_or(rate.max(1.0), f64::from);
                    Mutex::new(TokenBucket {
                        rate,
                        burst,
                        tokens: burst,
                        at: Instant::now(),
                    })
                });
                Rule {
                    name: c.name.clone(),
                    matcher: c.matcher.clone(),
                    keys: c.keys.clone(),
                    operations: c.operations.clone(),
                    bucket,
                }
            })
            .collect::<Vec<Rule>>();
        // The most specific kind of rule decides: a uid before a gid (which a user can switch
        // with `sg`), a certificate CN before a SAN; within a kind, the first in the file.
        let mut clients = clients;
        clients.sort_by_key(|r| match r.matcher {
            Matcher::Uid(_) => 0,
            Matcher::Gid(_) => 1,
            Matcher::CertCn(_) => 2,
            Matcher::CertSan(_) => 3,
        });
        Policy { clients }
    }

    /// The name of the client `identity` matches, if any (for the audit log).
    pub fn client_of(&self, identity: &Identity) -> Option<String> {
        self.clients
            .iter()
            .find(|r| matches(&r.matcher, identity))
            .map(|r| r.name.clone())
    }

    /// Decides whether `identity` may do `operation` with `key_id`. Returns the name of the
    /// matching client, if any. Errors: `Unauthenticated` (no identity, for a signing
    /// operation), `PermissionDenied`, or `ResourceExhausted` (over the client's rate limit).
    pub fn authorize(
        &self,
        identity: &Identity,
        operation: Operation,
        key_id: &str,
    ) -> Result<Option<String>, Error> {
        let signing = matches!(
            operation,
            Operation::Sign | Operation::Fingerprint | Operation::Verify
        );
        if signing && *identity == Identity::Anonymous {
            return Err(Error::Unauthenticated(
                "this listener does not identify callers (plain TCP); sign, fingerprint and \
                 verify need a unix socket or a TLS client certificate"
                    .into(),
            ));
        }
        let rule = self.clients.iter().find(|r| matches(&r.matcher, identity));
        if let Some(rule) = rule {
            if let Some(bucket) = &rule.bucket {
                let mut bucket = bucket.lock().unwrap_or_else(|p| p.into_inner());
                if !bucket.take(Instant::now()) {
                    return Err(Error::ResourceExhausted(format!(
                        "client '{}' is over its rate limit of {} requests per second; retry \
                         with backoff",
                        rule.name, bucket.rate
                    )));
                }
            }
        }
        if !signing {
            return Ok(rule.map(|r| r.name.clone()));
        }
        let Some(rule) = rule else {
            return Err(Error::PermissionDenied(format!(
                "caller {identity} is not a configured client and may not {}",
                operation.name()
            )));
        };
        let key_granted = rule.keys.iter().any(|k| k == "*" || k == key_id);
        if !key_granted || !rule.operations.contains(&operation) {
            // The same answer whether or not the key exists.
            return Err(Error::PermissionDenied(format!(
                "client '{}' may not {} with key '{}'",
                rule.name,
                operation.name(),
                key_id.escape_debug()
            )));
        }
        Ok(Some(rule.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn client(name: &str, uid: u32, keys: &[&str], ops: &[Operation]) -> config::Client {
        config::Client {
            name: name.into(),
            matcher: Matcher::Uid(uid),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            operations: ops.to_vec(),
            rate_per_second: None,
            burst: None,
        }
    }

    fn unix(uid: u32) -> Identity {
        Identity::Unix {
            uid,
            gid: 100,
            pid: Some(1),
        }
    }

    #[test]
    fn grants_are_per_key_and_operation_and_denials_hide_existence() {
        let policy = Policy::new(&[client("spooler", 1000, &["ed"], &[Operation::Sign])]);
        assert_eq!(
            policy
                .authorize(&unix(1000), Operation::Sign, "ed")
                .expect("granted"),
            Some("spooler".into())
        );
        let other_key = policy.authorize(&unix(1000), Operation::Sign, "hmac");
        let missing_key = policy.authorize(&unix(1000), Operation::Sign, "no-such-key");
        for denied in [&other_key, &missing_key] {
            let e = denied.as_ref().expect_err("denied");
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        }
        let fp = policy.authorize(&unix(1000), Operation::Fingerprint, "ed");
        assert_eq!(
            fp.expect_err("not granted").kind(),
            ErrorKind::PermissionDenied
        );
        let stranger = policy.authorize(&unix(1001), Operation::Sign, "ed");
        assert_eq!(
            stranger.expect_err("stranger").kind(),
            ErrorKind::PermissionDenied
        );
        assert!(policy
            .authorize(&unix(1001), Operation::PublicKey, "ed")
            .is_ok());
        let anonymous = policy.authorize(&Identity::Anonymous, Operation::Sign, "ed");
        assert_eq!(
            anonymous.expect_err("anonymous").kind(),
            ErrorKind::Unauthenticated
        );
        assert!(policy
            .authorize(&Identity::Anonymous, Operation::List, "")
            .is_ok());
    }

    #[test]
    fn verify_and_sign_grants_are_separate_and_anonymous_callers_cannot_verify() {
        let policy = Policy::new(&[
            client("ingest", 2000, &["*"], &[Operation::Verify]),
            client(
                "witness",
                2001,
                &["*"],
                &[Operation::Fingerprint, Operation::Sign],
            ),
        ]);
        assert!(policy
            .authorize(&unix(2000), Operation::Verify, "hmac")
            .is_ok());
        for op in [Operation::Sign, Operation::Fingerprint] {
            let e = policy
                .authorize(&unix(2000), op, "hmac")
                .expect_err("a verify grant does not sign");
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        }
        let e = policy
            .authorize(&unix(2001), Operation::Verify, "hmac")
            .expect_err("a sign grant does not verify");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let e = policy
            .authorize(&Identity::Anonymous, Operation::Verify, "ed")
            .expect_err("anonymous");
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    }

    #[test]
    fn gid_and_certificate_rules_match_and_uid_comes_before_gid() {
        let mut by_gid = client("group", 0, &["*"], &[Operation::Sign]);
        by_gid.matcher = Matcher::Gid(100);
        let by_uid = client("person", 1000, &["ed"], &[Operation::Sign]);
        let mut by_cn = client("cn", 0, &["ed"], &[Operation::Fingerprint]);
        by_cn.matcher = Matcher::CertCn("witness-1".into());
        let mut by_san = client("san", 0, &["*"], &[Operation::Sign]);
        by_san.matcher = Matcher::CertSan("w.example".into());
        // Listed gid first: the uid rule still decides for uid 1000.
        let policy = Policy::new(&[by_gid, by_uid, by_san, by_cn]);
        assert_eq!(policy.client_of(&unix(1000)), Some("person".into()));
        assert!(policy
            .authorize(&unix(1000), Operation::Sign, "hmac")
            .is_err());
        assert_eq!(policy.client_of(&unix(1001)), Some("group".into()));
        let cert = Identity::Certificate {
            cn: Some("witness-1".into()),
            sans: vec!["w.example".into()],
        };
        assert_eq!(policy.client_of(&cert), Some("cn".into()), "CN before SAN");
        assert!(policy
            .authorize(&cert, Operation::Fingerprint, "ed")
            .is_ok());
        let san_only = Identity::Certificate {
            cn: None,
            sans: vec!["w.example".into()],
        };
        assert_eq!(policy.client_of(&san_only), Some("san".into()));
    }

    #[test]
    fn the_rate_limit_refuses_beyond_the_burst_and_refills() {
        let mut c = client("busy", 7, &["*"], &[Operation::Sign]);
        c.rate_per_second = Some(1000.0);
        c.burst = Some(5);
        let policy = Policy::new(&[c]);
        let results: Vec<bool> = (0..10)
            .map(|_| policy.authorize(&unix(7), Operation::Sign, "k").is_ok())
            .collect();
        assert!(results[..5].iter().all(|ok| *ok), "{results:?}");
        assert!(
            results.iter().filter(|ok| !**ok).count() >= 4,
            "{results:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            policy.authorize(&unix(7), Operation::Sign, "k").is_ok(),
            "refilled"
        );
    }
}
