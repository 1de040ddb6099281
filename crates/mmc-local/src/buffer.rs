//! Raw buffer descriptors for the data paths.
//!
//! Callers hand in their own memory (slices, or raw pointers from Python,
//! C and C++); the data paths copy straight between that memory and a
//! segment or a socket, never through an intermediate buffer. A [`Piece`] is
//! an address and a length; a value made of several layers is a list of them.

use mmc_wire::{Error, Result};

/// A caller buffer: address and length. Sendable because the caller
/// guarantees the memory outlives the operation (the safe API borrows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub addr: usize,
    pub len: usize,
}

impl Piece {
    pub fn of(s: &[u8]) -> Self {
        Piece {
            addr: s.as_ptr() as usize,
            len: s.len(),
        }
    }

    pub fn of_mut(s: &mut [u8]) -> Self {
        Piece {
            addr: s.as_mut_ptr() as usize,
            len: s.len(),
        }
    }

    pub fn ptr(&self) -> *mut u8 {
        self.addr as *mut u8
    }
}

/// Total length of a list of pieces; rejects null pointers and zero lengths.
pub fn total_len(pieces: &[Piece]) -> Result<u64> {
    if pieces.is_empty() {
        return Err(Error::invalid("no buffers given"));
    }
    let mut total = 0u64;
    for (i, p) in pieces.iter().enumerate() {
        if p.addr == 0 {
            return Err(Error::invalid(format!("buffer {i} is a null pointer")));
        }
        if p.len == 0 {
            return Err(Error::invalid(format!("buffer {i} has size 0")));
        }
        total += p.len as u64;
    }
    Ok(total)
}

/// The parts of `pieces` (seen as one contiguous value) that cover
/// `[start, start + len)`.
pub fn sub_pieces(pieces: &[Piece], start: u64, len: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    let end = start + len;
    for p in pieces {
        let (ps, pe) = (pos, pos + p.len as u64);
        pos = pe;
        if pe <= start {
            continue;
        }
        if ps >= end {
            break;
        }
        let s = start.max(ps);
        let e = end.min(pe);
        out.push(Piece {
            addr: p.addr + (s - ps) as usize,
            len: (e - s) as usize,
        });
    }
    out
}

/// Copies `pieces` (a value) into contiguous memory at `dst`, a segment:
/// a value of [`SEGMENT_STREAM_MIN`](crate::copy::SEGMENT_STREAM_MIN) or
/// more bypasses the cache (the writer does not read it back).
///
/// # Safety
/// `dst` must be valid for writes of the pieces' total length, every piece
/// valid for reads, and the ranges must not overlap.
pub unsafe fn gather(pieces: &[Piece], dst: *mut u8) {
    let total: usize = pieces.iter().map(|p| p.len).sum();
    let stream = total >= crate::copy::SEGMENT_STREAM_MIN;
    let mut off = 0;
    for p in pieces {
        // SAFETY: `off + p.len` is at most the total, so the destination
        // range lies in `dst`'s; the piece is valid for reads; the caller
        // guarantees no overlap.
        unsafe { crate::copy::copy_with(dst.add(off), p.ptr() as *const u8, p.len, stream) };
        off += p.len;
    }
}

/// Copies contiguous memory at `src` out into `pieces`.
///
/// # Safety
/// `src` must be valid for reads of the pieces' total length, every piece
/// valid for writes, and the ranges must not overlap.
pub unsafe fn scatter(src: *const u8, pieces: &[Piece]) {
    let mut off = 0;
    for p in pieces {
        // SAFETY: `off + p.len` is at most the total, so the source range
        // lies in `src`'s; the piece is valid for writes; no overlap.
        unsafe { crate::copy::copy(p.ptr(), src.add(off), p.len) };
        off += p.len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_pieces_cover_ranges() {
        let ps = [
            Piece { addr: 100, len: 10 },
            Piece { addr: 200, len: 5 },
            Piece { addr: 300, len: 10 },
        ];
        assert_eq!(sub_pieces(&ps, 0, 25), ps.to_vec());
        assert_eq!(
            sub_pieces(&ps, 8, 10),
            vec![
                Piece { addr: 108, len: 2 },
                Piece { addr: 200, len: 5 },
                Piece { addr: 300, len: 3 }
            ]
        );
        assert_eq!(sub_pieces(&ps, 15, 10), vec![Piece { addr: 300, len: 10 }]);
        assert!(total_len(&[Piece { addr: 0, len: 1 }]).is_err());
        assert!(total_len(&[]).is_err());
        assert_eq!(total_len(&ps).unwrap(), 25);
    }

    #[test]
    fn gather_scatter_round_trip() {
        let a = [1u8, 2, 3];
        let b = [4u8, 5];
        let mut flat = [0u8; 5];
        // SAFETY: `flat` holds the 5 bytes of the two pieces; no overlap.
        unsafe { gather(&[Piece::of(&a), Piece::of(&b)], flat.as_mut_ptr()) };
        assert_eq!(flat, [1, 2, 3, 4, 5]);
        let mut x = [0u8; 2];
        let mut y = [0u8; 3];
        // SAFETY: `flat` holds the 5 bytes the two pieces take; no overlap.
        unsafe { scatter(flat.as_ptr(), &[Piece::of_mut(&mut x), Piece::of_mut(&mut y)]) };
        assert_eq!((x, y), ([1, 2], [3, 4, 5]));
    }
}
