//! Handling one control request: fencing, the call into the state
//! machine, waking ledger polls and allocs that wait for space, and the
//! request metrics.

use super::{Server, ALLOC_WAIT, LEDGER_COALESCE, LEDGER_POLL_HOLD};
use crate::metrics::Metrics;
use crate::state::AllocOutcome;
use mmc_wire::message::LedgerOp;
use mmc_wire::message::{LedgerEntry, RegisterReq, Request, Response};
use mmc_wire::ServiceId;
use mmc_wire::{Error, ErrorKind};
use std::time::{Duration, Instant};

impl Server {
    /// Handles one request, recording its metrics.
    pub async fn handle(&self, req: Request) -> Response {
        let start = Instant::now();
        let (op, keys) = op_of(&req);
        let resp = self.dispatch(req).await;
        let failed = matches!(resp, Response::Failed(_));
        self.metrics
            .record(Metrics::op_index(op), keys, failed, start.elapsed());
        resp
    }

    /// Fences the request, then answers it: the requests with more to do
    /// than one call into the state machine have a step of their own below.
    async fn dispatch(&self, req: Request) -> Response {
        let st = &self.state;
        // Fencing: checked on every request, so a leader whose lease lapsed
        // stops at once.
        let term = match self.serving_term() {
            Ok(t) => t,
            Err(e) => return Response::Failed(e),
        };
        match req {
            Request::Register(r) => self.on_register(&r, term),
            Request::Recover {
                service_id,
                entries,
                done,
            } => self.on_recover(service_id, entries, done),
            Request::Heartbeat { service_id } => {
                let (known, members_epoch, draining) = st.heartbeat(service_id);
                Response::HeartbeatAck {
                    known,
                    members_epoch,
                    term,
                    draining,
                }
            }
            Request::LedgerPoll {
                service_id,
                epoch,
                acked,
            } => self.ledger_poll(service_id, epoch, acked, term).await,
            Request::Unregister { service_id } => {
                st.unregister(service_id);
                self.ledger_changed.notify_waiters();
                Response::Ok
            }
            Request::Drain { service_id } => match st.drain(service_id) {
                Ok(r) => Response::Drain(r),
                Err(e) => Response::Failed(e),
            },
            Request::DrainStatus { service_id } => match st.drain_status(service_id) {
                Ok(r) => Response::Drain(r),
                Err(e) => Response::Failed(e),
            },
            Request::DrainPlan { service_id, max } => self.on_drain_plan(service_id, max, term),
            Request::DrainCommit {
                service_id,
                moved,
                failed,
            } => self.on_drain_commit(service_id, &moved, &failed),
            Request::Alloc { writer, items } => {
                if let Err(e) = mmc_wire::validate_batch_len(items.len()) {
                    return Response::Failed(e);
                }
                self.alloc(writer, items, term).await
            }
            Request::Finish { writer, commit, revoke } => self.on_finish(writer, &commit, &revoke),
            Request::Lookup { reader, keys } => self.on_lookup(reader, &keys),
            Request::LookupLease { reader, keys, lease_ms } => self.on_lookup_lease(reader, &keys, lease_ms),
            Request::ReleaseLeases { reader, leases } => {
                st.release_leases(reader, &leases);
                Response::Ok
            }
            Request::Exist { keys } => match mmc_wire::validate_batch_len(keys.len()) {
                Ok(()) => Response::Exist(st.exist(&keys)),
                Err(e) => Response::Failed(e),
            },
            Request::KeyInfo { keys } => match mmc_wire::validate_batch_len(keys.len()) {
                Ok(()) => Response::KeyInfo(st.key_info(&keys)),
                Err(e) => Response::Failed(e),
            },
            Request::Remove { keys } => self.on_remove(&keys),
            Request::RemoveAll => {
                let removed = st.remove_all();
                self.ledger_changed.notify_waiters();
                Response::RemoveAll { removed }
            }
            Request::Members => {
                let (epoch, peers) = st.members();
                Response::Members { epoch, peers }
            }
            Request::Stat => Response::Stat(st.stat()),
            Request::AttachRing { .. } => Response::Failed(Error::invalid(
                "a control ring can only be offered as the first request of a connection",
            )),
            Request::ListKeys { after, limit } => {
                let (keys, next_cursor) = st.list_keys(after.as_deref(), limit.min(100_000));
                Response::Keys { keys, next_cursor }
            }
        }
    }

