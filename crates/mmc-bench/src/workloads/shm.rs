//! The same-host shm data path: the pre-touch pass, put_from / get_into
//! interleaved with a memcpy into / out of the provider's segment, and
//! put_from through an async-commit client.

use super::interleave::{interleaved, memcpy_step, SLICE};
use super::objects::{put_readable, verify, GetRotating, PutRounds};
use super::{emptied, progress, put_from, slots_for, tag};
use crate::cluster::Cluster;
use crate::measure::{Budget, Measured, Recorder};
use crate::report::{fmt_size, Row};
use crate::rows::{Kind, RowId};
use crate::worker::{fill, OffsetBuf};
use mmc_local::BlockingObjectStore;

/// One pass of puts over 80% of the segment (below the eviction
/// watermarks), then `remove_all`: every page the measurements can be
/// given is then faulted in, in the provider and in this client's mapping.
pub fn pretouch(cluster: &Cluster, c: &BlockingObjectStore, size: u64, notes: &mut Vec<String>) -> Result<Row, String> {
    let pct = cluster.low_watermark.min(80) as u64;
    let n = (cluster.segment * pct / 100 / size).max(1);
    progress(&format!(
        "pre-touching {} of the segment ({n} x {})",
        fmt_size(n * size),
        fmt_size(size)
    ));
    let mut src = vec![0u8; size as usize];
    fill(&mut src, 4);
    let mut rec = Recorder::start(Budget::ops(n), Some(cluster.provider().pid));
    for j in 0..n {
        rec.time(|| put_from(c, &format!("pretouch-{j}"), &src))?;
    }
    let m = rec.finish();
    emptied(cluster, c, notes)?;
    let row = Row::new(Kind::ShmPretouch.one(), "shm", "put_from, first touch", size, 1, m);
    notes.push(format!(
        "pre-touch: one pass of {n} x {} puts ({}, {pct}% of the segment) before any timed shm/tcp/batch \
         measurement, then remove_all; the allocator is best-fit from offset 0, so the measured objects \
         land on pages already faulted in (see flt/op)",
        fmt_size(size),
        fmt_size(n * size)
    ));
    Ok(row)
}

/// Same-host puts and gets through the provider's segment mapped here.
pub fn shm(
    cluster: &Cluster,
    c: &BlockingObjectStore,
    sizes: &[u64],
    budget: Budget,
    ws: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let peer = cluster.provider().pid;
    // The memcpy baselines copy into and out of the very memory the
    // objects occupy (the allocator fills the emptied segment from offset
    // 0): on this virtual machine two regions' bandwidth differs by up to
    // a fifth with where their pages happen to lie.
    let seg = cluster.provider_segment(c)?;
    let mut rows = Vec::new();
    for &size in sizes {
        let t = tag(size);
        let slots = slots_for(ws, size);
        let mut src = vec![0u8; size as usize];
        fill(&mut src, 5);
        let mut dst = OffsetBuf::malloc_like(size as usize, 6);
        let n = size as usize;
        progress(&format!(
            "shm put_from {t} (rounds of {slots} fresh keys), interleaved with memcpy"
        ));
        let (m, base) = put_interleaved(budget, peer, c, &format!("shm-put-{t}"), slots, &src, &seg)?;
        rows.push(paired_base(
            Kind::ShmWsWrite.size(size),
            "memcpy buf -> segment, interleaved",
            size,
            base,
        ));
        rows.push(
            Row::new(Kind::ShmPut.size(size), "shm", "MemCache put_from", size, 1, m)
                .vs("memcpy ws-write (interleaved)", Kind::ShmWsWrite.size(size))
                .vs("mmc copy", Kind::MemcpyMmcWrite.size(size))
                .vs("memcpy hot", Kind::MemcpyHot.size(size))
                .vs("redis", Kind::RedisSet.size(size))
                .vs("mooncake", Kind::MooncakePut.size(size))
                .group(size),
        );
        emptied(cluster, c, notes)?;
        progress(&format!(
            "shm get_into {t} (rotating over {slots} keys), interleaved with memcpy"
        ));
        let keys = put_readable(c, &format!("shm-get-{t}"), slots, &mut src)?;
        verify(c, &keys, &mut src)?;
        let mut bdst = OffsetBuf::page_aligned(n, 7);
        let mut gets = GetRotating {
            c,
            keys: &keys,
            dst: &mut dst,
            i: 0,
        };
        let (m, base) = interleaved(
            budget,
            Some(peer),
            |rec| gets.step(rec),
            memcpy_step(&seg, slots, n, bdst.as_mut_ptr(), false),
        )?;
        rows.push(paired_base(
            Kind::ShmWsRead.size(size),
            "memcpy segment -> buf, interleaved",
            size,
            base,
        ));
        rows.push(
            Row::new(Kind::ShmGet.size(size), "shm", "MemCache get_into", size, 1, m)
                .vs("memcpy ws-read (interleaved)", Kind::ShmWsRead.size(size))
                .vs("mmc copy", Kind::MemcpyMmcRead.size(size))
                .vs("memcpy hot", Kind::MemcpyHot.size(size))
                .vs("redis", Kind::RedisGet.size(size))
                .vs("mooncake", Kind::MooncakeGet.size(size))
                .group(size),
        );
        emptied(cluster, c, notes)?;
    }
    notes.push(format!(
        "shm: each put_from / get_into measurement runs interleaved in {} ms slices with a memcpy of the \
         same size into / out of the provider's segment, mapped here, at the offsets its objects occupy \
         (the same working set, the same pages), to or from a page-aligned buffer (the distance every copy \
         method runs fastest at; get_into's destination starts 16 bytes past a page, where malloc puts a \
         large block); the same-host targets compare with that interleaved memcpy; the cpu% columns of \
         these rows cover both halves",
        SLICE.as_millis()
    ));
    Ok(rows)
}

