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

use crate::spin_conn::{answer, SpinConn, Waiter};
use mmc_wire::auth::{self, ClusterToken, Domain};
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::frame_writer::FrameWriter;
use mmc_wire::message::{Request, Response};
use mmc_wire::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

enum ConnectError {
    Io(std::io::Error),
    ConnectTimeout,
    Auth(auth::AuthError),
    AuthTimeout,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

struct Conn {
    writer: Arc<FrameWriter>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    flusher: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

pub struct MetaClient {
    addr: Mutex<String>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    fast: Mutex<Option<Arc<SpinConn>>>,
    /// Serialises reopening the data-path connection.
    fast_open: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    timeout: Duration,
    /// How long [`call_fast`](Self::call_fast) polls for its answer.
    spin_wait: Duration,
    /// Offer the MetaService a shared-memory ring for the data-path
    /// connection (used when it runs on the same host).
    offer_ring: bool,
    /// The cluster token proved on every connection (`None`: open mode).
    token: Option<ClusterToken>,
    handle: Handle,
}

impl MetaClient {
    /// A client for `addr`; background tasks run on `handle`;
    /// [`call_fast`](Self::call_fast) polls for its answer for `spin_wait`.
    pub fn new(addr: String, timeout: Duration, spin_wait: Duration, handle: Handle) -> Self {
        MetaClient {
            addr: Mutex::new(addr),
            conn: tokio::sync::Mutex::new(None),
            fast: Mutex::new(None),
            fast_open: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            timeout,
            spin_wait,
            offer_ring: true,
            token: None,
            handle,
        }
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

    /// Whether the current data-path connection runs over a shared-memory
    /// ring (`None`: not connected).
    pub fn data_path_uses_ring(&self) -> Option<bool> {
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
        let sock = self.connect().await?;
        let (mut rd, wr) = sock.into_split();
        let (writer, flusher) = {
            let _rt = self.handle.enter();
            FrameWriter::new(wr)
        };
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        {
            let alive = alive.clone();
            let pending = pending.clone();
            self.handle.spawn(async move {
                loop {
                    match frame::read_frame(&mut rd).await {
                        Ok(Some(f)) if f.kind == FrameKind::Response => {
                            let resp = f.decode::<Response>().unwrap_or_else(|e| {
                                Response::Failed(Error::Other(format!("undecodable response: {e}")))
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
            });
        }
        let c = Arc::new(Conn {
            writer,
            pending,
            alive,
            flusher,
        });
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Opens a TCP connection to the MetaService on our own runtime, so the
    /// socket is driven by it whatever runtime (or thread) the caller is on,
    /// and authenticates it; connect and handshake share one timeout. A
    /// connect that fails or does not finish is NOT_CONNECTED_META; a
    /// service that accepts but does not complete the handshake in time is
    /// TIMEOUT (as a request it never answered would be).
    async fn connect(&self) -> Result<TcpStream> {
        let addr = self.addr();
        let timeout = self.timeout.min(Duration::from_secs(3));
        let token = self.token.clone();
        let r = self
            .handle
            .spawn(async move {
                let deadline = tokio::time::Instant::now() + timeout;
                let mut sock = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(ConnectError::Io(e)),
                    Err(_) => return Err(ConnectError::ConnectTimeout),
                };
                let _ = sock.set_nodelay(true);
                let token = token.as_ref().map(ClusterToken::as_bytes);
                match tokio::time::timeout_at(deadline, auth::client_handshake(&mut sock, token, Domain::Control)).await
                {
                    Ok(Ok(())) => Ok(sock),
                    Ok(Err(e)) => Err(ConnectError::Auth(e)),
                    Err(_) => Err(ConnectError::AuthTimeout),
                }
            })
            .await
            .map_err(|e| Error::Other(format!("connect task failed: {e}")))?;
        let addr = self.addr();
        r.map_err(|e| match e {
            ConnectError::Io(e) => Error::NotConnectedMeta(format!("connect to {addr}: {e}")),
            ConnectError::ConnectTimeout => Error::NotConnectedMeta(format!("connect to {addr} timed out")),
            ConnectError::Auth(e) => {
                Error::NotConnectedMeta(format!("authentication with the metaservice at {addr} failed: {e}"))
            }
            ConnectError::AuthTimeout => Error::Timeout(format!(
                "{addr} accepted the connection but did not complete the authentication handshake within {timeout:?}"
            )),
        })
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
        .map_err(|e| Error::NotConnectedMeta(format!("connection to {}: {e}", self.addr())))?;
        let offer_ring = self.offer_ring;
        let timeout = self.timeout;
        // The ring offer is a blocking exchange: off the async threads.
        let c = self
            .handle
            .spawn_blocking(move || SpinConn::open(std_sock, timeout, offer_ring))
            .await
            .map_err(|e| Error::Other(format!("connect task failed: {e}")))?
            .map_err(|e| Error::NotConnectedMeta(format!("connection to {}: {e}", self.addr())))?;
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
            .map_err(|e| Error::invalid(format!("request cannot be encoded: {e}")))?;
        conn.send(id, &buf, waiter)?;
        Ok((conn, id))
    }

    /// Sends a data-path request the MetaService answers at once and waits
    /// for the answer: the calling thread polls the connection for up to
    /// `local.spin_wait_us`, then sleeps until it comes.
    pub async fn call_fast(&self, req: &Request) -> Result<Response> {
        let (tx, rx) = oneshot::channel();
        let (conn, id) = self.send_fast(req, Waiter::Call(tx)).await?;
        conn.wait(id, rx, self.spin_wait, self.timeout).await
    }

    /// Sends a data-path request whose answer nobody waits for. It is on
    /// the connection (ordered before any later data-path request of this
    /// client) when this returns; a failure in the answer is logged.
    pub async fn send_only(&self, req: &Request, what: &'static str) -> Result<()> {
        self.send_fast(req, Waiter::Log(what)).await.map(|_| ())
    }

    /// Sends one request and waits for its response. `Response::Failed`
    /// becomes `Err`.
    pub async fn call(&self, req: &Request) -> Result<Response> {
        self.call_timeout(req, self.timeout).await
    }

    /// Registers and sends a request; returns the receiver of its answer.
    async fn start(&self, req: &Request) -> Result<(Arc<Conn>, u64, oneshot::Receiver<Response>)> {
        let conn = self.connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let buf = frame::encode(FrameKind::Request, id, req)
            .map_err(|e| Error::invalid(format!("request cannot be encoded: {e}")))?;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(id, tx);
        if conn.writer.send(buf).is_err() {
            conn.pending.lock().remove(&id);
            conn.alive.store(false, Ordering::Release);
            return Err(Error::NotConnectedMeta("connection closed".into()));
        }
        Ok((conn, id, rx))
    }

    pub async fn call_timeout(&self, req: &Request, timeout: Duration) -> Result<Response> {
        let (conn, id, rx) = self.start(req).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(r) => answer(r.map_err(|_| ())),
            Err(_) => {
                conn.pending.lock().remove(&id);
                Err(Error::Timeout(format!("metaservice did not answer within {timeout:?}")))
            }
        }
    }

    /// Drops the current connection (the next call reconnects).
    pub async fn reset(&self) {
        if let Some(c) = self.conn.lock().await.take() {
            c.alive.store(false, Ordering::Release);
        }
        if let Some(c) = self.fast.lock().take() {
            c.close();
        }
    }
}

/// Error for a response of the wrong kind.
pub fn unexpected(resp: Response) -> Error {
    Error::Other(format!("unexpected response from metaservice: {resp:?}"))
}

impl Drop for MetaClient {
    fn drop(&mut self) {
        if let Some(c) = self.fast.lock().take() {
            c.close();
        }
    }
}
