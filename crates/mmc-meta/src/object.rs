//! An object's metadata: size, replicas, lifecycle state and read leases.
//!
//! Lifecycle: `alloc` creates it WRITING; `commit` makes it READABLE;
//! `revoke` (or the put timeout, or the writer's death) drops it. Readers take
//! leases; a leased object is never freed or evicted until every lease has been
//! released or the lease deadline has passed.

use mmc_wire::ServiceId;

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

#[derive(Debug, Clone)]
pub struct Object {
    /// Unique per object instance (a re-put after remove gets a new id).
    pub id: u64,
    pub size: u64,
    pub state: ObjState,
    pub replicas: Vec<Replica>,
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

/// Read leases on one object: who holds how many, and until when.
#[derive(Debug, Clone, Default)]
pub struct Lease {
    holders: Vec<(ServiceId, u32)>,
    until_ms: u64,
}

impl Lease {
    pub fn grant(&mut self, reader: ServiceId, now_ms: u64, lease_ms: u64) {
        if !self.is_active(now_ms) {
            self.holders.clear();
        }
        match self.holders.iter_mut().find(|(r, _)| *r == reader) {
            Some((_, n)) => *n += 1,
            None => self.holders.push((reader, 1)),
        }
        self.until_ms = self.until_ms.max(now_ms + lease_ms);
    }

    pub fn release(&mut self, reader: ServiceId) {
        if let Some(i) = self.holders.iter().position(|(r, _)| *r == reader) {
            self.holders[i].1 -= 1;
            if self.holders[i].1 == 0 {
                self.holders.swap_remove(i);
            }
        }
    }

    /// Drops every lease a (dead) reader holds.
    pub fn release_all_of(&mut self, reader: ServiceId) {
        self.holders.retain(|(r, _)| *r != reader);
    }

    pub fn is_active(&self, now_ms: u64) -> bool {
        !self.holders.is_empty() && now_ms < self.until_ms
    }

    pub fn holders(&self) -> usize {
        self.holders.iter().map(|(_, n)| *n as usize).sum()
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
