//! Writes: allocating space for new objects (evicting when full), turning
//! replicas into placements, and committing or revoking writes.

use super::{placements, vanished_peer, AllocOutcome, MetaState, PeerTable};
use crate::allocator::{align_up, checked_align_up};
use crate::eviction::{bytes_on, take_victims};
use crate::index::Key;
use crate::object::{Lease, ObjState, Object, Replica};
use crate::placement::{self, PlaceFailure};
use hashlink::linked_hash_map::RawEntryMut;
use mmc_wire::message::{AllocItem, PeerInfo, Placement};
use mmc_wire::{validate_key, validate_replicas, Error, ErrorKind, Result, ServiceId};
use std::sync::atomic::Ordering;

impl MetaState {
    /// Validates and tries to allocate each item once. Items answered
    /// `WaitSpace` should be retried (see the server's alloc loop).
    pub fn alloc<'a>(&self, writer: ServiceId, items: impl IntoIterator<Item = &'a AllocItem>) -> Vec<AllocOutcome> {
        let now = self.now();
        // Membership facts every item needs, read once per batch.
        let (known_writer, largest) = {
            let m = self.members.lock();
            (m.members.contains_key(&writer), m.largest_capacity())
        };
        let items = items.into_iter();
        let mut started: Vec<(u64, (u64, u64))> = Vec::with_capacity(items.size_hint().0);
        let out = items
            .map(|it| {
                if !known_writer {
                    return AllocOutcome::Done(Err(Error::new(
                        ErrorKind::NotConnectedMeta,
                        format!("writer {writer} is not registered"),
                    )));
                }
                match self.alloc_one(writer, it, now, largest) {
                    Ok((id, h, replicas)) => {
                        started.push((id, (now, h)));
                        AllocOutcome::Done(Ok(replicas))
                    }
                    Err(AllocErr::Fail(e)) => AllocOutcome::Done(Err(e)),
                    Err(AllocErr::Wait) => AllocOutcome::WaitSpace,
                }
            })
            .collect();
        if !started.is_empty() {
            self.writing.lock().extend(started);
        }
        out
    }

    /// Turns replica lists into a response: a peer list plus placements
    /// that index into it.
    pub fn to_placements(&self, items: Vec<Result<Vec<Replica>>>) -> (Vec<PeerInfo>, Vec<Result<Vec<Placement>>>) {
        let mut peers = PeerTable::default();
        let items = items
            .into_iter()
            .map(|r| r.map(|reps| placements(&mut peers, &reps)))
            .collect();
        let resolved = peers.resolve(&self.members.lock());
        (
            resolved.into_iter().map(|p| p.unwrap_or_else(vanished_peer)).collect(),
            items,
        )
    }

    /// Allocates one item; returns its object id, key hash and replicas.
    /// The caller records the write as in flight.
    fn alloc_one(
        &self,
        writer: ServiceId,
        it: &AllocItem,
        now: u64,
        largest: Option<u64>,
    ) -> Result<(u64, u64, Vec<Replica>), AllocErr> {
        validate_key(&it.key).map_err(AllocErr::Fail)?;
        validate_replicas(it.replicas).map_err(AllocErr::Fail)?;
        if it.size == 0 {
            return Err(AllocErr::Fail(Error::invalid("object size is 0")));
        }
        // Checked before any arithmetic: a size near 2^64 would wrap when
        // rounded up and allocate nothing at offset 0.
        match (checked_align_up(it.size), largest) {
            (Some(need), Some(cap)) if need <= cap => {}
            (Some(_), None) => {} // no segment at all: placement says so
            (_, cap) => {
                return Err(AllocErr::Fail(Error::invalid(format!(
                    "object size {} exceeds the largest segment ({} bytes)",
                    it.size,
                    cap.unwrap_or(0)
                ))));
            }
        }
        let mut evicted_any = false;
        for _attempt in 0..4 {
            let (h, mut shard) = self.index.lock_hashed(&it.key);
            // One probe: the vacant slot found here receives the object.
            let RawEntryMut::Vacant(slot) = shard.raw_entry_mut().from_key_hashed_nocheck(h, it.key.as_str()) else {
                return Err(AllocErr::Fail(Error::from(ErrorKind::DuplicatedObject)));
            };
            let mut m = self.members.lock();
            match placement::place(&mut m, writer, &it.preferred, it.replicas, it.size) {
                Ok(replicas) => {
                    drop(m);
                    let id = self.next_object_id.fetch_add(1, Ordering::Relaxed);
                    let o = Object {
                        id,
                        size: it.size,
                        state: ObjState::Writing { writer, since_ms: now },
                        replicas: replicas.iter().copied().collect(),
                        last_access: self.index.next_tick(),
                        lease: Lease::default(),
                    };
                    slot.insert_hashed_nocheck(h, Key::from(it.key.as_str()), o);
                    return Ok((id, h, replicas));
                }
                Err(PlaceFailure::TooFewSegments { have }) => {
                    return Err(AllocErr::Fail(Error::new(
                        ErrorKind::NoProvider,
                        format!(
                            "{} replicas requested but only {have} LocalServices with free memory segments are alive",
                            it.replicas
                        ),
                    )));
                }
                Err(PlaceFailure::NoSpace) => {
                    let cands = placement::candidates(&m, writer, &it.preferred);
                    let waiting: u64 = cands
                        .iter()
                        .filter_map(|id| m.members.get(id)?.segment.as_ref())
                        .map(|s| s.ledger.waiting_bytes())
                        .sum();
                    drop(m);
                    drop(shard);
                    let want = align_up(it.size).saturating_mul(it.replicas as u64);
                    // Space already on its way back (Dels awaiting the
                    // owner's ack) counts: evicting for it again would drop
                    // more objects than this alloc needs.
                    if waiting >= want {
                        return Err(AllocErr::Wait);
                    }
                    let freed = self.evict_on(&cands, want - waiting, now);
                    if freed > 0 {
                        evicted_any = true;
                        continue;
                    }
                    if waiting > 0 || evicted_any {
                        return Err(AllocErr::Wait);
                    }
                    return Err(AllocErr::Fail(Error::new(
                        ErrorKind::NotEnoughMemory,
                        format!(
                            "no room for {} bytes x {} replicas and nothing evictable",
                            it.size, it.replicas
                        ),
                    )));
                }
            }
        }
        Err(AllocErr::Wait)
    }

    /// Evicts LRU objects with replicas on `segments` until `want` bytes are
    /// released there (or nothing evictable remains); returns bytes released.
    pub(super) fn evict_on(&self, segments: &[ServiceId], want: u64, now: u64) -> u64 {
        let on = |s: ServiceId| segments.contains(&s);
        let victims = take_victims(&self.index, now, want, &|o| bytes_on(o, &on));
        self.finish_eviction(victims, &on)
    }

    fn finish_eviction(&self, victims: Vec<(Key, Object)>, on: &dyn Fn(ServiceId) -> bool) -> u64 {
        if victims.is_empty() {
            return 0;
        }
        let mut freed = 0;
        let mut m = self.members.lock();
        for (_, o) in &victims {
            freed += bytes_on(o, on);
            Self::free_replicas(&mut m, o);
        }
        self.counters
            .evictions
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        self.counters.evicted_bytes.fetch_add(freed, Ordering::Relaxed);
        freed
    }

    /// Commits and revokes the writer's in-flight objects.
    pub fn finish(&self, writer: ServiceId, commit: &[String], revoke: &[String]) -> Vec<Result<()>> {
        let mut done_ids = Vec::with_capacity(commit.len() + revoke.len());
        for key in revoke {
            let mut shard = self.index.lock_key(key);
            let mine = matches!(shard.get(key.as_str()).map(|o| o.state), Some(ObjState::Writing { writer: w, .. }) if w == writer);
            if mine {
                let o = shard.remove(key.as_str()).expect("present");
                done_ids.push(o.id);
                Self::free_replicas(&mut self.members.lock(), &o);
            }
        }
        let results = commit
            .iter()
            .map(|key| {
                let (h, mut shard) = self.index.lock_hashed(key);
                let RawEntryMut::Occupied(mut e) = shard.raw_entry_mut().from_key_hashed_nocheck(h, key.as_str())
                else {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "the write was reclaimed before commit (put timeout or writer declared dead)",
                    ));
                };
                let (k, o) = e.get_key_value_mut();
                match o.state {
                    ObjState::Writing { writer: w, .. } if w == writer => {
                        o.state = ObjState::Readable;
                        done_ids.push(o.id);
                        let id = o.id;
                        // The object joined the back of the LRU order at
                        // alloc; a commit moments later need not move it.
                        let (size, replicas) = (o.size, o.replicas.clone());
                        let mut m = self.members.lock();
                        for r in replicas {
                            if let Some(seg) = m.segment_mut(r.service) {
                                seg.objects += 1;
                                seg.ledger.add(k.clone(), r.offset, size, id);
                            }
                        }
                        Ok(())
                    }
                    _ => Err(Error::new(ErrorKind::Timeout, "the write was reclaimed before commit")),
                }
            })
            .collect();
        if !done_ids.is_empty() {
            let mut w = self.writing.lock();
            for id in done_ids {
                w.remove(&id);
            }
        }
        results
    }
}

enum AllocErr {
    Fail(Error),
    Wait,
}
