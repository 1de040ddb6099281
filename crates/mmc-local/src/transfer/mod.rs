//! The cross-host data path (TCP): the server each memory-providing
//! LocalService runs over its segment, and the pooled client that reads and
//! writes remote segments. The byte layout is specified in
//! `mmc_wire::transfer`. Every transfer connection starts with the
//! cluster-token handshake ([`mmc_wire::auth`], transfer domain).

pub mod client;
pub mod server;
pub mod tls;

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Most bytes a reader asks the kernel to gather before waking it.
const LOWAT_MAX: usize = 1 << 20;

/// Fills `buf` from `sock`. Before each wait it sets the socket's receive
/// low-water mark (`SO_RCVLOWAT`) to the bytes still missing (at most
/// [`LOWAT_MAX`]), so the kernel wakes the reader once for the rest of a
/// transfer instead of at every arrival of a few segments: each wake-up
/// costs tens of microseconds on a virtual machine (`mmc bench --workload
/// tcp`: a 1 MiB get over loopback TCP made 14-22 context switches, 9-12
/// with the mark). Every read of a transfer socket goes through here, so
/// the mark always matches the read in progress.
pub(crate) async fn read_full(sock: &TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: `buf` is borrowed exclusively for the whole call, so its
    // bytes are valid for writes and nobody else reads or writes them.
    unsafe { read_full_raw(sock, buf.as_mut_ptr() as usize, buf.len()).await }
}

