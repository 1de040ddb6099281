//! What a ledger that comes back may still restore.
//!
//! A provider re-registers with its ledger (the objects it holds) in two
//! cases: this MetaService has just begun (a restart, or a standby elected
//! leader) and knows nothing yet, or this MetaService declared the provider
//! dead (a pause, a partition) and it has come back. In both cases the
//! cluster may have moved past what the ledger says: a key removed in the
//! meantime must not come back from it. This module keeps the facts that
//! decide it, for a bounded time:
//!
//! - the **recovery window** of this leadership: members of an earlier
//!   leadership may bring their ledgers for `heartbeat_timeout_ms` after it
//!   began (as long as a silent member has before it is declared dead);
//!   a ledger that arrives later is void (the owner drops every entry);
//! - the providers this leadership **declared dead**, each with the end of
//!   the time its ledger stays acceptable ([`DEAD_RETURN_FACTOR`] heartbeat
//!   timeouts) and the offsets whose `Del` it had not yet acknowledged (the
//!   objects removed before it died, which its ledger may still list);
//! - **tombstones**: the highest object id removed per key while any ledger
//!   may still come back. An entry naming that object or an older one is
//!   stale. A remove of a key this MetaService does not know (yet) removes
//!   every object created before it: the key's object may be in a ledger
//!   still on its way.
//!
//! Outside those windows nothing is recorded, so removes cost one atomic
//! load. Tombstones are capped ([`MAX_TOMBSTONES`]); past the cap, ledgers
//! that come back are void until the windows end (safe, never stale).

use crate::index::Key;
use mmc_wire::ServiceId;
use std::collections::{HashMap, HashSet};

/// A provider declared dead may bring its ledger back for this many
/// heartbeat timeouts; later, its ledger is void.
pub const DEAD_RETURN_FACTOR: u64 = 12;

/// Most deaths waiting to be recorded for later leaders.
const MAX_UNEXPORTED: usize = 4096;

/// Most tombstones kept at once.
pub const MAX_TOMBSTONES: usize = 1 << 20;

/// A provider this leadership declared dead.
#[derive(Debug)]
struct Dead {
    /// Its ledger is acceptable until then (ms).
    until_ms: u64,
    /// Offsets of committed replicas whose removal (`Del`) it never
    /// acknowledged: its ledger may still list them.
    removed_offsets: HashSet<u64>,
}

/// How a re-registering provider's ledger is treated.
#[derive(Debug, Default)]
pub enum Admission {
    /// Entries are judged one by one (object ids, tombstones).
    #[default]
    Judge,
    /// Judged, but entries at these offsets were removed before the owner
    /// was declared dead.
    JudgeExcept(HashSet<u64>),
    /// Every entry is dropped, for this reason.
    Void(&'static str),
}

#[derive(Debug, Default)]
pub struct Returns {
    /// Members of an earlier leadership may return until then (ms).
    window_ends_ms: u64,
    dead: HashMap<ServiceId, Dead>,
    /// Key -> highest object id removed while a ledger may return.
    tombstones: HashMap<Key, u64>,
    /// Segment nonces of providers an earlier leader declared dead: their
    /// ledgers are void here.
    dead_earlier: HashSet<u64>,
    /// Deaths (`true`) and returns in time (`false`) this leadership saw,
    /// by segment nonce, in order, not yet told to later leaders (only when
    /// `export` is set).
    unexported: Vec<(u64, bool)>,
    export: bool,
    /// Every object below this id was removed (a `remove_all`).
    all_removed_below: u64,
    /// Tombstones were dropped at the cap: returning ledgers are void.
    overflowed: bool,
}

impl Returns {
    /// A new leadership (a start, or an election) begins at `now_ms`.
    pub fn begin(&mut self, now_ms: u64, heartbeat_timeout_ms: u64) {
        *self = Returns {
            window_ends_ms: now_ms.saturating_add(heartbeat_timeout_ms),
            ..Returns::default()
        };
    }

    /// A leadership won in an election: `dead_earlier` are the segment
    /// nonces of providers earlier leaders declared dead; the deaths this
    /// leadership declares are kept for [`Returns::take_unexported`].
    pub fn begin_elected(&mut self, now_ms: u64, heartbeat_timeout_ms: u64, dead_earlier: Vec<u64>) {
        self.begin(now_ms, heartbeat_timeout_ms);
        self.dead_earlier = dead_earlier.into_iter().collect();
        self.export = true;
    }

    /// Deaths (`true`: record for later leaders) and returns in time
    /// (`false`: forget the record) since the last call, in order.
    pub fn take_unexported(&mut self) -> Vec<(u64, bool)> {
        std::mem::take(&mut self.unexported)
    }

    /// `service` was declared dead at `now_ms` with these committed offsets
    /// still waiting for its acknowledgement of their `Del`.
    pub fn declared_dead(
        &mut self,
        service: ServiceId,
        nonce: u64,
        now_ms: u64,
        heartbeat_timeout_ms: u64,
        removed_offsets: HashSet<u64>,
    ) {
        if self.export && self.unexported.len() < MAX_UNEXPORTED {
            self.unexported.push((nonce, true));
        }
        let until_ms = now_ms.saturating_add(heartbeat_timeout_ms.saturating_mul(DEAD_RETURN_FACTOR));
        self.dead.insert(
            service,
            Dead {
                until_ms,
                removed_offsets,
            },
        );
    }

