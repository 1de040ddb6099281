//! An object's metadata: size, replicas, lifecycle state and read leases.
//!
//! Lifecycle: `alloc` creates it WRITING; `commit` makes it READABLE;
//! `revoke` (or the put timeout, or the writer's death) drops it. Readers take
//! leases; a leased object is never freed or evicted until every lease has been
//! released or the lease deadline has passed.

use mmc_wire::ServiceId;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU64, Ordering};

/// Replica list, inline for the common single-replica case.
pub type Replicas = SmallVec<[Replica; 1]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjState {
    Writing { writer: ServiceId, since_ms: u64 },
    Readable,
}

/// One replica: a range of one segment (the owner's service id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    pub service: ServiceId,
    pub offset: u64,
}

/// Object ids are never 0 and stay below this bound; a ledger entry whose id
/// is outside `1..MAX_OBJECT_ID` is refused at recovery.
pub const MAX_OBJECT_ID: u64 = 1 << 63;

/// Low bits of an object id counted within one MetaService start.
const ID_COUNTER_BITS: u32 = 20;

/// Base of the last id space handed out in this process (see [`first_object_id`]).
static LAST_ID_BASE: AtomicU64 = AtomicU64::new(0);

/// The first object id of a MetaService start.
///
/// Ids outlive the MetaService that made them: ledgers carry them across
/// restarts and failovers, and recovery merges replicas only into the object
/// with the very same id. So a new start must never hand out an id that an
/// older start gave to a different object. An id is `(start_ms << 20) + n`:
/// the high bits are the wall-clock milliseconds (since the Unix epoch) at
/// which this start began, the low 20 bits (carrying over into the high ones)
/// count the objects it created. A later start collides with an earlier one
/// only if the earlier one created more than 2^20 objects per millisecond of
/// its whole life (a billion a second), or if the wall clock went back across
/// the restart; against the latter, recovery also raises the counter above
/// every id it recovers. Within one process (tests build several states)
/// each start also begins at least 2^32 ids above the previous one. Ids grow
/// with time within a start and stay below [`MAX_OBJECT_ID`] until the year
/// 2248.
pub fn first_object_id() -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let wall = (now_ms << ID_COUNTER_BITS).clamp(1, MAX_OBJECT_ID / 2);
    let mut prev = LAST_ID_BASE.load(Ordering::Relaxed);
    loop {
        let base = if prev == 0 { wall } else { wall.max(prev + (1 << 32)) };
        match LAST_ID_BASE.compare_exchange_weak(prev, base, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return base,
            Err(p) => prev = p,
        }
    }
}

/// Whether `id` can name an object (ledger entries come off the network).
pub fn valid_object_id(id: u64) -> bool {
    (1..MAX_OBJECT_ID).contains(&id)
}

#[derive(Debug, Clone)]
pub struct Object {
    /// Unique per object instance (a re-put after remove gets a new id),
    /// also across MetaService restarts: see [`first_object_id`].
    pub id: u64,
    pub size: u64,
    pub state: ObjState,
    pub replicas: Replicas,
    /// Last access tick, global across shards, for LRU.
    pub last_access: u64,
    pub lease: Lease,
}

impl Object {
    pub fn is_readable(&self) -> bool {
        self.state == ObjState::Readable
    }

    /// Evictable: committed and not covered by a live lease.
    pub fn is_evictable(&self, now_ms: u64) -> bool {
        self.is_readable() && !self.lease.is_active(now_ms)
    }
}

/// Read leases on one object: who holds how many, and until when. Boxed
/// and absent while nobody reads, to keep idle objects small.
#[derive(Debug, Clone, Default)]
pub struct Lease(Option<Box<LeaseInner>>);

#[derive(Debug, Clone, Default)]
struct LeaseInner {
    holders: Vec<(ServiceId, u32)>,
    until_ms: u64,
}

impl Lease {
    pub fn grant(&mut self, reader: ServiceId, now_ms: u64, lease_ms: u64) {
        let active = self.is_active(now_ms);
        let l = self.0.get_or_insert_with(Default::default);
        if !active {
            l.holders.clear();
        }
        match l.holders.iter_mut().find(|(r, _)| *r == reader) {
            Some((_, n)) => *n += 1,
            None => l.holders.push((reader, 1)),
        }
        l.until_ms = l.until_ms.max(now_ms + lease_ms);
    }

    pub fn release(&mut self, reader: ServiceId) {
        let Some(l) = self.0.as_mut() else { return };
        if let Some(i) = l.holders.iter().position(|(r, _)| *r == reader) {
            l.holders[i].1 -= 1;
            if l.holders[i].1 == 0 {
                l.holders.swap_remove(i);
            }
        }
        if l.holders.is_empty() {
            self.0 = None;
        }
    }

    /// Drops every lease a (dead) reader holds.
    pub fn release_all_of(&mut self, reader: ServiceId) {
        let Some(l) = self.0.as_mut() else { return };
        l.holders.retain(|(r, _)| *r != reader);
        if l.holders.is_empty() {
            self.0 = None;
        }
    }

    pub fn is_active(&self, now_ms: u64) -> bool {
        self.0
            .as_ref()
            .is_some_and(|l| !l.holders.is_empty() && now_ms < l.until_ms)
    }

    pub fn holders(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |l| l.holders.iter().map(|(_, n)| *n as usize).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_lifecycle() {
        let mut l = Lease::default();
        assert!(!l.is_active(0));
        l.grant(1, 0, 100);
        l.grant(1, 10, 100);
        l.grant(2, 20, 100);
        assert!(l.is_active(50));
        assert_eq!(l.holders(), 3);
        l.release(1);
        l.release(2);
        assert!(l.is_active(50));
        l.release(1);
        assert!(!l.is_active(50), "all released");
        l.grant(3, 200, 100);
        assert!(l.is_active(299));
        assert!(!l.is_active(300), "deadline passed");
        l.grant(4, 400, 100);
        assert_eq!(l.holders(), 1, "expired holders are forgotten on a new grant");
        l.release_all_of(4);
        assert!(!l.is_active(401));
    }
}
