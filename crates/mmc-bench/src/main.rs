//! `mmc-bench` (also reached as `mmc bench`): data-path throughput and
//! latency, each beside baselines measured in the same run (the machine may
//! be shared, so only ratios measured together are comparable). The
//! services it starts run from the `mmc` binary beside it (or `$MMC_BIN`);
//! its client processes are this binary's hidden `bench-client` command.
//!
//! Workloads (`--workload`, comma-separated; default `all`):
//! - `memcpy`: copy bandwidth between two cache-hot buffers, and between a
//!   hot buffer and slots rotating over the working set;
//! - `shm` (alias `sweep`): the object-size sweep (`--sizes`, 4 KiB .. 64
//!   MiB): same-host `put_from` / `get_into` through a memory-provider
//!   LocalService child process (`mmc local`), from a pure client (no
//!   segment) in this process, so each operation is control RPCs plus one
//!   memcpy into or out of the child's segment mapped here; beside memcpy,
//!   Redis SET / GET and Mooncake put_from / get_into of the same size;
//! - `tcp`: the same with a `protocol = tcp` client on loopback, beside a
//!   raw loopback TCP stream of the same bytes;
//! - `batch`: put_batch / get_into_batch / exist_batch of `--batch-keys`
//!   keys of each `--batch-value` (32 x 4 KiB and 32 x 128 KiB), beside the
//!   same call on one key, Redis MSET / MGET / EXISTS and Mooncake's batch
//!   calls, plus the raw TCP round trip that bounds every control RPC;
//! - `layers`: the layered KV block (61 x 128 KiB + 61 x 16 KiB in 122
//!   buffers) put and got as one object, beside memcpy gather / scatter,
//!   Redis and Mooncake;
//! - `scale`: N client processes (`--clients`, 1,2,4) against
//!   `--providers` memory-provider processes: aggregate throughput, beside
//!   N memcpy processes, N Redis clients and N Mooncake clients;
//! - `cross`: the cross-host path: two network namespaces joined by a veth
//!   pair, MetaService and providers in one, forced-TCP clients in the
//!   other, beside a raw TCP stream, Redis and Mooncake between the same
//!   two namespaces.
//!
//! Redis (`redis-server`, started here on a free port and stopped by PID)
//! and Mooncake (its Python client, `--serve` mode of
//! crates/mmc-python/bench/bench_vs_mooncake.py, inside the namespaces
//! since its master refuses loopback-only hosts) are skipped with a note
//! when not installed (`scripts/bench.sh` installs both), or with
//! `--no-redis` / `--no-mooncake`.
//!
//! The working set stays well below the segments (and their eviction
//! watermarks) and segments are emptied between phases, so eviction never
//! runs.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cluster;
#[cfg(test)]
mod golden_tests;
mod measure;
mod netns;
mod plan;
mod plot;
mod procs;
mod progress;
mod redis;
mod report;
mod rows;
mod small_ops;
mod suite;
mod summary;
mod worker;
mod workloads;

use worker::{client_main, ClientArgs};

use clap::{Parser, Subcommand};
use mmc_config::Protocol;
use plan::{BenchArgs, Plan};
use report::{fmt_size, Row};
use serde_json::json;
use std::time::Instant;

/// mimalloc, as in `mmc`: the in-process MetaService measured here runs
/// with the allocator it runs with in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mmc-bench",
    version,
    about = "Measure MemCache put/get throughput and latency against baselines measured in the same run",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    bench: Box<BenchArgs>,
}

