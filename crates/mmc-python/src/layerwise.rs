//! The layer-wise, direct-address calls of `DistributedObjectStore`
//! (`batch_alloc`, `batch_write_finish`, `batch_add_lease`,
//! `batch_remove_lease`, `batch_copy`, and the addresses of `KeyInfo`),
//! with the original MemCache's return conventions: the argument parsing
//! and the mapping of [`mmc_local`]'s results to ints. The semantics
//! (addresses, leases, the remote path) are `mmc_local::direct`'s.

use crate::args::{self, Ptr};
use crate::code;
use mmc_local::{BlockingObjectStore, CopyDirection, Piece};
use pyo3::prelude::*;
use pyo3::types::PyAny;

/// Runs `f` detached from the interpreter; a panic becomes `None`.
fn blocking<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> Option<T> {
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok())
}

fn codes(r: Option<mmc_local::BatchResult>, n: usize) -> Vec<i32> {
    match r {
        Some(Ok(v)) => v
            .iter()
            .map(|r| match r {
                Ok(()) => code::OK,
                Err(e) => e.code(),
            })
            .collect(),
        Some(Err(e)) => vec![e.code(); n],
        None => vec![code::ERROR; n],
    }
}

/// The valid keys (all of them, or `None` when one is not a valid string).
fn all_keys<'a>(keys: &[Option<&'a str>]) -> Option<Vec<&'a str>> {
    keys.iter().copied().collect()
}

/// `batch_alloc(keys, sizes)`: one address (> 0) or negative code per key.
pub fn alloc(
    py: Python<'_>,
    store: Option<BlockingObjectStore>,
    keys: &Bound<'_, PyAny>,
    sizes: &Bound<'_, PyAny>,
) -> PyResult<Vec<i64>> {
    let items = args::items(keys, "keys")?;
    let keys = args::keys(&items)?;
    let sizes = args::items(sizes, "sizes")?
        .iter()
        .map(|s| args::uint(s, "sizes"))
        .collect::<PyResult<Vec<_>>>()?;
    let n = keys.len();
    let Some(store) = store else {
        return Ok(vec![i64::from(code::NOT_INITIALIZED); n]);
    };
    if sizes.len() != n || n > mmc_wire::MAX_BATCH {
        return Ok(vec![i64::from(code::INVALID_PARAM); n]);
    }
    // Invalid keys and sizes are reported per key by the store (an
    // unrepresentable size as 0, which it refuses).
    let ks: Vec<&str> = keys.iter().map(|k| k.as_deref().unwrap_or("")).collect();
    let ss: Vec<u64> = sizes.iter().map(|s| s.unwrap_or(0)).collect();
    Ok(match blocking(py, || store.alloc_batch(&ks, &ss)) {
        Some(Ok(v)) => v
            .into_iter()
            .map(|r| match r {
                Ok(addr) => i64::try_from(addr).unwrap_or(i64::from(code::ERROR)),
                Err(e) => i64::from(e.code()),
            })
            .collect(),
        Some(Err(e)) => vec![i64::from(e.code()); n],
        None => vec![i64::from(code::ERROR); n],
    })
}

/// `batch_write_finish(keys, results)`: one code per key.
pub fn write_finish(
    py: Python<'_>,
    store: Option<BlockingObjectStore>,
    keys: &Bound<'_, PyAny>,
    results: &Bound<'_, PyAny>,
) -> PyResult<Vec<i32>> {
    let items = args::items(keys, "keys")?;
    let keys = args::keys(&items)?;
    let results = args::items(results, "results")?
        .iter()
        .map(|r| r.extract::<i64>())
        .collect::<PyResult<Vec<i64>>>()?;
    let n = keys.len();
    let Some(store) = store else {
        return Ok(vec![code::NOT_INITIALIZED; n]);
    };
    if results.len() != n || n > mmc_wire::MAX_BATCH {
        return Ok(vec![code::INVALID_PARAM; n]);
    }
    let ks: Vec<&str> = keys.iter().map(|k| k.as_deref().unwrap_or("")).collect();
    let ok: Vec<bool> = results.iter().map(|&r| r == 0).collect();
    Ok(codes(blocking(py, || store.write_finish_batch(&ks, &ok)), n))
}

