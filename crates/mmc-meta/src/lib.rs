//! MemCache MetaService: owns all metadata and never touches object bytes.
//!
//! Layout, one concept per file:
//! - [`allocator`]: space allocator of one segment;
//! - [`index`]: the sharded key -> object map with LRU order;
//! - [`object`]: object state machine and read leases;
//! - [`membership`]: LocalServices, their segments, liveness;
//! - [`placement`]: where replicas go;
//! - [`eviction`]: LRU victim selection;
//! - [`ledger`]: pushing replica records to segment owners for recovery;
//! - [`state`]: the request handlers tying the above together;
//! - [`server`]: the control-RPC server and periodic tasks;
//! - [`ring_conn`]: requests and answers of connections over a shared-memory ring;
//! - `tls_conn`: control connections over TLS;
//! - [`http`]: health, metrics and query endpoints;
//! - [`status`]: the status page and its JSON document;
//! - [`election`]: leader election of HA mode (trait and etcd backend);
//! - [`role`]: leader or standby, fencing and the leader term.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod allocator;
pub mod clock;
pub mod drain;
pub mod election;
pub mod eviction;
pub mod http;
pub mod index;
pub mod launch;
pub mod ledger;
pub mod membership;
pub mod metrics;
pub mod object;
pub mod placement;
pub mod returns;
pub mod ring_conn;
pub mod role;
pub mod server;
pub mod state;
pub mod status;
mod tls_conn;

pub use launch::MetaService;
pub use state::{MetaParams, MetaState};
