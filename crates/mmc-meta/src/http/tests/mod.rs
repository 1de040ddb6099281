//! Tests of the HTTP endpoint: a server on a real socket with a state
//! holding two keys, and the helpers that read its replies. The tests are
//! by topic: `access` (what is admitted, the bearer token), `endpoints`
//! (each path's answer) and `hostile` (malformed, slow, too many and
//! random clients).

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

mod access;
mod endpoints;
mod hostile;

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
