//! The cross-host data path (TCP): the server each memory-providing
//! LocalService runs over its segment, and the pooled client that reads and
//! writes remote segments. The byte layout is specified in
//! `mmc_wire::transfer`.

pub mod client;
pub mod server;
