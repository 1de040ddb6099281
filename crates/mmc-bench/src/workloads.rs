//! The measurements of `mmc bench`: memcpy baselines, the same-host shm
//! data path, the forced-TCP data path beside a raw loopback stream, and
//! batches of small keys.

use super::cluster::Cluster;
use super::measure::{Budget, Measured, Recorder};
use super::report::{fmt_size, Row};
use super::rows::{Kind, RowId};
use super::worker::{fill, stamp, OffsetBuf};
use mmc_local::{BatchResult, BlockingObjectStore, Piece, PutOptions};
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Keys of the small-key workloads live at once (rounds of fresh keys for
/// puts, the rotation set for gets and exists).
pub const SMALL_KEYS: usize = 2048;

/// Keys a measurement of `size`-byte objects keeps live: the working set
/// divided by the size, at most [`SMALL_KEYS`] (so that filling the key set
/// of a small size does not take longer than measuring it).
pub fn slots_for(ws: u64, size: u64) -> usize {
    ((ws / size.max(1)) as usize).clamp(1, SMALL_KEYS)
}

/// `1MiB`, `8MiB`: size tags used in row ids and key names.
pub fn tag(size: u64) -> String {
    super::rows::size_tag(size)
}

pub fn progress(msg: &str) {
    super::progress::step(msg);
}

fn check(what: &str, r: BatchResult) -> Result<(), String> {
    let v = r.map_err(|e| format!("{what}: {e} (code {})", e.code()))?;
    for (i, x) in v.into_iter().enumerate() {
        if let Err(e) = x {
            return Err(format!("{what}: key #{i}: {e} (code {})", e.code()));
        }
    }
    Ok(())
}

fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

fn remove(c: &BlockingObjectStore, keys: &[String]) -> Result<(), String> {
    for chunk in keys.chunks(mmc_wire::MAX_BATCH) {
        check("remove", c.remove_batch(&refs(chunk)))?;
    }
    Ok(())
}

/// `put_from`: the value goes straight from `src` to its replica.
fn put_from(c: &BlockingObjectStore, key: &str, src: &[u8]) -> Result<(), String> {
    let opts = PutOptions::default();
    // SAFETY: `src` is borrowed, so valid for reads and unmodified, for the whole call.
    let r = unsafe { c.put_raw_batch(&[key], &[vec![Piece::of(src)]], &opts) };
    check("put", r)
}

// ---- memcpy -------------------------------------------------------------

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

// ---- object puts and gets -------------------------------------------------

/// Puts of fresh keys, one per [`PutRounds::step`], in rounds of `slots`:
/// a full round's keys are removed (untimed) before the next round starts,
/// so the live data never exceeds `slots` objects.
struct PutRounds<'a> {
    c: &'a BlockingObjectStore,
    prefix: &'a str,
    slots: usize,
    src: &'a [u8],
    round: usize,
    keys: Vec<String>,
}

impl<'a> PutRounds<'a> {
    fn new(c: &'a BlockingObjectStore, prefix: &'a str, slots: usize, src: &'a [u8]) -> Self {
        PutRounds {
            c,
            prefix,
            slots,
            src,
            round: 0,
            keys: Vec::with_capacity(slots),
        }
    }

    fn step(&mut self, rec: &mut Recorder) -> Result<(), String> {
        if self.keys.len() == self.slots {
            remove(self.c, &self.keys)?;
            self.keys.clear();
            self.round += 1;
        }
        let k = format!("{}-{}-{}", self.prefix, self.round, self.keys.len());
        rec.time(|| put_from(self.c, &k, self.src))?;
        self.keys.push(k);
        Ok(())
    }

    /// Removes the last round's keys.
    fn done(self) -> Result<(), String> {
        remove(self.c, &self.keys)
    }
}

fn put_rounds(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    prefix: &str,
    slots: usize,
    src: &[u8],
) -> Result<Measured, String> {
    let mut rec = Recorder::start(budget, Some(peer));
    let mut puts = PutRounds::new(c, prefix, slots, src);
    while rec.more() {
        puts.step(&mut rec)?;
    }
    puts.done()?;
    Ok(rec.finish())
}

fn put_measure(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    prefix: &str,
    slots: usize,
    src: &[u8],
) -> Result<Measured, String> {
    put_rounds(budget.warmup(), peer, c, &format!("{prefix}-warm"), slots, src)?;
    put_rounds(budget, peer, c, prefix, slots, src)
}

