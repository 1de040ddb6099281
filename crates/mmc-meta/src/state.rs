//! The MetaService state machine: every control request is a method here.
//!
//! It is synchronous and transport-free so it can be driven directly by
//! tests with a [`ManualClock`](crate::clock::ManualClock). Locks are taken in
//! one order only: an index shard first, then the membership; never the
//! reverse. The server (`server.rs`) adds the network, the periodic
//! [`MetaState::tick`] and the waiting that alloc and ledger polls need.

/// Target of the audit log: one INFO line per membership change (join,
/// leave, declared dead) with the service id, host and transfer address.
pub const AUDIT_TARGET: &str = "mmc_meta::audit";

use crate::allocator::{align_up, checked_align_up};
use crate::clock::Clock;
use crate::eviction::{bytes_on, take_victims};
use crate::index::{Index, Key};
use crate::membership::Membership;
use crate::object::{first_object_id, valid_object_id, Lease, ObjState, Object, Replica};
use crate::placement::{self, PlaceFailure};
use crate::returns::{Admission, Returns};
use hashlink::linked_hash_map::RawEntryMut;
use mmc_wire::message::{
    AllocItem, ClusterStat, KeyInfo, LedgerEntry, LedgerOp, Located, PeerInfo, Placement, RegisterReq,
};
use mmc_wire::{validate_key, validate_replicas, Error, Medium, Result, ServiceId};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Tunables of the state machine (a subset of `MetaConfig`).
#[derive(Debug, Clone)]
pub struct MetaParams {
    pub lease_ms: u64,
    pub put_timeout_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub high_watermark: u8,
    pub low_watermark: u8,
}

impl From<&mmc_config::MetaConfig> for MetaParams {
    fn from(c: &mmc_config::MetaConfig) -> Self {
        MetaParams {
            lease_ms: c.lease_ms,
            put_timeout_ms: c.put_timeout_ms,
            heartbeat_timeout_ms: c.heartbeat_timeout_ms,
            high_watermark: c.evict_high_watermark,
            low_watermark: c.evict_low_watermark,
        }
    }
}

impl Default for MetaParams {
    fn default() -> Self {
        (&mmc_config::MetaConfig::default()).into()
    }
}

/// Result of one alloc attempt for one item.
#[derive(Debug)]
pub enum AllocOutcome {
    Done(Result<Vec<Replica>>),
    /// Space is being reclaimed (eviction freed ranges that wait for their
    /// owner's ledger ack): retry shortly.
    WaitSpace,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub evictions: AtomicU64,
    pub evicted_bytes: AtomicU64,
    pub put_timeouts: AtomicU64,
    pub dead_services: AtomicU64,
}

pub struct MetaState {
    params: MetaParams,
    clock: Arc<dyn Clock>,
    pub(crate) index: Index,
    pub(crate) members: Mutex<Membership>,
    next_object_id: AtomicU64,
    /// In-flight writes by object id (ids grow with time): (since_ms, hash
    /// of the key in the index).
    /// Entries leave at commit or revoke, so only writes in flight cost memory.
    writing: Mutex<BTreeMap<u64, (u64, u64)>>,
    /// Removed or evicted objects whose leases are still live.
    zombies: Mutex<Vec<Object>>,
    /// Drains (graceful scale-in) by provider, running and finished
    /// (`drain.rs`).
    pub(crate) drains: Mutex<crate::drain::Drains>,
    /// What a ledger that comes back may still restore (`returns.rs`).
    /// Locked after every other lock, never before one.
    returns: Mutex<Returns>,
    /// Whether removes must leave tombstones (a ledger may still come
    /// back); written under the `returns` lock.
    recording: AtomicBool,
    pub counters: Counters,
}

/// Maps service ids to indexes of a response's peer list.
#[derive(Default)]
pub(crate) struct PeerTable {
    ids: Vec<ServiceId>,
}

