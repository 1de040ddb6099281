//! The one copy of the data path: moving bytes between caller buffers and
//! segments.
//!
//! Which instruction sequence copies fastest depends on the CPU, and the
//! differences are large: on the Zen 5 EPYC of docs/benchmarks.md `rep movsb`
//! runs at 30-37 GB/s against 25-30 for the AVX2 loop and glibc's `memcpy`;
//! on the Zen 4 EPYC of run U it is as fast except when the destination is a
//! few bytes ahead of the source modulo a page, where it drops to 3-9 GB/s
//! (such copies always take the AVX2 loop, see [`movsb_falls_off`]; the
//! 2 GB/s an earlier Zen 3 machine showed out of a memfd was likely the
//! same case). So the
//! method for copies through the cache is measured once per process
//! ([`method`]: a few copies out of a small shared mapping at several
//! alignments, the faster method kept), and
//! `MMC_COPY_METHOD=movsb|avx2|memcpy` overrides it. Copies that bypass the
//! cache (a put's write into a segment, where nobody reads the bytes back
//! soon) always use AVX2 non-temporal stores, the fastest on both CPUs.

use std::sync::atomic::{AtomicU8, Ordering};

/// Copies this large or larger take the measured method or the vector path;
/// smaller ones use `memcpy`, except [`SHORT_AHEAD_MIN`] ones.
pub const VECTOR_MIN: usize = 16 << 10;
/// Copies of this size up to [`VECTOR_MIN`] whose destination is a few
/// bytes ahead of the source modulo a page ([`movsb_falls_off`]) take the
/// AVX2 loop instead of `memcpy`: glibc's `memcpy` uses `rep movsb` for
/// them and falls off the same way. On the Zen 4 machine of
/// docs/benchmarks.md 32 copies of 4 KiB from page-aligned sources took
/// 7.4 us into a destination 16 bytes past a page (what `malloc` and
/// Python's `ctypes` buffers give) against 2.4 us page-aligned; the AVX2
/// loop took 3.4 us. Below 4 KiB `memcpy` was as fast or faster.
pub const SHORT_AHEAD_MIN: usize = 4 << 10;
/// Copies this large or larger bypass the cache on the destination side
/// when the cache-through method is the AVX2 loop (`rep movsb` needs no
/// such switch: it is faster through the cache at every size measured).
pub const STREAM_MIN: usize = 4 << 20;
/// Objects this large or larger are written into a segment with stores
/// that bypass the cache: the writer does not read them back, and on the
/// machine of docs/benchmarks.md such a copy into a large working set runs
/// at 34-40 GB/s against 26-30 GB/s through the cache.
pub const SEGMENT_STREAM_MIN: usize = 256 << 10;

/// How copies of [`VECTOR_MIN`] bytes or more that go through the cache are
/// made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `rep movsb` (x86-64 only).
    RepMovsb,
    /// An AVX2 load/store loop (x86-64 with AVX2 only).
    Avx2,
    /// `std::ptr::copy_nonoverlapping` (glibc `memcpy`).
    Memcpy,
}

impl Method {
    /// The name `MMC_COPY_METHOD` takes and logs print.
    pub fn name(self) -> &'static str {
        match self {
            Method::RepMovsb => "movsb",
            Method::Avx2 => "avx2",
            Method::Memcpy => "memcpy",
        }
    }

    fn from_code(c: u8) -> Option<Method> {
        match c {
            1 => Some(Method::RepMovsb),
            2 => Some(Method::Avx2),
            3 => Some(Method::Memcpy),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Method::RepMovsb => 1,
            Method::Avx2 => 2,
            Method::Memcpy => 3,
        }
    }
}

static METHOD: AtomicU8 = AtomicU8::new(0);

/// The cache-through copy method of this process: `MMC_COPY_METHOD` if set
/// (to a method this CPU has), else measured on the first call (about a
/// millisecond; a LocalService calls this when it starts so that no put or
/// get pays for it).
pub fn method() -> Method {
    if let Some(m) = Method::from_code(METHOD.load(Ordering::Relaxed)) {
        return m;
    }
    let m = chosen();
    METHOD.store(m.code(), Ordering::Relaxed);
    m
}

