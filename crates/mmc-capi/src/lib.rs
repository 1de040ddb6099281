//! # MemCache C API
//!
//! `libmemcache.so` / `libmemcache.a`: the MemCache client (a LocalService
//! running inside the application process) behind plain C functions, for C
//! and C++ inference runtimes. The header `include/memcache.h` is generated
//! from this crate with cbindgen (see `cbindgen.toml`; `tests/header.rs`
//! fails when the committed header is stale), and `include/memcache.hpp` is a
//! header-only C++ wrapper over it.
//!
//! This file holds the exported functions; `types.rs` the result codes,
//! constants and `#[repr(C)]` structs; `args.rs` the decoding and validation
//! of arguments; `global.rs` the process-wide client, the error message of
//! the last failure and the logger.
//!
//! Lifecycle: `mmc_setup` (configuration) -> `mmc_init` (starts the
//! LocalService and joins the cluster) -> `mmcc_*` calls -> `mmc_uninit`.
//! The client is process-wide; every `mmcc_*` call is thread-safe.
//!
//! Conventions shared by every function:
//! - the return value is a result code (`MMC_OK` = 0, negative on failure,
//!   see the `MMC_*` constants); `mmc_last_error()` gives a message;
//! - a null pointer, a length that does not match, a key that is not UTF-8
//!   or not 1..=256 bytes, non-zero reserved `flags` return
//!   `MMC_INVALID_PARAM`; any `mmcc_*` call before `mmc_init` (or after
//!   `mmc_uninit`) returns `MMC_NOT_INITIALIZED`;
//! - batch calls take `keys_count` keys (1..=`MMC_MAX_BATCH`), write one
//!   result code per key into `results`, and return `MMC_OK` when the batch
//!   was carried out (look at `results` for each key) or a negative code when
//!   the whole batch failed (bad arguments, MetaService unreachable); in the
//!   latter case every `results[i]` holds that code too, whenever `results`
//!   is non-null and `keys_count` is in range;
//! - no panic crosses the boundary: an internal panic returns `MMC_ERROR`.

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod args;
mod global;
mod types;

use args::*;
use global::{client, guard, lock, note_key_errors};
use mmc_config::{ConfigFile, LOCAL_CONFIG_ENV};
use mmc_local::BlockingObjectStore;
use mmc_wire::Error;
use std::ffi::c_char;
use std::path::Path;
pub use types::*;

// ---- lifecycle ----------------------------------------------------------------

/// Sets the configuration used by the next `mmc_init`.
///
/// `config_path`: a TOML file whose `[local]` section configures this client
/// (see docs/c-api.md), or a file of the original MemCache's
/// `ock.mmc.<key> = value` format (keys without effect here are logged as
/// warnings); NULL reads the file named by `$MMC_LOCAL_CONFIG_PATH`, or uses
/// the built-in defaults when that is unset. `options` (may be NULL)
/// overrides single keys on top. The result is validated: an unreadable file,
/// an unknown key or a value out of range returns `MMC_INVALID_PARAM` (the
/// message names the key). Also applies `local.log_level` to the logger.
/// Returns `MMC_ERROR` while initialized (call `mmc_uninit` first).
///
/// # Safety
/// `config_path` and the strings of `options` must be NULL or
/// NUL-terminated; `options` must be NULL or point to a valid struct.
#[no_mangle]
pub unsafe extern "C" fn mmc_setup(config_path: *const c_char, options: *const mmc_setup_options) -> i32 {
    guard("mmc_setup", || {
        lock().setup_called = true;
        // SAFETY: `config_path` is NULL or NUL-terminated (this function's
        // contract) and only read during the call.
        let path = unsafe { opt_str(config_path, "config_path") }?;
        let file = ConfigFile::load_or_env(path.map(Path::new), LOCAL_CONFIG_ENV)
            .map_err(|e| Error::invalid(e.to_string()))?;
        let warnings = file.warnings;
        let mut cfg = file.local;
        let mut level = None;
        if !options.is_null() {
            // SAFETY: `options` is not NULL and points to a valid struct whose
            // strings are NULL or NUL-terminated (this function's contract).
            level = unsafe { apply_options(&mut cfg, &*options) }?;
        }
        cfg.validate().map_err(|e| Error::invalid(e.to_string()))?;
        let level = match level {
            Some(l) => l,
            None => global::parse_level(cfg.log_level_or("warn"))?,
        };
        let mut g = lock();
        if g.client.is_some() {
            return Err(Error::Other(
                "already initialized: call mmc_uninit before mmc_setup".into(),
            ));
        }
        let log_path = cfg.log_path.clone();
        g.config = Some(cfg);
        drop(g);
        global::set_log_level(level);
        log_config_warnings(&warnings, log_path.as_deref());
        Ok(MMC_OK)
    })
}

