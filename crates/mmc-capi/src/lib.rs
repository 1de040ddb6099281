//! # MemCache C API
//!
//! `libmemcache.so` / `libmemcache.a`: the MemCache client (a LocalService
//! running inside the application process) behind plain C functions, for C
//! and C++ inference runtimes. The header `include/memcache.h` is generated
//! from this file with cbindgen (see `cbindgen.toml`; `tests/header.rs`
//! fails when the committed header is stale), and `include/memcache.hpp` is a
//! header-only C++ wrapper over it.
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

mod global;

use global::{client, guard, lock, note_key_errors};
use mmc_config::{ConfigFile, LocalConfig, Protocol, LOCAL_CONFIG_ENV};
use mmc_local::{BlockingObjectStore, KeyInfo, Piece, PutOptions};
use mmc_wire::{validate_batch_len, validate_key, Error, Result};
use std::ffi::{c_char, c_void, CStr};
use std::path::Path;
use tracing_subscriber::filter::LevelFilter;

// ---- result codes (SPEC section 5) ----------------------------------------

/// The result codes every function returns (SPEC section 5). Functions are
/// declared to return `int32_t`: compare it with these values.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mmc_result {
    /// Success.
    MMC_OK = 0,
    /// Unclassified failure (including an internal panic caught at the boundary).
    MMC_ERROR = -1,
    /// Bad key, size, pointer, batch length, option or flag.
    MMC_INVALID_PARAM = -3000,
    /// Service not started.
    MMC_NOT_STARTED = -3003,
    /// An RPC or a data transfer timed out.
    MMC_TIMEOUT = -3004,
    /// The key already exists (put does not overwrite; the C API reports it).
    MMC_DUPLICATED_OBJECT = -3006,
    /// The key is absent (or only being written).
    MMC_OBJECT_NOT_EXISTS = -3007,
    /// Called before `mmc_setup` / `mmc_init`, or after `mmc_uninit`.
    MMC_NOT_INITIALIZED = -3008,
    /// The pool is full and nothing is evictable (back-pressure: retry later).
    MMC_NOT_ENOUGH_MEMORY = -3016,
    /// The MetaService is unreachable.
    MMC_NOT_CONNECTED_META = -3017,
    /// The LocalService holding a replica is unreachable.
    MMC_NOT_CONNECTED_LOCAL = -3018,
    /// Too few live memory providers for the replicas requested (a put
    /// while LocalServices are missing): retry once more have joined.
    MMC_NO_PROVIDER = -3019,
    /// The MetaService reached is not the leader of its HA cluster (a
    /// standby, or a leader that lost its etcd lease): retry; a client
    /// configured with etcd endpoints finds the new leader on its own.
    MMC_NOT_LEADER = -3020,
    /// Remove of an absent key.
    MMC_UNMATCHED_KEY = -3102,
    /// A read outlived its lease; the read may be retried.
    MMC_LEASE_EXPIRED = -3106,
}

const MMC_OK: i32 = mmc_result::MMC_OK as i32;

// ---- limits and enumerations ----------------------------------------------

/// Longest key, in bytes (keys are NUL-terminated UTF-8, 1..=256 bytes).
pub const MMC_MAX_KEY_LEN: usize = 256;
/// Most keys in one batch call.
pub const MMC_MAX_BATCH: u32 = 16384;
/// Most replicas of one object, and the capacity of the per-replica arrays.
pub const MMC_MAX_REPLICAS: usize = 8;

/// `mmc_buffer.mem_type`: host memory (the only kind this build supports).
pub const MMC_MEM_HOST: u32 = 0;
/// `mmc_buffer.mem_type`: accelerator memory (rejected with
/// `MMC_INVALID_PARAM`: no accelerator backend is compiled in).
pub const MMC_MEM_DEVICE: u32 = 1;

/// `mmc_data_info.media[i]`: host DRAM.
pub const MMC_MEDIUM_DRAM: u32 = 0;
/// `mmc_data_info.media[i]`: accelerator memory.
pub const MMC_MEDIUM_HBM: u32 = 1;
/// `mmc_data_info.media[i]`: SSD.
pub const MMC_MEDIUM_SSD: u32 = 2;

// ---- C structs --------------------------------------------------------------

/// A caller buffer: `len` bytes at `addr`. For a put the bytes are read; for
/// a get they are written (the descriptor itself is never modified).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mmc_buffer {
    /// Start of the memory; must not be NULL.
    pub addr: *mut c_void,
    /// Length in bytes; must not be 0.
    pub len: u64,
    /// `MMC_MEM_HOST` (0). Other values return `MMC_INVALID_PARAM`.
    pub mem_type: u32,
}

