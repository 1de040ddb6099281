//! Space allocator for one segment.
//!
//! Best-fit over free ranges kept in two ordered maps (by offset, for merging
//! neighbours; by size, for best fit), so allocation and free are O(log n) in
//! the number of free ranges. The bookkeeping lives entirely in MetaService
//! memory: the managed segment is never touched. Every allocation is rounded
//! up to [`ALIGN`] bytes and starts on an [`ALIGN`] boundary.

use std::collections::{BTreeMap, BTreeSet};

/// Allocation granularity and alignment, in bytes.
pub const ALIGN: u64 = 4096;

/// `n` rounded up to [`ALIGN`]; `None` when that does not fit in a u64
/// (sizes from the network can be anything).
pub fn checked_align_up(n: u64) -> Option<u64> {
    n.checked_next_multiple_of(ALIGN)
}

/// `n` rounded up to [`ALIGN`], saturating at the largest multiple: for
/// sizes already admitted (an object that was allocated), which are far
/// below that.
pub fn align_up(n: u64) -> u64 {
    checked_align_up(n).unwrap_or(u64::MAX / ALIGN * ALIGN)
}

#[derive(Debug, Clone)]
pub struct SegmentAllocator {
    capacity: u64,
    used: u64,
    by_offset: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
}

impl SegmentAllocator {
    /// Manages `capacity` bytes (rounded down to [`ALIGN`]).
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity / ALIGN * ALIGN;
        let mut a = SegmentAllocator {
            capacity,
            used: 0,
            by_offset: BTreeMap::new(),
            by_size: BTreeSet::new(),
        };
        if capacity > 0 {
            a.insert_free(0, capacity);
        }
        a
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn free_bytes(&self) -> u64 {
        self.capacity - self.used
    }

    /// Size of the largest free range.
    pub fn largest_free(&self) -> u64 {
        self.by_size.iter().next_back().map_or(0, |&(len, _)| len)
    }

    fn insert_free(&mut self, off: u64, len: u64) {
        self.by_offset.insert(off, len);
        self.by_size.insert((len, off));
    }

    fn remove_free(&mut self, off: u64, len: u64) {
        self.by_offset.remove(&off);
        self.by_size.remove(&(len, off));
    }

    /// Allocates `size` bytes (rounded up); returns the offset. `None`
    /// when `size` is 0 or no free range holds it.
    pub fn alloc(&mut self, size: u64) -> Option<u64> {
        if size == 0 {
            return None;
        }
        let need = checked_align_up(size)?;
        if need > self.capacity {
            return None;
        }
        let &(len, off) = self.by_size.range((need, 0)..).next()?;
        self.remove_free(off, len);
        if len > need {
            self.insert_free(off + need, len - need);
        }
        self.used += need;
        Some(off)
    }

    /// Marks a specific range as used (metadata recovery). Fails, changing
    /// nothing, when any byte of it is already used or out of range.
    pub fn reserve(&mut self, off: u64, size: u64) -> bool {
        if size == 0 || !off.is_multiple_of(ALIGN) {
            return false;
        }
        let Some(need) = checked_align_up(size) else {
            return false;
        };
        let Some(end) = off.checked_add(need) else { return false };
        if end > self.capacity {
            return false;
        }
        let Some((&foff, &flen)) = self.by_offset.range(..=off).next_back() else {
            return false;
        };
        if foff + flen < end {
            return false;
        }
        self.remove_free(foff, flen);
        if foff < off {
            self.insert_free(foff, off - foff);
        }
        if end < foff + flen {
            self.insert_free(end, foff + flen - end);
        }
        self.used += need;
        true
    }

    /// Returns a range obtained from [`alloc`](Self::alloc) or
    /// [`reserve`](Self::reserve) with the same `size`.
    /// A range that was never handed out (out of the segment) is ignored.
    pub fn free(&mut self, off: u64, size: u64) {
        let len = match checked_align_up(size) {
            Some(len) if len > 0 && off.checked_add(len).is_some_and(|end| end <= self.capacity) => len,
            _ => {
                debug_assert!(false, "free of {size} bytes at {off} outside the segment");
                return;
            }
        };
        let mut start = off;
        let mut total = len;
        if let Some((&poff, &plen)) = self.by_offset.range(..off).next_back() {
            debug_assert!(poff + plen <= off, "double free at {off}");
            if poff + plen == off {
                self.remove_free(poff, plen);
                start = poff;
                total += plen;
            }
        }
        if let Some(&nlen) = self.by_offset.get(&(off + len)) {
            self.remove_free(off + len, nlen);
            total += nlen;
        }
        self.insert_free(start, total);
        self.used = self.used.saturating_sub(len);
    }