/// Logs what reading the configuration file had to say, and that the C
/// library does not write log files.
fn log_config_warnings(warnings: &[String], log_path: Option<&str>) {
    for w in warnings {
        tracing::warn!("{w}");
    }
    if let Some(p) = log_path {
        tracing::warn!(
            log_path = p,
            "the C library logs to stderr (or through mmc_set_log_level's logger); log_path has no effect here"
        );
    }
}

/// Starts the LocalService with the configuration of `mmc_setup` and joins
/// the cluster. `init_bm != 0` also contributes a DRAM segment of
/// `local.dram_size` bytes to the pool; `init_bm == 0` makes a pure client.
/// `device_id` is accepted for compatibility and ignored (no accelerator
/// backend is compiled in).
///
/// In a program that never called `mmc_setup`, the file named by
/// `$MMC_LOCAL_CONFIG_PATH` is read as `mmc_setup(NULL, NULL)` would (the
/// original MemCache's behaviour); with that variable unset or empty, or
/// after an `mmc_setup` that failed, it returns `MMC_NOT_INITIALIZED`.
/// Returns `MMC_OK` at once when already initialized, `MMC_INVALID_PARAM`
/// for a bad configuration file, `MMC_NOT_CONNECTED_META` when the
/// MetaService is unreachable.
#[no_mangle]
pub extern "C" fn mmc_init(device_id: i32, init_bm: i32) -> i32 {
    guard("mmc_init", || {
        let mut g = lock();
        if g.client.is_some() {
            return Ok(MMC_OK);
        }
        if g.config.is_none() && !g.setup_called && std::env::var_os(LOCAL_CONFIG_ENV).is_some_and(|p| !p.is_empty()) {
            let file = ConfigFile::load_or_env(None, LOCAL_CONFIG_ENV).map_err(|e| Error::invalid(e.to_string()))?;
            let level = global::parse_level(file.local.log_level_or("warn"))?;
            let log_path = file.local.log_path.clone();
            g.config = Some(file.local);
            global::set_log_level(level);
            log_config_warnings(&file.warnings, log_path.as_deref());
        }
        let Some(mut cfg) = g.config.clone() else {
            return Err(Error::NotInitialized);
        };
        if init_bm == 0 {
            cfg.dram_size = mmc_config::ByteSize(0);
        }
        let store = BlockingObjectStore::connect(cfg)?;
        tracing::info!(
            device_id,
            service = store.service_id(),
            provider = init_bm != 0,
            "memcache client ready"
        );
        g.client = Some(store);
        Ok(MMC_OK)
    })
}

/// Leaves the cluster and stops the LocalService (a segment it contributed
/// is withdrawn, with the replicas in it). The configuration is kept, so
/// `mmc_init` may be called again. Returns `MMC_NOT_INITIALIZED` when not
/// initialized.
#[no_mangle]
pub extern "C" fn mmc_uninit() -> i32 {
    guard("mmc_uninit", || {
        let store = lock().client.take().ok_or(Error::NotInitialized)?;
        // Joins the runtime's threads: nothing of the library runs after
        // mmc_uninit returns (safe for dlclose, clean under valgrind).
        store.shutdown(std::time::Duration::from_secs(5));
        drop(store);
        Ok(MMC_OK)
    })
}

