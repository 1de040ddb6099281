//! TLS on cross-host transfer connections (`local.security.tls.transfer`).
//!
//! Owns the client's connection type ([`Stream`]: plain TCP, or TLS over
//! TCP) and the TLS transfer server ([`serve`]). The byte layout is the
//! same as on plain TCP (`mmc_wire::transfer`); only the stream differs.
//! The plain path keeps its `SO_RCVLOWAT` reads; TLS reads decrypt
//! through rustls, which needs the bytes anyway, and writes go through
//! rustls' vectored writer (header and bytes share records), flushed at the
//! end of each request or reply.
//!
//! The server loop mirrors [`server::connection`](super::server::connection)
//! over any async stream: the same connection limit, cluster-token
//! handshake (after the TLS one), header validation (magic, version, op,
//! segment id, range) before memory is touched, INVALID_PARAM and a closed
//! connection for a bad one, and the same transfer timeout. Segment bytes
//! pass through a bounce buffer (rustls needs slices; no Rust reference is
//! made over shared memory).

use crate::segment::Segment;
use mmc_tls::{ClientTls, TlsAcceptor};
use mmc_wire::auth::{server_handshake_within, ClusterToken, Domain, AUTH_TIMEOUT};
use mmc_wire::error::code;
use mmc_wire::listen::ConnLimit;
use mmc_wire::transfer::{encode_reply, Header, Op, HEADER_LEN};
use mmc_wire::ServiceId;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest a server-side TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer under the TLS layer. rustls reads the socket 4 KiB at a
/// time; this lets one system call take a large part of a transfer.
const SOCKET_BUFFER: usize = 256 << 10;

/// A TCP stream with a read buffer, under TLS.
type Buffered = tokio::io::BufReader<TcpStream>;

/// A client transfer connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<mmc_tls::ClientTlsStream<Buffered>>),
}

impl Stream {
    /// Connects to `addr` (see [`super::connect`]), with `tls` runs the TLS
    /// client handshake, then proves `token` (the cluster-token handshake,
    /// transfer domain) over the resulting stream.
    pub(crate) async fn connect(
        addr: &str,
        cc: &super::Congestion,
        tls: Option<&ClientTls>,
        token: Option<&[u8]>,
    ) -> Result<Self, super::ConnectError> {
        use super::ConnectError;
        let sock = super::connect(addr, cc).await.map_err(ConnectError::Io)?;
        let mut stream = match tls {
            None => Stream::Tcp(sock),
            Some(t) => match t.connect(addr, Buffered::with_capacity(SOCKET_BUFFER, sock)).await {
                Ok(s) => Stream::Tls(Box::new(s)),
                Err(e) => {
                    return Err(ConnectError::Io(io::Error::new(
                        e.kind(),
                        format!("TLS handshake: {e}"),
                    )))
                }
            },
        };
        let r = match &mut stream {
            Stream::Tcp(s) => mmc_wire::auth::client_handshake(s, token, Domain::Transfer).await,
            Stream::Tls(s) => mmc_wire::auth::client_handshake(&mut **s, token, Domain::Transfer).await,
        };
        r.map_err(ConnectError::Auth)?;
        Ok(stream)
    }

    pub(crate) async fn read_full(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => super::read_full(s, buf).await,
            Stream::Tls(s) => s.read_exact(buf).await.map(drop),
        }
    }

    pub(crate) async fn write_all_bufs(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => super::write_all_bufs(s, bufs).await,
            Stream::Tls(s) => {
                super::write_all_bufs(&mut **s, bufs).await?;
                s.flush().await
            }
        }
    }
}

/// Accepts TLS transfer connections forever: at most `max_connections` at
/// once; each runs the TLS handshake, then the cluster-token handshake, and
/// each transfer on it is bounded by `transfer_timeout`.
pub async fn serve(
    listener: TcpListener,
    segment: Arc<Segment>,
    service_id: Arc<AtomicU32>,
    acceptor: TlsAcceptor,
    token: Option<ClusterToken>,
    transfer_timeout: Duration,
    max_connections: usize,
) {
    let limit = ConnLimit::new("transfer", max_connections);
    loop {
        let (sock, peer, permit) = limit.accept(&listener).await;
        let _ = sock.set_nodelay(true);
        let seg = segment.clone();
        let id = service_id.clone();
        let acceptor = acceptor.clone();
        let token = token.clone();
        tokio::spawn(async move {
            // Held until the connection ends: its slot under the limit.
            let _permit = permit;
            let sock = Buffered::with_capacity(SOCKET_BUFFER, sock);
            let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "TLS handshake failed; closing transfer connection");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, "no TLS handshake within {HANDSHAKE_TIMEOUT:?}; closing transfer connection");
                    return;
                }
            };
            let proof = token.as_ref().map(ClusterToken::as_bytes);
            if let Err(e) = server_handshake_within(&mut tls, proof, Domain::Transfer, AUTH_TIMEOUT).await {
                tracing::warn!(%peer, error = %e, "transfer connection failed authentication; closing it");
                return;
            }
            if let Err(e) = connection(tls, &seg, &id, transfer_timeout).await {
                tracing::warn!(%peer, error = %e, "closing transfer connection");
            }
        });
    }
}