/// Puts `slots` objects (each stamped with its index) to read back.
fn put_readable(c: &BlockingObjectStore, prefix: &str, slots: usize, src: &mut [u8]) -> Result<Vec<String>, String> {
    let keys: Vec<String> = (0..slots).map(|j| format!("{prefix}-{j}")).collect();
    for (j, k) in keys.iter().enumerate() {
        stamp(src, j as u64);
        put_from(c, k, src)?;
    }
    Ok(keys)
}

/// Reads a few of `keys` back and compares them with what was put.
fn verify(c: &BlockingObjectStore, keys: &[String], src: &mut [u8]) -> Result<(), String> {
    let mut got = vec![0u8; src.len()];
    for j in [0, keys.len() / 2, keys.len() - 1] {
        stamp(src, j as u64);
        c.get_into(&keys[j], &mut got)
            .map_err(|e| format!("get_into {}: {e}", keys[j]))?;
        if got != src {
            return Err(format!("get_into {} returned different bytes than were put", keys[j]));
        }
    }
    Ok(())
}

/// `get_into` of `keys` in turn, one per [`GetRotating::step`].
struct GetRotating<'a> {
    c: &'a BlockingObjectStore,
    keys: &'a [String],
    dst: &'a mut [u8],
    i: usize,
}

impl GetRotating<'_> {
    fn step(&mut self, rec: &mut Recorder) -> Result<(), String> {
        let k = &self.keys[self.i % self.keys.len()];
        rec.time(|| self.c.get_into(k, self.dst))
            .map_err(|e| format!("get_into {k}: {e} (code {})", e.code()))?;
        self.i += 1;
        Ok(())
    }
}

fn get_loop(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    dst: &mut [u8],
) -> Result<Measured, String> {
    let mut rec = Recorder::start(budget, Some(peer));
    let mut gets = GetRotating { c, keys, dst, i: 0 };
    while rec.more() {
        gets.step(&mut rec)?;
    }
    Ok(rec.finish())
}

fn get_measure(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    dst: &mut [u8],
) -> Result<Measured, String> {
    get_loop(budget.warmup(), peer, c, keys, dst)?;
    get_loop(budget, peer, c, keys, dst)
}

/// Length of one slice of an [`interleaved`] pair.
const SLICE: Duration = Duration::from_millis(40);

/// Two measurements in alternating slices of [`SLICE`] (after an untimed
/// warm-up of both), each until its own budget, measured over the pair's
/// wall time, is spent: a time budget therefore gives each about half its
/// seconds of timed operations, so the pair runs over twice the budget.
/// The memory bandwidth of this shared machine drifts by a third within
/// seconds; a ratio of two measurements made seconds apart would measure
/// the drift. CPU and fault columns cover both (one wall clock).
fn interleaved(
    budget: Budget,
    peer: Option<u32>,
    mut a: impl FnMut(&mut Recorder) -> Result<(), String>,
    mut b: impl FnMut(&mut Recorder) -> Result<(), String>,
) -> Result<(Measured, Measured), String> {
    let pair = match budget.iters {
        Some(_) => budget,
        None => Budget {
            seconds: budget.seconds * 2.0,
            ..budget
        },
    };
    let mut run = |budget: Budget| {
        let (mut ra, mut rb) = (Recorder::start(budget, peer), Recorder::start(budget, peer));
        while ra.more() || rb.more() {
            one_slice(&mut ra, &mut a)?;
            one_slice(&mut rb, &mut b)?;
        }
        Ok::<_, String>((ra.finish(), rb.finish()))
    };
    run(pair.warmup())?;
    run(pair)
}

/// Operations of `op` for one [`SLICE`], or until `rec`'s budget is spent.
fn one_slice(rec: &mut Recorder, op: &mut impl FnMut(&mut Recorder) -> Result<(), String>) -> Result<(), String> {
    let until = Instant::now() + SLICE;
    while rec.more() && Instant::now() < until {
        op(rec)?;
    }
    Ok(())
}

