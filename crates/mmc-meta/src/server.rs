//! The MetaService control-RPC server.
//!
//! One task per connection reads frames; each request is handled and its
//! response queued to the connection's writer task, so requests on one
//! connection are pipelined and may complete out of order (alloc and ledger
//! polls wait; everything else answers at once). A malformed frame closes that
//! one connection; an undecodable payload inside a well-formed frame is
//! answered with INVALID_PARAM and the connection stays open.
//! After a data-path request (alloc, finish, lookup, exist, key info,
//! remove), a connection is polled for `meta.spin_wait_us` before its task
//! sleeps, so back-to-back requests skip a thread wake-up; other requests
//! (heartbeats, ledger polls, ...) never start polling. TCP connections poll
//! only where `meta.tcp_polling` says (by default on machines of 4 CPUs or
//! more); same-host shared-memory rings always do.
//! A background task runs [`MetaState::tick`] every 100 ms.
//!
//! Hostile clients are bounded: at most `meta.max_connections` connections
//! (the excess is closed at once and counted), accept errors such as running
//! out of descriptors are retried with backoff, a frame must complete within
//! `meta.frame_timeout_ms` of its first byte, an idle connection holds at
//! most [`IDLE_READ_BUF`] bytes of read buffer, and a connection that does
//! not read its answers is closed once [`MAX_ANSWER_BACKLOG`] bytes wait.

use crate::metrics::Metrics;
use crate::ring_conn::{RingRequests, RingSink};
use crate::state::{AllocOutcome, MetaState};
use mmc_wire::auth::{self, ClusterToken, Domain};
use mmc_wire::frame::{self, FrameError, FrameKind};
use mmc_wire::frame_reader::FrameReader;
use mmc_wire::frame_writer::FrameWriter;
use mmc_wire::listen::ConnLimit;
use mmc_wire::message::LedgerOp;
use mmc_wire::message::{Request, Response};
use mmc_wire::shm_ring::{self, RingRx, RingTx, ShmRegion};
use mmc_wire::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long an alloc waits for evicted space to come back before failing
/// with NOT_ENOUGH_MEMORY.
const ALLOC_WAIT: Duration = Duration::from_secs(3);
/// Longest a ledger poll is held when there is nothing to send.
const LEDGER_POLL_HOLD: Duration = Duration::from_millis(1000);
/// How long a ledger poll holding only additions waits for more.
const LEDGER_COALESCE: Duration = Duration::from_millis(5);
const TICK: Duration = Duration::from_millis(100);
/// Read buffer an idle control connection keeps (it grows while a larger
/// frame arrives, and shrinks back when the connection falls idle).
pub const IDLE_READ_BUF: usize = 16 << 10;
/// Answer bytes queued for a connection that does not read them before it
/// is closed.
pub const MAX_ANSWER_BACKLOG: usize = 64 << 20;

/// Shared by every connection of one MetaService.
pub struct Server {
    pub state: Arc<MetaState>,
    pub metrics: Metrics,
    /// Woken whenever ledger ops may have been queued.
    ledger_changed: Notify,
    /// Woken whenever ledger acks may have returned space.
    space_returned: Notify,
    /// How long a connection is polled for its next request before its
    /// task sleeps (`meta.spin_wait_us`).
    spin_wait: Duration,
    /// Whether TCP connections poll too (`meta.tcp_polling`); ring
    /// connections always do.
    tcp_polling: bool,
    /// The cluster token every control connection must prove (and HTTP
    /// requests carry); `None` runs the handshake in open mode.
    token: Option<ClusterToken>,
    /// Bounds the control connections (`meta.max_connections`).
    conn_limit: Arc<ConnLimit>,
    /// Longest a frame may take once begun (`meta.frame_timeout_ms`).
    frame_timeout: Duration,
    /// Set when the control port (and the HTTP endpoint) speak TLS
    /// (`meta.security.tls.enable`); see [`crate::tls_conn`].
    pub(crate) tls: std::sync::OnceLock<mmc_tls::TlsAcceptor>,
    /// Set in HA mode: requests are served only while this MetaService
    /// leads (see [`crate::role`]); unset, it always serves with term 0.
    role: std::sync::OnceLock<Arc<crate::role::Role>>,
}

impl Server {
    pub fn new(state: Arc<MetaState>) -> Arc<Self> {
        Self::with_polling(state, Duration::ZERO, true)
    }

