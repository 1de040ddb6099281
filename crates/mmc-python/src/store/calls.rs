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

/// The valid entries of a batch: their keys, their values, and where they
/// sit in the caller's batch.
pub(super) struct Valid<'a, T> {
    /// The positions of the valid entries; `None` when every entry is
    /// valid (the common case, which then builds no index and maps results
    /// one to one).
    idx: Option<Vec<usize>>,
    pub(super) keys: Vec<&'a str>,
    pub(super) vals: Vec<T>,
}

impl<T> Valid<'_, T> {
    /// The position in the caller's batch of each valid entry, in order.
    pub(super) fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        let all = self.idx.is_none().then_some(0..self.keys.len());
        self.idx.iter().flatten().copied().chain(all.into_iter().flatten())
    }
}

fn select<'a, T>(keys: &[Option<&'a str>], vals: Vec<Option<T>>) -> Valid<'a, T> {
    if keys.iter().all(Option::is_some) && vals.iter().all(Option::is_some) {
        // Pushed one by one: a `flatten` cannot tell `collect` the length,
        // which then grows the vectors four times for 32 keys.
        let mut v = Valid {
            idx: None,
            keys: Vec::with_capacity(keys.len()),
            vals: Vec::with_capacity(keys.len()),
        };
        for (k, val) in keys.iter().zip(vals) {
            if let (Some(k), Some(val)) = (k, val) {
                v.keys.push(*k);
                v.vals.push(val);
            }
        }
        return v;
    }
    let mut v = Valid {
        idx: Some(Vec::with_capacity(keys.len())),
        keys: Vec::with_capacity(keys.len()),
        vals: Vec::with_capacity(keys.len()),
    };
    for (i, (k, val)) in keys.iter().zip(vals).enumerate() {
        if let (Some(k), Some(val)) = (k, val) {
            v.idx.get_or_insert_default().push(i);
            v.keys.push(*k);
            v.vals.push(val);
        }
    }
    v
}

/// Each key as a value of its own, for the calls that take only keys (a
/// vector of `()` allocates nothing).
fn key_vals(keys: &[Option<&str>]) -> Vec<Option<()>> {
    keys.iter().map(|k| k.map(|_| ())).collect()
}

/// One code per entry of an `n`-entry batch: `code_of` each result of the
/// valid entries, the batch's error for all of them when the whole call
/// failed (or the code of [`DistributedObjectStore::on_client`]'s failure),
/// INVALID_PARAM for the others.
fn codes<T, V>(
    n: usize,
    v: &Valid<'_, V>,
    r: Result<mmc_local::Result<Vec<T>>, i32>,
    code_of: impl Fn(&T) -> i32,
) -> Vec<i32> {
    if let (None, Ok(Ok(results))) = (&v.idx, &r) {
        if results.len() == n {
            return results.iter().map(code_of).collect();
        }
    }
    let mut out = vec![code::INVALID_PARAM; n];
    match r {
        Ok(Ok(results)) => v.positions().zip(&results).for_each(|(i, r)| out[i] = code_of(r)),
        Ok(Err(e)) => v.positions().for_each(|i| out[i] = e.code()),
        Err(c) => v.positions().for_each(|i| out[i] = c),
    }
    out
}