/// `memcpy` of `n` bytes per step between one buffer and the next of
/// `slots` slots at the start of `seg` (into it when `into`), as a put or a
/// get moves its bytes.
fn memcpy_step(
    seg: &mmc_local::segment::Segment,
    slots: usize,
    n: usize,
    buf: *mut u8,
    into: bool,
) -> impl FnMut(&mut Recorder) -> Result<(), String> + '_ {
    let slots = slots.min(seg.len() / n).max(1);
    let mut i = 0;
    move |rec| {
        let slot = seg.base().wrapping_add((i % slots) * n);
        let (s, d) = if into {
            (buf as *const u8, slot)
        } else {
            (slot as *const u8, buf)
        };
        // SAFETY: `slot..slot+n` lies in the mapping, `buf` is a live buffer
        // of `n` bytes of the caller's that nothing else uses meanwhile. The
        // provider's bytes there may belong to objects: those of a put
        // measurement are never read back, and a get measurement only reads.
        rec.time(|| unsafe { std::ptr::copy_nonoverlapping(black_box(s), black_box(d), n) });
        i += 1;
        Ok(())
    }
}

fn emptied(cluster: &Cluster, c: &BlockingObjectStore, notes: &mut Vec<String>) -> Result<(), String> {
    if !cluster.empty(c)? {
        notes.push("warning: the segment was not reported empty within 5 s after remove_all".into());
    }
    Ok(())
}

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

// ---- TCP ------------------------------------------------------------------

/// Streams `chunks` writes of `chunk` bytes over a loopback connection to a
/// reader thread that reads into a segment-like region of `ws` bytes (as the
/// provider's transfer server does); the time runs from the first write to
/// the last byte read.
fn raw_stream(chunks: u64, chunk: usize, ws: u64) -> Result<Measured, String> {
    let l = super::worker::raw_listen("127.0.0.1:0")?;
    let region = super::worker::WsRegion::new(ws)?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let total = chunks * chunk as u64;
    let reader = std::thread::Builder::new()
        .name("bench-tcp-read".into())
        .spawn(move || -> std::io::Result<Instant> {
            let (s, _) = l.accept()?;
            let mut got = 0u64;
            while got < total {
                match region.read_some(&s, chunk)? {
                    0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    n => got += n as u64,
                }
            }
            Ok(Instant::now())
        })
        .map_err(|e| e.to_string())?;
    let mut w = super::worker::raw_connect(&addr.to_string())?;
    let mut src = vec![0u8; chunk];
    fill(&mut src, 8);
    let mut rec = Recorder::start(Budget::ops(chunks), None);
    let start = Instant::now();
    while rec.more() {
        rec.time(|| w.write_all(&src))
            .map_err(|e| format!("raw tcp write: {e}"))?;
    }
    let end = reader
        .join()
        .map_err(|_| "raw tcp reader panicked".to_string())?
        .map_err(|e| format!("raw tcp read: {e}"))?;
    let mut m = rec.finish();
    m.busy_s = (end - start).as_secs_f64();
    m.wall_s = m.busy_s;
    Ok(m)
}

/// Forced-TCP puts and gets (a client with protocol tcp on the same host)
/// beside a raw loopback stream of the same bytes.
pub fn tcp(
    cluster: &Cluster,
    c: &BlockingObjectStore,
    size: u64,
    budget: Budget,
    ws: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let peer = cluster.provider().pid;
    let t = tag(size);
    let slots = slots_for(ws, size);
    let mut src = vec![0u8; size as usize];
    fill(&mut src, 9);
    let mut dst = vec![0u8; size as usize];
    fill(&mut dst, 10);
    progress(&format!("tcp put {t} (protocol tcp)"));
    let put = put_measure(budget, peer, c, &format!("tcp-put-{t}"), slots, &src)?;
    emptied(cluster, c, notes)?;
    progress(&format!("tcp get_into {t} (protocol tcp)"));
    let keys = put_readable(c, &format!("tcp-get-{t}"), slots, &mut src)?;
    verify(c, &keys, &mut src)?;
    let get = get_measure(budget, peer, c, &keys, &mut dst)?;
    emptied(cluster, c, notes)?;
    let chunks = put.ops.max(get.ops).max(1);
    progress(&format!("raw tcp loopback stream ({chunks} x {t} writes)"));
    raw_stream(64.min(chunks), size as usize, ws)?;
    let raw = raw_stream(chunks, size as usize, ws)?;
    notes.push(format!(
        "tcp: the raw loopback stream pushes {chunks} x {t} writes (as many bytes as the larger of the tcp put/get \
         measurements) one way over one connection; its p50/p99 are per write_all call"
    ));
    Ok(vec![
        Row::new(Kind::TcpRaw.size(size), "tcp", "raw loopback stream", size, 1, raw),
        Row::new(Kind::TcpPut.size(size), "tcp", "put_from (protocol tcp)", size, 1, put)
            .vs("raw tcp", Kind::TcpRaw.size(size)),
        Row::new(Kind::TcpGet.size(size), "tcp", "get_into (protocol tcp)", size, 1, get)
            .vs("raw tcp", Kind::TcpRaw.size(size)),
    ])
}

