//! The served keys of a backend, by id: the one list the signer, `ListKeys` and the backend
//! itself read. Each backend builds it once, from the keys it found and checked on the token.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::key::KeyDescriptor;

/// The served keys, by id (sorted, so listings come out in order).
#[derive(Debug, Default)]
pub struct Registry {
    keys: BTreeMap<String, Arc<KeyDescriptor>>,
}

impl Registry {
    /// A registry of `keys` (ids are unique: the backends refuse duplicates before this).
    pub fn new(keys: impl IntoIterator<Item = KeyDescriptor>) -> Self {
        Registry {
            keys: keys
                .into_iter()
                .map(|k| (k.id.clone(), Arc::new(k)))
                .collect(),
        }
    }

    /// The key served under `key_id`.
    pub fn get(&self, key_id: &str) -> Option<&Arc<KeyDescriptor>> {
        self.keys.get(key_id)
    }

    /// Whether `key_id` is served.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Every served key, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<KeyDescriptor>> {
        self.keys.values()
    }

    /// How many keys are served.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is served.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Copies of every served key, sorted by id.
    pub fn to_vec(&self) -> Vec<KeyDescriptor> {
        self.keys
            .values()
            .map(|k| KeyDescriptor::clone(k))
            .collect()
    }
}