/// Sets the level of the library's log (written to stderr): `off`, `error`,
/// `warn`, `info`, `debug` or `trace`. Valid at any time, also before
/// `mmc_setup`.
///
/// # Safety
/// `level` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn mmc_set_log_level(level: *const c_char) -> i32 {
    guard("mmc_set_log_level", || {
        // SAFETY: `level` is NULL or NUL-terminated (this function's contract).
        let level = unsafe { opt_str(level, "level") }?.ok_or_else(|| Error::invalid("level is a null pointer"))?;
        global::set_log_level(global::parse_level(level)?);
        Ok(MMC_OK)
    })
}

/// A message describing the outcome of the last call of this API made by
/// the calling thread: empty when it returned `MMC_OK` with no per-key
/// failure (messages longer than 1023 bytes are truncated). Never NULL, never
/// to be freed: the pointer stays valid for the life of the calling thread,
/// and its contents change with each call this thread makes; copy the text
/// to keep it.
#[no_mangle]
pub extern "C" fn mmc_last_error() -> *const c_char {
    global::last_error_ptr()
}

/// Writes the service id (rank) the MetaService gave this client.
///
/// # Safety
/// `service_id` must be NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn mmcc_local_service_id(service_id: *mut u32) -> i32 {
    guard("mmcc_local_service_id", || {
        let c = client()?;
        if service_id.is_null() {
            return Err(Error::invalid("service_id is a null pointer"));
        }
        // SAFETY: not NULL, and valid for writes by this function's contract.
        unsafe { *service_id = c.service_id() };
        Ok(MMC_OK)
    })
}

// ---- single-key calls -----------------------------------------------------

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

