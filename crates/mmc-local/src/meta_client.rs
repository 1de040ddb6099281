//! Control-RPC client to the MetaService.
//!
//! Two TCP connections, each pipelined (every request gets an id and answers
//! are routed back by id, so requests complete out of order):
//! - the control connection ([`call`](MetaClient::call)): registration,
//!   heartbeats, ledger long polls, lease releases, membership; a reader task
//!   on the async runtime routes its answers;
//! - the data-path connection ([`call_fast`](MetaClient::call_fast),
//!   [`send_only`](MetaClient::send_only)): alloc, finish, lookup, exist,
//!   remove; its callers poll for their own answers first (see
//!   [`spin_conn`](crate::spin_conn)). Requests on it are processed in the
//!   order they are sent.
//!
//! Connections are opened lazily and reopened after a failure; while the
//! MetaService is unreachable calls fail fast with NOT_CONNECTED_META.
//! Every new connection runs the cluster-token handshake
//! ([`mmc_wire::auth`], control domain) before its first frame; a failed
//! handshake is NOT_CONNECTED_META with the reason.
//!
//! With TLS (`local.security.tls.enable`, see [`with_tls`](MetaClient::with_tls))
//! both connections run the TLS handshake after connecting, then the
//! cluster-token handshake inside TLS, and the data-path connection is a
//! second pipelined [`Conn`] over its TLS stream instead of a polled
//! [`SpinConn`] (which reads a raw socket): its callers sleep until the
//! answer comes, and requests on it still reach the MetaService in the order
//! they are sent.
//!
//! In an HA cluster ([`with_leader_resolver`](MetaClient::with_leader_resolver))
//! every new connection goes to the leader etcd names at that moment: the
//! client looks it up, connects, and on failure (no leader yet, the named
//! one dead) looks again with a growing back-off until `local.leader_wait_ms`
//! passes, then fails with NOT_CONNECTED_META saying so. A NOT_LEADER answer
//! drops the connections so that the next call finds the leader again.
//! Answers carrying a leader term ([`Response::leader_term`]) older than one
//! already seen come from a deposed leader and are refused as NOT_LEADER
//! (fencing); a change of leader wakes [`leader_changed`](MetaClient::leader_changed).