    fn on_register(&self, r: &RegisterReq, term: u64) -> Response {
        let st = &self.state;
        match st.register(r) {
            Ok((service_id, members_epoch)) => Response::Registered {
                service_id,
                lease_ms: st.params().lease_ms,
                members_epoch,
                ledger_epoch: st.ledger_epoch(service_id).unwrap_or(0),
                term,
            },
            Err(e) => Response::Failed(e),
        }
    }

    fn on_recover(&self, service_id: ServiceId, entries: Vec<LedgerEntry>, done: bool) -> Response {
        match self.state.recover(service_id, entries, done) {
            Ok(_) => {
                self.ledger_changed.notify_waiters();
                Response::Ok
            }
            Err(e) => Response::Failed(e),
        }
    }

    fn on_drain_plan(&self, service_id: ServiceId, max: u32, term: u64) -> Response {
        match self.state.drain_plan(service_id, max) {
            Ok(plan) => {
                // Replicas dropped from the drained segment queued `Del`s.
                self.ledger_changed.notify_waiters();
                if let Err(e) = self.serving_term() {
                    return Response::Failed(e);
                }
                Response::DrainPlan {
                    peers: plan.peers,
                    moves: plan.moves,
                    done: plan.done,
                    leave: plan.leave,
                    term,
                }
            }
            Err(e) => Response::Failed(e),
        }
    }

    fn on_drain_commit(
        &self,
        service_id: ServiceId,
        moved: &[(String, u64)],
        failed: &[(String, u64, String)],
    ) -> Response {
        if moved.len() + failed.len() > 2 * mmc_wire::MAX_BATCH {
            return Response::Failed(Error::invalid("drain commit carries more than two batches of keys"));
        }
        match self.state.drain_commit(service_id, moved, failed) {
            Ok(()) => {
                self.ledger_changed.notify_waiters();
                Response::Ok
            }
            Err(e) => Response::Failed(e),
        }
    }

    fn on_finish(&self, writer: ServiceId, commit: &[String], revoke: &[String]) -> Response {
        if commit.len() + revoke.len() > 2 * mmc_wire::MAX_BATCH {
            return Response::Failed(Error::invalid("finish carries more than two batches of keys"));
        }
        let commit = self.state.finish(writer, commit, revoke);
        self.ledger_changed.notify_waiters();
        Response::Finish { commit }
    }

    fn on_lookup(&self, reader: ServiceId, keys: &[String]) -> Response {
        let st = &self.state;
        if let Err(e) = mmc_wire::validate_batch_len(keys.len()) {
            return Response::Failed(e);
        }
        let (peers, items) = st.lookup(reader, keys);
        Response::Lookup {
            peers,
            lease_ms: st.params().lease_ms,
            items,
        }
    }

    fn on_lookup_lease(&self, reader: ServiceId, keys: &[String], lease_ms: u64) -> Response {
        let st = &self.state;
        if let Err(e) = mmc_wire::validate_batch_len(keys.len()) {
            return Response::Failed(e);
        }
        let lease_ms = crate::state::lease_for(st.params().lease_ms, lease_ms);
        let (peers, items) = st.lookup_for(reader, keys, lease_ms);
        Response::Lookup { peers, lease_ms, items }
    }

    fn on_remove(&self, keys: &[String]) -> Response {
        match mmc_wire::validate_batch_len(keys.len()) {
            Ok(()) => {
                let r = self.state.remove(keys);
                self.ledger_changed.notify_waiters();
                Response::Remove(r)
            }
            Err(e) => Response::Failed(e),
        }
    }