impl DistributedObjectStore {
    /// The valid entries of a batch, or the code every entry reads instead:
    /// NOT_INITIALIZED without a client, INVALID_PARAM when the batch is
    /// over `MAX_BATCH` or has no valid entry.
    fn batch<'a, T>(&self, keys: &[Option<&'a str>], vals: Vec<Option<T>>) -> Result<Valid<'a, T>, i32> {
        if self.store.read().is_none() {
            return Err(code::NOT_INITIALIZED);
        }
        if keys.len() > mmc_wire::MAX_BATCH {
            return Err(code::INVALID_PARAM);
        }
        let v = select(keys, vals);
        if v.keys.is_empty() {
            return Err(code::INVALID_PARAM);
        }
        Ok(v)
    }

    /// Runs `f` on this store's client, detached from the interpreter:
    /// `Err(NOT_INITIALIZED)` when there is none (closed meanwhile),
    /// `Err(ERROR)` when `f` panicked.
    ///
    /// The client is borrowed under the read lock, taken and released
    /// while detached: `close` takes the write lock while attached, so a
    /// guard held across re-attaching could deadlock with it. Borrowing
    /// rather than cloning the handle saves each call two atomic writes to
    /// the client's shared reference count (the clone and its drop were
    /// about 2% of a 32-key `batch_is_exist` in a profile).
    pub(super) fn on_client<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&BlockingObjectStore) -> T + Send,
    ) -> Result<T, i32> {
        match blocking(py, || self.store.read().as_ref().map(|(_, s)| f(s))) {
            Some(Some(r)) => Ok(r),
            Some(None) => Err(code::NOT_INITIALIZED),
            None => Err(code::ERROR),
        }
    }

    /// The code of a call on one key (`arg`: the key and what goes with
    /// it): NOT_INITIALIZED without a client, INVALID_PARAM when `arg` is
    /// `None` (an invalid key or value), else `code_of` the result of `f` on
    /// the client, or its error's code. Builds no batch for the one key.
    pub(super) fn one<A: Send, T: Send>(
        &self,
        py: Python<'_>,
        arg: Option<A>,
        f: impl FnOnce(&BlockingObjectStore, A) -> mmc_local::Result<T> + Send,
        code_of: impl FnOnce(&T) -> i32,
    ) -> i32 {
        if self.store.read().is_none() {
            return code::NOT_INITIALIZED;
        }
        let Some(arg) = arg else {
            return code::INVALID_PARAM;
        };
        match self.on_client(py, |store| f(store, arg)) {
            Ok(Ok(v)) => code_of(&v),
            Ok(Err(e)) => e.code(),
            Err(c) => c,
        }
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
        let v = match self.batch(keys, values) {
            Ok(v) => v,
            Err(c) => return vec![c; n],
        };
        let Some(opts) = opts else {
            return vec![code::INVALID_PARAM; n];
        };
        let (ks, vs) = (&v.keys, &v.vals);
        // SAFETY: every piece points into a live buffer view held by the
        // caller's frame, or at an address the Python caller vouched for
        // (the memcache_hybrid contract for integer pointers).
        let r = self.on_client(py, |store| unsafe { store.put_raw_batch(ks, vs, &opts) });
        codes(n, &v, r, put_code)
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
        let v = match self.batch(keys, dests) {
            Ok(v) => v,
            Err(c) => return vec![c; n],
        };
        let (ks, ds) = (&v.keys, &v.vals);
        // SAFETY: as in run_put, for writes.
        let r = self.on_client(py, |store| unsafe { store.get_into_raw_batch(ks, ds) });
        codes(n, &v, r, unit_code)
    }

    /// One value per key from flat pointer and size lists.
    pub(super) fn flat_pieces(
        n: usize,
        ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        writable: bool,
    ) -> PyResult<(Values<[Piece; 1]>, Vec<Ptr>)> {
        if let Some(pieces) = args::int_pieces(n, ptrs, sizes)? {
            return Ok((pieces, Vec::new()));
        }
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
        let Ok(v) = self.batch(keys, key_vals(keys)) else {
            return out;
        };
        let ks = &v.keys;
        if let Ok(Ok(results)) = self.on_client(py, |store| store.get_batch(ks)) {
            for (i, r) in v.positions().zip(results) {
                out[i] = r.ok();
            }
        }
        out
    }

    pub(super) fn exist_codes(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<i32> {
        let n = keys.len();
        let v = match self.batch(keys, key_vals(keys)) {
            Ok(v) => v,
            Err(c) => return vec![c; n],
        };
        let ks = &v.keys;
        codes(n, &v, self.on_client(py, |store| store.exist_batch(ks)), |&found| {
            found as i32
        })
    }

    pub(super) fn remove_codes(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<i32> {
        let n = keys.len();
        let v = match self.batch(keys, key_vals(keys)) {
            Ok(v) => v,
            Err(c) => return vec![c; n],
        };
        let ks = &v.keys;
        codes(n, &v, self.on_client(py, |store| store.remove_batch(ks)), unit_code)
    }

    pub(super) fn key_infos(&self, py: Python<'_>, keys: &[Option<&str>]) -> Vec<KeyInfo> {
        let mut out = vec![KeyInfo::default(); keys.len()];
        let Ok(v) = self.batch(keys, key_vals(keys)) else {
            return out;
        };
        let ks = &v.keys;
        if let Ok(Ok(results)) = self.on_client(py, |store| store.key_info_batch(ks)) {
            let found: Vec<&str> = ks
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(k, _)| *k)
                .collect();
            let mut gvas = match self.handle() {
                Some(store) if !found.is_empty() => crate::layerwise::addresses(py, &store, &found),
                _ => Vec::new(),
            }
            .into_iter();
            for (i, r) in v.positions().zip(&results) {
                if let Ok(info) = r {
                    out[i] = KeyInfo::from_info(info, gvas.next().unwrap_or_default());
                }
            }
        }
        out
    }
}
