//! The layer-wise, direct-address API (the original MemCache's
//! `batch_alloc` / `batch_write_finish` / `batch_add_lease` /
//! `batch_remove_lease` / `batch_copy`): the caller reserves objects and is
//! given pool addresses, fills them itself, then finishes them; a reader
//! takes leases on objects, copies out of their addresses, then removes the
//! lease. This file owns the table of the addresses handed out here
//! ([`Regions`]) and those calls on [`ObjectStore`].
//!
//! **Addresses.** The address of a replica in a segment mapped in this
//! process (this LocalService's own segment, or a same-host provider's
//! verified memfd) is the address of its first byte in that mapping: the
//! caller may write or read it directly while it holds the write (between
//! alloc and finish) or a lease, and [`ObjectStore::copy_batch`] copies
//! there with one memcpy, no RPC. A replica in another host's segment
//! cannot be mapped: its address is a tag, `1 << 62 | service id << 44 |
//! segment offset`, that is not dereferenceable (far above any user-space
//! pointer) and that [`ObjectStore::copy_batch`] serves over the TCP
//! transfer path. Either kind may be offset (`address + n` names byte `n` of
//! the object), as the original's callers do for per-layer pieces.
//!
//! **Safety.** [`ObjectStore::copy_batch`] copies only within a region this
//! process holds: a pending write for copies into the pool, an unexpired
//! lease for copies out of it; anything else is `INVALID_PARAM`, a copy
//! that outlives its lease is `LEASE_EXPIRED`. Raw writes through the
//! addresses bypass these checks and are the caller's responsibility; a
//! region keeps its segment mapped (an `Arc` of the mapping) until it is
//! finished or its lease removed, so an address never dangles while held.
//! Writes are single-replica (the original's layer-wise allocations are). A
//! writer that dies before finishing leaves the object WRITING (invisible
//! to readers) until the MetaService's put timeout frees its space.

use crate::buffer::Piece;
use crate::clock::{Clock, LeaseDeadline};
use crate::segment::Segment;
use crate::store::{check_count, check_placements, malformed, BatchResult, ObjectStore};
use mmc_wire::message::{AllocItem, PeerInfo, Placement, Request, Response};
use mmc_wire::{validate_batch_len, validate_key, Error, ErrorKind, Result, ServiceId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Tag bit of an address in another host's segment.
pub const REMOTE_TAG: u64 = 1 << 62;
/// Bits of the segment offset in a tagged address.
const REMOTE_OFFSET_BITS: u32 = 44;

/// Which way [`ObjectStore::copy_batch`] copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// From caller memory into the pool (the original's `L2G` / `H2G`).
    ToPool,
    /// From the pool into caller memory (`G2L` / `G2H`).
    FromPool,
}

/// Where a region's bytes are.
#[derive(Clone)]
enum Target {
    /// In a segment mapped here, from `ptr` on.
    Mapped { seg: Arc<Segment>, ptr: usize },
    /// In another host's segment, at `offset`.
    Remote {
        addr: String,
        service: ServiceId,
        offset: u64,
    },
}

#[derive(Clone, Copy)]
enum Kind {
    /// Allocated here, not yet finished.
    Write,
    /// Leased here `count` times, until `deadline`.
    Read {
        object_id: u64,
        deadline: LeaseDeadline,
        count: u32,
    },
}

#[derive(Clone)]
struct Region {
    key: String,
    size: u64,
    kind: Kind,
    target: Target,
}

/// The regions handed out by this process, by start address; they never
/// overlap (a new one replaces any stale one it overlaps: the MetaService
/// gave its range to the new one, so the old write or lease is over).
#[derive(Default)]
pub(crate) struct Regions {
    by_addr: BTreeMap<u64, Region>,
    writes: HashMap<String, u64>,
    leases: HashMap<String, u64>,
}

impl Regions {
    fn end(base: u64, r: &Region) -> u64 {
        base.saturating_add(r.size)
    }

