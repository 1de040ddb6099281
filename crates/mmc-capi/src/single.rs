//! Calls on one key: put and get (whole or by layers), exist, query,
//! remove, and removing every key.

use crate::args::*;
use crate::global::{client, guard};
use crate::types::*;
use mmc_wire::Error;
use std::ffi::c_char;

/// Stores `buf->len` bytes from `buf->addr` under `key`, copied straight into
/// the pool. An existing key is not overwritten and returns
/// `MMC_DUPLICATED_OBJECT`. `options` may be NULL (one replica).
///
/// # Safety
/// `key` NUL-terminated or NULL; `buf` NULL or a valid descriptor whose
/// memory is readable for `len` bytes during the call; `options` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn mmcc_put(
    key: *const c_char,
    buf: *const mmc_buffer,
    options: *const mmc_put_options,
    flags: u32,
) -> i32 {
    guard("mmcc_put", || {
        let c = client()?;
        check_flags(flags)?;
        // SAFETY: `key` is NULL or NUL-terminated (this function's contract).
        let key = unsafe { key_arg(key) }?;
        // SAFETY: `buf` is NULL or a valid descriptor (this function's contract).
        let pieces = unsafe { buffer_arg(buf) }?;
        // SAFETY: `options` is NULL or valid (this function's contract).
        let opts = unsafe { options_arg(options) }?;
        // SAFETY: the buffer memory is readable for `len` bytes during the
        // call (this function's contract).
        unsafe { put_pieces(&c, key, pieces, &opts) }
    })
}

/// Copies the object `key` into `buf`; `buf->len` must equal the object size
/// (else `MMC_INVALID_PARAM`; `mmcc_query` gives the size).
///
/// # Safety
/// `key` NUL-terminated or NULL; `buf` NULL or a valid descriptor whose
/// memory is writable for `len` bytes during the call.
#[no_mangle]
pub unsafe extern "C" fn mmcc_get(key: *const c_char, buf: *const mmc_buffer, flags: u32) -> i32 {
    guard("mmcc_get", || {
        let c = client()?;
        check_flags(flags)?;
        // SAFETY: `key` is NULL or NUL-terminated (this function's contract).
        let key = unsafe { key_arg(key) }?;
        // SAFETY: `buf` is NULL or a valid descriptor (this function's contract).
        let pieces = unsafe { buffer_arg(buf) }?;
        // SAFETY: the buffer memory is writable for `len` bytes during the
        // call (this function's contract), and the caller does not touch it
        // until we return.
        unsafe { get_pieces(&c, key, pieces) }
    })
}

/// Stores the concatenation of `layer_count` buffers as one object of
/// `sum(len)` bytes (one buffer per model layer, no staging copy).
///
/// # Safety
/// As `mmcc_put`, for each of the `layer_count` descriptors at `layers`.
#[no_mangle]
pub unsafe extern "C" fn mmcc_put_layers(
    key: *const c_char,
    layers: *const mmc_buffer,
    layer_count: u32,
    options: *const mmc_put_options,
    flags: u32,
) -> i32 {
    guard("mmcc_put_layers", || {
        let c = client()?;
        check_flags(flags)?;
        // SAFETY: `key` is NULL or NUL-terminated (this function's contract).
        let key = unsafe { key_arg(key) }?;
        // SAFETY: `layers` is NULL or points to `layer_count` valid
        // descriptors (this function's contract).
        let pieces = unsafe { layers_arg(layers, layer_count) }?;
        // SAFETY: `options` is NULL or valid (this function's contract).
        let opts = unsafe { options_arg(options) }?;
        // SAFETY: the buffer memory is readable for `len` bytes during the
        // call (this function's contract).
        unsafe { put_pieces(&c, key, pieces, &opts) }
    })
}

/// Scatters the object `key` into `layer_count` buffers, in order; their
/// lengths must sum to the object size.
///
/// # Safety
/// As `mmcc_get`, for each of the `layer_count` descriptors at `layers`.
#[no_mangle]
pub unsafe extern "C" fn mmcc_get_layers(
    key: *const c_char,
    layers: *const mmc_buffer,
    layer_count: u32,
    flags: u32,
) -> i32 {
    guard("mmcc_get_layers", || {
        let c = client()?;
        check_flags(flags)?;
        // SAFETY: `key` is NULL or NUL-terminated (this function's contract).
        let key = unsafe { key_arg(key) }?;
        // SAFETY: `layers` is NULL or points to `layer_count` valid
        // descriptors (this function's contract).
        let pieces = unsafe { layers_arg(layers, layer_count) }?;
        // SAFETY: the buffer memory is writable for `len` bytes during the
        // call (this function's contract), and the caller does not touch it
        // until we return.
        unsafe { get_pieces(&c, key, pieces) }
    })
}

/// Returns 1 when a committed replica of `key` exists, 0 when not, or a
/// negative code. Counts as an access for LRU eviction.
///
/// # Safety
/// `key` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn mmcc_exist(key: *const c_char, flags: u32) -> i32 {
    guard("mmcc_exist", || {
        let c = client()?;
        check_flags(flags)?;
        // SAFETY: `key` is NULL or NUL-terminated (this function's contract).
        let key = unsafe { key_arg(key) }?;
        Ok(c.exist(key)? as i32)
    })
}

/// Fills `info` with the size of `key` and where its replicas are.
/// `MMC_OBJECT_NOT_EXISTS` when absent (then `info` is zeroed).
///
/// # Safety
/// `key` NUL-terminated or NULL; `info` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn mmcc_query(key: *const c_char, info: *mut mmc_data_info, flags: u32) -> i32 {
    guard("mmcc_query", || {
        let c = client()?;
        check_flags(flags)?;
        // SAFETY: `key` is NULL or NUL-terminated (this function's contract).
        let key = unsafe { key_arg(key) }?;
        if info.is_null() {
            return Err(Error::invalid("info is a null pointer"));
        }
        // SAFETY: not NULL, and valid for writes by this function's
        // contract (this and the write below).
        unsafe { *info = mmc_data_info::default() };
        let filled = fill_info(&c.key_info(key)?);
        // SAFETY: as above.
        unsafe { *info = filled };
        Ok(MMC_OK)
    })
}

/// Removes `key` at once (its space is freed when no read lease covers it).
/// `MMC_UNMATCHED_KEY` when absent.
///
/// # Safety
/// `key` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn mmcc_remove(key: *const c_char, flags: u32) -> i32 {
    guard("mmcc_remove", || {
        let c = client()?;
        check_flags(flags)?;
        // SAFETY: `key` is NULL or NUL-terminated (this function's contract).
        let key = unsafe { key_arg(key) }?;
        c.remove(key)?;
        Ok(MMC_OK)
    })
}

/// Removes every key of the cluster. `removed_count` (may be NULL) receives
/// how many were removed.
///
/// # Safety
/// `removed_count` must be NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn mmcc_remove_all(flags: u32, removed_count: *mut u64) -> i32 {
    guard("mmcc_remove_all", || {
        let c = client()?;
        check_flags(flags)?;
        let n = c.remove_all()?;
        if !removed_count.is_null() {
            // SAFETY: not NULL, and valid for writes by this function's contract.
            unsafe { *removed_count = n };
        }
        Ok(MMC_OK)
    })
}
