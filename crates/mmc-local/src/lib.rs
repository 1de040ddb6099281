//! MemCache LocalService: runs inside the application process as both the
//! client API ([`ObjectStore`]) and a memory provider contributing a shared
//! segment other LocalServices read and write directly.
//!
//! The public API is the object API: [`ObjectStore`],
//! [`BlockingObjectStore`], their configuration ([`LocalConfig`]), options,
//! results and errors, and [`AdminClient`] for the MetaService's control
//! requests (what `mmc stat`, `mmc top` and `mmc drain` send). Everything
//! else is internal: `segment` (shared
//! memory), `hostid` (who shares memory with whom), `meta_client` (control
//! RPC), `leader` (finding the HA leader in etcd), `service` (registration,
//! heartbeat, ledger), `transfer` (TCP data
//! path), `buffer` (caller buffers), `copy` (memcpy variants). The feature
//! `bench-internals` (for `mmc-bench` and this crate's own tests, no stable
//! API) makes those modules public; every function there that takes a raw
//! address is an `unsafe fn` with its contract documented.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

/// Declares internal modules: public with the `bench-internals` feature,
/// crate-private otherwise.
macro_rules! internal_modules {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[cfg(feature = "bench-internals")]
        pub mod $name;
        $(#[$m])*
        #[cfg(not(feature = "bench-internals"))]
        // Some of their items exist only for the feature's users.
        #[allow(dead_code)]
        pub(crate) mod $name;
    )*};
}

internal_modules!(
    buffer,
    copy,
    hostid,
    leader,
    meta_client,
    segment,
    service,
    spin_conn,
    transfer
);
mod admin;
mod clock;
mod direct;
mod store;

pub use admin::AdminClient;
pub use buffer::Piece;
pub use direct::{CopyDirection, REMOTE_TAG};
pub use mmc_config::{LocalConfig, Protocol};
pub use mmc_wire::message::{DrainReport, DrainState, DrainUnmoved, KeyInfo};
pub use mmc_wire::{Error, ErrorKind, Medium, Result, ServiceId};
pub use store::{BatchResult, BlockingObjectStore, ObjectStore, PutOptions};
