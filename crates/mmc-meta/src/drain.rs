//! Graceful scale-in: draining a memory provider before it leaves.
//!
//! It owns the drain jobs (one per provider being drained, and the reports
//! of finished ones) and the `MetaState` methods that run them. The
//! MetaService never touches bytes: the draining LocalService asks for a
//! plan (`DrainPlan`: which objects to copy, from which offset of its own
//! segment, to which range of another provider), copies the bytes through
//! the ordinary put path (shared memory on one host, the transfer protocol
//! otherwise), and reports the copies (`DrainCommit`). A committed move
//! swaps the object's replica on the drained provider for the new one in
//! one step under the index shard lock, queues the ledger `Add` on the
//! receiver and the `Del` on the drained provider: until then readers keep
//! reading the old replica. An object that also has a replica elsewhere
//! just loses its replica on the drained provider. When nothing is left,
//! the provider waits one lease period (reads granted before the last
//! change may still be reading its memory), then unregisters ("drained" in
//! the audit log). Objects that find no room elsewhere are reported and
//! stay on the provider, which then takes allocations again.
//!
//! Lock order: an index shard, then the membership, then the drains.

use crate::index::Key;
use crate::object::Replica;
use crate::placement::{self, PlaceFailure};
use crate::state::{vanished_peer, MetaState, PeerTable, AUDIT_TARGET};
use mmc_wire::message::{DrainMove, DrainReport, DrainState, DrainUnmoved, PeerInfo, Placement};
use mmc_wire::{Error, ErrorKind, Result, ServiceId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Reports of finished drains kept for `DrainStatus`.
const KEEP_FINISHED: usize = 64;
/// Objects listed by name in a report (the count of the others is in the
/// message).
const MAX_LISTED_UNMOVED: usize = 10_000;
/// Longest reason kept for a failed copy (it comes from the provider).
const MAX_REASON: usize = 200;

/// All drains this MetaService knows of.
#[derive(Default)]
pub struct Drains {
    jobs: BTreeMap<ServiceId, Job>,
}

struct Job {
    report: DrainReport,
    /// Moves handed out and not yet reported, by key.
    pending: HashMap<Key, Pending>,
    /// Keys that could not be moved (listed in the report).
    unmoved: HashSet<Key>,
    unmoved_count: u64,
    /// Next index shard to scan.
    cursor: usize,
    /// In `Leaving`: when the provider may go (one lease after the last
    /// replica left it).
    leave_after_ms: u64,
}

struct Pending {
    object_id: u64,
    size: u64,
    dst: Replica,
}

/// The answer to a `DrainPlan`.
pub struct Plan {
    pub peers: Vec<PeerInfo>,
    pub moves: Vec<DrainMove>,
    pub done: bool,
    pub leave: bool,
}

impl Plan {
    fn wait() -> Self {
        Plan {
            peers: Vec::new(),
            moves: Vec::new(),
            done: false,
            leave: false,
        }
    }

    fn over(leave: bool) -> Self {
        Plan {
            done: true,
            leave,
            ..Plan::wait()
        }
    }
}

impl Job {
    fn unmovable(&mut self, key: &Key, size: u64, reason: String) {
        tracing::warn!(
            key = &**key,
            size,
            reason,
            "drain: object cannot be moved, it stays on the provider"
        );
        self.unmoved.insert(key.clone());
        self.unmoved_count += 1;
        if self.report.unmoved.len() < MAX_LISTED_UNMOVED {
            self.report.unmoved.push(DrainUnmoved {
                key: key.to_string(),
                size,
                reason,
            });
        }
    }
}

fn no_drain(service: ServiceId) -> Error {
    Error::invalid(format!("no drain of service {service} is known to this metaservice"))
}

impl MetaState {
    /// Starts draining `service` (or returns the report of the drain
    /// already running).
    pub fn drain(&self, service: ServiceId) -> Result<DrainReport> {
        let mut m = self.members.lock();
        let Some(mem) = m.members.get_mut(&service) else {
            return Err(Error::invalid(format!(
                "drain: service {service} is not a member of the cluster"
            )));
        };
        let Some(seg) = mem.segment.as_mut() else {
            return Err(Error::invalid(format!(
                "drain: service {service} provides no memory (a pure client): nothing to drain"
            )));
        };
        if seg.recovering {
            return Err(Error::new(
                ErrorKind::NoProvider,
                format!("drain: service {service} is still sending its ledger; retry in a moment"),
            ));
        }
        let mut d = self.drains.lock();
        if seg.draining {
            if let Some(job) = d.jobs.get(&service) {
                return Ok(job.report.clone());
            }
        }
        seg.draining = true;
        let objects = seg.objects;
        let report = DrainReport {
            service_id: service,
            state: DrainState::Running,
            moved: 0,
            dropped_replicas: 0,
            unmoved: Vec::new(),
            message: String::new(),
        };
        tracing::info!(target: AUDIT_TARGET, event = "drain", service, objects,
            "membership: drain of service started");
        if d.jobs.len() >= KEEP_FINISHED {
            let old = d
                .jobs
                .iter()
                .find(|(_, j)| j.report.state.is_final())
                .map(|(id, _)| *id);
            if let Some(old) = old {
                d.jobs.remove(&old);
            }
        }
        d.jobs.insert(
            service,
            Job {
                report: report.clone(),
                pending: HashMap::new(),
                unmoved: HashSet::new(),
                unmoved_count: 0,
                cursor: 0,
                leave_after_ms: 0,
            },
        );
        Ok(report)
    }

    /// The report of the drain of `service`.
    pub fn drain_status(&self, service: ServiceId) -> Result<DrainReport> {
        self.drains
            .lock()
            .jobs
            .get(&service)
            .map(|j| j.report.clone())
            .ok_or_else(|| no_drain(service))
    }

    /// Reports of every drain known (running and finished).
    pub fn drain_reports(&self) -> Vec<DrainReport> {
        self.drains.lock().jobs.values().map(|j| j.report.clone()).collect()
    }

    /// The next objects the draining `service` should copy (at most `max`);
    /// drops its replicas of objects held elsewhere too. Empty and not
    /// `done`: ask again shortly.
    pub fn drain_plan(&self, service: ServiceId, max: u32) -> Result<Plan> {
        let max = max.clamp(1, mmc_wire::MAX_BATCH as u32) as usize;
        let now = self.now();
        let mut cursor = {
            let d = self.drains.lock();
            let job = d.jobs.get(&service).ok_or_else(|| no_drain(service))?;
            match job.report.state {
                DrainState::Running => job.cursor,
                DrainState::Leaving => {
                    return Ok(if now >= job.leave_after_ms {
                        Plan::over(true)
                    } else {
                        Plan::wait()
                    })
                }
                _ => return Ok(Plan::over(false)),
            }
        };
        if !self.is_member(service) {
            return Err(Error::new(
                ErrorKind::NotConnectedMeta,
                format!("service {service} is not registered"),
            ));
        }
        let mut peers = PeerTable::default();
        let mut moves: Vec<DrainMove> = Vec::new();
        let shards = self.index.shard_count();
        while cursor < shards && moves.len() < max {
            let mut shard = self.index.lock(cursor);
            let mut m = self.members.lock();
            let mut d = self.drains.lock();
            let Some(job) = d.jobs.get_mut(&service) else {
                return Err(no_drain(service));
            };
            let mut exhausted = true;
            for (k, o) in shard.iter_mut() {
                let Some(src) = o.replicas.iter().find(|r| r.service == service).copied() else {
                    continue;
                };
                if !o.is_readable() || job.pending.contains_key(k) || job.unmoved.contains(k) {
                    continue;
                }
                if moves.len() >= max {
                    exhausted = false;
                    break;
                }
                if o.replicas.len() > 1 {
                    // Held elsewhere too: only this replica goes.
                    o.replicas.retain(|r| r.service != service);
                    if let Some(seg) = m.segment_mut(service) {
                        seg.objects = seg.objects.saturating_sub(1);
                        seg.ledger.del(src.offset, o.size);
                    }
                    job.report.dropped_replicas += 1;
                    continue;
                }
                match placement::place(&mut m, service, &[], 1, o.size) {
                    Ok(got) => {
                        let Some(&dst) = got.first() else { continue };
                        job.pending.insert(
                            k.clone(),
                            Pending {
                                object_id: o.id,
                                size: o.size,
                                dst,
                            },
                        );
                        moves.push(DrainMove {
                            key: k.to_string(),
                            object_id: o.id,
                            size: o.size,
                            src_offset: src.offset,
                            dst: Placement {
                                peer: peers.index_of(dst.service),
                                offset: dst.offset,
                            },
                        });
                    }
                    Err(PlaceFailure::TooFewSegments { .. }) => {
                        job.unmovable(k, o.size, "no other provider takes allocations".into());
                    }
                    Err(PlaceFailure::NoSpace) => {
                        job.unmovable(
                            k,
                            o.size,
                            format!("no room for {} bytes on the other providers", o.size),
                        );
                    }
                }
            }
            if exhausted {
                cursor += 1;
            }
            job.cursor = cursor;
        }
        if !moves.is_empty() {
            let resolved = peers.resolve(&self.members.lock());
            return Ok(Plan {
                peers: resolved.into_iter().map(|p| p.unwrap_or_else(vanished_peer)).collect(),
                moves,
                done: false,
                leave: false,
            });
        }
        self.drain_settle(service, now)
    }

    /// Every shard was scanned and nothing was handed out: finish the drain
    /// if nothing is left on the provider, else scan again.
    fn drain_settle(&self, service: ServiceId, now: u64) -> Result<Plan> {
        {
            let d = self.drains.lock();
            let job = d.jobs.get(&service).ok_or_else(|| no_drain(service))?;
            if !job.pending.is_empty() {
                return Ok(Plan::wait());
            }
        }
        // Objects being written when the drain started, or committed since,
        // may still name the provider.
        let mut left = 0u64;
        for s in 0..self.index.shard_count() {
            let shard = self.index.lock(s);
            let d = self.drains.lock();
            let Some(job) = d.jobs.get(&service) else {
                return Err(no_drain(service));
            };
            left += shard
                .iter()
                .filter(|(k, o)| o.replicas.iter().any(|r| r.service == service) && !job.unmoved.contains(*k))
                .count() as u64;
        }
        let mut m = self.members.lock();
        let mut d = self.drains.lock();
        let job = d.jobs.get_mut(&service).ok_or_else(|| no_drain(service))?;
        if job.report.state != DrainState::Running {
            return Ok(Plan::wait());
        }
        if left > 0 {
            job.cursor = 0;
            return Ok(Plan::wait());
        }
        let r = &mut job.report;
        if job.unmoved_count == 0 {
            r.state = DrainState::Leaving;
            r.message = format!(
                "every object moved ({} copied, {} replicas dropped); the provider leaves once the read leases lapse",
                r.moved, r.dropped_replicas
            );
            job.leave_after_ms = now + self.params().lease_ms;
            tracing::info!(
                service,
                moved = r.moved,
                dropped_replicas = r.dropped_replicas,
                "drain: every object moved, the provider leaves after one lease period"
            );
            Ok(Plan::wait())
        } else {
            r.state = DrainState::Incomplete;
            r.message = format!(
                "{} objects could not be moved and stay on service {service}, which takes allocations again \
                 ({} copied, {} replicas dropped); add capacity and drain again",
                job.unmoved_count, r.moved, r.dropped_replicas
            );
            if let Some(seg) = m.segment_mut(service) {
                seg.draining = false;
            }
            tracing::warn!(target: AUDIT_TARGET, event = "drain_incomplete", service,
                unmoved = job.unmoved_count, moved = r.moved, "membership: drain incomplete, service stays");
            Ok(Plan::over(false))
        }
    }

    /// Commits the copies the draining `service` made and records the
    /// failed ones.
    pub fn drain_commit(
        &self,
        service: ServiceId,
        moved: &[(String, u64)],
        failed: &[(String, u64, String)],
    ) -> Result<()> {
        self.drain_status(service)?;
        for (key, id) in moved {
            let mut shard = self.index.lock_key(key);
            let mut m = self.members.lock();
            let mut d = self.drains.lock();
            let Some(job) = d.jobs.get_mut(&service) else {
                return Err(no_drain(service));
            };
            if job.pending.get(key.as_str()).is_none_or(|p| p.object_id != *id) {
                continue; // not a move handed out: ignored
            }
            let Some((k, p)) = job.pending.remove_entry(key.as_str()) else {
                continue;
            };
            let dst_alive = m.segment_mut(p.dst.service).is_some();
            let src = shard
                .get(key.as_str())
                .filter(|o| o.id == p.object_id && o.is_readable())
                .and_then(|o| o.replicas.iter().find(|r| r.service == service).copied());
            match (shard.get_mut(key.as_str()), src) {
                (Some(o), Some(src)) if dst_alive => {
                    o.replicas.retain(|r| r.service != service);
                    o.replicas.push(p.dst);
                    if let Some(seg) = m.segment_mut(p.dst.service) {
                        seg.objects += 1;
                        seg.ledger.add(k, p.dst.offset, p.size, p.object_id);
                    }
                    if let Some(seg) = m.segment_mut(service) {
                        seg.objects = seg.objects.saturating_sub(1);
                        seg.ledger.del(src.offset, p.size);
                    }
                    job.report.moved += 1;
                }
                _ => {
                    // Removed, evicted or replaced meanwhile (nothing left to
                    // move), or the receiver left: the copy is not used. Its
                    // range was never in a ledger.
                    if let Some(seg) = m.segment_mut(p.dst.service) {
                        seg.alloc.free(p.dst.offset, p.size);
                    }
                }
            }
        }
        for (key, id, why) in failed {
            let _shard = self.index.lock_key(key);
            let mut m = self.members.lock();
            let mut d = self.drains.lock();
            let Some(job) = d.jobs.get_mut(&service) else {
                return Err(no_drain(service));
            };
            if job.pending.get(key.as_str()).is_none_or(|p| p.object_id != *id) {
                continue;
            }
            let Some((k, p)) = job.pending.remove_entry(key.as_str()) else {
                continue;
            };
            if let Some(seg) = m.segment_mut(p.dst.service) {
                seg.alloc.free(p.dst.offset, p.size);
            }
            let why: String = why.chars().take(MAX_REASON).collect();
            job.unmovable(&k, p.size, format!("copy to service {} failed: {why}", p.dst.service));
        }
        Ok(())
    }

    /// `service` left or was declared dead: its drain ends (done when it
    /// unregistered after everything moved, else aborted) and the ranges of
    /// moves still in flight return to their allocators.
    pub(crate) fn drain_ended_by_departure(&self, service: ServiceId, why: &str) {
        let pending = {
            let mut d = self.drains.lock();
            let Some(job) = d.jobs.get_mut(&service) else {
                return;
            };
            if job.report.state.is_final() {
                return;
            }
            let r = &mut job.report;
            if r.state == DrainState::Leaving && why == "unregistered" {
                r.state = DrainState::Done;
                r.message = format!(
                    "service {service} drained and left ({} objects copied, {} replicas dropped)",
                    r.moved, r.dropped_replicas
                );
                tracing::info!(target: AUDIT_TARGET, event = "drained", service, moved = r.moved,
                    dropped_replicas = r.dropped_replicas, "membership: service drained");
            } else {
                r.state = DrainState::Aborted;
                r.message = format!(
                    "service {service} left ({why}) before its drain finished; objects not yet moved were dropped with it"
                );
                tracing::warn!(target: AUDIT_TARGET, event = "drain_aborted", service, why,
                    moved = r.moved, "membership: drain aborted");
            }
            std::mem::take(&mut job.pending)
        };
        if !pending.is_empty() {
            let mut m = self.members.lock();
            for p in pending.values() {
                if let Some(seg) = m.segment_mut(p.dst.service) {
                    seg.alloc.free(p.dst.offset, p.size);
                }
            }
        }
    }
}