/// Bytes moved between the TLS stream and the segment per copy through the
/// bounce buffer.
const BOUNCE: usize = 256 << 10;

/// Serves one transfer connection until the peer closes it or sends a bad
/// header. rustls needs Rust slices to decrypt into and encrypt from, and no
/// Rust reference may be made over the shared segment (other connections
/// and processes access it concurrently), so bytes pass through a bounce
/// buffer copied to and from the segment through raw pointers. Once a
/// header has begun, the header and then the transfer each must complete
/// within `limit`.
pub(crate) async fn connection<S>(mut s: S, seg: &Segment, my_id: &AtomicU32, limit: Duration) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut bounce = Vec::new();
    loop {
        let mut hb = [0u8; HEADER_LEN];
        // Waiting for a header's first byte is not bounded (pooled
        // connections idle); the rest of it is.
        match s.read(&mut hb[..1]).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        match tokio::time::timeout(limit, s.read_exact(&mut hb[1..])).await {
            Ok(r) => r.map(drop)?,
            Err(_) => return Err(timed_out(format!("transfer header incomplete after {limit:?}"))),
        }
        let h = match Header::decode(&hb) {
            Ok(h) => h,
            Err(e) => return reject(&mut s, format!("bad transfer header: {e}")).await,
        };
        let me: ServiceId = my_id.load(Ordering::Acquire);
        if h.segment != me {
            return reject(
                &mut s,
                format!("request for segment {} reached segment {me}", h.segment),
            )
            .await;
        }
        // As an address: a raw pointer must not live across an await.
        let checked = match (seg.range(h.offset, h.len), usize::try_from(h.len)) {
            (Ok(p), Ok(len)) if len > 0 => Some((p as usize, len)),
            _ => None,
        };
        let Some((addr, len)) = checked else {
            let why = format!("range {}+{} outside the {}-byte segment", h.offset, h.len, seg.len());
            return reject(&mut s, why).await;
        };
        if bounce.is_empty() {
            bounce = vec![0u8; BOUNCE];
        }
        let moved = tokio::time::timeout(limit, async {
            match h.op {
                Op::Read => {
                    s.write_all(&encode_reply(code::OK)).await?;
                    let mut off = 0;
                    while off < len {
                        let n = (len - off).min(BOUNCE);
                        // SAFETY: `[addr, addr + len)` was checked against
                        // the mapping, which `seg` keeps alive for this
                        // call; the segment is only read, through a raw
                        // pointer, into our own buffer.
                        unsafe { std::ptr::copy_nonoverlapping((addr + off) as *const u8, bounce.as_mut_ptr(), n) };
                        s.write_all(&bounce[..n]).await?;
                        off += n;
                    }
                }
                Op::Write => {
                    let mut off = 0;
                    while off < len {
                        let n = (len - off).min(BOUNCE);
                        s.read_exact(&mut bounce[..n]).await?;
                        // SAFETY: as above, and the mapping is writable;
                        // which writer owns the range is the MetaService
                        // allocator's and leases' business.
                        unsafe { std::ptr::copy_nonoverlapping(bounce.as_ptr(), (addr + off) as *mut u8, n) };
                        off += n;
                    }
                    s.write_all(&encode_reply(code::OK)).await?;
                }
            }
            s.flush().await
        })
        .await;
        match moved {
            Ok(r) => r?,
            Err(_) => {
                return Err(timed_out(format!(
                    "transfer of {len} bytes at offset {} not done within {limit:?} (local.transfer_timeout_ms)",
                    h.offset
                )))
            }
        }
    }
}

fn timed_out(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, msg)
}

