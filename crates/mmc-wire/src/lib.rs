//! MemCache wire format: the bottom layer every other crate builds on.
//!
//! It owns the result codes and the typed [`Error`], the identifiers shared by
//! all services ([`ServiceId`], [`Gva`], [`Medium`]), the limits on keys and
//! batches, the control-RPC messages and the frame codec that carries them,
//! and the cluster-token handshake every connection starts with ([`auth`]).
//! Request I/O policy (retries, timeouts) belongs to the callers; the one
//! exception is [`listen`], the accept loop guard every server port shares
//! (connection limit, accept errors survived, descriptor limit raised).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod auth;
pub mod error;
pub mod frame;
pub mod frame_reader;
pub mod frame_writer;
#[doc(hidden)]
pub mod fuzzing;
pub mod listen;
pub mod message;
pub mod shm_ring;
pub mod stream_writer;
pub mod transfer;
pub mod types;

pub use error::{Error, ErrorKind, Result};
pub use types::*;