impl PeerTable {
    pub(crate) fn index_of(&mut self, id: ServiceId) -> u16 {
        match self.ids.iter().position(|&x| x == id) {
            Some(i) => i as u16,
            None => {
                self.ids.push(id);
                (self.ids.len() - 1) as u16
            }
        }
    }

    pub(crate) fn resolve(&self, m: &Membership) -> Vec<Option<PeerInfo>> {
        self.ids
            .iter()
            .map(|id| m.members.get(id).map(|mem| mem.info.clone()))
            .collect()
    }
}

fn placements(peers: &mut PeerTable, replicas: &[Replica]) -> Vec<Placement> {
    replicas
        .iter()
        .map(|r| Placement {
            peer: peers.index_of(r.service),
            offset: r.offset,
        })
        .collect()
}

impl MetaState {
    pub fn new(params: MetaParams, clock: Arc<dyn Clock>) -> Self {
        let st = MetaState {
            params,
            clock,
            index: Index::default(),
            members: Mutex::new(Membership::default()),
            next_object_id: AtomicU64::new(first_object_id()),
            writing: Mutex::new(BTreeMap::new()),
            zombies: Mutex::new(Vec::new()),
            drains: Mutex::new(crate::drain::Drains::default()),
            returns: Mutex::new(Returns::default()),
            recording: AtomicBool::new(false),
            counters: Counters::default(),
        };
        st.begin_recovery_window();
        st
    }

