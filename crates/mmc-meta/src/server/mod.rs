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
//!
//! Layout: this file holds [`Server`] (its settings and shared parts) and
//! the small helpers every connection kind uses; `connection` accepts
//! connections and reads their frames (TCP, shared-memory rings) and where
//! answers go; `dispatch` handles each request (fencing, the waits of
//! alloc and ledger polls, metrics).

use crate::metrics::Metrics;
use crate::state::MetaState;
use mmc_wire::auth::ClusterToken;
use mmc_wire::listen::ConnLimit;
use mmc_wire::Error;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;

mod connection;
mod dispatch;

pub(crate) use connection::{ring_offer, Sink};

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

pub(crate) struct AbortOnDrop<T = ()>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
