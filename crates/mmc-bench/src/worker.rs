//! Workload loops over any key-value target (MemCache, Redis, a plain
//! memcpy "store"), and the hidden `mmc bench-client` process that runs
//! them on command.
//!
//! A client process reads one JSON command per line on stdin and answers
//! one JSON result per line on stdout (after a first `{"ready": true}`
//! line). `crates/mmc-python/bench/bench_vs_mooncake.py --serve` speaks the
//! same protocol for Mooncake Store, so every system runs the same loops
//! with the same keys, sizes, rotation and timing rules.
//!
//! Loop semantics (identical in the Python implementation):
//! - `put`: fresh keys `{prefix}-{round}-{j}` in rounds of `slots` keys; each
//!   round's keys are removed (untimed) before the next, so at most `slots`
//!   objects are live;
//! - `fill`: puts `slots` keys `{prefix}-{j}` (untimed) whose first 8 bytes
//!   are `j`; `get` / `get_batch` / `exist_batch` rotate over them and the
//!   bytes of a few are checked afterwards (untimed); `clear` removes them;
//! - `layers`: the value of a key is a KV block of [`LAYERS`] K pages of
//!   [`KPAGE`] and [`LAYERS`] V pages of [`VPAGE`], scattered over a paged
//!   cache of [`BLOCKS`] blocks per layer so that no two pieces are adjacent;
//! - a measurement runs for `seconds` (and at least 20 operations) or
//!   exactly `iters` operations, starting at `start_at` (Unix time) when
//!   given, so that the processes of a multi-client run start together.

use super::measure::{Budget, Measured, Recorder};
use mmc_local::{BatchResult, BlockingObjectStore, Piece, PutOptions};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const LAYERS: usize = 61;
pub const KPAGE: usize = 128 << 10;
pub const VPAGE: usize = 16 << 10;
pub const BLOCKS: usize = 4;
/// Bytes of one layered KV block.
pub const BLOCK_BYTES: u64 = (LAYERS * (KPAGE + VPAGE)) as u64;

/// One command of the client protocol.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Cmd {
    /// put, fill, get, put_batch, get_batch, exist_batch, clear,
    /// stream_send, stream_recv, pingpong, quit.
    pub op: String,
    /// Bytes per key (0 with `layers`).
    #[serde(default)]
    pub size: u64,
    /// Values are layered KV blocks.
    #[serde(default)]
    pub layers: bool,
    #[serde(default)]
    pub batch: usize,
    #[serde(default)]
    pub slots: usize,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub iters: Option<u64>,
    #[serde(default)]
    pub start_at: Option<f64>,
    /// Operations a time budget always makes (default 20).
    #[serde(default)]
    pub min_ops: Option<u64>,
    /// Peer of the raw TCP ops.
    #[serde(default)]
    pub addr: String,
}

/// One result of the client protocol.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Res {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub ops: u64,
    #[serde(default)]
    pub keys_per_op: u64,
    #[serde(default)]
    pub bytes_per_key: u64,
    /// Sum of the timed operations' durations.
    #[serde(default)]
    pub busy_s: f64,
    #[serde(default)]
    pub wall_s: f64,
    /// Unix time of the first timed operation's start and the last one's end.
    #[serde(default)]
    pub t0: f64,
    #[serde(default)]
    pub t1: f64,
    #[serde(default)]
    pub p50_us: Option<f64>,
    #[serde(default)]
    pub p99_us: Option<f64>,
    #[serde(default)]
    pub info: Option<String>,
}

impl Res {
    pub fn measured(&self) -> Measured {
        Measured {
            ops: self.ops,
            busy_s: self.busy_s,
            wall_s: self.wall_s,
            p50_us: self.p50_us,
            p99_us: self.p99_us,
            faults: 0,
            cpu_pct: None,
        }
    }

