//! Batch calls: one control request for up to `MMC_MAX_BATCH` keys, one
//! result code per key.

use crate::args::*;
use crate::global::{client, note_key_errors};
use crate::types::*;
use mmc_local::BlockingObjectStore;
use mmc_wire::Error;
use std::ffi::c_char;

/// The keys of a batch, each decoded or its own error.
type BatchKeys<'a> = Vec<Result<&'a str, Error>>;

/// What every batch call checks first, in this order: the client, the
/// reserved `flags`, the `results` array, then the keys (decoded; each an
/// error of its own when invalid).
///
/// # Safety
/// As [`batch_keys`] for `keys` and `count`.
unsafe fn batch_start<'a>(
    flags: u32,
    res: &Results,
    keys: *const *const c_char,
    count: u32,
) -> Result<(BlockingObjectStore, BatchKeys<'a>), Error> {
    let c = client()?;
    check_flags(flags)?;
    res.check("results")?;
    // SAFETY: forwarded from this function's contract.
    let ks = unsafe { batch_keys(keys, count) }?;
    Ok((c, ks))
}

/// Batch put from caller buffers: `bufs[i]` is the value of `keys[i]`. One
/// control RPC for the batch, copies run concurrently. Per key: `MMC_OK`,
/// `MMC_DUPLICATED_OBJECT`, `MMC_INVALID_PARAM`, `MMC_NOT_ENOUGH_MEMORY`, ...
///
/// # Safety
/// `keys` and `bufs` NULL or arrays of `keys_count` entries (keys
/// NUL-terminated or NULL), `results` NULL or an array of `keys_count`
/// `int32_t`; buffer memory as for `mmcc_put`.
#[no_mangle]
pub unsafe extern "C" fn mmcc_batch_put(
    keys: *const *const c_char,
    keys_count: u32,
    bufs: *const mmc_buffer,
    options: *const mmc_put_options,
    flags: u32,
    results: *mut i32,
) -> i32 {
    let res = Results::new(results, keys_count);
    let body = || {
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let (c, ks) = unsafe { batch_start(flags, &res, keys, keys_count) }?;
        // SAFETY: `options` is NULL or valid (this function's contract).
        let opts = unsafe { options_arg(options) }?;
        // SAFETY: `bufs` is NULL or an array of `keys_count` descriptors
        // (this function's contract).
        let items = unsafe { per_key_items(ks, bufs, "bufs", |b| Ok(vec![piece(b)?])) }?;
        // SAFETY: buffer memory is readable during the call (this
        // function's contract); `res` is as above.
        unsafe { batch_put_items(&c, "mmcc_batch_put", items, &opts, &res) }
    };
    // SAFETY: `results` is NULL or an array of `keys_count` int32_t (this
    // function's contract), which is what `Results` writes to.
    unsafe { batch_guard("mmcc_batch_put", &res, body) }
}

/// Batch get into caller buffers: `bufs[i].len` must equal the size of
/// `keys[i]`. Per key: `MMC_OK`, `MMC_OBJECT_NOT_EXISTS`, `MMC_INVALID_PARAM`, ...
///
/// # Safety
/// As `mmcc_batch_put`, buffer memory writable as for `mmcc_get`.
#[no_mangle]
pub unsafe extern "C" fn mmcc_batch_get(
    keys: *const *const c_char,
    keys_count: u32,
    bufs: *const mmc_buffer,
    flags: u32,
    results: *mut i32,
) -> i32 {
    let res = Results::new(results, keys_count);
    let body = || {
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let (c, ks) = unsafe { batch_start(flags, &res, keys, keys_count) }?;
        // SAFETY: `bufs` is NULL or an array of `keys_count` descriptors
        // (this function's contract).
        let items = unsafe { per_key_items(ks, bufs, "bufs", |b| Ok(vec![piece(b)?])) }?;
        // SAFETY: buffer memory is writable and untouched by the caller
        // during the call (this function's contract); `res` is as above.
        unsafe { batch_get_items(&c, "mmcc_batch_get", items, &res) }
    };
    // SAFETY: `results` is NULL or an array of `keys_count` int32_t (this
    // function's contract), which is what `Results` writes to.
    unsafe { batch_guard("mmcc_batch_get", &res, body) }
}

/// Batch layered put: `values[i]` lists the layers of `keys[i]`.
///
/// # Safety
/// As `mmcc_batch_put`; `values` NULL or an array of `keys_count` entries,
/// each listing `count` valid descriptors.
#[no_mangle]
pub unsafe extern "C" fn mmcc_batch_put_layers(
    keys: *const *const c_char,
    keys_count: u32,
    values: *const mmc_layers,
    options: *const mmc_put_options,
    flags: u32,
    results: *mut i32,
) -> i32 {
    let res = Results::new(results, keys_count);
    let body = || {
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let (c, ks) = unsafe { batch_start(flags, &res, keys, keys_count) }?;
        // SAFETY: `options` is NULL or valid (this function's contract).
        let opts = unsafe { options_arg(options) }?;
        // SAFETY: `values` is NULL or an array of `keys_count` entries, each
        // listing `count` valid descriptors (this function's contract).
        let items = unsafe { per_key_items(ks, values, "values", |v| layers_arg(v.bufs, v.count)) }?;
        // SAFETY: layer memory is readable during the call (this
        // function's contract); `res` is as above.
        unsafe { batch_put_items(&c, "mmcc_batch_put_layers", items, &opts, &res) }
    };
    // SAFETY: `results` is NULL or an array of `keys_count` int32_t (this
    // function's contract), which is what `Results` writes to.
    unsafe { batch_guard("mmcc_batch_put_layers", &res, body) }
}

