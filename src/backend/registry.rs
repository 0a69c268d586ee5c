//! The served keys of a backend, by id and version: the one list the signer, `ListKeys` and the
//! backend itself read. Each backend builds it from the keys it found and checked on the token,
//! at start and at every re-scan, and swaps it whole ([`RegistryCell`]).
//!
//! A key id names a ring of versions. The **primary** version (the one that signs) is the
//! highest version the token lets sign; every served version the token lets verify is a
//! verifier. Disabled versions (neither sign nor verify) and destroyed ones are not in the
//! registry at all.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::key::KeyDescriptor;

/// The served keys, by id (sorted, so listings come out in order), each a ring of versions.
#[derive(Debug, Default)]
pub struct Registry {
    rings: BTreeMap<String, BTreeMap<u32, Arc<KeyDescriptor>>>,
}

impl Registry {
    /// A registry of `keys` (each (id, version) once: the backends refuse duplicate labels
    /// before this; a repeated one replaces the earlier).
    pub fn new(keys: impl IntoIterator<Item = KeyDescriptor>) -> Self {
        let mut rings: BTreeMap<String, BTreeMap<u32, Arc<KeyDescriptor>>> = BTreeMap::new();
        for key in keys {
            rings
                .entry(key.id.clone())
                .or_default()
                .insert(key.version, Arc::new(key));
        }
        Registry { rings }
    }

    /// The key `key_id` as it is listed: its primary version, or (when no version may sign)
    /// its highest served version.
    pub fn get(&self, key_id: &str) -> Option<&Arc<KeyDescriptor>> {
        let ring = self.rings.get(key_id)?;
        primary_of(ring).or_else(|| ring.values().next_back())
    }

    /// The primary version of `key_id`: the highest version the token lets sign. `None` when
    /// the key is not served or every served version is verify-only.
    pub fn primary(&self, key_id: &str) -> Option<&Arc<KeyDescriptor>> {
        primary_of(self.rings.get(key_id)?)
    }

    /// Version `version` of `key_id`, if it is served (primary or verify-only).
    pub fn version(&self, key_id: &str, version: u32) -> Option<&Arc<KeyDescriptor>> {
        self.rings.get(key_id)?.get(&version)
    }

    /// The versions of `key_id` that may verify, lowest first.
    pub fn verifiers(&self, key_id: &str) -> Vec<&Arc<KeyDescriptor>> {
        self.versions(key_id).filter(|k| k.can_verify).collect()
    }

    /// Every served version of `key_id`, lowest first.
    pub fn versions(&self, key_id: &str) -> impl Iterator<Item = &Arc<KeyDescriptor>> {
        self.rings.get(key_id).into_iter().flat_map(|r| r.values())
    }

    /// Every served version of every key, by id then version.
    pub fn all(&self) -> impl Iterator<Item = &Arc<KeyDescriptor>> {
        self.rings.values().flat_map(|r| r.values())
    }

    /// Whether `key_id` is served (in any version).
    pub fn contains(&self, key_id: &str) -> bool {
        self.rings.contains_key(key_id)
    }

    /// Every served key as it is listed ([`get`](Self::get)), sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<KeyDescriptor>> {
        self.rings.keys().filter_map(|id| self.get(id))
    }

    /// How many keys are served.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// Whether no key is served.
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// Copies of every served key as it is listed, sorted by id.
    pub fn to_vec(&self) -> Vec<KeyDescriptor> {
        self.iter().map(|k| KeyDescriptor::clone(k)).collect()
    }
}

fn primary_of(ring: &BTreeMap<u32, Arc<KeyDescriptor>>) -> Option<&Arc<KeyDescriptor>> {
    ring.values().rev().find(|k| k.can_sign)
}

/// The current registry of a backend, replaced whole by a re-scan: a reader takes a snapshot
/// ([`load`](Self::load)) once per call and never holds the lock across an HSM call.
#[derive(Debug, Default)]
pub struct RegistryCell {
    current: RwLock<Arc<Registry>>,
}

impl RegistryCell {
    /// A cell holding `registry`.
    pub fn new(registry: Registry) -> Self {
        RegistryCell {
            current: RwLock::new(Arc::new(registry)),
        }
    }

    /// The registry right now.
    pub fn load(&self) -> Arc<Registry> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the registry.
    pub fn store(&self, registry: Registry) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
    }
}

/// Logs the versions that arrived, left, or changed primary.
pub fn log_changes(before: &Registry, after: &Registry) {
    let labels = |r: &Registry| -> Vec<String> { r.all().map(|k| k.label()).collect() };
    let (old, new) = (labels(before), labels(after));
    for label in new.iter().filter(|l| !old.contains(l)) {
        tracing::info!(key = %label, "re-scan: now served");
    }
    for label in old.iter().filter(|l| !new.contains(l)) {
        tracing::info!(key = %label, "re-scan: no longer served");
    }
    for key in after.iter() {
        let was = before.primary(&key.id).map(|k| k.version);
        let is = after.primary(&key.id).map(|k| k.version);
        if was != is {
            tracing::info!(key = %key.id, from = ?was, to = ?is, "re-scan: primary version changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Algorithm;

    fn version(v: u32, can_sign: bool, can_verify: bool) -> KeyDescriptor {
        KeyDescriptor {
            version: v,
            can_sign,
            can_verify,
            ..KeyDescriptor::new("k", Algorithm::HmacSha256, None)
        }
    }

    #[test]
    fn the_primary_is_the_highest_version_that_may_sign() {
        let registry = Registry::new([
            version(1, true, true),
            version(2, true, true),
            version(3, false, true),
        ]);
        assert_eq!(registry.primary("k").map(|k| k.version), Some(2));
        assert_eq!(registry.get("k").map(|k| k.version), Some(2));
        let verifiers: Vec<u32> = registry.verifiers("k").iter().map(|k| k.version).collect();
        assert_eq!(verifiers, [1, 2, 3]);
        assert_eq!(registry.version("k", 3).map(|k| k.can_sign), Some(false));
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.all().count(), 3);
    }

    #[test]
    fn a_ring_of_verify_only_versions_has_no_primary_but_is_listed() {
        let registry = Registry::new([version(1, false, true), version(4, false, true)]);
        assert!(registry.primary("k").is_none());
        assert_eq!(registry.get("k").map(|k| k.version), Some(4));
        assert!(registry.primary("other").is_none() && !registry.contains("other"));
    }
}
