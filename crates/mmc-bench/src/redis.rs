//! The Redis baseline: a `redis-server` the bench starts (and stops by PID)
//! and a small hand-written RESP client over a blocking `TcpStream`.
//!
//! Values go from the caller's buffers to the socket with `writev` and from
//! the socket into the caller's buffers with `read`s straight into them
//! (std's `BufReader` bypasses its buffer for reads larger than it), so the
//! client adds no copy of its own: Redis is measured, not the client.

use std::io::{BufRead, BufReader, IoSlice, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child, stopped by PID (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: String,
    pub version: String,
}

/// `redis-server --version`, or None when it is not installed.
pub fn installed() -> Option<String> {
    let out = Command::new("redis-server").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // "Redis server v=7.0.15 sha=..."
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .map(str::to_owned)
}

impl Server {
    /// Starts `redis-server` bound to `ip:port` (no persistence, no
    /// protection), optionally inside network namespace `netns`.
    pub fn start(netns: Option<&str>, ip: &str, port: u16) -> Result<Server, String> {
        let version = installed().ok_or("redis-server not found (apt-get install redis-server)")?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-server"]);
                c
            }
            None => Command::new("redis-server"),
        };
        cmd.args(["--port", &port.to_string(), "--bind", ip])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
            ])
            .args(["--loglevel", "warning", "--logfile", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        super::cluster::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("cannot start redis-server: {e}"))?;
        let pid = child.id();
        let mut s = Server {
            child,
            pid,
            addr: format!("{ip}:{port}"),
            version,
        };
        // `ip netns exec` execs redis-server: the PID is the server's.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                return Err(format!("redis-server exited at start: {st}"));
            }
            let probe = match netns {
                Some(ns) => super::netns::in_netns(ns, {
                    let a = s.addr.clone();
                    move || ping(&a)
                })
                .and_then(|r| r),
                None => ping(&s.addr),
            };
            if probe.is_ok() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = s.stop();
                return Err(format!("redis-server on {} did not answer PING: {probe:?}", s.addr));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM by PID, then SIGKILL after 3 s.
    pub fn stop(&mut self) -> Result<(), String> {
        if self.child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on our own child's PID, which we have not reaped.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn ping(addr: &str) -> Result<(), String> {
    let mut c = Conn::connect(addr)?;
    c.command(&[b"PING"])?;
    match c.reply()? {
        Reply::Simple(s) if s == "PONG" => Ok(()),
        r => Err(format!("PING answered {r:?}")),
    }
}

#[derive(Debug)]
pub enum Reply {
    Simple(String),
    Int(i64),
    /// Length of a bulk string whose bytes were consumed (None: nil).
    Bulk(Option<usize>),
    Array(i64),
}

/// One connection (TCP_NODELAY).
pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    line: Vec<u8>,
    hdr: Vec<u8>,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("redis {what}: {e}")
}

