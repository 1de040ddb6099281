//! Introspection: counts, statistics, key listings and usage for the
//! status page, metrics and the HTTP queries.

use super::MetaState;
use crate::index::Key;
use mmc_wire::message::ClusterStat;
use mmc_wire::Medium;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

impl MetaState {
    /// Segments whose owner has not yet acknowledged every ledger op: 0
    /// means every committed replica is recorded in its owner's ledger (and
    /// would survive a failover).
    pub fn ledgers_pending(&self) -> u64 {
        let m = self.members.lock();
        m.members
            .values()
            .filter(|mem| mem.segment.as_ref().is_some_and(|s| s.ledger.has_pending()))
            .count() as u64
    }

    /// Segments whose owner re-registered and is still sending its ledger:
    /// until 0, some objects recorded there are not in the index yet (a
    /// get of one answers OBJECT_NOT_EXISTS).
    pub fn segments_recovering(&self) -> u64 {
        let m = self.members.lock();
        m.members
            .values()
            .filter(|mem| mem.segment.as_ref().is_some_and(|s| s.recovering))
            .count() as u64
    }

    pub fn stat(&self) -> ClusterStat {
        let keys = self.count_readable();
        let now = self.now();
        let mut leases = 0u64;
        for s in 0..self.index.shard_count() {
            leases += self.index.lock(s).values().filter(|o| o.lease.is_active(now)).count() as u64;
        }
        let m = self.members.lock();
        ClusterStat {
            members: m.members.len() as u32,
            keys,
            segments: m.segment_stats(),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            leases_active: leases,
        }
    }

    pub fn count_readable(&self) -> u64 {
        (0..self.index.shard_count())
            .map(|s| self.index.lock(s).values().filter(|o| o.is_readable()).count() as u64)
            .sum()
    }

    /// Readable keys after `after` (all when `None`) in byte order, at
    /// most `limit`; the second value is the last key returned when more
    /// may follow. The order does not depend on LRU position or shard, so
    /// paging by the last key neither skips nor repeats a key that exists
    /// during the whole scan. Each page costs one pass over the index.
    pub fn list_keys(&self, after: Option<&str>, limit: u32) -> (Vec<String>, Option<String>) {
        let limit = limit.max(1) as usize;
        // The `limit + 1` smallest keys after the cursor (one more tells
        // whether another page follows), a max-heap of the kept ones.
        let mut best: std::collections::BinaryHeap<Key> = std::collections::BinaryHeap::new();
        for s in 0..self.index.shard_count() {
            let shard = self.index.lock(s);
            for (k, o) in shard.iter() {
                if !o.is_readable() || after.is_some_and(|a| &**k <= a) {
                    continue;
                }
                if best.len() <= limit {
                    best.push(k.clone());
                } else if best.peek().is_some_and(|top| k < top) {
                    best.pop();
                    best.push(k.clone());
                }
            }
        }
        let mut keys: Vec<String> = best.into_sorted_vec().iter().map(|k| k.to_string()).collect();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next = if more { keys.last().cloned() } else { None };
        (keys, next)
    }

    /// Usage per medium: medium -> (capacity, used).
    pub fn usage(&self) -> BTreeMap<&'static str, (u64, u64)> {
        let m = self.members.lock();
        Medium::ALL.iter().map(|md| (md.name(), m.medium_usage(*md))).collect()
    }
}
