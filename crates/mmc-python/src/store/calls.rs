//! The detached batch calls behind the Python methods of
//! `DistributedObjectStore`: selecting the valid entries of a batch, running
//! the blocking call without the GIL, and turning results into codes.

use super::DistributedObjectStore;
use crate::args::{self, Ptr};
use crate::code;
use crate::types::{KeyInfo, ReplicateConfig};
use mmc_local::{BlockingObjectStore, Error, ErrorKind, Piece, PutOptions};
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
        Ok(()) => code::OK,
        Err(e) if e.kind() == ErrorKind::DuplicatedObject => code::OK,
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

/// One value per key, `None` marking an invalid one: a list of pieces
/// (layers), or `[Piece; 1]` for the flat calls (no allocation per key).
type Values<V = Vec<Piece>> = Vec<Option<V>>;

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

/// Each key as a value of its own, for the calls that take only keys.
fn key_vals(keys: &[Option<&str>]) -> Vec<Option<()>> {
    keys.iter().map(|k| k.map(|_| ())).collect()
}

/// One code per entry of an `n`-entry batch: `code_of` each result of the
/// valid entries (at `idx`), the batch's error for all of them when the
/// whole call failed (ERROR after a panic), INVALID_PARAM for the others.
fn codes<T>(n: usize, idx: &[usize], r: Option<mmc_local::Result<Vec<T>>>, code_of: impl Fn(&T) -> i32) -> Vec<i32> {
    let mut out = vec![code::INVALID_PARAM; n];
    match r {
        Some(Ok(results)) => idx.iter().zip(&results).for_each(|(&i, r)| out[i] = code_of(r)),
        Some(Err(e)) => idx.iter().for_each(|&i| out[i] = e.code()),
        None => idx.iter().for_each(|&i| out[i] = code::ERROR),
    }
    out
}

impl DistributedObjectStore {
    /// The client and the valid entries of a batch, or the code every entry
    /// reads instead: NOT_INITIALIZED without a client, INVALID_PARAM when
    /// the batch is over `MAX_BATCH` or has no valid entry.
    fn batch<'a, T>(
        &self,
        keys: &[Option<&'a str>],
        vals: Vec<Option<T>>,
    ) -> Result<(BlockingObjectStore, Valid<'a, T>), i32> {
        let store = self.handle().ok_or(code::NOT_INITIALIZED)?;
        if keys.len() > mmc_wire::MAX_BATCH {
            return Err(code::INVALID_PARAM);
        }
        let v = select(keys, vals);
        if v.idx.is_empty() {
            return Err(code::INVALID_PARAM);
        }
        Ok((store, v))
    }

    /// Puts the valid entries; the others read INVALID_PARAM.
    pub(super) fn run_put<V: AsRef<[Piece]> + Sync>(
        &self,
        py: Python<'_>,
        keys: &[Option<&str>],
        values: Values<V>,
        opts: Option<PutOptions>,
    ) -> Vec<i32> {
        let n = keys.len();
        let (store, v) = match self.batch(keys, values) {
            Ok(b) => b,
            Err(c) => return vec![c; n],
        };
        let Some(opts) = opts else {
            return vec![code::INVALID_PARAM; n];
        };
        let (ks, vs) = (&v.keys, &v.vals);
        // SAFETY: every piece points into a live buffer view held by the
        // caller's frame, or at an address the Python caller vouched for
        // (the memcache_hybrid contract for integer pointers).
        let r = blocking(py, || unsafe { store.put_raw_batch(ks, vs, &opts) });
        codes(n, &v.idx, r, put_code)
    }

    /// Gets the valid entries into their buffers; the others read
    /// INVALID_PARAM.
    pub(super) fn run_get_into<V: AsRef<[Piece]> + Sync>(
        &self,
        py: Python<'_>,
        keys: &[Option<&str>],
        dests: Values<V>,
    ) -> Vec<i32> {
        let n = keys.len();
        let (store, v) = match self.batch(keys, dests) {
            Ok(b) => b,
            Err(c) => return vec![c; n],
        };
        let (ks, ds) = (&v.keys, &v.vals);
        // SAFETY: as in run_put, for writes.
        let r = blocking(py, || unsafe { store.get_into_raw_batch(ks, ds) });
        codes(n, &v.idx, r, unit_code)
    }

    /// One value per key from flat pointer and size lists.
    pub(super) fn flat_pieces(
        n: usize,
        ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        writable: bool,
    ) -> PyResult<(Values<[Piece; 1]>, Vec<Ptr>)> {
        let ptrs = args::ptrs(ptrs, writable, "buffer_ptrs")?;
        let sizes = args::sizes(sizes, "sizes")?;
        if ptrs.len() != n || sizes.len() != n {
            return Ok((vec![None; n], Vec::new()));
        }
        let pieces = ptrs
            .iter()
            .zip(&sizes)
            .map(|(p, s)| p.as_ref()?.piece(*s).map(|p| [p]))
            .collect();
        // Only buffer views need holding (integer addresses hold nothing).
        Ok((
            pieces,
            ptrs.into_iter()
                .flatten()
                .filter(|p| matches!(p, Ptr::Buf(_)))
                .collect(),
        ))
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
        let Ok((store, v)) = self.batch(keys, key_vals(keys)) else {
            return out;
        };
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
        let (store, v) = match self.batch(keys, key_vals(keys)) {
            Ok(b) => b,
            Err(c) => return vec![c; n],
        };
        let ks = &v.keys;
        codes(n, &v.idx, blocking(py, || store.exist_batch(ks)), |&found| found as i32)
    }

    pub(super) fn remove_codes(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<i32> {
        let n = keys.len();
        let (store, v) = match self.batch(keys, key_vals(keys)) {
            Ok(b) => b,
            Err(c) => return vec![c; n],
        };
        let ks = &v.keys;
        codes(n, &v.idx, blocking(py, || store.remove_batch(ks)), unit_code)
    }

    pub(super) fn key_infos(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<KeyInfo> {
        let mut out = vec![KeyInfo::default(); keys.len()];
        let Ok((store, v)) = self.batch(keys, key_vals(keys)) else {
            return out;
        };
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
