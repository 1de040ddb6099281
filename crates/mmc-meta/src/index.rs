//! The object index: key -> [`Object`], split into shards by key hash so that
//! concurrent clients and large batches do not serialise on one lock.
//!
//! Each shard keeps its entries in LRU order (front = least recently used);
//! an access moves the entry to the back and stamps it with a global tick, so
//! the global LRU victim is the oldest of the shards' fronts.
//!
//! Keys are hashed with foldhash, seeded per process (keys come from clients,
//! so the hash must not be predictable); every shard uses the same seed, so a
//! key is hashed once to pick its shard and find it there.

use crate::object::Object;
use hashlink::linked_hash_map::RawEntryMut;
use hashlink::LinkedHashMap;
use parking_lot::{Mutex, MutexGuard};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const SHARDS: usize = 64;

type Hasher = foldhash::fast::RandomState;

/// An index key, shared with the ledger entries that name it.
pub type Key = Arc<str>;

pub type Shard = LinkedHashMap<Key, Object, Hasher>;

pub struct Index {
    shards: Box<[Mutex<Shard>]>,
    hasher: Hasher,
    tick: AtomicU64,
}

impl Default for Index {
    fn default() -> Self {
        let hasher = Hasher::default();
        Index {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LinkedHashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
            tick: AtomicU64::new(1),
        }
    }
}

impl Index {
    /// The hash of `key` in every shard.
    pub fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Bits 32.. pick the shard: the shard's table uses the low bits for
    /// buckets and the top seven as tags.
    fn shard_of_hash(h: u64) -> usize {
        ((h >> 32) as usize) % SHARDS
    }

    /// Locks `key`'s shard; returns it with the key's hash.
    pub fn lock_hashed(&self, key: &str) -> (u64, MutexGuard<'_, Shard>) {
        let h = self.hash(key);
        (h, self.lock(Self::shard_of_hash(h)))
    }

    pub fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard].lock()
    }

    pub fn lock_key(&self, key: &str) -> MutexGuard<'_, Shard> {
        self.lock_hashed(key).1
    }

    /// A fresh access tick (monotonic across shards).
    pub fn next_tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// Removes the object `id` whose key hashes to `h` if `pred` accepts it;
    /// returns its key and the object. For callers that kept only the hash.
    pub fn remove_hashed(&self, h: u64, id: u64, pred: impl Fn(&Object) -> bool) -> Option<(Key, Object)> {
        let mut shard = self.lock(Self::shard_of_hash(h));
        let hasher = &self.hasher;
        let found = match shard.raw_entry().from_hash(h, |k: &Key| hasher.hash_one(&**k) == h) {
            Some((k, o)) if o.id == id => Some((k, o)),
            // Another key with the same 64-bit hash: look for the id.
            _ => shard.iter().find(|(_, o)| o.id == id),
        };
        let key = found.filter(|(_, o)| pred(o))?.0.clone();
        let o = shard.remove(&*key)?;
        Some((key, o))
    }

    /// The object under `key` (hashed `h`) if `pred` accepts it, marked as
    /// just used; one probe of the table.
    pub fn get_touch<'a>(
        &self,
        shard: &'a mut Shard,
        h: u64,
        key: &str,
        pred: impl FnOnce(&Object) -> bool,
    ) -> Option<&'a mut Object> {
        match shard.raw_entry_mut().from_key_hashed_nocheck(h, key) {
            RawEntryMut::Occupied(mut e) if pred(e.get()) => {
                e.to_back();
                let o = e.into_mut();
                o.last_access = self.next_tick();
                Some(o)
            }
            _ => None,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Number of entries in all shards (takes every lock in turn).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjState;

    fn object(id: u64) -> Object {
        Object {
            id,
            size: 1,
            state: ObjState::Readable,
            replicas: Default::default(),
            last_access: 0,
            lease: Default::default(),
        }
    }

    #[test]
    fn remove_hashed_finds_the_object_by_hash_and_id() {
        let idx = Index::default();
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            let (_, mut s) = idx.lock_hashed(k);
            s.insert((*k).into(), object(i as u64));
        }
        let hb = idx.hash("b");
        assert!(
            idx.remove_hashed(hb, 99, |_| true).is_none(),
            "wrong id: nothing removed"
        );
        assert!(
            idx.remove_hashed(hb, 1, |_| false).is_none(),
            "rejected: nothing removed"
        );
        assert_eq!(
            idx.remove_hashed(hb, 1, |_| true).map(|(k, o)| (k.to_string(), o.id)),
            Some(("b".into(), 1))
        );
        assert_eq!(idx.len(), 2);
        // A hash that leads to another key (as a 64-bit collision would):
        // the object is still found by its id within the shard.
        let ha = idx.hash("a");
        idx.lock_hashed("a").1.insert("a2".into(), object(7));
        assert_eq!(idx.remove_hashed(ha, 7, |_| true).map(|(k, _)| k), Some("a2".into()));
        assert_eq!(idx.remove_hashed(ha, 0, |_| true).map(|(k, _)| k), Some("a".into()));
    }
}
