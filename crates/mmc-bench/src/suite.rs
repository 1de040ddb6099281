//! The benchmark workloads beyond the single in-process client: Redis
//! beside every same-host figure, the layered KV block, N client processes
//! against M memory providers, the cross-host path between two network
//! namespaces, and Mooncake Store through its Python client.
//!
//! This module holds what the phases share (the [`Shape`] they run at and
//! the commands they send); each phase is in a submodule.

mod clients;
mod cross;
mod cross_cluster;
mod in_process;
mod mooncake;
mod mooncake_services;
mod scale;
mod services;

pub use cross::cross;
pub use in_process::{layers, redis_batch, redis_size};
pub use mooncake::mooncake;
pub use mooncake_services::MooncakeSetup;
pub use scale::scale;

use super::measure::Budget;
use super::worker::Cmd;
use std::path::PathBuf;

/// What the phases need from the plan.
#[derive(Clone, Debug)]
pub struct Shape {
    pub budget: Budget,
    pub ws: u64,
    pub segment: u64,
    pub sizes: Vec<u64>,
    pub batch_keys: usize,
    pub batch_values: Vec<u64>,
    pub clients: Vec<usize>,
    pub providers: usize,
    pub scale_size: u64,
    pub cross_sizes: Vec<u64>,
    pub cross_batch_keys: usize,
    pub logs: PathBuf,
}

impl Shape {
    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    fn max_clients(&self) -> usize {
        self.clients.iter().copied().max().unwrap_or(1)
    }
}

fn cmd(op: &str, size: u64, slots: usize, prefix: &str) -> Cmd {
    Cmd {
        op: op.into(),
        size,
        slots,
        prefix: prefix.into(),
        ..Cmd::default()
    }
}

fn with_batch(mut c: Cmd, batch: usize) -> Cmd {
    c.batch = batch;
    c
}

fn layered(mut c: Cmd) -> Cmd {
    c.layers = true;
    c.size = 0;
    c
}

/// The cross sizes also measured in batches: those whose batch of
/// `shape.cross_batch_keys` objects fits the working set.
pub fn cross_batch_sizes(shape: &Shape) -> Vec<u64> {
    let b = shape.cross_batch_keys as u64;
    if b == 0 {
        return Vec::new();
    }
    shape
        .cross_sizes
        .iter()
        .copied()
        .filter(|&s| s * b <= shape.ws)
        .collect()
}