/// A value made of several discrete buffers (one per layer), stored as their
/// concatenation: `count` descriptors at `bufs`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mmc_layers {
    pub bufs: *const mmc_buffer,
    pub count: u32,
}

/// How a put places its replicas. A zero-initialised struct (or a NULL
/// pointer) means one replica, no preference.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mmc_put_options {
    /// Number of replicas, each on a different LocalService: 1..=8 (0 means 1).
    pub replica_num: u32,
    /// Number of valid entries in `preferred_service_ids` (0..=8).
    pub preferred_count: u32,
    /// Service ids to place replicas on first, in order.
    pub preferred_service_ids: [u32; MMC_MAX_REPLICAS],
}

/// What `mmcc_query` reports about an object.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct mmc_data_info {
    /// Object size in bytes.
    pub size: u64,
    /// Number of replicas (valid entries in the two arrays below).
    pub replica_num: u32,
    /// Service id (rank) of the LocalService holding each replica.
    pub service_ids: [u32; MMC_MAX_REPLICAS],
    /// Medium of each replica (`MMC_MEDIUM_*`).
    pub media: [u32; MMC_MAX_REPLICAS],
}

/// Overrides applied by `mmc_setup` on top of the configuration file. A NULL
/// string (or a 0 number) keeps the value from the file / the defaults. A
/// zero-initialised struct overrides nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mmc_setup_options {
    /// MetaService address `ip:port` (`local.meta_addr`).
    pub meta_addr: *const c_char,
    /// Size of the DRAM segment contributed when `mmc_init(_, init_bm != 0)`,
    /// e.g. `"64MB"`, `"1GB"`, `"1048576"` (`local.dram_size`).
    pub dram_size: *const c_char,
    /// `"auto"` (shared memory on the same host, TCP otherwise) or `"tcp"`
    /// (`local.protocol`).
    pub protocol: *const c_char,
    /// Transfer server listen address (`local.transfer_listen`).
    pub transfer_listen: *const c_char,
    /// Host id override (`local.host_id`).
    pub host_id: *const c_char,
    /// `off`, `error`, `warn`, `info`, `debug` or `trace` (`local.log_level`).
    pub log_level: *const c_char,
    /// Threads of the client runtime (`local.worker_threads`).
    pub worker_threads: u32,
}

// ---- argument conversion ------------------------------------------------------

fn check_flags(flags: u32) -> Result<()> {
    if flags != 0 {
        return Err(Error::invalid(format!("flags {flags:#x}: reserved, must be 0")));
    }
    Ok(())
}

/// A NUL-terminated key: not NULL, UTF-8, 1..=256 bytes. Reads at most
/// `MMC_MAX_KEY_LEN + 1` bytes.
///
/// # Safety
/// `key` is NULL or readable up to and including its NUL terminator or
/// for `MMC_MAX_KEY_LEN + 1` bytes, whichever comes first, and those bytes
/// stay unchanged for `'a`.
unsafe fn key_arg<'a>(key: *const c_char) -> Result<&'a str> {
    if key.is_null() {
        return Err(Error::invalid("key is a null pointer"));
    }
    let mut len = None;
    for i in 0..=MMC_MAX_KEY_LEN {
        // SAFETY: `key` is not NULL and no byte before `i` was the NUL, so
        // byte `i` (at most `MMC_MAX_KEY_LEN`) is within the readable prefix
        // the caller guarantees.
        if unsafe { *key.add(i) } == 0 {
            len = Some(i);
            break;
        }
    }
    let Some(len) = len else {
        return Err(Error::invalid(format!("key is longer than {MMC_MAX_KEY_LEN} bytes")));
    };
    // SAFETY: the `len` bytes before the NUL were just read one by one (so
    // they are readable and `len` fits in isize), `c_char` and `u8` have
    // the same layout, and the caller keeps them unchanged for `'a`.
    let bytes = unsafe { std::slice::from_raw_parts(key as *const u8, len) };
    let k = std::str::from_utf8(bytes).map_err(|_| Error::invalid("key is not valid UTF-8"))?;
    validate_key(k)?;
    Ok(k)
}

/// An optional NUL-terminated UTF-8 string (NULL = absent).
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that stays readable
/// and unchanged for `'a`.
unsafe fn opt_str<'a>(s: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: `s` is not NULL, and the caller guarantees a NUL-terminated
    // string valid and unchanged for `'a`.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map(Some)
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

