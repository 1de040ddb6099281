//! The put path: [`ObjectStore::put`] and its batch, layered and raw
//! forms (one `Alloc` RPC, the copies, one `Finish` RPC), and
//! [`ObjectStore::write_placed`], the copy of values into their placed
//! replicas that the provider's drain shares.

use super::{check_count, check_placements, malformed, only, BatchResult, ObjectStore, PutOptions};
use crate::buffer::{gather, total_len, Piece};
use crate::segment::Segment;
use crate::transfer::client::Job;
use mmc_wire::message::{AllocItem, PeerInfo, Placement, Request, Response};
use mmc_wire::{validate_batch_len, validate_key, validate_replicas, Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::Arc;

fn put_ok(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == ErrorKind::DuplicatedObject => Ok(()),
        r => r,
    }
}

impl ObjectStore {
    pub async fn put(&self, key: &str, value: &[u8], opts: &PutOptions) -> Result<()> {
        // SAFETY: the borrow keeps `value` alive and unmodified for the call.
        let r = unsafe { self.put_raw_batch(&[key], &[[Piece::of(value)]], opts).await? };
        put_ok(only(r))
    }

    /// Stores the concatenation of `layers` as one object.
    pub async fn put_layers(&self, key: &str, layers: &[&[u8]], opts: &PutOptions) -> Result<()> {
        let pieces: Vec<Piece> = layers.iter().map(|l| Piece::of(l)).collect();
        // SAFETY: the borrows keep the layers alive for the call.
        let r = unsafe { self.put_raw_batch(&[key], &[pieces], opts).await? };
        put_ok(only(r))
    }

    pub async fn put_batch(&self, keys: &[&str], values: &[&[u8]], opts: &PutOptions) -> BatchResult {
        let values: Vec<[Piece; 1]> = values.iter().map(|v| [Piece::of(v)]).collect();
        // SAFETY: the borrows keep the values alive for the call.
        let r = unsafe { self.put_raw_batch(keys, &values, opts).await? };
        Ok(r.into_iter().map(put_ok).collect())
    }

    pub async fn put_layers_batch(&self, keys: &[&str], layers: &[Vec<&[u8]>], opts: &PutOptions) -> BatchResult {
        let values: Vec<Vec<Piece>> = layers
            .iter()
            .map(|ls| ls.iter().map(|l| Piece::of(l)).collect())
            .collect();
        // SAFETY: the borrows keep the layers alive for the call.
        let r = unsafe { self.put_raw_batch(keys, &values, opts).await? };
        Ok(r.into_iter().map(put_ok).collect())
    }