    /// Number of disjoint free ranges (fragmentation indicator).
    pub fn free_ranges(&self) -> usize {
        self.by_offset.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basic() {
        let mut a = SegmentAllocator::new(16 * ALIGN);
        let x = a.alloc(1).unwrap();
        let y = a.alloc(ALIGN + 1).unwrap();
        assert_eq!(x % ALIGN, 0);
        assert_eq!(y % ALIGN, 0);
        assert_eq!(a.used(), 3 * ALIGN);
        assert!(a.alloc(14 * ALIGN).is_none());
        a.free(x, 1);
        a.free(y, ALIGN + 1);
        assert_eq!(a.used(), 0);
        assert_eq!(a.free_ranges(), 1);
        assert!(a.reserve(4 * ALIGN, ALIGN));
        assert!(!a.reserve(4 * ALIGN, 1));
        assert!(!a.reserve(15 * ALIGN, 2 * ALIGN));
        assert_eq!(a.largest_free(), 11 * ALIGN);
    }

    #[test]
    fn sizes_near_the_top_of_u64_do_not_wrap() {
        // 2^64-1 and 2^64-4095 used to round up to 0.
        assert_eq!(checked_align_up(u64::MAX), None);
        assert_eq!(checked_align_up(u64::MAX - 4094), None);
        assert_eq!(checked_align_up(u64::MAX - 4095), Some(u64::MAX - 4095));
        assert_eq!(checked_align_up(0), Some(0));
        let mut a = SegmentAllocator::new(16 * ALIGN);
        for size in [u64::MAX, u64::MAX - 4094, u64::MAX - 4095, u64::MAX - 8190, 17 * ALIGN] {
            assert_eq!(a.alloc(size), None, "size {size}");
        }
        assert_eq!(a.used(), 0, "nothing allocated by refused sizes");
        assert_eq!(a.alloc(1), Some(0), "offset 0 still free");
        for (off, size) in [
            (0, u64::MAX),
            (ALIGN, u64::MAX - 4095),
            (u64::MAX - 4095, ALIGN),
            (15 * ALIGN, 2 * ALIGN),
        ] {
            assert!(!a.reserve(off, size), "reserve {off}+{size}");
        }
        assert_eq!(a.used(), ALIGN);
        assert_eq!(a.free_ranges(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(u64),
        Free(usize),
        Reserve(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..20_000).prop_map(Op::Alloc),
            any::<usize>().prop_map(Op::Free),
            (0u64..64, 1u64..20_000).prop_map(|(o, s)| Op::Reserve(o * ALIGN, s)),
        ]
    }

    proptest! {
        /// Against a model of live intervals: no overlap, in bounds, exact
        /// accounting, and everything merges back into one range at the end.
        #[test]
        fn matches_interval_model(ops in proptest::collection::vec(op(), 1..300)) {
            let cap = 64 * ALIGN;
            let mut a = SegmentAllocator::new(cap);
            let mut live: Vec<(u64, u64)> = Vec::new();
            let overlaps = |live: &[(u64, u64)], off: u64, size: u64| {
                let end = off + align_up(size);
                live.iter().any(|&(o, s)| off < o + align_up(s) && o < end)
            };
            for op in ops {
                match op {
                    Op::Alloc(size) => {
                        if let Some(off) = a.alloc(size) {
                            prop_assert!(off + align_up(size) <= cap);
                            prop_assert!(!overlaps(&live, off, size));
                            live.push((off, size));
                        } else {
                            prop_assert!(a.largest_free() < align_up(size));
                        }
                    }
                    Op::Free(i) => {
                        if !live.is_empty() {
                            let (off, size) = live.swap_remove(i % live.len());
                            a.free(off, size);
                        }
                    }
                    Op::Reserve(off, size) => {
                        let ok = off + align_up(size) <= cap && !overlaps(&live, off, size);
                        prop_assert_eq!(a.reserve(off, size), ok);
                        if ok { live.push((off, size)); }
                    }
                }
                let used: u64 = live.iter().map(|&(_, s)| align_up(s)).sum();
                prop_assert_eq!(a.used(), used);
            }
            for (off, size) in live.drain(..) {
                a.free(off, size);
            }
            prop_assert_eq!(a.used(), 0);
            prop_assert_eq!(a.free_ranges(), 1);
            prop_assert_eq!(a.largest_free(), cap);
        }
    }
}
