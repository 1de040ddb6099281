//! Client processes (`mmc bench-client`, or anything speaking its
//! protocol) and the measurement steps the multi-process phases run with
//! them: put / get with the first N, and batch put / get with one.

use super::{cmd, with_batch, Shape};
use crate::cluster::bench_command;
use crate::measure::Measured;
use crate::procs::{aggregate, measure_all, run_all, Proc};
use crate::report::Row;
use crate::rows::Kind;
use crate::workloads::slots_for;

pub(super) fn client_procs(
    shape: &Shape,
    n: usize,
    netns: Option<&str>,
    args: &[&str],
    what: &str,
) -> Result<Vec<Proc>, String> {
    (0..n)
        .map(|i| {
            let mut c = bench_command(netns)?;
            c.arg("bench-client")
                .args(args)
                .args(["--congestion", &crate::cluster::congestion()])
                .env_remove(mmc_config::TOKEN_FILE_ENV)
                .env("RUST_LOG", "warn");
            Proc::spawn(
                c,
                &format!("{what} client {i}"),
                Some(&shape.log(&format!("{what}-{i}.log"))),
                30,
            )
        })
        .collect()
}

/// Put (fresh keys) and get (rotation) of `size` with the first `n` of `procs`,
/// each keeping `ws / n` bytes live. Returns the aggregate (put, get).
pub(super) fn put_get_n(
    procs: &mut [Proc],
    n: usize,
    size: u64,
    shape: &Shape,
    key: &str,
) -> Result<(Measured, Measured), String> {
    let slots = slots_for(shape.ws / n as u64, size);
    let ps = &mut procs[..n];
    let put = aggregate(&measure_all(
        ps,
        &cmd("put", size, slots, &format!("{key}p")),
        shape.budget,
    )?);
    run_all(ps, &cmd("fill", size, slots, &format!("{key}g")), false)?;
    let get = aggregate(&measure_all(ps, &cmd("get", size, slots, ""), shape.budget)?);
    run_all(ps, &cmd("clear", 0, 0, ""), false)?;
    Ok((put, get))
}

/// Batch puts / gets of `shape.cross_batch_keys` objects of `size` bytes
/// (one call each) with the first of `procs`, rotating over the working
/// set: rows of kinds `kinds.0` and `kinds.1` at `size`, named `{ops.0} xB` and `{ops.1} xB`.
pub(super) fn batch_rows(
    procs: &mut [Proc],
    size: u64,
    shape: &Shape,
    key: &str,
    kinds: (Kind, Kind),
    ops: (&str, &str),
) -> Result<(Row, Row), String> {
    let batch = shape.cross_batch_keys.max(1);
    let slots = (slots_for(shape.ws, size) / batch).max(1) * batch;
    let one = &mut procs[..1];
    let put = aggregate(&measure_all(
        one,
        &with_batch(cmd("put_batch", size, slots, &format!("{key}p")), batch),
        shape.budget,
    )?);
    run_all(one, &cmd("fill", size, slots, &format!("{key}g")), false)?;
    let get = aggregate(&measure_all(
        one,
        &with_batch(cmd("get_batch", size, slots, ""), batch),
        shape.budget,
    )?);
    run_all(one, &cmd("clear", 0, 0, ""), false)?;
    let b = batch as u64;
    let row =
        |kind: Kind, op: &str, m| Row::new(kind.size(size), "cross", format!("{op} x{b}"), size, b, m).group(size);
    Ok((row(kinds.0, ops.0, put), row(kinds.1, ops.1, get)))
}
