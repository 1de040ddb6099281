//! The memory the loops read values from and write them into: fill
//! patterns and stamps, buffers at a set distance past a page, and the
//! paged KV caches of the layered block.

use super::{BLOCKS, BLOCK_BYTES, KPAGE, LAYERS, VPAGE};

/// A recognisable, non-zero pattern (also touches every page).
pub fn fill(buf: &mut [u8], seed: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
}

/// `n` bytes starting a set distance past a page boundary, filled with
/// [`fill`]'s pattern: [`OffsetBuf::malloc_like`] where glibc's `malloc`
/// puts a block of 128 KiB or more (numpy's arrays included), so the
/// bench's get destinations sit where an application's would, against
/// objects that start on a page boundary; [`OffsetBuf::page_aligned`] for
/// the memcpy baselines, at the distance every copy method runs fastest.
pub struct OffsetBuf {
    raw: Vec<u8>,
    off: usize,
    n: usize,
}

impl OffsetBuf {
    pub fn malloc_like(n: usize, seed: u8) -> OffsetBuf {
        Self::at(n, seed, 16)
    }

    pub fn page_aligned(n: usize, seed: u8) -> OffsetBuf {
        Self::at(n, seed, 0)
    }

    fn at(n: usize, seed: u8, past_page: usize) -> OffsetBuf {
        let raw = vec![0u8; n + 4096 + past_page];
        let off = (4096 + past_page - raw.as_ptr() as usize % 4096) % 4096;
        let mut b = OffsetBuf { raw, off, n };
        fill(&mut b, seed);
        b
    }
}

impl std::ops::Deref for OffsetBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.n]
    }
}

impl std::ops::DerefMut for OffsetBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.n]
    }
}

pub fn stamp(buf: &mut [u8], n: u64) {
    let k = buf.len().min(8);
    buf[..k].copy_from_slice(&n.to_le_bytes()[..k]);
}

/// The memory a command reads from and writes into: one value-sized buffer
/// each way, or two paged KV caches of [`BLOCKS`] blocks.
pub(super) struct Bufs {
    pub(super) layers: bool,
    pub(super) size: usize,
    pub(super) src: Vec<u8>,
    dst: OffsetBuf,
}

impl Bufs {
    pub(super) fn new(layers: bool, size: usize, batch: usize) -> Bufs {
        let n = if layers {
            BLOCK_BYTES as usize * BLOCKS
        } else {
            size * batch.max(1)
        };
        let mut src = vec![0u8; n];
        fill(&mut src, 5);
        let dst = OffsetBuf::malloc_like(n, 6);
        Bufs { layers, size, src, dst }
    }

    pub(super) fn value_len(&self) -> usize {
        if self.layers {
            BLOCK_BYTES as usize
        } else {
            self.size
        }
    }

    /// Byte offsets and lengths of the pieces of block `b` in a paged cache
    /// (K pages of all layers first, then the V pages).
    fn layout(b: usize) -> Vec<(usize, usize)> {
        let kregion = LAYERS * BLOCKS * KPAGE;
        let mut v = Vec::with_capacity(2 * LAYERS);
        v.extend((0..LAYERS).map(|l| ((l * BLOCKS + b) * KPAGE, KPAGE)));
        v.extend((0..LAYERS).map(|l| (kregion + (l * BLOCKS + b) * VPAGE, VPAGE)));
        v
    }

    /// The value source for rotation index `i`.
    pub(super) fn src_pieces(&self, i: usize) -> Vec<&[u8]> {
        if self.layers {
            Self::layout(i % BLOCKS)
                .into_iter()
                .map(|(o, l)| &self.src[o..o + l])
                .collect()
        } else {
            vec![&self.src[..self.size]]
        }
    }

    pub(super) fn dst_pieces(&mut self, i: usize) -> Vec<&mut [u8]> {
        if self.layers {
            let mut out = Vec::with_capacity(2 * LAYERS);
            let mut rest: &mut [u8] = &mut self.dst;
            let mut at = 0;
            // The layout is increasing in offset, so it can be cut in order.
            for (o, l) in Self::layout(i % BLOCKS) {
                let r = std::mem::take(&mut rest);
                let (_, tail) = r.split_at_mut(o - at);
                let (piece, tail) = tail.split_at_mut(l);
                out.push(piece);
                rest = tail;
                at = o + l;
            }
            out
        } else {
            vec![&mut self.dst[..self.size]]
        }
    }

    /// Stamps the first bytes of the value source with `n`.
    pub(super) fn stamp_src(&mut self, i: usize, n: u64) {
        let (o, _) = if self.layers {
            Self::layout(i % BLOCKS)[0]
        } else {
            (0, 0)
        };
        stamp(&mut self.src[o..], n);
    }

    /// Whether the destination of rotation `i` holds the source of rotation
    /// `i` stamped with `n`.
    pub(super) fn check(&mut self, i: usize, n: u64) -> bool {
        self.stamp_src(i, n);
        let want: Vec<Vec<u8>> = self.src_pieces(i).into_iter().map(|p| p.to_vec()).collect();
        let got = self.dst_pieces(i);
        want.iter().zip(got.iter()).all(|(a, b)| a.as_slice() == &b[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_pieces_do_not_touch() {
        let l = Bufs::layout(1);
        assert_eq!(l.len(), 2 * LAYERS);
        assert_eq!(l.iter().map(|p| p.1 as u64).sum::<u64>(), BLOCK_BYTES);
        for w in l.windows(2) {
            assert!(w[0].0 + w[0].1 < w[1].0, "pieces are apart and in order");
        }
    }

    #[test]
    fn malloc_like_buffers_start_16_bytes_past_a_page() {
        for n in [1usize, 4096, 1 << 20] {
            let b = OffsetBuf::malloc_like(n, 3);
            assert_eq!(b.len(), n);
            assert_eq!(b.as_ptr() as usize % 4096, 16);
            assert_eq!(b[0], 3);
        }
    }
}