fn chosen() -> Method {
    let available = available();
    if let Ok(v) = std::env::var("MMC_COPY_METHOD") {
        match available.iter().find(|m| m.name() == v) {
            Some(&m) => return m,
            None => tracing::warn!(
                "MMC_COPY_METHOD={v:?} is not one of the methods this CPU has ({}); measuring instead",
                available.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    if available.len() == 1 {
        return available[0];
    }
    match calibrate::fastest(&available) {
        Ok((m, report)) => {
            tracing::info!("copy method {} ({report})", m.name());
            m
        }
        Err(e) => {
            tracing::warn!("copy method not measured ({e}); using avx2");
            Method::Avx2
        }
    }
}

fn available() -> Vec<Method> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            return vec![Method::RepMovsb, Method::Avx2];
        }
    }
    vec![Method::Memcpy]
}

/// Copies `len` bytes from `src` to `dst` through the cache with the
/// measured [`method`] (the AVX2 method bypasses the cache from
/// [`STREAM_MIN`]).
///
/// # Safety
/// Same contract as `std::ptr::copy_nonoverlapping`.
#[inline]
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract is copy_with's.
    unsafe { copy_with(dst, src, len, false) }
}

/// [`copy`], or with AVX2 non-temporal stores when `stream` (copies below
/// [`VECTOR_MIN`] always go through the cache).
///
/// # Safety
/// Same contract as `std::ptr::copy_nonoverlapping`.
#[inline]
pub unsafe fn copy_with(dst: *mut u8, src: *const u8, len: usize, stream: bool) {
    if len < VECTOR_MIN {
        if len >= SHORT_AHEAD_MIN && movsb_falls_off(dst, src) && method() != Method::Memcpy {
            // SAFETY: the caller's contract; `len >= SHORT_AHEAD_MIN >= 128`;
            // a method other than Memcpy is only chosen where AVX2 exists.
            return unsafe { copy_by(Method::Avx2, dst, src, len, false) };
        }
        // SAFETY: the caller's contract is copy_nonoverlapping's.
        return unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    }
    let m = method();
    if stream && m != Method::Memcpy {
        // SAFETY: the caller's contract; `len >= VECTOR_MIN >= 128`; a
        // method other than Memcpy is only chosen where AVX2 exists.
        return unsafe { copy_by(Method::Avx2, dst, src, len, true) };
    }
    // SAFETY: the caller's contract; `len >= VECTOR_MIN`; `m` is available.
    unsafe { copy_through(m, dst, src, len) }
}

/// `rep movsb` falls off when the destination is a few bytes ahead of the
/// source modulo a page: on the AMD EPYC (Zen 4) of docs/benchmarks.md a
/// copy out of a segment runs at 3 GB/s with `dst - src` of 1-15 bytes
/// (mod 4096) and at 9 GB/s with 16-31, against 18-25 GB/s otherwise. A
/// segment's objects start on page boundaries, so a destination buffer 16
/// bytes past a page (what `malloc` returns for a large block) hits it.
/// Such copies take the AVX2 loop instead. (glibc's `memcpy` does not
/// avoid this case: it only skips `rep movsb` for distances under 64 bytes
/// in absolute terms, and ran at 7-8 GB/s here with these alignments.)
const MOVSB_SHORT_DISTANCE: usize = 64;

#[inline]
fn movsb_falls_off(dst: *mut u8, src: *const u8) -> bool {
    let d = (dst as usize).wrapping_sub(src as usize) & 4095;
    d != 0 && d < MOVSB_SHORT_DISTANCE
}

/// A copy through the cache with method `m` (one of [`available`]'s),
/// except that `rep movsb` hands [`movsb_falls_off`] cases to the AVX2 loop.
///
/// # Safety
/// Same contract as `std::ptr::copy_nonoverlapping`; `len >= VECTOR_MIN`.
#[inline]
unsafe fn copy_through(m: Method, dst: *mut u8, src: *const u8, len: usize) {
    let m = if m == Method::RepMovsb && movsb_falls_off(dst, src) {
        Method::Avx2
    } else {
        m
    };
    // SAFETY: the caller's contract; `len >= VECTOR_MIN >= 128`; Avx2 is
    // only substituted for RepMovsb, which is offered only with AVX2.
    unsafe { copy_by(m, dst, src, len, m == Method::Avx2 && len >= STREAM_MIN) }
}

