//! Transfer server: serves reads and writes of this LocalService's segment
//! to remote LocalServices.
//!
//! Bytes move between the socket and the segment directly: a write is read
//! from the socket into the segment, a read is written from the segment to
//! the socket. Every header is validated (magic, version, op, segment id,
//! range) before memory is touched; a bad one is answered INVALID_PARAM and
//! that connection is closed, other connections are unaffected.
//! A connection first runs the cluster-token handshake (transfer domain,
//! bounded by [`AUTH_TIMEOUT`]); no header is read before it succeeds.

use crate::segment::Segment;
use mmc_wire::auth::{self, ClusterToken, Domain, AUTH_TIMEOUT};
use mmc_wire::error::code;
use mmc_wire::transfer::{encode_reply, Header, Op, HEADER_LEN};
use mmc_wire::ServiceId;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Accepts transfer connections forever.
pub async fn serve(
    listener: TcpListener,
    segment: Arc<Segment>,
    service_id: Arc<AtomicU32>,
    token: Option<ClusterToken>,
) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "transfer accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let seg = segment.clone();
        let id = service_id.clone();
        let token = token.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(sock, &seg, &id, token.as_ref()).await {
                tracing::warn!(%peer, error = %e, "closing transfer connection");
            }
        });
    }
}

/// Serves one transfer connection until the peer closes it or sends a bad header.
pub(super) async fn connection(
    mut sock: TcpStream,
    seg: &Segment,
    my_id: &AtomicU32,
    token: Option<&ClusterToken>,
) -> std::io::Result<()> {
    auth::server_handshake_within(
        &mut sock,
        token.map(ClusterToken::as_bytes),
        Domain::Transfer,
        AUTH_TIMEOUT,
    )
    .await
    .map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("authentication failed: {e}"),
        )
    })?;
    loop {
        let mut hb = [0u8; HEADER_LEN];
        match super::read_full(&sock, &mut hb).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let h = match Header::decode(&hb) {
            Ok(h) => h,
            Err(e) => return reject(&mut sock, format!("bad transfer header: {e}")).await,
        };
        let me: ServiceId = my_id.load(Ordering::Acquire);
        if h.segment != me {
            return reject(
                &mut sock,
                format!("request for segment {} reached segment {me}", h.segment),
            )
            .await;
        }
        let range = seg.range(h.offset, h.len).map(|p| p as usize);
        let addr = match range {
            Ok(p) if h.len > 0 => p,
            _ => {
                return reject(
                    &mut sock,
                    format!("range {}+{} outside the {}-byte segment", h.offset, h.len, seg.len()),
                )
                .await
            }
        };
        // SAFETY: the range was checked against the mapping above; the
        // MetaService's allocator and leases keep concurrent users apart.
        let mem = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, h.len as usize) };
        match h.op {
            Op::Read => {
                // The reply and the bytes in one vectored write.
                super::write_all_bufs(&mut sock, &[&encode_reply(code::OK), mem]).await?;
            }
            Op::Write => {
                super::read_full(&sock, mem).await?;
                sock.write_all(&encode_reply(code::OK)).await?;
            }
        }
    }
}

async fn reject(sock: &mut TcpStream, why: String) -> std::io::Result<()> {
    let _ = sock.write_all(&encode_reply(code::INVALID_PARAM)).await;
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
}
