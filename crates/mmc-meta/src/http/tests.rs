use super::*;
use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::server::Server;
use crate::state::MetaState;
use crate::state::{AllocOutcome, MetaParams};
use mmc_wire::message::{AllocItem, RegisterReq, SegmentDesc};
use mmc_wire::Medium;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
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
    /// The value of header `name` (compared without case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

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
    // hyper's own answers to unparsable heads may carry no body at all.
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then_some(v)
        })
        .map_or(0, |v| v.trim().parse().expect("length"));
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
fn admit_checks_method_target_and_body() {
    use http::{HeaderMap, Method, Uri};
    let h = |pairs: &[(&'static str, &'static str)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, http::HeaderValue::from_static(v));
        }
        m
    };
    let uri = |s: &str| Uri::try_from(s).expect("uri");
    let t = routes::admit(&Method::GET, &uri("/q?a=1"), &h(&[])).expect("ok");
    assert_eq!((t.path.as_str(), t.query.as_str(), t.post), ("/q", "a=1", false));
    assert!(routes::admit(
        &Method::POST,
        &uri("/api/v1/drain?service_id=1"),
        &h(&[("content-length", "0")])
    )
    .is_ok());
    for (method, target, headers, status) in [
        (Method::DELETE, "/health", h(&[]), 405),
        (Method::POST, "/health", h(&[]), 405),
        (Method::GET, "http://x/health", h(&[]), 400),
        (Method::OPTIONS, "*", h(&[]), 405),
        (Method::GET, "/health", h(&[("content-length", "5")]), 400),
        (Method::GET, "/health", h(&[("transfer-encoding", "chunked")]), 400),
        (
            Method::GET,
            "/health",
            h(&[("authorization", "a"), ("authorization", "b")]),
            400,
        ),
    ] {
        let e = routes::admit(&method, &uri(target), &headers).expect_err("must fail");
        assert_eq!(e.status, status, "{method} {target}");
        assert!(e.close);
        assert_eq!(e.allow_get, status == 405);
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
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"memcache\""),
        "{}",
        r.head
    );
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
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
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
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
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
        assert_eq!(r.header("content-type"), Some("application/json"));
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
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{}", r.head);
    assert!(r.body.contains("/api/v1/status") && r.body.contains("<title>MemCache status</title>"));

    let r = get(addr, "/api/v1/status").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
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
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
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
    assert_eq!(a.header("connection"), Some("keep-alive"));
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
    assert_eq!(d.header("connection"), Some("close"));
    assert!(read_reply(&mut s, &mut pending).await.is_none());
    // HTTP/1.0 closes by default.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.expect("write");
    let mut pending = Vec::new();
    assert_eq!(read_reply(&mut s, &mut pending).await.expect("reply").status, 200);
    assert!(read_reply(&mut s, &mut pending).await.is_none());
}