    fn forget(&mut self, base: u64) -> Option<Region> {
        let r = self.by_addr.remove(&base)?;
        let index = match r.kind {
            Kind::Write => &mut self.writes,
            Kind::Read { .. } => &mut self.leases,
        };
        if index.get(&r.key) == Some(&base) {
            index.remove(&r.key);
        }
        Some(r)
    }

    /// Adds `r` at `base`, dropping the regions it overlaps (returned, so
    /// their leases can be released).
    fn insert(&mut self, base: u64, r: Region) -> Vec<Region> {
        let end = Self::end(base, &r);
        let stale: Vec<u64> = self
            .by_addr
            .range(..end)
            .rev()
            .take_while(|(b, o)| Self::end(**b, o) > base)
            .map(|(b, _)| *b)
            .collect();
        let dropped = stale.into_iter().filter_map(|b| self.forget(b)).collect();
        if let Some(old) = match r.kind {
            Kind::Write => self.writes.insert(r.key.clone(), base),
            Kind::Read { .. } => self.leases.insert(r.key.clone(), base),
        } {
            if old != base {
                // The key's previous region elsewhere: its write or lease is
                // superseded by this one.
                let _ = self.by_addr.remove(&old);
            }
        }
        self.by_addr.insert(base, r);
        dropped
    }

    /// The region holding `[addr, addr + len)`, with the offset of `addr` in it.
    fn find(&self, addr: u64, len: u64) -> Option<(&Region, u64)> {
        let (base, r) = self.by_addr.range(..=addr).next_back()?;
        let off = addr - base;
        let end = off.checked_add(len)?;
        (end <= r.size).then_some((r, off))
    }
}

fn invalid_lengths(what: &str, n: usize, other: &str, m: usize) -> Error {
    Error::invalid(format!("{n} {what} but {m} {other}"))
}

impl ObjectStore {
    /// The address of `size` bytes at `offset` of `peer`'s segment (see the
    /// module documentation) and where they are.
    fn direct_target(&self, peer: &PeerInfo, offset: u64, size: u64) -> Result<(u64, Target)> {
        if let Some(seg) = self.local_view(peer) {
            let ptr = seg.range(offset, size)? as usize;
            return Ok((ptr as u64, Target::Mapped { seg, ptr }));
        }
        if peer.transfer_addr.is_empty() {
            return Err(Error::new(
                ErrorKind::NotConnectedLocal,
                format!("service {} has no transfer address", peer.service_id),
            ));
        }
        let fits = offset
            .checked_add(size)
            .is_some_and(|end| end <= 1 << REMOTE_OFFSET_BITS)
            && peer.service_id <= mmc_wire::MAX_SERVICE_ID;
        if !fits {
            return Err(Error::invalid(format!(
                "replica at {offset}+{size} of service {} cannot be addressed",
                peer.service_id
            )));
        }
        let addr = REMOTE_TAG | (u64::from(peer.service_id) << REMOTE_OFFSET_BITS) | offset;
        Ok((
            addr,
            Target::Remote {
                addr: peer.transfer_addr.clone(),
                service: peer.service_id,
                offset,
            },
        ))
    }

