//! The memcpy baselines: copy bandwidth between cache-hot buffers and
//! into / out of a region the size of the working set, with glibc's memcpy
//! and with the data path's own copy routine.

use super::{progress, slots_for, tag};
use crate::measure::{Budget, Measured, Recorder};
use crate::report::{fmt_size, Row};
use crate::rows::Kind;
use crate::worker::{fill, OffsetBuf};
use std::hint::black_box;

fn copy_loop(budget: Budget, size: usize, addrs: &mut impl FnMut(usize) -> (*const u8, *mut u8)) -> Measured {
    let mut rec = Recorder::start(budget, None);
    let mut i = 0;
    while rec.more() {
        let (s, d) = addrs(i);
        // SAFETY: `addrs` yields ranges of `size` bytes inside distinct live allocations.
        rec.time(|| unsafe { std::ptr::copy_nonoverlapping(black_box(s), black_box(d), size) });
        black_box(d);
        i += 1;
    }
    rec.finish()
}

fn copy_measure(budget: Budget, size: usize, mut addrs: impl FnMut(usize) -> (*const u8, *mut u8)) -> Measured {
    copy_loop(budget.warmup(), size, &mut addrs);
    copy_loop(budget, size, &mut addrs)
}

fn store_copy_loop(budget: Budget, size: usize, addrs: &mut impl FnMut(usize) -> (*const u8, *mut u8)) -> Measured {
    let mut rec = Recorder::start(budget, None);
    let mut i = 0;
    while rec.more() {
        let (s, d) = addrs(i);
        // SAFETY: as in `copy_loop`.
        rec.time(|| unsafe { mmc_local::copy::copy(black_box(d), black_box(s), size) });
        black_box(d);
        i += 1;
    }
    rec.finish()
}

/// Like [`copy_measure`] with the data path's copy routine instead of memcpy.
fn store_copy_measure(budget: Budget, size: usize, mut addrs: impl FnMut(usize) -> (*const u8, *mut u8)) -> Measured {
    store_copy_loop(budget.warmup(), size, &mut addrs);
    store_copy_loop(budget, size, &mut addrs)
}

/// Copy bandwidth at each size: between two cache-hot buffers, and (what
/// a put or a get of the shm workload does) between one hot buffer and
/// slots rotating over the region the shm workload's objects of that size
/// occupy (`slots_for(ws, size)` objects).
pub fn memcpy(section: &'static str, sizes: &[u64], budget: Budget, ws: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut region = vec![0u8; ws as usize];
    fill(&mut region, 1);
    let base = region.as_mut_ptr();
    for &size in sizes {
        let t = tag(size);
        let n = size as usize;
        let slots = slots_for(ws, size);
        let mut src = vec![0u8; n];
        fill(&mut src, 2);
        let mut dst = OffsetBuf::malloc_like(n, 3);
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
        progress(&format!("memcpy {t}"));
        let m = copy_measure(budget, n, |_| (sp, dp));
        rows.push(
            Row::new(
                Kind::MemcpyHot.size(size),
                section,
                "memcpy hot: buffer -> buffer",
                size,
                1,
                m,
            )
            .group(size),
        );
        let m = copy_measure(budget, n, |i| (sp, base.wrapping_add((i % slots) * n)));
        rows.push(
            Row::new(
                Kind::MemcpyWsWrite.size(size),
                section,
                format!("memcpy ws-write: buf -> {}", fmt_size(slots as u64 * size)),
                size,
                1,
                m,
            )
            .group(size),
        );
        let m = copy_measure(budget, n, |i| (base.wrapping_add((i % slots) * n) as *const u8, dp));
        rows.push(
            Row::new(
                Kind::MemcpyWsRead.size(size),
                section,
                format!("memcpy ws-read: {} -> buf", fmt_size(slots as u64 * size)),
                size,
                1,
                m,
            )
            .group(size),
        );
        if section == "shm" && n >= mmc_local::copy::VECTOR_MIN {
            // The data path's own copy routine (AVX2, non-temporal stores
            // from 4 MiB): the ceiling of a put or get once its control path
            // costs nothing.
            let m = store_copy_measure(budget, n, |i| (sp, base.wrapping_add((i % slots) * n)));
            rows.push(
                Row::new(
                    Kind::MemcpyMmcWrite.size(size),
                    section,
                    "mmc copy ws-write (copy.rs)",
                    size,
                    1,
                    m,
                )
                .group(size),
            );
            let m = store_copy_measure(budget, n, |i| (base.wrapping_add((i % slots) * n) as *const u8, dp));
            rows.push(
                Row::new(
                    Kind::MemcpyMmcRead.size(size),
                    section,
                    "mmc copy ws-read (copy.rs)",
                    size,
                    1,
                    m,
                )
                .group(size),
            );
        }
    }
    drop(region);
    rows
}