async fn reject<S: AsyncWrite + Unpin>(s: &mut S, why: String) -> io::Result<()> {
    let _ = s.write_all(&encode_reply(code::INVALID_PARAM)).await;
    let _ = s.flush().await;
    Err(io::Error::new(io::ErrorKind::InvalidData, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Piece;
    use crate::transfer::client::{Job, TransferClient};
    use crate::transfer::Congestion;
    use mmc_tls::testing::TestPki;

    const SEG: u32 = 3;

    async fn tls_server(pki: &TestPki, mutual: bool, len: usize) -> (Arc<Segment>, String) {
        let seg = Arc::new(Segment::create(len, false).unwrap());
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let acceptor = mmc_tls::acceptor(&pki.server_config(mutual)).unwrap();
        tokio::spawn(serve(l, seg.clone(), Arc::new(AtomicU32::new(SEG)), acceptor, None, Duration::from_secs(30), 64));
        (seg, addr)
    }

    fn client(tls: Option<&mmc_config::TlsConfig>) -> TransferClient {
        TransferClient::new(
            4,
            Duration::from_secs(20),
            Congestion::from_config("system"),
            tokio::runtime::Handle::current(),
        )
        .with_tls(tls.map(|t| ClientTls::new(t).unwrap()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transfers_over_tls_round_trip() {
        let pki = TestPki::new("xfer");
        let (seg, addr) = tls_server(&pki, true, 16 << 20).await;
        // The server presents the server certificate; the client presents
        // the client certificate (mutual).
        let c = client(Some(&pki.client_config(true)));
        for (off, len) in [(0usize, 100usize), (4096, 1 << 20), (2 << 20, 5 << 20)] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7 + off) as u8).collect();
            // SAFETY: `v` outlives the awaited write and is only read.
            unsafe { c.write(&addr, SEG, off as u64, &[Piece::of(&v)], len as u64) }
                .await
                .unwrap();
            // SAFETY: the range lies inside the segment and nothing else
            // writes it now.
            let inside = unsafe { std::slice::from_raw_parts(seg.base().add(off), len) };
            assert_eq!(inside, v.as_slice());
            let mut back = vec![0u8; len];
            // SAFETY: `back` outlives the awaited read and is not touched meanwhile.
            unsafe { c.read(&addr, SEG, off as u64, &[Piece::of_mut(&mut back)], len as u64) }
                .await
                .unwrap();
            assert_eq!(back, v);
        }
        // A batch over lanes.
        let vals: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8 + 1; 600_000]).collect();
        let pieces: Vec<[Piece; 1]> = vals.iter().map(|v| [Piece::of(v)]).collect();
        let jobs: Vec<Job<'_>> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| Job {
                offset: (i * 600_000) as u64,
                pieces: p,
                len: 600_000,
            })
            .collect();
        // SAFETY: `vals` outlives the awaited batch and is only read.
        let r = unsafe { c.write_many(&addr, SEG, &jobs) }.await;
        assert!(r.iter().all(|r| r.is_ok()));
        let mut outs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; 600_000]).collect();
        let opieces: Vec<[Piece; 1]> = outs.iter_mut().map(|v| [Piece::of_mut(v)]).collect();
        let ojobs: Vec<Job<'_>> = opieces
            .iter()
            .enumerate()
            .map(|(i, p)| Job {
                offset: (i * 600_000) as u64,
                pieces: p,
                len: 600_000,
            })
            .collect();
        // SAFETY: `outs` outlives the awaited batch and is not touched meanwhile.
        let r = unsafe { c.read_many(&addr, SEG, &ojobs) }.await;
        assert!(r.iter().all(|r| r.is_ok()));
        assert_eq!(outs, vals);
        // A refused range fails that request only.
        let v = vec![0u8; 10];
        // SAFETY: `v` outlives each awaited write and is only read.
        assert!(unsafe { c.write(&addr, SEG, (16 << 20) - 5, &[Piece::of(&v)], 10) }
            .await
            .is_err());
        // SAFETY: as above.
        assert!(unsafe { c.write(&addr, SEG, 0, &[Piece::of(&v)], 10) }.await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_untrusted_and_certless_clients_are_refused() {
        let pki = TestPki::new("xfer-refuse");
        let (_seg, addr) = tls_server(&pki, true, 1 << 20).await;
        let v = vec![9u8; 4096];
        let plain = client(None);
        // SAFETY: `v` outlives each awaited write and is only read.
        let e = unsafe { plain.write(&addr, SEG, 0, &[Piece::of(&v)], 4096) }.await;
        assert!(e.is_err(), "plain TCP client: {e:?}");
        let mut wrong = pki.client_config(true);
        wrong.ca = pki.other_ca.display().to_string();
        let untrusting = client(Some(&wrong));
        // SAFETY: as above.
        let e = unsafe { untrusting.write(&addr, SEG, 0, &[Piece::of(&v)], 4096) }.await;
        assert!(e.unwrap_err().to_string().contains("TLS handshake"));
        let certless = client(Some(&pki.client_config(false)));
        // SAFETY: as above.
        let e = unsafe { certless.write(&addr, SEG, 0, &[Piece::of(&v)], 4096) }.await;
        assert!(e.is_err(), "no client certificate: {e:?}");
    }
}
