//! The HTTP listener: accepts connections (at most [`MAX_CONNECTIONS`] at
//! once, more are answered 503), runs TLS with the control port's acceptor
//! when TLS is on, and serves each connection with hyper's HTTP/1.1 server
//! under the limits that protect it from slow or hostile clients:
//!
//! - request heads of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields
//!   (431 beyond; hyper's parser answers malformed heads with 400);
//! - a whole head must arrive within [`Limits::read_timeout`], which is
//!   also how long an idle keep-alive connection stays open (slowloris);
//! - a write that makes no progress for [`Limits::write_timeout`] ends the
//!   connection (a peer that stops reading);
//! - a closed connection is drained for a moment first ([`Guarded`]), so
//!   that a final error answer is not destroyed by a reset.
//!
//! Requests are checked and answered by [`super::routes`]; the endpoints
//! that walk the index run on the blocking pool.

use super::routes::{self, Resp};
use super::RoleFn;
use crate::server::Server;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request head (request line plus headers) accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 100;
/// Most connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long the 503 answer of a connection beyond the limit may take, and
/// how long its input is drained after it.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pauses after a failed accept (out of descriptors): doubling within these.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How many bytes are drained, at most, before closing.
const LINGER_MAX_BYTES: usize = 256 * 1024;

/// Limits of one HTTP listener. [`serve_http`] uses the defaults; tests
/// shorten the timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a whole request head may take to arrive (also the
    /// keep-alive idle timeout).
    pub read_timeout: Duration,
    /// How long a write may make no progress.
    pub write_timeout: Duration,
    /// How long input is drained before closing.
    pub linger: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(2),
        }
    }
}

/// Serves the HTTP endpoint on `listener` forever, one task per connection.
/// Transient accept failures (such as running out of file descriptors) are
/// logged and retried; the function only returns if the task is dropped.
pub async fn serve_http(server: Arc<Server>, listener: TcpListener, role: RoleFn) -> std::io::Result<()> {
    serve_http_with(server, listener, role, Limits::default()).await
}

/// [`serve_http`] with explicit limits.
pub async fn serve_http_with(
    server: Arc<Server>,
    listener: TcpListener,
    role: RoleFn,
    limits: Limits,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let accept_log = mmc_wire::listen::RateLimitedLog::default();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                if let Some(suppressed) = accept_log.admit() {
                    tracing::warn!(error = %e, suppressed, "http accept failed; retrying in {backoff:?}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        let _ = sock.set_nodelay(true);
        let (server, role, slots, limits) = (server.clone(), role.clone(), slots.clone(), limits.clone());
        tokio::spawn(async move {
            let Ok(permit) = slots.try_acquire_owned() else {
                // Answered briefly: refused connections must not pile up.
                let mut sock = sock;
                if let Ok(Ok(())) = tokio::time::timeout(REFUSE_TIMEOUT, sock.write_all(&refusal())).await {
                    linger_close(sock, REFUSE_TIMEOUT, REFUSE_TIMEOUT).await;
                }
                return;
            };
            // TLS when the control port speaks it (same acceptor).
            let result = match server.tls_acceptor() {
                None => connection(server, role, &limits, Guarded::new(sock, permit, &limits)).await,
                Some(acceptor) => match crate::tls_conn::handshake(&acceptor, sock).await {
                    Ok(tls) => connection(server, role, &limits, Guarded::new(tls, permit, &limits)).await,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "http TLS handshake failed; closing");
                        return;
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended");
            }
        });
    }
}

/// The whole answer to a connection beyond the limit.
fn refusal() -> Vec<u8> {
    let body = serde_json::json!({ "error": "too many connections" }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n{body}",
        routes::JSON,
        body.len()
    )
    .into_bytes()
}

/// Serves one connection with hyper until either side closes it.
async fn connection<S>(server: Arc<Server>, role: RoleFn, limits: &Limits, io: Guarded<S>) -> hyper::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| answer(server.clone(), role.clone(), req));
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .title_case_headers(true)
        .auto_date_header(false)
        .serve_connection(TokioIo::new(io), service)
        .await
}

