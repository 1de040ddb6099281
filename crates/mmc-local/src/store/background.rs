//! The tasks a store runs beside its callers: this provider's drain
//! (planned by the MetaService, copied through the put path), the pruning
//! of mappings of departed peers' segments, and the batched release of
//! read leases.

use super::{check_placements, malformed, Inner, ObjectStore};
use crate::buffer::Piece;
use crate::service::LocalService;
use mmc_wire::message::{PeerInfo, Request, Response};
use mmc_wire::{Error, Result, ServiceId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

impl ObjectStore {
    /// Copies the objects of one drain plan out of this provider's segment
    /// (the put path: memcpy into a segment mapped here, transfer writes to
    /// the others) and reports which copies landed.
    async fn drain_batch(&self, peers: &[PeerInfo], moves: &[mmc_wire::message::DrainMove]) -> Result<()> {
        let svc = &self.inner.svc;
        let me = svc.id();
        let Some(seg) = svc.segment.clone() else {
            return Err(Error::invalid("a pure client has nothing to drain"));
        };
        // Nothing in the plan is trusted: the source must be inside our
        // segment, the destination inside another provider's.
        let mut values: Vec<Vec<Piece>> = Vec::with_capacity(moves.len());
        let mut placed = Vec::with_capacity(moves.len());
        for (i, mv) in moves.iter().enumerate() {
            let src = usize::try_from(mv.size).map_err(|_| malformed("size")).and_then(|len| {
                if len == 0 {
                    return Err(malformed(format!("drain move of {} has size 0", mv.key)));
                }
                seg.range(mv.src_offset, mv.size)
                    .map(|p| Piece { addr: p as usize, len })
            });
            let dst = src.as_ref().map_err(Clone::clone).and_then(|_| {
                check_placements(peers, &[mv.dst], mv.size)?;
                if peers[mv.dst.peer as usize].service_id == me {
                    return Err(malformed("drain move onto the draining provider itself"));
                }
                Ok(vec![mv.dst])
            });
            values.push(src.map(|p| vec![p]).unwrap_or_default());
            placed.push((i, dst, mv.size));
        }
        let copied = self.write_placed(peers, placed, &values).await;
        let mut moved = Vec::new();
        let mut failed = Vec::new();
        for (i, r) in copied {
            let mv = &moves[i];
            match r {
                Ok(()) => moved.push((mv.key.clone(), mv.object_id)),
                Err(e) => failed.push((mv.key.clone(), mv.object_id, e.to_string())),
            }
        }
        if !failed.is_empty() {
            tracing::warn!(failed = failed.len(), first = ?failed.first(), "drain: some copies failed");
        }
        match svc
            .meta
            .call(&Request::DrainCommit {
                service_id: me,
                moved,
                failed,
            })
            .await?
        {
            Response::Ok => Ok(()),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// Runs this provider's drain: plans, copies and commits until the
    /// MetaService says it is over; then leaves the cluster when every
    /// object moved.
    async fn run_drain(&self) {
        let svc = self.inner.svc.clone();
        let mut errors = 0u32;
        loop {
            let req = Request::DrainPlan {
                service_id: svc.id(),
                max: DRAIN_PLAN_MAX,
            };
            match svc.meta.call(&req).await {
                Ok(Response::DrainPlan {
                    peers,
                    moves,
                    done,
                    leave,
                    ..
                }) => {
                    errors = 0;
                    if done {
                        if leave {
                            tracing::info!(service = svc.id(), "drained: every object moved, leaving the cluster");
                            svc.leave_drained().await;
                        } else {
                            tracing::warn!(service = svc.id(), "drain over without leaving (see the drain report)");
                        }
                        return;
                    }
                    if moves.is_empty() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    if let Err(e) = self.drain_batch(&peers, &moves).await {
                        tracing::warn!(error = %e, "drain: commit failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Ok(other) => {
                    tracing::warn!(reply = ?other, "drain: unexpected reply to a drain plan; drain stopped");
                    return;
                }
                Err(e) => {
                    errors += 1;
                    // A failover forgets the drain: the new leader's
                    // heartbeat answer clears the flag.
                    if !svc.is_draining() || errors > 50 {
                        tracing::warn!(error = %e, "drain stopped");
                        return;
                    }
                    tracing::debug!(error = %e, "drain plan failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Objects per drain plan.
const DRAIN_PLAN_MAX: u32 = 256;

/// Waits for the MetaService to ask this provider to drain, and runs the
/// drain (again when asked again after an incomplete one).
pub(super) async fn drain_task(svc: Arc<LocalService>, inner: std::sync::Weak<Inner>) {
    loop {
        svc.drain_requested().await;
        let Some(inner) = inner.upgrade() else { return };
        if svc.is_drained() || !svc.is_draining() {
            return; // closed
        }
        ObjectStore { inner }.run_drain().await;
        if svc.is_drained() {
            return;
        }
        // Asked again only after the flag went down (incomplete or aborted).
        while svc.is_draining() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Drops mappings of segments whose owners left the cluster (so their
/// memory is released), checking whenever the membership epoch moves.
pub(super) async fn prune_mappings(inner: std::sync::Weak<Inner>) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(inner) = inner.upgrade() else { return };
        let epoch = inner.svc.members_epoch();
        if epoch == seen {
            continue;
        }
        if let Ok(Response::Members { peers, .. }) = inner.svc.meta.call(&Request::Members).await {
            let live: std::collections::HashSet<ServiceId> = peers.iter().map(|p| p.service_id).collect();
            let mut pm = inner.peers.lock();
            pm.maps.retain(|id, _| live.contains(id));
            pm.refused.retain(|id, _| live.contains(id));
            drop(pm);
            seen = epoch;
        }
    }
}

/// How long lease releases are gathered before one RPC carries them all.
const RELEASE_COALESCE: Duration = Duration::from_millis(5);

/// Sends lease releases in batches: one RPC per few milliseconds at most,
/// however many gets complete meanwhile.
pub(super) async fn release_leases(svc: Arc<LocalService>, mut rx: mpsc::UnboundedReceiver<(String, u64)>) {
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, mmc_wire::MAX_BATCH).await > 0 {
        tokio::time::sleep(RELEASE_COALESCE).await;
        while buf.len() < mmc_wire::MAX_BATCH {
            match rx.try_recv() {
                Ok(x) => buf.push(x),
                Err(_) => break,
            }
        }
        let leases = std::mem::take(&mut buf);
        let req = Request::ReleaseLeases {
            reader: svc.id(),
            leases,
        };
        if let Err(e) = svc.meta.call(&req).await {
            tracing::debug!(error = %e, "lease release failed (leases lapse on their own)");
        }
    }
}