    /// A server that polls ring connections for `spin_wait` (stretched to
    /// follow the client) after a data-path request, and TCP connections
    /// for `spin_wait` when `tcp_polling`.
    pub fn with_polling(state: Arc<MetaState>, spin_wait: Duration, tcp_polling: bool) -> Arc<Self> {
        let defaults = mmc_config::MetaConfig::default();
        Self::with_options(
            state,
            spin_wait,
            tcp_polling,
            None,
            defaults.max_connections as usize,
            Duration::from_millis(defaults.frame_timeout_ms),
        )
    }

    /// [`Server::with_polling`] that also requires `token` on every
    /// connection (control handshake, HTTP bearer), serves at most
    /// `max_connections` connections at once, each frame within
    /// `frame_timeout` of its first byte.
    pub fn with_options(
        state: Arc<MetaState>,
        spin_wait: Duration,
        tcp_polling: bool,
        token: Option<ClusterToken>,
        max_connections: usize,
        frame_timeout: Duration,
    ) -> Arc<Self> {
        let conn_limit = ConnLimit::new("control", max_connections);
        Arc::new(Server {
            state,
            metrics: Metrics {
                control_limit: Some(conn_limit.clone()),
                ..Metrics::default()
            },
            ledger_changed: Notify::new(),
            space_returned: Notify::new(),
            spin_wait,
            tcp_polling,
            token,
            conn_limit,
            frame_timeout,
            tls: std::sync::OnceLock::new(),
            role: std::sync::OnceLock::new(),
        })
    }

    /// Puts this server in HA mode: it serves only while `role` leads.
    pub fn set_role(&self, role: Arc<crate::role::Role>) {
        let _ = self.role.set(role);
    }

    /// The HA role, when in HA mode.
    pub fn role(&self) -> Option<&Arc<crate::role::Role>> {
        self.role.get()
    }

    /// The term to stamp on answers now, or NOT_LEADER when this
    /// MetaService must not serve (a standby, or a leader whose lease no
    /// longer surely holds).
    pub(crate) fn serving_term(&self) -> Result<u64, Error> {
        match self.role.get() {
            None => Ok(0),
            Some(r) => r.check(),
        }
    }

    /// The cluster token, if one is required.
    pub fn token(&self) -> Option<&ClusterToken> {
        self.token.as_ref()
    }

    /// Runs the cluster-token handshake on a new control connection within
    /// [`auth::AUTH_TIMEOUT`]; on failure logs the peer and the reason and
    /// counts it. No frame is read before this succeeds.
    pub(crate) async fn authenticate<S>(&self, sock: &mut S) -> bool
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + PeerAddr,
    {
        let token = self.token.as_ref().map(ClusterToken::as_bytes);
        match auth::server_handshake_within(sock, token, Domain::Control, auth::AUTH_TIMEOUT).await {
            Ok(()) => true,
            Err(e) => {
                self.metrics
                    .auth_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let peer = sock.peer();
                tracing::warn!(%peer, error = %e, "control connection failed authentication; closing it");
                false
            }
        }
    }