#[derive(Subcommand)]
enum Cmd {
    /// A client process of the bench (JSON commands on stdin, results on stdout).
    #[command(hide = true)]
    BenchClient(ClientArgs),
    /// Small operations (exist, get_into 4 KiB, 32-key batches) from a client in this process beside client
    /// processes (Rust, C, Python) with the MetaService and the memory provider in processes of their own.
    SmallOps(small_ops::SmallOpsArgs),
    /// A client process of small-ops (configuration from $MMC_LOCAL_CONFIG_PATH).
    #[command(hide = true)]
    SmallOpsClient(small_ops::ClientArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Some(Cmd::BenchClient(a)) => client_main(a),
        Some(Cmd::SmallOps(a)) => {
            init_logging("warn");
            small_ops::run(a)
        }
        Some(Cmd::SmallOpsClient(a)) => small_ops::client_main(a),
        None => run(*cli.bench),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmc-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Installs this process's logger on stderr at `level` (`MMC_LOG`, else
/// `RUST_LOG`, overrides it), coloured only on a terminal.
fn init_logging(level: &str) {
    use std::io::IsTerminal;
    let filter = ["MMC_LOG", "RUST_LOG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find_map(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The 1/5/15-minute load averages: how busy the (shared) machine was.
fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// What this machine is, for the report.
fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    // "AMD EPYC" alone does not say which generation (copy speeds differ).
    let model = format!(
        "{} (family {} model {})",
        field("model name"),
        field("cpu family"),
        field("model")
    );
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
    json!({
        "nproc": nproc,
        "cpu_model": model,
        "mem_total_bytes": mem_kib * 1024,
        "kernel": kernel,
        "tcp_congestion_default": system_congestion(),
        "copy_method": mmc_local::copy::method().name(),
    })
}

/// The kernel's default TCP congestion control (what Redis and Mooncake use).
fn system_congestion() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// A free loopback TCP port (bound, then released).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// An optional baseline phase: its failure becomes a note, not the end of the run.
fn optional(what: &str, r: Result<Vec<Row>, String>, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    match r {
        Ok(v) => rows.extend(v),
        Err(e) => {
            progress::note(&format!("{what} FAILED: {e}"));
            notes.push(format!("SKIPPED: {what} failed: {e}"));
        }
    }
}

/// The in-process cluster's workloads: shm sweep, tcp, batch, layers.
fn in_process(
    p: &Plan,
    redis: Option<&redis::Server>,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<serde_json::Value, String> {
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
    let ca = if p.shm || p.batch {
        Some(cluster.client_async_commit()?)
    } else {
        None
    };
    let mut rw = match redis {
        Some(s) => Some(worker::Worker::new(worker::Redis(redis::Conn::connect(&s.addr)?), None)),
        None => None,
    };
    if ca.is_some() {
        notes.push(
            "async_commit rows: a third pure client with local.async_commit = true (opt-in, off by default): a put \
             returns once its bytes are copied and its commit RPC is sent, without waiting for the answer (one \
             control round trip instead of two); the writer sees its puts at once, other clients a moment later, \
             and a failed commit is logged, not returned"
                .into(),
        );
    }
    let ev0 = cluster.stat(&c)?.evictions;
    let big = p.sizes.iter().copied().chain([p.tcp_size]).max().unwrap_or(1 << 20);
    rows.push(workloads::pretouch(&cluster, &c, big, notes)?);
    if p.shm {
        // Each size's baselines right beside its measurements, so that drift
        // of the shared machine touches them alike.
        for &size in &p.sizes {
            rows.extend(workloads::memcpy("shm", &[size], p.budget, p.ws));
            rows.extend(workloads::shm(&cluster, &c, &[size], p.budget, p.ws, notes)?);
            if let Some(ca) = &ca {
                rows.extend(workloads::shm_async_commit(&cluster, ca, size, p.budget, p.ws, notes)?);
            }
            if let Some(w) = rw.as_mut() {
                rows.extend(suite::redis_size(w, size, p.budget, p.ws)?);
            }
        }
    }
    if let Some(ct) = &ct {
        rows.extend(workloads::tcp(&cluster, ct, p.tcp_size, p.budget, p.ws, notes)?);
    }
    if p.batch {
        for (i, &value) in p.batch_values.iter().enumerate() {
            rows.extend(workloads::batch(
                &cluster,
                &c,
                (p.batch_keys, value),
                p.budget,
                i == 0,
                ca.as_ref(),
                notes,
            )?);
            if let Some(w) = rw.as_mut() {
                rows.extend(suite::redis_batch(w, p.batch_keys, value, p.budget)?);
            }
        }
    }
    if p.layers {
        rows.extend(suite::layers(&cluster, &c, rw.as_mut(), p.budget, p.ws)?);
    }
    let ev1 = cluster.stat(&c)?.evictions;
    notes.push(format!(
        "eviction avoided: working set {} = {:.0}% of the {} segment (eviction starts at {}% and drains to {}%); \
         puts write fresh keys in rounds of working-set/size keys (at most {}) that are removed (untimed) before the \
         next round, gets rotate over as many live keys, and the segment is emptied (remove_all, then waiting for 0 \
         bytes used) between phases. MetaService eviction counter: {ev0} before, {ev1} after",
        fmt_size(p.ws),
        p.ws as f64 * 100.0 / p.segment as f64,
        fmt_size(p.segment),
        cluster.high_watermark,
        cluster.low_watermark,
        workloads::SMALL_KEYS
    ));
    if let Some(ct) = &ct {
        ct.close();
    }
    if let Some(ca) = &ca {
        ca.close();
    }
    c.close();
    workloads::progress("stopping the cluster");
    Ok(json!({ "before": ev0, "after": ev1 }))
}

pub fn run(a: BenchArgs) -> Result<(), String> {
    let p = Plan::new(&a)?;
    for (flag, v) in [("meta-spin-us", a.meta_spin_us), ("local-spin-us", a.local_spin_us)] {
        if v.is_some_and(|us| us > mmc_config::MAX_SPIN_WAIT_US) {
            return Err(format!("--{flag}: must be 0..={}", mmc_config::MAX_SPIN_WAIT_US));
        }
    }
    cluster::set_spin(a.meta_spin_us, a.local_spin_us);
    if let Some(c) = &a.transfer_congestion {
        let probe = mmc_config::LocalConfig {
            transfer_congestion: c.clone(),
            ..Default::default()
        };
        probe.validate().map_err(|e| format!("--transfer-congestion: {e}"))?;
    }
    cluster::set_congestion(a.transfer_congestion.clone());
    if let Some(p) = &a.meta_tcp_polling {
        cluster::set_tcp_polling(p.parse().map_err(|e| format!("--meta-tcp-polling: {e}"))?);
    }
    crate::init_logging("warn");
    let started = Instant::now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mach = machine();
    let load_before = loadavg();
    let logs = match &a.json {
        Some(j) => j.parent().unwrap_or(std::path::Path::new(".")).join("logs"),
        None => std::env::temp_dir().join(format!("mmc-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    println!("mmc bench: {command}");
    println!(
        "machine: {} CPUs, {}, {:.1} GiB memory, Linux {}; copy method {}; TCP congestion control: \
         MemCache transfers and raw baselines {}, system default {} (Redis, Mooncake)",
        mach["nproc"],
        mach["cpu_model"].as_str().unwrap_or("?"),
        mach["mem_total_bytes"].as_u64().unwrap_or(0) as f64 / (1u64 << 30) as f64,
        mach["kernel"].as_str().unwrap_or("?"),
        mach["copy_method"].as_str().unwrap_or("?"),
        cluster::congestion(),
        mach["tcp_congestion_default"].as_str().unwrap_or("?"),
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
    progress::start(p.steps());
    let r = run_phases(&p, &a, &logs);
    progress::finish();
    let (mut rows, mut notes, evictions, versions) = r?;
    let order = ["memcpy", "shm", "tcp", "batch", "layers", "scale", "cross"];
    // Stable: within a section and group, rows keep the order they were measured in.
    rows.sort_by_key(|r| (order.iter().position(|s| *s == r.section), r.group));
    report::resolve_ratios(&mut rows);
    println!();
    print!("{}", report::table(&rows));
    println!();
    let sum = summary::summarize(&rows, &p.sizes, &p.batch_values, &p.clients, &p.cross_sizes);
    print!("{}", sum.text);
    println!();
    notes.push(format!("logs of the child processes: {}", logs.display()));
    for n in &notes {
        println!("- {n}");
    }
    let total = started.elapsed().as_secs_f64();
    let load_after = loadavg();
    println!("- total run time {total:.1} s; load average {load_before} before, {load_after} after");
    let plot_path = a.plot.clone().or_else(|| {
        a.json.as_ref().map(|j| {
            j.parent()
                .unwrap_or(std::path::Path::new("."))
                .join("bench-bandwidth.svg")
        })
    });
    if let Some(path) = &plot_path {
        let machine = format!("{} CPUs, {}", mach["nproc"], mach["cpu_model"].as_str().unwrap_or("?"));
        match plot::bandwidth_svg(&rows, &machine) {
            Some(svg) => {
                std::fs::write(path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
                println!("- plot written to {}", path.display());
            }
            None => println!("- no plot: this run measured no bandwidth series"),
        }
    }
    if let Some(path) = &a.json {
        let doc = json!({
            "command": command,
            "machine": mach,
            "versions": versions,
            "config": {
                "seconds": p.budget.seconds,
                "iters": p.budget.iters,
                "segment_bytes": p.segment,
                "working_set_bytes": p.ws,
                "sizes": p.sizes,
                "tcp_size": p.tcp_size,
                "batch_keys": p.batch_keys,
                "batch_values": p.batch_values,
                "clients": p.clients,
                "providers": p.providers,
                "scale_size": p.scale_size,
                "cross_sizes": p.cross_sizes,
                "meta_spin_wait_us": cluster::meta_spin_us(),
                "local_spin_wait_us": cluster::local_spin_us(),
                "meta_tcp_polling": cluster::tcp_polling().name(),
                "transfer_congestion": cluster::congestion(),
            },
            "results": rows.iter().map(report::row_json).collect::<Vec<_>>(),
            "summary": sum.json,
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

type Phases = (Vec<Row>, Vec<String>, serde_json::Value, serde_json::Value);

fn run_phases(p: &Plan, a: &BenchArgs, logs: &std::path::Path) -> Result<Phases, String> {
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut evictions = serde_json::Value::Null;
    let shape = p.shape(logs.to_path_buf());
    let mut versions = json!({ "memcache": env!("CARGO_PKG_VERSION") });

    // Redis on loopback for the same-host workloads.
    let redis = if p.redis && (p.in_process_cluster() || p.scale) {
        match redis::installed() {
            None => {
                notes.push(
                    "SKIPPED: Redis baseline: redis-server not installed (apt-get install redis-server, or \
                     scripts/bench.sh)"
                        .into(),
                );
                None
            }
            Some(v) => {
                versions["redis"] = json!(v);
                let port = free_port()?;
                let s = redis::Server::start(None, "127.0.0.1", port)?;
                notes.push(format!(
                    "redis: redis-server {} pid {} on {} (--save \"\" --appendonly no), one connection per client \
                     (TCP_NODELAY), a hand-written RESP client writing values with writev from the caller's buffers \
                     and reading them straight into them; SET/GET per key, MSET/MGET/EXISTS per batch",
                    s.version, s.pid, s.addr
                ));
                Some(s)
            }
        }
    } else {
        None
    };

    if p.memcpy && !p.shm {
        rows.extend(workloads::memcpy("memcpy", &p.sizes, p.budget, p.ws));
    }
    if p.in_process_cluster() {
        evictions = in_process(p, redis.as_ref(), &mut rows, &mut notes)?;
    }
    if p.scale {
        rows.extend(suite::scale(
            &shape,
            redis.as_ref().map(|s| s.addr.as_str()),
            &mut notes,
        )?);
    }
    drop(redis);

    // The two namespaces, for the cross-host path and for Mooncake.
    let mc = if p.mooncake_same_host() || p.mooncake_cross() {
        match suite::MooncakeSetup::find(a.mooncake_python.as_deref()) {
            Ok(m) => {
                let v = std::process::Command::new(&m.python)
                    .args([
                        "-c",
                        "import importlib.metadata as m; print(m.version('mooncake-transfer-engine-non-cuda'))",
                    ])
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_default();
                versions["mooncake"] = json!(v);
                Some(m)
            }
            Err(e) => {
                notes.push(format!("SKIPPED: Mooncake baseline: {e}"));
                None
            }
        }
    } else {
        None
    };
    if p.cross || mc.is_some() {
        workloads::progress("creating two network namespaces joined by a veth pair");
        let ns = netns::Pair::create()?;
        if p.cross {
            let with_redis = p.redis && redis::installed().is_some();
            rows.extend(suite::cross(&shape, &ns, with_redis, &mut notes)?);
        }
        if let Some(m) = &mc {
            let r = suite::mooncake(&shape, &ns, m, p.mooncake_same_host(), p.mooncake_cross(), &mut notes);
            optional("Mooncake baseline", r, &mut rows, &mut notes);
        }
        notes.push(format!("namespaces: {} (removed at the end)", ns.describe()));
    }
    Ok((rows, notes, evictions, versions))
}
