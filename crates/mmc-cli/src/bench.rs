//! `mmc bench`: data-path throughput and latency, each beside a baseline
//! measured in the same run (the machine may be shared, so only ratios
//! measured together are comparable).
//!
//! Workloads:
//! - `memcpy`: copy bandwidth between two cache-hot buffers, and between a
//!   hot buffer and slots rotating over the working set (what a put or get
//!   of the shm workload copies);
//! - `shm`: same-host `put_from` / `get_into` through a memory-provider
//!   LocalService started as a child process (`mmc local`), from a pure
//!   client (no segment) in this process, so each operation is control RPCs
//!   plus one memcpy into or out of the child's segment mapped here (each
//!   size is measured right after its memcpy baselines);
//! - `tcp`: the same with a `protocol = tcp` client, beside a raw loopback
//!   TCP stream of the same bytes;
//! - `batch`: put_batch / get_into_batch / exist_batch of small keys, beside
//!   the same call on one key.
//!
//! The MetaService runs in this process on a free loopback port. The
//! working set stays well below the segment (and its eviction watermarks)
//! and the segment is emptied between phases, so eviction never runs.

mod cluster;
mod measure;
mod report;
mod workloads;

use clap::{Args, ValueEnum};
use measure::Budget;
use mmc_config::{parse_size, Protocol};
use report::{fmt_size, Row};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    All,
    Memcpy,
    Shm,
    Tcp,
    Batch,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated (shm also runs its memcpy baselines).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    workload: Vec<Workload>,
    /// Seconds per measurement (each measurement also makes at least 20 operations).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Operations per measurement instead of a time budget.
    #[arg(long)]
    iters: Option<u64>,
    /// Segment of the memory-provider LocalService.
    #[arg(long, default_value = "1GB")]
    segment_size: String,
    /// Bytes of objects a measurement keeps live and rotates over (at most 40% of the segment).
    #[arg(long, default_value = "256MB")]
    working_set: String,
    /// Object sizes of the memcpy and shm workloads.
    #[arg(long, value_delimiter = ',', default_value = "1MB,8MB")]
    sizes: Vec<String>,
    /// Object size of the tcp workload.
    #[arg(long, default_value = "1MB")]
    tcp_size: String,
    /// Keys per batch of the batch workload.
    #[arg(long, default_value_t = 32)]
    batch_keys: usize,
    /// Value size of the batch workload.
    #[arg(long, default_value = "4KB")]
    batch_value: String,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn size_arg(flag: &str, v: &str) -> Result<u64, String> {
    match parse_size(v) {
        Ok(0) => Err(format!("--{flag}: must not be 0")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("--{flag}: {e}")),
    }
}

struct Plan {
    memcpy: bool,
    shm: bool,
    tcp: bool,
    batch: bool,
    budget: Budget,
    segment: u64,
    ws: u64,
    sizes: Vec<u64>,
    tcp_size: u64,
    batch_keys: usize,
    batch_value: u64,
}

impl Plan {
    fn new(a: &BenchArgs) -> Result<Plan, String> {
        let has = |w: Workload| a.workload.contains(&Workload::All) || a.workload.contains(&w);
        if !(a.seconds > 0.0 && a.seconds.is_finite()) {
            return Err("--seconds: must be a positive number".into());
        }
        if a.iters == Some(0) {
            return Err("--iters: must be at least 1".into());
        }
        let segment = size_arg("segment-size", &a.segment_size)?;
        let ws = size_arg("working-set", &a.working_set)?;
        if ws > segment * 2 / 5 {
            return Err(format!(
                "--working-set {} is above 40% of --segment-size {}: puts could then need eviction",
                fmt_size(ws),
                fmt_size(segment)
            ));
        }
        let sizes = a
            .sizes
            .iter()
            .map(|s| size_arg("sizes", s))
            .collect::<Result<Vec<_>, _>>()?;
        let tcp_size = size_arg("tcp-size", &a.tcp_size)?;
        let batch_value = size_arg("batch-value", &a.batch_value)?;
        for &s in sizes.iter().chain([&tcp_size]) {
            if s > ws {
                return Err(format!(
                    "object size {} is larger than --working-set {}",
                    fmt_size(s),
                    fmt_size(ws)
                ));
            }
        }
        if !(1..=mmc_wire::MAX_BATCH).contains(&a.batch_keys) {
            return Err(format!("--batch-keys: must be 1..={}", mmc_wire::MAX_BATCH));
        }
        let small_live = workloads::SMALL_KEYS.max(a.batch_keys) as u64 * batch_value;
        if small_live > ws {
            return Err(format!(
                "--batch-value: the batch workload keeps {} keys of {} live, more than --working-set {}",
                workloads::SMALL_KEYS.max(a.batch_keys),
                fmt_size(batch_value),
                fmt_size(ws)
            ));
        }
        Ok(Plan {
            memcpy: has(Workload::Memcpy) || has(Workload::Shm),
            shm: has(Workload::Shm),
            tcp: has(Workload::Tcp),
            batch: has(Workload::Batch),
            budget: Budget {
                seconds: a.seconds,
                iters: a.iters,
            },
            segment,
            ws,
            sizes,
            tcp_size,
            batch_keys: a.batch_keys,
            batch_value,
        })
    }
}