/// Batch layered get: scatters `keys[i]` into the layers of `values[i]`.
///
/// # Safety
/// As `mmcc_batch_put_layers`, layer memory writable.
#[no_mangle]
pub unsafe extern "C" fn mmcc_batch_get_layers(
    keys: *const *const c_char,
    keys_count: u32,
    values: *const mmc_layers,
    flags: u32,
    results: *mut i32,
) -> i32 {
    let res = Results::new(results, keys_count);
    let body = || {
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let (c, ks) = unsafe { batch_start(flags, &res, keys, keys_count) }?;
        // SAFETY: `values` is NULL or an array of `keys_count` entries, each
        // listing `count` valid descriptors (this function's contract).
        let items = unsafe { per_key_items(ks, values, "values", |v| layers_arg(v.bufs, v.count)) }?;
        // SAFETY: layer memory is writable and untouched by the caller
        // during the call (this function's contract); `res` is as above.
        unsafe { batch_get_items(&c, "mmcc_batch_get_layers", items, &res) }
    };
    // SAFETY: `results` is NULL or an array of `keys_count` int32_t (this
    // function's contract), which is what `Results` writes to.
    unsafe { batch_guard("mmcc_batch_get_layers", &res, body) }
}

/// Batch exist: `results[i]` is 1 (present), 0 (absent) or a negative code.
///
/// # Safety
/// `keys` NULL or an array of `keys_count` entries (NUL-terminated or NULL),
/// `results` NULL or an array of `keys_count` `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn mmcc_batch_exist(
    keys: *const *const c_char,
    keys_count: u32,
    flags: u32,
    results: *mut i32,
) -> i32 {
    let res = Results::new(results, keys_count);
    let body = || {
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let (c, ks) = unsafe { batch_start(flags, &res, keys, keys_count) }?;
        let rs = run_valid(ks, |valid| Ok(c.exist_batch(&valid)?.into_iter().map(Ok).collect()))?;
        // SAFETY: `res` wraps `results` as above.
        unsafe {
            res.write(rs.iter().map(|r| match r {
                Ok(b) => *b as i32,
                Err(e) => e.code(),
            }))
        };
        note_key_errors("mmcc_batch_exist", &rs);
        Ok(MMC_OK)
    };
    // SAFETY: `results` is NULL or an array of `keys_count` int32_t (this
    // function's contract), which is what `Results` writes to.
    unsafe { batch_guard("mmcc_batch_exist", &res, body) }
}

/// Batch query: fills `infos[i]` for `keys[i]` (zeroed when `results[i]` is
/// not `MMC_OK`).
///
/// # Safety
/// As `mmcc_batch_exist`; `infos` NULL or an array of `keys_count` structs.
#[no_mangle]
pub unsafe extern "C" fn mmcc_batch_query(
    keys: *const *const c_char,
    keys_count: u32,
    infos: *mut mmc_data_info,
    flags: u32,
    results: *mut i32,
) -> i32 {
    let res = Results::new(results, keys_count);
    let body = || {
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let (c, ks) = unsafe { batch_start(flags, &res, keys, keys_count) }?;
        if infos.is_null() {
            return Err(Error::invalid("infos is a null pointer"));
        }
        // SAFETY: `infos` is not NULL and, by this function's contract, an
        // array of `keys_count` structs (a valid batch length, checked by
        // `batch_keys`) that the caller does not access during the call.
        let out = unsafe { std::slice::from_raw_parts_mut(infos, keys_count as usize) };
        out.fill(mmc_data_info::default());
        let rs = run_valid(ks, |valid| c.key_info_batch(&valid))?;
        for (slot, r) in out.iter_mut().zip(&rs) {
            if let Ok(info) = r {
                *slot = fill_info(info);
            }
        }
        // SAFETY: `res` wraps `results` as above.
        unsafe { res.write(codes(&rs)) };
        note_key_errors("mmcc_batch_query", &rs);
        Ok(MMC_OK)
    };
    // SAFETY: `results` is NULL or an array of `keys_count` int32_t (this
    // function's contract), which is what `Results` writes to.
    unsafe { batch_guard("mmcc_batch_query", &res, body) }
}

/// Batch remove. Per key: `MMC_OK` or `MMC_UNMATCHED_KEY`, ...
///
/// # Safety
/// As `mmcc_batch_exist`.
#[no_mangle]
pub unsafe extern "C" fn mmcc_batch_remove(
    keys: *const *const c_char,
    keys_count: u32,
    flags: u32,
    results: *mut i32,
) -> i32 {
    let res = Results::new(results, keys_count);
    let body = || {
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let (c, ks) = unsafe { batch_start(flags, &res, keys, keys_count) }?;
        let rs = run_valid(ks, |valid| c.remove_batch(&valid))?;
        // SAFETY: `res` wraps `results` as above.
        unsafe { res.write(codes(&rs)) };
        note_key_errors("mmcc_batch_remove", &rs);
        Ok(MMC_OK)
    };
    // SAFETY: `results` is NULL or an array of `keys_count` int32_t (this
    // function's contract), which is what `Results` writes to.
    unsafe { batch_guard("mmcc_batch_remove", &res, body) }
}