    /// Accepts connections until the task is dropped (accept errors are
    /// logged and retried, never returned); also runs the periodic
    /// housekeeping.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        let ticker = {
            let this = self.clone();
            tokio::spawn(async move {
                let mut iv = tokio::time::interval(TICK);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    iv.tick().await;
                    this.state.tick();
                    this.ledger_changed.notify_waiters();
                }
            })
        };
        let _guard = AbortOnDrop(ticker);
        loop {
            let (sock, peer, permit) = self.conn_limit.accept(&listener).await;
            let _ = sock.set_nodelay(true);
            self.metrics
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let this = self.clone();
            tokio::spawn(async move {
                // Held until the connection ends: its slot under the limit.
                let _permit = permit;
                if let Err(e) = this.clone().connection(sock).await {
                    this.metrics
                        .bad_frames
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(%peer, error = %e, "closing control connection");
                }
            });
        }
    }

    async fn connection(self: Arc<Self>, mut sock: TcpStream) -> Result<(), FrameError> {
        if let Some(acceptor) = self.tls.get() {
            // TLS first; the cluster-token handshake runs inside it.
            let acceptor = acceptor.clone();
            return self.tls_connection(acceptor, sock).await;
        }
        if !self.authenticate(&mut sock).await {
            return Ok(());
        }
        let (rd, wr) = sock.into_split();
        let mut rd = self.bounded_reader(rd);
        let (tx, flusher) = FrameWriter::bounded(wr, MAX_ANSWER_BACKLOG);
        let _guard = AbortOnDrop(flusher);
        let sink = Sink::Tcp(tx.clone());
        // Poll for the next request only after a data-path one: heartbeats,
        // ledger polls and the like come seldom, and must not keep the
        // MetaService busy on an idle cluster.
        let mut spin = Duration::ZERO;
        let mut first = true;
        while let Some(f) = rd.next_frame(spin).await? {
            if std::mem::take(&mut first) {
                if let Some(offer) = ring_offer(&f) {
                    match self.accept_ring(offer, f.id, &tx, rd.has_partial()) {
                        Some(region) => {
                            self.metrics
                                .ring_connections
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return self.ring_connection(rd.half(), tx, region).await;
                        }
                        None => continue,
                    }
                }
            }
            let asked = self.serve_frame(f, &sink)?;
            spin = if self.tcp_polling { asked } else { Duration::ZERO };
            if tx.is_failed() {
                // Its answers cannot be written (or it does not read them).
                return Err(FrameError::Io(std::io::Error::other(format!(
                    "answers not written: the peer went away or left over {MAX_ANSWER_BACKLOG} bytes unread"
                ))));
            }
        }
        Ok(())
    }

    /// A reader of one control connection (socket or ring): frames
    /// bounded in time, and a small buffer while idle.
    fn bounded_reader<S: mmc_wire::frame_reader::ReadSource>(&self, rd: S) -> FrameReader<S> {
        FrameReader::new(rd)
            .frame_timeout(self.frame_timeout)
            .release_when_idle(IDLE_READ_BUF)
    }

    /// Answers a ring offer (request `id`) on the socket: accepted when
    /// this process can map the ring, which is returned; a refused offer is
    /// answered `Failed` and the connection stays on TCP.
    fn accept_ring(
        &self,
        (name, nonce): (String, u64),
        id: u64,
        tx: &FrameWriter,
        more_buffered: bool,
    ) -> Option<Arc<ShmRegion>> {
        let start = Instant::now();
        let r = if more_buffered {
            Err("frames followed the ring offer before its answer".to_string())
        } else {
            same_netns(&name).and_then(|()| ShmRegion::open(&name, nonce).map_err(|e| e.to_string()))
        };
        let resp = match &r {
            Ok(_) => Response::Ok,
            Err(e) => {
                tracing::debug!(error = %e, "control ring refused; connection stays on tcp");
                Response::Failed(Error::invalid(format!("control ring refused: {e}")))
            }
        };
        self.metrics
            .record(Metrics::op_index("attach_ring"), 0, r.is_err(), start.elapsed());
        let buf = frame::encode(FrameKind::Response, id, &resp).ok()?;
        tx.send(buf).ok()?;
        r.ok().map(Arc::new)
    }

    /// Serves a connection whose frames travel through `region`'s rings;
    /// the socket carries only doorbell bytes, and its end ends the
    /// connection.
    async fn ring_connection(
        self: Arc<Self>,
        sock: Arc<tokio::net::tcp::OwnedReadHalf>,
        bell: Arc<FrameWriter>,
        region: Arc<ShmRegion>,
    ) -> Result<(), FrameError> {
        let (sink, flusher) = RingSink::new(RingTx::new(region.clone(), shm_ring::TO_CLIENT), bell);
        let _flusher = AbortOnDrop(flusher);
        let mut rd = self.bounded_reader(RingRequests {
            rx: RingRx::new(region, shm_ring::TO_META),
            sock,
            sink: sink.clone(),
        });
        let sink = Sink::Ring(sink);
        let mut spin = Duration::ZERO;
        // When the previous request was served: the gap to the next one
        // sizes the poll after it.
        let mut served_at = Instant::now();
        while let Some(f) = rd.next_frame(spin).await? {
            let gap = served_at.elapsed();
            spin = ring_poll(self.serve_frame(f, &sink)?, gap);
            served_at = Instant::now();
        }
        Ok(())
    }

    /// Starts serving one request frame; returns how long to poll for the
    /// next one.
    pub(crate) fn serve_frame(self: &Arc<Self>, f: frame::Frame, sink: &Sink) -> Result<Duration, FrameError> {
        if f.kind != FrameKind::Request {
            return Err(FrameError::BadKind(f.kind as u8));
        }
        let (req, spin): (Request, Duration) = match f.decode() {
            Ok(r) => {
                let spin = if is_data_path(&r) {
                    self.spin_wait
                } else {
                    Duration::ZERO
                };
                (r, spin)
            }
            Err(e) => {
                self.metrics
                    .bad_frames
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let resp = Response::Failed(Error::invalid(format!("undecodable request: {e}")));
                sink.send(frame::encode(FrameKind::Response, f.id, &resp)?);
                return Ok(Duration::ZERO);
            }
        };
        let id = f.id;
        let this = self.clone();
        let sink = sink.clone();
        let mut fut = Box::pin(async move {
            let resp = this.handle(req).await;
            match frame::encode(FrameKind::Response, id, &resp) {
                Ok(buf) => sink.send(buf),
                Err(e) => {
                    let resp = Response::Failed(Error::Other(format!("response too large: {e}")));
                    if let Ok(buf) = frame::encode(FrameKind::Response, id, &resp) {
                        sink.send(buf);
                    }
                }
            }
        });
        // Run the request here; only one that has to wait (an alloc
        // waiting for evicted space, a ledger long poll) moves to a task
        // of its own, so it never holds up the requests behind it.
        let waker = std::task::Waker::noop();
        if fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
            .is_pending()
        {
            tokio::spawn(fut);
        }
        Ok(spin)
    }

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

    async fn dispatch(&self, req: Request) -> Response {
        let st = &self.state;
        // Fencing: checked on every request, so a leader whose lease lapsed
        // stops at once.
        let term = match self.serving_term() {
            Ok(t) => t,
            Err(e) => return Response::Failed(e),
        };
        match req {
            Request::Register(r) => match st.register(&r) {
                Ok((service_id, members_epoch)) => Response::Registered {
                    service_id,
                    lease_ms: st.params().lease_ms,
                    members_epoch,
                    ledger_epoch: st.ledger_epoch(service_id).unwrap_or(0),
                    term,
                },
                Err(e) => Response::Failed(e),
            },
            Request::Recover {
                service_id,
                entries,
                done,
            } => match st.recover(service_id, entries, done) {
                Ok(_) => {
                    self.ledger_changed.notify_waiters();
                    Response::Ok
                }
                Err(e) => Response::Failed(e),
            },
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
            Request::DrainPlan { service_id, max } => match st.drain_plan(service_id, max) {
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
            },
            Request::DrainCommit {
                service_id,
                moved,
                failed,
            } => {
                if moved.len() + failed.len() > 2 * mmc_wire::MAX_BATCH {
                    return Response::Failed(Error::invalid("drain commit carries more than two batches of keys"));
                }
                match st.drain_commit(service_id, &moved, &failed) {
                    Ok(()) => {
                        self.ledger_changed.notify_waiters();
                        Response::Ok
                    }
                    Err(e) => Response::Failed(e),
                }
            }
            Request::Alloc { writer, items } => {
                if let Err(e) = mmc_wire::validate_batch_len(items.len()) {
                    return Response::Failed(e);
                }
                self.alloc(writer, items, term).await
            }
            Request::Finish { writer, commit, revoke } => {
                if commit.len() + revoke.len() > 2 * mmc_wire::MAX_BATCH {
                    return Response::Failed(Error::invalid("finish carries more than two batches of keys"));
                }
                let commit = st.finish(writer, &commit, &revoke);
                self.ledger_changed.notify_waiters();
                Response::Finish { commit }
            }
            Request::Lookup { reader, keys } => {
                if let Err(e) = mmc_wire::validate_batch_len(keys.len()) {
                    return Response::Failed(e);
                }
                let (peers, items) = st.lookup(reader, &keys);
                Response::Lookup {
                    peers,
                    lease_ms: st.params().lease_ms,
                    items,
                }
            }
            Request::LookupLease { reader, keys, lease_ms } => {
                if let Err(e) = mmc_wire::validate_batch_len(keys.len()) {
                    return Response::Failed(e);
                }
                let lease_ms = crate::state::lease_for(st.params().lease_ms, lease_ms);
                let (peers, items) = st.lookup_for(reader, &keys, lease_ms);
                Response::Lookup { peers, lease_ms, items }
            }
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
            Request::Remove { keys } => match mmc_wire::validate_batch_len(keys.len()) {
                Ok(()) => {
                    let r = st.remove(&keys);
                    self.ledger_changed.notify_waiters();
                    Response::Remove(r)
                }
                Err(e) => Response::Failed(e),
            },
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
                    results[i] = Some(Err(Error::NotEnoughMemory(
                        "evicted space did not come back in time (segment owner not acknowledging)".into(),
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

/// Requests a client waits on while moving data (it polls for the answer).
fn is_data_path(r: &Request) -> bool {
    matches!(
        r,
        Request::Alloc { .. }
            | Request::Finish { .. }
            | Request::Lookup { .. }
            | Request::LookupLease { .. }
            | Request::Exist { .. }
            | Request::KeyInfo { .. }
            | Request::Remove { .. }
    )
}

/// Where a connection's answers go.
#[derive(Clone)]
pub(crate) enum Sink {
    Tcp(Arc<FrameWriter>),
    Ring(Arc<RingSink>),
    /// A TLS connection's writer task.
    Stream(mmc_wire::stream_writer::StreamWriter),
}

impl Sink {
    fn send(&self, buf: Vec<u8>) {
        match self {
            // A failed socket ends the connection's read loop too.
            Sink::Tcp(w) => {
                let _ = w.send(buf);
            }
            Sink::Ring(r) => r.send(buf),
            Sink::Stream(w) => {
                let _ = w.send(buf);
            }
        }
    }
}

/// Longest a ring connection is polled after a request.
const RING_POLL_MAX: Duration = Duration::from_millis(2);

/// How long to poll a ring connection after a request: `base` (the
/// configured poll, 0 for no polling), stretched to 1.5 times the gap that
/// preceded this request when that gap was under [`RING_POLL_MAX`]. A client
/// that copies 4 MiB (about 300 us here) between lookups then finds the
/// MetaService still polling instead of paying its wake-up each time, and a
/// client that pauses for longer costs only the configured poll.
fn ring_poll(base: Duration, gap: Duration) -> Duration {
    if base.is_zero() || gap > RING_POLL_MAX {
        base
    } else {
        base.max(gap + gap / 2).min(RING_POLL_MAX)
    }
}

/// The ring a frame offers, if it is an offer.
pub(crate) fn ring_offer(f: &frame::Frame) -> Option<(String, u64)> {
    if f.kind != FrameKind::Request {
        return None;
    }
    match f.decode::<Request>() {
        Ok(Request::AttachRing { name, nonce }) => Some((name, nonce)),
        _ => None,
    }
}

/// Accepts a ring only from a process in this network namespace: processes
/// in different namespaces count as different hosts (see the LocalService's
/// host id), whose control traffic must cross the network.
fn same_netns(name: &str) -> Result<(), String> {
    let pid = shm_ring::owner_pid(name).ok_or_else(|| format!("{name:?} is not /proc/<pid>/fd/<n>"))?;
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("network namespace of pid {pid}: {e}"))?;
    let ours = std::fs::read_link("/proc/self/ns/net").map_err(|e| format!("own network namespace: {e}"))?;
    if theirs == ours {
        Ok(())
    } else {
        Err("the client is in another network namespace".into())
    }
}

/// The peer of a control connection, for log lines.
pub(crate) trait PeerAddr {
    fn peer(&self) -> String;
}

impl PeerAddr for TcpStream {
    fn peer(&self) -> String {
        self.peer_addr().map_or_else(|_| "?".to_string(), |a| a.to_string())
    }
}

impl PeerAddr for mmc_tls::ServerTlsStream<TcpStream> {
    fn peer(&self) -> String {
        self.get_ref().0.peer()
    }
}

pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_poll_follows_the_gap_within_bounds() {
        let us = Duration::from_micros;
        assert_eq!(
            ring_poll(Duration::ZERO, us(300)),
            Duration::ZERO,
            "polling off stays off"
        );
        assert_eq!(
            ring_poll(us(200), us(10)),
            us(200),
            "short gaps keep the configured poll"
        );
        assert_eq!(ring_poll(us(200), us(300)), us(450), "a 300 us gap is covered");
        assert_eq!(ring_poll(us(200), us(1900)), RING_POLL_MAX, "capped");
        assert_eq!(
            ring_poll(us(200), us(5000)),
            us(200),
            "a long pause costs only the configured poll"
        );
    }
}
