//! `mmc bench`: placeholder replaced below.
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {}

pub fn run(_a: BenchArgs) -> Result<(), String> {
    Err("bench: not built yet".into())
}
