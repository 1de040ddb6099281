//! The MetaService HTTP endpoint: health, role, Prometheus metrics and
//! read-only query endpoints (SPEC section 10).
//!
//! A deliberately small HTTP/1.1 server: GET only, no request bodies,
//! keep-alive and pipelining, bounded request heads, timeouts on every read
//! and write, and a cap on concurrent connections. Anything it does not
//! understand is answered with an error status and the connection closed;
//! nothing a client sends can make it panic.
//!
//! | path | answer |
//! |---|---|
//! | `/` | the status page (HTML; see [`crate::status`]) |
//! | `/health` | `ok` (text) |
//! | `/role` | `{"role": "leader"}` |
//! | `/metrics` | Prometheus text |
//! | `/query_key?key=K` | `{"key","size","replicas":[{"service_id","medium"}]}` or 404 |
//! | `/batch_query_keys?keys=a,b` | `[{"key","found",...}, ...]` |
//! | `/get_all_keys?cursor=C&limit=L` | `{"keys":[...],"next_cursor":N or null}` |
//! | `/get_all_segments` | `[{"service_id","host_id","transfer_addr","medium","capacity","used","objects"}]` |
//! | `/api/v1/capacity/usage` | `{"dram":{"capacity","used","percent"}, ...}` |
//! | `/api/v1/status` | everything the status page shows (docs/operations.md) |
//!
//! With a cluster token, every path but `/health` and `/` (the page holds no
//! data; it asks for the token) needs `Authorization: Bearer <token>`.
//!
//! Query values are percent-decoded (`+` is a space). In `keys=` the literal
//! commas separate keys and each piece is decoded on its own, so `%2C`
//! carries a comma inside a key.

use crate::server::Server;
use crate::state::MetaState;
use mmc_wire::message::SegmentStat;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Largest request head (request line plus headers) accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 100;
/// Most connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 1024;
/// Default and largest page of `/get_all_keys`.
pub const DEFAULT_KEYS_LIMIT: u32 = 1000;
pub const MAX_KEYS_LIMIT: u32 = 100_000;
/// How long a whole request head may take to arrive (also the keep-alive
/// idle timeout).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing one response may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the 503 answer of a connection beyond [`MAX_CONNECTIONS`] may take.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pauses after a failed accept (out of descriptors): doubling within these.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long, and for how many bytes, input is drained before closing.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: usize = 256 * 1024;

/// Tells which role this MetaService plays now ("leader" or "standby").
pub type RoleFn = Arc<dyn Fn() -> &'static str + Send + Sync>;

/// Serves the HTTP endpoint on `listener` forever, one task per connection.
/// Transient accept failures (such as running out of file descriptors) are
/// logged and retried; the function only returns if the task is dropped.
pub async fn serve_http(
    server: Arc<Server>,
    listener: TcpListener,
    role: Arc<dyn Fn() -> &'static str + Send + Sync>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let server = server.clone();
        let role = role.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let Ok(permit) = slots.try_acquire_owned() else {
                // Answered briefly: refused connections must not pile up.
                let mut sock = sock;
                let resp = Resp::error(503, "too many connections").closing();
                let _ = tokio::time::timeout(REFUSE_TIMEOUT, sock.write_all(&resp.encode())).await;
                return;
            };
            // TLS when the control port speaks it (same acceptor).
            match server.tls_acceptor() {
                None => admit(server, role, permit, sock, peer).await,
                Some(acceptor) => match crate::tls_conn::handshake(&acceptor, sock).await {
                    Ok(tls) => admit(server, role, permit, tls, peer).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "http TLS handshake failed; closing"),
                },
            }
        });
    }
}

/// Serves a connection that holds a slot; answers 503 and closes otherwise.
async fn admit<S: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server>,
    role: RoleFn,
    _permit: tokio::sync::OwnedSemaphorePermit,
    sock: S,
    peer: std::net::SocketAddr,
) {
    if let Err(e) = connection(server, role, sock).await {
        tracing::debug!(%peer, error = %e, "http connection ended");
    }
}