    /// Decides how the ledger of a registration is treated (`recovering`:
    /// it brings one). A fresh registration under an id forgets a death
    /// recorded under it (another process, or the same one starting empty).
    pub fn admit(&mut self, service: ServiceId, nonce: u64, recovering: bool, now_ms: u64) -> Admission {
        let dead = self.dead.remove(&service);
        if !recovering {
            return Admission::Judge;
        }
        if self.dead_earlier.remove(&nonce) {
            return Admission::Void("an earlier MetaService declared it dead");
        }
        if self.overflowed {
            return Admission::Void("too many keys were removed while ledgers could come back");
        }
        match dead {
            Some(d) if now_ms <= d.until_ms => {
                if self.export && self.unexported.len() < MAX_UNEXPORTED {
                    self.unexported.push((nonce, false));
                }
                Admission::JudgeExcept(d.removed_offsets)
            }
            Some(_) => Admission::Void("it was declared dead too long ago"),
            None if now_ms <= self.window_ends_ms => Admission::Judge,
            None => Admission::Void("it came back after the recovery window of this MetaService"),
        }
    }

    /// Whether a ledger may still come back at `now_ms` (`recovering`: some
    /// segment is still streaming its ledger).
    pub fn open(&self, now_ms: u64, recovering: bool) -> bool {
        recovering || now_ms <= self.window_ends_ms || self.dead.values().any(|d| now_ms <= d.until_ms)
    }

    /// Records the removal of `key`'s object `object_id`.
    pub fn removed(&mut self, key: &Key, object_id: u64) {
        if let Some(t) = self.tombstones.get_mut(key) {
            *t = (*t).max(object_id);
        } else if self.tombstones.len() < MAX_TOMBSTONES {
            self.tombstones.insert(key.clone(), object_id);
        } else {
            self.overflowed = true;
        }
    }

    /// Records a `remove_all`: every object with an id below `next_id`.
    pub fn removed_all(&mut self, next_id: u64) {
        self.all_removed_below = self.all_removed_below.max(next_id);
    }

    /// Whether `key`'s object `object_id` (or a newer one) was removed.
    pub fn is_removed(&self, key: &str, object_id: u64) -> bool {
        object_id < self.all_removed_below || self.tombstones.get(key).is_some_and(|&t| object_id <= t)
    }

    /// Forgets what no returning ledger can need any more; returns whether
    /// recording must go on.
    pub fn prune(&mut self, now_ms: u64, recovering: bool) -> bool {
        self.dead.retain(|_, d| now_ms <= d.until_ms);
        let open = self.open(now_ms, recovering);
        if !open {
            self.tombstones = HashMap::new();
            self.all_removed_below = 0;
            self.overflowed = false;
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_within_the_window_is_judged_and_a_late_one_is_void() {
        let mut r = Returns::default();
        r.begin(1_000, 500);
        assert!(matches!(r.admit(1, 0, true, 1_500), Admission::Judge));
        assert!(matches!(r.admit(2, 0, true, 1_501), Admission::Void(_)));
        assert!(
            matches!(r.admit(3, 0, false, 9_000), Admission::Judge),
            "a fresh provider brings nothing"
        );
    }

    #[test]
    fn a_dead_provider_returns_with_its_unacknowledged_removals_for_a_while() {
        let mut r = Returns::default();
        r.begin(0, 100);
        r.declared_dead(7, 0, 1_000, 100, HashSet::from([4096]));
        assert!(r.open(2_000, false));
        match r.admit(7, 0, true, 2_000) {
            Admission::JudgeExcept(o) => assert_eq!(o, HashSet::from([4096])),
            other => panic!("{other:?}"),
        }
        r.declared_dead(7, 0, 3_000, 100, HashSet::new());
        assert!(matches!(
            r.admit(7, 0, true, 3_000 + 100 * DEAD_RETURN_FACTOR + 1),
            Admission::Void(_)
        ));
        r.declared_dead(8, 0, 5_000, 100, HashSet::new());
        assert!(matches!(r.admit(8, 0, false, 5_001), Admission::Judge));
        assert!(
            matches!(r.admit(8, 0, true, 5_002), Admission::Void(_)),
            "a fresh registration forgets the death: a later ledger under the id is late"
        );
    }

    #[test]
    fn a_provider_an_earlier_leader_declared_dead_brings_a_void_ledger() {
        let mut r = Returns::default();
        r.begin_elected(0, 100, vec![0xabc]);
        assert!(matches!(r.admit(3, 0xabc, true, 10), Admission::Void(_)));
        assert!(matches!(r.admit(4, 0xdef, true, 10), Admission::Judge));
        r.declared_dead(4, 0xdef, 20, 100, HashSet::new());
        assert_eq!(r.take_unexported(), vec![(0xdef, true)]);
        assert!(matches!(r.admit(4, 0xdef, true, 30), Admission::JudgeExcept(_)));
        assert_eq!(
            r.take_unexported(),
            vec![(0xdef, false)],
            "back in time: its record is forgotten"
        );
    }

    #[test]
    fn tombstones_last_while_a_ledger_may_return() {
        let mut r = Returns::default();
        r.begin(0, 100);
        let k: Key = "k".into();
        r.removed(&k, 5);
        r.removed(&k, 3);
        assert!(r.is_removed("k", 5) && r.is_removed("k", 4) && !r.is_removed("k", 6));
        assert!(r.prune(50, false));
        assert!(r.prune(200, true), "a segment still streams its ledger");
        assert!(r.is_removed("k", 5));
        assert!(!r.prune(200, false));
        assert!(!r.is_removed("k", 5));
    }
}
