//! `mmc-bench small-ops` runs end to end: the in-process baseline and the
//! client processes of every language it finds (Rust always, C when `cc`
//! and the repository's C client are there, Python when `.venv` has
//! memcache_rs), each against a MetaService process and a memory-provider
//! process, and writes figures for each. Tiny rounds: this checks that the
//! shapes run and report, not how fast they are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BENCH: &str = env!("CARGO_BIN_EXE_mmc-bench");

/// Builds `-p` beside mmc-bench when `file` is missing there.
fn built(file: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(BENCH).with_file_name(file);
    let st = Command::new(env!("CARGO"))
        .args(["build", "-p", package])
        .status()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(st.success(), "cargo build -p {package} failed");
    assert!(path.is_file(), "{} missing after the build", path.display());
    path
}

fn repo_python() -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import memcache_rs"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

#[test]
fn small_ops_measures_every_client_shape() {
    let mmc = built("mmc", "mmc-cli");
    built("libmemcache.so", "mmc-capi");
    let json = std::env::temp_dir().join(format!("mmc-small-ops-{}.json", std::process::id()));
    let python = repo_python();
    let mut cmd = Command::new(BENCH);
    cmd.env("MMC_BIN", &mmc)
        .args([
            "small-ops",
            "--round-s",
            "0.02",
            "--rounds",
            "1",
            "--segment-size",
            "64MB",
        ])
        .arg("--python")
        .arg(python.clone().unwrap_or_default())
        .arg("--json")
        .arg(&json);
    let out = cmd.output().expect("run mmc-bench small-ops");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "small-ops failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("| exist, 1 key |"), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let mut measured = vec!["in_process_rust", "process_rust", "process_c"];
    if python.is_some() {
        measured.push("process_python");
    }
    for shape in measured {
        for op in ["exist1_us", "get1_us", "exist32_us", "get32_us"] {
            let v = doc[shape][op].as_f64();
            assert!(
                v.is_some_and(|us| us > 0.0 && us < 1e6),
                "{shape}.{op} = {:?} in {doc}",
                doc[shape][op]
            );
        }
    }
    if python.is_none() {
        assert!(doc["process_python"]["skipped"].is_string(), "{doc}");
    }
}

#[test]
fn bad_small_ops_flags_name_the_flag() {
    for (args, says) in [
        (&["--round-s", "0"][..], "--round-s"),
        (&["--rounds", "0"][..], "--rounds"),
        (&["--segment-size", "lots"][..], "--segment-size"),
    ] {
        let out = Command::new(BENCH).arg("small-ops").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
