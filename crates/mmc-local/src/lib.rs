//! MemCache LocalService: runs inside the application process as both the
//! client API ([`ObjectStore`]) and a memory provider contributing a shared
//! segment other LocalServices read and write directly.
//!
//! Files: [`segment`] (shared memory), [`hostid`] (who shares memory with
//! whom), [`meta_client`] (control RPC), [`service`] (registration,
//! heartbeat, ledger), [`transfer`] (TCP data path), [`buffer`] (caller
//! buffers), [`store`] (the object API).

pub mod buffer;
pub mod copy;
pub mod hostid;
pub mod meta_client;
pub mod segment;
pub mod service;
mod spin_conn;
pub mod store;
pub mod transfer;

pub use buffer::Piece;
pub use mmc_config::{LocalConfig, Protocol};
pub use mmc_wire::message::KeyInfo;
pub use mmc_wire::{Error, Medium, Result, ServiceId};
pub use store::{BatchResult, BlockingObjectStore, ObjectStore, PutOptions};