fn piece(b: &mmc_buffer) -> Result<Piece> {
    if b.mem_type != MMC_MEM_HOST {
        return Err(Error::invalid(format!(
            "buffer memory type {} is not supported (only MMC_MEM_HOST: no accelerator backend is compiled in)",
            b.mem_type
        )));
    }
    if b.addr.is_null() {
        return Err(Error::invalid("buffer address is a null pointer"));
    }
    if b.len == 0 {
        return Err(Error::invalid("buffer length is 0"));
    }
    let len = usize::try_from(b.len).map_err(|_| Error::invalid("buffer length does not fit in memory"))?;
    if (b.addr as usize).checked_add(len).is_none() {
        return Err(Error::invalid("buffer wraps around the address space"));
    }
    Ok(Piece {
        addr: b.addr as usize,
        len,
    })
}

/// # Safety
/// `buf` is NULL or points to a readable, initialised `mmc_buffer`.
unsafe fn buffer_arg(buf: *const mmc_buffer) -> Result<Vec<Piece>> {
    if buf.is_null() {
        return Err(Error::invalid("buffer descriptor is a null pointer"));
    }
    // SAFETY: `buf` is not NULL and, by the caller's contract, points to a
    // valid descriptor; it is only read while this call runs.
    Ok(vec![piece(unsafe { &*buf })?])
}

/// # Safety
/// `bufs` is NULL or points to `count` readable, initialised `mmc_buffer`s.
unsafe fn layers_arg(bufs: *const mmc_buffer, count: u32) -> Result<Vec<Piece>> {
    if bufs.is_null() {
        return Err(Error::invalid("layer descriptors are a null pointer"));
    }
    if count == 0 {
        return Err(Error::invalid("layer count is 0"));
    }
    // SAFETY: `bufs` is not NULL and points to `count` descriptors (the
    // caller's contract); `count` is a u32, so the slice is at most
    // 2^32 * 24 bytes, far below isize::MAX; it is only read here.
    unsafe { std::slice::from_raw_parts(bufs, count as usize) }
        .iter()
        .enumerate()
        .map(|(i, b)| piece(b).map_err(|e| Error::invalid(format!("layer {i}: {}", strip_invalid(&e)))))
        .collect()
}

/// The message of an `InvalidParam` without its prefix (for nesting).
fn strip_invalid(e: &Error) -> String {
    match e {
        Error::InvalidParam(m) => m.clone(),
        e => e.to_string(),
    }
}

/// # Safety
/// `options` is NULL or points to a readable, initialised `mmc_put_options`.
unsafe fn options_arg(options: *const mmc_put_options) -> Result<PutOptions> {
    let o = if options.is_null() {
        mmc_put_options::default()
    } else {
        // SAFETY: not NULL, and valid by the caller's contract; the struct
        // is `Copy` plain data, copied out at once.
        unsafe { *options }
    };
    let replicas = if o.replica_num == 0 { 1 } else { o.replica_num };
    mmc_wire::validate_replicas(replicas)?;
    if o.preferred_count as usize > MMC_MAX_REPLICAS {
        return Err(Error::invalid(format!(
            "preferred_count {} is outside 0..={MMC_MAX_REPLICAS}",
            o.preferred_count
        )));
    }
    Ok(PutOptions {
        replicas,
        preferred: o.preferred_service_ids[..o.preferred_count as usize].to_vec(),
    })
}

/// The keys of a batch: the outer error rejects the whole batch (count out of
/// range, `keys` NULL); an inner error rejects one key.
///
/// # Safety
/// `keys` is NULL or points to `count` pointers, each of which satisfies
/// [`key_arg`]'s contract for `'a`.
unsafe fn batch_keys<'a>(keys: *const *const c_char, count: u32) -> Result<Vec<Result<&'a str>>> {
    validate_batch_len(count as usize)?;
    if keys.is_null() {
        return Err(Error::invalid("keys is a null pointer"));
    }
    // SAFETY: `keys` is not NULL and points to `count` (at most
    // MMC_MAX_BATCH) key pointers by the caller's contract.
    let keys = unsafe { std::slice::from_raw_parts(keys, count as usize) };
    Ok(keys
        .iter()
        // SAFETY: each key pointer satisfies `key_arg`'s contract (ours).
        .map(|&k| unsafe { key_arg(k) })
        .collect())
}

/// Where a batch writes its per-key codes: only when `results` is non-null
/// and `count` in range, else nothing is ever written.
struct Results {
    ptr: *mut i32,
    n: usize,
    given: bool,
}

impl Results {
    fn new(ptr: *mut i32, count: u32) -> Self {
        let ok = !ptr.is_null() && validate_batch_len(count as usize).is_ok();
        Results {
            ptr: if ok { ptr } else { std::ptr::null_mut() },
            n: count as usize,
            given: !ptr.is_null(),
        }
    }