// ---- batch calls ----------------------------------------------------------

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
        let c = client()?;
        check_flags(flags)?;
        res.check("results")?;
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let ks = unsafe { batch_keys(keys, keys_count) }?;
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
        let c = client()?;
        check_flags(flags)?;
        res.check("results")?;
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let ks = unsafe { batch_keys(keys, keys_count) }?;
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
        let c = client()?;
        check_flags(flags)?;
        res.check("results")?;
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let ks = unsafe { batch_keys(keys, keys_count) }?;
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
        let c = client()?;
        check_flags(flags)?;
        res.check("results")?;
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let ks = unsafe { batch_keys(keys, keys_count) }?;
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
        let c = client()?;
        check_flags(flags)?;
        res.check("results")?;
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let ks = unsafe { batch_keys(keys, keys_count) }?;
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
        let c = client()?;
        check_flags(flags)?;
        res.check("results")?;
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let ks = unsafe { batch_keys(keys, keys_count) }?;
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
        let c = client()?;
        check_flags(flags)?;
        res.check("results")?;
        // SAFETY: `keys` is NULL or `keys_count` NULL-or-NUL-terminated
        // keys (this function's contract).
        let ks = unsafe { batch_keys(keys, keys_count) }?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use mmc_local::PutOptions;
    use mmc_wire::error::code;
    use mmc_wire::Result;
    use std::ffi::CString;

    #[test]
    fn codes_match_the_wire_crate() {
        use mmc_result::*;
        let pairs = [
            (MMC_OK, code::OK),
            (MMC_ERROR, code::ERROR),
            (MMC_INVALID_PARAM, code::INVALID_PARAM),
            (MMC_NOT_STARTED, code::NOT_STARTED),
            (MMC_TIMEOUT, code::TIMEOUT),
            (MMC_DUPLICATED_OBJECT, code::DUPLICATED_OBJECT),
            (MMC_OBJECT_NOT_EXISTS, code::OBJECT_NOT_EXISTS),
            (MMC_NOT_INITIALIZED, code::NOT_INITIALIZED),
            (MMC_NOT_ENOUGH_MEMORY, code::NOT_ENOUGH_MEMORY),
            (MMC_NOT_CONNECTED_META, code::NOT_CONNECTED_META),
            (MMC_NOT_CONNECTED_LOCAL, code::NOT_CONNECTED_LOCAL),
            (MMC_NO_PROVIDER, code::NO_PROVIDER),
            (MMC_NOT_LEADER, code::NOT_LEADER),
            (MMC_UNMATCHED_KEY, code::UNMATCHED_KEY),
            (MMC_LEASE_EXPIRED, code::LEASE_EXPIRED),
        ];
        for (c, w) in pairs {
            assert_eq!(c as i32, w, "{c:?}");
        }
        assert_eq!(MMC_MAX_KEY_LEN, mmc_wire::MAX_KEY_LEN);
        assert_eq!(MMC_MAX_BATCH as usize, mmc_wire::MAX_BATCH);
        assert_eq!(MMC_MAX_REPLICAS, mmc_wire::MAX_REPLICAS as usize);
        for m in mmc_wire::Medium::ALL {
            let c = match m {
                mmc_wire::Medium::Dram => MMC_MEDIUM_DRAM,
                mmc_wire::Medium::Hbm => MMC_MEDIUM_HBM,
                mmc_wire::Medium::Ssd => MMC_MEDIUM_SSD,
            };
            assert_eq!(m.as_u8() as u32, c);
        }
    }

    #[test]
    fn keys_are_checked() {
        // SAFETY: every pointer is NULL or a live CString's, NUL-terminated.
        unsafe {
            assert!(key_arg(std::ptr::null()).is_err());
            let k = CString::new("abc").unwrap();
            assert_eq!(key_arg(k.as_ptr()).unwrap(), "abc");
            let empty = CString::new("").unwrap();
            assert!(key_arg(empty.as_ptr()).is_err());
            let bad = CString::new(vec![0xffu8, 0xfe]).unwrap();
            assert!(key_arg(bad.as_ptr()).is_err());
            let max = CString::new("k".repeat(256)).unwrap();
            assert!(key_arg(max.as_ptr()).is_ok());
            let long = CString::new("k".repeat(257)).unwrap();
            assert!(key_arg(long.as_ptr()).is_err());
        }
    }

    #[test]
    fn options_and_buffers_are_checked() {
        // SAFETY: every pointer is NULL or a live local's.
        unsafe {
            assert_eq!(options_arg(std::ptr::null()).unwrap(), PutOptions::default());
            let mut o = mmc_put_options {
                replica_num: 9,
                ..Default::default()
            };
            assert!(options_arg(&o).is_err());
            o.replica_num = 2;
            o.preferred_count = 9;
            assert!(options_arg(&o).is_err());
            o.preferred_count = 2;
            o.preferred_service_ids[..2].copy_from_slice(&[5, 6]);
            assert_eq!(
                options_arg(&o).unwrap(),
                PutOptions {
                    replicas: 2,
                    preferred: vec![5, 6]
                }
            );
        }
        let mut x = [0u8; 4];
        let ok = mmc_buffer {
            addr: x.as_mut_ptr().cast(),
            len: 4,
            mem_type: MMC_MEM_HOST,
        };
        assert_eq!(piece(&ok).unwrap().len, 4);
        assert!(piece(&mmc_buffer {
            mem_type: MMC_MEM_DEVICE,
            ..ok
        })
        .is_err());
        assert!(piece(&mmc_buffer { len: 0, ..ok }).is_err());
        assert!(piece(&mmc_buffer {
            addr: std::ptr::null_mut(),
            ..ok
        })
        .is_err());
        // SAFETY: `&ok` is one valid descriptor (and a count of 0 reads none).
        unsafe {
            assert!(layers_arg(&ok, 0).is_err());
            assert!(layers_arg(std::ptr::null(), 1).is_err());
            assert_eq!(layers_arg(&ok, 1).unwrap().len(), 1);
        }
    }

    #[test]
    fn run_valid_keeps_positions() {
        let items: Vec<Result<u32>> = vec![Ok(1), Err(Error::invalid("x")), Ok(3)];
        let out = run_valid(items, |v| Ok(v.into_iter().map(|x| Ok(x * 10)).collect())).unwrap();
        assert_eq!(out[0], Ok(10));
        assert!(matches!(out[1], Err(Error::InvalidParam(_))));
        assert_eq!(out[2], Ok(30));
        let none: Vec<Result<u32>> = vec![Err(Error::UnmatchedKey)];
        let out = run_valid(none, |_| -> Result<Vec<Result<u32>>> { panic!("not called") }).unwrap();
        assert_eq!(out, vec![Err(Error::UnmatchedKey)]);
    }
}