/// `batch_add_lease(keys, lease_ttl_ms)`: one code per key.
pub fn add_lease(
    py: Python<'_>,
    store: Option<BlockingObjectStore>,
    keys: &Bound<'_, PyAny>,
    lease_ttl_ms: &Bound<'_, PyAny>,
) -> PyResult<Vec<i32>> {
    let items = args::items(keys, "keys")?;
    let keys = args::keys(&items)?;
    let ttl = args::uint(lease_ttl_ms, "lease_ttl_ms")?;
    let n = keys.len();
    let Some(store) = store else {
        return Ok(vec![code::NOT_INITIALIZED; n]);
    };
    let (Some(ttl), true) = (ttl, n <= mmc_wire::MAX_BATCH) else {
        return Ok(vec![code::INVALID_PARAM; n]);
    };
    let ks: Vec<&str> = keys.iter().map(|k| k.as_deref().unwrap_or("")).collect();
    Ok(codes(blocking(py, || store.add_lease_batch(&ks, ttl)), n))
}

/// `batch_remove_lease(keys)`: 0, or the first failure (LEASE_EXPIRED when
/// a lease had run out: bytes read under it must be discarded).
pub fn remove_lease(py: Python<'_>, store: Option<BlockingObjectStore>, keys: &Bound<'_, PyAny>) -> PyResult<i32> {
    let items = args::items(keys, "keys")?;
    let keys = args::keys(&items)?;
    let Some(store) = store else {
        return Ok(code::NOT_INITIALIZED);
    };
    let Some(ks) = all_keys(&keys).filter(|_| keys.len() <= mmc_wire::MAX_BATCH) else {
        return Ok(code::INVALID_PARAM);
    };
    let n = ks.len();
    let c = codes(blocking(py, || store.remove_lease_batch(&ks)), n);
    // An expired lease outranks other failures: the caller must discard.
    if c.contains(&code::LEASE_EXPIRED) {
        return Ok(code::LEASE_EXPIRED);
    }
    Ok(c.into_iter().find(|&c| c != code::OK).unwrap_or(code::OK))
}

/// `batch_copy(gvas, addrs, sizes, direct)`: 0, or the first failure.
pub fn copy(
    py: Python<'_>,
    store: Option<BlockingObjectStore>,
    gvas: &Bound<'_, PyAny>,
    addrs: &Bound<'_, PyAny>,
    sizes: &Bound<'_, PyAny>,
    direct: i64,
) -> PyResult<i32> {
    let dir = match direct {
        0 | 3 => CopyDirection::ToPool,
        1 | 2 => CopyDirection::FromPool,
        _ => return Ok(code::INVALID_PARAM),
    };
    let gvas = args::items(gvas, "gvas")?
        .iter()
        .map(|g| args::uint(g, "gvas"))
        .collect::<PyResult<Vec<_>>>()?;
    let ptrs = args::ptrs(addrs, dir == CopyDirection::FromPool, "addrs")?;
    let sizes = args::sizes(sizes, "sizes")?;
    let Some(store) = store else {
        return Ok(code::NOT_INITIALIZED);
    };
    let n = gvas.len();
    if ptrs.len() != n || sizes.len() != n || n > mmc_wire::MAX_BATCH {
        return Ok(code::INVALID_PARAM);
    }
    let mut g = Vec::with_capacity(n);
    let mut a = Vec::with_capacity(n);
    let mut s = Vec::with_capacity(n);
    for ((gva, p), size) in gvas.iter().zip(&ptrs).zip(&sizes) {
        let piece: Option<Piece> = p.as_ref().and_then(|p: &Ptr| p.piece(*size));
        let (Some(gva), Some(piece)) = (gva, piece) else {
            return Ok(code::INVALID_PARAM);
        };
        g.push(*gva);
        a.push(piece.addr);
        s.push(piece.len as u64);
    }
    // SAFETY: each piece is an address the caller passed for this copy
    // (its contract, as for every raw-pointer call of this module) or a
    // buffer view held in `ptrs` until the call returns.
    let r = blocking(py, || unsafe { store.copy_batch(&g, &a, &s, dir) });
    let c = codes(r, n);
    drop(ptrs);
    if c.contains(&code::LEASE_EXPIRED) {
        return Ok(code::LEASE_EXPIRED);
    }
    Ok(c.into_iter().find(|&c| c != code::OK).unwrap_or(code::OK))
}

/// The addresses of each valid key's replicas (nearest first), for
/// `KeyInfo.gva_list()`; empty for an absent key or on error.
pub fn addresses(py: Python<'_>, store: &BlockingObjectStore, keys: &[&str]) -> Vec<Vec<u64>> {
    match blocking(py, || store.direct_addresses_batch(keys)) {
        Some(Ok(v)) => v.into_iter().map(|r| r.unwrap_or_default()).collect(),
        _ => vec![Vec::new(); keys.len()],
    }
}
