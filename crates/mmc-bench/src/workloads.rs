//! The measurements of `mmc bench`: memcpy baselines, the same-host shm
//! data path, the forced-TCP data path beside a raw loopback stream, and
//! batches of small keys.

mod batch;
mod interleave;
mod memcpy;
mod objects;
mod shm;
mod tcp;

pub use batch::batch;
pub use memcpy::memcpy;
pub use shm::{pretouch, shm, shm_async_commit};
pub use tcp::tcp;

use super::cluster::Cluster;
use mmc_local::{BatchResult, BlockingObjectStore, Piece, PutOptions};

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

fn emptied(cluster: &Cluster, c: &BlockingObjectStore, notes: &mut Vec<String>) -> Result<(), String> {
    if !cluster.empty(c)? {
        notes.push("warning: the segment was not reported empty within 5 s after remove_all".into());
    }
    Ok(())
}