/// Round trips of a 64-byte message over a loopback connection to an echo
/// thread (blocking sockets, TCP_NODELAY): the floor under a control RPC.
fn raw_ping_pong(budget: Budget) -> Result<Measured, String> {
    const MSG: usize = 64;
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("ping-pong listen: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::Builder::new()
        .name("bench-tcp-echo".into())
        .spawn(move || -> std::io::Result<()> {
            let (mut s, _) = l.accept()?;
            s.set_nodelay(true)?;
            let mut b = [0u8; MSG];
            loop {
                match s.read_exact(&mut b) {
                    Ok(()) => s.write_all(&b)?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let mut s = TcpStream::connect(addr).map_err(|e| format!("ping-pong connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut b = [7u8; MSG];
    let mut rtt = |budget: Budget| -> Result<Measured, String> {
        let mut rec = Recorder::start(budget, None);
        while rec.more() {
            rec.time(|| s.write_all(&b).and_then(|_| s.read_exact(&mut b)))
                .map_err(|e| format!("ping-pong: {e}"))?;
        }
        Ok(rec.finish())
    };
    rtt(budget.warmup())?;
    let m = rtt(budget)?;
    drop(s);
    let _ = echo.join();
    Ok(m)
}

// ---- batches ----------------------------------------------------------------

fn batch_put_rounds(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    prefix: &str,
    batch: usize,
    src: &[u8],
) -> Result<Measured, String> {
    let opts = PutOptions::default();
    let per_round = (SMALL_KEYS / batch).max(1);
    let values: Vec<&[u8]> = vec![src; batch];
    let mut rec = Recorder::start(budget, Some(peer));
    let mut round = 0;
    while rec.more() {
        let keys: Vec<String> = (0..per_round * batch)
            .map(|j| format!("{prefix}-{round}-{j}"))
            .collect();
        let mut done = 0;
        for chunk in keys.chunks(batch) {
            if !rec.more() {
                break;
            }
            let r = refs(chunk);
            rec.time(|| check("put_batch", c.put_batch(&r, &values, &opts)))?;
            done += chunk.len();
        }
        remove(c, &keys[..done])?;
        round += 1;
    }
    Ok(rec.finish())
}

fn batch_get_loop(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    batch: usize,
    buf: &mut [u8],
) -> Result<Measured, String> {
    let groups: Vec<Vec<&str>> = keys.chunks(batch).filter(|g| g.len() == batch).map(refs).collect();
    let vlen = buf.len() / batch;
    let mut rec = Recorder::start(budget, Some(peer));
    let mut i = 0;
    while rec.more() {
        let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(vlen).collect();
        rec.time(|| check("get_into_batch", c.get_into_batch(&groups[i % groups.len()], &mut bufs)))?;
        i += 1;
    }
    Ok(rec.finish())
}

fn batch_exist_loop(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    batch: usize,
) -> Result<Measured, String> {
    let groups: Vec<Vec<&str>> = keys.chunks(batch).filter(|g| g.len() == batch).map(refs).collect();
    let mut rec = Recorder::start(budget, Some(peer));
    let mut i = 0;
    while rec.more() {
        let g = &groups[i % groups.len()];
        let v = rec.time(|| c.exist_batch(g)).map_err(|e| format!("exist_batch: {e}"))?;
        if v.iter().any(|x| !x) {
            return Err("exist_batch: a key that was put reads as absent".into());
        }
        i += 1;
    }
    Ok(rec.finish())
}

/// Batches of `batch` keys of `value` bytes: put_batch (fresh keys),
/// get_into_batch and exist_batch, each beside the same call on one key;
/// also put_batch through `ca` (an async-commit client) when given. The
/// raw round trip and the async `exist` run when `first`.
pub fn batch(
    cluster: &Cluster,
    c: &BlockingObjectStore,
    (batch, value): (usize, u64),
    budget: Budget,
    first: bool,
    ca: Option<&BlockingObjectStore>,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let peer = cluster.provider().pid;
    let t = tag(value);
    let mut src = vec![0u8; value as usize];
    fill(&mut src, 11);
    let b = batch as u64;

    progress(&format!("put {t} x1 and put_batch {batch} x {t} (fresh keys)"));
    let put1 = put_measure(budget, peer, c, "small-put1", SMALL_KEYS, &src)?;
    batch_put_rounds(budget.warmup(), peer, c, "small-putb-warm", batch, &src)?;
    let putb = batch_put_rounds(budget, peer, c, "small-putb", batch, &src)?;
    emptied(cluster, c, notes)?;
    let putac = match ca {
        Some(ca) => {
            progress(&format!("put_batch {batch} x {t}, async_commit client"));
            batch_put_rounds(budget.warmup(), peer, ca, "small-putac-warm", batch, &src)?;
            let m = batch_put_rounds(budget, peer, ca, "small-putac", batch, &src)?;
            emptied(cluster, ca, notes)?;
            Some(m)
        }
        None => None,
    };

    let n = (SMALL_KEYS / batch).max(1) * batch;
    let keys: Vec<String> = (0..n).map(|j| format!("small-get-{j}")).collect();
    let values: Vec<Vec<u8>> = (0..n)
        .map(|j| {
            let mut v = src.clone();
            stamp(&mut v, j as u64);
            v
        })
        .collect();
    for (kc, vc) in keys.chunks(batch).zip(values.chunks(batch)) {
        let vr: Vec<&[u8]> = vc.iter().map(Vec::as_slice).collect();
        check("put_batch", c.put_batch(&refs(kc), &vr, &PutOptions::default()))?;
    }
    let mut buf = vec![0u8; batch * value as usize];
    {
        let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(value as usize).collect();
        check("get_into_batch", c.get_into_batch(&refs(&keys[..batch]), &mut bufs))?;
    }
    for (j, got) in buf.chunks(value as usize).enumerate() {
        if got != values[j].as_slice() {
            return Err(format!(
                "get_into_batch: {} returned different bytes than were put",
                keys[j]
            ));
        }
    }

    progress(&format!("get_into {t} x1 and get_into_batch {batch} x {t}"));
    let mut one = vec![0u8; value as usize];
    let get1 = get_measure(budget, peer, c, &keys, &mut one)?;
    batch_get_loop(budget.warmup(), peer, c, &keys, batch, &mut buf)?;
    let getb = batch_get_loop(budget, peer, c, &keys, batch, &mut buf)?;

    let rtt = if first {
        progress("raw tcp ping-pong (64 B round trips)");
        Some(raw_ping_pong(budget)?)
    } else {
        None
    };
    progress(&format!("exist x1 and exist_batch {batch}"));
    batch_exist_loop(budget.warmup(), peer, c, &keys, 1)?;
    let ex1 = batch_exist_loop(budget, peer, c, &keys, 1)?;
    batch_exist_loop(budget.warmup(), peer, c, &keys, batch)?;
    let exb = batch_exist_loop(budget, peer, c, &keys, batch)?;
    let exa = if first {
        Some(exist_async(cluster, peer, &keys, budget)?)
    } else {
        None
    };
    emptied(cluster, c, notes)?;
    if first {
        notes.push(format!(
        "batch: puts use fresh keys in rounds of {n} keys removed (untimed) after each round; gets and exists \
         rotate over {n} live keys; `x1` rows are the same call with one key (exist x1 is one control-RPC round trip, compared with a raw loopback TCP round trip between two threads of this process); `exist x1, async 1-thread rt` is the same RPC through the async ObjectStore whose tasks run on a current-thread runtime driven by the calling thread (a separate pure client, registered last)"
        ));
    }
    let g = value;
    let mut rows = vec![
        Row::new(
            Kind::BatchPut1.size(value),
            "batch",
            "MemCache put_from x1",
            value,
            1,
            put1,
        )
        .group(g),
        Row::new(
            Kind::BatchPut.size(value),
            "batch",
            format!("MemCache put_batch x{batch}"),
            value,
            b,
            putb,
        )
        .vs("x1", Kind::BatchPut1.size(value))
        .vs("redis MSET", Kind::RedisMset.size(value))
        .vs("mooncake", Kind::MooncakePutB.size(value))
        .group(g),
        Row::new(
            Kind::BatchGet1.size(value),
            "batch",
            "MemCache get_into x1",
            value,
            1,
            get1,
        )
        .group(g),
        Row::new(
            Kind::BatchGet.size(value),
            "batch",
            format!("MemCache get_into_batch x{batch}"),
            value,
            b,
            getb,
        )
        .vs("x1", Kind::BatchGet1.size(value))
        .vs("redis MGET", Kind::RedisMget.size(value))
        .vs("mooncake", Kind::MooncakeGetB.size(value))
        .group(g),
    ];
    if let Some(m) = putac {
        rows.push(
            Row::new(
                Kind::BatchPutAc.size(value),
                "batch",
                format!("MemCache put_batch x{batch}, async_commit"),
                value,
                b,
                m,
            )
            .vs("default", Kind::BatchPut.size(value))
            .vs("redis MSET", Kind::RedisMset.size(value))
            .vs("mooncake", Kind::MooncakePutB.size(value))
            .group(g),
        );
    }
    if let Some(rtt) = rtt {
        rows.push(Row::new(Kind::BatchRtt.one(), "batch", "raw tcp ping-pong 64 B", 0, 1, rtt).group(g));
    }
    rows.push(
        Row::new(Kind::BatchExist1.size(value), "batch", "MemCache exist x1", 0, 1, ex1)
            .vs("raw rtt", Kind::BatchRtt.one())
            .group(g),
    );
    rows.push(
        Row::new(
            Kind::BatchExist.size(value),
            "batch",
            format!("MemCache exist_batch x{batch}"),
            0,
            b,
            exb,
        )
        .vs("x1", Kind::BatchExist1.size(value))
        .vs("redis EXISTS", Kind::RedisExists.size(value))
        .vs("mooncake", Kind::MooncakeExistB.size(value))
        .group(g),
    );
    if let Some(exa) = exa {
        rows.push(
            Row::new(
                Kind::BatchExistAsync.size(value),
                "batch",
                "MemCache exist x1, async 1-thread rt",
                0,
                1,
                exa,
            )
            .vs("raw rtt", Kind::BatchRtt.one())
            .vs("x1", Kind::BatchExist1.size(value))
            .group(g),
        );
    }
    Ok(rows)
}

/// `exist` of one key through the async API, with the client's tasks on a
/// current-thread runtime driven by the calling thread: the same RPC as
/// `exist x1` without the hops between the caller and the client runtime's
/// worker threads. Registers one more (pure) client: run it last.
fn exist_async(cluster: &Cluster, peer: u32, keys: &[String], budget: Budget) -> Result<Measured, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let cfg = mmc_config::LocalConfig {
            spin_wait_us: mmc_config::LocalConfig::default().spin_wait_us,
            transfer_congestion: mmc_config::LocalConfig::default().transfer_congestion,
            ..cluster.client_config(mmc_config::Protocol::Auto)
        };
        let s = mmc_local::ObjectStore::connect_async(cfg)
            .await
            .map_err(|e| format!("async client: {e}"))?;
        let run = |budget: Budget| {
            let s = &s;
            async move {
                let mut rec = Recorder::start(budget, Some(peer));
                let mut i = 0;
                while rec.more() {
                    let k = &keys[i % keys.len()];
                    let t = Instant::now();
                    let found = s.exist(k).await.map_err(|e| format!("exist {k}: {e}"))?;
                    rec.record(t.elapsed());
                    if !found {
                        return Err(format!("exist {k}: a key that was put reads as absent"));
                    }
                    i += 1;
                }
                Ok::<Measured, String>(rec.finish())
            }
        };
        run(budget.warmup()).await?;
        let m = run(budget).await;
        s.close().await;
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interleaved_pair_alternates_in_slices_and_keeps_each_budget() {
        // Each operation takes a third of a slice: a slice holds about
        // three, then the other measurement gets its turn.
        let op_time = SLICE / 3;
        let order = std::cell::RefCell::new(Vec::new());
        let op = |label: char| {
            let order = &order;
            move |rec: &mut Recorder| -> Result<(), String> {
                rec.time(|| std::thread::sleep(op_time));
                order.borrow_mut().push(label);
                Ok(())
            }
        };
        let (a, b) = interleaved(Budget::ops(9), None, op('a'), op('b')).unwrap();
        assert_eq!((a.ops, b.ops), (9, 9));
        assert!(a.busy_s >= 9.0 * op_time.as_secs_f64());
        let order = order.into_inner();
        // The warm-up's operation of each, then the measured ones.
        assert_eq!(order.len(), 2 + 18);
        let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches >= 5, "a and b alternate in slices: {order:?}");
        assert!(
            order.windows(5).all(|w| !w.iter().all(|&c| c == w[0])),
            "no slice runs much past its length: {order:?}"
        );
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
