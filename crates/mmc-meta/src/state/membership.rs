//! Membership requests: registration, heartbeats, ledger polls, leaving
//! and being declared dead (with what that frees).

use super::{MetaState, AUDIT_TARGET};
use crate::index::Key;
use crate::membership::Membership;
use crate::object::{ObjState, Object};
use crate::returns::Admission;
use mmc_wire::message::{LedgerOp, PeerInfo, RegisterReq};
use mmc_wire::{Result, ServiceId};
use std::sync::atomic::Ordering;

impl MetaState {
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
}
