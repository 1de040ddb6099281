//! `mmc-bench --json` finishes and writes its results for every workload,
//! and bad flags are refused before anything starts.
//!
//! Each workload runs alone, tiny (a few operations per measurement, the
//! smallest sizes), as its own `mmc-bench` process with a deadline: a run
//! that does not exit in time is killed and fails the test (it once spun
//! forever drawing an empty plot when the workload measured no bandwidth).
//! The JSON must parse and hold rows of that workload. Redis and Mooncake
//! are off here (their baselines are the benchmark's, not this test's
//! concern). `cross` needs root and iproute2, as CI has; MMC_SKIP_NETNS=1
//! leaves it out elsewhere.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_mmc-bench");

/// The `mmc` binary the bench's services run from: `$MMC_BIN`, else the one
/// cargo builds beside `mmc-bench` (built here when missing).
fn mmc_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MMC_BIN").filter(|p| !p.is_empty()) {
        return p.into();
    }
    let mmc = PathBuf::from(BENCH).with_file_name("mmc");
    if !mmc.is_file() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "mmc-cli"])
            .status()
            .expect("run cargo build -p mmc-cli");
        assert!(st.success(), "cargo build -p mmc-cli failed");
    }
    mmc
}

fn bench() -> Command {
    let mut c = Command::new(BENCH);
    c.env("MMC_BIN", mmc_bin());
    c
}

const DEADLINE: Duration = Duration::from_secs(240);

fn run_bench(workload: &str, dir: &std::path::Path) -> serde_json::Value {
    let json = dir.join(format!("{workload}.json"));
    let mut child = bench()
        .args(["--workload", workload, "--no-redis", "--no-mooncake"])
        .args(["--iters", "5", "--sizes", "4KB,64KB", "--tcp-size", "64KB"])
        .args(["--batch-keys", "4", "--batch-value", "4KB"])
        .args(["--clients", "1", "--providers", "1", "--scale-size", "64KB"])
        .args(["--cross-sizes", "64KB", "--cross-batch-keys", "2"])
        .args(["--segment-size", "64MB", "--working-set", "16MB"])
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mmc-bench");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mmc-bench --workload {workload} --json did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "mmc-bench --workload {workload}: {status}\n{err}");
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("--workload {workload}: no JSON at {}: {e}", json.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("--workload {workload}: bad JSON: {e}"))
}

#[test]
fn every_workload_writes_its_json() {
    let dir = std::env::temp_dir().join(format!("mmc-bench-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut workloads = vec!["memcpy", "shm", "tcp", "batch", "layers", "scale"];
    if std::env::var_os("MMC_SKIP_NETNS").is_none() {
        workloads.push("cross");
    }
    for w in workloads {
        let doc = run_bench(w, &dir);
        let rows = doc["results"].as_array().expect("results array");
        assert!(
            rows.iter().any(|r| r["section"] == w),
            "--workload {w}: no {w} rows in {rows:?}"
        );
        assert!(doc["command"].as_str().unwrap().contains(w));
        assert!(doc["summary"].is_object(), "--workload {w}: summary {}", doc["summary"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_bench_flags_are_refused_before_anything_starts() {
    for (args, says) in [
        (
            &["--cross-batch-keys", "99999"][..],
            "--cross-batch-keys: must be 0..=16384",
        ),
        (&["--batch-keys", "0"][..], "--batch-keys: must be 1..=16384"),
        (&["--working-set", "900MB"][..], "above 40% of --segment-size"),
        (
            &["--cross-batch-keys", "x"][..],
            "invalid value 'x' for '--cross-batch-keys",
        ),
    ] {
        let out = bench()
            .args(["--workload", "cross", "--no-redis", "--no-mooncake"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn mmc_bench_reaches_the_same_binary() {
    // `mmc bench ARGS` execs the mmc-bench beside it: its flag errors are mmc-bench's.
    let out = Command::new(mmc_bin())
        .args(["bench", "--batch-keys", "0", "--no-redis", "--no-mooncake"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--batch-keys: must be 1..=16384"), "{err}");
}
