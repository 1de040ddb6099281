//! What a bench run will do, from its command line: the flags
//! ([`BenchArgs`], parsed by clap in `main`) and the [`Plan`] checked and
//! derived from them (workloads, budget, sizes, client counts), with the
//! size parsing of the size flags. Every refused value is an error naming
//! its flag.

use crate::measure::{self, Budget};
use crate::report::fmt_size;
use crate::{suite, worker, workloads};
use clap::{Args, ValueEnum};
use mmc_config::parse_size;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    All,
    Memcpy,
    #[value(alias = "sweep")]
    Shm,
    Tcp,
    Batch,
    Layers,
    Scale,
    Cross,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated (shm also runs its memcpy baselines).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub workload: Vec<Workload>,
    /// A short smoke run (about a minute): 0.15 s per measurement (at least 5 operations), the sweep at
    /// 4 KiB, 256 KiB, 4 MiB and 64 MiB, cross-host at 1 MiB and 16 MiB, 1 and 2 clients; explicit flags win.
    #[arg(long)]
    pub quick: bool,
    /// Seconds per measurement (each measurement also makes at least 20 operations) [default: 0.8].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Operations per measurement instead of a time budget.
    #[arg(long)]
    pub iters: Option<u64>,
    /// Segment of each memory-provider LocalService (and Mooncake provider).
    #[arg(long, default_value = "1GB")]
    pub segment_size: String,
    /// Bytes of objects a measurement keeps live and rotates over (at most 40% of the segment; at most 2048
    /// keys).
    #[arg(long, default_value = "256MB")]
    pub working_set: String,
    /// Object sizes of the memcpy and shm (sweep) workloads
    /// [default: 4KB,16KB,64KB,256KB,1MB,4MB,16MB,64MB].
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<String>>,
    /// Object size of the tcp workload.
    #[arg(long, default_value = "1MB")]
    pub tcp_size: String,
    /// Keys per batch of the batch workload.
    #[arg(long, default_value_t = 32)]
    pub batch_keys: usize,
    /// Value sizes of the batch workload.
    #[arg(long, value_delimiter = ',', default_value = "4KB,128KB")]
    pub batch_value: Vec<String>,
    /// Client process counts of the scale and cross workloads [default: 1,2,4].
    #[arg(long, value_delimiter = ',')]
    pub clients: Option<Vec<usize>>,
    /// Memory-provider processes of the scale and cross workloads.
    #[arg(long, default_value_t = 2)]
    pub providers: usize,
    /// Object size of the multi-client measurements.
    #[arg(long, default_value = "1MB")]
    pub scale_size: String,
    /// Object sizes of the cross-host workload [default: 1MB,4MB,16MB,64MB].
    #[arg(long, value_delimiter = ',')]
    pub cross_sizes: Option<Vec<String>>,
    /// Keys per call of the cross-host batch measurements (put / get of that
    /// many objects of each cross size whose batch fits the working set); 0 skips them.
    #[arg(long, default_value_t = 8)]
    pub cross_batch_keys: usize,
    /// meta.spin_wait_us of the MetaServices the bench starts [default: the config default].
    #[arg(long)]
    pub meta_spin_us: Option<u64>,
    /// local.spin_wait_us of the MemCache clients the bench starts [default: the config default].
    #[arg(long)]
    pub local_spin_us: Option<u64>,
    /// meta.tcp_polling of the MetaServices the bench starts: auto, on or off [default: the config default].
    #[arg(long)]
    pub meta_tcp_polling: Option<String>,
    /// local.transfer_congestion of the LocalServices the bench starts, also
    /// used by the raw TCP baselines ("system": the kernel's default) [default: the config default].
    #[arg(long)]
    pub transfer_congestion: Option<String>,
    /// Skip the Redis baseline.
    #[arg(long)]
    pub no_redis: bool,
    /// Skip the Mooncake baseline.
    #[arg(long)]
    pub no_mooncake: bool,
    /// Python with Mooncake installed [default: $MMC_BENCH_PYTHON, else .venv/bin/python].
    #[arg(long)]
    pub mooncake_python: Option<PathBuf>,
    /// Also write the results as JSON to this file (and the plot and child logs beside it).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Bandwidth plot (SVG) [default: bench-bandwidth.svg beside --json].
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// The size `v` given to `--{flag}` (`4KB`, `1.5MB`, `4096`); 0 is refused.
fn size_arg(flag: &str, v: &str) -> Result<u64, String> {
    match parse_size(v) {
        Ok(0) => Err(format!("--{flag}: must not be 0")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("--{flag}: {e}")),
    }
}

