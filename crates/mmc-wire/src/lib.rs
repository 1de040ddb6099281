//! MemCache wire format: the bottom layer every other crate builds on.
//!
//! It owns the result codes and the typed [`Error`], the identifiers shared by
//! all services ([`ServiceId`], [`Gva`], [`Medium`]), the limits on keys and
//! batches, the control-RPC messages and the frame codec that carries them.
//! It never does I/O policy (retries, timeouts): that belongs to the callers.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod error;
pub mod frame;
pub mod frame_reader;
pub mod frame_writer;
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
pub mod shm_ring;
pub mod transfer;
pub mod types;

pub use error::{Error, Result};
pub use types::*;
