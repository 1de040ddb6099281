//! The get path: [`ObjectStore::get`] and its batch, into-buffer, layered
//! and raw forms: one `Lookup` RPC (granting read leases), each object read
//! from its nearest replica (memcpy, or one streamed read per remote peer),
//! the others on failure, the lease check, and the queueing of lease
//! releases.

use super::{check_count, check_placements, only, BatchResult, ObjectStore};
use crate::buffer::{scatter, total_len, Piece};
use crate::clock::{Clock, LeaseDeadline};
use crate::transfer::client::Job;
use mmc_wire::message::{Located, PeerInfo, Placement, Request, Response};
use mmc_wire::{validate_batch_len, validate_key, Error, ErrorKind, Result};
use std::collections::HashMap;

/// Largest value a get into a new buffer allocates: beyond it, use
/// `get_into` with buffers of the caller's own.
pub const MAX_GET_ALLOC: u64 = 1 << 40;

/// An empty buffer with room for a value of `size` bytes, as the MetaService
/// recorded it: refused beyond [`MAX_GET_ALLOC`], and allocated fallibly.
fn new_value_buffer(size: u64) -> Result<Vec<u8>> {
    if size > MAX_GET_ALLOC {
        return Err(Error::invalid(format!(
            "object of {size} bytes exceeds the {MAX_GET_ALLOC} bytes a get allocates (use get_into with your own buffers)"
        )));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(size as usize).map_err(|e| {
        Error::caused_by(
            ErrorKind::Other,
            format!("cannot allocate {size} bytes for the object"),
            e,
        )
    })?;
    Ok(v)
}

impl ObjectStore {
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        only(self.get_batch(&[key]).await?)
    }

    pub async fn get_batch(&self, keys: &[&str]) -> BatchResult<Vec<u8>> {
        let r = self.get_impl::<[Piece; 1]>(keys, None).await?;
        Ok(r.into_iter()
            .map(|r| r.and_then(|v| v.ok_or_else(|| Error::other("get produced no value buffer"))))
            .collect())
    }

    /// Copies the object into `buf`, whose length must equal the object size.
    pub async fn get_into(&self, key: &str, buf: &mut [u8]) -> Result<()> {
        let dest = [vec![Piece::of_mut(buf)]];
        // SAFETY: the borrow keeps `buf` alive and exclusive for the call.
        let r = unsafe { self.get_into_raw_batch(&[key], &dest).await? };
        only(r)
    }

    /// Scatters the object into `bufs` in order; their lengths must sum to
    /// the object size.
    pub async fn get_into_layers(&self, key: &str, bufs: &mut [&mut [u8]]) -> Result<()> {
        let dest = [bufs.iter_mut().map(|b| Piece::of_mut(b)).collect::<Vec<_>>()];
        // SAFETY: the borrows keep the buffers alive and exclusive for the call.
        let r = unsafe { self.get_into_raw_batch(&[key], &dest).await? };
        only(r)
    }

    pub async fn get_into_batch(&self, keys: &[&str], bufs: &mut [&mut [u8]]) -> BatchResult {
        let dest: Vec<[Piece; 1]> = bufs.iter_mut().map(|b| [Piece::of_mut(b)]).collect();
        // SAFETY: the borrows keep the buffers alive and exclusive for the call.
        unsafe { self.get_into_raw_batch(keys, &dest).await }
    }

    /// Gets into raw buffers (each a list of layers).
    ///
    /// # Safety
    /// Every piece must be valid for writes, and not otherwise accessed,
    /// until the call completes (or its future is dropped); no two pieces
    /// may overlap.
    pub async unsafe fn get_into_raw_batch<D: AsRef<[Piece]> + Sync>(&self, keys: &[&str], dests: &[D]) -> BatchResult {
        if keys.len() != dests.len() {
            validate_batch_len(keys.len())?;
            return Err(Error::invalid(format!(
                "{} keys but {} buffers",
                keys.len(),
                dests.len()
            )));
        }
        let r = self.get_impl(keys, Some(dests)).await?;
        Ok(r.into_iter().map(|r| r.map(|_| ())).collect())
    }

    async fn get_impl<D: AsRef<[Piece]> + Sync>(
        &self,
        keys: &[&str],
        dests: Option<&[D]>,
    ) -> BatchResult<Option<Vec<u8>>> {
        validate_batch_len(keys.len())?;
        let mut results: Vec<Result<Option<Vec<u8>>>> = Vec::with_capacity(keys.len());
        let mut ask = Vec::new();
        let mut which = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            // Null or empty buffers fail here; their total is checked
            // against the object's size once it is known (0: no buffers).
            let check = validate_key(k).and_then(|_| match dests {
                Some(d) => total_len(d[i].as_ref()),
                None => Ok(0),
            });
            match check {
                Ok(room) => {
                    ask.push((*k).to_owned());
                    which.push((i, room));
                    results.push(Ok(None));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if ask.is_empty() {
            return Ok(results);
        }
        let sent = self.clock().now();
        let reader = self.service_id();
        let (peers, lease_ms, items) = match self
            .inner
            .svc
            .meta
            .call_fast(&Request::Lookup { reader, keys: ask })
            .await?
        {
            Response::Lookup { peers, lease_ms, items } => {
                (peers, lease_ms, check_count("lookup", items, which.len())?)
            }
            other => return Err(crate::meta_client::unexpected(other)),
        };
        let deadline = LeaseDeadline::granted(sent, lease_ms);
        let mut found = Vec::with_capacity(items.len());
        for (item, (i, room)) in items.into_iter().zip(which.iter().copied()) {
            match item.and_then(|loc| check_placements(&peers, &loc.replicas, loc.size).map(|()| loc)) {
                Ok(loc) => found.push((i, room, loc)),
                Err(e) => results[i] = Err(e),
            }
        }
        // Into the caller's buffers, each object is first read from its
        // nearest replica: a memcpy when that is mapped here, else with the
        // others on that peer in one `read_many` (a batch streams from it).
        // A failed read, and every get into new buffers, goes through
        // `read_one`, which tries the replicas in turn.
        let mut first: Vec<Option<Result<()>>> = vec![None; found.len()];
        if let Some(dests) = dests {
            let mut remote: HashMap<u16, Vec<(usize, Job<'_>)>> = HashMap::new();
            for (n, (i, room, loc)) in found.iter().enumerate() {
                // A size mismatch is reported by `read_one`.
                let Some(p) = self.nearest(&peers, loc).filter(|_| *room == loc.size) else {
                    continue;
                };
                let peer = &peers[p.peer as usize];
                if let Some(seg) = self.local_view(peer) {
                    first[n] = Some(seg.range(p.offset, loc.size).map(|src| {
                        // SAFETY: src is inside the mapping and leased to us;
                        // the pieces are valid for writes per the caller.
                        unsafe { scatter(src, dests[*i].as_ref()) }
                    }));
                    continue;
                }
                let job = Job {
                    offset: p.offset,
                    pieces: dests[*i].as_ref(),
                    len: loc.size,
                };
                remote.entry(p.peer).or_default().push((n, job));
            }
            let xfer = &self.inner.xfer;
            let peers = &peers;
            let remote: Vec<(u16, Vec<(usize, Job<'_>)>)> = remote.into_iter().collect();
            let reads = remote.iter().map(|(p, jobs)| async move {
                let p = *p;
                let peer = &peers[p as usize];
                let js: Vec<Job<'_>> = jobs.iter().map(|(_, j)| *j).collect();
                // SAFETY: every job's pieces are one key's destination,
                // valid for writes and not otherwise accessed for the whole
                // call (the callers' contract, or borrows they hold); each
                // key is read once at a time, so no two jobs share memory.
                unsafe { xfer.read_many(&peer.transfer_addr, peer.service_id, &js).await }
            });
            for ((_, jobs), rs) in remote.iter().zip(futures::future::join_all(reads).await) {
                for ((n, _), r) in jobs.iter().zip(rs) {
                    first[*n] = Some(r);
                }
            }
        }
        let expired = deadline.expired(self.clock());
        let mut retry = Vec::new();
        for ((i, _, loc), first) in found.into_iter().zip(first) {
            match first {
                Some(Ok(())) => {
                    results[i] = if expired {
                        Err(Error::from(ErrorKind::LeaseExpired))
                    } else {
                        Ok(None)
                    };
                    let _ = self.inner.lease_tx.send((keys[i].to_owned(), loc.object_id));
                }
                // The nearest replica failed: the others, if any, in turn.
                Some(Err(e)) => {
                    let tried = self.nearest(&peers, &loc).copied();
                    retry.push((i, loc, tried.map(|p| (p, e))));
                }
                None => retry.push((i, loc, None)),
            }
        }
        if retry.is_empty() {
            return Ok(results);
        }
        let this = self;
        let peers = &peers;
        let reads = retry.into_iter().map(|(i, loc, failed)| async move {
            let r = this
                .read_one(peers, &loc, dests.map(|d| d[i].as_ref()), deadline, failed)
                .await;
            let _ = this.inner.lease_tx.send((keys[i].to_owned(), loc.object_id));
            (i, r)
        });
        for (i, r) in futures::future::join_all(reads).await {
            results[i] = r;
        }
        Ok(results)
    }

    /// How far a replica is: 0 in this process's own segment, 1 on this
    /// host, 2 elsewhere. Reads try the nearest first.
    pub(crate) fn distance(&self, peers: &[PeerInfo], p: &Placement) -> u8 {
        match peers.get(p.peer as usize) {
            Some(x) if x.service_id == self.inner.svc.id() => 0,
            Some(x) if x.host_id == self.inner.svc.host_id => 1,
            _ => 2,
        }
    }

    /// The replica of `loc` a read tries first (the first of the nearest).
    fn nearest<'l>(&self, peers: &[PeerInfo], loc: &'l Located) -> Option<&'l Placement> {
        loc.replicas
            .iter()
            .filter(|p| (p.peer as usize) < peers.len())
            .min_by_key(|p| self.distance(peers, p))
    }

    /// Reads one object from its replicas, nearest first, skipping the one
    /// in `failed` (already tried, with that error).
    async fn read_one(
        &self,
        peers: &[PeerInfo],
        loc: &Located,
        dest: Option<&[Piece]>,
        deadline: LeaseDeadline,
        failed: Option<(Placement, Error)>,
    ) -> Result<Option<Vec<u8>>> {
        let mut owned: Option<Vec<u8>> = None;
        let one: [Piece; 1];
        let pieces: &[Piece] = match dest {
            Some(d) => {
                let total: u64 = d.iter().map(|p| p.len as u64).sum();
                if total != loc.size {
                    return Err(Error::invalid(format!(
                        "buffers hold {total} bytes but the object has {} bytes",
                        loc.size
                    )));
                }
                d
            }
            None => {
                let mut v = new_value_buffer(loc.size)?;
                let p = Piece {
                    addr: v.as_mut_ptr() as usize,
                    len: loc.size as usize,
                };
                owned = Some(std::mem::take(&mut v));
                one = [p];
                &one
            }
        };
        let (tried, mut last_err) = match failed {
            Some((p, e)) => (Some(p), e),
            None => (None, Error::from(ErrorKind::ObjectNotExists)),
        };
        let mut order: Vec<&Placement> = loc.replicas.iter().filter(|p| Some(**p) != tried).collect();
        order.sort_by_key(|p| self.distance(peers, p));
        for p in order {
            let Some(peer) = peers.get(p.peer as usize) else {
                continue;
            };
            let r = match self.local_view(peer) {
                Some(seg) => seg.range(p.offset, loc.size).map(|src| {
                    // SAFETY: src is inside the mapping and leased to us;
                    // the pieces are valid for writes per the caller.
                    unsafe { scatter(src, pieces) }
                }),
                None => {
                    // SAFETY: the pieces are valid for writes of loc.size
                    // bytes in all (checked above, or our own buffer) and not
                    // otherwise accessed for the call.
                    unsafe {
                        self.inner
                            .xfer
                            .read(&peer.transfer_addr, peer.service_id, p.offset, pieces, loc.size)
                            .await
                    }
                }
            };
            match r {
                Ok(()) => {
                    deadline.check(self.clock())?;
                    if let Some(mut v) = owned {
                        // SAFETY: the copy above initialised all `size` bytes.
                        unsafe { v.set_len(loc.size as usize) };
                        return Ok(Some(v));
                    }
                    return Ok(None);
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_recorded_size_is_an_error_not_a_panic() {
        for size in [u64::MAX, MAX_GET_ALLOC + 1] {
            let e = new_value_buffer(size).unwrap_err().to_string();
            assert!(e.contains(&size.to_string()), "{e}");
        }
        assert_eq!(new_value_buffer(10).unwrap().capacity(), 10);
    }
}
