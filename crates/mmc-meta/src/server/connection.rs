//! Control connections: accepting them (with the connection limit and
//! the cluster-token handshake), reading their frames from a socket or a
//! shared-memory ring, starting each request, and where answers go.

use super::{AbortOnDrop, PeerAddr, Server, IDLE_READ_BUF, MAX_ANSWER_BACKLOG, TICK};
use crate::metrics::Metrics;
use crate::ring_conn::{RingRequests, RingSink};
use mmc_wire::auth::{self, ClusterToken, Domain};
use mmc_wire::frame::{self, FrameError, FrameKind};
use mmc_wire::frame_reader::FrameReader;
use mmc_wire::frame_writer::FrameWriter;
use mmc_wire::message::{Request, Response};
use mmc_wire::shm_ring::{self, RingRx, RingTx, ShmRegion};
use mmc_wire::{Error, ErrorKind};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

impl Server {
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
                            return self.serve_ring(rd.half(), tx, region).await;
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

    /// Serves a ring connection on the ring runtime ([`ring_runtime`]),
    /// where it stays for its whole life; this task waits for it, and
    /// ending this task (the MetaService's runtime shutting down) ends it.
    async fn serve_ring(
        self: Arc<Self>,
        sock: Arc<tokio::net::tcp::OwnedReadHalf>,
        bell: Arc<FrameWriter>,
        region: Arc<ShmRegion>,
    ) -> Result<(), FrameError> {
        let Some(rt) = ring_runtime() else {
            return self.ring_connection(sock, bell, region).await;
        };
        let mut task = AbortOnDrop(rt.spawn(self.ring_connection(sock, bell, region)));
        match (&mut task.0).await {
            Ok(r) => r,
            Err(e) => Err(FrameError::Io(std::io::Error::other(format!(
                "ring connection ended: {e}"
            )))),
        }
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
                let resp = Response::Failed(Error::caused_by(ErrorKind::InvalidParam, "undecodable request", e));
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
                    let resp = Response::Failed(Error::caused_by(ErrorKind::Other, "response too large", e));
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

/// The runtime every ring connection of this process is served on: one
/// worker thread of its own (`mmc-meta-ring`), started with the first ring
/// connection; `None` if it cannot be started (ring connections then run
/// where they were accepted).
///
/// A ring connection polls its ring between requests, handing the worker
/// back to the runtime after every look. On the MetaService's own
/// multi-threaded runtime every such hand-off let another worker steal the
/// task, so it moved between threads (and vCPUs) and woke parked workers
/// many times per request: from a client in another process, one `exist`
/// took 10-12 us against 4 us with the MetaService in the client's process
/// on a one-worker runtime (docs/benchmarks.md, "Small operations from
/// another process"). On a runtime of its own a polling connection stays
/// on one thread, and the MetaService's other work (heartbeats, TCP
/// clients, HTTP) keeps the main runtime's workers.
fn ring_runtime() -> Option<&'static tokio::runtime::Handle> {
    static RT: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mmc-meta-ring")
            .enable_all()
            .build()
            .map_err(|e| tracing::warn!(error = %e, "cannot start the ring runtime; rings run on the main runtime"))
            .ok()
    })
    .as_ref()
    .map(|rt| rt.handle())
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
