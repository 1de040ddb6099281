//! Raw TCP without a store, the baseline of the transfer path: the
//! segment-like region a raw server moves bytes through, the server of
//! the `tcp-server` target, the stream / request-response / ping-pong ops
//! of the client, and sockets set up as MemCache's transfer sockets are.

use super::buffers::fill;
use super::protocol::{timed, unix_now, Cmd, Res};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// Memory like a provider's segment (a prefaulted shared memfd mapping),
/// which the raw TCP server reads into and sends from, rotating over it as
/// MemCache's objects rotate over their working set: a transfer server
/// moves bytes between the network and a large, mostly cold region, and
/// on the machine of docs/benchmarks.md a 1 MiB request/response sent out of
/// such a region takes 200-230 us against 150 us out of one cache-hot
/// buffer. The peer (client) side uses one buffer, as MemCache's client does.
pub struct WsRegion {
    seg: mmc_local::segment::Segment,
    next: std::sync::atomic::AtomicUsize,
}

impl WsRegion {
    pub fn new(ws: u64) -> Result<WsRegion, String> {
        let len = (ws as usize).max(1 << 20);
        let seg = mmc_local::segment::Segment::create(len, true).map_err(|e| format!("raw tcp region: {e}"))?;
        // SAFETY: the mapping is `len` bytes and ours alone.
        unsafe { std::ptr::write_bytes(seg.base(), 9, len) };
        Ok(WsRegion {
            seg,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The next slot of `len` bytes (at most the region), rotating.
    fn slot(&self, len: usize) -> (*mut u8, usize) {
        let len = len.clamp(1, self.seg.len());
        let slots = self.seg.len() / len;
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % slots;
        (self.seg.base().wrapping_add(i * len), len)
    }

    /// Reads up to `max` bytes from `s` into the next slot; 0 at end of stream.
    pub fn read_some(&self, s: &TcpStream, max: usize) -> std::io::Result<usize> {
        let (p, len) = self.slot(max);
        loop {
            // SAFETY: `p..p+len` lies in the mapping. The kernel writes
            // into it; no Rust reference to these bytes exists (concurrent
            // connections may share slots: the bytes are never looked at).
            let n = unsafe { libc::read(s.as_raw_fd(), p as *mut libc::c_void, len) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Reads exactly `len` bytes from `s` into successive slots.
    fn read_exact(&self, s: &TcpStream, mut len: usize) -> std::io::Result<()> {
        while len > 0 {
            match self.read_some(s, len)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => len -= n,
            }
        }
        Ok(())
    }

    /// Sends `len` bytes to `s` out of successive slots.
    fn write_all(&self, s: &TcpStream, mut len: usize) -> std::io::Result<()> {
        while len > 0 {
            let (p, n) = self.slot(len);
            let mut off = 0;
            while off < n {
                // SAFETY: as in `read_some`; the kernel only reads the bytes.
                let w = unsafe { libc::write(s.as_raw_fd(), p.add(off) as *const libc::c_void, n - off) };
                if w < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                off += w as usize;
            }
            len -= n;
        }
        Ok(())
    }
}

/// Serves raw TCP peers: the first byte of a connection picks the mode:
/// `S` (the peer streams; bytes are read into `region` and their count is
/// sent back as a u64 once the peer shuts its side), `R` + u64 chunk (this
/// side streams chunks out of `region` until the peer closes), `Q`
/// (request/response, see below), `P` (64-byte echo).
pub fn tcp_serve(l: TcpListener, region: std::sync::Arc<WsRegion>) {
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let region = region.clone();
        let _ = std::thread::Builder::new()
            .name("bench-tcp-peer".into())
            .spawn(move || {
                let _ = s.set_nodelay(true);
                let mut mode = [0u8; 1];
                if s.read_exact(&mut mode).is_err() {
                    return;
                }
                match mode[0] {
                    b'S' => {
                        let mut n = 0u64;
                        loop {
                            match region.read_some(&s, 1 << 20) {
                                Ok(0) => break,
                                Ok(k) => n += k as u64,
                                Err(_) => return,
                            }
                        }
                        let _ = s.write_all(&n.to_le_bytes());
                    }
                    b'R' => {
                        let mut len = [0u8; 8];
                        if s.read_exact(&mut len).is_err() {
                            return;
                        }
                        let chunk = u64::from_le_bytes(len).clamp(1, 1 << 30) as usize;
                        while region.write_all(&s, chunk).is_ok() {}
                    }
                    b'Q' => {
                        // Request / response: a u64 length, then that many bytes
                        // each way as the request says (bit 63 set: the peer
                        // sends them and gets a 1-byte ack; clear: this side sends).
                        let mut req = [0u8; 8];
                        while s.read_exact(&mut req).is_ok() {
                            let r = u64::from_le_bytes(req);
                            let (upload, len) = (r >> 63 == 1, (r & !(1 << 63)) as usize);
                            let ok = if upload {
                                region.read_exact(&s, len).is_ok() && s.write_all(&[1]).is_ok()
                            } else {
                                region.write_all(&s, len).is_ok()
                            };
                            if !ok {
                                break;
                            }
                        }
                    }
                    b'P' => {
                        let mut b = [0u8; 64];
                        while s.read_exact(&mut b).is_ok() {
                            if s.write_all(&b).is_err() {
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            });
    }
}

fn tcp_connect(addr: &str, mode: u8) -> Result<TcpStream, String> {
    let mut s = raw_connect(addr)?;
    s.write_all(&[mode]).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Raw TCP stream ops (no store): the baseline of the transfer path.
pub fn tcp_op(c: &Cmd) -> Result<Res, String> {
    let size = c.size.max(1) as usize;
    match c.op.as_str() {
        "stream_send" => {
            let mut s = tcp_connect(&c.addr, b'S')?;
            let mut src = vec![0u8; size];
            fill(&mut src, 8);
            // The time runs from the first write to the peer's count of
            // received bytes (so includes draining the socket buffers).
            let (m, t0, _) = timed(c, None, |rec| -> Result<(), String> {
                while rec.more() {
                    rec.time(|| s.write_all(&src))
                        .map_err(|e| format!("stream write: {e}"))?;
                }
                Ok(())
            })?;
            s.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
            let mut n = [0u8; 8];
            s.read_exact(&mut n).map_err(|e| format!("stream count: {e}"))?;
            let t1 = unix_now();
            let got = u64::from_le_bytes(n);
            if got != m.ops * size as u64 {
                return Err(format!("stream: sent {} bytes, peer got {got}", m.ops * size as u64));
            }
            let mut r = Res::of(&m, 1, size as u64, t0, t1);
            r.busy_s = t1 - t0;
            r.wall_s = r.busy_s;
            Ok(r)
        }
        "stream_recv" => {
            let mut s = tcp_connect(&c.addr, b'R')?;
            s.write_all(&(size as u64).to_le_bytes()).map_err(|e| e.to_string())?;
            let mut dst = vec![0u8; size];
            fill(&mut dst, 10);
            let (m, t0, t1) = timed(c, None, |rec| -> Result<(), String> {
                while rec.more() {
                    rec.time(|| s.read_exact(&mut dst))
                        .map_err(|e| format!("stream read: {e}"))?;
                }
                Ok(())
            })?;
            let mut r = Res::of(&m, 1, size as u64, t0, t1);
            r.busy_s = t1 - t0;
            r.wall_s = r.busy_s;
            Ok(r)
        }
        "rr_send" | "rr_recv" => {
            // One object per request and response, like a put (the bytes
            // then an ack) or a get (a request then the bytes), with no
            // metadata: what a transfer protocol without pipelining across
            // objects can reach.
            let mut s = tcp_connect(&c.addr, b'Q')?;
            let upload = c.op == "rr_send";
            let mut buf = vec![0u8; size];
            fill(&mut buf, 12);
            let req = (size as u64) | if upload { 1 << 63 } else { 0 };
            let one = |s: &mut TcpStream, buf: &mut [u8]| -> std::io::Result<()> {
                if upload {
                    s.write_all(&req.to_le_bytes())?;
                    s.write_all(buf)?;
                    let mut ack = [0u8; 1];
                    s.read_exact(&mut ack)
                } else {
                    s.write_all(&req.to_le_bytes())?;
                    s.read_exact(buf)
                }
            };
            let (m, t0, t1) = timed(c, None, |rec| -> Result<(), String> {
                while rec.more() {
                    rec.time(|| one(&mut s, &mut buf))
                        .map_err(|e| format!("request/response: {e}"))?;
                }
                Ok(())
            })?;
            Ok(Res::of(&m, 1, size as u64, t0, t1))
        }
        "pingpong" => {
            let mut s = tcp_connect(&c.addr, b'P')?;
            let mut b = [7u8; 64];
            let warm = Cmd {
                iters: Some(200),
                start_at: None,
                ..c.clone()
            };
            let mut rtt = |c: &Cmd| {
                timed(c, None, |rec| -> Result<(), String> {
                    while rec.more() {
                        rec.time(|| s.write_all(&b).and_then(|_| s.read_exact(&mut b)))
                            .map_err(|e| format!("ping-pong: {e}"))?;
                    }
                    Ok(())
                })
            };
            rtt(&warm)?;
            let (m, t0, t1) = rtt(c)?;
            Ok(Res::of(&m, 1, 0, t0, t1))
        }
        other => Err(format!("unknown op {other} for a tcp client")),
    }
}

/// Congestion control of this process's raw TCP sockets.
pub(super) static RAW_CONGESTION: std::sync::OnceLock<mmc_local::transfer::Congestion> = std::sync::OnceLock::new();

fn raw_cc() -> &'static mmc_local::transfer::Congestion {
    RAW_CONGESTION.get_or_init(|| mmc_local::transfer::Congestion::from_config(&crate::cluster::congestion()))
}

/// A raw-TCP listener with this process's congestion control (the same as
/// MemCache's transfer sockets in this run), inherited by what it accepts.
pub fn raw_listen(addr: &str) -> Result<TcpListener, String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("raw tcp listen {addr}: {e}"))?;
    raw_cc().apply(&l);
    Ok(l)
}

/// A raw-TCP connection set up as MemCache's transfer connections are
/// (`mmc_local::transfer::connect`: congestion control before the
/// handshake, `TCP_NODELAY`), as a blocking socket.
pub fn raw_connect(addr: &str) -> Result<TcpStream, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let s = rt
        .block_on(mmc_local::transfer::connect(addr, raw_cc()))
        .and_then(|s| s.into_std())
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok(s)
}
