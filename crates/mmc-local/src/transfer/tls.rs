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
//! over any async stream: the same header validation (magic, version, op,
//! segment id, range) before memory is touched, INVALID_PARAM and a closed
//! connection for a bad one.

use crate::segment::Segment;
use mmc_tls::{ClientTls, TlsAcceptor};
use mmc_wire::error::code;
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
    /// Connects to `addr` (see [`super::connect`]) and, with `tls`, runs
    /// the client handshake.
    pub(crate) async fn connect(addr: &str, cc: &super::Congestion, tls: Option<&ClientTls>) -> io::Result<Self> {
        let sock = super::connect(addr, cc).await?;
        match tls {
            None => Ok(Stream::Tcp(sock)),
            Some(t) => match t.connect(addr, Buffered::with_capacity(SOCKET_BUFFER, sock)).await {
                Ok(s) => Ok(Stream::Tls(Box::new(s))),
                Err(e) => Err(io::Error::new(e.kind(), format!("TLS handshake: {e}"))),
            },
        }
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

/// Accepts TLS transfer connections forever.
pub async fn serve(listener: TcpListener, segment: Arc<Segment>, service_id: Arc<AtomicU32>, acceptor: TlsAcceptor) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "transfer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let seg = segment.clone();
        let id = service_id.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let sock = Buffered::with_capacity(SOCKET_BUFFER, sock);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
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
            if let Err(e) = connection(tls, &seg, &id).await {
                tracing::warn!(%peer, error = %e, "closing transfer connection");
            }
        });
    }
}

/// Serves one transfer connection until the peer closes it or sends a bad
/// header.
pub(crate) async fn connection<S>(mut s: S, seg: &Segment, my_id: &AtomicU32) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let mut hb = [0u8; HEADER_LEN];
        match s.read_exact(&mut hb).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
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
        let range = seg.range(h.offset, h.len).map(|p| p as usize);
        let addr = match range {
            Ok(p) if h.len > 0 => p,
            _ => {
                let why = format!("range {}+{} outside the {}-byte segment", h.offset, h.len, seg.len());
                return reject(&mut s, why).await;
            }
        };
        // SAFETY: the range was checked against the mapping above; the
        // MetaService's allocator and leases keep concurrent users apart.
        let mem = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, h.len as usize) };
        match h.op {
            Op::Read => super::write_all_bufs(&mut s, &[&encode_reply(code::OK), mem]).await?,
            Op::Write => {
                s.read_exact(mem).await?;
                s.write_all(&encode_reply(code::OK)).await?;
            }
        }
        s.flush().await?;
    }
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
        tokio::spawn(serve(l, seg.clone(), Arc::new(AtomicU32::new(SEG)), acceptor));
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
            c.write(&addr, SEG, off as u64, &[Piece::of(&v)], len as u64)
                .await
                .unwrap();
            // SAFETY: the range lies inside the segment and nothing else
            // writes it now.
            let inside = unsafe { std::slice::from_raw_parts(seg.base().add(off), len) };
            assert_eq!(inside, v.as_slice());
            let mut back = vec![0u8; len];
            c.read(&addr, SEG, off as u64, &[Piece::of_mut(&mut back)], len as u64)
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
        assert!(c.write_many(&addr, SEG, &jobs).await.iter().all(|r| r.is_ok()));
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
        assert!(c.read_many(&addr, SEG, &ojobs).await.iter().all(|r| r.is_ok()));
        assert_eq!(outs, vals);
        // A refused range fails that request only.
        let v = vec![0u8; 10];
        assert!(c.write(&addr, SEG, (16 << 20) - 5, &[Piece::of(&v)], 10).await.is_err());
        assert!(c.write(&addr, SEG, 0, &[Piece::of(&v)], 10).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_untrusted_and_certless_clients_are_refused() {
        let pki = TestPki::new("xfer-refuse");
        let (_seg, addr) = tls_server(&pki, true, 1 << 20).await;
        let v = vec![9u8; 4096];
        let e = client(None).write(&addr, SEG, 0, &[Piece::of(&v)], 4096).await;
        assert!(e.is_err(), "plain TCP client: {e:?}");
        let mut wrong = pki.client_config(true);
        wrong.ca = pki.other_ca.display().to_string();
        let e = client(Some(&wrong)).write(&addr, SEG, 0, &[Piece::of(&v)], 4096).await;
        assert!(e.unwrap_err().to_string().contains("TLS handshake"));
        let e = client(Some(&pki.client_config(false)))
            .write(&addr, SEG, 0, &[Piece::of(&v)], 4096)
            .await;
        assert!(e.is_err(), "no client certificate: {e:?}");
    }
}