    /// Rejects a NULL `results` (the count is checked with the keys).
    fn check(&self, what: &str) -> Result<()> {
        if !self.given {
            return Err(Error::invalid(format!("{what} is a null pointer")));
        }
        Ok(())
    }

    /// Fills every slot with `c` (a whole-batch failure).
    ///
    /// # Safety
    /// The `results` pointer given to [`Results::new`] is NULL or points to
    /// `count` writable `int32_t`s that nothing else accesses meanwhile.
    unsafe fn fill(&self, c: i32) {
        if !self.ptr.is_null() {
            // SAFETY: `ptr` is only kept non-NULL when `n` is a valid batch
            // length (1..=MMC_MAX_BATCH); it then points to `n` writable,
            // unshared i32s by the caller's contract.
            unsafe { std::slice::from_raw_parts_mut(self.ptr, self.n) }.fill(c);
        }
    }

    /// # Safety
    /// As [`Results::fill`].
    unsafe fn write(&self, codes: impl IntoIterator<Item = i32>) {
        if !self.ptr.is_null() {
            // SAFETY: as in `fill`.
            let out = unsafe { std::slice::from_raw_parts_mut(self.ptr, self.n) };
            for (slot, c) in out.iter_mut().zip(codes) {
                *slot = c;
            }
        }
    }
}

/// Runs a batch body; a whole-batch failure (an `Err`, or a panic turned
/// into `MMC_ERROR`) is copied into every result slot.
///
/// # Safety
/// As [`Results::fill`] for `results`.
unsafe fn batch_guard(name: &str, results: &Results, f: impl FnOnce() -> Result<i32>) -> i32 {
    let rc = guard(name, f);
    if rc < 0 {
        // SAFETY: `results` satisfies `fill`'s contract (ours).
        unsafe { results.fill(rc) };
    }
    rc
}

/// Runs `f` on the items that passed validation and puts its per-item
/// results back in their places, next to the validation failures.
fn run_valid<I, T>(items: Vec<Result<I>>, f: impl FnOnce(Vec<I>) -> Result<Vec<Result<T>>>) -> Result<Vec<Result<T>>> {
    let mut out: Vec<Option<Result<T>>> = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let mut at = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        match it {
            Ok(v) => {
                valid.push(v);
                at.push(i);
                out.push(None);
            }
            Err(e) => out.push(Some(Err(e))),
        }
    }
    if !valid.is_empty() {
        let n = valid.len();
        let res = f(valid)?;
        if res.len() != n {
            return Err(Error::Other(format!("internal: {} results for {n} keys", res.len())));
        }
        for (i, r) in at.into_iter().zip(res) {
            out[i] = Some(r);
        }
    }
    Ok(out.into_iter().map(|o| o.expect("every slot filled")).collect())
}

fn codes<T>(rs: &[Result<T>]) -> impl Iterator<Item = i32> + '_ {
    rs.iter().map(mmc_wire::error::to_code)
}

fn fill_info(info: &KeyInfo) -> mmc_data_info {
    let mut out = mmc_data_info {
        size: info.size,
        ..Default::default()
    };
    for (i, (sid, medium)) in info.replicas.iter().take(MMC_MAX_REPLICAS).enumerate() {
        out.service_ids[i] = *sid;
        out.media[i] = medium.as_u8() as u32;
    }
    out.replica_num = info.replicas.len().min(MMC_MAX_REPLICAS) as u32;
    out
}

/// One put of raw pieces; a duplicate key is reported (`MMC_DUPLICATED_OBJECT`).
///
/// # Safety
/// Every piece is valid for reads for the whole call.
unsafe fn put_pieces(c: &BlockingObjectStore, key: &str, pieces: Vec<Piece>, opts: &PutOptions) -> Result<i32> {
    // SAFETY: the pieces are readable for the call (our contract), which
    // is what `put_raw_batch` requires.
    let r = unsafe { c.put_raw_batch(&[key], &[pieces], opts) }?;
    r.into_iter().next().unwrap_or(Err(Error::Other("no result".into())))?;
    Ok(MMC_OK)
}

/// # Safety
/// Every piece is valid for writes, and not otherwise accessed, for the
/// whole call.
unsafe fn get_pieces(c: &BlockingObjectStore, key: &str, pieces: Vec<Piece>) -> Result<i32> {
    // SAFETY: the pieces are writable and unshared for the call (our
    // contract), which is what `get_into_raw_batch` requires.
    let r = unsafe { c.get_into_raw_batch(&[key], &[pieces]) }?;
    r.into_iter().next().unwrap_or(Err(Error::Other("no result".into())))?;
    Ok(MMC_OK)
}

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

