//! Measures what TLS costs a cross-host transfer: sequential reads and
//! writes of one object size between a transfer client and a provider's
//! transfer server in this process (loopback TCP), plain against TLS
//! (`local.security.tls.transfer`). Plain and TLS alternate over several
//! rounds; each line reports the median round.
//!
//! `cargo run --release -p mmc-local --example tls_transfer [size_bytes] [ops] [rounds]`

use mmc_local::segment::Segment;
use mmc_local::transfer::client::TransferClient;
use mmc_local::transfer::Congestion;
use mmc_local::Piece;
use mmc_tls::testing::TestPki;
use mmc_tls::ClientTls;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEG: u32 = 1;

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1 << 20);
    let ops: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let pki = TestPki::new("xfer-bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seg_len = (size * 4).max(64 << 20);
    let (plain_addr, tls_addr) = rt.block_on(async {
        let seg = Arc::new(Segment::create(seg_len, true).expect("segment"));
        let id = Arc::new(AtomicU32::new(SEG));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let t = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = (l.local_addr().unwrap().to_string(), t.local_addr().unwrap().to_string());
        tokio::spawn(mmc_local::transfer::server::serve(
            l,
            seg.clone(),
            id.clone(),
            None,
            Duration::from_secs(30),
            64,
        ));
        let acceptor = mmc_tls::acceptor(&pki.server_config(false)).unwrap();
        tokio::spawn(mmc_local::transfer::tls::serve(
            t,
            seg,
            id,
            acceptor,
            None,
            Duration::from_secs(30),
            64,
        ));
        addrs
    });
    let mk = |tls: bool| {
        TransferClient::new(
            4,
            Duration::from_secs(30),
            Congestion::from_config("system"),
            rt.handle().clone(),
        )
        .with_tls(tls.then(|| ClientTls::new(&pki.client_config(false)).unwrap()))
    };
    let cases = [("plain", mk(false), plain_addr), ("TLS  ", mk(true), tls_addr)];
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut dst = vec![0u8; size];
    // [case][0 = write, 1 = read] -> per-round GB/s
    let mut gbs = vec![[Vec::new(), Vec::new()]; cases.len()];
    let mut lat = vec![[Vec::new(), Vec::new()]; cases.len()];
    for round in 0..=rounds {
        for (ci, (_, c, addr)) in cases.iter().enumerate() {
            for op in 0..2 {
                let start = Instant::now();
                for i in 0..ops {
                    let off = ((i % 4) * size) as u64;
                    // SAFETY: `src` and `dst` outlive each blocking transfer,
                    // `dst` is not touched while it runs, and `size` fits both.
                    let r = if op == 0 {
                        rt.block_on(unsafe { c.write(addr, SEG, off, &[Piece::of(&src)], size as u64) })
                    } else {
                        rt.block_on(unsafe { c.read(addr, SEG, off, &[Piece::of_mut(&mut dst)], size as u64) })
                    };
                    r.expect("transfer");
                }
                let secs = start.elapsed().as_secs_f64();
                if round > 0 {
                    gbs[ci][op].push((size * ops) as f64 / secs / 1e9);
                    lat[ci][op].push(secs * 1e6 / ops as f64);
                }
            }
        }
    }
    assert_eq!(dst, src);
    println!(
        "{ops} sequential {size}-byte transfers x {rounds} rounds over loopback (median round), {} build",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    for (ci, (name, _, _)) in cases.iter().enumerate() {
        for (op, what) in ["write", "read "].iter().enumerate() {
            println!(
                "{name} {what} {:7.2} GB/s  {:8.1} us/op",
                med(&mut gbs[ci][op]),
                med(&mut lat[ci][op])
            );
        }
    }
    let _ = std::fs::remove_dir_all(&pki.dir);
}
