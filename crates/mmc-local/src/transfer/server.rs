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
//!
//! The segment is shared: other connections, and other processes through
//! shared memory, may access the same bytes at the same time. No Rust
//! reference to segment memory is ever made here; bytes go between the
//! kernel and the mapping through raw pointers (`recv`, `sendmsg`).
//!
//! Hostile peers are bounded: at most `local.max_transfer_connections`
//! connections (more are closed at once), accept errors are retried with
//! backoff, and once a header has begun, the header and then the transfer it
//! announces (receiving a write's bytes, sending a read's) must each
//! complete within `local.transfer_timeout_ms`, or the connection is closed.
//! Idle time between transfers is not bounded (peers pool connections).

use crate::segment::Segment;
use mmc_wire::auth::{self, ClusterToken, Domain, AUTH_TIMEOUT};
use mmc_wire::error::code;
use mmc_wire::listen::ConnLimit;
use mmc_wire::transfer::{encode_reply, Header, Op, HEADER_LEN};
use mmc_wire::ServiceId;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Accepts transfer connections forever: at most `max_connections` at
/// once, each transfer bounded by `transfer_timeout`.
pub async fn serve(
    listener: TcpListener,
    segment: Arc<Segment>,
    service_id: Arc<AtomicU32>,
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
        let token = token.clone();
        tokio::spawn(async move {
            // Held until the connection ends: its slot under the limit.
            let _permit = permit;
            if let Err(e) = connection(sock, &seg, &id, token.as_ref(), transfer_timeout).await {
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
    transfer_timeout: Duration,
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
        if !read_header(&sock, &mut hb, transfer_timeout).await? {
            return Ok(());
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
        // The address as a number: no pointer is held across awaits.
        let checked = match (seg.range(h.offset, h.len), usize::try_from(h.len)) {
            (Ok(p), Ok(len)) if len > 0 => Some((p as usize, len)),
            _ => None,
        };
        let Some((addr, len)) = checked else {
            return reject(
                &mut sock,
                format!("range {}+{} outside the {}-byte segment", h.offset, h.len, seg.len()),
            )
            .await;
        };
        let limit = transfer_timeout;
        let what = match h.op {
            Op::Read => "read",
            Op::Write => "write",
        };
        let moved = match h.op {
            Op::Read => {
                // The reply and the bytes in one vectored send.
                let reply = encode_reply(code::OK);
                // SAFETY: `[addr, addr + len)` was checked against the
                // mapping, which `seg` keeps alive for this whole call; the
                // bytes are only read, through raw pointers, never as a
                // Rust reference (others may write them concurrently).
                let send = unsafe { super::send_with_raw(&sock, &reply, addr, len) };
                tokio::time::timeout(limit, send).await
            }
            Op::Write => {
                // SAFETY: as above, and the mapping is writable; bytes are
                // written by the kernel through a raw pointer, never through
                // a Rust reference. Which writer owns the range at a time is
                // the MetaService allocator's and leases' business.
                let recv = unsafe { super::read_full_raw(&sock, addr, len) };
                tokio::time::timeout(limit, recv).await
            }
        };
        match moved {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{what} of {len} bytes at offset {} not done within {limit:?} (local.transfer_timeout_ms)",
                        h.offset
                    ),
                ))
            }
        }
        if h.op == Op::Write {
            sock.write_all(&encode_reply(code::OK)).await?;
        }
    }
}

/// Reads one header into `hb`. Waiting for its first byte is not bounded
/// (an idle pooled connection); once it has begun, the rest must arrive
/// within `limit`. `Ok(false)`: the peer closed the connection between
/// transfers.
async fn read_header(sock: &TcpStream, hb: &mut [u8; HEADER_LEN], limit: Duration) -> io::Result<bool> {
    let mut off = 0;
    let mut lowat_one = false;
    while off == 0 {
        match sock.try_read(hb) {
            Ok(0) => return Ok(false),
            Ok(n) => off = n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !lowat_one {
                    // Wake at the first byte (a previous transfer may have
                    // left a larger mark).
                    super::set_rcvlowat(sock, 1)?;
                    lowat_one = true;
                }
                sock.readable().await?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if off < HEADER_LEN {
        match tokio::time::timeout(limit, super::read_full(sock, &mut hb[off..])).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("header incomplete ({off} of {HEADER_LEN} bytes) after {limit:?}"),
                ))
            }
        }
    }
    Ok(true)
}

async fn reject(sock: &mut TcpStream, why: String) -> std::io::Result<()> {
    let _ = sock.write_all(&encode_reply(code::INVALID_PARAM)).await;
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
}
