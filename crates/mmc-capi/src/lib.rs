//! # MemCache C API
//!
//! `libmemcache.so` / `libmemcache.a`: the MemCache client (a LocalService
//! running inside the application process) behind plain C functions, for C
//! and C++ inference runtimes. The header `include/memcache.h` is generated
//! from this crate with cbindgen (see `cbindgen.toml`; `tests/header.rs`
//! fails when the committed header is stale), and `include/memcache.hpp` is a
//! header-only C++ wrapper over it.
//!
//! The exported functions are in `lifecycle.rs` (setup, init, uninit, log
//! level, last error, service id), `single.rs` (calls on one key) and
//! `batch.rs` (batch calls); `types.rs` holds the result codes, constants
//! and `#[repr(C)]` structs; `args.rs` the decoding and validation of
//! arguments; `global.rs` the process-wide client, the error message of the
//! last failure and the logger.
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

/// mimalloc for every Rust allocation of the library, as in the Python
/// extension and the `mmc` binary: a call builds its keys, request frame and
/// results in short-lived allocations, and with glibc's allocator a 32-key
/// `mmcc_batch_exist` from another process took 1.55x its in-process time
/// against 1.25x with mimalloc (docs/benchmarks.md). The application's own
/// `malloc` is untouched: no memory crosses the API to be freed by the
/// other side. The `system-allocator` feature turns it off for valgrind.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod global;
mod types;

// The exported functions. cbindgen writes them to the header in the order
// these modules are declared, which is the header's order (the blank lines
// keep rustfmt from sorting the declarations).
mod lifecycle;

mod single;

mod batch;

pub use batch::*;
pub use lifecycle::*;
pub use single::*;
pub use types::*;

#[cfg(test)]
mod tests;
