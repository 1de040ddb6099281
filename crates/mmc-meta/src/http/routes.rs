//! What the HTTP endpoint answers: the checks a parsed request must pass
//! (method, target form, no body, the bearer token), the routing table and
//! the JSON handlers. Nothing here touches a socket: [`super::server`]
//! hands in requests hyper parsed and writes the [`Resp`] back, and the
//! fuzzing entry point calls the same functions on arbitrary input.

use super::params::{cursor_of, keys_param, page_params, param, u64_param};
use crate::server::Server;
use crate::state::MetaState;
use http::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, Uri};
use mmc_wire::message::SegmentStat;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

pub(super) const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Starts (POST) or reports (GET) the drain of a memory provider.
pub(super) const DRAIN_PATH: &str = "/api/v1/drain";

/// An answer, before [`super::server`] adds the connection's headers.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Close the connection after this answer.
    pub close: bool,
    /// Adds `Allow: GET` (405 answers).
    pub allow_get: bool,
    /// Adds `WWW-Authenticate: Bearer` (401 answers).
    pub bearer_challenge: bool,
}

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

    pub(super) fn error(status: u16, msg: &str) -> Self {
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
}

/// A request that passed [`admit`]: what routing needs of it.
#[derive(Debug)]
pub struct Target {
    /// POST (only `/api/v1/drain` takes it) rather than GET.
    pub post: bool,
    pub path: String,
    pub query: String,
}

/// Checks a parsed request head, in the order the hand-written parser did:
/// header fields, method, target form, POST only on the drain path, no
/// body. A refusal closes the connection.
pub fn admit(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Target, Resp> {
    let bad = |msg: &str| Resp::error(400, msg).closing();
    if headers.get_all(AUTHORIZATION).iter().count() > 1 {
        return Err(bad("more than one Authorization field"));
    }
    let post = method == Method::POST;
    if method != Method::GET && !post {
        return Err(Resp::error(405, "only GET is supported (POST on /api/v1/drain)")
            .allow_get()
            .closing());
    }
    // Origin form only ("/path?query"): no absolute URI, no "*".
    if uri.scheme().is_some() || uri.authority().is_some() || !uri.path().starts_with('/') {
        return Err(bad("request target must be a path"));
    }
    let path = uri.path();
    if post && path != DRAIN_PATH {
        return Err(
            Resp::error(405, "only GET is supported here (POST only on /api/v1/drain)")
                .allow_get()
                .closing(),
        );
    }
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().iter().any(|&b| b != b'0'));
    if has_body {
        return Err(bad("request bodies are not accepted"));
    }
    Ok(Target {
        post,
        path: path.to_string(),
        query: uri.query().unwrap_or_default().to_string(),
    })
}

/// With a cluster token configured, every endpoint but `/health` and `/`
/// needs `Authorization: Bearer <token>` (compared in constant time);
/// `Some(401)` when it is missing or wrong. Without TLS the token crosses
/// the network in clear, like any bearer token over plain HTTP.
pub fn unauthorized(server: &Server, t: &Target, headers: &HeaderMap) -> Option<Resp> {
    if t.path == "/health" || t.path == "/" {
        return None;
    }
    let token = server.token()?;
    let presented = headers.get(AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes();
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

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The answers that need no index walk: `None` for the other paths, which
/// [`route`] answers (on the blocking pool).
pub fn quick(t: &Target, role: &str) -> Option<Resp> {
    match t.path.as_str() {
        "/health" => Some(Resp::new(200, TEXT, "ok")),
        "/role" => Some(Resp::json(200, &json!({ "role": role }))),
        "/" => Some(Resp::new(200, HTML, crate::status::PAGE)),
        _ => None,
    }
}

/// Answers an admitted, authorized request on any path.
pub fn route(server: &Server, t: &Target, role: &'static str) -> Resp {
    if let Some(r) = quick(t, role) {
        return r;
    }
    let st = &server.state;
    let q = t.query.as_str();
    let result = match t.path.as_str() {
        "/api/v1/status" => Ok(Resp::json(200, &crate::status::status_json(server, role))),
        DRAIN_PATH => drain_route(server, t),
        "/metrics" => Ok(Resp::new(
            200,
            crate::metrics::CONTENT_TYPE,
            crate::metrics::render_prometheus(&server.metrics, st),
        )),
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

/// `POST /api/v1/drain?service_id=N` starts draining provider N (graceful
/// scale-in) and answers its report; `GET` with the same query reports the
/// drain's progress or result. A standby answers 503.
fn drain_route(server: &Server, t: &Target) -> Result<Resp, Resp> {
    let id = u64_param(&t.query, "service_id")?.ok_or_else(|| Resp::error(400, "missing parameter service_id"))?;
    let id =
        mmc_wire::ServiceId::try_from(id).map_err(|_| Resp::error(400, &format!("service_id {id} is out of range")))?;
    if let Err(e) = server.serving_term() {
        return Err(Resp::error(503, &e.to_string()));
    }
    let st = &server.state;
    let r = if t.post { st.drain(id) } else { st.drain_status(id) };
    match r {
        Ok(r) => Ok(Resp::json(200, &drain_json(&r))),
        Err(e) if e.kind() == mmc_wire::ErrorKind::InvalidParam => Err(Resp::error(404, &e.to_string())),
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
    let keys = keys_param(q)?;
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
            Err(e) if e.kind() == mmc_wire::ErrorKind::ObjectNotExists => json!({ "key": key, "found": false }),
            Err(e) => json!({ "key": key, "found": false, "error": e.to_string() }),
        })
        .collect();
    Ok(Resp::json(200, &Value::Array(items)))
}

/// One page of keys in stable order; `next_cursor` resumes after the last.
fn get_all_keys(st: &MetaState, q: &str) -> Result<Resp, Resp> {
    let page = page_params(q)?;
    let (keys, next) = st.list_keys(page.after.as_deref(), page.limit);
    let next = next.map(|k| cursor_of(&k));
    Ok(Resp::json(200, &json!({ "keys": keys, "next_cursor": next })))
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

fn capacity_usage(st: &MetaState) -> Resp {
    let map = st
        .usage()
        .into_iter()
        .map(|(medium, (cap, used))| {
            (
                medium.to_string(),
                json!({ "capacity": cap, "used": used, "percent": crate::status::percent(used, cap) }),
            )
        })
        .collect::<serde_json::Map<String, Value>>();
    Resp::json(200, &Value::Object(map))
}
