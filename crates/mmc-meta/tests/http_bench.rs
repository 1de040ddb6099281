//! Cost of the MetaService's HTTP endpoint: sequential `GET /health` round
//! trips and `GET /metrics` scrapes on one keep-alive connection, against a
//! server with one registered provider and a few thousand keys. Ignored by
//! default (it measures, it does not check); docs/benchmarks.md
//! ("The HTTP endpoint: hand-written server vs hyper") records the figures
//! and the command:
//!
//! ```sh
//! cargo test --release -p mmc-meta --test http_bench -- --ignored --nocapture
//! ```

use mmc_meta::clock::SystemClock;
use mmc_meta::server::Server;
use mmc_meta::state::AllocOutcome;
use mmc_meta::{MetaParams, MetaState};
use mmc_wire::message::{AllocItem, RegisterReq, SegmentDesc};
use mmc_wire::Medium;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEYS: usize = 2000;

async fn start() -> SocketAddr {
    let state = Arc::new(MetaState::new(MetaParams::default(), Arc::new(SystemClock::default())));
    let (id, _) = state
        .register(&RegisterReq {
            host_id: 7,
            transfer_addr: "127.0.0.1:7000".into(),
            segment: Some(SegmentDesc {
                name: "seg0".into(),
                medium: Medium::Dram,
                size: 1 << 30,
                nonce: 0,
            }),
            prev_service_id: None,
            recovering: false,
        })
        .expect("register");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    let items: Vec<AllocItem> = keys
        .iter()
        .map(|k| AllocItem {
            key: k.clone(),
            size: 4096,
            replicas: 1,
            preferred: vec![],
        })
        .collect();
    for out in state.alloc(id, &items) {
        assert!(matches!(out, AllocOutcome::Done(Ok(_))), "{out:?}");
    }
    assert!(state.finish(id, &keys, &[]).iter().all(|r| r.is_ok()));
    let server = Server::new(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(mmc_meta::http::serve_http(server, listener, Arc::new(|| "leader")));
    addr
}

/// Sends one GET on `s` and reads the whole answer into `buf`; returns
/// where the body starts and its length.
async fn round_trip(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> (usize, usize) {
    s.write_all(req).await.expect("write");
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    let (end, len) = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..p]).expect("ascii head");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("content-length");
            break (p + 4, len);
        }
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    };
    while buf.len() < end + len {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
    (end, len)
}

/// Runs `n` round trips of `target`; prints mean, p50 and p99 in µs.
async fn measure(addr: SocketAddr, target: &str, n: usize) -> f64 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let req = format!("GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut buf = Vec::new();
    let mut body = 0;
    for _ in 0..n / 10 {
        let (start, len) = round_trip(&mut s, req.as_bytes(), &mut buf).await;
        body = len;
        // MMC_HTTP_BENCH_DUMP=DIR keeps one answer (head and body) per target (to compare
        // the /metrics text of two builds).
        if let Some(dir) = std::env::var_os("MMC_HTTP_BENCH_DUMP") {
            let name = target.trim_start_matches('/').replace('/', "_");
            let path = std::path::Path::new(&dir).join(format!("{name}.txt"));
            std::fs::write(path, &buf[..start + len]).expect("dump");
        }
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        round_trip(&mut s, req.as_bytes(), &mut buf).await;
        lat.push(t.elapsed());
    }
    let total = t0.elapsed();
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = us(total) / n as f64;
    println!(
        "{target:<10} n={n:<6} body={body:>6} B  mean {mean:>8.1} us  p50 {:>8.1} us  p99 {:>8.1} us",
        us(lat[n / 2]),
        us(lat[n * 99 / 100]),
    );
    mean
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (docs/benchmarks.md)"]
fn http_round_trips() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let addr = start().await;
        for round in 1..=3 {
            println!("round {round}");
            measure(addr, "/health", 20_000).await;
            measure(addr, "/metrics", 2_000).await;
        }
    });
}
