//! The lifecycle calls: `mmc_setup` (configuration), `mmc_init` (start the
//! LocalService and join), `mmc_uninit`, the log level, the message of the
//! last failure and this client's service id.

use crate::args::*;
use crate::global::{self, client, guard, lock};
use crate::types::*;
use mmc_config::{ConfigFile, LOCAL_CONFIG_ENV};
use mmc_local::BlockingObjectStore;
use mmc_wire::{Error, ErrorKind};
use std::ffi::c_char;
use std::path::Path;

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
            return Err(Error::other("already initialized: call mmc_uninit before mmc_setup"));
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
            return Err(Error::from(ErrorKind::NotInitialized));
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
        let store = lock().client.take().ok_or(Error::from(ErrorKind::NotInitialized))?;
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
