//! Transfer client: reads and writes ranges of remote segments over pooled
//! TCP connections.
//!
//! Bytes go straight from the caller's buffers to the socket and from the
//! socket into the caller's buffers. One object of at least [`SPLIT_MIN`]
//! bytes is split into chunks sent concurrently over several connections,
//! as many as `local.transfer_connections` less the transfers to that peer
//! already in flight. The objects of a batch bound for one peer go over
//! lanes: up to that many connections (one per [`LANE_MIN`] bytes), each
//! carrying its share of requests back to back and reading the replies
//! after, so a batch streams instead of paying a round trip per object. At
//! most [`MAX_PER_PEER`] transfers run to one peer at a time (more wait for
//! a connection), so a large batch reuses its pooled connections rather than
//! opening more. With [`with_tls`](TransferClient::with_tls) every
//! connection runs a TLS handshake first ([`super::tls`]).

use super::tls::Stream;
use crate::buffer::{sub_pieces, Piece};
use mmc_wire::error::code;
use mmc_wire::transfer::{decode_reply, Header, Op, HEADER_LEN, REPLY_LEN};
use mmc_wire::{Error, ErrorKind, Result, ServiceId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Transfers at least this large are split across connections.
pub const SPLIT_MIN: u64 = 2 << 20;
/// Smallest chunk of a split transfer.
const CHUNK_MIN: u64 = 1 << 20;
/// Transfers in flight to one peer (and connections pooled for it), at
/// least; `local.transfer_connections` when that is larger.
pub const MAX_PER_PEER: usize = 16;

/// A batch spreads over another lane (connection) per this many bytes.
pub const LANE_MIN: u64 = 2 << 20;

/// One range of a remote segment and the caller's buffers for it. The
/// pieces are raw addresses: the functions that take a `Job` are `unsafe`.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    pub offset: u64,
    pub pieces: &'a [Piece],
    pub len: u64,
}

/// Connections to one peer.
struct Peer {
    idle: Vec<Stream>,
    /// Transfers in flight (connections taken from or beside `idle`).
    busy: usize,
    slots: Arc<Semaphore>,
}

pub struct TransferClient {
    peers: Mutex<HashMap<String, Peer>>,
    connections: usize,
    per_peer: usize,
    timeout: Duration,
    congestion: super::Congestion,
    /// The cluster token proved on every new connection.
    token: Option<mmc_wire::auth::ClusterToken>,
    tls: Option<mmc_tls::ClientTls>,
    handle: Handle,
}

/// A connection taken for one transfer; counts as busy until dropped.
struct Taken<'a> {
    client: &'a TransferClient,
    addr: &'a str,
    stream: Option<Stream>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut peers = self.client.peers.lock();
        if let Some(p) = peers.get_mut(self.addr) {
            p.busy = p.busy.saturating_sub(1);
            if let Some(s) = self.stream.take() {
                if p.idle.len() < self.client.per_peer {
                    p.idle.push(s);
                }
            }
        }
    }
}

impl TransferClient {
    pub fn new(connections: usize, timeout: Duration, congestion: super::Congestion, handle: Handle) -> Self {
        let connections = connections.max(1);
        TransferClient {
            peers: Mutex::new(HashMap::new()),
            connections,
            per_peer: connections.max(MAX_PER_PEER),
            timeout,
            congestion,
            token: None,
            tls: None,
            handle,
        }
    }

    /// The cluster token to prove on every new connection.
    pub fn with_token(mut self, token: Option<mmc_wire::auth::ClusterToken>) -> Self {
        self.token = token;
        self
    }

    /// Every connection this client opens runs a TLS handshake with these
    /// settings (`local.security.tls.transfer`).
    pub fn with_tls(mut self, tls: Option<mmc_tls::ClientTls>) -> Self {
        self.tls = tls;
        self
    }

