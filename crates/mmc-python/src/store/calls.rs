//! The detached batch calls behind the Python methods of
//! `DistributedObjectStore`: selecting the valid entries of a batch, running
//! the blocking call without the GIL, and turning results into codes.

use super::DistributedObjectStore;
use crate::args::{self, Ptr};
use crate::code;
use crate::types::{KeyInfo, ReplicateConfig};
use mmc_local::{Error, Piece, PutOptions};
use pyo3::prelude::*;
use pyo3::types::PyAny;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f` detached from the interpreter; a panic becomes `None` (never
/// unwinds into Python).
pub(super) fn blocking<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> Option<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)).ok())
}

/// The code of a put result: a duplicate key is success.
fn put_code(r: &Result<(), Error>) -> i32 {
    match r {
        Ok(()) | Err(Error::DuplicatedObject) => code::OK,
        Err(e) => e.code(),
    }
}

fn unit_code(r: &Result<(), Error>) -> i32 {
    match r {
        Ok(()) => code::OK,
        Err(e) => e.code(),
    }
}

/// Collapses per-key codes into one int: 0, or the first failure.
pub(super) fn first_failure(codes: &[i32]) -> i32 {
    codes.iter().copied().find(|&c| c != code::OK).unwrap_or(code::OK)
}

/// One value (a list of pieces) per key; `None` marks an invalid one.
type Values = Vec<Option<Vec<Piece>>>;

/// The valid entries of a batch: their positions and values.
pub(super) struct Valid<'a, T> {
    pub(super) idx: Vec<usize>,
    pub(super) keys: Vec<&'a str>,
    pub(super) vals: Vec<T>,
}

fn select<'a, T>(keys: &[Option<&'a str>], vals: Vec<Option<T>>) -> Valid<'a, T> {
    let mut v = Valid {
        idx: Vec::with_capacity(keys.len()),
        keys: Vec::with_capacity(keys.len()),
        vals: Vec::with_capacity(keys.len()),
    };
    for (i, (k, val)) in keys.iter().zip(vals).enumerate() {
        if let (Some(k), Some(val)) = (k, val) {
            v.idx.push(i);
            v.keys.push(*k);
            v.vals.push(val);
        }
    }
    v
}

fn select_keys<'a>(keys: &[Option<&'a str>]) -> Valid<'a, ()> {
    select(keys, keys.iter().map(|k| k.as_ref().map(|_| ())).collect())
}

impl DistributedObjectStore {
    /// Puts the valid entries; the others read INVALID_PARAM.
    pub(super) fn run_put(
        &self,
        py: Python<'_>,
        keys: &[Option<&str>],
        values: Values,
        opts: Option<PutOptions>,
    ) -> Vec<i32> {
        let n = keys.len();
        let Some(store) = self.handle() else {
            return vec![code::NOT_INITIALIZED; n];
        };
        let mut out = vec![code::INVALID_PARAM; n];
        let Some(opts) = opts else { return out };
        if n > mmc_wire::MAX_BATCH {
            return out;
        }
        let v = select(keys, values);
        if v.idx.is_empty() {
            return out;
        }
        let (ks, vs) = (&v.keys, &v.vals);
        // SAFETY: every piece points into a live buffer view held by the
        // caller's frame, or at an address the Python caller vouched for
        // (the memcache_hybrid contract for integer pointers).
        let r = blocking(py, || unsafe { store.put_raw_batch(ks, vs, &opts) });
        match r {
            Some(Ok(results)) => {
                for (i, r) in v.idx.iter().zip(&results) {
                    out[*i] = put_code(r);
                }
            }
            Some(Err(e)) => v.idx.iter().for_each(|&i| out[i] = e.code()),
            None => v.idx.iter().for_each(|&i| out[i] = code::ERROR),
        }
        out
    }

    /// Gets the valid entries into their buffers; the others read
    /// INVALID_PARAM.
    pub(super) fn run_get_into(&self, py: Python<'_>, keys: &[Option<&str>], dests: Values) -> Vec<i32> {
        let n = keys.len();
        let Some(store) = self.handle() else {
            return vec![code::NOT_INITIALIZED; n];
        };
        let mut out = vec![code::INVALID_PARAM; n];
        if n > mmc_wire::MAX_BATCH {
            return out;
        }
        let v = select(keys, dests);
        if v.idx.is_empty() {
            return out;
        }
        let (ks, ds) = (&v.keys, &v.vals);
        // SAFETY: as in run_put, for writes.
        let r = blocking(py, || unsafe { store.get_into_raw_batch(ks, ds) });
        match r {
            Some(Ok(results)) => {
                for (i, r) in v.idx.iter().zip(&results) {
                    out[*i] = unit_code(r);
                }
            }
            Some(Err(e)) => v.idx.iter().for_each(|&i| out[i] = e.code()),
            None => v.idx.iter().for_each(|&i| out[i] = code::ERROR),
        }
        out
    }

    /// One value per key from flat pointer and size lists.
    pub(super) fn flat_pieces(
        n: usize,
        ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        writable: bool,
    ) -> PyResult<(Values, Vec<Ptr>)> {
        let ptrs = args::ptrs(ptrs, writable, "buffer_ptrs")?;
        let sizes = args::sizes(sizes, "sizes")?;
        if ptrs.len() != n || sizes.len() != n {
            return Ok((vec![None; n], Vec::new()));
        }
        let pieces = ptrs
            .iter()
            .zip(&sizes)
            .map(|(p, s)| p.as_ref()?.piece(*s).map(|p| vec![p]))
            .collect();
        Ok((pieces, ptrs.into_iter().flatten().collect()))
    }

    /// One layered value per key from 2-D pointer and size lists.
    fn layered_pieces(
        n: usize,
        ptrs2d: &Bound<'_, PyAny>,
        sizes2d: &Bound<'_, PyAny>,
        writable: bool,
    ) -> PyResult<(Values, Vec<Ptr>)> {
        let rows_p = args::items(ptrs2d, "buffer_ptrs")?;
        let rows_s = args::items(sizes2d, "sizes")?;
        let mut held = Vec::new();
        let mut pieces = Vec::with_capacity(n);
        let mismatched = rows_p.len() != n || rows_s.len() != n;
        for (rp, rs) in rows_p.iter().zip(&rows_s) {
            let ps = args::ptrs(rp, writable, "buffer_ptrs")?;
            let ss = args::sizes(rs, "sizes")?;
            pieces.push(args::layer_pieces(&ps, &ss));
            held.extend(ps.into_iter().flatten());
        }
        if mismatched {
            return Ok((vec![None; n], held));
        }
        Ok((pieces, held))
    }

    pub(super) fn batch_put_layers_impl(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<i32>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        let opts = ReplicateConfig::from_arg(config)?;
        let (pieces, _held) = Self::layered_pieces(keys.len(), buffer_ptrs, sizes, false)?;
        if !args::direct_put_ok(direct) {
            return Ok(vec![code::INVALID_PARAM; keys.len()]);
        }
        Ok(self.run_put(py, &keys, pieces, opts))
    }

    pub(super) fn batch_get_layers_impl(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
    ) -> PyResult<Vec<i32>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        let (pieces, _held) = Self::layered_pieces(keys.len(), buffer_ptrs, sizes, true)?;
        if !args::direct_get_ok(direct) {
            return Ok(vec![code::INVALID_PARAM; keys.len()]);
        }
        Ok(self.run_get_into(py, &keys, pieces))
    }
}

impl DistributedObjectStore {
    /// The value of each key (`None` when absent, invalid or failed).
    pub(super) fn values(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<Option<Vec<u8>>> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let Some(store) = self.handle() else {
            return out;
        };
        if keys.len() > mmc_wire::MAX_BATCH {
            return out;
        }
        let v = select_keys(keys);
        if v.idx.is_empty() {
            return out;
        }
        let ks = &v.keys;
        if let Some(Ok(results)) = blocking(py, || store.get_batch(ks)) {
            for (i, r) in v.idx.iter().zip(results) {
                out[*i] = r.ok();
            }
        }
        out
    }

    pub(super) fn exist_codes(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<i32> {
        let n = keys.len();
        let Some(store) = self.handle() else {
            return vec![code::NOT_INITIALIZED; n];
        };
        let mut out = vec![code::INVALID_PARAM; n];
        if n > mmc_wire::MAX_BATCH {
            return out;
        }
        let v = select_keys(keys);
        if v.idx.is_empty() {
            return out;
        }
        let ks = &v.keys;
        match blocking(py, || store.exist_batch(ks)) {
            Some(Ok(found)) => {
                for (i, f) in v.idx.iter().zip(found) {
                    out[*i] = f as i32;
                }
            }
            Some(Err(e)) => v.idx.iter().for_each(|&i| out[i] = e.code()),
            None => v.idx.iter().for_each(|&i| out[i] = code::ERROR),
        }
        out
    }

    pub(super) fn remove_codes(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<i32> {
        let n = keys.len();
        let Some(store) = self.handle() else {
            return vec![code::NOT_INITIALIZED; n];
        };
        let mut out = vec![code::INVALID_PARAM; n];
        if n > mmc_wire::MAX_BATCH {
            return out;
        }
        let v = select_keys(keys);
        if v.idx.is_empty() {
            return out;
        }
        let ks = &v.keys;
        match blocking(py, || store.remove_batch(ks)) {
            Some(Ok(results)) => {
                for (i, r) in v.idx.iter().zip(&results) {
                    out[*i] = unit_code(r);
                }
            }
            Some(Err(e)) => v.idx.iter().for_each(|&i| out[i] = e.code()),
            None => v.idx.iter().for_each(|&i| out[i] = code::ERROR),
        }
        out
    }

    pub(super) fn key_infos(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<KeyInfo> {
        let n = keys.len();
        let mut out = vec![KeyInfo::default(); n];
        let Some(store) = self.handle() else {
            return out;
        };
        if n > mmc_wire::MAX_BATCH {
            return out;
        }
        let v = select_keys(keys);
        if v.idx.is_empty() {
            return out;
        }
        let ks = &v.keys;
        if let Some(Ok(results)) = blocking(py, || store.key_info_batch(ks)) {
            let found: Vec<&str> = ks
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(k, _)| *k)
                .collect();
            let mut gvas = if found.is_empty() {
                Vec::new()
            } else {
                crate::layerwise::addresses(py, &store, &found)
            }
            .into_iter();
            for (i, r) in v.idx.iter().zip(&results) {
                if let Ok(info) = r {
                    out[*i] = KeyInfo::from_info(info, gvas.next().unwrap_or_default());
                }
            }
        }
        out
    }
}