/// The 1/5/15-minute load averages: how busy the (shared) machine was.
fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// What this machine is, for the report.
fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    json!({ "nproc": nproc, "cpu_model": model, "mem_total_bytes": mem_kib * 1024, "kernel": kernel })
}

pub fn run(a: BenchArgs) -> Result<(), String> {
    let p = Plan::new(&a)?;
    crate::init_logging("warn");
    let started = Instant::now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mach = machine();
    let load_before = loadavg();
    println!("mmc bench: {command}");
    println!(
        "machine: {} CPUs, {}, {:.1} GiB memory, Linux {}",
        mach["nproc"],
        mach["cpu_model"].as_str().unwrap_or("?"),
        mach["mem_total_bytes"].as_u64().unwrap_or(0) as f64 / (1u64 << 30) as f64,
        mach["kernel"].as_str().unwrap_or("?")
    );
    let sizing = match p.budget.iters {
        Some(n) => format!("{n} operations per measurement"),
        None => format!("{} s per measurement", p.budget.seconds),
    };
    println!(
        "{sizing}; segment {}, working set {}; GB/s = 10^9 bytes per second of timed operations",
        fmt_size(p.segment),
        fmt_size(p.ws)
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut evictions = serde_json::Value::Null;
    if p.memcpy && !p.shm {
        rows.extend(workloads::memcpy(&p.sizes, p.budget, p.ws));
    }
    if p.shm || p.tcp || p.batch {
        workloads::progress(&format!(
            "starting a MetaService and a LocalService child with a {} segment",
            fmt_size(p.segment)
        ));
        let cluster = cluster::Cluster::start(p.segment)?;
        let prov = cluster.provider();
        notes.push(format!(
            "cluster: MetaService in this process on {}, memory-provider LocalService child pid {} (service {}, \
             transfer {}), clients in this process are pure (dram_size 0); cpu% columns: mn = benchmark thread, \
             rt = client runtime workers, mt = MetaService runtime, pr = provider process (100 = one core)",
            cluster.meta_addr, prov.pid, prov.service_id, prov.transfer_addr
        ));
        // Both clients join before any measurement: a membership change
        // makes clients drop and re-map peer segments.
        let c = cluster.client(Protocol::Auto)?;
        let ct = if p.tcp {
            Some(cluster.client(Protocol::Tcp)?)
        } else {
            None
        };
        let ev0 = cluster.stat(&c)?.evictions;
        let big = p.sizes.iter().copied().chain([p.tcp_size]).max().unwrap_or(1 << 20);
        rows.push(workloads::pretouch(&cluster, &c, big, &mut notes)?);
        if p.shm {
            // Each size's memcpy baselines right before its shm measurements,
            // so that drift of the shared machine touches both alike.
            for &size in &p.sizes {
                rows.extend(workloads::memcpy(&[size], p.budget, p.ws));
                rows.extend(workloads::shm(&cluster, &c, &[size], p.budget, p.ws, &mut notes)?);
            }
        }
        if let Some(ct) = &ct {
            rows.extend(workloads::tcp(&cluster, ct, p.tcp_size, p.budget, p.ws, &mut notes)?);
        }
        if p.batch {
            rows.extend(workloads::batch(
                &cluster,
                &c,
                p.batch_keys,
                p.batch_value,
                p.budget,
                &mut notes,
            )?);
        }
        let ev1 = cluster.stat(&c)?.evictions;
        notes.push(format!(
            "eviction avoided: working set {} = {:.0}% of the {} segment (eviction starts at {}% and drains to {}%); \
             puts write fresh keys in rounds of working-set/size keys that are removed (untimed) before the next \
             round, gets rotate over working-set/size live keys, and the segment is emptied (remove_all, then \
             waiting for 0 bytes used) between phases. MetaService eviction counter: {ev0} before, {ev1} after",
            fmt_size(p.ws),
            p.ws as f64 * 100.0 / p.segment as f64,
            fmt_size(p.segment),
            cluster.high_watermark,
            cluster.low_watermark
        ));
        evictions = json!({ "before": ev0, "after": ev1 });
        if let Some(ct) = &ct {
            ct.close();
        }
        c.close();
        workloads::progress("stopping the cluster");
    }
    let order = ["memcpy", "shm", "tcp", "batch"];
    rows.sort_by_key(|r| order.iter().position(|s| *s == r.section));
    report::resolve_ratios(&mut rows);
    println!();
    print!("{}", report::table(&rows));
    println!();
    for n in &notes {
        println!("- {n}");
    }
    let total = started.elapsed().as_secs_f64();
    let load_after = loadavg();
    println!("- total run time {total:.1} s; load average {load_before} before, {load_after} after");
    if let Some(path) = &a.json {
        let doc = json!({
            "command": command,
            "machine": mach,
            "config": {
                "seconds": p.budget.seconds,
                "iters": p.budget.iters,
                "segment_bytes": p.segment,
                "working_set_bytes": p.ws,
                "sizes": p.sizes,
                "tcp_size": p.tcp_size,
                "batch_keys": p.batch_keys,
                "batch_value": p.batch_value,
            },
            "results": rows.iter().map(report::row_json).collect::<Vec<_>>(),
            "evictions": evictions,
            "notes": notes,
            "total_seconds": total,
            "load_average": { "before": load_before, "after": load_after },
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("- results written to {}", path.display());
    }
    Ok(())
}