/// Writes all of `bufs`, retrying on short writes.
fn write_all_vectored(w: &mut TcpStream, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Header text of one bulk string.
fn bulk_hdr(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Arguments of one command: small ones inline, values as lists of pieces.
pub enum Arg<'a> {
    Small(&'a [u8]),
    Value(&'a [&'a [u8]]),
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn, String> {
        let s = TcpStream::connect(addr).map_err(io("connect"))?;
        s.set_nodelay(true).map_err(io("nodelay"))?;
        let w = s.try_clone().map_err(io("clone"))?;
        Ok(Conn {
            r: BufReader::with_capacity(64 << 10, s),
            w,
            line: Vec::with_capacity(64),
            hdr: Vec::with_capacity(4096),
        })
    }

    /// Sends several commands in one `writev` (a pipeline): the RESP text
    /// is assembled in one header buffer, the values are referenced.
    pub fn send(&mut self, cmds: &[Vec<Arg<'_>>]) -> Result<(), String> {
        self.hdr.clear();
        // (offset in hdr where a value is inserted, the value's pieces)
        let mut cuts: Vec<(usize, &[&[u8]])> = Vec::new();
        for args in cmds {
            self.hdr.push(b'*');
            self.hdr.extend_from_slice(args.len().to_string().as_bytes());
            self.hdr.extend_from_slice(b"\r\n");
            for a in args {
                match a {
                    Arg::Small(b) => {
                        bulk_hdr(&mut self.hdr, b.len());
                        self.hdr.extend_from_slice(b);
                        self.hdr.extend_from_slice(b"\r\n");
                    }
                    Arg::Value(pieces) => {
                        bulk_hdr(&mut self.hdr, pieces.iter().map(|p| p.len()).sum());
                        cuts.push((self.hdr.len(), pieces));
                        self.hdr.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(cuts.len() * 3 + 1);
        let mut at = 0;
        for (cut, pieces) in &cuts {
            slices.push(IoSlice::new(&self.hdr[at..*cut]));
            slices.extend(pieces.iter().map(|p| IoSlice::new(p)));
            at = *cut;
        }
        slices.push(IoSlice::new(&self.hdr[at..]));
        // writev takes at most IOV_MAX (1024) slices per call.
        for group in slices.chunks_mut(1000) {
            write_all_vectored(&mut self.w, group).map_err(io("write"))?;
        }
        Ok(())
    }

    pub fn command(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let v: Vec<Arg<'_>> = args.iter().map(|a| Arg::Small(a)).collect();
        self.send(&[v])
    }

    fn read_line(&mut self) -> Result<(), String> {
        self.line.clear();
        self.r.read_until(b'\n', &mut self.line).map_err(io("read"))?;
        if self.line.len() < 3 || !self.line.ends_with(b"\r\n") {
            return Err(format!(
                "redis: bad reply line {:?}",
                String::from_utf8_lossy(&self.line)
            ));
        }
        Ok(())
    }

    fn num(&self) -> Result<i64, String> {
        std::str::from_utf8(&self.line[1..self.line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("redis: bad number in {:?}", String::from_utf8_lossy(&self.line)))
    }

    /// Reads one reply. A bulk string is read into `into` (pieces filled in
    /// order; it must fit exactly) or discarded when `into` is empty.
    fn reply_into(&mut self, into: &mut [&mut [u8]]) -> Result<Reply, String> {
        self.read_line()?;
        match self.line[0] {
            b'+' => Ok(Reply::Simple(
                String::from_utf8_lossy(&self.line[1..self.line.len() - 2]).into_owned(),
            )),
            b'-' => Err(format!(
                "redis error: {}",
                String::from_utf8_lossy(&self.line[1..self.line.len() - 2])
            )),
            b':' => Ok(Reply::Int(self.num()?)),
            b'*' => Ok(Reply::Array(self.num()?)),
            b'$' => {
                let n = self.num()?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let n = n as usize;
                if into.is_empty() {
                    let mut left = n + 2;
                    let mut sink = [0u8; 8192];
                    while left > 0 {
                        let k = left.min(sink.len());
                        self.r.read_exact(&mut sink[..k]).map_err(io("read"))?;
                        left -= k;
                    }
                } else {
                    let total: usize = into.iter().map(|b| b.len()).sum();
                    if total != n {
                        return Err(format!("redis: value of {n} bytes, buffers of {total}"));
                    }
                    for b in into.iter_mut() {
                        self.r.read_exact(b).map_err(io("read"))?;
                    }
                    let mut crlf = [0u8; 2];
                    self.r.read_exact(&mut crlf).map_err(io("read"))?;
                }
                Ok(Reply::Bulk(Some(n)))
            }
            _ => Err(format!(
                "redis: unexpected reply {:?}",
                String::from_utf8_lossy(&self.line)
            )),
        }
    }

    pub fn reply(&mut self) -> Result<Reply, String> {
        self.reply_into(&mut [])
    }

    fn expect_ok(&mut self) -> Result<(), String> {
        match self.reply()? {
            Reply::Simple(s) if s == "OK" => Ok(()),
            r => Err(format!("redis: expected OK, got {r:?}")),
        }
    }

    /// SET of a value given as pieces (one bulk string, written with writev).
    pub fn set(&mut self, key: &str, value: &[&[u8]]) -> Result<(), String> {
        self.send(&[vec![Arg::Small(b"SET"), Arg::Small(key.as_bytes()), Arg::Value(value)]])?;
        self.expect_ok()
    }

    /// GET into pieces whose lengths sum to the value's size.
    pub fn get_into(&mut self, key: &str, into: &mut [&mut [u8]]) -> Result<(), String> {
        self.command(&[b"GET", key.as_bytes()])?;
        match self.reply_into(into)? {
            Reply::Bulk(Some(_)) => Ok(()),
            r => Err(format!("redis GET {key}: {r:?}")),
        }
    }

    /// One MSET for the whole batch.
    pub fn mset(&mut self, keys: &[&str], values: &[&[u8]]) -> Result<(), String> {
        let pieces: Vec<[&[u8]; 1]> = values.iter().map(|v| [*v]).collect();
        let mut args = vec![Arg::Small(b"MSET")];
        for (k, p) in keys.iter().zip(&pieces) {
            args.push(Arg::Small(k.as_bytes()));
            args.push(Arg::Value(p));
        }
        self.send(&[args])?;
        self.expect_ok()
    }

    /// One MGET for the whole batch, each value read into its buffer.
    pub fn mget_into(&mut self, keys: &[&str], bufs: &mut [&mut [u8]]) -> Result<(), String> {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        self.command(&args)?;
        match self.reply()? {
            Reply::Array(n) if n as usize == keys.len() => {}
            r => return Err(format!("redis MGET: {r:?}")),
        }
        for (k, b) in keys.iter().zip(bufs.iter_mut()) {
            match self.reply_into(std::slice::from_mut(b))? {
                Reply::Bulk(Some(_)) => {}
                r => return Err(format!("redis MGET {k}: {r:?}")),
            }
        }
        Ok(())
    }

    /// EXISTS k1 .. kn: how many of them exist.
    pub fn exists(&mut self, keys: &[&str]) -> Result<i64, String> {
        let mut args: Vec<&[u8]> = vec![b"EXISTS"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        self.command(&args)?;
        match self.reply()? {
            Reply::Int(n) => Ok(n),
            r => Err(format!("redis EXISTS: {r:?}")),
        }
    }

    /// DEL in chunks of 1024 keys.
    pub fn del(&mut self, keys: &[&str]) -> Result<(), String> {
        for chunk in keys.chunks(1024) {
            let mut args: Vec<&[u8]> = vec![b"DEL"];
            args.extend(chunk.iter().map(|k| k.as_bytes()));
            self.command(&args)?;
            self.reply()?;
        }
        Ok(())
    }
}