/// Heads hyper's parser refuses are answered by hyper (status only, no
/// JSON body); requests it parses but the endpoint refuses get a JSON
/// error. Either way the connection closes and the server stays healthy.
#[tokio::test]
async fn malformed_requests() {
    let (addr, _) = start().await;
    let huge_header = format!("GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD + 10));
    let huge_line = format!("GET /query_key?key={} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD + 10));
    let many_headers = format!("GET /health HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_HEADERS + 1));
    // (request, status, answered by the endpoint with a JSON error)
    let cases: Vec<(Vec<u8>, Option<u16>, bool)> = vec![
        (b"\x00\x01\x02garbage\xff\xfe\r\n\r\n".to_vec(), Some(400), false),
        (b"hello\r\n\r\n".to_vec(), Some(400), false),
        (b"GET /health HTTP/1.1 x\r\n\r\n".to_vec(), Some(400), false),
        (b"GET /health HTTP/1.1\r\nNoColon\r\n\r\n".to_vec(), Some(400), false),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
            Some(400),
            false,
        ),
        (
            b"POST /health HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody".to_vec(),
            Some(405),
            true,
        ),
        (b"DELETE /query_key?key=a HTTP/1.1\r\n\r\n".to_vec(), Some(405), true),
        // The hand-written parser answered 505; httparse refuses the version.
        (b"GET /health HTTP/9.9\r\n\r\n".to_vec(), Some(400), false),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            Some(400),
            true,
        ),
        (
            b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            Some(400),
            true,
        ),
        (b"GET http://x/health HTTP/1.1\r\n\r\n".to_vec(), Some(400), true),
        (
            b"GET /role HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n".to_vec(),
            Some(400),
            true,
        ),
        (huge_header.into_bytes(), Some(431), false),
        // The hand-written parser answered 414 for a long request line;
        // hyper counts it against the head limit.
        (huge_line.into_bytes(), Some(431), false),
        (many_headers.into_bytes(), Some(431), false),
        // No end of head and then EOF: nothing to answer.
        (b"GET /health HTTP/1.1\r\nHost".to_vec(), None, false),
    ];
    for (bytes, want, ours) in cases {
        let what = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.write_all(&bytes).await;
        if want.is_none() {
            let _ = s.shutdown().await;
        }
        let mut pending = Vec::new();
        let got = read_reply(&mut s, &mut pending).await;
        assert_eq!(got.as_ref().map(|r| r.status), want, "{what:?}");
        if let Some(r) = got {
            if ours {
                assert_eq!(r.header("connection"), Some("close"), "{what:?}");
                assert!(r.json()["error"].is_string(), "{what:?}");
                assert_eq!(r.header("allow").is_some(), r.status == 405, "{what:?}");
            }
            // The server closed the connection after the error.
            assert!(read_reply(&mut s, &mut pending).await.is_none(), "{what:?}");
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
        assert!(matches!(r.status, 400 | 431), "{}", r.status);
    }
    assert_healthy(addr).await;
}

/// A server with short timeouts and few connection slots.
async fn start_limited(max_connections: usize) -> SocketAddr {
    let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = Limits {
        max_connections,
        read_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        linger: Duration::from_millis(50),
    };
    tokio::spawn(serve_http_with(
        Server::new(state),
        listener,
        Arc::new(|| "leader"),
        limits,
    ));
    addr
}

/// Reads until the server closes the connection; the bytes it sent.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .expect("the server closes the connection")
        {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_closed() {
    let addr = start_limited(64).await;
    // Slowloris: a head that never completes, one byte now and then.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\n").await.expect("write");
    let trickle = async {
        for _ in 0..1000 {
            if s.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), trickle).await;
    let got = read_to_close(&mut s).await;
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    // An idle keep-alive connection is closed after its answer.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\n\r\n").await.expect("write");
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    // A connection that never sends anything is closed too.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    assert!(read_to_close(&mut s).await.is_empty());
    assert_healthy(addr).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let addr = start_limited(2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut pending = Vec::new();
        s.write_all(b"GET /health HTTP/1.1\r\n\r\n").await.expect("write");
        assert_eq!(read_reply(&mut s, &mut pending).await.expect("reply").status, 200);
        held.push(s);
    }
    let r = raw(addr, b"GET /health HTTP/1.1\r\n\r\n").await.expect("refusal");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "too many connections");
    assert_eq!(r.header("connection"), Some("close"));
    // A slot frees when a connection closes (after its short linger).
    drop(held.pop());
    let mut served = false;
    for _ in 0..200 {
        if raw(addr, b"GET /health HTTP/1.1\r\n\r\n")
            .await
            .is_some_and(|r| r.status == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(served, "a freed slot serves again");
}

#[tokio::test]
async fn bad_parameters_name_the_parameter() {
    let (addr, _) = start().await;
    for (target, name) in [
        ("/query_key?key=%zz", "'key'"),
        ("/batch_query_keys?keys=a,%2", "'keys'"),
        ("/get_all_keys?limit=x", "'limit'"),
        ("/get_all_keys?cursor=zz", "'cursor'"),
        ("/api/v1/drain?service_id=x", "'service_id'"),
        ("/api/v1/drain", "service_id"),
    ] {
        let r = get(addr, target).await;
        assert_eq!(r.status, 400, "{target}");
        let e = r.json()["error"].as_str().expect("error").to_owned();
        assert!(e.contains(name), "{target}: {e}");
    }
    // POST drain of an unknown provider: 404; of a known one: its report.
    let post = |t: &str| format!("POST {t} HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    let r = raw(addr, post("/api/v1/drain?service_id=99").as_bytes())
        .await
        .expect("reply");
    assert_eq!(r.status, 404, "{}", r.body);
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