/// Puts of `src` in rounds (as [`put_rounds`]) interleaved with a memcpy
/// of it into `seg` at the same offsets: (the puts, the memcpy).
fn put_interleaved(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    prefix: &str,
    slots: usize,
    src: &[u8],
    seg: &mmc_local::segment::Segment,
) -> Result<(Measured, Measured), String> {
    let mut puts = PutRounds::new(c, prefix, slots, src);
    let mut bsrc = OffsetBuf::page_aligned(src.len(), 5);
    let pair = interleaved(
        budget,
        Some(peer),
        |rec| puts.step(rec),
        memcpy_step(seg, slots, src.len(), bsrc.as_mut_ptr(), true),
    )?;
    puts.done()?;
    Ok(pair)
}

/// A baseline row of an [`interleaved`] pair.
fn paired_base(id: RowId, what: &str, size: u64, m: Measured) -> Row {
    Row::new(id, "shm", what, size, 1, m).group(size)
}

/// `put_from` through a client with `async_commit` on (the commit RPC is
/// sent, not awaited): what the second control round trip of a put costs.
pub fn shm_async_commit(
    cluster: &Cluster,
    ca: &BlockingObjectStore,
    size: u64,
    budget: Budget,
    ws: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let peer = cluster.provider().pid;
    let t = tag(size);
    let slots = slots_for(ws, size);
    let mut src = vec![0u8; size as usize];
    fill(&mut src, 5);
    let seg = cluster.provider_segment(ca)?;
    progress(&format!(
        "shm put_from {t}, async_commit client, interleaved with memcpy"
    ));
    let (m, base) = put_interleaved(budget, peer, ca, &format!("shm-putac-{t}"), slots, &src, &seg)?;
    emptied(cluster, ca, notes)?;
    Ok(vec![
        paired_base(
            Kind::ShmWsWriteAc.size(size),
            "memcpy buf -> segment, interleaved (async)",
            size,
            base,
        ),
        Row::new(
            Kind::ShmPutAc.size(size),
            "shm",
            "MemCache put_from, async_commit",
            size,
            1,
            m,
        )
        .vs("memcpy ws-write (interleaved)", Kind::ShmWsWriteAc.size(size))
        .vs("redis", Kind::RedisSet.size(size))
        .vs("mooncake", Kind::MooncakePut.size(size))
        .vs("default put", Kind::ShmPut.size(size))
        .group(size),
    ])
}