/// Applies the overrides; returns the log level when `log_level` is given
/// (which may be `off`, a level the configuration file cannot express).
///
/// # Safety
/// Every string pointer of `o` is NULL or NUL-terminated, readable for the
/// call.
unsafe fn apply_options(cfg: &mut LocalConfig, o: &mmc_setup_options) -> Result<Option<LevelFilter>> {
    // SAFETY: the string fields of `o` are NULL or NUL-terminated by our
    // contract (this holds for every `opt_str` below), and the borrowed
    // text is copied out before returning.
    if let Some(v) = unsafe { opt_str(o.meta_addr, "meta_addr") }? {
        cfg.meta_addr = v.to_owned();
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.dram_size, "dram_size") }? {
        let n = mmc_config::parse_size(v).map_err(|e| Error::invalid(format!("dram_size: {e}")))?;
        cfg.dram_size = mmc_config::ByteSize(n);
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.protocol, "protocol") }? {
        cfg.protocol = match v {
            "auto" => Protocol::Auto,
            "tcp" => Protocol::Tcp,
            _ => return Err(Error::invalid(format!("protocol `{v}` is not auto or tcp"))),
        };
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.transfer_listen, "transfer_listen") }? {
        cfg.transfer_listen = v.to_owned();
    }
    // SAFETY: as above.
    if let Some(v) = unsafe { opt_str(o.host_id, "host_id") }? {
        cfg.host_id = Some(v.to_owned());
    }
    if o.worker_threads != 0 {
        cfg.worker_threads = o.worker_threads;
    }
    // SAFETY: as above.
    match unsafe { opt_str(o.log_level, "log_level") }? {
        Some(v) => Ok(Some(global::parse_level(v)?)),
        None => Ok(None),
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

/// One key of a batch with its value's buffer pieces.
type Item<'a> = (&'a str, Vec<Piece>);

/// Pairs each key with its entry of the per-key array `arr` (of as many
/// entries as keys), turned into buffer pieces by `f`; a bad key or entry
/// fails only its own item.
///
/// # Safety
/// `arr` is NULL or points to `keys.len()` readable, initialised `T`s.
unsafe fn per_key_items<'a, T>(
    keys: Vec<Result<&'a str>>,
    arr: *const T,
    what: &str,
    f: impl Fn(&T) -> Result<Vec<Piece>>,
) -> Result<Vec<Result<Item<'a>>>> {
    if arr.is_null() {
        return Err(Error::invalid(format!("{what} is a null pointer")));
    }
    // SAFETY: `arr` is not NULL and holds `keys.len()` (a valid batch
    // length) entries by our contract; they are only read here.
    let arr = unsafe { std::slice::from_raw_parts(arr, keys.len()) };
    Ok(keys.into_iter().zip(arr).map(|(k, x)| Ok((k?, f(x)?))).collect())
}

/// # Safety
/// Every piece of `items` is valid for reads for the whole call; `res` as
/// for [`Results::fill`].
unsafe fn batch_put_items(
    c: &BlockingObjectStore,
    name: &str,
    items: Vec<Result<Item<'_>>>,
    opts: &PutOptions,
    res: &Results,
) -> Result<i32> {
    let rs = run_valid(items, |valid| {
        let (ks, vs): (Vec<&str>, Vec<Vec<Piece>>) = valid.into_iter().unzip();
        // SAFETY: every piece is readable for the call (our contract).
        unsafe { c.put_raw_batch(&ks, &vs, opts) }
    })?;
    // SAFETY: `res` satisfies `Results::write`'s contract (ours).
    unsafe { res.write(codes(&rs)) };
    note_key_errors(name, &rs);
    Ok(MMC_OK)
}

/// # Safety
/// Every piece of `items` is valid for writes, and not otherwise accessed,
/// for the whole call; `res` as for [`Results::fill`].
unsafe fn batch_get_items(
    c: &BlockingObjectStore,
    name: &str,
    items: Vec<Result<Item<'_>>>,
    res: &Results,
) -> Result<i32> {
    let rs = run_valid(items, |valid| {
        let (ks, vs): (Vec<&str>, Vec<Vec<Piece>>) = valid.into_iter().unzip();
        // SAFETY: every piece is writable and unshared for the call (our
        // contract).
        unsafe { c.get_into_raw_batch(&ks, &vs) }
    })?;
    // SAFETY: `res` satisfies `Results::write`'s contract (ours).
    unsafe { res.write(codes(&rs)) };
    note_key_errors(name, &rs);
    Ok(MMC_OK)
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
    use mmc_wire::error::code;
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