use crate::clock::{Backoff, RetryWindow, TokioClock};
use crate::leader::LeaderResolver;
use crate::spin_conn::{answer, SpinConn, Waiter};
use mmc_tls::ClientTls;
use mmc_wire::auth::{self, ClusterToken, Domain};
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::frame_writer::FrameWriter;
use mmc_wire::message::{Request, Response};
use mmc_wire::stream_writer::StreamWriter;
use mmc_wire::{Error, ErrorKind, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

enum ConnectError {
    Io(std::io::Error),
    ConnectTimeout,
    Tls(std::io::Error),
    Auth(auth::AuthError),
    AuthTimeout,
}

/// A connection opened and authenticated: plain TCP, or TLS over TCP.
enum Opened {
    Tcp(TcpStream),
    Tls(Box<mmc_tls::ClientTlsStream<TcpStream>>),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

struct Conn {
    writer: ConnWriter,
    pending: Pending,
    alive: Arc<AtomicBool>,
    flusher: tokio::task::JoinHandle<()>,
    /// Routes answers; stopped with the connection (a TLS stream stays
    /// open while its read half lives).
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.flusher.abort();
        self.reader.abort();
    }
}

/// How a [`Conn`] writes frames.
enum ConnWriter {
    /// Straight into the socket when it can take them.
    Tcp(Arc<FrameWriter>),
    /// Through a writer task (TLS).
    Stream(StreamWriter),
}

impl ConnWriter {
    fn send(&self, buf: Vec<u8>) -> std::io::Result<()> {
        match self {
            ConnWriter::Tcp(w) => w.send(buf),
            ConnWriter::Stream(w) => w.send(buf),
        }
    }
}

pub struct MetaClient {
    addr: Mutex<String>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    fast: Mutex<Option<Arc<SpinConn>>>,
    /// Serialises reopening the data-path connection.
    fast_open: tokio::sync::Mutex<()>,
    /// TLS settings; `None`: plain TCP.
    tls: Option<ClientTls>,
    /// The data-path connection when TLS is on (`fast` is unused then).
    fast_tls: Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
    timeout: Duration,
    /// How long [`call_fast`](Self::call_fast) polls for its answer.
    spin_wait: Duration,
    /// Offer the MetaService a shared-memory ring for the data-path
    /// connection (used when it runs on the same host).
    offer_ring: bool,
    /// The cluster token proved on every connection (`None`: open mode).
    token: Option<ClusterToken>,
    /// How long a refused or unanswered connect keeps being retried.
    connect_retry: Duration,
    handle: Handle,
    /// Finds the HA leader in etcd; `None`: `addr` is fixed.
    resolver: Option<Arc<LeaderResolver>>,
    /// How long a connection attempt waits for a leader to appear.
    leader_wait: Duration,
    /// The highest leader term seen in any answer (fencing).
    max_term: AtomicU64,
    /// The term of the leader etcd named last.
    resolved_term: AtomicU64,
    /// Woken when etcd names another leader than before.
    leader_changed: tokio::sync::Notify,
}

/// Pause between two connects to a MetaService that cannot be reached
/// (the original MemCache's retry interval).
pub const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(200);

impl MetaClient {
    /// A client for `addr`; background tasks run on `handle`;
    /// [`call_fast`](Self::call_fast) polls for its answer for `spin_wait`.
    pub fn new(addr: String, timeout: Duration, spin_wait: Duration, handle: Handle) -> Self {
        MetaClient {
            addr: Mutex::new(addr),
            conn: tokio::sync::Mutex::new(None),
            fast: Mutex::new(None),
            fast_open: tokio::sync::Mutex::new(()),
            tls: None,
            fast_tls: Mutex::new(None),
            next_id: AtomicU64::new(1),
            timeout,
            spin_wait,
            offer_ring: true,
            token: None,
            connect_retry: Duration::ZERO,
            handle,
            resolver: None,
            leader_wait: Duration::ZERO,
            max_term: AtomicU64::new(0),
            resolved_term: AtomicU64::new(0),
            leader_changed: tokio::sync::Notify::new(),
        }
    }

    /// Finds the MetaService leader through `resolver` (HA mode) instead of
    /// the fixed address, waiting up to `wait` for one on each connection
    /// attempt.
    pub fn with_leader_resolver(mut self, resolver: Option<Arc<LeaderResolver>>, wait: Duration) -> Self {
        self.resolver = resolver;
        self.leader_wait = wait;
        self
    }

    /// Resolves when etcd names a new leader (HA mode): the LocalService
    /// then registers with it at once.
    pub async fn leader_changed(&self) {
        self.leader_changed.notified().await
    }

    /// The highest leader term seen so far (0 outside HA mode).
    pub fn leader_term(&self) -> u64 {
        self.max_term.load(Ordering::Acquire)
    }

    /// Checks an answer: NOT_LEADER drops the connections (the next call
    /// finds the leader again); an answer stamped with a leader term older
    /// than one seen is from a deposed leader and refused.
    async fn vet(&self, r: Result<Response>) -> Result<Response> {
        match r {
            Err(e) if e.kind() == ErrorKind::NotLeader => {
                self.reset().await;
                Err(e)
            }
            Ok(resp) => {
                if let Some(t) = resp.leader_term() {
                    let seen = self.max_term.fetch_max(t, Ordering::AcqRel);
                    if t < seen {
                        tracing::warn!(term = t, seen, "refused an answer of a deposed metaservice leader");
                        self.reset().await;
                        return Err(Error::new(ErrorKind::NotLeader, format!(
                            "answer stamped with leader term {t}, older than term {seen} already seen: \
                             it comes from a deposed leader"
                        )));
                    }
                }
                Ok(resp)
            }
            Err(e) => Err(e),
        }
    }

    /// While the MetaService refuses or does not answer connections, keep
    /// trying every [`CONNECT_RETRY_INTERVAL`] for up to `window` before
    /// failing with NOT_CONNECTED_META (`local.meta_retry_ms`; zero, the
    /// default, fails at once).
    pub fn with_connect_retry(mut self, window: Duration) -> Self {
        self.connect_retry = window;
        self
    }

    /// The cluster token to prove on every connection.
    pub fn with_token(mut self, token: Option<ClusterToken>) -> Self {
        self.token = token;
        self
    }

    /// Whether the data-path connection offers a shared-memory ring to a
    /// MetaService on the same host (on by default).
    pub fn with_shm_ring(mut self, on: bool) -> Self {
        self.offer_ring = on;
        self
    }

    /// Both connections speak TLS with these settings (`None`: plain
    /// TCP). Shared-memory rings are then never offered.
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Whether the current data-path connection runs over a shared-memory
    /// ring (`None`: not connected).
    pub fn data_path_uses_ring(&self) -> Option<bool> {
        if self.tls.is_some() {
            return self.live_fast_tls().map(|_| false);
        }
        self.live_fast().map(|c| c.uses_ring())
    }

    pub fn addr(&self) -> String {
        self.addr.lock().clone()
    }

    async fn connection(&self) -> Result<Arc<Conn>> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.alive.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        let c = self.open_conn().await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Opens a pipelined connection: TLS when configured, else plain TCP.
    async fn open_conn(&self) -> Result<Arc<Conn>> {
        if let Some(tls) = &self.tls {
            let (rd, wr) = tokio::io::split(self.connect_tls(tls).await?);
            let (writer, flusher) = {
                let _rt = self.handle.enter();
                StreamWriter::spawn(wr)
            };
            return Ok(self.start_conn(rd, ConnWriter::Stream(writer), flusher));
        }
        let (rd, wr) = self.connect().await?.into_split();
        let (writer, flusher) = {
            let _rt = self.handle.enter();
            FrameWriter::new(wr)
        };
        Ok(self.start_conn(rd, ConnWriter::Tcp(writer), flusher))
    }

    /// Starts the task routing answers read from `rd`.
    fn start_conn<R>(&self, mut rd: R, writer: ConnWriter, flusher: tokio::task::JoinHandle<()>) -> Arc<Conn>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let reader = {
            let alive = alive.clone();
            let pending = pending.clone();
            self.handle.spawn(async move {
                loop {
                    match frame::read_frame(&mut rd).await {
                        Ok(Some(f)) if f.kind == FrameKind::Response => {
                            let resp = f.decode::<Response>().unwrap_or_else(|e| {
                                Response::Failed(Error::caused_by(ErrorKind::Other, "undecodable response", e))
                            });
                            if let Some(tx) = pending.lock().remove(&f.id) {
                                let _ = tx.send(resp);
                            }
                        }
                        Ok(Some(_)) => {
                            tracing::warn!("metaservice sent a request frame; closing");
                            break;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "metaservice connection failed");
                            break;
                        }
                    }
                }
                alive.store(false, Ordering::Release);
                // Dropping the senders fails every waiting call.
                pending.lock().clear();
            })
        };
        Arc::new(Conn {
            writer,
            pending,
            alive,
            flusher,
            reader,
        })
    }

    /// Opens a TCP connection to the MetaService on our own runtime, so the
    /// socket is driven by it whatever runtime (or thread) the caller is on,
    /// and authenticates it; connect and handshake share one timeout. A
    /// connect that fails or does not finish is NOT_CONNECTED_META; a
    /// service that accepts but does not complete the handshake in time is
    /// TIMEOUT (as a request it never answered would be).
    async fn connect(&self) -> Result<TcpStream> {
        self.open_authenticated(None).await.map(|s| match s {
            Opened::Tcp(s) => s,
            Opened::Tls(_) => unreachable!("no TLS requested"),
        })
    }

    /// Opens a TCP connection, runs the TLS handshake on it, then the
    /// cluster-token handshake inside TLS (on our own runtime, within the
    /// connect timeout).
    async fn connect_tls(&self, tls: &ClientTls) -> Result<mmc_tls::ClientTlsStream<TcpStream>> {
        self.open_authenticated(Some(tls.clone())).await.map(|s| match s {
            Opened::Tls(s) => *s,
            Opened::Tcp(_) => unreachable!("TLS requested"),
        })
    }

    /// One try of [`open_authenticated`](Self::open_authenticated).
    async fn attempt(
        at: &str,
        tls: Option<ClientTls>,
        token: Option<&ClusterToken>,
        timeout: Duration,
    ) -> std::result::Result<Opened, ConnectError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let sock = match tokio::time::timeout_at(deadline, TcpStream::connect(at)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ConnectError::Io(e)),
            Err(_) => return Err(ConnectError::ConnectTimeout),
        };
        let _ = sock.set_nodelay(true);
        let token = token.map(ClusterToken::as_bytes);
        let mut opened = match tls {
            None => Opened::Tcp(sock),
            Some(tls) => match tokio::time::timeout_at(deadline, tls.connect(at, sock)).await {
                Ok(Ok(s)) => Opened::Tls(Box::new(s)),
                Ok(Err(e)) => return Err(ConnectError::Tls(e)),
                Err(_) => return Err(ConnectError::ConnectTimeout),
            },
        };
        let handshake = match &mut opened {
            Opened::Tcp(s) => {
                tokio::time::timeout_at(deadline, auth::client_handshake(s, token, Domain::Control)).await
            }
            Opened::Tls(s) => {
                tokio::time::timeout_at(deadline, auth::client_handshake(&mut **s, token, Domain::Control))
                    .await
            }
        };
        match handshake {
            Ok(Ok(())) => Ok(opened),
            Ok(Err(e)) => Err(ConnectError::Auth(e)),
            Err(_) => Err(ConnectError::AuthTimeout),
        }
    }

    /// TCP connect, TLS handshake when `tls`, then the cluster-token
    /// handshake over the resulting stream, all within one timeout. While
    /// the connect itself fails (refused, or not answered in time) it is
    /// tried again every [`CONNECT_RETRY_INTERVAL`] for up to the connect
    /// retry window ([`with_connect_retry`](Self::with_connect_retry)).
    async fn open_authenticated(&self, tls: Option<ClientTls>) -> Result<Opened> {
        let Some(resolver) = &self.resolver else {
            return self.open_at(self.addr(), tls).await;
        };
        let clock = TokioClock;
        let mut backoff = Backoff::start(&clock, self.leader_wait);
        loop {
            let err = match resolver.resolve().await {
                Ok(Some(l)) => {
                    let before = self.resolved_term.swap(l.term, Ordering::AcqRel);
                    if before != l.term {
                        tracing::info!(leader = %l.addr, term = l.term, "metaservice leader found in etcd");
                        *self.addr.lock() = l.addr.clone();
                        if before != 0 {
                            self.leader_changed.notify_waiters();
                        }
                    }
                    match self.open_at(l.addr, tls.clone()).await {
                        Ok(o) => return Ok(o),
                        Err(e) => e.to_string(),
                    }
                }
                Ok(None) => "etcd names no leader".to_string(),
                Err(e) => e.to_string(),
            };
            let Some(pause) = backoff.next_pause(&clock) else {
                return Err(Error::new(ErrorKind::NotConnectedMeta, format!(
                    "no metaservice leader of {} could be reached within {:?} (local.leader_wait_ms): {err}",
                    resolver.describe(),
                    self.leader_wait
                )));
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// [`open_authenticated`](Self::open_authenticated) at `addr`.
    async fn open_at(&self, addr: String, tls: Option<ClientTls>) -> Result<Opened> {
        let timeout = self.timeout.min(Duration::from_secs(3));
        let token = self.token.clone();
        let at = addr.clone();
        let retry = self.connect_retry;
        let r = self
            .handle
            .spawn(async move {
                let clock = TokioClock;
                let window = RetryWindow::start(&clock, retry);
                loop {
                    match Self::attempt(&at, tls.clone(), token.as_ref(), timeout).await {
                        Err(ConnectError::Io(_) | ConnectError::ConnectTimeout)
                            if window.again_after(&clock, CONNECT_RETRY_INTERVAL) =>
                        {
                            tokio::time::sleep(CONNECT_RETRY_INTERVAL).await;
                        }
                        r => return r,
                    }
                }
            })
            .await
            .map_err(|e| Error::caused_by(ErrorKind::Other, "connect task failed", e))?;
        r.map_err(|e| match e {
            ConnectError::Io(e) => Error::caused_by(ErrorKind::NotConnectedMeta, format!("connect to {addr}"), e),
            ConnectError::ConnectTimeout => Error::new(ErrorKind::NotConnectedMeta, format!("connect to {addr} timed out")),
            ConnectError::Tls(e) => Error::caused_by(ErrorKind::NotConnectedMeta, format!("TLS handshake with {addr}"), e),
            ConnectError::Auth(e) => {
                Error::caused_by(ErrorKind::NotConnectedMeta, format!("authentication with the metaservice at {addr} failed"), e)
            }
            ConnectError::AuthTimeout => Error::new(ErrorKind::Timeout, format!(
                "{addr} accepted the connection but did not complete the authentication handshake within {timeout:?} \
                 (a TLS port waits for a TLS client: see local.security.tls)"
            )),
        })
    }

    fn live_fast_tls(&self) -> Option<Arc<Conn>> {
        self.fast_tls
            .lock()
            .as_ref()
            .filter(|c| c.alive.load(Ordering::Acquire))
            .cloned()
    }

    /// The TLS data-path connection, opened if needed.
    async fn fast_tls_connection(&self) -> Result<Arc<Conn>> {
        if let Some(c) = self.live_fast_tls() {
            return Ok(c);
        }
        let _g = self.fast_open.lock().await;
        if let Some(c) = self.live_fast_tls() {
            return Ok(c);
        }
        let c = self.open_conn().await?;
        *self.fast_tls.lock() = Some(c.clone());
        Ok(c)
    }

    fn live_fast(&self) -> Option<Arc<SpinConn>> {
        self.fast.lock().as_ref().filter(|c| c.is_alive()).cloned()
    }

    /// The data-path connection, opened if needed.
    async fn fast_connection(&self) -> Result<Arc<SpinConn>> {
        if let Some(c) = self.live_fast() {
            return Ok(c);
        }
        let _g = self.fast_open.lock().await;
        if let Some(c) = self.live_fast() {
            return Ok(c);
        }
        let sock = self.connect().await?;
        let std_sock = {
            // Deregistering from the runtime needs its context.
            let _rt = self.handle.enter();
            sock.into_std()
        }
        .map_err(|e| Error::caused_by(ErrorKind::NotConnectedMeta, format!("connection to {}", self.addr()), e))?;
        let offer_ring = self.offer_ring;
        let timeout = self.timeout;
        // The ring offer is a blocking exchange: off the async threads.
        let c = self
            .handle
            .spawn_blocking(move || SpinConn::open(std_sock, timeout, offer_ring))
            .await
            .map_err(|e| Error::caused_by(ErrorKind::Other, "connect task failed", e))?
            .map_err(|e| Error::caused_by(ErrorKind::NotConnectedMeta, format!("connection to {}", self.addr()), e))?;
        if let Some(old) = self.fast.lock().replace(c.clone()) {
            old.close();
        }
        Ok(c)
    }

    /// Sends a request on the data-path connection.
    async fn send_fast(&self, req: &Request, waiter: Waiter) -> Result<(Arc<SpinConn>, u64)> {
        let conn = self.fast_connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let buf = frame::encode(FrameKind::Request, id, req)
            .map_err(|e| Error::caused_by(ErrorKind::InvalidParam, "request cannot be encoded", e))?;
        conn.send(id, &buf, waiter)?;
        Ok((conn, id))
    }

    /// Sends a data-path request the MetaService answers at once and waits
    /// for the answer: the calling thread polls the connection for up to
    /// `local.spin_wait_us`, then sleeps until it comes.
    pub async fn call_fast(&self, req: &Request) -> Result<Response> {
        if self.tls.is_some() {
            let (conn, id, rx) = self.send_on(self.fast_tls_connection().await?, req)?;
            let r = wait_on(&conn, id, rx, self.timeout).await;
            return self.vet(r).await;
        }
        let (tx, rx) = oneshot::channel();
        let (conn, id) = self.send_fast(req, Waiter::Call(tx)).await?;
        let r = conn.wait(id, rx, self.spin_wait, self.timeout).await;
        self.vet(r).await
    }

    /// Sends a data-path request whose answer nobody waits for. It is on
    /// the connection (ordered before any later data-path request of this
    /// client) when this returns; a failure in the answer is logged.
    pub async fn send_only(&self, req: &Request, what: &'static str) -> Result<()> {
        if self.tls.is_some() {
            let (_, _, rx) = self.send_on(self.fast_tls_connection().await?, req)?;
            self.handle.spawn(async move {
                if let Ok(Response::Failed(e)) = rx.await {
                    tracing::warn!(what, error = %e, "request failed");
                }
            });
            return Ok(());
        }
        self.send_fast(req, Waiter::Log(what)).await.map(|_| ())
    }

    /// Sends one request and waits for its response. `Response::Failed`
    /// becomes `Err`.
    pub async fn call(&self, req: &Request) -> Result<Response> {
        self.call_timeout(req, self.timeout).await
    }

    /// Registers and sends a request; returns the receiver of its answer.
    async fn start(&self, req: &Request) -> Result<(Arc<Conn>, u64, oneshot::Receiver<Response>)> {
        self.send_on(self.connection().await?, req)
    }

    /// Registers and sends a request on `conn`.
    fn send_on(&self, conn: Arc<Conn>, req: &Request) -> Result<(Arc<Conn>, u64, oneshot::Receiver<Response>)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let buf = frame::encode(FrameKind::Request, id, req)
            .map_err(|e| Error::caused_by(ErrorKind::InvalidParam, "request cannot be encoded", e))?;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(id, tx);
        if conn.writer.send(buf).is_err() {
            conn.pending.lock().remove(&id);
            conn.alive.store(false, Ordering::Release);
            return Err(Error::new(ErrorKind::NotConnectedMeta, "connection closed"));
        }
        // The reader may have ended (and failed every pending call) before
        // this one was registered: nobody would answer it.
        if !conn.alive.load(Ordering::Acquire) && conn.pending.lock().remove(&id).is_some() {
            return Err(Error::new(ErrorKind::NotConnectedMeta, "connection to the metaservice was lost"));
        }
        Ok((conn, id, rx))
    }

    pub async fn call_timeout(&self, req: &Request, timeout: Duration) -> Result<Response> {
        let (conn, id, rx) = self.start(req).await?;
        let r = wait_on(&conn, id, rx, timeout).await;
        self.vet(r).await
    }

    /// Drops the current connection (the next call reconnects).
    pub async fn reset(&self) {
        if let Some(c) = self.conn.lock().await.take() {
            c.alive.store(false, Ordering::Release);
        }
        if let Some(c) = self.fast.lock().take() {
            c.close();
        }
        if let Some(c) = self.fast_tls.lock().take() {
            c.alive.store(false, Ordering::Release);
        }
    }
}

/// Waits up to `timeout` for the answer to request `id` on `conn`.
async fn wait_on(conn: &Conn, id: u64, rx: oneshot::Receiver<Response>, timeout: Duration) -> Result<Response> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(r) => answer(r.map_err(|_| ())),
        Err(_) => {
            conn.pending.lock().remove(&id);
            Err(Error::new(ErrorKind::Timeout, format!("metaservice did not answer within {timeout:?}")))
        }
    }
}

/// Error for a response of the wrong kind.
pub fn unexpected(resp: Response) -> Error {
    Error::other(format!("unexpected response from metaservice: {resp:?}"))
}

impl Drop for MetaClient {
    fn drop(&mut self) {
        if let Some(c) = self.fast.lock().take() {
            c.close();
        }
    }
}