    fn peer<'m>(&self, peers: &'m mut HashMap<String, Peer>, addr: &str) -> &'m mut Peer {
        peers.entry(addr.to_owned()).or_insert_with(|| Peer {
            idle: Vec::new(),
            busy: 0,
            slots: Arc::new(Semaphore::new(self.per_peer)),
        })
    }

    /// Transfers to `addr` in flight now.
    fn busy(&self, addr: &str) -> usize {
        self.peers.lock().get(addr).map_or(0, |p| p.busy)
    }

    /// A connection to `addr` for one transfer: a pooled one, else a new
    /// one; waits while [`MAX_PER_PEER`] transfers to it are in flight.
    async fn take<'a>(&'a self, addr: &'a str) -> Result<Taken<'a>> {
        let slot = self.slots(addr, 1).await?;
        self.take_with(addr, slot).await
    }

    /// `n` of the transfer slots of `addr`, acquired at once (so callers
    /// that need several never hold some while waiting for the rest).
    async fn slots(&self, addr: &str, n: usize) -> Result<OwnedSemaphorePermit> {
        let slots = self.peer(&mut self.peers.lock(), addr).slots.clone();
        let n = u32::try_from(n).map_err(|_| Error::other(format!("{n} transfer slots")))?;
        slots
            .acquire_many_owned(n)
            .await
            .map_err(|_| Error::other("transfer slots closed"))
    }

    /// A connection to `addr` for one transfer holding `slot`: a pooled one
    /// (taken from the pool before the first await), else a new one.
    async fn take_with<'a>(&'a self, addr: &'a str, slot: OwnedSemaphorePermit) -> Result<Taken<'a>> {
        let pooled = {
            let mut peers = self.peers.lock();
            let p = self.peer(&mut peers, addr);
            p.busy += 1;
            p.idle.pop()
        };
        let mut taken = Taken {
            client: self,
            addr,
            stream: pooled,
            _slot: slot,
        };
        if taken.stream.is_some() {
            return Ok(taken);
        }
        let a = addr.to_owned();
        let cc = self.congestion.clone();
        let token = self.token.clone();
        let tls = self.tls.clone();
        // Connect (TLS, then the cluster-token handshake, once per pooled
        // connection) on our runtime so the socket is driven whatever the
        // caller's context.
        let r = self
            .handle
            .spawn(async move {
                let token = token.as_ref().map(mmc_wire::auth::ClusterToken::as_bytes);
                tokio::time::timeout(Duration::from_secs(3), Stream::connect(&a, &cc, tls.as_ref(), token)).await
            })
            .await
            .map_err(|e| Error::caused_by(ErrorKind::Other, "connect task failed", e))?;
        match r {
            Ok(Ok(s)) => {
                taken.stream = Some(s);
                Ok(taken)
            }
            Ok(Err(e)) => Err(Error::caused_by(ErrorKind::NotConnectedLocal, format!("connect to {addr}"), e)),
            Err(_) => Err(Error::new(ErrorKind::NotConnectedLocal, format!("connect to {addr} timed out"))),
        }
    }

    /// Drops pooled connections to `addr` (after the peer left).
    pub fn forget(&self, addr: &str) {
        if let Some(p) = self.peers.lock().get_mut(addr) {
            p.idle.clear();
        }
    }

    /// Writes `pieces` (one value) to `[offset, offset + total)` of a remote segment.
    ///
    /// # Safety
    /// Every piece must be valid for reads of its length, and its memory
    /// not written by anyone, until the returned future completes or is
    /// dropped; the pieces' lengths must sum to `total`.
    pub async unsafe fn write(
        &self,
        addr: &str,
        segment: ServiceId,
        offset: u64,
        pieces: &[Piece],
        total: u64,
    ) -> Result<()> {
        // SAFETY: the caller's contract is the one `split` needs, for reads.
        unsafe { self.split(Op::Write, addr, segment, offset, pieces, total).await }
    }

    /// Reads `[offset, offset + total)` of a remote segment into `pieces`.
    ///
    /// # Safety
    /// Every piece must be valid for writes of its length, and its memory
    /// not accessed by anyone else, until the returned future completes or
    /// is dropped; the pieces' lengths must sum to `total`.
    pub async unsafe fn read(
        &self,
        addr: &str,
        segment: ServiceId,
        offset: u64,
        pieces: &[Piece],
        total: u64,
    ) -> Result<()> {
        // SAFETY: the caller's contract is the one `split` needs, for writes.
        unsafe { self.split(Op::Read, addr, segment, offset, pieces, total).await }
    }

    /// # Safety
    /// As [`write`](Self::write) for `Op::Write`, [`read`](Self::read) for `Op::Read`.
    async unsafe fn split(
        &self,
        op: Op,
        addr: &str,
        segment: ServiceId,
        offset: u64,
        pieces: &[Piece],
        total: u64,
    ) -> Result<()> {
        let n = if total >= SPLIT_MIN {
            let free = self.connections.saturating_sub(self.busy(addr));
            (total / CHUNK_MIN).min(free as u64).max(1)
        } else {
            1
        };
        if n == 1 {
            // SAFETY: the caller's contract.
            return unsafe { self.one(op, addr, segment, offset, pieces, total).await };
        }
        let chunk = total.div_ceil(n).div_ceil(4096) * 4096;
        let mut futs = Vec::new();
        let mut start = 0;
        while start < total {
            let len = chunk.min(total - start);
            let sub = sub_pieces(pieces, start, len);
            // SAFETY: `sub` covers part of the caller's pieces, under the
            // same contract.
            futs.push(async move { unsafe { self.one(op, addr, segment, offset + start, &sub, len).await } });
            start += len;
        }
        for r in futures::future::join_all(futs).await {
            r?;
        }
        Ok(())
    }

    /// # Safety
    /// As [`split`](Self::split).
    async unsafe fn one(
        &self,
        op: Op,
        addr: &str,
        segment: ServiceId,
        offset: u64,
        pieces: &[Piece],
        len: u64,
    ) -> Result<()> {
        // SAFETY: the caller's contract, for the one job.
        unsafe { self.lane(op, addr, segment, &[Job { offset, pieces, len }]).await }
    }

    /// Writes several ranges of one peer's segment (a batch put's objects
    /// on that peer): one range goes as [`write`](Self::write) does; several
    /// are spread over lanes, connections that each carry their share back
    /// to back and read the replies after, so a batch streams instead of
    /// waiting a round trip per object. Per-range results, in order.
    ///
    /// # Safety
    /// Every job's pieces as for [`write`](Self::write) (their lengths
    /// summing to the job's `len`), until the returned future completes or
    /// is dropped.
    pub async unsafe fn write_many(&self, addr: &str, segment: ServiceId, jobs: &[Job<'_>]) -> Vec<Result<()>> {
        // SAFETY: the caller's contract.
        unsafe { self.many(Op::Write, addr, segment, jobs).await }
    }

    /// Reads several ranges of one peer's segment, as [`write_many`](Self::write_many).
    ///
    /// # Safety
    /// Every job's pieces as for [`read`](Self::read) (their lengths
    /// summing to the job's `len`), until the returned future completes or
    /// is dropped; no two jobs' pieces overlap.
    pub async unsafe fn read_many(&self, addr: &str, segment: ServiceId, jobs: &[Job<'_>]) -> Vec<Result<()>> {
        // SAFETY: the caller's contract.
        unsafe { self.many(Op::Read, addr, segment, jobs).await }
    }

    /// # Safety
    /// As [`write_many`](Self::write_many) or [`read_many`](Self::read_many) for `op`.
    async unsafe fn many(&self, op: Op, addr: &str, segment: ServiceId, jobs: &[Job<'_>]) -> Vec<Result<()>> {
        match jobs {
            [] => return Vec::new(),
            // SAFETY: the caller's contract, for the one job.
            [j] => return vec![unsafe { self.split(op, addr, segment, j.offset, j.pieces, j.len).await }],
            _ => {}
        }
        let total: u64 = jobs.iter().map(|j| j.len).sum();
        let free = self.connections.saturating_sub(self.busy(addr)).max(1);
        let lanes = ((total / LANE_MIN) as usize).clamp(1, free.min(jobs.len()));
        // Each range to the lane with the fewest bytes so far.
        let mut lane_jobs: Vec<Vec<Job<'_>>> = vec![Vec::new(); lanes];
        let mut lane_of = Vec::with_capacity(jobs.len());
        let mut bytes = vec![0u64; lanes];
        for j in jobs {
            let l = (0..lanes).min_by_key(|&l| bytes[l]).unwrap_or(0);
            bytes[l] += j.len;
            lane_jobs[l].push(*j);
            lane_of.push(l);
        }
        // Every lane's connection is taken before any lane starts: a lane
        // whose I/O never waits can run to its end inside its first poll,
        // and a lane taking its connection only then would get that one
        // back from the pool and run after it instead of beside it.
        let mut slots = match self.slots(addr, lanes).await {
            Ok(s) => s,
            Err(e) => return vec![Err(e); jobs.len()],
        };
        let mut lane_slots = Vec::with_capacity(lanes);
        for _ in 1..lanes {
            match slots.split(1) {
                Some(s) => lane_slots.push(s),
                None => return vec![Err(Error::other("transfer slots split")); jobs.len()],
            }
        }
        lane_slots.push(slots);
        let taken = futures::future::join_all(lane_slots.into_iter().map(|slot| self.take_with(addr, slot))).await;
        let done = futures::future::join_all(
            taken
                .into_iter()
                .zip(&lane_jobs)
                // SAFETY: each lane's jobs are some of the caller's, under its contract.
                .map(|(t, js)| async move { unsafe { self.lane_on(t?, op, addr, segment, js).await } }),
        )
        .await;
        lane_of.into_iter().map(|l| done[l].clone()).collect()
    }

    /// Runs `jobs` back to back on one connection: every request (with its
    /// bytes, for writes) goes first, then the replies (with their bytes,
    /// for reads) are read in order. The server answers requests in order.
    ///
    /// # Safety
    /// As [`many`](Self::many).
    async unsafe fn lane(&self, op: Op, addr: &str, segment: ServiceId, jobs: &[Job<'_>]) -> Result<()> {
        let taken = self.take(addr).await?;
        // SAFETY: the caller's contract.
        unsafe { self.lane_on(taken, op, addr, segment, jobs).await }
    }

    /// [`lane`](Self::lane) on a connection already taken.
    ///
    /// # Safety
    /// As [`many`](Self::many).
    async unsafe fn lane_on(
        &self,
        mut taken: Taken<'_>,
        op: Op,
        addr: &str,
        segment: ServiceId,
        jobs: &[Job<'_>],
    ) -> Result<()> {
        let Some(s) = taken.stream.as_mut() else {
            return Err(Error::other(format!("no connection to {addr} taken")));
        };
        let heads: Vec<[u8; HEADER_LEN]> = jobs
            .iter()
            .map(|j| {
                Header {
                    op,
                    segment,
                    offset: j.offset,
                    len: j.len,
                }
                .encode()
            })
            .collect();
        let fut = async {
            let mut reply = [0u8; REPLY_LEN];
            match op {
                Op::Write => {
                    // Headers and bytes in vectored writes.
                    let mut bufs: Vec<&[u8]> = Vec::with_capacity(jobs.iter().map(|j| j.pieces.len() + 1).sum());
                    for (h, j) in heads.iter().zip(jobs) {
                        bufs.push(h);
                        bufs.extend(j.pieces.iter().map(|p| {
                            // SAFETY: the caller guarantees each piece is
                            // valid for reads and unwritten until we finish.
                            unsafe { std::slice::from_raw_parts(p.ptr() as *const u8, p.len) }
                        }));
                    }
                    s.write_all_bufs(&bufs).await?;
                    for _ in jobs {
                        s.read_full(&mut reply).await?;
                        if decode_reply(&reply) != code::OK {
                            break;
                        }
                    }
                }
                Op::Read => {
                    let bufs: Vec<&[u8]> = heads.iter().map(|h| h.as_slice()).collect();
                    s.write_all_bufs(&bufs).await?;
                    for j in jobs {
                        s.read_full(&mut reply).await?;
                        if decode_reply(&reply) != code::OK {
                            break;
                        }
                        for p in j.pieces {
                            // SAFETY: the caller guarantees each piece is valid
                            // for writes and not otherwise accessed until we finish.
                            let dst = unsafe { std::slice::from_raw_parts_mut(p.ptr(), p.len) };
                            s.read_full(dst).await?;
                        }
                    }
                }
            }
            Ok::<i32, std::io::Error>(decode_reply(&reply))
        };
        // A lane is one transfer: a peer that stops answering fails the
        // whole batch's share within the timeout, as a single object would.
        let limit = self.timeout;
        let r = tokio::time::timeout(limit, fut).await;
        if !matches!(r, Ok(Ok(code::OK))) {
            // Not back to the pool: its state is unknown.
            taken.stream = None;
        }
        match r {
            Ok(Ok(code::OK)) => Ok(()),
            Ok(Ok(c)) => Err(Error::new(ErrorKind::NotConnectedLocal, format!(
                "transfer server {addr} refused the request (code {c})"
            ))),
            Ok(Err(e)) => Err(Error::caused_by(ErrorKind::NotConnectedLocal, format!("transfer with {addr}"), e)),
            Err(_) => Err(Error::new(ErrorKind::Timeout, format!(
                "transfer of {} object(s) with {addr} took longer than {limit:?}",
                jobs.len()
            ))),
        }
    }
}

const _: () = assert!(HEADER_LEN == 32);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Segment;
    use mmc_wire::auth::ClusterToken;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    const SEG: u32 = 7;

    /// A transfer server on loopback that counts the connections it accepts.
    async fn server(len: usize) -> (Arc<Segment>, String, Arc<AtomicUsize>) {
        server_with(len, None).await
    }

    /// [`server`] requiring `token`.
    async fn server_with(len: usize, token: Option<ClusterToken>) -> (Arc<Segment>, String, Arc<AtomicUsize>) {
        let seg = Arc::new(Segment::create(len, false).unwrap());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (s, n) = (seg.clone(), accepted.clone());
        tokio::spawn(async move {
            let id = Arc::new(AtomicU32::new(SEG));
            while let Ok((sock, _)) = l.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let (s, id, token) = (s.clone(), id.clone(), token.clone());
                tokio::spawn(async move { super::super::server::connection(sock, &s, &id, token.as_ref(), Duration::from_secs(30)).await });
            }
        });
        (seg, addr, accepted)
    }

    /// A client of 4 connections per peer, on the test's runtime.
    fn client() -> TransferClient {
        TransferClient::new(
            4,
            Duration::from_secs(20),
            super::super::Congestion::from_config("system"),
            Handle::current(),
        )
    }

    /// One range of `len` bytes per piece, back to back from offset 0.
    fn jobs_of(pieces: &[[Piece; 1]], len: usize) -> Vec<Job<'_>> {
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| Job {
                offset: (i * len) as u64,
                pieces: p,
                len: len as u64,
            })
            .collect()
    }

    fn pooled(c: &TransferClient, addr: &str) -> (usize, usize) {
        let peers = c.peers.lock();
        let p = &peers[addr];
        (p.idle.len(), p.busy)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_large_transfers_share_the_connection_budget() {
        const MIB: usize = 1 << 20;
        let (seg, addr, accepted) = server(64 * MIB).await;
        let c = client();
        // Eight 4 MiB writes at once (a batch put): alone each would be
        // split over 4 connections (32 in all); the first takes the 4, the
        // others go whole.
        let values: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8 + 1; 4 * MIB]).collect();
        let pieces: Vec<[Piece; 1]> = values.iter().map(|v| [Piece::of(v)]).collect();
        let writes = pieces
            .iter()
            .enumerate()
            // SAFETY: each piece is a live `values` entry of 4 MiB, unmodified until the writes finish.
            .map(|(i, p)| unsafe { c.write(&addr, SEG, (i * 4 * MIB) as u64, p, (4 * MIB) as u64) });
        for r in futures::future::join_all(writes).await {
            r.unwrap();
        }
        let (idle, busy) = pooled(&c, &addr);
        let opened = accepted.load(Ordering::SeqCst);
        assert_eq!(busy, 0);
        assert!(
            (4..=4 + 7).contains(&opened),
            "{opened} connections for eight 4 MiB writes"
        );
        assert_eq!(idle, opened, "every connection back in the pool");
        for (i, v) in values.iter().enumerate() {
            assert!(
                seg_bytes(&seg, i * 4 * MIB, v.len()) == v.as_slice(),
                "value {i} landed wrong"
            );
        }
        // Reads back in one go, as a batch get: the same budget, the same bytes.
        let mut back: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; 4 * MIB]).collect();
        let dst: Vec<[Piece; 1]> = back.iter_mut().map(|b| [Piece::of_mut(b)]).collect();
        let reads = dst
            .iter()
            .enumerate()
            // SAFETY: each piece is a distinct `back` entry of 4 MiB, untouched until the reads finish.
            .map(|(i, p)| unsafe { c.read(&addr, SEG, (i * 4 * MIB) as u64, p, (4 * MIB) as u64) });
        for r in futures::future::join_all(reads).await {
            r.unwrap();
        }
        assert!(back == values);
        // Many more small transfers than MAX_PER_PEER: they wait for a
        // connection instead of opening one each.
        let one = vec![9u8; 64 << 10];
        let p = [Piece::of(&one)];
        // SAFETY: `one` lives, unmodified, until the writes finish.
        let writes =
            (0..3 * MAX_PER_PEER).map(|i| unsafe { c.write(&addr, SEG, (i * (64 << 10)) as u64, &p, 64 << 10) });
        for r in futures::future::join_all(writes).await {
            r.unwrap();
        }
        let (idle, busy) = pooled(&c, &addr);
        let opened = accepted.load(Ordering::SeqCst);
        assert_eq!(busy, 0);
        assert!(opened <= MAX_PER_PEER, "{opened} connections in all");
        assert_eq!(idle, opened, "every connection back in the pool");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_streams_over_lanes_and_a_refused_range_fails_only_its_lane() {
        const V: usize = 512 << 10;
        let (seg, addr, accepted) = server(8 * V).await;
        let c = client();
        // Eight 512 KiB values (4 MiB, twice LANE_MIN): two lanes of four,
        // each request following the previous one on its connection.
        let values: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8 + 1; V]).collect();
        let pieces: Vec<[Piece; 1]> = values.iter().map(|v| [Piece::of(v)]).collect();
        let jobs = jobs_of(&pieces, V);
        // SAFETY: no jobs.
        assert!(unsafe { c.write_many(&addr, SEG, &[]) }.await.is_empty());
        // SAFETY: the jobs' pieces are the live, unmodified `values`.
        let r = unsafe { c.write_many(&addr, SEG, &jobs) }.await;
        assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "one connection per lane");
        let mut back: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; V]).collect();
        let dst: Vec<[Piece; 1]> = back.iter_mut().map(|b| [Piece::of_mut(b)]).collect();
        let read_jobs = jobs_of(&dst, V);
        // SAFETY: the jobs' pieces are the distinct, live `back` buffers,
        // untouched until the reads finish.
        let r = unsafe { c.read_many(&addr, SEG, &read_jobs) }.await;
        assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
        assert!(back == values);
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "the lanes' connections were reused");
        // The same batch with one range past the end of the segment: the
        // server refuses it and closes that connection; that lane's values
        // fail, the other lane's land, and nothing hangs.
        let mut bad = jobs.clone();
        bad[1].offset = (8 * V) as u64;
        seg_fill(&seg, 0);
        // SAFETY: as for the first batch.
        let r = unsafe { c.write_many(&addr, SEG, &bad) }.await;
        let failed: Vec<usize> = (0..8).filter(|&i| r[i].is_err()).collect();
        assert!(failed.contains(&1) && failed.len() < 8, "failed: {failed:?}");
        for i in (0..8).filter(|i| !failed.contains(i)) {
            assert!(seg_bytes(&seg, i * V, V) == values[i].as_slice(), "value {i}");
        }
        assert_eq!(pooled(&c, &addr).1, 0, "nothing left busy");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pooled_connections_authenticate_once_and_wrong_tokens_are_refused() {
        let token = ClusterToken::new("transfer-test-token-0123");
        let (seg, addr, accepted) = server_with(1 << 20, Some(token.clone())).await;
        let c = client().with_token(Some(token));
        let v = vec![7u8; 4096];
        for i in 0..5u64 {
            // SAFETY: `v` outlives the awaited write and is only read.
            unsafe { c.write(&addr, SEG, i * 4096, &[Piece::of(&v)], 4096) }
                .await
                .unwrap();
        }
        assert!(seg_bytes(&seg, 4 * 4096, 4096) == v.as_slice());
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one pooled connection, one handshake"
        );
        for wrong in [None, Some(ClusterToken::new("transfer-test-token-9999"))] {
            let c = client().with_token(wrong.clone());
            // SAFETY: `v` outlives the awaited write and is only read.
            let e = unsafe { c.write(&addr, SEG, 0, &[Piece::of(&v)], 4096) }
                .await
                .unwrap_err();
            assert!(e.kind() == ErrorKind::NotConnectedLocal, "{wrong:?}: {e:?}");
            assert!(e.to_string().contains("authentication failed"), "{e}");
        }
    }

    fn seg_bytes(seg: &Segment, off: usize, len: usize) -> &[u8] {
        // SAFETY: inside the mapping; no transfer is running.
        unsafe { std::slice::from_raw_parts(seg.range(off as u64, len as u64).unwrap(), len) }
    }

    fn seg_fill(seg: &Segment, b: u8) {
        // SAFETY: inside the mapping; no transfer is running.
        unsafe { std::ptr::write_bytes(seg.range(0, seg.len() as u64).unwrap(), b, seg.len()) }
    }
}
