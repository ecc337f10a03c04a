//! The KV store's map, built so that a snapshot never stalls the node.
//!
//! A snapshot needs a frozen copy of the state while the node goes on applying. Cloning
//! a `BTreeMap` of a million keys on the node's thread takes long enough to miss
//! heartbeats. [`KvMap`] splits the keys over many shards, each behind an `Arc`:
//! [`frozen`](KvMap::frozen) copies only the shard pointers, and a write after it copies
//! the one small shard it touches (copy on write), so the cost of the copy is spread
//! over the writes that follow instead of paid at once.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use std::sync::Arc;

/// Number of shards: a power of two. With a million keys a shard holds about 60, so the
/// copy a write pays after a snapshot is a few microseconds.
pub const SHARDS: usize = 1 << 14;

/// A string map in copy-on-write shards. Keys are spread by a fixed hash, so every
/// replica shards alike.
#[derive(Debug, Clone)]
pub struct KvMap {
    shards: Vec<Arc<BTreeMap<String, String>>>,
    len: usize,
}

impl Default for KvMap {
    fn default() -> Self {
        // Every shard starts as the same empty map (intended); the first write to one
        // copies it.
        let empty = Arc::new(BTreeMap::new());
        Self {
            shards: (0..SHARDS).map(|_| Arc::clone(&empty)).collect(),
            len: 0,
        }
    }
}

fn shard_of(key: &str) -> usize {
    // `DefaultHasher::new` uses fixed keys: the same shard on every run of one build.
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) & (SHARDS - 1)
}

impl KvMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.shards[shard_of(key)].get(key)
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        let shard = Arc::make_mut(&mut self.shards[shard_of(&key)]);
        let old = shard.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = shard_of(key);
        if !self.shards[i].contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(&mut self.shards[i]).remove(key);
        self.len -= usize::from(old.is_some());
        old
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A frozen copy: the shard pointers only. Writes to either copy afterwards copy the
    /// shard they touch and leave the other copy as it was.
    pub fn frozen(&self) -> KvMap {
        self.clone()
    }

    /// The shards, for encoding a snapshot shard by shard.
    pub fn into_shards(self) -> Vec<Arc<BTreeMap<String, String>>> {
        self.shards
    }

    /// Every (key, value), shard by shard (in key order within a shard).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

impl FromIterator<(String, String)> for KvMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_copy_keeps_its_values_while_the_map_changes() {
        let mut map: KvMap = (0..1000)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        assert_eq!(map.len(), 1000);
        let frozen = map.frozen();
        map.insert("k1".into(), "changed".into());
        map.insert("new".into(), "x".into());
        assert_eq!(map.remove("k2").as_deref(), Some("v2"));
        assert_eq!(map.remove("absent"), None);
        assert_eq!(map.len(), 1000);
        assert_eq!(map.get("k1").map(String::as_str), Some("changed"));
        assert_eq!(frozen.get("k1").map(String::as_str), Some("v1"));
        assert_eq!(frozen.get("k2").map(String::as_str), Some("v2"));
        assert!(frozen.get("new").is_none());
        assert_eq!(frozen.len(), 1000);
        assert_eq!(frozen.iter().count(), 1000);
        assert_eq!(map.iter().count(), 1000);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        // 1 000 keys over 16 384 shards: about 970 distinct shards when the hash spreads.
        let mut used: Vec<usize> = (0..1000).map(|i| shard_of(&format!("k{i:08}"))).collect();
        used.sort_unstable();
        used.dedup();
        assert!(used.len() > 900, "only {} shards used", used.len());
    }
}