    /// Puts values given as raw buffers (each a list of layers). An existing
    /// key is reported as `Err(DuplicatedObject)` (the safe methods map it
    /// to success).
    ///
    /// # Safety
    /// Every piece must be valid for reads, and not written by anyone,
    /// until the call completes (or its future is dropped).
    pub async unsafe fn put_raw_batch<V: AsRef<[Piece]> + Sync>(
        &self,
        keys: &[&str],
        values: &[V],
        opts: &PutOptions,
    ) -> BatchResult {
        validate_batch_len(keys.len())?;
        if keys.len() != values.len() {
            return Err(Error::invalid(format!(
                "{} keys but {} values",
                keys.len(),
                values.len()
            )));
        }
        validate_replicas(opts.replicas)?;
        let mut results: Vec<Result<()>> = vec![Ok(()); keys.len()];
        let mut items = Vec::new();
        let mut which = Vec::new();
        for (i, (k, v)) in keys.iter().zip(values).enumerate() {
            match validate_key(k).and_then(|_| total_len(v.as_ref())) {
                Ok(size) => {
                    items.push(AllocItem {
                        key: (*k).to_owned(),
                        size,
                        replicas: opts.replicas,
                        preferred: opts.preferred.clone(),
                    });
                    which.push((i, size));
                }
                Err(e) => results[i] = Err(e),
            }
        }
        if items.is_empty() {
            return Ok(results);
        }
        let me = self.service_id();
        let (peers, placed) = match self
            .inner
            .svc
            .meta
            .call_fast(&Request::Alloc { writer: me, items })
            .await?
        {
            Response::Alloc { peers, items, .. } => (peers, check_count("alloc", items, which.len())?),
            other => return Err(crate::meta_client::unexpected(other)),
        };
        let placed: Vec<(usize, Result<Vec<Placement>>, u64)> = placed
            .into_iter()
            .zip(which.iter().copied())
            .map(|(p, (i, size))| {
                let p = p.and_then(|reps| {
                    if reps.is_empty() {
                        return Err(malformed("alloc placed no replica"));
                    }
                    check_placements(&peers, &reps, size).map(|()| reps)
                });
                (i, p, size)
            })
            .collect();
        let copied = self.write_placed(&peers, placed, values).await;
        let mut commit = Vec::new();
        let mut commit_idx = Vec::new();
        let mut revoke = Vec::new();
        for (i, r) in copied {
            match r {
                Ok(()) => {
                    commit.push(keys[i].to_owned());
                    commit_idx.push(i);
                }
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        ErrorKind::DuplicatedObject | ErrorKind::NotEnoughMemory | ErrorKind::InvalidParam
                    ) {
                        revoke.push(keys[i].to_owned());
                    }
                    results[i] = Err(e);
                }
            }
        }
        if commit.is_empty() && revoke.is_empty() {
            return Ok(results);
        }
        if self.inner.async_commit {
            // The commit is on the connection, ahead of anything this client
            // sends next; others see the objects once it is processed.
            let req = Request::Finish {
                writer: me,
                commit,
                revoke,
            };
            self.inner.svc.meta.send_only(&req, "commit").await?;
            return Ok(results);
        }
        match self
            .inner
            .svc
            .meta
            .call_fast(&Request::Finish {
                writer: me,
                commit,
                revoke,
            })
            .await?
        {
            Response::Finish { commit } => {
                let commit = check_count("finish", commit, commit_idx.len())?;
                for (r, i) in commit.into_iter().zip(commit_idx) {
                    results[i] = r;
                }
            }
            other => return Err(crate::meta_client::unexpected(other)),
        }
        Ok(results)
    }

    /// Copies every placed value into its replicas: a memcpy into a segment
    /// mapped here, TCP writes for the others, all writes to one peer in one
    /// [`TransferClient::write_many`] so a batch streams to it. Per value
    /// (its batch index): `Ok` once every replica holds the bytes.
    pub(super) async fn write_placed<V: AsRef<[Piece]> + Sync>(
        &self,
        peers: &[PeerInfo],
        placed: Vec<(usize, Result<Vec<Placement>>, u64)>,
        values: &[V],
    ) -> Vec<(usize, Result<()>)> {
        let mut out: Vec<(usize, Result<()>)> = Vec::with_capacity(placed.len());
        let mut local: Vec<(usize, Arc<Segment>, u64, u64)> = Vec::new();
        // Remote writes by peer index: (slot in `out`, the write).
        let mut remote: HashMap<u16, Vec<(usize, Job<'_>)>> = HashMap::new();
        for (i, p, size) in placed {
            let slot = out.len();
            let reps = match p {
                Ok(reps) => reps,
                Err(e) => {
                    out.push((i, Err(e)));
                    continue;
                }
            };
            out.push((i, Ok(())));
            for rep in reps {
                let Some(peer) = peers.get(rep.peer as usize) else {
                    out[slot].1 = Err(malformed(format!("replica on peer index {}", rep.peer)));
                    continue;
                };
                match self.local_view(peer) {
                    Some(seg) => local.push((slot, seg, rep.offset, size)),
                    None => remote.entry(rep.peer).or_default().push((
                        slot,
                        Job {
                            offset: rep.offset,
                            pieces: values[i].as_ref(),
                            len: size,
                        },
                    )),
                }
            }
        }
        // As a list, so each peer's jobs pair with their results below.
        let remote: Vec<(u16, Vec<(usize, Job<'_>)>)> = remote.into_iter().collect();
        let copy_local = || {
            local
                .iter()
                .map(|(slot, seg, offset, size)| {
                    let r = seg.range(*offset, *size).map(|dst| {
                        // SAFETY: dst is inside the mapping; the MetaService
                        // allocated this range to us; the pieces are valid per caller.
                        unsafe { gather(values[out[*slot].0].as_ref(), dst) }
                    });
                    (*slot, r)
                })
                .collect::<Vec<_>>()
        };
        let (sent, copied) = if remote.is_empty() {
            (Vec::new(), copy_local())
        } else {
            let xfer = &self.inner.xfer;
            let sends = futures::future::join_all(remote.iter().map(|(p, jobs)| async move {
                let p = *p;
                let peer = &peers[p as usize];
                let js: Vec<Job<'_>> = jobs.iter().map(|(_, j)| *j).collect();
                // SAFETY: every job's pieces are a value of this put, valid
                // for reads and unmodified for the whole call (the callers'
                // contract, or borrows they hold), which outlives this future.
                unsafe { xfer.write_many(&peer.transfer_addr, peer.service_id, &js).await }
            }));
            // The sends start (their first bytes go out) before the copies here.
            let copies = async {
                tokio::task::yield_now().await;
                copy_local()
            };
            futures::join!(sends, copies)
        };
        let failed = copied
            .into_iter()
            .chain(
                remote
                    .iter()
                    .zip(sent)
                    .flat_map(|((_, jobs), rs)| jobs.iter().map(|(slot, _)| *slot).zip(rs)),
            )
            .filter_map(|(slot, r)| r.err().map(|e| (slot, e)));
        for (slot, e) in failed {
            if out[slot].1.is_ok() {
                out[slot].1 = Err(e);
            }
        }
        out
    }
}
