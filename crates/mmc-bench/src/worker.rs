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

mod buffers;
mod client;
mod loops;
mod protocol;
mod raw_tcp;
mod targets;

pub use buffers::{fill, stamp, OffsetBuf};
pub use client::{client_main, ClientArgs};
pub use loops::Worker;
pub use protocol::{unix_now, Cmd, Res};
pub use raw_tcp::{raw_connect, raw_listen, WsRegion};
pub use targets::{Memcpy, Mmc, Redis, Target};

pub const LAYERS: usize = 61;
pub const KPAGE: usize = 128 << 10;
pub const VPAGE: usize = 16 << 10;
pub const BLOCKS: usize = 4;
/// Bytes of one layered KV block.
pub const BLOCK_BYTES: u64 = (LAYERS * (KPAGE + VPAGE)) as u64;