    /// Reserves one single-replica object of `sizes[i]` bytes per key and
    /// returns the address of each (nonzero), to fill and then finish with
    /// [`ObjectStore::write_finish_batch`]. The objects stay invisible to
    /// readers until finished; one never finished is freed by the
    /// MetaService's put timeout. An existing key is `DuplicatedObject`.
    pub async fn alloc_batch(&self, keys: &[&str], sizes: &[u64]) -> BatchResult<u64> {
        validate_batch_len(keys.len())?;
        if keys.len() != sizes.len() {
            return Err(invalid_lengths("keys", keys.len(), "sizes", sizes.len()));
        }
        let mut results: Vec<Result<u64>> = Vec::with_capacity(keys.len());
        let mut items = Vec::new();
        let mut which = Vec::new();
        for (i, (k, &size)) in keys.iter().zip(sizes).enumerate() {
            let ok = validate_key(k).and_then(|()| {
                if size == 0 {
                    Err(Error::invalid(format!("size of key {k:?} is 0")))
                } else if keys[..i].contains(k) {
                    Err(Error::invalid(format!("key {k:?} appears twice in the batch")))
                } else {
                    Ok(())
                }
            });
            match ok {
                Ok(()) => {
                    items.push(AllocItem {
                        key: (*k).to_owned(),
                        size,
                        replicas: 1,
                        preferred: Vec::new(),
                    });
                    which.push((i, size));
                    results.push(Ok(0));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if items.is_empty() {
            return Ok(results);
        }
        let me = self.service_id();
        let (peers, placed) = match self.svc().meta.call_fast(&Request::Alloc { writer: me, items }).await? {
            Response::Alloc { peers, items, .. } => (peers, check_count("alloc", items, which.len())?),
            other => return Err(crate::meta_client::unexpected(other)),
        };
        let mut revoke = Vec::new();
        {
            let mut regions = self.regions().lock();
            for (p, (i, size)) in placed.into_iter().zip(which) {
                let r = p.and_then(|reps| {
                    let [rep]: [Placement; 1] = reps
                        .try_into()
                        .map_err(|r: Vec<Placement>| malformed(format!("alloc placed {} replicas, not 1", r.len())))?;
                    check_placements(&peers, &[rep], size)?;
                    let peer = &peers[rep.peer as usize];
                    self.direct_target(peer, rep.offset, size).inspect_err(|_| {
                        revoke.push(keys[i].to_owned());
                    })
                });
                results[i] = r.map(|(addr, target)| {
                    let region = Region {
                        key: keys[i].to_owned(),
                        size,
                        kind: Kind::Write,
                        target,
                    };
                    regions.insert(addr, region);
                    addr
                });
            }
        }
        if !revoke.is_empty() {
            let req = Request::Finish {
                writer: me,
                commit: Vec::new(),
                revoke,
            };
            if let Err(e) = self.svc().meta.call_fast(&req).await {
                tracing::debug!(error = %e, "revoking unaddressable allocations failed (the put timeout frees them)");
            }
        }
        Ok(results)
    }

    /// Ends writes begun by [`ObjectStore::alloc_batch`] in this process:
    /// `ok[i]` commits key `i` (readable from now on), `false` revokes it
    /// (its space is freed). A key with no write pending here is
    /// `ObjectNotExists`. Its address is invalid afterwards.
    pub async fn write_finish_batch(&self, keys: &[&str], ok: &[bool]) -> BatchResult {
        validate_batch_len(keys.len())?;
        if keys.len() != ok.len() {
            return Err(invalid_lengths("keys", keys.len(), "results", ok.len()));
        }
        let mut results: Vec<Result<()>> = Vec::with_capacity(keys.len());
        let (mut commit, mut commit_idx, mut revoke) = (Vec::new(), Vec::new(), Vec::new());
        {
            let mut regions = self.regions().lock();
            for (i, (k, &good)) in keys.iter().zip(ok).enumerate() {
                let pending = validate_key(k).and_then(|()| {
                    let base = regions
                        .writes
                        .get(*k)
                        .copied()
                        .ok_or(Error::from(ErrorKind::ObjectNotExists))?;
                    regions.forget(base);
                    Ok(())
                });
                match pending {
                    Ok(()) if good => {
                        commit.push((*k).to_owned());
                        commit_idx.push(i);
                        results.push(Ok(()));
                    }
                    Ok(()) => {
                        revoke.push((*k).to_owned());
                        results.push(Ok(()));
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
        }
        if commit.is_empty() && revoke.is_empty() {
            return Ok(results);
        }
        let req = Request::Finish {
            writer: self.service_id(),
            commit,
            revoke,
        };
        match self.svc().meta.call_fast(&req).await? {
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

    /// One `Lookup` granting leases of `lease_ms` (0: the MetaService's
    /// configured lease): per key, its address (nearest replica first) and
    /// object id, the time the leases end, and the peers.
    async fn leased_targets(
        &self,
        keys: &[&str],
        lease_ms: u64,
    ) -> Result<(LeaseDeadline, Vec<Result<(u64, Vec<(u64, Target)>, u64)>>)> {
        validate_batch_len(keys.len())?;
        let mut results = Vec::with_capacity(keys.len());
        let mut ask = Vec::new();
        let mut which = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match validate_key(k) {
                Ok(()) => {
                    ask.push((*k).to_owned());
                    which.push(i);
                    results.push(Err(Error::from(ErrorKind::ObjectNotExists)));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let sent = self.clock().now();
        if ask.is_empty() {
            return Ok((LeaseDeadline::granted(sent, 0), results));
        }
        let req = Request::LookupLease {
            reader: self.service_id(),
            keys: ask,
            lease_ms,
        };
        let (peers, granted, items) = match self.svc().meta.call_fast(&req).await? {
            Response::Lookup { peers, lease_ms, items } => {
                (peers, lease_ms, check_count("lookup", items, which.len())?)
            }
            other => return Err(crate::meta_client::unexpected(other)),
        };
        let deadline = LeaseDeadline::granted(sent, granted);
        for (item, i) in items.into_iter().zip(which) {
            results[i] = item.and_then(|loc| {
                check_placements(&peers, &loc.replicas, loc.size)?;
                let mut reps: Vec<&Placement> = loc.replicas.iter().collect();
                reps.sort_by_key(|p| self.distance(&peers, p));
                let targets: Vec<(u64, Target)> = reps
                    .into_iter()
                    .filter_map(|p| self.direct_target(&peers[p.peer as usize], p.offset, loc.size).ok())
                    .collect();
                if targets.is_empty() {
                    // Leased but not reachable: give the lease back.
                    let _ = self.lease_tx().send((keys[i].to_owned(), loc.object_id));
                    return Err(Error::new(
                        ErrorKind::NotConnectedLocal,
                        format!("no replica of {:?} is reachable from here", keys[i]),
                    ));
                }
                Ok((loc.size, targets, loc.object_id))
            });
        }
        Ok((deadline, results))
    }

    /// Takes a read lease of `lease_ms` (0: the MetaService's configured
    /// lease; at most an hour) on each key: while it lasts the object is
    /// neither evicted nor freed, and [`ObjectStore::copy_batch`] copies out
    /// of the address [`ObjectStore::direct_addresses_batch`] reports.
    /// Leasing a key again adds a lease (each is removed by one
    /// [`ObjectStore::remove_lease_batch`]). An absent key, or one still
    /// being written, is `ObjectNotExists`.
    pub async fn add_lease_batch(&self, keys: &[&str], lease_ms: u64) -> BatchResult {
        let (deadline, found) = self.leased_targets(keys, lease_ms).await?;
        let mut regions = self.regions().lock();
        let mut results = Vec::with_capacity(keys.len());
        for (i, r) in found.into_iter().enumerate() {
            results.push(r.map(|(size, mut targets, object_id)| {
                let (addr, target) = targets.swap_remove(0);
                let key = keys[i];
                if let Some(&base) = regions.leases.get(key) {
                    if let Some(Region {
                        kind:
                            Kind::Read {
                                object_id: id,
                                deadline: d,
                                count,
                            },
                        ..
                    }) = regions.by_addr.get_mut(&base)
                    {
                        if base == addr && *id == object_id {
                            *count = count.saturating_add(1);
                            *d = (*d).max(deadline);
                            return;
                        }
                    }
                }
                let region = Region {
                    key: key.to_owned(),
                    size,
                    kind: Kind::Read {
                        object_id,
                        deadline,
                        count: 1,
                    },
                    target,
                };
                if let Some(&old) = regions.leases.get(key) {
                    if let Some(r) = regions.forget(old) {
                        self.release(&r);
                    }
                }
                for r in regions.insert(addr, region) {
                    self.release(&r);
                }
            }));
        }
        Ok(results)
    }

    /// Gives back every lease a region holds.
    fn release(&self, r: &Region) {
        if let Kind::Read { object_id, count, .. } = r.kind {
            for _ in 0..count {
                let _ = self.lease_tx().send((r.key.clone(), object_id));
            }
        }
    }

    /// Removes one lease taken by [`ObjectStore::add_lease_batch`] per key.
    /// `LeaseExpired` when the lease had run out (bytes copied under it may
    /// have been overwritten: discard them); a key leased nowhere here is
    /// `InvalidParam`.
    pub async fn remove_lease_batch(&self, keys: &[&str]) -> BatchResult {
        validate_batch_len(keys.len())?;
        let now = self.clock().now();
        let mut regions = self.regions().lock();
        let results = keys
            .iter()
            .map(|k| {
                let base = regions
                    .leases
                    .get(*k)
                    .copied()
                    .ok_or_else(|| Error::invalid(format!("no lease on key {k:?} is held here")))?;
                let Some(region) = regions.by_addr.get_mut(&base) else {
                    return Err(Error::invalid(format!("no lease on key {k:?} is held here")));
                };
                let Kind::Read {
                    object_id,
                    deadline,
                    count,
                } = &mut region.kind
                else {
                    return Err(Error::invalid(format!("no lease on key {k:?} is held here")));
                };
                let (object_id, expired) = (*object_id, deadline.expired_at(now));
                *count = count.saturating_sub(1);
                if *count == 0 {
                    regions.forget(base);
                }
                let _ = self.lease_tx().send(((*k).to_owned(), object_id));
                if expired {
                    Err(Error::from(ErrorKind::LeaseExpired))
                } else {
                    Ok(())
                }
            })
            .collect();
        Ok(results)
    }

    /// The addresses of each key's replicas, nearest first (the first is the
    /// one [`ObjectStore::add_lease_batch`] leases and copies use); 0 for a
    /// replica not reachable from here. Takes and at once gives back a
    /// lease (the object must be readable).
    pub async fn direct_addresses_batch(&self, keys: &[&str]) -> BatchResult<Vec<u64>> {
        let (_, found) = self.leased_targets(keys, 1).await?;
        Ok(found
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.map(|(_, targets, object_id)| {
                    let _ = self.lease_tx().send((keys[i].to_owned(), object_id));
                    targets.into_iter().map(|(a, _)| a).collect()
                })
            })
            .collect())
    }

    /// Copies `sizes[i]` bytes between caller memory at `addrs[i]` and the
    /// pool address `gvas[i]` (from [`ObjectStore::alloc_batch`] or
    /// [`ObjectStore::direct_addresses_batch`], possibly offset), into the
    /// pool (a pending write of this process) or out of it (a lease held
    /// here). A range outside every such region is `InvalidParam`; a copy
    /// out of a lease that ran out before it ended is `LeaseExpired`.
    ///
    /// # Safety
    /// Each `addrs[i]` must be valid for `sizes[i]` bytes of reads
    /// (`ToPool`) or writes (`FromPool`), and not otherwise accessed, until
    /// the call completes; destinations must not overlap.
    pub async unsafe fn copy_batch(
        &self,
        gvas: &[u64],
        addrs: &[usize],
        sizes: &[u64],
        dir: CopyDirection,
    ) -> BatchResult {
        validate_batch_len(gvas.len())?;
        if gvas.len() != addrs.len() || gvas.len() != sizes.len() {
            return Err(Error::invalid(format!(
                "{} addresses, {} buffers and {} sizes",
                gvas.len(),
                addrs.len(),
                sizes.len()
            )));
        }
        let mut plan: Vec<Result<(Target, u64, Option<LeaseDeadline>)>> = Vec::with_capacity(gvas.len());
        {
            let regions = self.regions().lock();
            for ((&gva, &addr), &size) in gvas.iter().zip(addrs).zip(sizes) {
                let p = if size == 0 {
                    Err(Error::invalid("size 0"))
                } else if addr == 0 {
                    Err(Error::invalid("buffer is a null pointer"))
                } else if usize::try_from(size).is_err() || addr.checked_add(size as usize).is_none() {
                    Err(Error::invalid(format!("buffer {addr:#x}+{size} wraps around")))
                } else {
                    match regions.find(gva, size) {
                        None => Err(Error::invalid(format!(
                            "{gva:#x}+{size} is not inside an object allocated or leased here"
                        ))),
                        Some((r, off)) => match (r.kind, dir) {
                            (Kind::Write, CopyDirection::ToPool) => Ok((r.target.clone(), off, None)),
                            (Kind::Read { deadline, .. }, CopyDirection::FromPool) => {
                                Ok((r.target.clone(), off, Some(deadline)))
                            }
                            (Kind::Write, _) => Err(Error::invalid(format!(
                                "{gva:#x} is in {:?}, allocated but not finished: not readable",
                                r.key
                            ))),
                            (Kind::Read { .. }, _) => Err(Error::invalid(format!(
                                "{gva:#x} is in {:?}, leased for reading: not writable",
                                r.key
                            ))),
                        },
                    }
                };
                plan.push(p);
            }
        }
        let copies = plan
            .into_iter()
            .zip(addrs)
            .zip(sizes)
            .map(|((p, &addr), &size)| async move {
                let (target, off, deadline) = p?;
                if deadline.is_some_and(|d| d.expired(self.clock())) {
                    return Err(Error::from(ErrorKind::LeaseExpired));
                }
                let piece = [Piece {
                    addr,
                    len: size as usize,
                }];
                match target {
                    Target::Mapped { ptr, seg: _seg } => {
                        let pool = (ptr + off as usize) as *mut u8;
                        // SAFETY: [off, off + size) is inside the region (found
                        // above), which is inside the mapping `_seg` keeps alive;
                        // the caller's buffer is valid per the contract.
                        unsafe {
                            match dir {
                                CopyDirection::ToPool => crate::copy::copy(pool, addr as *const u8, size as usize),
                                CopyDirection::FromPool => crate::copy::copy(addr as *mut u8, pool, size as usize),
                            }
                        }
                    }
                    Target::Remote {
                        addr: to,
                        service,
                        offset,
                    } => {
                        let at = offset
                            .checked_add(off)
                            .ok_or_else(|| Error::invalid("offset overflows"))?;
                        // SAFETY: the caller's buffer is valid per the contract,
                        // for the whole call, which awaits the transfer.
                        unsafe {
                            match dir {
                                CopyDirection::ToPool => self.xfer().write(&to, service, at, &piece, size).await?,
                                CopyDirection::FromPool => self.xfer().read(&to, service, at, &piece, size).await?,
                            }
                        }
                    }
                }
                if deadline.is_some_and(|d| d.expired(self.clock())) {
                    return Err(Error::from(ErrorKind::LeaseExpired));
                }
                Ok(())
            });
        Ok(futures::future::join_all(copies).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(key: &str, size: u64) -> Region {
        Region {
            key: key.into(),
            size,
            kind: Kind::Write,
            target: Target::Remote {
                addr: "a".into(),
                service: 1,
                offset: 0,
            },
        }
    }

    #[test]
    fn regions_resolve_ranges_and_replace_stale_overlaps() {
        let mut r = Regions::default();
        assert!(r.insert(1000, region("a", 100)).is_empty());
        assert!(r.insert(2000, region("b", 100)).is_empty());
        assert_eq!(r.find(1000, 100).map(|(x, o)| (x.key.as_str(), o)), Some(("a", 0)));
        assert_eq!(r.find(1050, 50).map(|(x, o)| (x.key.as_str(), o)), Some(("a", 50)));
        assert!(r.find(1050, 51).is_none(), "past the end");
        assert!(r.find(999, 1).is_none());
        assert!(r.find(1099, u64::MAX).is_none(), "overflow is a miss, not a panic");
        assert!(r.find(u64::MAX, 1).is_none());
        // A new region over the tail of "a" replaces it.
        let dropped = r.insert(1090, region("c", 20));
        assert_eq!(dropped.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(r.find(1000, 1).is_none());
        assert!(!r.writes.contains_key("a"));
        assert_eq!(r.writes.get("c"), Some(&1090));
        assert!(r.forget(2000).is_some());
        assert!(!r.writes.contains_key("b"));
    }
}
