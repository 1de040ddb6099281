//! The object index: key -> [`Object`], split into shards by key hash so that
//! concurrent clients and large batches do not serialise on one lock.
//!
//! Each shard keeps its entries in LRU order (front = least recently used);
//! an access moves the entry to the back and stamps it with a global tick, so
//! the global LRU victim is the oldest of the shards' fronts.

use crate::object::Object;
use hashlink::LinkedHashMap;
use parking_lot::{Mutex, MutexGuard};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

pub const SHARDS: usize = 64;

pub type Shard = LinkedHashMap<String, Object>;

pub struct Index {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    tick: AtomicU64,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            shards: (0..SHARDS).map(|_| Mutex::new(LinkedHashMap::new())).collect(),
            hasher: Default::default(),
            tick: AtomicU64::new(1),
        }
    }
}

impl Index {
    pub fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
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