    async fn ledger_poll(&self, service: mmc_wire::ServiceId, epoch: u64, acked: u64, term: u64) -> Response {
        let deadline = Instant::now() + LEDGER_POLL_HOLD;
        let mut coalesced = false;
        loop {
            let notified = self.ledger_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The poll is held: leadership may have lapsed meanwhile.
            if let Err(e) = self.serving_term() {
                return Response::Failed(e);
            }
            let Some((last_seq, ops)) = self.state.ledger_poll(service, epoch, acked) else {
                return Response::LedgerOps {
                    last_seq: 0,
                    ops: Vec::new(),
                    known: false,
                    term,
                };
            };
            self.space_returned.notify_waiters();
            let now = Instant::now();
            let urgent = ops.iter().any(|o| matches!(o, LedgerOp::Del { .. })) || ops.len() >= 1024;
            if !ops.is_empty() && !urgent && !coalesced && now < deadline {
                // Only additions: not urgent. Gather a few milliseconds'
                // worth so a stream of puts costs the owner few wake-ups.
                coalesced = true;
                tokio::time::sleep(LEDGER_COALESCE).await;
                continue;
            }
            if !ops.is_empty() || now >= deadline {
                return Response::LedgerOps {
                    last_seq,
                    ops,
                    known: true,
                    term,
                };
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }

    /// Allocates every item, waiting (bounded) for evicted space to come back.
    async fn alloc(
        &self,
        writer: mmc_wire::ServiceId,
        items: Vec<mmc_wire::message::AllocItem>,
        term: u64,
    ) -> Response {
        let n = items.len();
        let mut results: Vec<Option<mmc_wire::Result<Vec<crate::object::Replica>>>> = vec![None; n];
        let mut todo: Vec<usize> = (0..n).collect();
        let deadline = Instant::now() + ALLOC_WAIT;
        loop {
            let returned = self.space_returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            let evictions = self.state.counters.evictions.load(std::sync::atomic::Ordering::Relaxed);
            let outcomes = self.state.alloc(writer, todo.iter().map(|&i| &items[i]));
            let mut again = Vec::new();
            for (i, out) in todo.iter().copied().zip(outcomes) {
                match out {
                    AllocOutcome::Done(r) => results[i] = Some(r),
                    AllocOutcome::WaitSpace => again.push(i),
                }
            }
            if self.state.counters.evictions.load(std::sync::atomic::Ordering::Relaxed) != evictions {
                // Evicted replicas queued ledger deletions: their owners must
                // hear of them (and acknowledge) before the space comes back.
                self.ledger_changed.notify_waiters();
            }
            todo = again;
            let now = Instant::now();
            if todo.is_empty() {
                break;
            }
            if now >= deadline {
                for &i in &todo {
                    results[i] = Some(Err(Error::new(
                        ErrorKind::NotEnoughMemory,
                        "evicted space did not come back in time (segment owner not acknowledging)",
                    )));
                }
                break;
            }
            let _ = tokio::time::timeout((deadline - now).min(Duration::from_millis(50)), returned).await;
        }
        let (peers, items) = self
            .state
            .to_placements(results.into_iter().map(|r| r.expect("filled")).collect());
        if let Err(e) = self.serving_term() {
            // Fenced while waiting for space: the allocations stand in this
            // (deposed) state only; nobody may write them.
            return Response::Failed(e);
        }
        Response::Alloc { peers, items, term }
    }
}

fn op_of(req: &Request) -> (&'static str, usize) {
    match req {
        Request::Register(_) => ("register", 0),
        Request::Recover { entries, .. } => ("recover", entries.len()),
        Request::Heartbeat { .. } => ("heartbeat", 0),
        Request::LedgerPoll { .. } => ("ledger_poll", 0),
        Request::Unregister { .. } => ("unregister", 0),
        Request::Alloc { items, .. } => ("alloc", items.len()),
        Request::Finish { commit, revoke, .. } => ("finish", commit.len() + revoke.len()),
        Request::Lookup { keys, .. } => ("lookup", keys.len()),
        Request::LookupLease { keys, .. } => ("lookup", keys.len()),
        Request::ReleaseLeases { leases, .. } => ("release_leases", leases.len()),
        Request::Exist { keys } => ("exist", keys.len()),
        Request::KeyInfo { keys } => ("key_info", keys.len()),
        Request::Remove { keys } => ("remove", keys.len()),
        Request::RemoveAll => ("remove_all", 0),
        Request::Members => ("members", 0),
        Request::Stat => ("stat", 0),
        Request::ListKeys { .. } => ("list_keys", 0),
        Request::AttachRing { .. } => ("attach_ring", 0),
        Request::Drain { .. } => ("drain", 0),
        Request::DrainStatus { .. } => ("drain_status", 0),
        Request::DrainPlan { .. } => ("drain_plan", 0),
        Request::DrainCommit { moved, failed, .. } => ("drain_commit", moved.len() + failed.len()),
    }
}
