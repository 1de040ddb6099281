//! Recovery: the windows in which ledgers may come back (a start, a won
//! election, a provider declared dead), rebuilding the index from a
//! returning ledger, and the tombstones removes leave meanwhile.

use super::MetaState;
use crate::index::Key;
use crate::membership::Membership;
use crate::object::{first_object_id, valid_object_id, Lease, ObjState, Object, Replica};
use crate::returns::Admission;
use mmc_wire::message::LedgerEntry;
use mmc_wire::{validate_key, Error, Result, ServiceId};
use std::sync::atomic::Ordering;

impl MetaState {
    /// Opens the recovery window of a new leadership (a start, or an
    /// election): members of the earlier one may bring their ledgers for
    /// `heartbeat_timeout_ms`; removes leave tombstones until every ledger
    /// that may come back has.
    pub(super) fn begin_recovery_window(&self) {
        let mut r = self.returns.lock();
        r.begin(self.now(), self.params.heartbeat_timeout_ms);
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Begins a leadership won in an election: a new object id space and a
    /// new recovery window, in which the ledgers of the providers an earlier
    /// leader declared dead (`dead_earlier`: their segment nonces) are void.
    /// The deaths this leadership declares are then kept for
    /// [`MetaState::take_deaths`].
    pub fn begin_leadership(&self, dead_earlier: Vec<u64>) {
        self.begin_id_space();
        let mut r = self.returns.lock();
        r.begin_elected(self.now(), self.params.heartbeat_timeout_ms, dead_earlier);
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Deaths (`true`: record for later leaders) and returns in time
    /// (`false`: delete the record) of providers, by segment nonce, in
    /// order, since the last call (after [`MetaState::begin_leadership`]).
    pub fn take_deaths(&self) -> Vec<(u64, bool)> {
        self.returns.lock().take_unexported()
    }

    /// How long a provider declared dead may bring its ledger back.
    pub fn dead_return_ms(&self) -> u64 {
        self.params
            .heartbeat_timeout_ms
            .saturating_mul(crate::returns::DEAD_RETURN_FACTOR)
    }

    /// Begins a new object id space, as a new start does ([`first_object_id`]):
    /// every id handed out from now on is above every id that this or an
    /// earlier MetaService handed out before now (clocks permitting). Called
    /// when a standby becomes leader: its process began together with the
    /// old leader's, whose ids may have outrun the standby's start.
    pub fn begin_id_space(&self) {
        self.next_object_id.fetch_max(first_object_id(), Ordering::Relaxed);
    }

    /// Rebuilds index entries and allocator occupancy from a chunk of the
    /// owner's ledger.
    ///
    /// Object identity decides (see docs/architecture.md, "Ledgers and
    /// recovery"): an entry whose key is unknown restores the object under
    /// the entry's id; an entry whose key holds the object with the same id
    /// adds a replica (same size, committed object, one replica per
    /// segment); an entry naming an older object than the one stored is
    /// stale and rejected; one naming a newer object than a stored committed
    /// one (only after a restart, when ledgers arrive in any order) replaces
    /// it. Entries that are rejected (stale, invalid, out of range,
    /// overlapping, or meeting a WRITING object) get a `Del` queued so the
    /// owner forgets them; a range that could be reserved stays occupied
    /// until the owner acknowledges that `Del`, so no new object is written
    /// over bytes a stale ledger entry still names.
    pub fn recover(&self, service: ServiceId, entries: Vec<LedgerEntry>, done: bool) -> Result<u64> {
        let mut accepted = 0u64;
        for e in entries {
            let valid = validate_key(&e.key).is_ok() && e.size > 0 && valid_object_id(e.object_id);
            let mut shard = self.index.lock_key(&e.key);
            let mut m = self.members.lock();
            let Some(seg) = m.segment_mut(service) else {
                return Err(Error::invalid(format!("service {service} has no segment")));
            };
            let void = match &seg.returning {
                Admission::Void(why) => Some(*why),
                Admission::JudgeExcept(removed) if removed.contains(&e.offset) => {
                    Some("removed before its owner was declared dead")
                }
                _ => None,
            };
            let verdict = match shard.get(&*e.key) {
                _ if !valid => Verdict::Reject("invalid entry"),
                _ if void.is_some() => Verdict::Reject(void.unwrap_or_default()),
                _ if self.returns.lock().is_removed(&e.key, e.object_id) => {
                    Verdict::Reject("removed while ledgers were coming back")
                }
                None => Verdict::Restore,
                Some(o) if o.id == e.object_id => {
                    if !o.is_readable() {
                        Verdict::Reject("object is being written")
                    } else if o.size != e.size {
                        Verdict::Reject("same object id with another size")
                    } else if o.replicas.iter().any(|r| r.service == service) {
                        Verdict::Reject("second replica of one object in one segment")
                    } else {
                        Verdict::Merge
                    }
                }
                Some(o) if o.is_readable() && e.object_id > o.id => Verdict::Replace,
                Some(o) if o.is_readable() => Verdict::Reject("stale: the key holds a newer object"),
                Some(_) => Verdict::Reject("stale: the key is being written again"),
            };
            let reserved = e.size > 0 && seg.alloc.reserve(e.offset, e.size);
            let verdict = if reserved {
                verdict
            } else {
                Verdict::Reject("range out of the segment or overlapping another replica")
            };
            if let Verdict::Reject(why) = verdict {
                // Not ours to keep: the owner drops it; a reserved range
                // returns to the allocator once the owner acknowledges.
                seg.ledger.del(e.offset, if reserved { e.size } else { 0 });
                if valid {
                    tracing::warn!(
                        service,
                        key = &*e.key,
                        object_id = e.object_id,
                        why,
                        "recovery: ledger entry rejected, the owner is told to drop it"
                    );
                }
                continue;
            }
            seg.objects += 1;
            drop(m);
            accepted += 1;
            // New ids stay above every recovered one (a wall clock that went
            // back across a restart must not reuse them).
            self.next_object_id.fetch_max(e.object_id + 1, Ordering::Relaxed);
            let replica = Replica {
                service,
                offset: e.offset,
            };
            if let Verdict::Merge = verdict {
                if let Some(o) = shard.get_mut(&*e.key) {
                    o.replicas.push(replica);
                }
                continue;
            }
            let o = Object {
                id: e.object_id,
                size: e.size,
                state: ObjState::Readable,
                replicas: smallvec::smallvec![replica],
                last_access: self.index.next_tick(),
                lease: Lease::default(),
            };
            let older = shard.insert(e.key.clone(), o);
            drop(shard);
            if let Some(older) = older {
                tracing::warn!(
                    service,
                    key = &*e.key,
                    object_id = e.object_id,
                    older = older.id,
                    "recovery: a newer object replaces an older one recovered from another ledger"
                );
                self.retire(older);
            }
        }
        if done {
            if let Some(seg) = self.members.lock().segment_mut(service) {
                seg.recovering = false;
                seg.returning = Admission::Judge;
            }
        }
        Ok(accepted)
    }

    /// Records that `service` (a provider, still in `m`) is declared dead,
    /// with the offsets of the objects removed before it acknowledged their
    /// removal: its ledger may come back listing them (`returns.rs`).
    ///
    /// Runs under the membership lock and, for the scan of leased removed
    /// objects and the switch to recording, the zombie lock: a concurrent
    /// remove either queued its `Del` before (seen here) or sees
    /// `recording` set afterwards (and leaves a tombstone).
    pub(super) fn remember_death(&self, m: &mut Membership, service: ServiceId) {
        let Some(mem) = m.get_mut(service) else {
            return;
        };
        let nonce = mem.info.segment.as_ref().map_or(0, |s| s.nonce);
        let Some(seg) = mem.segment.as_mut() else {
            return;
        };
        let mut removed: std::collections::HashSet<u64> = seg.ledger.unacked_dels().collect();
        let z = self.zombies.lock();
        removed.extend(
            z.iter()
                .flat_map(|o| o.replicas.iter())
                .filter(|r| r.service == service)
                .map(|r| r.offset),
        );
        let mut r = self.returns.lock();
        r.declared_dead(service, nonce, self.now(), self.params.heartbeat_timeout_ms, removed);
        self.recording.store(true, Ordering::SeqCst);
        drop(r);
        drop(z);
    }

    /// Leaves a tombstone for a removed object when a ledger that lists it
    /// may still come back. Called with the key's shard locked, after the
    /// object left the index and was retired.
    pub(super) fn tombstone(&self, key: &Key, object_id: u64) {
        if self.recording.load(Ordering::SeqCst) && object_id > 0 {
            self.returns.lock().removed(key, object_id);
        }
    }

    /// The highest object id handed out or recovered so far.
    pub(super) fn last_object_id(&self) -> u64 {
        self.next_object_id.load(Ordering::Relaxed).saturating_sub(1)
    }
}

/// What recovery does with one ledger entry.
enum Verdict {
    /// The key is unknown: the entry restores the object.
    Restore,
    /// The key holds the same object: the entry adds a replica.
    Merge,
    /// The key holds an older committed object, recovered from another
    /// ledger: the entry's object replaces it.
    Replace,
    /// Dropped, for this reason.
    Reject(&'static str),
}