/// One copy with method `m`, which must be one of [`available`]'s.
///
/// # Safety
/// Same contract as `std::ptr::copy_nonoverlapping`; `len >= 128` for
/// [`Method::Avx2`].
#[inline]
unsafe fn copy_by(m: Method, dst: *mut u8, src: *const u8, len: usize, stream: bool) {
    match m {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's copy_nonoverlapping contract is movsb's.
        Method::RepMovsb => unsafe { movsb(dst, src, len) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2 is one of `available`'s only when the CPU has AVX2;
        // the caller's contract and `len >= 128`.
        Method::Avx2 => unsafe { avx2::copy(dst, src, len, stream) },
        _ => {
            let _ = stream;
            // SAFETY: the caller's contract.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
        }
    }
}

/// `rep movsb` of `len` bytes.
///
/// # Safety
/// Same contract as `std::ptr::copy_nonoverlapping`.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: copies exactly `len` bytes forward (the direction flag is
    // clear per the ABI) from `src` to `dst`, which the caller guarantees
    // valid and disjoint; touches no stack and no flags.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Measuring the methods against each other.
mod calibrate {
    use super::{copy_through, Method};
    use std::time::{Duration, Instant};

    /// Piece sizes and (source, destination) misalignments of one round:
    /// the layered block's 16 KiB and 128 KiB pieces, a 512 KiB value, and
    /// alignments where some CPUs' `rep movsb` is known to fall off.
    const PIECES: [(usize, usize, usize); 8] = [
        (16 << 10, 0, 0),
        (16 << 10, 0, 16),
        (16 << 10, 1, 0),
        (128 << 10, 0, 0),
        (128 << 10, 16, 0),
        (128 << 10, 0, 2064),
        (512 << 10, 0, 0),
        (512 << 10, 100, 200),
    ];
    const ROUNDS: usize = 7;
    const SPAN: usize = 1 << 20;

    /// The fastest of `methods` copying out of a shared memfd mapping (what
    /// a segment is) into private memory, best of [`ROUNDS`] rounds each
    /// (rounds alternate between the methods so that a disturbance hits
    /// all of them), and a line saying what was measured.
    pub fn fastest(methods: &[Method]) -> crate::Result<(Method, String)> {
        let seg = crate::segment::Segment::create(SPAN + 4096, true)?;
        let src = seg.base();
        // SAFETY: the segment is SPAN + 4096 bytes, mapped and ours alone.
        unsafe { std::ptr::write_bytes(src, 0x5a, SPAN + 4096) };
        let mut dst = vec![0u8; SPAN + 4096];
        let mut best = vec![Duration::MAX; methods.len()];
        for _ in 0..ROUNDS {
            for (i, &m) in methods.iter().enumerate() {
                let t = Instant::now();
                for &(len, so, dof) in &PIECES {
                    // SAFETY: offsets + len stay within both buffers
                    // (len <= 512 KiB, offsets < 4 KiB); they do not overlap.
                    unsafe { copy_through(m, dst.as_mut_ptr().add(dof), src.add(so) as *const u8, len) };
                }
                std::hint::black_box(&mut dst);
                best[i] = best[i].min(t.elapsed());
            }
        }
        let bytes: usize = PIECES.iter().map(|p| p.0).sum();
        let gbps = |d: Duration| bytes as f64 / d.as_secs_f64().max(1e-9) / 1e9;
        let (i, _) = best
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| **d)
            .expect("at least one method");
        let report = methods
            .iter()
            .zip(&best)
            .map(|(m, d)| format!("{} {:.1} GB/s", m.name(), gbps(*d)))
            .collect::<Vec<_>>()
            .join(", ");
        Ok((methods[i], report))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 available; `copy_nonoverlapping` contract; `len >= 128`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize, stream: bool) {
        // SAFETY: AVX2 is available (the caller's contract, and this
        // function enables it); every load reads 32 bytes at most `len`
        // bytes from `src` and every store writes 32 bytes at most `len`
        // bytes from `dst` (the head vector covers [0, 32) <= len, the loop
        // runs while 128 bytes remain, the tail copies the rest), inside the
        // ranges the caller guarantees; the aligned stores land on `d`,
        // which the head brought to a 32-byte boundary.
        unsafe {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    type CopyFn = Box<dyn Fn(*mut u8, *const u8)>;

    #[test]
    fn copies_exactly_at_every_alignment_and_size() {
        let src: Vec<u8> = (0..(9 << 20) + 77).map(|i| (i * 7 + i / 251) as u8).collect();
        for &len in &[
            0usize,
            1,
            100,
            SHORT_AHEAD_MIN,
            SHORT_AHEAD_MIN + 17,
            VECTOR_MIN - 1,
            VECTOR_MIN,
            VECTOR_MIN + 33,
            1 << 20,
            STREAM_MIN + 129,
            9 << 20,
        ] {
            for &(so, dof) in &[(0usize, 0usize), (1, 3), (31, 0), (0, 17), (13, 29)] {
                // The measured method, every method this CPU has, streaming
                // or not (each for lengths it is used at).
                // Each way is called below with `len` bytes valid at both
                // pointers, in two disjoint vectors.
                let mut ways: Vec<(String, CopyFn)> = vec![
                    // SAFETY: see above.
                    ("copy".into(), Box::new(move |d, s| unsafe { copy(d, s, len) })),
                    (
                        "copy_with stream".into(),
                        // SAFETY: see above.
                        Box::new(move |d, s| unsafe { copy_with(d, s, len, true) }),
                    ),
                ];
                if len >= VECTOR_MIN {
                    for m in available() {
                        for stream in [false, true] {
                            if stream && m != Method::Avx2 {
                                continue;
                            }
                            ways.push((
                                format!("{} stream {stream}", m.name()),
                                // SAFETY: see above; `m` is available and
                                // len >= VECTOR_MIN >= 128.
                                Box::new(move |d, s| unsafe { copy_by(m, d, s, len, stream) }),
                            ));
                        }
                    }
                }
                for (way, f) in &ways {
                    let mut dst = vec![0xAAu8; len + 64];
                    // dst has len + 64 bytes and dof < 64; src has 9 MiB + 77
                    // bytes, so + so + len stays inside for every len above.
                    f(dst.as_mut_ptr().wrapping_add(dof), src.as_ptr().wrapping_add(so));
                    assert!(dst[..dof].iter().all(|&b| b == 0xAA), "{way}: no write before dst");
                    assert_eq!(
                        &dst[dof..dof + len],
                        &src[so..so + len],
                        "{way}: len {len} src+{so} dst+{dof}"
                    );
                    assert!(dst[dof + len..].iter().all(|&b| b == 0xAA), "{way}: no write past dst");
                }
            }
        }
    }

    #[test]
    fn movsb_is_avoided_only_a_few_bytes_ahead_of_its_source_modulo_a_page() {
        let src = 0x7f00_0000_0000usize as *const u8;
        let at = |d: usize| src.wrapping_add(d) as *mut u8;
        for d in [1, 15, 16, 31, 63, 4096 + 16, (1 << 30) + 8] {
            assert!(movsb_falls_off(at(d), src), "dst - src = {d}");
        }
        for d in [0, 64, 2064, 4095, 4096, 4096 + 64] {
            assert!(!movsb_falls_off(at(d), src), "dst - src = {d}");
        }
        // Behind the source (a backward distance) is not the slow case.
        assert!(!movsb_falls_off(src.wrapping_sub(16) as *mut u8, src));
    }

    #[test]
    fn copies_a_few_bytes_ahead_modulo_a_page_are_exact() {
        // A page-aligned source and a destination 1-63 bytes past a page,
        // as a get out of a segment into a malloc'd buffer: the case
        // `rep movsb` hands to the AVX2 loop.
        let mut src = vec![0u8; (1 << 20) + 8192];
        let s0 = (4096 - src.as_ptr() as usize % 4096) % 4096;
        for (i, b) in src.iter_mut().enumerate() {
            *b = (i * 13 + i / 4099) as u8;
        }
        for (ahead, len) in [(1usize, 1 << 20), (16, 1 << 20), (33, 1 << 20), (63, 1 << 20), (16, 4096), (48, 12345)] {
            let mut dst = vec![0u8; len + 8192];
            let d0 = (4096 + ahead - dst.as_ptr() as usize % 4096) % 4096;
            let (sp, dp) = (src.as_ptr().wrapping_add(s0), dst.as_mut_ptr().wrapping_add(d0));
            assert!(movsb_falls_off(dp, sp));
            // SAFETY: s0, d0 < 4096 and both vectors hold len + 8192 bytes;
            // they are distinct allocations.
            unsafe { copy(dp, sp, len) };
            assert_eq!(&dst[d0..d0 + len], &src[s0..s0 + len], "{ahead} bytes ahead");
        }
    }

    #[test]
    fn calibration_picks_a_method_this_cpu_has() {
        let methods = available();
        let (m, report) = calibrate::fastest(&methods).unwrap();
        assert!(methods.contains(&m), "{m:?} not in {methods:?}");
        for m in &methods {
            assert!(report.contains(m.name()), "report {report:?} names {}", m.name());
        }
        assert!(methods.contains(&method()));
    }
}
