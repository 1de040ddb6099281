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

pub const SHARDS: usize = 64;

type Hasher = foldhash::fast::RandomState;

pub type Shard = LinkedHashMap<String, Object, Hasher>;

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

    pub fn shard_of(&self, key: &str) -> usize {
        Self::shard_of_hash(self.hash(key))
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
        self.lock(self.shard_of(key))
    }

    /// A fresh access tick (monotonic across shards).
    pub fn next_tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks `key` as just used: moves it to the back of its shard's LRU order.
    pub fn touch(&self, shard: &mut Shard, key: &str) {
        if let Some(o) = shard.to_back(key) {
            o.last_access = self.next_tick();
        }
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