    fn of(m: &Measured, keys: u64, size: u64, t0: f64, t1: f64) -> Res {
        Res {
            ok: true,
            ops: m.ops,
            keys_per_op: keys,
            bytes_per_key: size,
            busy_s: m.busy_s,
            wall_s: m.wall_s,
            t0,
            t1,
            p50_us: m.p50_us,
            p99_us: m.p99_us,
            ..Res::default()
        }
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn sleep_until(t: Option<f64>) {
    if let Some(t) = t {
        let d = t - unix_now();
        if d > 0.0 && d < 30.0 {
            std::thread::sleep(Duration::from_secs_f64(d));
        }
    }
}

// ---- targets ----------------------------------------------------------------

/// A key-value store as the loops see it. `slot` is the key's index in its
/// round or fill set (the memcpy target copies to that slot).
pub trait Target {
    fn put(&mut self, slot: usize, key: &str, value: &[&[u8]]) -> Result<(), String>;
    fn get(&mut self, slot: usize, key: &str, into: &mut [&mut [u8]]) -> Result<(), String>;
    fn put_batch(&mut self, slot0: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String>;
    fn get_batch(&mut self, slot0: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String>;
    fn exist_batch(&mut self, keys: &[&str]) -> Result<(), String>;
    fn remove(&mut self, keys: &[&str]) -> Result<(), String>;
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

/// MemCache through the blocking client: raw `Piece` puts and gets (one
/// control RPC per call, the data copied once, straight from / into the
/// caller's buffers).
pub struct Mmc(pub BlockingObjectStore);

impl Target for Mmc {
    fn put(&mut self, _: usize, key: &str, value: &[&[u8]]) -> Result<(), String> {
        let pieces: Vec<Piece> = value.iter().map(|v| Piece::of(v)).collect();
        // SAFETY: the pieces borrow `value`, alive and unmodified for the call.
        check("put", unsafe {
            self.0.put_raw_batch(&[key], &[pieces], &PutOptions::default())
        })
    }

    fn get(&mut self, _: usize, key: &str, into: &mut [&mut [u8]]) -> Result<(), String> {
        let pieces: Vec<Piece> = into.iter_mut().map(|b| Piece::of_mut(b)).collect();
        // SAFETY: the pieces borrow `into` exclusively for the call.
        check("get", unsafe { self.0.get_into_raw_batch(&[key], &[pieces]) })
    }

    fn put_batch(&mut self, _: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String> {
        let pieces: Vec<Vec<Piece>> = values.iter().map(|v| vec![Piece::of(v)]).collect();
        // SAFETY: as in `put`.
        check("put_batch", unsafe {
            self.0.put_raw_batch(keys, &pieces, &PutOptions::default())
        })
    }

    fn get_batch(&mut self, _: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String> {
        check("get_into_batch", self.0.get_into_batch(keys, into))
    }

    fn exist_batch(&mut self, keys: &[&str]) -> Result<(), String> {
        let v = self.0.exist_batch(keys).map_err(|e| format!("exist_batch: {e}"))?;
        if v.iter().all(|x| *x) {
            Ok(())
        } else {
            Err("exist_batch: a key that was put reads as absent".into())
        }
    }

    fn remove(&mut self, keys: &[&str]) -> Result<(), String> {
        for c in keys.chunks(mmc_wire::MAX_BATCH) {
            check("remove", self.0.remove_batch(c))?;
        }
        Ok(())
    }
}

/// Redis over one connection: SET / GET per key, MSET / MGET / EXISTS per
/// batch (one command for the whole batch: Redis's own batching).
pub struct Redis(pub super::redis::Conn);

impl Target for Redis {
    fn put(&mut self, _: usize, key: &str, value: &[&[u8]]) -> Result<(), String> {
        self.0.set(key, value)
    }

    fn get(&mut self, _: usize, key: &str, into: &mut [&mut [u8]]) -> Result<(), String> {
        self.0.get_into(key, into)
    }

    fn put_batch(&mut self, _: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String> {
        self.0.mset(keys, values)
    }

    fn get_batch(&mut self, _: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String> {
        self.0.mget_into(keys, into)
    }

    fn exist_batch(&mut self, keys: &[&str]) -> Result<(), String> {
        let n = self.0.exists(keys)?;
        if n as usize == keys.len() {
            Ok(())
        } else {
            Err(format!("redis EXISTS: {n} of {} keys exist", keys.len()))
        }
    }

    fn remove(&mut self, keys: &[&str]) -> Result<(), String> {
        self.0.del(keys)
    }
}

/// The memcpy baseline as a store: a put copies the value into slot
/// `slot` of a `ws`-byte region, a get copies it back out (glibc memcpy).
pub struct Memcpy {
    region: Vec<u8>,
}

impl Memcpy {
    pub fn new(ws: u64) -> Memcpy {
        let mut region = vec![0u8; ws as usize];
        fill(&mut region, 1);
        Memcpy { region }
    }

    fn at(&mut self, slot: usize, size: usize) -> *mut u8 {
        let slots = (self.region.len() / size.max(1)).max(1);
        assert!(size <= self.region.len(), "memcpy target: value larger than its region");
        self.region.as_mut_ptr().wrapping_add((slot % slots) * size)
    }
}

impl Target for Memcpy {
    fn put(&mut self, slot: usize, _: &str, value: &[&[u8]]) -> Result<(), String> {
        let total: usize = value.iter().map(|v| v.len()).sum();
        let mut d = self.at(slot, total);
        for v in value {
            // SAFETY: `at` returns `total` bytes inside the region.
            unsafe {
                std::ptr::copy_nonoverlapping(v.as_ptr(), d, v.len());
                d = d.add(v.len());
            }
        }
        std::hint::black_box(d);
        Ok(())
    }

    fn get(&mut self, slot: usize, _: &str, into: &mut [&mut [u8]]) -> Result<(), String> {
        let total: usize = into.iter().map(|v| v.len()).sum();
        let mut s = self.at(slot, total) as *const u8;
        for b in into.iter_mut() {
            // SAFETY: as in `put`.
            unsafe {
                std::ptr::copy_nonoverlapping(s, b.as_mut_ptr(), b.len());
                s = s.add(b.len());
            }
        }
        std::hint::black_box(into);
        Ok(())
    }

    fn put_batch(&mut self, slot0: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String> {
        for (i, (k, v)) in keys.iter().zip(values).enumerate() {
            self.put(slot0 + i, k, &[v])?;
        }
        Ok(())
    }

    fn get_batch(&mut self, slot0: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String> {
        for (i, (k, b)) in keys.iter().zip(into.iter_mut()).enumerate() {
            self.get(slot0 + i, k, std::slice::from_mut(b))?;
        }
        Ok(())
    }

    fn exist_batch(&mut self, _: &[&str]) -> Result<(), String> {
        Ok(())
    }

    fn remove(&mut self, _: &[&str]) -> Result<(), String> {
        Ok(())
    }
}

// ---- buffers ------------------------------------------------------------------

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
struct Bufs {
    layers: bool,
    size: usize,
    src: Vec<u8>,
    dst: OffsetBuf,
}

impl Bufs {
    fn new(layers: bool, size: usize, batch: usize) -> Bufs {
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

    fn value_len(&self) -> usize {
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
    fn src_pieces(&self, i: usize) -> Vec<&[u8]> {
        if self.layers {
            Self::layout(i % BLOCKS)
                .into_iter()
                .map(|(o, l)| &self.src[o..o + l])
                .collect()
        } else {
            vec![&self.src[..self.size]]
        }
    }

    fn dst_pieces(&mut self, i: usize) -> Vec<&mut [u8]> {
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
    fn stamp_src(&mut self, i: usize, n: u64) {
        let (o, _) = if self.layers {
            Self::layout(i % BLOCKS)[0]
        } else {
            (0, 0)
        };
        stamp(&mut self.src[o..], n);
    }

    /// Whether the destination of rotation `i` holds the source of rotation
    /// `i` stamped with `n`.
    fn check(&mut self, i: usize, n: u64) -> bool {
        self.stamp_src(i, n);
        let want: Vec<Vec<u8>> = self.src_pieces(i).into_iter().map(|p| p.to_vec()).collect();
        let got = self.dst_pieces(i);
        want.iter().zip(got.iter()).all(|(a, b)| a.as_slice() == &b[..])
    }
}

// ---- the loops -------------------------------------------------------------------

/// Runs commands against one target; remembers the keys of the last fill.
pub struct Worker<T: Target> {
    pub t: T,
    /// Process whose CPU time the measurements report (the provider).
    pub peer: Option<u32>,
    filled: Vec<String>,
    filled_layers: bool,
    filled_size: u64,
    bufs: Option<Bufs>,
}

fn budget(c: &Cmd) -> Budget {
    Budget {
        seconds: c.seconds,
        iters: c.iters,
        min_ops: c.min_ops.unwrap_or(super::measure::MIN_OPS),
    }
}

fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

/// A Recorder whose first operation starts at `start_at`, and the Unix
/// times of the measurement's start and end.
fn timed<E>(
    c: &Cmd,
    peer: Option<u32>,
    f: impl FnOnce(&mut Recorder) -> Result<(), E>,
) -> Result<(Measured, f64, f64), E> {
    sleep_until(c.start_at);
    let t0 = unix_now();
    let mut rec = Recorder::start(budget(c), peer);
    f(&mut rec)?;
    let m = rec.finish();
    Ok((m, t0, unix_now()))
}

impl<T: Target> Worker<T> {
    pub fn new(t: T, peer: Option<u32>) -> Self {
        Worker {
            t,
            peer,
            filled: Vec::new(),
            filled_layers: false,
            filled_size: 0,
            bufs: None,
        }
    }

    pub fn exec(&mut self, c: &Cmd) -> Result<Res, String> {
        match c.op.as_str() {
            "put" => self.put(c),
            "fill" => self.fill(c).map(|_| Res {
                ok: true,
                ..Res::default()
            }),
            "get" => self.get(c),
            "put_batch" => self.put_batch(c),
            "get_batch" => self.get_batch(c),
            "exist_batch" => self.exist_batch(c),
            "clear" => {
                let keys = std::mem::take(&mut self.filled);
                self.t.remove(&refs(&keys))?;
                Ok(Res {
                    ok: true,
                    ..Res::default()
                })
            }
            other => Err(format!("unknown op {other}")),
        }
    }

    fn value_len(c: &Cmd) -> u64 {
        if c.layers {
            BLOCK_BYTES
        } else {
            c.size
        }
    }

    /// Fresh keys in rounds of `slots`, each round removed (untimed).
    fn put(&mut self, c: &Cmd) -> Result<Res, String> {
        let slots = c.slots.max(1);
        let peer = self.peer;
        let bufs = self.bufs.take();
        let bufs = match bufs {
            Some(b) if b.layers == c.layers && b.size == c.size as usize => b,
            _ => Bufs::new(c.layers, c.size as usize, 1),
        };
        let t = &mut self.t;
        let r = timed(c, peer, |rec| -> Result<(), String> {
            let mut round = 0;
            while rec.more() {
                let keys: Vec<String> = (0..slots).map(|j| format!("{}-{round}-{j}", c.prefix)).collect();
                let mut done = 0;
                for (j, k) in keys.iter().enumerate() {
                    if !rec.more() {
                        break;
                    }
                    let v = bufs.src_pieces(j);
                    rec.time(|| t.put(j, k, &v))?;
                    done += 1;
                }
                t.remove(&refs(&keys[..done]))?;
                round += 1;
            }
            Ok(())
        });
        self.bufs = Some(bufs);
        let (m, t0, t1) = r?;
        Ok(Res::of(&m, 1, Self::value_len(c), t0, t1))
    }

    /// `slots` keys `{prefix}-{j}` stamped with `j`, put in batches of up to 32
    /// (values up to 1 MiB) or one by one.
    fn fill(&mut self, c: &Cmd) -> Result<(), String> {
        let slots = c.slots.max(1);
        let keys: Vec<String> = (0..slots).map(|j| format!("{}-{j}", c.prefix)).collect();
        let group = if !c.layers && c.size <= 1 << 20 { 32 } else { 1 };
        let mut bufs = Bufs::new(c.layers, c.size as usize, group);
        let vlen = bufs.value_len();
        for i in 1..group {
            bufs.src.copy_within(0..vlen, i * vlen);
        }
        for (g, chunk) in keys.chunks(group).enumerate() {
            let j0 = g * group;
            if group == 1 {
                bufs.stamp_src(j0, j0 as u64);
                let v = bufs.src_pieces(j0);
                self.t.put(j0, &chunk[0], &v)?;
            } else {
                for i in 0..chunk.len() {
                    stamp(&mut bufs.src[i * vlen..], (j0 + i) as u64);
                }
                let vals: Vec<&[u8]> = (0..chunk.len()).map(|i| &bufs.src[i * vlen..(i + 1) * vlen]).collect();
                self.t.put_batch(j0, &refs(chunk), &vals)?;
            }
        }
        self.filled = keys;
        self.filled_layers = c.layers;
        self.filled_size = c.size;
        self.bufs = Some(Bufs::new(c.layers, c.size as usize, 1));
        Ok(())
    }

    fn need_fill(&self, c: &Cmd) -> Result<(), String> {
        if self.filled.is_empty() || self.filled_layers != c.layers || (!c.layers && self.filled_size != c.size) {
            return Err(format!("{}: no matching fill before it", c.op));
        }
        Ok(())
    }

    /// Single-key gets rotating over the filled keys, then a check of a few.
    fn get(&mut self, c: &Cmd) -> Result<Res, String> {
        self.need_fill(c)?;
        let peer = self.peer;
        let mut bufs = self.bufs.take().expect("fill made buffers");
        let keys = &self.filled;
        let t = &mut self.t;
        let r = timed(c, peer, |rec| -> Result<(), String> {
            let mut i = 0;
            while rec.more() {
                let j = i % keys.len();
                let mut d = bufs.dst_pieces(j);
                rec.time(|| t.get(j, &keys[j], &mut d))?;
                i += 1;
            }
            Ok(())
        });
        let mut verify = || -> Result<(), String> {
            for j in [0, keys.len() / 2, keys.len() - 1] {
                let mut d = bufs.dst_pieces(j);
                t.get(j, &keys[j], &mut d)?;
                if !bufs.check(j, j as u64) {
                    return Err(format!("get {}: different bytes than were put", keys[j]));
                }
            }
            Ok(())
        };
        let v = verify();
        self.bufs = Some(bufs);
        let (m, t0, t1) = r?;
        v?;
        Ok(Res::of(&m, 1, Self::value_len(c), t0, t1))
    }

    /// Fresh keys in batches of `batch`, rounds of `slots` keys.
    fn put_batch(&mut self, c: &Cmd) -> Result<Res, String> {
        let batch = c.batch.max(1);
        let per_round = (c.slots / batch).max(1) * batch;
        let peer = self.peer;
        let size = c.size as usize;
        let mut src = vec![0u8; size];
        fill(&mut src, 5);
        let values: Vec<&[u8]> = vec![&src; batch];
        let t = &mut self.t;
        let (m, t0, t1) = timed(c, peer, |rec| -> Result<(), String> {
            let mut round = 0;
            while rec.more() {
                let keys: Vec<String> = (0..per_round).map(|j| format!("{}-{round}-{j}", c.prefix)).collect();
                let mut done = 0;
                for (g, chunk) in keys.chunks(batch).enumerate() {
                    if !rec.more() {
                        break;
                    }
                    let r = refs(chunk);
                    rec.time(|| t.put_batch(g * batch, &r, &values))?;
                    done += chunk.len();
                }
                t.remove(&refs(&keys[..done]))?;
                round += 1;
            }
            Ok(())
        })?;
        Ok(Res::of(&m, batch as u64, c.size, t0, t1))
    }

    fn groups(filled: &[String], batch: usize) -> Vec<(usize, Vec<&str>)> {
        filled
            .chunks(batch)
            .enumerate()
            .filter(|(_, g)| g.len() == batch)
            .map(|(i, g)| (i * batch, refs(g)))
            .collect()
    }

    fn get_batch(&mut self, c: &Cmd) -> Result<Res, String> {
        self.need_fill(c)?;
        let batch = c.batch.max(1);
        let size = c.size as usize;
        let mut buf = vec![0u8; size * batch];
        fill(&mut buf, 7);
        let mut base = vec![0u8; size];
        fill(&mut base, 5);
        let groups = Self::groups(&self.filled, batch);
        if groups.is_empty() {
            return Err(format!("get_batch: fewer than {batch} keys filled"));
        }
        let peer = self.peer;
        let t = &mut self.t;
        let (m, t0, t1) = timed(c, peer, |rec| -> Result<(), String> {
            let mut i = 0;
            while rec.more() {
                let (slot0, g) = &groups[i % groups.len()];
                let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(size).collect();
                rec.time(|| t.get_batch(*slot0, g, &mut bufs))?;
                i += 1;
            }
            Ok(())
        })?;
        // The last batch read holds keys slot0.. stamped with their index.
        let n = (m.ops as usize).saturating_sub(1) % groups.len();
        let slot0 = groups[n].0 as u64;
        for (k, got) in buf.chunks(size).enumerate() {
            let mut want = base.clone();
            stamp(&mut want, slot0 + k as u64);
            if got != want.as_slice() {
                return Err(format!(
                    "get_batch: key #{} returned different bytes than were put",
                    slot0 + k as u64
                ));
            }
        }
        Ok(Res::of(&m, batch as u64, c.size, t0, t1))
    }

    fn exist_batch(&mut self, c: &Cmd) -> Result<Res, String> {
        self.need_fill(c)?;
        let batch = c.batch.max(1);
        let groups = Self::groups(&self.filled, batch);
        if groups.is_empty() {
            return Err(format!("exist_batch: fewer than {batch} keys filled"));
        }
        let peer = self.peer;
        let t = &mut self.t;
        let (m, t0, t1) = timed(c, peer, |rec| -> Result<(), String> {
            let mut i = 0;
            while rec.more() {
                let (_, g) = &groups[i % groups.len()];
                rec.time(|| t.exist_batch(g))?;
                i += 1;
            }
            Ok(())
        })?;
        Ok(Res::of(&m, batch as u64, 0, t0, t1))
    }
}

// ---- raw TCP -------------------------------------------------------------------------

/// Memory like a provider's segment (a prefaulted shared memfd mapping),
/// which the raw TCP server reads into and sends from, rotating over it as
/// MemCache's objects rotate over their working set: a transfer server
/// moves bytes between the network and a large, mostly cold region, and
/// on the machine of docs/benchmarks.md a 1 MiB request/response sent out of
/// such a region takes 200-230 us against 150 us out of one cache-hot
/// buffer. The peer (client) side uses one buffer, as MemCache's client does.
pub struct WsRegion {
    seg: mmc_local::segment::Segment,
    next: std::sync::atomic::AtomicUsize,
}

impl WsRegion {
    pub fn new(ws: u64) -> Result<WsRegion, String> {
        let len = (ws as usize).max(1 << 20);
        let seg = mmc_local::segment::Segment::create(len, true).map_err(|e| format!("raw tcp region: {e}"))?;
        // SAFETY: the mapping is `len` bytes and ours alone.
        unsafe { std::ptr::write_bytes(seg.base(), 9, len) };
        Ok(WsRegion {
            seg,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The next slot of `len` bytes (at most the region), rotating.
    fn slot(&self, len: usize) -> (*mut u8, usize) {
        let len = len.clamp(1, self.seg.len());
        let slots = self.seg.len() / len;
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % slots;
        (self.seg.base().wrapping_add(i * len), len)
    }

    /// Reads up to `max` bytes from `s` into the next slot; 0 at end of stream.
    pub fn read_some(&self, s: &TcpStream, max: usize) -> std::io::Result<usize> {
        let (p, len) = self.slot(max);
        loop {
            // SAFETY: `p..p+len` lies in the mapping. The kernel writes
            // into it; no Rust reference to these bytes exists (concurrent
            // connections may share slots: the bytes are never looked at).
            let n = unsafe { libc::read(s.as_raw_fd(), p as *mut libc::c_void, len) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Reads exactly `len` bytes from `s` into successive slots.
    fn read_exact(&self, s: &TcpStream, mut len: usize) -> std::io::Result<()> {
        while len > 0 {
            match self.read_some(s, len)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => len -= n,
            }
        }
        Ok(())
    }

    /// Sends `len` bytes to `s` out of successive slots.
    fn write_all(&self, s: &TcpStream, mut len: usize) -> std::io::Result<()> {
        while len > 0 {
            let (p, n) = self.slot(len);
            let mut off = 0;
            while off < n {
                // SAFETY: as in `read_some`; the kernel only reads the bytes.
                let w = unsafe { libc::write(s.as_raw_fd(), p.add(off) as *const libc::c_void, n - off) };
                if w < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                off += w as usize;
            }
            len -= n;
        }
        Ok(())
    }
}

/// Serves raw TCP peers: the first byte of a connection picks the mode:
/// `S` (the peer streams; bytes are read into `region` and their count is
/// sent back as a u64 once the peer shuts its side), `R` + u64 chunk (this
/// side streams chunks out of `region` until the peer closes), `Q`
/// (request/response, see below), `P` (64-byte echo).
pub fn tcp_serve(l: TcpListener, region: std::sync::Arc<WsRegion>) {
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let region = region.clone();
        let _ = std::thread::Builder::new()
            .name("bench-tcp-peer".into())
            .spawn(move || {
                let _ = s.set_nodelay(true);
                let mut mode = [0u8; 1];
                if s.read_exact(&mut mode).is_err() {
                    return;
                }
                match mode[0] {
                    b'S' => {
                        let mut n = 0u64;
                        loop {
                            match region.read_some(&s, 1 << 20) {
                                Ok(0) => break,
                                Ok(k) => n += k as u64,
                                Err(_) => return,
                            }
                        }
                        let _ = s.write_all(&n.to_le_bytes());
                    }
                    b'R' => {
                        let mut len = [0u8; 8];
                        if s.read_exact(&mut len).is_err() {
                            return;
                        }
                        let chunk = u64::from_le_bytes(len).clamp(1, 1 << 30) as usize;
                        while region.write_all(&s, chunk).is_ok() {}
                    }
                    b'Q' => {
                        // Request / response: a u64 length, then that many bytes
                        // each way as the request says (bit 63 set: the peer
                        // sends them and gets a 1-byte ack; clear: this side sends).
                        let mut req = [0u8; 8];
                        while s.read_exact(&mut req).is_ok() {
                            let r = u64::from_le_bytes(req);
                            let (upload, len) = (r >> 63 == 1, (r & !(1 << 63)) as usize);
                            let ok = if upload {
                                region.read_exact(&s, len).is_ok() && s.write_all(&[1]).is_ok()
                            } else {
                                region.write_all(&s, len).is_ok()
                            };
                            if !ok {
                                break;
                            }
                        }
                    }
                    b'P' => {
                        let mut b = [0u8; 64];
                        while s.read_exact(&mut b).is_ok() {
                            if s.write_all(&b).is_err() {
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            });
    }
}

fn tcp_connect(addr: &str, mode: u8) -> Result<TcpStream, String> {
    let mut s = raw_connect(addr)?;
    s.write_all(&[mode]).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Raw TCP stream ops (no store): the baseline of the transfer path.
pub fn tcp_op(c: &Cmd) -> Result<Res, String> {
    let size = c.size.max(1) as usize;
    match c.op.as_str() {
        "stream_send" => {
            let mut s = tcp_connect(&c.addr, b'S')?;
            let mut src = vec![0u8; size];
            fill(&mut src, 8);
            // The time runs from the first write to the peer's count of
            // received bytes (so includes draining the socket buffers).
            let (m, t0, _) = timed(c, None, |rec| -> Result<(), String> {
                while rec.more() {
                    rec.time(|| s.write_all(&src))
                        .map_err(|e| format!("stream write: {e}"))?;
                }
                Ok(())
            })?;
            s.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
            let mut n = [0u8; 8];
            s.read_exact(&mut n).map_err(|e| format!("stream count: {e}"))?;
            let t1 = unix_now();
            let got = u64::from_le_bytes(n);
            if got != m.ops * size as u64 {
                return Err(format!("stream: sent {} bytes, peer got {got}", m.ops * size as u64));
            }
            let mut r = Res::of(&m, 1, size as u64, t0, t1);
            r.busy_s = t1 - t0;
            r.wall_s = r.busy_s;
            Ok(r)
        }
        "stream_recv" => {
            let mut s = tcp_connect(&c.addr, b'R')?;
            s.write_all(&(size as u64).to_le_bytes()).map_err(|e| e.to_string())?;
            let mut dst = vec![0u8; size];
            fill(&mut dst, 10);
            let (m, t0, t1) = timed(c, None, |rec| -> Result<(), String> {
                while rec.more() {
                    rec.time(|| s.read_exact(&mut dst))
                        .map_err(|e| format!("stream read: {e}"))?;
                }
                Ok(())
            })?;
            let mut r = Res::of(&m, 1, size as u64, t0, t1);
            r.busy_s = t1 - t0;
            r.wall_s = r.busy_s;
            Ok(r)
        }
        "rr_send" | "rr_recv" => {
            // One object per request and response, like a put (the bytes
            // then an ack) or a get (a request then the bytes), with no
            // metadata: what a transfer protocol without pipelining across
            // objects can reach.
            let mut s = tcp_connect(&c.addr, b'Q')?;
            let upload = c.op == "rr_send";
            let mut buf = vec![0u8; size];
            fill(&mut buf, 12);
            let req = (size as u64) | if upload { 1 << 63 } else { 0 };
            let one = |s: &mut TcpStream, buf: &mut [u8]| -> std::io::Result<()> {
                if upload {
                    s.write_all(&req.to_le_bytes())?;
                    s.write_all(buf)?;
                    let mut ack = [0u8; 1];
                    s.read_exact(&mut ack)
                } else {
                    s.write_all(&req.to_le_bytes())?;
                    s.read_exact(buf)
                }
            };
            let (m, t0, t1) = timed(c, None, |rec| -> Result<(), String> {
                while rec.more() {
                    rec.time(|| one(&mut s, &mut buf))
                        .map_err(|e| format!("request/response: {e}"))?;
                }
                Ok(())
            })?;
            Ok(Res::of(&m, 1, size as u64, t0, t1))
        }
        "pingpong" => {
            let mut s = tcp_connect(&c.addr, b'P')?;
            let mut b = [7u8; 64];
            let warm = Cmd {
                iters: Some(200),
                start_at: None,
                ..c.clone()
            };
            let mut rtt = |c: &Cmd| {
                timed(c, None, |rec| -> Result<(), String> {
                    while rec.more() {
                        rec.time(|| s.write_all(&b).and_then(|_| s.read_exact(&mut b)))
                            .map_err(|e| format!("ping-pong: {e}"))?;
                    }
                    Ok(())
                })
            };
            rtt(&warm)?;
            let (m, t0, t1) = rtt(c)?;
            Ok(Res::of(&m, 1, 0, t0, t1))
        }
        other => Err(format!("unknown op {other} for a tcp client")),
    }
}

// ---- the client process -------------------------------------------------------------

#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// mmc, redis, memcpy, tcp (raw stream ops only) or tcp-server.
    #[arg(long)]
    target: String,
    /// MetaService address (mmc).
    #[arg(long, default_value = "127.0.0.1:5000")]
    meta: String,
    /// auto or tcp (mmc).
    #[arg(long, default_value = "auto")]
    protocol: String,
    /// Server address (redis), or listen address (tcp-server).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Region of the memcpy target, and of the tcp-server.
    #[arg(long, default_value_t = 256 << 20)]
    ws: u64,
    /// local.spin_wait_us (mmc) [default: the config default].
    #[arg(long)]
    spin_us: Option<u64>,
    /// local.transfer_congestion (mmc), and the congestion control of raw
    /// TCP sockets (tcp, tcp-server) [default: the config default].
    #[arg(long)]
    congestion: Option<String>,
    /// Cluster token file (mmc) [default: $MMC_TOKEN_FILE].
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
}

/// Congestion control of this process's raw TCP sockets.
static RAW_CONGESTION: std::sync::OnceLock<mmc_local::transfer::Congestion> = std::sync::OnceLock::new();

fn raw_cc() -> &'static mmc_local::transfer::Congestion {
    RAW_CONGESTION.get_or_init(|| mmc_local::transfer::Congestion::from_config(&super::cluster::congestion()))
}

/// A raw-TCP listener with this process's congestion control (the same as
/// MemCache's transfer sockets in this run), inherited by what it accepts.
pub fn raw_listen(addr: &str) -> Result<TcpListener, String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("raw tcp listen {addr}: {e}"))?;
    raw_cc().apply(&l);
    Ok(l)
}

/// A raw-TCP connection set up as MemCache's transfer connections are
/// (`mmc_local::transfer::connect`: congestion control before the
/// handshake, `TCP_NODELAY`), as a blocking socket.
pub fn raw_connect(addr: &str) -> Result<TcpStream, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let s = rt
        .block_on(mmc_local::transfer::connect(addr, raw_cc()))
        .and_then(|s| s.into_std())
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok(s)
}

fn answer(out: &mut impl Write, r: &Res) {
    let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
    let _ = out.flush();
}

fn serve<T: Target>(mut w: Option<Worker<T>>) -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    answer(
        &mut out,
        &Res {
            ok: true,
            info: Some(format!("ready pid {}", std::process::id())),
            ..Res::default()
        },
    );
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let c: Cmd = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                answer(
                    &mut out,
                    &Res {
                        error: Some(format!("bad command: {e}")),
                        ..Res::default()
                    },
                );
                continue;
            }
        };
        if c.op == "quit" {
            answer(
                &mut out,
                &Res {
                    ok: true,
                    ..Res::default()
                },
            );
            break;
        }
        let r = match (c.op.as_str(), w.as_mut()) {
            ("stream_send" | "stream_recv" | "rr_send" | "rr_recv" | "pingpong", _) => tcp_op(&c),
            (_, Some(w)) => w.exec(&c),
            (_, None) => Err(format!("op {} needs a store target", c.op)),
        };
        answer(
            &mut out,
            &r.unwrap_or_else(|e| Res {
                error: Some(e),
                ..Res::default()
            }),
        );
    }
    Ok(())
}

/// `mmc bench-client`: one client process of a multi-client measurement.
pub fn client_main(a: ClientArgs) -> Result<(), String> {
    crate::init_logging("warn");
    let congestion = a
        .congestion
        .clone()
        .unwrap_or_else(|| mmc_config::LocalConfig::default().transfer_congestion);
    let _ = RAW_CONGESTION.set(mmc_local::transfer::Congestion::from_config(&congestion));
    match a.target.as_str() {
        "mmc" => {
            let protocol = match a.protocol.as_str() {
                "tcp" => mmc_config::Protocol::Tcp,
                _ => mmc_config::Protocol::Auto,
            };
            let mut cfg = mmc_config::LocalConfig {
                meta_addr: a.meta.clone(),
                dram_size: mmc_config::ByteSize(0),
                protocol,
                log_level: Some("warn".into()),
                spin_wait_us: a.spin_us.unwrap_or(mmc_config::LocalConfig::default().spin_wait_us),
                transfer_congestion: congestion,
                ..mmc_config::LocalConfig::default()
            };
            if let Some(t) = &a.token_file {
                cfg.security.token = None;
                cfg.security.token_file = Some(t.display().to_string());
            }
            let c = BlockingObjectStore::connect(cfg).map_err(|e| format!("connect to {}: {e}", a.meta))?;
            let r = serve(Some(Worker::new(Mmc(c.clone()), None)));
            c.close();
            r
        }
        "redis" => serve(Some(Worker::new(Redis(super::redis::Conn::connect(&a.addr)?), None))),
        "memcpy" => serve(Some(Worker::new(Memcpy::new(a.ws), None))),
        "tcp" => serve::<Memcpy>(None),
        "tcp-server" => {
            let l = raw_listen(&a.addr)?;
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            let region = std::sync::Arc::new(WsRegion::new(a.ws)?);
            std::thread::spawn(move || tcp_serve(l, region));
            let mut out = std::io::stdout().lock();
            answer(
                &mut out,
                &Res {
                    ok: true,
                    info: Some(addr.to_string()),
                    ..Res::default()
                },
            );
            drop(out);
            // Serve until the parent closes stdin.
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
            Ok(())
        }
        other => Err(format!(
            "--target {other}: expected mmc, redis, memcpy, tcp or tcp-server"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(op: &str, size: u64, slots: usize) -> Cmd {
        Cmd {
            op: op.into(),
            size,
            slots,
            batch: 4,
            prefix: "t".into(),
            iters: Some(25),
            ..Cmd::default()
        }
    }

    #[test]
    fn memcpy_target_runs_every_loop() {
        let mut w = Worker::new(Memcpy::new(1 << 20), None);
        let r = w.exec(&cmd("put", 4096, 8)).unwrap();
        assert_eq!((r.ops, r.keys_per_op, r.bytes_per_key), (25, 1, 4096));
        w.exec(&cmd("fill", 4096, 16)).unwrap();
        assert_eq!(w.exec(&cmd("get", 4096, 16)).unwrap().ops, 25);
        let r = w.exec(&cmd("get_batch", 4096, 16)).unwrap();
        assert_eq!(r.keys_per_op, 4);
        w.exec(&cmd("exist_batch", 4096, 16)).unwrap();
        assert!(w.exec(&cmd("get", 8192, 16)).is_err(), "size differs from the fill");
        let mut l = cmd("fill", 0, 3);
        l.layers = true;
        let mut w = Worker::new(Memcpy::new(32 << 20), None);
        w.exec(&l).unwrap();
        l.op = "get".into();
        assert_eq!(w.exec(&l).unwrap().bytes_per_key, BLOCK_BYTES);
    }

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
    fn protocol_round_trips() {
        let c: Cmd = serde_json::from_str(r#"{"op":"get","size":4096}"#).unwrap();
        assert_eq!((c.op.as_str(), c.size, c.slots), ("get", 4096, 0));
        let r: Res = serde_json::from_str(r#"{"ok":true,"ops":3,"busy_s":0.5}"#).unwrap();
        assert_eq!(r.measured().ops, 3);
    }
}
