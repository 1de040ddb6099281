//! LRU eviction: choosing which committed objects to drop when space runs out.
//!
//! Victims are the least recently used objects across all index shards that
//! are committed, not leased, and match the caller's filter (for example "has
//! a replica on one of these segments"). WRITING and leased objects are never
//! chosen. Freeing the victims' space is the caller's job.

use crate::allocator::align_up;
use crate::index::{Index, Key};
use crate::object::Object;

/// Candidates examined at the front of each shard per pass.
const PER_SHARD: usize = 32;

/// Removes from the index, and returns, LRU objects accepted by `filter`
/// whose replica bytes add up to at least `want_bytes` (fewer when not
/// enough are evictable). Bytes count every replica accepted by `filter`.
pub fn take_victims(
    index: &Index,
    now_ms: u64,
    want_bytes: u64,
    filter: &dyn Fn(&Object) -> u64,
) -> Vec<(Key, Object)> {
    let mut out = Vec::new();
    let mut freed = 0u64;
    while freed < want_bytes {
        // (last_access, shard, key, bytes that would be freed)
        let mut cands: Vec<(u64, usize, Key, u64)> = Vec::new();
        for s in 0..index.shard_count() {
            let shard = index.lock(s);
            let mut found = 0;
            for (k, o) in shard.iter() {
                if found == PER_SHARD {
                    break;
                }
                if !o.is_evictable(now_ms) {
                    continue;
                }
                let bytes = filter(o);
                if bytes > 0 {
                    cands.push((o.last_access, s, k.clone(), bytes));
                    found += 1;
                }
            }
        }
        if cands.is_empty() {
            break;
        }
        cands.sort_unstable_by_key(|c| c.0);
        let before = out.len();
        for (_, s, key, bytes) in cands {
            if freed >= want_bytes {
                break;
            }
            let mut shard = index.lock(s);
            if shard.get(&key).is_some_and(|o| o.is_evictable(now_ms)) {
                let o = shard.remove(&key).expect("present");
                freed += bytes;
                out.push((key, o));
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// Bytes an object occupies on the segments `on` accepts.
pub fn bytes_on(o: &Object, on: &dyn Fn(mmc_wire::ServiceId) -> bool) -> u64 {
    o.replicas
        .iter()
        .filter(|r| on(r.service))
        .map(|_| align_up(o.size))
        .fold(0u64, u64::saturating_add)
}