/// Serves one connection: reads request heads, answers each in order.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server>,
    role: RoleFn,
    mut sock: S,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let resp = match read_head(&mut sock, &mut buf).await? {
            HeadRead::Closed => return Ok(()),
            HeadRead::Failed(resp) => resp,
            HeadRead::Head(end) => {
                let head: Vec<u8> = buf.drain(..end).collect();
                match parse_head(&head) {
                    Err(resp) => resp,
                    Ok(req) => {
                        let close = !req.keep_alive;
                        let resp = respond(&server, &role, req).await;
                        if close {
                            resp.closing()
                        } else {
                            resp
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, sock.write_all(&resp.encode())).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        }
        if resp.close {
            linger_close(&mut sock).await;
            return Ok(());
        }
    }
}

/// Closes after a final answer. The peer may still be sending (a body, the
/// rest of an oversized head): closing with unread input would reset the
/// connection and could destroy the answer before the peer reads it, so
/// the write side is shut and input drained for a little while first.
async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(sock: &mut S) {
    let _ = sock.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut chunk = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

// ---- reading and parsing -----------------------------------------------------

enum HeadRead {
    /// The peer closed the connection between requests.
    Closed,
    /// A complete head occupies `buf[..end]`.
    Head(usize),
    /// The head is unacceptable: send this (closing) answer.
    Failed(Resp),
}

/// Reads until `buf` holds a complete request head (ending in an empty
/// line), at most [`MAX_HEAD`] bytes, within [`READ_TIMEOUT`].
async fn read_head<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut Vec<u8>) -> std::io::Result<HeadRead> {
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    let mut scanned = 0;
    let mut chunk = [0u8; 4096];
    loop {
        // Blank lines before a request line are ignored (RFC 9112 2.2).
        let blank = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        if blank > 0 {
            buf.drain(..blank);
            scanned = 0;
        }
        if let Some(end) = find_head_end(buf, scanned) {
            if end > MAX_HEAD {
                return Ok(HeadRead::Failed(too_large(buf)));
            }
            return Ok(HeadRead::Head(end));
        }
        if buf.len() > MAX_HEAD {
            return Ok(HeadRead::Failed(too_large(buf)));
        }
        scanned = buf.len().saturating_sub(3);
        let n = match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) if buf.is_empty() => return Ok(HeadRead::Closed),
            Err(_) => {
                return Ok(HeadRead::Failed(
                    Resp::error(408, "request head not received in time").closing(),
                ))
            }
        };
        if n == 0 {
            // EOF: between requests this is a normal close; inside a head
            // there is nobody left to answer.
            return Ok(HeadRead::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// 414 when the request line alone is too long, 431 otherwise.
fn too_large(buf: &[u8]) -> Resp {
    match buf.iter().position(|&b| b == b'\n') {
        Some(p) if p <= MAX_HEAD => Resp::error(431, &format!("request head longer than {MAX_HEAD} bytes")).closing(),
        _ => Resp::error(414, &format!("request line longer than {MAX_HEAD} bytes")).closing(),
    }
}

/// Index just past the empty line that ends a head (`\n\n` or `\n\r\n`),
/// searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

#[derive(Debug)]
struct Request {
    /// POST (only `/api/v1/drain` takes it) rather than GET.
    post: bool,
    path: String,
    query: String,
    keep_alive: bool,
    /// The `Authorization` header's value, if any.
    authorization: Option<Vec<u8>>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a complete head. Errors are answers that close the connection.
fn parse_head(head: &[u8]) -> Result<Request, Resp> {
    let bad = |msg: &str| Resp::error(400, msg).closing();
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad("malformed method"));
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(bad("malformed request target"));
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        v if v.starts_with(b"HTTP/") && v.len() <= 16 && v[5..].iter().all(|b| b.is_ascii_digit() || *b == b'.') => {
            return Err(Resp::error(505, "only HTTP/1.0 and HTTP/1.1 are supported").closing())
        }
        _ => return Err(bad("malformed HTTP version")),
    };

    let mut close = false;
    let mut keep_alive = false;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut authorization = None;
    let mut count = 0usize;
    for l in lines {
        if l.is_empty() {
            continue; // the terminating empty line
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(Resp::error(431, &format!("more than {MAX_HEADERS} header fields")).closing());
        }
        if l[0] == b' ' || l[0] == b'\t' {
            return Err(bad("obsolete header line folding"));
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return Err(bad("header field without ':'"));
        };
        let (name, value) = (&l[..colon], trim_ows(&l[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("malformed header field name"));
        }
        if value.iter().any(|&b| b == b'\r' || b == 0 || b == b'\n') {
            return Err(bad("malformed header field value"));
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for tok in value.split(|&b| b == b',').map(trim_ows) {
                if tok.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| bad("malformed Content-Length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(bad("conflicting Content-Length fields"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"authorization") {
            if authorization.is_some() {
                return Err(bad("more than one Authorization field"));
            }
            authorization = Some(value.to_vec());
        }
    }

    let post = method == b"POST";
    if method != b"GET" && !post {
        return Err(Resp::error(405, "only GET is supported (POST on /api/v1/drain)")
            .allow_get()
            .closing());
    }
    if target[0] != b'/' {
        return Err(bad("request target must be a path"));
    }
    // The target is printable ASCII, hence valid UTF-8 with 1-byte chars.
    let target = String::from_utf8_lossy(target);
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if post && path != DRAIN_PATH {
        return Err(
            Resp::error(405, "only GET is supported here (POST only on /api/v1/drain)")
                .allow_get()
                .closing(),
        );
    }
    if chunked || content_length.unwrap_or(0) > 0 {
        return Err(bad("request bodies are not accepted"));
    }
    Ok(Request {
        post,
        path: path.to_string(),
        query: query.to_string(),
        keep_alive: !close && (http11 || keep_alive),
        authorization,
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `%XX` escapes and `+`
/// for space. `None` on a malformed escape or when the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The raw (still encoded) value of the first `name` parameter, if any.
/// Parameter names are compared after decoding.
fn raw_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter(|p| !p.is_empty()).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(k).as_deref() == Some(name)).then_some(v)
    })
}

/// A decoded parameter: `Ok(None)` when absent, 400 when badly encoded.
fn param(query: &str, name: &str) -> Result<Option<String>, Resp> {
    match raw_param(query, name) {
        None => Ok(None),
        Some(v) => percent_decode(v).map(Some).ok_or_else(|| {
            Resp::error(
                400,
                &format!("query parameter '{name}' is not valid percent-encoded UTF-8"),
            )
        }),
    }
}

fn u64_param(query: &str, name: &str) -> Result<Option<u64>, Resp> {
    match param(query, name)? {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Resp::error(400, &format!("query parameter '{name}' must be a non-negative integer"))),
    }
}

// ---- responses ---------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    close: bool,
    allow_get: bool,
    /// Adds `WWW-Authenticate: Bearer` (401 answers).
    bearer_challenge: bool,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Resp {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Resp {
            status,
            content_type,
            body: body.into(),
            close: false,
            allow_get: false,
            bearer_challenge: false,
        }
    }

    fn json(status: u16, v: &Value) -> Self {
        Resp::new(status, JSON, v.to_string())
    }

    fn error(status: u16, msg: &str) -> Self {
        Resp::json(status, &json!({ "error": msg }))
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    fn allow_get(mut self) -> Self {
        self.allow_get = true;
        self
    }

    fn encode(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if self.close { "close" } else { "keep-alive" }
        );
        if self.allow_get {
            head.push_str("Allow: GET\r\n");
        }
        if self.bearer_challenge {
            head.push_str("WWW-Authenticate: Bearer realm=\"memcache\"\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

// ---- endpoints ---------------------------------------------------------------

/// Answers one parsed request. Endpoints that walk the whole index run on
/// the blocking pool so they never stall the runtime's workers.
async fn respond(server: &Arc<Server>, role: &RoleFn, req: Request) -> Resp {
    if req.path != "/health" && req.path != "/" {
        if let Some(resp) = unauthorized(server, &req) {
            return resp;
        }
    }
    match req.path.as_str() {
        "/health" => Resp::new(200, TEXT, "ok"),
        "/role" => Resp::json(200, &json!({ "role": role() })),
        "/" => Resp::new(200, HTML, crate::status::PAGE),
        "/api/v1/status" => {
            let (server, role) = (server.clone(), role());
            match tokio::task::spawn_blocking(move || Resp::json(200, &crate::status::status_json(&server, role))).await
            {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::error!(error = %e, "http status handler failed");
                    Resp::error(500, "internal error").closing()
                }
            }
        }
        _ => {
            let server = server.clone();
            match tokio::task::spawn_blocking(move || route(&server, &req)).await {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::error!(error = %e, "http handler failed");
                    Resp::error(500, "internal error").closing()
                }
            }
        }
    }
}

/// With a cluster token configured, every endpoint but `/health` needs
/// `Authorization: Bearer <token>` (compared in constant time); `Some(401)`
/// when it is missing or wrong. Without TLS the token crosses the network in
/// clear, like any bearer token over plain HTTP.
fn unauthorized(server: &Server, req: &Request) -> Option<Resp> {
    let token = server.token()?;
    let presented = req.authorization.as_deref().and_then(|v| {
        let sp = v.iter().position(|&b| b == b' ')?;
        v[..sp].eq_ignore_ascii_case(b"bearer").then(|| trim_ows(&v[sp + 1..]))
    });
    let why = match presented {
        None => "missing `Authorization: Bearer <cluster token>`",
        Some(cred) if mmc_wire::auth::constant_time_eq(cred, token.as_bytes()) => return None,
        Some(_) => "wrong bearer token",
    };
    server.metrics.http_unauthorized.fetch_add(1, Ordering::Relaxed);
    let mut resp = Resp::error(401, why);
    resp.bearer_challenge = true;
    Some(resp)
}

/// Starts (POST) or reports (GET) the drain of a memory provider.
const DRAIN_PATH: &str = "/api/v1/drain";

/// `POST /api/v1/drain?service_id=N` starts draining provider N (graceful
/// scale-in) and answers its report; `GET` with the same query reports the
/// drain's progress or result.
fn drain_route(server: &Server, req: &Request) -> Result<Resp, Resp> {
    let id = u64_param(&req.query, "service_id")?.ok_or_else(|| Resp::error(400, "missing parameter service_id"))?;
    let id =
        mmc_wire::ServiceId::try_from(id).map_err(|_| Resp::error(400, &format!("service_id {id} is out of range")))?;
    if let Err(e) = server.serving_term() {
        return Err(Resp::error(503, &e.to_string()));
    }
    let st = &server.state;
    let r = if req.post { st.drain(id) } else { st.drain_status(id) };
    match r {
        Ok(r) => Ok(Resp::json(200, &drain_json(&r))),
        Err(e @ mmc_wire::Error::InvalidParam(_)) => Err(Resp::error(404, &e.to_string())),
        Err(e) => Err(Resp::error(503, &e.to_string())),
    }
}

/// The JSON form of a drain report.
pub fn drain_json(r: &mmc_wire::message::DrainReport) -> Value {
    json!({
        "service_id": r.service_id,
        "state": r.state.name(),
        "moved": r.moved,
        "dropped_replicas": r.dropped_replicas,
        "unmoved": r.unmoved.iter().map(|u| json!({
            "key": u.key, "size": u.size, "reason": u.reason,
        })).collect::<Vec<_>>(),
        "message": r.message,
    })
}

fn route(server: &Server, req: &Request) -> Resp {
    let st = &server.state;
    let q = req.query.as_str();
    let result = match req.path.as_str() {
        DRAIN_PATH => drain_route(server, req),
        "/metrics" => Ok(Resp::new(200, PROMETHEUS, render_metrics(server))),
        "/query_key" => query_key(st, q),
        "/batch_query_keys" => batch_query_keys(st, q),
        "/get_all_keys" => get_all_keys(st, q),
        "/get_all_segments" => Ok(Resp::json(
            200,
            &Value::Array(st.stat().segments.iter().map(segment_json).collect()),
        )),
        "/api/v1/capacity/usage" => Ok(capacity_usage(st)),
        p => Ok(Resp::error(404, &format!("no such endpoint: {p}"))),
    };
    result.unwrap_or_else(|e| e)
}

fn replicas_json(replicas: &[(mmc_wire::ServiceId, mmc_wire::Medium)]) -> Value {
    Value::Array(
        replicas
            .iter()
            .map(|(s, m)| json!({ "service_id": s, "medium": m.name() }))
            .collect(),
    )
}

fn query_key(st: &MetaState, q: &str) -> Result<Resp, Resp> {
    let key = param(q, "key")?.ok_or_else(|| Resp::error(400, "missing query parameter 'key'"))?;
    if let Err(e) = mmc_wire::validate_key(&key) {
        return Err(Resp::error(400, &format!("query parameter 'key': {e}")));
    }
    let info = st.key_info(std::slice::from_ref(&key)).pop();
    Ok(match info {
        Some(Ok(info)) => Resp::json(
            200,
            &json!({ "key": key, "size": info.size, "replicas": replicas_json(&info.replicas) }),
        ),
        Some(Err(e)) => Resp::json(404, &json!({ "key": key, "error": e.to_string() })),
        None => Resp::json(404, &json!({ "key": key, "error": "object does not exist" })),
    })
}

fn batch_query_keys(st: &MetaState, q: &str) -> Result<Resp, Resp> {
    let raw = raw_param(q, "keys").ok_or_else(|| Resp::error(400, "missing query parameter 'keys'"))?;
    if raw.is_empty() {
        return Err(Resp::error(400, "query parameter 'keys' is empty"));
    }
    let keys = raw
        .split(',')
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| Resp::error(400, "query parameter 'keys' is not valid percent-encoded UTF-8"))?;
    if let Err(e) = mmc_wire::validate_batch_len(keys.len()) {
        return Err(Resp::error(400, &format!("query parameter 'keys': {e}")));
    }
    let infos = st.key_info(&keys);
    let items = keys
        .into_iter()
        .zip(infos)
        .map(|(key, info)| match info {
            Ok(info) => json!({
                "key": key,
                "found": true,
                "size": info.size,
                "replicas": replicas_json(&info.replicas),
            }),
            Err(mmc_wire::Error::ObjectNotExists) => json!({ "key": key, "found": false }),
            Err(e) => json!({ "key": key, "found": false, "error": e.to_string() }),
        })
        .collect();
    Ok(Resp::json(200, &Value::Array(items)))
}

/// `cursor` is the `next_cursor` of the previous page: the last key
/// returned, hex-encoded (absent, empty or the former first-page `0`
/// starts from the first key).
fn get_all_keys(st: &MetaState, q: &str) -> Result<Resp, Resp> {
    let after = match param(q, "cursor")?.as_deref() {
        None | Some("") | Some("0") => None,
        Some(c) => Some(hex_key(c).ok_or_else(|| {
            Resp::error(
                400,
                "query parameter 'cursor' is not a next_cursor of /get_all_keys (hex-encoded key)",
            )
        })?),
    };
    let limit = u64_param(q, "limit")?.unwrap_or(DEFAULT_KEYS_LIMIT as u64);
    if limit == 0 {
        return Err(Resp::error(
            400,
            &format!("query parameter 'limit' must be between 1 and {MAX_KEYS_LIMIT}"),
        ));
    }
    let limit = limit.min(MAX_KEYS_LIMIT as u64) as u32;
    let (keys, next) = st.list_keys(after.as_deref(), limit);
    let next = next.map(|k| k.bytes().map(|b| format!("{b:02x}")).collect::<String>());
    Ok(Resp::json(200, &json!({ "keys": keys, "next_cursor": next })))
}

/// The key a hex `next_cursor` encodes.
fn hex_key(c: &str) -> Option<String> {
    if !c.len().is_multiple_of(2) || !c.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&c[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn segment_json(s: &SegmentStat) -> Value {
    json!({
        "service_id": s.service_id,
        "host_id": s.host_id,
        "transfer_addr": s.transfer_addr,
        "medium": s.medium.name(),
        "capacity": s.capacity,
        "used": s.used,
        "objects": s.objects,
    })
}

fn percent(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        (used as f64 * 10_000.0 / capacity as f64).round() / 100.0
    }
}

fn capacity_usage(st: &MetaState) -> Resp {
    let map = st
        .usage()
        .into_iter()
        .map(|(medium, (cap, used))| {
            (
                medium.to_string(),
                json!({ "capacity": cap, "used": used, "percent": percent(used, cap) }),
            )
        })
        .collect::<serde_json::Map<String, Value>>();
    Resp::json(200, &Value::Object(map))
}

/// Prometheus text: the per-operation series plus gauges computed now.
pub fn render_metrics(server: &Server) -> String {
    let st = &server.state;
    let mut out = String::with_capacity(16 * 1024);
    server.metrics.render(&mut out);
    let stat = st.stat();
    let mut gauge = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| [(String::new(), v)];
    gauge("mmc_keys", "gauge", "Readable keys stored.", &one(stat.keys));
    gauge(
        "mmc_members_alive",
        "gauge",
        "LocalServices registered and alive.",
        &one(stat.members as u64),
    );
    let seg = |f: fn(&SegmentStat) -> u64| -> Vec<(String, u64)> {
        stat.segments
            .iter()
            .map(|s| {
                (
                    format!("{{service=\"{}\",medium=\"{}\"}}", s.service_id, s.medium.name()),
                    f(s),
                )
            })
            .collect()
    };
    gauge(
        "mmc_segment_capacity_bytes",
        "gauge",
        "Segment capacity in bytes.",
        &seg(|s| s.capacity),
    );
    gauge(
        "mmc_segment_used_bytes",
        "gauge",
        "Segment bytes in use.",
        &seg(|s| s.used),
    );
    gauge(
        "mmc_segment_objects",
        "gauge",
        "Committed replicas stored in the segment.",
        &seg(|s| s.objects),
    );
    let usage = st.usage();
    let med = |used: bool| -> Vec<(String, u64)> {
        usage
            .iter()
            .map(|(m, (c, u))| (format!("{{medium=\"{m}\"}}"), if used { *u } else { *c }))
            .collect()
    };
    gauge(
        "mmc_medium_capacity_bytes",
        "gauge",
        "Capacity of all segments of a medium in bytes.",
        &med(false),
    );
    gauge(
        "mmc_medium_used_bytes",
        "gauge",
        "Bytes in use over all segments of a medium.",
        &med(true),
    );
    let c = &st.counters;
    gauge(
        "mmc_evictions_total",
        "counter",
        "Objects evicted.",
        &one(c.evictions.load(Ordering::Relaxed)),
    );
    gauge(
        "mmc_evicted_bytes_total",
        "counter",
        "Bytes evicted.",
        &one(c.evicted_bytes.load(Ordering::Relaxed)),
    );
    gauge(
        "mmc_put_timeouts_total",
        "counter",
        "Writes reclaimed for not committing within put_timeout.",
        &one(c.put_timeouts.load(Ordering::Relaxed)),
    );
    gauge(
        "mmc_dead_services_total",
        "counter",
        "LocalServices removed (heartbeat timeout or unregister).",
        &one(c.dead_services.load(Ordering::Relaxed)),
    );
    gauge(
        "mmc_leases_active",
        "gauge",
        "Objects with an active read lease.",
        &one(stat.leases_active),
    );
    out
}

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::metrics::Metrics;
    use crate::state::{AllocOutcome, MetaParams};
    use mmc_wire::message::{AllocItem, RegisterReq, SegmentDesc};
    use mmc_wire::Medium;
    use std::net::SocketAddr;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    const SEG_SIZE: u64 = 64 << 20;
    const KEY1: &str = "hello world/ü";
    const KEY2: &str = "k,2";

    async fn start() -> (SocketAddr, Arc<Server>) {
        let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
        let (id, _) = state
            .register(&RegisterReq {
                host_id: 7,
                transfer_addr: "127.0.0.1:7000".into(),
                segment: Some(SegmentDesc {
                    name: "seg0".into(),
                    medium: Medium::Dram,
                    size: SEG_SIZE,
                    nonce: 0,
                }),
                prev_service_id: None,
                recovering: false,
            })
            .expect("register");
        let items: Vec<AllocItem> = [(KEY1, 4096u64), (KEY2, 100)]
            .iter()
            .map(|(k, size)| AllocItem {
                key: k.to_string(),
                size: *size,
                replicas: 1,
                preferred: vec![],
            })
            .collect();
        for out in state.alloc(id, &items) {
            assert!(matches!(out, AllocOutcome::Done(Ok(_))), "{out:?}");
        }
        let commit = state.finish(id, &[KEY1.to_string(), KEY2.to_string()], &[]);
        assert!(commit.iter().all(|r| r.is_ok()));
        let server = Server::new(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let role: RoleFn = Arc::new(|| "leader");
        tokio::spawn(serve_http(server.clone(), listener, role));
        (addr, server)
    }

    struct Reply {
        status: u16,
        head: String,
        body: String,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("bad json {:?}: {e}", self.body))
        }
    }

    /// Reads one response from `s` (with `pending` holding bytes read ahead);
    /// `None` when the connection closed first.
    async fn read_reply(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Reply> {
        let mut chunk = [0u8; 8192];
        let end = loop {
            if let Some(p) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
                .await
                .expect("reply in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            pending.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(pending.drain(..end).collect()).expect("ascii head");
        let status: u16 = head[9..12].parse().expect("status");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("content-length")
            .trim()
            .parse()
            .expect("length");
        while pending.len() < len {
            let n = s.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "eof inside body");
            pending.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8(pending.drain(..len).collect()).expect("utf8 body");
        Some(Reply { status, head, body })
    }

    /// Sends raw bytes on a new connection and reads one reply.
    async fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<Reply> {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(bytes).await.ok()?;
        read_reply(&mut s, &mut Vec::new()).await
    }

    async fn get(addr: SocketAddr, target: &str) -> Reply {
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        raw(addr, req.as_bytes()).await.expect("reply")
    }

    async fn assert_healthy(addr: SocketAddr) {
        let r = get(addr, "/health").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(percent_decode("a%20b+c%2Cd").as_deref(), Some("a b c,d"));
        assert_eq!(percent_decode("%C3%BC").as_deref(), Some("ü"));
        assert_eq!(percent_decode(""), Some(String::new()));
        for bad in ["%", "%4", "%zz", "%FF", "a%G1"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn head_end_and_parse() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        let r = parse_head(b"GET /q?a=1#frag HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("ok");
        assert_eq!((r.path.as_str(), r.query.as_str(), r.keep_alive), ("/q", "a=1", true));
        let r = parse_head(b"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n").expect("ok");
        assert!(!r.keep_alive);
        for (bad, status) in [
            (&b"GET / HTTP/1.1 x\r\n\r\n"[..], 400),
            (b"GET  / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / FTP\r\n\r\n", 400),
            (b"GET x HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 405),
            (b"\xff\xfe / HTTP/1.1\r\n\r\n", 400),
            (b"", 400),
        ] {
            let e = parse_head(bad).expect_err("must fail");
            assert_eq!(e.status, status, "{:?}", String::from_utf8_lossy(bad));
            assert!(e.close);
        }
    }

    #[tokio::test]
    async fn a_token_server_requires_the_bearer_token_except_for_health() {
        const TOKEN: &str = "0123456789abcdef-http";
        let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
        let server = Server::with_options(
            state,
            Duration::ZERO,
            false,
            Some(mmc_wire::auth::ClusterToken::new(TOKEN)),
            64,
            Duration::from_secs(10),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_http(server.clone(), listener, Arc::new(|| "leader")));
        assert_eq!(get(addr, "/health").await.status, 200);
        let with = |auth: &str| format!("GET /role HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
        let r = get(addr, "/role").await;
        assert_eq!(r.status, 401);
        assert!(r.head.contains("WWW-Authenticate: Bearer"), "{}", r.head);
        assert!(r.json()["error"].as_str().unwrap().contains("Authorization"));
        for bad in [
            "Bearer 0123456789abcdef-nope",
            "Basic abc",
            "Bearer",
            &format!("bearer {TOKEN}x"),
        ] {
            let r = raw(addr, with(bad).as_bytes()).await.expect("reply");
            assert_eq!(r.status, 401, "{bad}");
        }
        for good in [format!("Bearer {TOKEN}"), format!("bearer  {TOKEN}")] {
            let r = raw(addr, with(&good).as_bytes()).await.expect("reply");
            assert_eq!(r.status, 200, "{good}");
        }
        let r = raw(
            addr,
            with(&format!("Bearer {TOKEN}")).replace("/role", "/metrics").as_bytes(),
        )
        .await
        .expect("reply");
        assert!(
            r.body.contains("mmc_auth_failures_total{port=\"http\"} 5"),
            "{}",
            r.body
        );
    }

    #[tokio::test]
    async fn health_and_role() {
        let (addr, _) = start().await;
        let r = get(addr, "/health").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "ok");
        assert!(r.head.contains("Content-Type: text/plain"));
        let r = get(addr, "/role").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({ "role": "leader" }));
    }

    #[tokio::test]
    async fn metrics() {
        let (addr, server) = start().await;
        server
            .metrics
            .record(Metrics::op_index("alloc"), 2, false, Duration::from_micros(30));
        let r = get(addr, "/metrics").await;
        assert_eq!(r.status, 200);
        assert!(r.head.contains("Content-Type: text/plain; version=0.0.4"));
        let b = &r.body;
        for line in [
            "mmc_requests_total{op=\"alloc\"} 1",
            "mmc_request_keys_total{op=\"alloc\"} 2",
            "mmc_keys 2",
            "mmc_members_alive 1",
            &format!("mmc_segment_capacity_bytes{{service=\"1\",medium=\"dram\"}} {SEG_SIZE}"),
            "mmc_segment_objects{service=\"1\",medium=\"dram\"} 2",
            &format!("mmc_medium_capacity_bytes{{medium=\"dram\"}} {SEG_SIZE}"),
            "mmc_medium_capacity_bytes{medium=\"hbm\"} 0",
            "mmc_evictions_total 0",
            "mmc_evicted_bytes_total 0",
            "mmc_put_timeouts_total 0",
            "mmc_dead_services_total 0",
            "mmc_leases_active 0",
        ] {
            assert!(b.lines().any(|l| l == line), "missing {line:?} in\n{b}");
        }
        let used: u64 = b
            .lines()
            .find_map(|l| l.strip_prefix("mmc_segment_used_bytes{service=\"1\",medium=\"dram\"} "))
            .expect("segment used")
            .parse()
            .expect("number");
        assert!(used >= 4096 + 100, "{used}");
        assert!(b
            .lines()
            .any(|l| l == format!("mmc_medium_used_bytes{{medium=\"dram\"}} {used}")));
        // Every sample line is `name{labels} value` with a numeric value.
        for l in b.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = l.rsplit_once(' ').expect("sample");
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }

    #[tokio::test]
    async fn query_key() {
        let (addr, _) = start().await;
        let expect = json!({ "key": KEY1, "size": 4096, "replicas": [{ "service_id": 1, "medium": "dram" }] });
        for target in [
            "/query_key?key=hello%20world%2F%C3%BC",
            "/query_key?key=hello+world/%c3%bc&x=1",
        ] {
            let r = get(addr, target).await;
            assert_eq!(r.status, 200, "{target}: {}", r.body);
            assert!(r.head.contains("Content-Type: application/json"));
            assert_eq!(r.json(), expect);
        }
        let r = get(addr, "/query_key?key=k%2C2").await;
        assert_eq!((r.status, r.json()["size"].clone()), (200, json!(100)));
        let r = get(addr, "/query_key?key=nope").await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["key"], "nope");
        assert!(r.json()["error"].is_string());
        for bad in [
            "/query_key",
            "/query_key?keys=a",
            "/query_key?key=",
            "/query_key?key=%zz",
            "/query_key?key=%FF",
        ] {
            let r = get(addr, bad).await;
            assert_eq!(r.status, 400, "{bad}");
            assert!(
                r.json()["error"].as_str().expect("error").contains("'key'"),
                "{bad}: {}",
                r.body
            );
        }
        let long = "a".repeat(300);
        let r = get(addr, &format!("/query_key?key={long}")).await;
        assert_eq!(r.status, 400);
    }

    #[tokio::test]
    async fn batch_query_keys() {
        let (addr, _) = start().await;
        let r = get(addr, "/batch_query_keys?keys=hello+world%2F%C3%BC,missing,k%2C2").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.json(),
            json!([
                { "key": KEY1, "found": true, "size": 4096, "replicas": [{ "service_id": 1, "medium": "dram" }] },
                { "key": "missing", "found": false },
                { "key": KEY2, "found": true, "size": 100, "replicas": [{ "service_id": 1, "medium": "dram" }] },
            ])
        );
        let r = get(addr, "/batch_query_keys?keys=a,,b").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v.as_array().map(Vec::len), Some(3));
        assert_eq!(v[1]["found"], false);
        assert!(v[1]["error"].is_string());
        for bad in [
            "/batch_query_keys",
            "/batch_query_keys?keys=",
            "/batch_query_keys?keys=a,%2",
        ] {
            let r = get(addr, bad).await;
            assert_eq!(r.status, 400, "{bad}");
            assert!(r.json()["error"].as_str().expect("error").contains("'keys'"));
        }
    }

    #[tokio::test]
    async fn get_all_keys() {
        let (addr, _) = start().await;
        let r = get(addr, "/get_all_keys").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        let mut keys: Vec<String> = serde_json::from_value(v["keys"].clone()).expect("keys");
        keys.sort();
        assert_eq!(keys, vec![KEY1.to_string(), KEY2.to_string()]);
        assert_eq!(v["next_cursor"], Value::Null);

        // Page one key at a time.
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..10 {
            let v = get(addr, &format!("/get_all_keys?cursor={cursor}&limit=1"))
                .await
                .json();
            let page: Vec<String> = serde_json::from_value(v["keys"].clone()).expect("keys");
            assert!(page.len() <= 1);
            seen.extend(page);
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, keys);

        let r = get(addr, "/get_all_keys?limit=1000000000").await;
        assert_eq!(r.status, 200);
        for (bad, name) in [
            ("/get_all_keys?limit=x", "'limit'"),
            ("/get_all_keys?limit=0", "'limit'"),
            ("/get_all_keys?limit=-1", "'limit'"),
            ("/get_all_keys?cursor=1.5", "'cursor'"),
            ("/get_all_keys?cursor=99999999999999999999999", "'cursor'"),
        ] {
            let r = get(addr, bad).await;
            assert_eq!(r.status, 400, "{bad}");
            assert!(
                r.json()["error"].as_str().expect("error").contains(name),
                "{bad}: {}",
                r.body
            );
        }
    }

    #[tokio::test]
    async fn segments_and_usage() {
        let (addr, _) = start().await;
        let r = get(addr, "/get_all_segments").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        let segs = v.as_array().expect("array");
        assert_eq!(segs.len(), 1);
        let s = &segs[0];
        assert_eq!(s["service_id"], 1);
        assert_eq!(s["host_id"], 7);
        assert_eq!(s["transfer_addr"], "127.0.0.1:7000");
        assert_eq!(s["medium"], "dram");
        assert_eq!(s["capacity"], SEG_SIZE);
        assert_eq!(s["objects"], 2);
        let used = s["used"].as_u64().expect("used");
        assert!(used >= 4196);

        let r = get(addr, "/api/v1/capacity/usage").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["dram"]["capacity"], SEG_SIZE);
        assert_eq!(v["dram"]["used"], used);
        let pct = v["dram"]["percent"].as_f64().expect("percent");
        assert!((pct - used as f64 * 100.0 / SEG_SIZE as f64).abs() < 0.01, "{pct}");
        assert_eq!(v["hbm"], json!({ "capacity": 0, "used": 0, "percent": 0.0 }));
        assert_eq!(v["ssd"]["capacity"], 0);
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let (addr, _) = start().await;
        for t in [
            "/nope",
            "/index.html",
            "/api/v1/status/x",
            "/health/",
            "/api/v1/capacity",
            "/query_key/x?key=a",
        ] {
            let r = get(addr, t).await;
            assert_eq!(r.status, 404, "{t}");
            assert!(r.json()["error"].is_string());
        }
    }

    #[tokio::test]
    async fn status_page_and_document() {
        let (addr, server) = start().await;
        server
            .metrics
            .record(Metrics::op_index("alloc"), 2, false, Duration::from_micros(30));
        let r = get(addr, "/").await;
        assert_eq!(r.status, 200);
        assert!(r.head.contains("Content-Type: text/html; charset=utf-8"), "{}", r.head);
        assert!(r.body.contains("/api/v1/status") && r.body.contains("<title>MemCache status</title>"));

        let r = get(addr, "/api/v1/status").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.head.contains("Content-Type: application/json"));
        let v = r.json();
        assert_eq!(v["role"], "leader");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert!(v["time_ms"].as_u64().expect("time_ms") > 1_600_000_000_000);
        assert!(v["membership_epoch"].is_u64());
        assert_eq!(v["keys"], 2);
        for zero in [
            "leases_active",
            "evictions",
            "evicted_bytes",
            "put_timeouts",
            "dead_services",
        ] {
            assert_eq!(v[zero], 0, "{zero}");
        }
        let used = server.state.stat().segments[0].used;
        assert!(used >= 4096 + 100);
        let pct = (used as f64 * 10_000.0 / SEG_SIZE as f64).round() / 100.0;
        assert_eq!(
            v["members"],
            json!([{
                "service_id": 1,
                "host_id": 7,
                "host_id_hex": "0000000000000007",
                "transfer_addr": "127.0.0.1:7000",
                "segments": [{ "medium": "dram", "capacity": SEG_SIZE, "used": used, "percent": pct, "objects": 2 }],
            }])
        );
        assert_eq!(
            v["capacity"]["dram"],
            json!({ "capacity": SEG_SIZE, "used": used, "percent": pct })
        );
        assert_eq!(
            v["capacity"]["hbm"],
            json!({ "capacity": 0, "used": 0, "percent": 0.0 })
        );
        let ops = v["ops"].as_array().expect("ops");
        assert_eq!(ops.len(), crate::metrics::OPS.len());
        let alloc = ops.iter().find(|o| o["op"] == "alloc").expect("alloc");
        assert_eq!(
            *alloc,
            json!({
                "op": "alloc", "requests": 1, "failures": 0, "keys": 2, "latency_sum_us": 30,
                "latency_mean_us": 30.0, "latency_p50_le_us": 50, "latency_p99_le_us": 50,
            })
        );
        let idle = ops.iter().find(|o| o["op"] == "remove").expect("remove");
        assert_eq!(idle["requests"], 0);
        assert_eq!(idle["latency_p99_le_us"], Value::Null);
    }

    #[tokio::test]
    async fn status_document_needs_the_token_but_the_page_does_not() {
        const TOKEN: &str = "0123456789abcdef-status";
        let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
        let server = Server::with_options(
            state,
            Duration::ZERO,
            false,
            Some(mmc_wire::auth::ClusterToken::new(TOKEN)),
            64,
            Duration::from_secs(10),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // The role comes from the function given to serve_http.
        tokio::spawn(serve_http(server.clone(), listener, Arc::new(|| "standby")));
        let r = get(addr, "/").await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("sessionStorage"));
        let r = get(addr, "/api/v1/status").await;
        assert_eq!(r.status, 401);
        assert!(r.head.contains("WWW-Authenticate: Bearer"));
        let req = format!("GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
        let r = raw(addr, req.as_bytes()).await.expect("reply");
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["role"], "standby");
        assert_eq!(v["keys"], 0);
        assert_eq!(v["members"], json!([]));
    }

    #[tokio::test]
    async fn keep_alive_and_pipelining() {
        let (addr, _) = start().await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut pending = Vec::new();
        // Two requests in one write, then a third after the answers.
        s.write_all(b"GET /health HTTP/1.1\r\n\r\nGET /role HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let a = read_reply(&mut s, &mut pending).await.expect("first");
        let b = read_reply(&mut s, &mut pending).await.expect("second");
        assert_eq!((a.status, a.body.as_str()), (200, "ok"));
        assert!(a.head.contains("Connection: keep-alive"));
        assert_eq!(b.json()["role"], "leader");
        // Byte-at-a-time delivery, bare LF line ends, leading blank line.
        for &byte in b"\r\nGET /query_key?key=k%2C2 HTTP/1.1\nHost: x\n\n" {
            s.write_all(&[byte]).await.expect("write");
        }
        let c = read_reply(&mut s, &mut pending).await.expect("third");
        assert_eq!(c.status, 200);
        // Connection: close is honoured.
        s.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let d = read_reply(&mut s, &mut pending).await.expect("fourth");
        assert!(d.head.contains("Connection: close"));
        assert!(read_reply(&mut s, &mut pending).await.is_none());
        // HTTP/1.0 closes by default.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.expect("write");
        let mut pending = Vec::new();
        assert_eq!(read_reply(&mut s, &mut pending).await.expect("reply").status, 200);
        assert!(read_reply(&mut s, &mut pending).await.is_none());
    }

    #[tokio::test]
    async fn malformed_requests() {
        let (addr, _) = start().await;
        let huge_header = format!("GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD + 10));
        let huge_line = format!("GET /query_key?key={} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD + 10));
        let many_headers = format!("GET /health HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_HEADERS + 1));
        let cases: Vec<(Vec<u8>, Option<u16>)> = vec![
            (b"\x00\x01\x02garbage\xff\xfe\r\n\r\n".to_vec(), Some(400)),
            (b"hello\r\n\r\n".to_vec(), Some(400)),
            (
                b"POST /health HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody".to_vec(),
                Some(405),
            ),
            (b"DELETE /query_key?key=a HTTP/1.1\r\n\r\n".to_vec(), Some(405)),
            (b"GET /health HTTP/9.9\r\n\r\n".to_vec(), Some(505)),
            (
                b"GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
                Some(400),
            ),
            (huge_header.into_bytes(), Some(431)),
            (huge_line.into_bytes(), Some(414)),
            (many_headers.into_bytes(), Some(431)),
            // No end of head and then EOF: nothing to answer.
            (b"GET /health HTTP/1.1\r\nHost".to_vec(), None),
        ];
        for (bytes, want) in cases {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s.write_all(&bytes).await;
            if want.is_none() {
                let _ = s.shutdown().await;
            }
            let mut pending = Vec::new();
            let got = read_reply(&mut s, &mut pending).await;
            assert_eq!(
                got.as_ref().map(|r| r.status),
                want,
                "{:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
            );
            if let Some(r) = got {
                assert!(r.head.contains("Connection: close"));
                assert!(r.json()["error"].is_string());
                if r.status == 405 {
                    assert!(r.head.contains("Allow: GET"));
                }
                // The server closed the connection after the error.
                assert!(read_reply(&mut s, &mut pending).await.is_none());
            }
            assert_healthy(addr).await;
        }
        // Endless garbage without a line end is cut off at the head limit.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let junk = vec![b'x'; 64 * 1024];
        let _ = s.write_all(&junk).await;
        let got = read_reply(&mut s, &mut Vec::new()).await;
        // Usually answered; the peer may also see a reset.
        if let Some(r) = got {
            assert_eq!(r.status, 414);
        }
        assert_healthy(addr).await;
    }

    #[tokio::test]
    async fn random_bytes_never_break_the_server() {
        let (addr, _) = start().await;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..50 {
            let len = 1 + (round * 37) % 600;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s.write_all(&bytes).await;
            let _ = s.write_all(b"\r\n\r\n").await;
            let _ = s.shutdown().await;
            if let Some(r) = read_reply(&mut s, &mut Vec::new()).await {
                assert!(r.status >= 400, "{}", r.status);
            }
        }
        assert_healthy(addr).await;
    }
}
