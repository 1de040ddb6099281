//! The one copy of the data path: moving bytes between caller buffers and
//! segments.
//!
//! glibc's `memcpy` uses `rep movsb` for mid-size copies (2 KiB up to a large
//! fraction of the last-level cache). On some x86 CPUs (measured on AMD EPYC
//! with glibc 2.36) that runs at about 2 GB/s when the source is a shared
//! memfd mapping, a third of what plain vector loads and stores reach. Copies
//! of at least [`VECTOR_MIN`] bytes therefore use an AVX2 loop (non-temporal
//! stores for copies too large to stay in cache); smaller ones, and CPUs
//! without AVX2, use `memcpy`.

/// Copies this large or larger take the vector path.
pub const VECTOR_MIN: usize = 16 << 10;
/// Copies this large or larger bypass the cache on the destination side.
pub const STREAM_MIN: usize = 4 << 20;
/// Objects this large or larger are written into a segment with stores
/// that bypass the cache: the writer does not read them back, and on the
/// machine of docs/benchmarks.md such a copy into a large working set runs
/// at 20-22 GB/s against 11-12 GB/s through the cache.
pub const SEGMENT_STREAM_MIN: usize = 256 << 10;

/// Copies `len` bytes from `src` to `dst`.
///
/// # Safety
/// Same contract as `std::ptr::copy_nonoverlapping`.
#[inline]
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    copy_with(dst, src, len, len >= STREAM_MIN)
}

/// [`copy`], bypassing the cache on the destination side when `stream`
/// (copies below [`VECTOR_MIN`] always go through the cache).
///
/// # Safety
/// Same contract as `std::ptr::copy_nonoverlapping`.
#[inline]
pub unsafe fn copy_with(dst: *mut u8, src: *const u8, len: usize, stream: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if len >= VECTOR_MIN && has_avx2() {
            return avx2::copy(dst, src, len, stream);
        }
    }
    let _ = stream;
    std::ptr::copy_nonoverlapping(src, dst, len);
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static CACHED: AtomicU8 = AtomicU8::new(0);
    match CACHED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = std::is_x86_feature_detected!("avx2") && std::env::var_os("MMC_PLAIN_MEMCPY").is_none();
            CACHED.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 available; `copy_nonoverlapping` contract; `len >= 128`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize, stream: bool) {
        // Head: bring dst to a 32-byte boundary (one unaligned vector).
        let head = (32 - (dst as usize & 31)) & 31;
        if head > 0 {
            let v = _mm256_loadu_si256(src as *const __m256i);
            _mm256_storeu_si256(dst as *mut __m256i, v);
        }
        let mut d = dst.add(head);
        let mut s = src.add(head);
        let mut n = len - head;
        while n >= 128 {
            let a = _mm256_loadu_si256(s as *const __m256i);
            let b = _mm256_loadu_si256(s.add(32) as *const __m256i);
            let c = _mm256_loadu_si256(s.add(64) as *const __m256i);
            let e = _mm256_loadu_si256(s.add(96) as *const __m256i);
            if stream {
                _mm256_stream_si256(d as *mut __m256i, a);
                _mm256_stream_si256(d.add(32) as *mut __m256i, b);
                _mm256_stream_si256(d.add(64) as *mut __m256i, c);
                _mm256_stream_si256(d.add(96) as *mut __m256i, e);
            } else {
                _mm256_store_si256(d as *mut __m256i, a);
                _mm256_store_si256(d.add(32) as *mut __m256i, b);
                _mm256_store_si256(d.add(64) as *mut __m256i, c);
                _mm256_store_si256(d.add(96) as *mut __m256i, e);
            }
            d = d.add(128);
            s = s.add(128);
            n -= 128;
        }
        if stream {
            _mm_sfence();
        }
        if n > 0 {
            std::ptr::copy_nonoverlapping(s, d, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_exactly_at_every_alignment_and_size() {
        let src: Vec<u8> = (0..(9 << 20) + 77).map(|i| (i * 7 + i / 251) as u8).collect();
        for &len in &[
            0usize,
            1,
            100,
            VECTOR_MIN - 1,
            VECTOR_MIN,
            VECTOR_MIN + 33,
            1 << 20,
            STREAM_MIN + 129,
            9 << 20,
        ] {
            for &(so, dof) in &[(0usize, 0usize), (1, 3), (31, 0), (0, 17), (13, 29)] {
                let mut dst = vec![0xAAu8; len + 64];
                unsafe { copy(dst.as_mut_ptr().add(dof), src.as_ptr().add(so), len) };
                assert!(dst[..dof].iter().all(|&b| b == 0xAA), "no write before dst");
                assert_eq!(&dst[dof..dof + len], &src[so..so + len], "len {len} src+{so} dst+{dof}");
                assert!(dst[dof + len..].iter().all(|&b| b == 0xAA), "no write past dst");
            }
        }
    }
}