/// Answers one request hyper parsed.
async fn answer(
    server: Arc<Server>,
    role: RoleFn,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // The body is never read: requests with one are refused and closed.
    let (parts, _body) = req.into_parts();
    let keep_alive = wants_keep_alive(parts.version, &parts.headers);
    let resp = match routes::admit(&parts.method, &parts.uri, &parts.headers) {
        Err(resp) => resp,
        Ok(target) => match routes::unauthorized(&server, &target, &parts.headers) {
            Some(resp) => resp,
            None => match routes::quick(&target, role()) {
                Some(resp) => resp,
                // Endpoints that walk the whole index run on the blocking
                // pool so they never stall the runtime's workers.
                None => {
                    let role = role();
                    match tokio::task::spawn_blocking(move || routes::route(&server, &target, role)).await {
                        Ok(resp) => resp,
                        Err(e) => {
                            tracing::error!(error = %e, "http handler failed");
                            let mut r = Resp::error(500, "internal error");
                            r.close = true;
                            r
                        }
                    }
                }
            },
        },
    };
    Ok(response(resp, keep_alive))
}

/// Whether the client asked to keep the connection: HTTP/1.1 unless it
/// sent `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
fn wants_keep_alive(version: Version, headers: &http::HeaderMap) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for v in headers.get_all(CONNECTION) {
        for tok in v.as_bytes().split(|&b| b == b',') {
            let tok = tok.trim_ascii();
            close |= tok.eq_ignore_ascii_case(b"close");
            keep_alive |= tok.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (version == Version::HTTP_11 || keep_alive)
}

/// The hyper response of `r`, with the headers every answer carries.
fn response(r: Resp, keep_alive: bool) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // hyper closes after an answer that says `Connection: close`.
    let close = r.close || !keep_alive;
    h.insert(
        CONNECTION,
        HeaderValue::from_static(if close { "close" } else { "keep-alive" }),
    );
    if r.allow_get {
        h.insert(ALLOW, HeaderValue::from_static("GET"));
    }
    if r.bearer_challenge {
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"memcache\""));
    }
    resp
}

/// A connection's stream with the write timeout, the connection's slot,
/// and a lingering close: when hyper drops it, the write side is shut and
/// input drained for a little while (at most [`LINGER_MAX_BYTES`]) before
/// the socket closes and the slot frees. Closing with unread input would
/// reset the connection and could destroy the last answer (an error about
/// an oversized head, say) before the peer reads it.
pub(super) struct Guarded<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    inner: Option<S>,
    permit: Option<OwnedSemaphorePermit>,
    write_timeout: Duration,
    linger: Duration,
    /// Armed while a write is pending; fires after `write_timeout`.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Guarded<S> {
    fn new(inner: S, permit: OwnedSemaphorePermit, limits: &Limits) -> Self {
        Guarded {
            inner: Some(inner),
            permit: Some(permit),
            write_timeout: limits.write_timeout,
            linger: limits.linger,
            stall: None,
        }
    }

    fn inner(&mut self) -> std::io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| std::io::ErrorKind::NotConnected.into())
    }

    /// Polls a write-side operation under the write timeout.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let inner = match self.inner() {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match op(Pin::new(inner), cx) {
            Poll::Ready(r) => {
                self.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stall.as_mut().poll(cx));
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "http write made no progress in time",
                )))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().inner() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().timed(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().timed(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().timed(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().timed(cx, |s, cx| s.poll_shutdown(cx))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Guarded<S> {
    fn drop(&mut self) {
        let (Some(sock), permit) = (self.inner.take(), self.permit.take()) else {
            return;
        };
        let (linger, write_timeout) = (self.linger, self.write_timeout);
        // Without a runtime (it is shutting down) the socket just closes.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                linger_close(sock, linger, write_timeout).await;
                drop(permit);
            });
        }
    }
}

/// Shuts the write side, then reads and drops input until the peer closes,
/// `linger` passes or [`LINGER_MAX_BYTES`] arrived.
async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S, linger: Duration, write_timeout: Duration) {
    let _ = tokio::time::timeout(write_timeout, sock.shutdown()).await;
    let deadline = tokio::time::Instant::now() + linger;
    let mut chunk = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}
