//! The registry of LocalServices and their segments.
//!
//! It owns service-id assignment, liveness (last heartbeat), each segment's
//! allocator and ledger, and the membership epoch that clients use to notice
//! joins and departures. It knows nothing about keys.

use crate::allocator::SegmentAllocator;
use crate::ledger::Ledger;
use crate::returns::Admission;
use mmc_wire::message::{PeerInfo, RegisterReq, SegmentStat};
use mmc_wire::{Error, Medium, Result, ServiceId, MAX_SERVICE_ID};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Segment {
    pub medium: Medium,
    pub alloc: SegmentAllocator,
    pub ledger: Ledger,
    /// Ledger entries are still arriving: nothing may be allocated here.
    pub recovering: bool,
    /// Committed replicas stored here.
    pub objects: u64,
    /// Being drained (graceful scale-in): nothing new is placed here.
    pub draining: bool,
    /// How the ledger this segment's owner brings back is judged.
    pub returning: Admission,
}

#[derive(Debug)]
pub struct Member {
    pub info: PeerInfo,
    pub last_seen_ms: u64,
    pub segment: Option<Segment>,
}

#[derive(Debug, Default)]
pub struct Membership {
    pub members: BTreeMap<ServiceId, Member>,
    next_id: ServiceId,
    /// Bumped on every join and departure.
    pub epoch: u64,
}

impl Membership {
    pub fn register(&mut self, req: &RegisterReq, now_ms: u64) -> Result<ServiceId> {
        if let Some(seg) = &req.segment {
            if seg.size < crate::allocator::ALIGN {
                return Err(Error::invalid(format!("segment size {} is below one page", seg.size)));
            }
            if seg.size >= 1 << mmc_wire::Gva::OFFSET_BITS {
                return Err(Error::invalid("segment size must be below 256 TiB"));
            }
        }
        let id = match req.prev_service_id {
            Some(p) if p > 0 && p <= MAX_SERVICE_ID && !self.members.contains_key(&p) => p,
            _ => self.fresh_id()?,
        };
        self.next_id = self.next_id.max(id);
        let segment = req.segment.as_ref().map(|s| Segment {
            medium: s.medium,
            alloc: SegmentAllocator::new(s.size),
            ledger: Ledger::with_epoch(fresh_ledger_epoch()),
            recovering: req.recovering,
            objects: 0,
            draining: false,
            returning: Admission::Judge,
        });
        let info = PeerInfo {
            service_id: id,
            host_id: req.host_id,
            transfer_addr: req.transfer_addr.clone(),
            segment: req.segment.clone(),
        };
        self.members.insert(
            id,
            Member {
                info,
                last_seen_ms: now_ms,
                segment,
            },
        );
        self.epoch += 1;
        Ok(id)
    }

    /// Capacity of the largest segment, if any member has one.
    pub fn largest_capacity(&self) -> Option<u64> {
        self.members
            .values()
            .filter_map(|x| x.segment.as_ref())
            .map(|s| s.alloc.capacity())
            .max()
    }

    fn fresh_id(&mut self) -> Result<ServiceId> {
        for _ in 0..MAX_SERVICE_ID {
            self.next_id = if self.next_id >= MAX_SERVICE_ID {
                1
            } else {
                self.next_id + 1
            };
            if !self.members.contains_key(&self.next_id) {
                return Ok(self.next_id);
            }
        }
        Err(Error::other("no free service id"))
    }

    pub fn remove(&mut self, id: ServiceId) -> Option<Member> {
        let m = self.members.remove(&id);
        if m.is_some() {
            self.epoch += 1;
        }
        m
    }

    pub fn get_mut(&mut self, id: ServiceId) -> Option<&mut Member> {
        self.members.get_mut(&id)
    }

    pub fn segment_mut(&mut self, id: ServiceId) -> Option<&mut Segment> {
        self.members.get_mut(&id).and_then(|m| m.segment.as_mut())
    }

    /// Members silent for longer than `timeout_ms`.
    pub fn expired(&self, now_ms: u64, timeout_ms: u64) -> Vec<ServiceId> {
        self.members
            .iter()
            .filter(|(_, m)| now_ms.saturating_sub(m.last_seen_ms) > timeout_ms)
            .map(|(&id, _)| id)
            .collect()
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        self.members.values().map(|m| m.info.clone()).collect()
    }

    /// (capacity, used) summed over the segments of one medium; bytes waiting
    /// for a ledger ack count as used.
    pub fn medium_usage(&self, medium: Medium) -> (u64, u64) {
        self.members
            .values()
            .filter_map(|m| m.segment.as_ref())
            .filter(|s| s.medium == medium)
            .fold((0, 0), |(c, u), s| (c + s.alloc.capacity(), u + s.alloc.used()))
    }

    pub fn segment_stats(&self) -> Vec<SegmentStat> {
        self.members
            .values()
            .filter_map(|m| {
                let s = m.segment.as_ref()?;
                Some(SegmentStat {
                    service_id: m.info.service_id,
                    host_id: m.info.host_id,
                    transfer_addr: m.info.transfer_addr.clone(),
                    medium: s.medium,
                    capacity: s.alloc.capacity(),
                    used: s.alloc.used(),
                    objects: s.objects,
                })
            })
            .collect()
    }
}

/// A ledger epoch no earlier registration (in this MetaService or any
/// other) is likely to have used: 64 random bits, else the clock.
fn fresh_ledger_epoch() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}