/// [`read_full`] into raw memory: the bytes go from the kernel straight to
/// `[dst, dst + len)` without a Rust reference to them ever existing, as
/// memory others may access at the same time (a shared segment) requires.
/// The address travels as a `usize` so the future stays `Send`.
///
/// # Safety
///
/// `[dst, dst + len)` must stay valid for writes (mapped, writable) until
/// the returned future completes or is dropped.
pub(crate) async unsafe fn read_full_raw(sock: &TcpStream, dst: usize, len: usize) -> std::io::Result<()> {
    let fd = sock.as_raw_fd();
    let mut off = 0;
    let mut lowat = 0usize;
    while off < len {
        let r = sock.try_io(Interest::READABLE, || {
            // SAFETY: `dst + off .. dst + len` lies inside the range the
            // caller guarantees writable; recv writes at most `len - off`
            // bytes there and creates no reference to them.
            let n = unsafe { libc::recv(fd, (dst as *mut u8).add(off) as *mut libc::c_void, len - off, 0) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {off} of {len} bytes"),
                ))
            }
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let want = (len - off).min(LOWAT_MAX);
                if want != lowat {
                    set_rcvlowat(sock, want)?;
                    lowat = want;
                }
                sock.readable().await?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `head` then the raw bytes `[src, src + len)` with vectored sends
/// (one segment carries the head and the first bytes, as in
/// [`write_all_bufs`]), without a Rust reference to the raw bytes ever
/// existing. `MSG_NOSIGNAL`: a peer that went away is an error, not a
/// SIGPIPE in a process embedding the client. The address travels as a
/// `usize` so the future stays `Send`.
///
/// # Safety
///
/// `[src, src + len)` must stay valid for reads (mapped) until the
/// returned future completes or is dropped.
pub(crate) async unsafe fn send_with_raw(sock: &TcpStream, head: &[u8], src: usize, len: usize) -> std::io::Result<()> {
    let fd = sock.as_raw_fd();
    let total = head.len() + len;
    let mut sent = 0;
    while sent < total {
        let r = sock.try_io(Interest::WRITABLE, || {
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 2];
            let mut n = 0;
            if sent < head.len() {
                iov[0] = libc::iovec {
                    iov_base: head[sent..].as_ptr() as *mut libc::c_void,
                    iov_len: head.len() - sent,
                };
                n = 1;
            }
            let done = sent.saturating_sub(head.len());
            if done < len {
                iov[n] = libc::iovec {
                    // SAFETY: `done < len`: inside the range the caller
                    // guarantees readable.
                    iov_base: unsafe { (src as *const u8).add(done) } as *mut libc::c_void,
                    iov_len: len - done,
                };
                n += 1;
            }
            // SAFETY: an all-zero msghdr is valid (no name, no control).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = n as _;
            // SAFETY: every iovec points into `head` (borrowed for the
            // call) or into the caller's readable range; sendmsg only reads
            // them.
            let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        });
        match r {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => sock.writable().await?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn set_rcvlowat(sock: &TcpStream, n: usize) -> std::io::Result<()> {
    let v = n as libc::c_int;
    // SAFETY: setsockopt on a socket we own, with a valid int option value.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The congestion control a LocalService's transfer sockets use: `None`
/// keeps the kernel's default (`local.transfer_congestion = "system"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Congestion(Option<String>);

impl Congestion {
    /// From the `local.transfer_congestion` value.
    pub fn from_config(v: &str) -> Self {
        Congestion((v != "system").then(|| v.to_owned()))
    }

    /// Sets it on `sock`: a listening socket (the connections it accepts
    /// inherit it) or one not yet connected. Set on a connected socket that
    /// started on BBR it would leave the kernel pacing that socket: BBR
    /// turns pacing on when a connection is set up, and switching away does
    /// not turn it off. Both ends of a transfer connection set it (the
    /// sender's algorithm decides how its bytes are paced). A kernel that
    /// refuses the name (not built, or not allowed to this user by
    /// `net.ipv4.tcp_allowed_congestion_control`) leaves the socket on its
    /// default; that is logged once per process.
    pub fn apply(&self, sock: &impl AsRawFd) {
        let Some(name) = &self.0 else { return };
        // SAFETY: setsockopt on a socket we own, with a buffer of the given length.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                name.as_ptr() as *const libc::c_void,
                name.len() as libc::socklen_t,
            )
        };
        if r != 0 {
            static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "local.transfer_congestion = {name:?} refused by the kernel ({}); transfer sockets keep the \
                     system default (see net.ipv4.tcp_available_congestion_control)",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Why a transfer connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    Io(std::io::Error),
    Auth(mmc_wire::auth::AuthError),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Auth(e) => write!(f, "authentication failed: {e}"),
        }
    }
}

/// Its Display already names the I/O or authentication failure, so it
/// reports no separate source.
impl std::error::Error for ConnectError {}

/// Connects to `addr` with congestion control `cc` set before the
/// handshake (see [`Congestion::apply`]) and `TCP_NODELAY`.
pub async fn connect(addr: &str, cc: &Congestion) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let sock = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        cc.apply(&sock);
        match sock.connect(a).await {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{addr}: no address"))))
}

/// Writes `bufs` in order with vectored writes, so a header leaves in the
/// same segment as the first bytes that follow it. Written separately, a
/// small header arrives alone and its reader wakes for it, then sleeps
/// again until the bulk arrives: one more thread wake-up per transfer, which
/// costs tens of microseconds on a virtual machine (a 1 MiB raw
/// request/reply between two network namespaces took 792-846 us p50 with
/// the header written first, 598-636 us without, docs/benchmarks.md).
pub(crate) async fn write_all_bufs<W: tokio::io::AsyncWrite + Unpin>(
    sock: &mut W,
    bufs: &[&[u8]],
) -> std::io::Result<()> {
    let mut first = 0;
    let mut off = 0;
    loop {
        // Skip what is written (and empty buffers).
        while first < bufs.len() && off == bufs[first].len() {
            first += 1;
            off = 0;
        }
        if first == bufs.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&bufs[first][off..]))
            .chain(bufs[first + 1..].iter().map(|b| IoSlice::new(b)))
            .take(64)
            .collect();
        let mut n = sock.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = bufs[first].len() - off;
            if n < left {
                off += n;
                break;
            }
            n -= left;
            first += 1;
            off = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn congestion_of(sock: &TcpStream) -> String {
        let mut buf = [0u8; 16];
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: getsockopt into a buffer of `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                buf.as_mut_ptr() as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!(r, 0);
        String::from_utf8_lossy(&buf[..len as usize])
            .trim_end_matches('\0')
            .to_owned()
    }

    #[tokio::test]
    async fn congestion_control_is_set_before_the_handshake_or_left_alone() {
        let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .unwrap()
            .trim()
            .to_owned();
        // reno is built into every Linux kernel and always allowed.
        let reno = Congestion::from_config("reno");
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        reno.apply(&l);
        let addr = l.local_addr().unwrap().to_string();
        let c = connect(&addr, &reno).await.unwrap();
        let (a, _) = l.accept().await.unwrap();
        assert_eq!(congestion_of(&c), "reno", "the connecting side");
        assert_eq!(congestion_of(&a), "reno", "inherited from the listener");
        let c = connect(&addr, &Congestion::from_config("system")).await.unwrap();
        assert_eq!(congestion_of(&c), system);
        // A name the kernel does not have leaves the system default.
        let c = connect(&addr, &Congestion::from_config("nosuchcc")).await.unwrap();
        assert_eq!(congestion_of(&c), system);
    }

    #[tokio::test]
    async fn raw_send_and_receive_move_head_and_bytes() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let src: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let expected = src.clone();
        let writer = tokio::spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            // SAFETY: `src` lives until the send completes.
            unsafe { send_with_raw(&s, b"head", src.as_ptr() as usize, src.len()) }
                .await
                .unwrap();
            s
        });
        let (r, _) = l.accept().await.unwrap();
        let mut head = [0u8; 4];
        read_full(&r, &mut head).await.unwrap();
        assert_eq!(&head, b"head");
        let mut dst = vec![0u8; expected.len()];
        // SAFETY: `dst` is ours and outlives the call.
        unsafe { read_full_raw(&r, dst.as_mut_ptr() as usize, dst.len()) }
            .await
            .unwrap();
        assert_eq!(dst, expected);
        drop(writer.await.unwrap());
        let mut more = [0u8; 1];
        let e = read_full(&r, &mut more).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn pieces_written_vectored_are_read_whole_across_slow_arrivals() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // Pieces of odd sizes (one empty), more than one vectored
            // write can take (over 64 slices and beyond the socket buffer).
            let pieces: Vec<Vec<u8>> = (0..200usize)
                .map(|i| vec![(i % 251) as u8; (i * 7919) % 40_000])
                .collect();
            let refs: Vec<&[u8]> = pieces.iter().map(|p| p.as_slice()).collect();
            write_all_bufs(&mut s, &refs).await.unwrap();
            // Then a transfer that trickles in: the reader must not wait
            // for more than what is left.
            for chunk in [b"abc".as_slice(), b"defg", b"h"] {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                s.write_all(chunk).await.unwrap();
            }
            pieces.concat()
        });
        let (r, _) = l.accept().await.unwrap();
        let expected_len: usize = (0..200usize).map(|i| (i * 7919) % 40_000).sum();
        let mut got = vec![0u8; expected_len];
        read_full(&r, &mut got).await.unwrap();
        let mut tail = [0u8; 8];
        read_full(&r, &mut tail).await.unwrap();
        assert_eq!(&tail, b"abcdefgh");
        assert_eq!(got, writer.await.unwrap());
        // The peer is gone: the next read ends with an error, not a hang.
        let mut more = [0u8; 4];
        assert!(read_full(&r, &mut more).await.is_err());
    }
}
