//! Replica placement: which segments receive the replicas of a new object.
//!
//! Order of preference: the caller's preferred service ids (in the order
//! given), then the writer's own segment, then the other segments with the
//! most free space. Replicas always land on distinct LocalServices.

use crate::membership::Membership;
use crate::object::Replica;
use mmc_wire::{Medium, ServiceId};

#[derive(Debug, PartialEq, Eq)]
pub enum PlaceFailure {
    /// Fewer live memory-providing LocalServices than replicas requested.
    TooFewSegments { have: usize },
    /// Enough segments, but not enough free space in them.
    NoSpace,
}

fn eligible(m: &Membership, id: ServiceId) -> bool {
    m.members
        .get(&id)
        .and_then(|mem| mem.segment.as_ref())
        .is_some_and(|s| !s.recovering && !s.draining && s.medium == Medium::Dram)
}

/// Candidate segments for a new object, best first.
pub fn candidates(m: &Membership, writer: ServiceId, preferred: &[ServiceId]) -> Vec<ServiceId> {
    let mut out: Vec<ServiceId> = Vec::new();
    for &id in preferred.iter().chain(std::iter::once(&writer)) {
        if eligible(m, id) && !out.contains(&id) {
            out.push(id);
        }
    }
    let mut rest: Vec<(u64, ServiceId)> = m
        .members
        .iter()
        .filter(|(&id, _)| eligible(m, id) && !out.contains(&id))
        .map(|(id, mem)| (mem.segment.as_ref().map_or(0, |s| s.alloc.free_bytes()), *id))
        .collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out.extend(rest.into_iter().map(|(_, id)| id));
    out
}

/// Allocates `replicas` copies of `size` bytes on distinct segments, in the
/// order of [`candidates`]. On failure nothing stays allocated.
pub fn place(
    m: &mut Membership,
    writer: ServiceId,
    preferred: &[ServiceId],
    replicas: u32,
    size: u64,
) -> Result<Vec<Replica>, PlaceFailure> {
    let want = replicas as usize;
    let mut got: Vec<Replica> = Vec::with_capacity(want);
    let try_on = |m: &mut Membership, got: &mut Vec<Replica>, id: ServiceId| {
        if got.len() < want && eligible(m, id) && got.iter().all(|r| r.service != id) {
            let seg = m.segment_mut(id).expect("eligible segment");
            if let Some(offset) = seg.alloc.alloc(size) {
                got.push(Replica { service: id, offset });
            }
        }
    };
    // The head of the candidate order (preferred, then the writer) needs no
    // ranking of the other segments; most puts are placed here.
    for &id in preferred.iter().chain(std::iter::once(&writer)) {
        try_on(m, &mut got, id);
    }
    if got.len() < want {
        let cands = candidates(m, writer, preferred);
        if cands.len() < want {
            release(m, got, size);
            return Err(PlaceFailure::TooFewSegments { have: cands.len() });
        }
        for id in cands {
            try_on(m, &mut got, id);
        }
    }
    if got.len() < want {
        release(m, got, size);
        return Err(PlaceFailure::NoSpace);
    }
    Ok(got)
}

fn release(m: &mut Membership, got: Vec<Replica>, size: u64) {
    for r in got {
        m.segment_mut(r.service)
            .expect("just allocated")
            .alloc
            .free(r.offset, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmc_wire::message::{RegisterReq, SegmentDesc};

    fn member(m: &mut Membership, size: u64) -> ServiceId {
        let req = RegisterReq {
            host_id: 1,
            transfer_addr: String::new(),
            segment: Some(SegmentDesc {
                name: "s".into(),
                medium: Medium::Dram,
                size,
                nonce: 0,
            }),
            prev_service_id: None,
            recovering: false,
        };
        m.register(&req, 0).unwrap()
    }

    #[test]
    fn a_draining_segment_takes_nothing_and_a_newcomer_is_the_most_free() {
        let mut m = Membership::default();
        let a = member(&mut m, 4 << 20);
        let b = member(&mut m, 4 << 20);
        m.segment_mut(a).unwrap().alloc.alloc(1 << 20).unwrap();
        m.segment_mut(b).unwrap().draining = true;
        assert_eq!(candidates(&m, b, &[b]), vec![a]);
        let c = member(&mut m, 4 << 20);
        assert_eq!(candidates(&m, 99, &[]), vec![c, a]);
        let got = place(&mut m, 99, &[b], 1, 4096).unwrap();
        assert_eq!(got[0].service, c);
    }

    #[test]
    fn prefers_preferred_then_writer_then_most_free() {
        let mut m = Membership::default();
        let a = member(&mut m, 1 << 20);
        let b = member(&mut m, 4 << 20);
        let c = member(&mut m, 2 << 20);
        assert_eq!(candidates(&m, a, &[]), vec![a, b, c]);
        assert_eq!(candidates(&m, a, &[c]), vec![c, a, b]);
        assert_eq!(candidates(&m, 99, &[]), vec![b, c, a]);
        let r = place(&mut m, a, &[], 2, 4096).unwrap();
        assert_eq!(r.iter().map(|r| r.service).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(
            place(&mut m, a, &[], 4, 4096),
            Err(PlaceFailure::TooFewSegments { have: 3 })
        );
        assert_eq!(place(&mut m, a, &[], 3, 3 << 20), Err(PlaceFailure::NoSpace));
        assert_eq!(
            m.segment_mut(b).unwrap().alloc.used(),
            4096,
            "failed placement leaves nothing behind"
        );
    }
}
