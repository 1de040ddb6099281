//! The C API's types as `include/memcache.h` declares them: the result
//! codes (`mmc_result`), the limits and enumerations (`MMC_*` constants)
//! and the `#[repr(C)]` structs callers pass in and get back.

use std::ffi::{c_char, c_void};

// ---- result codes (docs/c-api.md) -----------------------------------------

/// The result codes every function returns (docs/c-api.md, "Calls"). Functions are
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

pub(crate) const MMC_OK: i32 = mmc_result::MMC_OK as i32;

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
