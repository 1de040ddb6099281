//! Transfer client: reads and writes ranges of remote segments over pooled
//! TCP connections.
//!
//! Bytes go straight from the caller's buffers to the socket and from the
//! socket into the caller's buffers. Transfers of at least [`SPLIT_MIN`]
//! bytes are split into chunks sent concurrently over several connections.

use crate::buffer::{sub_pieces, Piece};
use mmc_wire::error::code;
use mmc_wire::transfer::{decode_reply, Header, Op, HEADER_LEN, REPLY_LEN};
use mmc_wire::{Error, Result, ServiceId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::runtime::Handle;

/// Transfers at least this large are split across connections.
pub const SPLIT_MIN: u64 = 2 << 20;
/// Smallest chunk of a split transfer.
const CHUNK_MIN: u64 = 1 << 20;
/// Idle connections kept per peer.
const MAX_IDLE: usize = 16;

pub struct TransferClient {
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
    connections: usize,
    timeout: Duration,
    congestion: super::Congestion,
    handle: Handle,
}

impl TransferClient {
    pub fn new(connections: usize, timeout: Duration, congestion: super::Congestion, handle: Handle) -> Self {
        TransferClient {
            idle: Mutex::new(HashMap::new()),
            connections: connections.max(1),
            timeout,
            congestion,
            handle,
        }
    }

    async fn take(&self, addr: &str) -> Result<TcpStream> {
        if let Some(s) = self.idle.lock().get_mut(addr).and_then(|v| v.pop()) {
            return Ok(s);
        }
        let a = addr.to_owned();
        let cc = self.congestion.clone();
        // Connect on our runtime so the socket is driven whatever the caller's context.
        let r = self
            .handle
            .spawn(async move { tokio::time::timeout(Duration::from_secs(3), super::connect(&a, &cc)).await })
            .await
            .map_err(|e| Error::Other(format!("connect task failed: {e}")))?;
        match r {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(Error::NotConnectedLocal(format!("connect to {addr}: {e}"))),
            Err(_) => Err(Error::NotConnectedLocal(format!("connect to {addr} timed out"))),
        }
    }

    fn give_back(&self, addr: &str, s: TcpStream) {
        let mut idle = self.idle.lock();
        let v = idle.entry(addr.to_owned()).or_default();
        if v.len() < MAX_IDLE {
            v.push(s);
        }
    }

    /// Drops pooled connections to `addr` (after the peer left).
    pub fn forget(&self, addr: &str) {
        self.idle.lock().remove(addr);
    }

    /// Writes `pieces` (one value) to `[offset, offset + total)` of a remote segment.
    pub async fn write(&self, addr: &str, segment: ServiceId, offset: u64, pieces: &[Piece], total: u64) -> Result<()> {
        self.split(Op::Write, addr, segment, offset, pieces, total).await
    }

    /// Reads `[offset, offset + total)` of a remote segment into `pieces`.
    pub async fn read(&self, addr: &str, segment: ServiceId, offset: u64, pieces: &[Piece], total: u64) -> Result<()> {
        self.split(Op::Read, addr, segment, offset, pieces, total).await
    }

    async fn split(
        &self,
        op: Op,
        addr: &str,
        segment: ServiceId,
        offset: u64,
        pieces: &[Piece],
        total: u64,
    ) -> Result<()> {
        let n = if total >= SPLIT_MIN {
            (total / CHUNK_MIN).min(self.connections as u64).max(1)
        } else {
            1
        };
        if n == 1 {
            return self.one(op, addr, segment, offset, pieces, total).await;
        }
        let chunk = total.div_ceil(n).div_ceil(4096) * 4096;
        let mut futs = Vec::new();
        let mut start = 0;
        while start < total {
            let len = chunk.min(total - start);
            let sub = sub_pieces(pieces, start, len);
            futs.push(async move { self.one(op, addr, segment, offset + start, &sub, len).await });
            start += len;
        }
        for r in futures::future::join_all(futs).await {
            r?;
        }
        Ok(())
    }

    async fn one(&self, op: Op, addr: &str, segment: ServiceId, offset: u64, pieces: &[Piece], len: u64) -> Result<()> {
        let mut s = self.take(addr).await?;
        let fut = async {
            let h = Header {
                op,
                segment,
                offset,
                len,
            };
            let head = h.encode();
            let mut reply = [0u8; REPLY_LEN];
            match op {
                Op::Write => {
                    // The header and the bytes in vectored writes.
                    let mut bufs: Vec<&[u8]> = Vec::with_capacity(pieces.len() + 1);
                    bufs.push(&head);
                    // SAFETY: the caller guarantees the pieces are readable for the call.
                    bufs.extend(
                        pieces
                            .iter()
                            .map(|p| unsafe { std::slice::from_raw_parts(p.ptr() as *const u8, p.len) }),
                    );
                    super::write_all_bufs(&mut s, &bufs).await?;
                    super::read_full(&s, &mut reply).await?;
                }
                Op::Read => {
                    s.write_all(&head).await?;
                    super::read_full(&s, &mut reply).await?;
                    if decode_reply(&reply) == code::OK {
                        for p in pieces {
                            // SAFETY: the caller guarantees the pieces are writable for the call.
                            let dst = unsafe { std::slice::from_raw_parts_mut(p.ptr(), p.len) };
                            super::read_full(&s, dst).await?;
                        }
                    }
                }
            }
            Ok::<i32, std::io::Error>(decode_reply(&reply))
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(code::OK)) => {
                self.give_back(addr, s);
                Ok(())
            }
            Ok(Ok(c)) => Err(Error::NotConnectedLocal(format!(
                "transfer server {addr} refused the request (code {c})"
            ))),
            Ok(Err(e)) => Err(Error::NotConnectedLocal(format!("transfer with {addr}: {e}"))),
            Err(_) => Err(Error::Timeout(format!(
                "transfer with {addr} took longer than {:?}",
                self.timeout
            ))),
        }
    }
}

const _: () = assert!(HEADER_LEN == 32);