    pub fn params(&self) -> &MetaParams {
        &self.params
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    // ---- membership -------------------------------------------------------

    pub fn register(&self, req: &RegisterReq) -> Result<(ServiceId, u64)> {
        let now = self.now();
        let mut m = self.members.lock();
        let id = m.register(req, now)?;
        tracing::info!(target: AUDIT_TARGET, event = "join", service = id, host = %req.host_id,
            transfer = %req.transfer_addr, segment = ?req.segment.as_ref().map(|s| s.size),
            recovering = req.recovering, "membership: service joined");
        let nonce = req.segment.as_ref().map_or(0, |s| s.nonce);
        let admission = self.returns.lock().admit(id, nonce, req.recovering, now);
        if let Admission::Void(why) = admission {
            tracing::warn!(
                service = id,
                why,
                "recovery: the returning ledger is void (the cluster may have moved past it): the owner drops \
                 every object it lists"
            );
        }
        if let Some(seg) = m.segment_mut(id) {
            seg.returning = admission;
        }
        Ok((id, m.epoch))
    }

    /// Opens the recovery window of a new leadership (a start, or an
    /// election): members of the earlier one may bring their ledgers for
    /// `heartbeat_timeout_ms`; removes leave tombstones until every ledger
    /// that may come back has.
    fn begin_recovery_window(&self) {
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

    /// Refreshes liveness; returns (known, membership epoch, being drained).
    pub fn heartbeat(&self, service: ServiceId) -> (bool, u64, bool) {
        let now = self.now();
        let mut m = self.members.lock();
        let epoch = m.epoch;
        match m.get_mut(service) {
            Some(mem) => {
                mem.last_seen_ms = now;
                let draining = mem.segment.as_ref().is_some_and(|s| s.draining);
                (true, epoch, draining)
            }
            None => (false, epoch, false),
        }
    }

    /// Acknowledges ledger ops up to `acked` (releasing the space their
    /// `Del`s freed) and returns the ones still pending. `None`: unknown service.
    /// The ledger epoch of `service`'s current registration (`None`:
    /// unknown service or no segment).
    pub fn ledger_epoch(&self, service: ServiceId) -> Option<u64> {
        let mut m = self.members.lock();
        m.segment_mut(service).map(|s| s.ledger.epoch())
    }

    pub fn ledger_poll(&self, service: ServiceId, epoch: u64, acked: u64) -> Option<(u64, Vec<LedgerOp>)> {
        let now = self.now();
        let mut m = self.members.lock();
        let mem = m.get_mut(service)?;
        mem.last_seen_ms = now;
        let Some(seg) = mem.segment.as_mut() else {
            return Some((0, Vec::new()));
        };
        for (off, size) in seg.ledger.ack(epoch, acked) {
            if size > 0 {
                seg.alloc.free(off, size);
            }
        }
        Some(seg.ledger.pending())
    }

    pub fn unregister(&self, service: ServiceId) {
        self.declare_dead(service, "unregistered");
    }

    pub fn members(&self) -> (u64, Vec<PeerInfo>) {
        let m = self.members.lock();
        (m.epoch, m.peers())
    }

    pub fn is_member(&self, service: ServiceId) -> bool {
        self.members.lock().members.contains_key(&service)
    }

    /// Drops a LocalService: its segment, its replicas (objects left with no
    /// replica disappear), its in-flight writes and its leases.
    pub fn declare_dead(&self, service: ServiceId, why: &str) {
        let removed = {
            let mut m = self.members.lock();
            if why != "unregistered" {
                self.remember_death(&mut m, service);
            }
            m.remove(service)
        };
        let Some(gone_member) = &removed else {
            return;
        };
        self.drain_ended_by_departure(service, why);
        tracing::info!(target: AUDIT_TARGET,
            event = if why == "unregistered" { "leave" } else { "dead" },
            service, host = %gone_member.info.host_id, transfer = %gone_member.info.transfer_addr,
            provider = gone_member.segment.is_some(), why,
            "membership: service {}", if why == "unregistered" { "left" } else { "declared dead" });
        self.counters.dead_services.fetch_add(1, Ordering::Relaxed);
        if removed.as_ref().is_some_and(|m| m.segment.is_none()) {
            // A pure client holds no replicas: reclaim its in-flight writes,
            // found through the write tracker rather than a scan of the whole
            // index, so client churn stays cheap with millions of objects.
            // Its read leases lapse by themselves within lease_ms (already
            // the case when it was declared dead by heartbeat timeout).
            let n = self.reclaim_writes_of(service);
            tracing::info!(service, why, reclaimed_writes = n, "client left");
            return;
        }
        let mut dropped_objects = 0u64;
        for s in 0..self.index.shard_count() {
            let mut shard = self.index.lock(s);
            let mut gone: Vec<Key> = Vec::new();
            let mut to_free: Vec<Object> = Vec::new();
            for (k, o) in shard.iter_mut() {
                o.lease.release_all_of(service);
                let had = o.replicas.len();
                o.replicas.retain(|r| r.service != service);
                let writer_died = matches!(o.state, ObjState::Writing { writer, .. } if writer == service);
                if writer_died || (had > 0 && o.replicas.is_empty()) {
                    gone.push(k.clone());
                }
            }
            for k in gone {
                if let Some(o) = shard.remove(&k) {
                    dropped_objects += 1;
                    to_free.push(o);
                }
            }
            if !to_free.is_empty() {
                let mut m = self.members.lock();
                for o in &to_free {
                    Self::free_replicas(&mut m, o);
                }
            }
        }
        {
            let mut z = self.zombies.lock();
            for o in z.iter_mut() {
                o.lease.release_all_of(service);
                o.replicas.retain(|r| r.service != service);
            }
        }
        if why == "unregistered" {
            tracing::info!(service, dropped_objects, "localservice left");
        } else {
            tracing::warn!(service, why, dropped_objects, "localservice removed");
        }
    }

    /// Records that `service` (a provider, still in `m`) is declared dead,
    /// with the offsets of the objects removed before it acknowledged their
    /// removal: its ledger may come back listing them (`returns.rs`).
    ///
    /// Runs under the membership lock and, for the scan of leased removed
    /// objects and the switch to recording, the zombie lock: a concurrent
    /// remove either queued its `Del` before (seen here) or sees
    /// `recording` set afterwards (and leaves a tombstone).
    fn remember_death(&self, m: &mut Membership, service: ServiceId) {
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
    fn tombstone(&self, key: &Key, object_id: u64) {
        if self.recording.load(Ordering::SeqCst) && object_id > 0 {
            self.returns.lock().removed(key, object_id);
        }
    }

    /// The highest object id handed out or recovered so far.
    fn last_object_id(&self) -> u64 {
        self.next_object_id.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Drops every in-flight write of `writer`; returns how many.
    fn reclaim_writes_of(&self, writer: ServiceId) -> usize {
        let inflight: Vec<(u64, u64)> = self.writing.lock().iter().map(|(id, &(_, h))| (*id, h)).collect();
        let mut n = 0;
        for (id, h) in inflight {
            let mine = |o: &Object| matches!(o.state, ObjState::Writing { writer: w, .. } if w == writer);
            if let Some((_, o)) = self.index.remove_hashed(h, id, mine) {
                Self::free_replicas(&mut self.members.lock(), &o);
                self.writing.lock().remove(&id);
                n += 1;
            }
        }
        n
    }

    /// Returns an object's space: WRITING ranges go straight back to the
    /// allocator; committed ones wait for the owner's ledger ack.
    pub(crate) fn free_replicas(m: &mut Membership, o: &Object) {
        for r in &o.replicas {
            if let Some(seg) = m.segment_mut(r.service) {
                match o.state {
                    ObjState::Writing { .. } => seg.alloc.free(r.offset, o.size),
                    ObjState::Readable => {
                        seg.objects = seg.objects.saturating_sub(1);
                        seg.ledger.del(r.offset, o.size);
                    }
                }
            }
        }
    }

    // ---- writes -----------------------------------------------------------

    /// Validates and tries to allocate each item once. Items answered
    /// `WaitSpace` should be retried (see the server's alloc loop).
    pub fn alloc<'a>(&self, writer: ServiceId, items: impl IntoIterator<Item = &'a AllocItem>) -> Vec<AllocOutcome> {
        let now = self.now();
        // Membership facts every item needs, read once per batch.
        let (known_writer, largest) = {
            let m = self.members.lock();
            (m.members.contains_key(&writer), m.largest_capacity())
        };
        let items = items.into_iter();
        let mut started: Vec<(u64, (u64, u64))> = Vec::with_capacity(items.size_hint().0);
        let out = items
            .map(|it| {
                if !known_writer {
                    return AllocOutcome::Done(Err(Error::NotConnectedMeta(format!(
                        "writer {writer} is not registered"
                    ))));
                }
                match self.alloc_one(writer, it, now, largest) {
                    Ok((id, h, replicas)) => {
                        started.push((id, (now, h)));
                        AllocOutcome::Done(Ok(replicas))
                    }
                    Err(AllocErr::Fail(e)) => AllocOutcome::Done(Err(e)),
                    Err(AllocErr::Wait) => AllocOutcome::WaitSpace,
                }
            })
            .collect();
        if !started.is_empty() {
            self.writing.lock().extend(started);
        }
        out
    }

    /// Turns replica lists into a response: a peer list plus placements
    /// that index into it.
    pub fn to_placements(&self, items: Vec<Result<Vec<Replica>>>) -> (Vec<PeerInfo>, Vec<Result<Vec<Placement>>>) {
        let mut peers = PeerTable::default();
        let items = items
            .into_iter()
            .map(|r| r.map(|reps| placements(&mut peers, &reps)))
            .collect();
        let resolved = peers.resolve(&self.members.lock());
        (
            resolved.into_iter().map(|p| p.unwrap_or_else(vanished_peer)).collect(),
            items,
        )
    }

    /// Allocates one item; returns its object id, key hash and replicas.
    /// The caller records the write as in flight.
    fn alloc_one(
        &self,
        writer: ServiceId,
        it: &AllocItem,
        now: u64,
        largest: Option<u64>,
    ) -> Result<(u64, u64, Vec<Replica>), AllocErr> {
        validate_key(&it.key).map_err(AllocErr::Fail)?;
        validate_replicas(it.replicas).map_err(AllocErr::Fail)?;
        if it.size == 0 {
            return Err(AllocErr::Fail(Error::invalid("object size is 0")));
        }
        // Checked before any arithmetic: a size near 2^64 would wrap when
        // rounded up and allocate nothing at offset 0.
        match (checked_align_up(it.size), largest) {
            (Some(need), Some(cap)) if need <= cap => {}
            (Some(_), None) => {} // no segment at all: placement says so
            (_, cap) => {
                return Err(AllocErr::Fail(Error::invalid(format!(
                    "object size {} exceeds the largest segment ({} bytes)",
                    it.size,
                    cap.unwrap_or(0)
                ))));
            }
        }
        let mut evicted_any = false;
        for _attempt in 0..4 {
            let (h, mut shard) = self.index.lock_hashed(&it.key);
            // One probe: the vacant slot found here receives the object.
            let RawEntryMut::Vacant(slot) = shard.raw_entry_mut().from_key_hashed_nocheck(h, it.key.as_str()) else {
                return Err(AllocErr::Fail(Error::DuplicatedObject));
            };
            let mut m = self.members.lock();
            match placement::place(&mut m, writer, &it.preferred, it.replicas, it.size) {
                Ok(replicas) => {
                    drop(m);
                    let id = self.next_object_id.fetch_add(1, Ordering::Relaxed);
                    let o = Object {
                        id,
                        size: it.size,
                        state: ObjState::Writing { writer, since_ms: now },
                        replicas: replicas.iter().copied().collect(),
                        last_access: self.index.next_tick(),
                        lease: Lease::default(),
                    };
                    slot.insert_hashed_nocheck(h, Key::from(it.key.as_str()), o);
                    return Ok((id, h, replicas));
                }
                Err(PlaceFailure::TooFewSegments { have }) => {
                    return Err(AllocErr::Fail(Error::NoProvider(format!(
                        "{} replicas requested but only {have} LocalServices with free memory segments are alive",
                        it.replicas
                    ))));
                }
                Err(PlaceFailure::NoSpace) => {
                    let cands = placement::candidates(&m, writer, &it.preferred);
                    let waiting: u64 = cands
                        .iter()
                        .filter_map(|id| m.members.get(id)?.segment.as_ref())
                        .map(|s| s.ledger.waiting_bytes())
                        .sum();
                    drop(m);
                    drop(shard);
                    let want = align_up(it.size).saturating_mul(it.replicas as u64);
                    // Space already on its way back (Dels awaiting the
                    // owner's ack) counts: evicting for it again would drop
                    // more objects than this alloc needs.
                    if waiting >= want {
                        return Err(AllocErr::Wait);
                    }
                    let freed = self.evict_on(&cands, want - waiting, now);
                    if freed > 0 {
                        evicted_any = true;
                        continue;
                    }
                    if waiting > 0 || evicted_any {
                        return Err(AllocErr::Wait);
                    }
                    return Err(AllocErr::Fail(Error::NotEnoughMemory(format!(
                        "no room for {} bytes x {} replicas and nothing evictable",
                        it.size, it.replicas
                    ))));
                }
            }
        }
        Err(AllocErr::Wait)
    }

    /// Evicts LRU objects with replicas on `segments` until `want` bytes are
    /// released there (or nothing evictable remains); returns bytes released.
    fn evict_on(&self, segments: &[ServiceId], want: u64, now: u64) -> u64 {
        let on = |s: ServiceId| segments.contains(&s);
        let victims = take_victims(&self.index, now, want, &|o| bytes_on(o, &on));
        self.finish_eviction(victims, &on)
    }

    fn finish_eviction(&self, victims: Vec<(Key, Object)>, on: &dyn Fn(ServiceId) -> bool) -> u64 {
        if victims.is_empty() {
            return 0;
        }
        let mut freed = 0;
        let mut m = self.members.lock();
        for (_, o) in &victims {
            freed += bytes_on(o, on);
            Self::free_replicas(&mut m, o);
        }
        self.counters
            .evictions
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        self.counters.evicted_bytes.fetch_add(freed, Ordering::Relaxed);
        freed
    }

    /// Commits and revokes the writer's in-flight objects.
    pub fn finish(&self, writer: ServiceId, commit: &[String], revoke: &[String]) -> Vec<Result<()>> {
        let mut done_ids = Vec::with_capacity(commit.len() + revoke.len());
        for key in revoke {
            let mut shard = self.index.lock_key(key);
            let mine = matches!(shard.get(key.as_str()).map(|o| o.state), Some(ObjState::Writing { writer: w, .. }) if w == writer);
            if mine {
                let o = shard.remove(key.as_str()).expect("present");
                done_ids.push(o.id);
                Self::free_replicas(&mut self.members.lock(), &o);
            }
        }
        let results = commit
            .iter()
            .map(|key| {
                let (h, mut shard) = self.index.lock_hashed(key);
                let RawEntryMut::Occupied(mut e) = shard.raw_entry_mut().from_key_hashed_nocheck(h, key.as_str())
                else {
                    return Err(Error::Timeout(
                        "the write was reclaimed before commit (put timeout or writer declared dead)".into(),
                    ));
                };
                let (k, o) = e.get_key_value_mut();
                match o.state {
                    ObjState::Writing { writer: w, .. } if w == writer => {
                        o.state = ObjState::Readable;
                        done_ids.push(o.id);
                        let id = o.id;
                        // The object joined the back of the LRU order at
                        // alloc; a commit moments later need not move it.
                        let (size, replicas) = (o.size, o.replicas.clone());
                        let mut m = self.members.lock();
                        for r in replicas {
                            if let Some(seg) = m.segment_mut(r.service) {
                                seg.objects += 1;
                                seg.ledger.add(k.clone(), r.offset, size, id);
                            }
                        }
                        Ok(())
                    }
                    _ => Err(Error::Timeout("the write was reclaimed before commit".into())),
                }
            })
            .collect();
        if !done_ids.is_empty() {
            let mut w = self.writing.lock();
            for id in done_ids {
                w.remove(&id);
            }
        }
        results
    }

    // ---- reads ------------------------------------------------------------

    /// Finds readable replicas and grants the reader a lease on each object.
    pub fn lookup(&self, reader: ServiceId, keys: &[String]) -> (Vec<PeerInfo>, Vec<Result<Located>>) {
        self.lookup_for(reader, keys, self.params.lease_ms)
    }

    /// [`MetaState::lookup`] with leases of `lease_ms` (see [`lease_for`]).
    pub fn lookup_for(
        &self,
        reader: ServiceId,
        keys: &[String],
        lease_ms: u64,
    ) -> (Vec<PeerInfo>, Vec<Result<Located>>) {
        let now = self.now();
        let mut peers = PeerTable::default();
        let mut items: Vec<Result<Located>> = keys
            .iter()
            .map(|key| {
                validate_key(key)?;
                let (h, mut shard) = self.index.lock_hashed(key);
                let Some(o) = self.index.get_touch(&mut shard, h, key, Object::is_readable) else {
                    return Err(Error::ObjectNotExists);
                };
                o.lease.grant(reader, now, lease_ms);
                Ok(Located {
                    size: o.size,
                    object_id: o.id,
                    replicas: placements(&mut peers, &o.replicas),
                })
            })
            .collect();
        let resolved = peers.resolve(&self.members.lock());
        // Drop replicas whose owner vanished between the two locks.
        for it in items.iter_mut() {
            if let Ok(loc) = it {
                loc.replicas.retain(|p| resolved[p.peer as usize].is_some());
                if loc.replicas.is_empty() {
                    *it = Err(Error::ObjectNotExists);
                }
            }
        }
        let peers = resolved.into_iter().map(|p| p.unwrap_or_else(vanished_peer)).collect();
        (peers, items)
    }

    pub fn release_leases(&self, reader: ServiceId, leases: &[(String, u64)]) {
        let mut missed = Vec::new();
        for (key, id) in leases {
            let mut shard = self.index.lock_key(key);
            match shard.get_mut(key.as_str()) {
                Some(o) if o.id == *id => o.lease.release(reader),
                _ => missed.push(*id),
            }
        }
        if !missed.is_empty() {
            let mut z = self.zombies.lock();
            for id in missed {
                if let Some(o) = z.iter_mut().find(|o| o.id == id) {
                    o.lease.release(reader);
                }
            }
        }
    }

    pub fn exist(&self, keys: &[String]) -> Vec<bool> {
        keys.iter()
            .map(|key| {
                let (h, mut shard) = self.index.lock_hashed(key);
                self.index.get_touch(&mut shard, h, key, Object::is_readable).is_some()
            })
            .collect()
    }

    pub fn key_info(&self, keys: &[String]) -> Vec<Result<KeyInfo>> {
        let infos: Vec<Result<(u64, Vec<ServiceId>)>> = keys
            .iter()
            .map(|key| {
                validate_key(key)?;
                let shard = self.index.lock_key(key);
                match shard.get(key.as_str()) {
                    Some(o) if o.is_readable() => Ok((o.size, o.replicas.iter().map(|r| r.service).collect())),
                    _ => Err(Error::ObjectNotExists),
                }
            })
            .collect();
        let m = self.members.lock();
        infos
            .into_iter()
            .map(|r| {
                r.map(|(size, services)| KeyInfo {
                    size,
                    replicas: services
                        .into_iter()
                        .map(|s| {
                            (
                                s,
                                m.members
                                    .get(&s)
                                    .and_then(|x| x.segment.as_ref())
                                    .map_or(Medium::Dram, |g| g.medium),
                            )
                        })
                        .collect(),
                })
            })
            .collect()
    }

    // ---- removal ----------------------------------------------------------

    pub fn remove(&self, keys: &[String]) -> Vec<Result<()>> {
        keys.iter()
            .map(|key| {
                validate_key(key)?;
                let mut shard = self.index.lock_key(key);
                match shard.get(key.as_str()) {
                    Some(o) if o.is_readable() => {}
                    Some(_) => return Err(Error::UnmatchedKey),
                    None => {
                        // Unknown here, maybe only for now: every object
                        // of the key created before this remove is gone.
                        if self.recording.load(Ordering::SeqCst) {
                            self.tombstone(&Key::from(key.as_str()), self.last_object_id());
                        }
                        return Err(Error::UnmatchedKey);
                    }
                }
                let o = shard.remove(key.as_str()).expect("present");
                self.retire(o);
                if self.recording.load(Ordering::SeqCst) {
                    // Not only this object: an older or newer one of the key
                    // may be in a ledger still on its way; every object
                    // created before this remove is gone.
                    self.tombstone(&Key::from(key.as_str()), self.last_object_id());
                }
                drop(shard);
                Ok(())
            })
            .collect()
    }

    /// Frees a committed object now, or when its leases end.
    fn retire(&self, o: Object) {
        if o.lease.is_active(self.now()) {
            self.zombies.lock().push(o);
        } else {
            Self::free_replicas(&mut self.members.lock(), &o);
        }
    }

    pub fn remove_all(&self) -> u64 {
        if self.recording.load(Ordering::SeqCst) {
            self.returns.lock().removed_all(self.last_object_id() + 1);
        }
        let mut n = 0;
        for s in 0..self.index.shard_count() {
            let mut shard = self.index.lock(s);
            let keys: Vec<Key> = shard
                .iter()
                .filter(|(_, o)| o.is_readable())
                .map(|(k, _)| k.clone())
                .collect();
            let objs: Vec<(Key, Object)> = keys
                .into_iter()
                .filter_map(|k| shard.remove(&*k).map(|o| (k, o)))
                .collect();
            n += objs.len() as u64;
            for (k, o) in objs {
                let id = o.id;
                self.retire(o);
                self.tombstone(&k, id);
            }
            drop(shard);
        }
        n
    }

    // ---- housekeeping -----------------------------------------------------

    /// Periodic work: dead LocalServices, timed-out writes, expired leases
    /// of removed objects, background eviction above the high watermark.
    pub fn tick(&self) {
        let now = self.now();
        let dead = self.members.lock().expired(now, self.params.heartbeat_timeout_ms);
        for id in dead {
            self.declare_dead(id, "heartbeat timeout");
        }
        if self.recording.load(Ordering::SeqCst) {
            let recovering = self.segments_recovering() > 0;
            let mut r = self.returns.lock();
            let open = r.prune(now, recovering);
            self.recording.store(open, Ordering::SeqCst);
        }
        self.reap_writes(now);
        self.reap_zombies(now);
        self.background_evict(now);
    }

    fn reap_writes(&self, now: u64) {
        loop {
            let (h, id) = {
                let mut w = self.writing.lock();
                match w.first_key_value() {
                    Some((_, &(since, _))) if now.saturating_sub(since) >= self.params.put_timeout_ms => {
                        let (id, (_, h)) = w.pop_first().expect("first");
                        (h, id)
                    }
                    _ => return,
                }
            };
            if let Some((key, o)) = self.index.remove_hashed(h, id, |o| !o.is_readable()) {
                Self::free_replicas(&mut self.members.lock(), &o);
                self.counters.put_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = &*key, "write not committed within put_timeout: space reclaimed");
            }
        }
    }

    fn reap_zombies(&self, now: u64) {
        let done: Vec<Object> = {
            let mut z = self.zombies.lock();
            let (done, keep) = std::mem::take(&mut *z)
                .into_iter()
                .partition(|o| !o.lease.is_active(now));
            *z = keep;
            done
        };
        if !done.is_empty() {
            let mut m = self.members.lock();
            for o in &done {
                Self::free_replicas(&mut m, o);
            }
        }
    }

    fn background_evict(&self, now: u64) {
        for medium in Medium::ALL {
            let (cap, used) = {
                let m = self.members.lock();
                let (cap, used) = m.medium_usage(medium);
                // Bytes whose Del awaits the owner's ack are already
                // evicted: without this every tick before the ack would
                // evict another `used - target` bytes.
                let waiting: u64 = m
                    .members
                    .values()
                    .filter_map(|x| x.segment.as_ref())
                    .filter(|s| s.medium == medium)
                    .map(|s| s.ledger.waiting_bytes())
                    .sum();
                (cap, used.saturating_sub(waiting))
            };
            if cap == 0 || used * 100 < cap * self.params.high_watermark as u64 {
                continue;
            }
            let target = cap * self.params.low_watermark as u64 / 100;
            let want = used.saturating_sub(target);
            let segs: Vec<ServiceId> = {
                let m = self.members.lock();
                m.members
                    .iter()
                    .filter(|(_, x)| x.segment.as_ref().is_some_and(|s| s.medium == medium))
                    .map(|(id, _)| *id)
                    .collect()
            };
            let freed = self.evict_on(&segs, want, now);
            if freed > 0 {
                tracing::debug!(medium = medium.name(), freed, "background eviction");
            }
        }
    }

    // ---- introspection ----------------------------------------------------

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

/// Placeholder for a peer that left between two locks; never referenced.
pub(crate) fn vanished_peer() -> PeerInfo {
    PeerInfo {
        service_id: 0,
        host_id: 0,
        transfer_addr: String::new(),
        segment: None,
    }
}

enum AllocErr {
    Fail(Error),
    Wait,
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

/// Longest lease a reader may ask for (`LookupLease`): one hour.
pub const MAX_ASKED_LEASE_MS: u64 = 3_600_000;

/// The lease a `LookupLease` asking for `asked` ms gets: the configured
/// `default_ms` for 0, else `asked` capped at [`MAX_ASKED_LEASE_MS`].
pub fn lease_for(default_ms: u64, asked: u64) -> u64 {
    if asked == 0 {
        default_ms
    } else {
        asked.min(MAX_ASKED_LEASE_MS)
    }
}
