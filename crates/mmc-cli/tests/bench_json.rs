//! `mmc bench --json` finishes and writes its results for every workload.
//!
//! Each workload runs alone, tiny (a few operations per measurement, the
//! smallest sizes), as its own `mmc bench` process with a deadline: a run
//! that does not exit in time is killed and fails the test (it once spun
//! forever drawing an empty plot when the workload measured no bandwidth).
//! The JSON must parse and hold rows of that workload. Redis and Mooncake
//! are off here (their baselines are the benchmark's, not this test's
//! concern). `cross` needs root and iproute2, as CI has; MMC_SKIP_NETNS=1
//! leaves it out elsewhere.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(240);

fn run_bench(workload: &str, dir: &std::path::Path) -> serde_json::Value {
    let json = dir.join(format!("{workload}.json"));
    let mut child = Command::new(common::MMC)
        .args(["bench", "--workload", workload, "--no-redis", "--no-mooncake"])
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
        .expect("start mmc bench");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mmc bench --workload {workload} --json did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "mmc bench --workload {workload}: {status}\n{err}");
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