/// The sizes given to `--{flag}` ([`size_arg`] each).
fn sizes_arg(flag: &str, v: &[String]) -> Result<Vec<u64>, String> {
    v.iter().map(|s| size_arg(flag, s)).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// What the run does, checked: the workloads and baselines it runs and the
/// sizes, counts and budget it runs them with.
pub struct Plan {
    pub memcpy: bool,
    pub shm: bool,
    pub tcp: bool,
    pub batch: bool,
    pub layers: bool,
    pub scale: bool,
    pub cross: bool,
    pub redis: bool,
    pub mooncake: bool,
    pub budget: Budget,
    pub segment: u64,
    pub ws: u64,
    pub sizes: Vec<u64>,
    pub tcp_size: u64,
    pub batch_keys: usize,
    pub batch_values: Vec<u64>,
    pub clients: Vec<usize>,
    pub providers: usize,
    pub scale_size: u64,
    pub cross_sizes: Vec<u64>,
    pub cross_batch_keys: usize,
}

impl Plan {
    /// The plan of the flags `a` (`--quick` sets defaults; explicit flags
    /// win), or an error naming the flag whose value is refused.
    pub fn new(a: &BenchArgs) -> Result<Plan, String> {
        let has = |w: Workload| a.workload.contains(&Workload::All) || a.workload.contains(&w);
        let seconds = a.seconds.unwrap_or(if a.quick { 0.15 } else { 0.8 });
        if !(seconds > 0.0 && seconds.is_finite()) {
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
        let default_sizes = if a.quick {
            strings(&["4KB", "256KB", "4MB", "64MB"])
        } else {
            strings(&["4KB", "16KB", "64KB", "256KB", "1MB", "4MB", "16MB", "64MB"])
        };
        let sizes = sizes_arg("sizes", a.sizes.as_ref().unwrap_or(&default_sizes))?;
        let cross_default = if a.quick {
            strings(&["1MB", "16MB"])
        } else {
            strings(&["1MB", "4MB", "16MB", "64MB"])
        };
        let cross_sizes = sizes_arg("cross-sizes", a.cross_sizes.as_ref().unwrap_or(&cross_default))?;
        let tcp_size = size_arg("tcp-size", &a.tcp_size)?;
        let scale_size = size_arg("scale-size", &a.scale_size)?;
        let batch_values = sizes_arg("batch-value", &a.batch_value)?;
        for &s in sizes.iter().chain(&cross_sizes).chain([&tcp_size, &scale_size]) {
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
        if a.cross_batch_keys > mmc_wire::MAX_BATCH {
            return Err(format!("--cross-batch-keys: must be 0..={}", mmc_wire::MAX_BATCH));
        }
        for &bv in &batch_values {
            let small_live = workloads::SMALL_KEYS.max(a.batch_keys) as u64 * bv;
            if small_live > ws {
                return Err(format!(
                    "--batch-value: the batch workload keeps {} keys of {} live, more than --working-set {}",
                    workloads::SMALL_KEYS.max(a.batch_keys),
                    fmt_size(bv),
                    fmt_size(ws)
                ));
            }
        }
        if worker::BLOCK_BYTES > ws && has(Workload::Layers) {
            return Err("--working-set is smaller than one layered block".into());
        }
        let clients = a
            .clients
            .clone()
            .unwrap_or(if a.quick { vec![1, 2] } else { vec![1, 2, 4] });
        if clients.is_empty() || clients.iter().any(|&n| n == 0 || n > 64) {
            return Err("--clients: counts must be 1..=64".into());
        }
        if !(1..=8).contains(&a.providers) {
            return Err("--providers: must be 1..=8".into());
        }
        Ok(Plan {
            memcpy: has(Workload::Memcpy) || has(Workload::Shm),
            shm: has(Workload::Shm),
            tcp: has(Workload::Tcp),
            batch: has(Workload::Batch),
            layers: has(Workload::Layers),
            scale: has(Workload::Scale),
            cross: has(Workload::Cross),
            redis: !a.no_redis,
            mooncake: !a.no_mooncake,
            budget: Budget {
                iters: a.iters,
                // A smoke run needs fewer samples of slow large objects.
                min_ops: if a.quick { 5 } else { measure::MIN_OPS },
                ..Budget::time(seconds)
            },
            segment,
            ws,
            sizes,
            tcp_size,
            batch_keys: a.batch_keys,
            batch_values,
            clients,
            providers: a.providers,
            scale_size,
            cross_sizes,
            cross_batch_keys: a.cross_batch_keys,
        })
    }

    pub fn in_process_cluster(&self) -> bool {
        self.shm || self.tcp || self.batch || self.layers
    }

    pub fn mooncake_same_host(&self) -> bool {
        self.mooncake && (self.shm || self.batch || self.layers || self.scale)
    }

    pub fn mooncake_cross(&self) -> bool {
        self.mooncake && self.cross
    }

    /// Progress steps the run will make (an estimate for the bar).
    pub fn steps(&self) -> u64 {
        let s = self.sizes.len() as u64;
        let b = self.batch_values.len() as u64;
        let n = self.clients.len() as u64;
        let n2 = self.clients.iter().filter(|&&c| c > 1).count() as u64;
        let x = self.cross_sizes.len() as u64;
        let xb = suite::cross_batch_sizes(&self.shape(PathBuf::new())).len() as u64;
        let r = self.redis as u64;
        let mut t = 0;
        if self.memcpy && !self.shm {
            t += s;
        }
        if self.in_process_cluster() {
            t += 3;
        }
        if self.shm {
            t += s * (4 + r);
        }
        if self.tcp {
            t += 3;
        }
        if self.batch {
            t += b * (4 + r) + 1;
        }
        if self.layers {
            t += 2 + r;
        }
        if self.scale {
            t += 1 + n * (2 + r);
        }
        if self.cross || self.mooncake {
            t += 1;
        }
        if self.cross {
            t += 2 + 3 * x + xb + n2 + r * (1 + x + xb + n2);
        }
        if self.mooncake_same_host() || self.mooncake_cross() {
            t += 1;
        }
        if self.mooncake_same_host() {
            t += s + b + 1 + n;
        }
        if self.mooncake_cross() {
            t += x + xb + n2;
        }
        t
    }

    pub fn shape(&self, logs: PathBuf) -> suite::Shape {
        suite::Shape {
            budget: self.budget,
            ws: self.ws,
            segment: self.segment,
            sizes: self.sizes.clone(),
            batch_keys: self.batch_keys,
            batch_values: self.batch_values.clone(),
            clients: self.clients.clone(),
            providers: self.providers,
            scale_size: self.scale_size,
            cross_sizes: self.cross_sizes.clone(),
            cross_batch_keys: self.cross_batch_keys,
            logs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const KB: u64 = 1 << 10;
    const MB: u64 = 1 << 20;

    /// The bench's flags `args` as clap parses them from the command line.
    fn args(args: &[&str]) -> Result<BenchArgs, String> {
        let argv = std::iter::once("mmc-bench").chain(args.iter().copied());
        let cli = crate::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        assert!(cli.cmd.is_none(), "a bench run, not a subcommand");
        Ok(*cli.bench)
    }

    fn plan(a: &[&str]) -> Result<Plan, String> {
        Plan::new(&args(a)?)
    }

    /// The error of a refused command line, which must name `flag`.
    fn refused(a: &[&str], flag: &str) -> String {
        let e = match plan(a) {
            Ok(_) => panic!("{a:?} was accepted"),
            Err(e) => e,
        };
        assert!(e.contains(flag), "{a:?}: the error {e:?} does not name {flag}");
        e
    }

    #[test]
    fn defaults() {
        let p = plan(&[]).unwrap();
        let all = [p.memcpy, p.shm, p.tcp, p.batch, p.layers, p.scale, p.cross];
        assert!(all.iter().all(|&w| w), "every workload runs by default");
        assert!(p.redis && p.mooncake);
        assert_eq!(p.budget.seconds, 0.8);
        assert_eq!(p.budget.iters, None);
        assert_eq!(p.budget.min_ops, measure::MIN_OPS);
        assert_eq!(p.segment, 1 << 30);
        assert_eq!(p.ws, 256 * MB);
        assert_eq!(
            p.sizes,
            [4 * KB, 16 * KB, 64 * KB, 256 * KB, MB, 4 * MB, 16 * MB, 64 * MB]
        );
        assert_eq!(p.tcp_size, MB);
        assert_eq!(p.batch_keys, 32);
        assert_eq!(p.batch_values, [4 * KB, 128 * KB]);
        assert_eq!(p.clients, [1, 2, 4]);
        assert_eq!(p.providers, 2);
        assert_eq!(p.scale_size, MB);
        assert_eq!(p.cross_sizes, [MB, 4 * MB, 16 * MB, 64 * MB]);
        assert_eq!(p.cross_batch_keys, 8);
    }

    #[test]
    fn quick_defaults() {
        let p = plan(&["--quick"]).unwrap();
        assert_eq!(p.budget.seconds, 0.15);
        assert_eq!(p.budget.iters, None);
        assert_eq!(p.budget.min_ops, 5);
        assert_eq!(p.sizes, [4 * KB, 256 * KB, 4 * MB, 64 * MB]);
        assert_eq!(p.cross_sizes, [MB, 16 * MB]);
        assert_eq!(p.clients, [1, 2]);
        // What --quick does not touch keeps its default.
        assert_eq!((p.segment, p.ws, p.batch_keys), (1 << 30, 256 * MB, 32));
        assert_eq!(p.batch_values, [4 * KB, 128 * KB]);
    }

    #[test]
    fn explicit_flags_win_over_quick() {
        let p = plan(&[
            "--quick",
            "--seconds",
            "2.5",
            "--iters",
            "7",
            "--sizes",
            "8KB,1.5MB",
            "--cross-sizes",
            "4MB",
            "--clients",
            "3,1",
        ])
        .unwrap();
        assert_eq!(p.budget.seconds, 2.5);
        assert_eq!(p.budget.iters, Some(7));
        assert_eq!(p.budget.min_ops, 5, "--quick still lowers the minimum of operations");
        assert_eq!(p.sizes, [8 * KB, 3 * MB / 2]);
        assert_eq!(p.cross_sizes, [4 * MB]);
        assert_eq!(p.clients, [3, 1]);
    }

    #[test]
    fn other_flags_are_taken_as_given() {
        let p = plan(&[
            "--segment-size",
            "2GB",
            "--working-set",
            "512MB",
            "--tcp-size",
            "4MB",
            "--batch-keys",
            "64",
            "--batch-value",
            "16KB",
            "--providers",
            "3",
            "--scale-size",
            "2MB",
            "--cross-batch-keys",
            "0",
            "--no-redis",
            "--no-mooncake",
        ])
        .unwrap();
        assert_eq!(
            (p.segment, p.ws, p.tcp_size, p.scale_size),
            (2 << 30, 512 * MB, 4 * MB, 2 * MB)
        );
        assert_eq!((p.batch_keys, p.providers, p.cross_batch_keys), (64, 3, 0));
        assert_eq!(p.batch_values, [16 * KB]);
        assert!(!p.redis && !p.mooncake);
        assert!(!p.mooncake_same_host() && !p.mooncake_cross());
    }

    #[test]
    fn workloads_select_phases() {
        let p = plan(&["--workload", "sweep,batch"]).unwrap();
        assert!(p.shm && p.memcpy, "sweep is shm, which runs its memcpy baselines");
        assert!(p.batch && p.in_process_cluster());
        assert!(!p.tcp && !p.layers && !p.scale && !p.cross);
        let p = plan(&["--workload", "cross"]).unwrap();
        assert!(p.cross && p.mooncake_cross() && !p.mooncake_same_host());
        assert!(!p.in_process_cluster() && !p.memcpy);
        assert!(args(&["--workload", "nosuch"]).unwrap_err().contains("--workload"));
    }

    #[test]
    fn bad_budgets_are_refused() {
        refused(&["--seconds", "0"], "--seconds");
        refused(&["--seconds", "nan"], "--seconds");
        refused(&["--seconds", "inf"], "--seconds");
        refused(&["--quick", "--seconds", "0"], "--seconds");
        refused(&["--iters", "0"], "--iters");
        // Not a number at all: clap refuses it, naming the flag.
        assert!(args(&["--seconds", "soon"]).unwrap_err().contains("--seconds"));
    }

    #[test]
    fn bad_segment_and_working_set_are_refused() {
        refused(&["--segment-size", "0"], "--segment-size");
        refused(&["--segment-size", "1XB"], "--segment-size");
        refused(&["--working-set", "0"], "--working-set");
        let e = refused(&["--working-set", "512MB"], "--working-set");
        assert!(e.contains("above 40% of --segment-size 1 GiB"), "{e}");
        // 40% of the segment exactly is allowed.
        plan(&["--segment-size", "1000MB", "--working-set", "400MB"]).unwrap();
    }

    #[test]
    fn objects_larger_than_the_working_set_are_refused() {
        let small = [
            "--working-set",
            "16MB",
            "--sizes",
            "4KB",
            "--cross-sizes",
            "1MB",
            "--batch-value",
            "4KB",
        ];
        plan(&small).unwrap();
        for (flag, size) in [
            ("--sizes", "32MB"),
            ("--cross-sizes", "32MB"),
            ("--tcp-size", "32MB"),
            ("--scale-size", "32MB"),
        ] {
            let mut a = small.to_vec();
            a.extend([flag, size]);
            let e = refused(&a, "--working-set 16 MiB");
            assert!(e.contains("object size 32 MiB is larger"), "{e}");
        }
        let e = refused(&["--batch-value", "256KB"], "--batch-value");
        assert!(e.contains("2048 keys of 256 KiB"), "{e}");
        let tiny = [
            "--working-set",
            "4MB",
            "--sizes",
            "4KB",
            "--cross-sizes",
            "1MB",
            "--batch-value",
            "1KB",
        ];
        refused(&tiny, "--working-set");
        let mut no_layers = tiny.to_vec();
        no_layers.extend(["--workload", "shm,batch"]);
        plan(&no_layers).unwrap();
    }

    #[test]
    fn bad_counts_are_refused() {
        let max = mmc_wire::MAX_BATCH.to_string();
        let over = (mmc_wire::MAX_BATCH + 1).to_string();
        refused(&["--batch-keys", "0"], "--batch-keys");
        refused(&["--batch-keys", &over], "--batch-keys");
        // As many 4 KiB keys fit the default working set (64 MiB).
        let p = plan(&["--batch-keys", &max, "--batch-value", "4KB"]).unwrap();
        assert_eq!(p.batch_keys, mmc_wire::MAX_BATCH);
        refused(&["--cross-batch-keys", &over], "--cross-batch-keys");
        assert_eq!(
            plan(&["--cross-batch-keys", &max]).unwrap().cross_batch_keys,
            mmc_wire::MAX_BATCH
        );
        refused(&["--clients", "0"], "--clients");
        refused(&["--clients", "1,0"], "--clients");
        refused(&["--clients", "65"], "--clients");
        assert_eq!(plan(&["--clients", "64"]).unwrap().clients, [64]);
        refused(&["--providers", "0"], "--providers");
        refused(&["--providers", "9"], "--providers");
    }

    #[test]
    fn bad_sizes_are_refused() {
        let e = refused(&["--sizes", "4XB"], "--sizes");
        assert!(e.contains("`4XB` is not a size"), "{e}");
        refused(&["--sizes", "4KB,0"], "--sizes: must not be 0");
        refused(&["--cross-sizes", "1MB,x"], "--cross-sizes");
        refused(&["--tcp-size", "MB"], "--tcp-size");
        refused(&["--scale-size", "0"], "--scale-size");
        refused(&["--batch-value", "4KB,"], "--batch-value");
    }

    #[test]
    fn size_arg_parses_sizes_and_names_its_flag() {
        assert_eq!(size_arg("sizes", "4KB"), Ok(4 * KB));
        assert_eq!(size_arg("sizes", "4096"), Ok(4 * KB));
        assert_eq!(size_arg("sizes", "1.5MB"), Ok(3 * MB / 2));
        assert_eq!(size_arg("sizes", "2GiB"), Ok(2 << 30));
        assert_eq!(size_arg("tcp-size", "0"), Err("--tcp-size: must not be 0".into()));
        let e = size_arg("tcp-size", "4XB").unwrap_err();
        assert!(e.starts_with("--tcp-size: `4XB` is not a size"), "{e}");
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(sizes_arg("sizes", &v(&["4KB", "1MB"])), Ok(vec![4 * KB, MB]));
        assert_eq!(sizes_arg("sizes", &[]), Ok(vec![]));
        let e = sizes_arg("cross-sizes", &v(&["1MB", "big"])).unwrap_err();
        assert!(e.starts_with("--cross-sizes: `big`"), "{e}");
    }
}
