//! The forced-TCP data path on one host beside a raw loopback stream of
//! the same bytes, and the raw loopback round trip under a control RPC.

use super::objects::{get_measure, put_measure, put_readable, verify};
use super::{emptied, progress, slots_for, tag};
use crate::cluster::Cluster;
use crate::measure::{Budget, Measured, Recorder};
use crate::report::Row;
use crate::rows::Kind;
use crate::worker::fill;
use mmc_local::BlockingObjectStore;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

/// Streams `chunks` writes of `chunk` bytes over a loopback connection to a
/// reader thread that reads into a segment-like region of `ws` bytes (as the
/// provider's transfer server does); the time runs from the first write to
/// the last byte read.
fn raw_stream(chunks: u64, chunk: usize, ws: u64) -> Result<Measured, String> {
    let l = crate::worker::raw_listen("127.0.0.1:0")?;
    let region = crate::worker::WsRegion::new(ws)?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let total = chunks * chunk as u64;
    let reader = std::thread::Builder::new()
        .name("bench-tcp-read".into())
        .spawn(move || -> std::io::Result<Instant> {
            let (s, _) = l.accept()?;
            let mut got = 0u64;
            while got < total {
                match region.read_some(&s, chunk)? {
                    0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    n => got += n as u64,
                }
            }
            Ok(Instant::now())
        })
        .map_err(|e| e.to_string())?;
    let mut w = crate::worker::raw_connect(&addr.to_string())?;
    let mut src = vec![0u8; chunk];
    fill(&mut src, 8);
    let mut rec = Recorder::start(Budget::ops(chunks), None);
    let start = Instant::now();
    while rec.more() {
        rec.time(|| w.write_all(&src))
            .map_err(|e| format!("raw tcp write: {e}"))?;
    }
    let end = reader
        .join()
        .map_err(|_| "raw tcp reader panicked".to_string())?
        .map_err(|e| format!("raw tcp read: {e}"))?;
    let mut m = rec.finish();
    m.busy_s = (end - start).as_secs_f64();
    m.wall_s = m.busy_s;
    Ok(m)
}

/// Forced-TCP puts and gets (a client with protocol tcp on the same host)
/// beside a raw loopback stream of the same bytes.
pub fn tcp(
    cluster: &Cluster,
    c: &BlockingObjectStore,
    size: u64,
    budget: Budget,
    ws: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let peer = cluster.provider().pid;
    let t = tag(size);
    let slots = slots_for(ws, size);
    let mut src = vec![0u8; size as usize];
    fill(&mut src, 9);
    let mut dst = vec![0u8; size as usize];
    fill(&mut dst, 10);
    progress(&format!("tcp put {t} (protocol tcp)"));
    let put = put_measure(budget, peer, c, &format!("tcp-put-{t}"), slots, &src)?;
    emptied(cluster, c, notes)?;
    progress(&format!("tcp get_into {t} (protocol tcp)"));
    let keys = put_readable(c, &format!("tcp-get-{t}"), slots, &mut src)?;
    verify(c, &keys, &mut src)?;
    let get = get_measure(budget, peer, c, &keys, &mut dst)?;
    emptied(cluster, c, notes)?;
    let chunks = put.ops.max(get.ops).max(1);
    progress(&format!("raw tcp loopback stream ({chunks} x {t} writes)"));
    raw_stream(64.min(chunks), size as usize, ws)?;
    let raw = raw_stream(chunks, size as usize, ws)?;
    notes.push(format!(
        "tcp: the raw loopback stream pushes {chunks} x {t} writes (as many bytes as the larger of the tcp put/get \
         measurements) one way over one connection; its p50/p99 are per write_all call"
    ));
    Ok(vec![
        Row::new(Kind::TcpRaw.size(size), "tcp", "raw loopback stream", size, 1, raw),
        Row::new(Kind::TcpPut.size(size), "tcp", "put_from (protocol tcp)", size, 1, put)
            .vs("raw tcp", Kind::TcpRaw.size(size)),
        Row::new(Kind::TcpGet.size(size), "tcp", "get_into (protocol tcp)", size, 1, get)
            .vs("raw tcp", Kind::TcpRaw.size(size)),
    ])
}

/// Round trips of a 64-byte message over a loopback connection to an echo
/// thread (blocking sockets, TCP_NODELAY): the floor under a control RPC.
pub(super) fn raw_ping_pong(budget: Budget) -> Result<Measured, String> {
    const MSG: usize = 64;
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("ping-pong listen: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::Builder::new()
        .name("bench-tcp-echo".into())
        .spawn(move || -> std::io::Result<()> {
            let (mut s, _) = l.accept()?;
            s.set_nodelay(true)?;
            let mut b = [0u8; MSG];
            loop {
                match s.read_exact(&mut b) {
                    Ok(()) => s.write_all(&b)?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let mut s = TcpStream::connect(addr).map_err(|e| format!("ping-pong connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut b = [7u8; MSG];
    let mut rtt = |budget: Budget| -> Result<Measured, String> {
        let mut rec = Recorder::start(budget, None);
        while rec.more() {
            rec.time(|| s.write_all(&b).and_then(|_| s.read_exact(&mut b)))
                .map_err(|e| format!("ping-pong: {e}"))?;
        }
        Ok(rec.finish())
    };
    rtt(budget.warmup())?;
    let m = rtt(budget)?;
    drop(s);
    let _ = echo.join();
    Ok(m)
}
