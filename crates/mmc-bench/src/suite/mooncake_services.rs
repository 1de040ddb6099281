//! Mooncake Store as the bench runs it: where its pieces are, its master
//! and memory-provider processes, and the Python client processes that
//! speak the `mmc bench-client` protocol.

use super::services::{wait_port, Killed};
use super::Shape;
use crate::netns::Pair;
use crate::procs::Proc;
use crate::report::fmt_size;
use crate::workloads::progress;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where the Mooncake baseline's pieces are.
#[derive(Clone, Debug)]
pub struct MooncakeSetup {
    pub python: PathBuf,
    pub script: PathBuf,
    pub master: PathBuf,
}

impl MooncakeSetup {
    /// The venv's python (`--mooncake-python`, else `$MMC_BENCH_PYTHON`, else
    /// `.venv/bin/python` of the repository), the bench script and
    /// `mooncake_master` beside that python; an error says what is missing.
    pub fn find(python: Option<&Path>) -> Result<MooncakeSetup, String> {
        let roots: Vec<PathBuf> = {
            let mut v = vec![std::env::current_dir().unwrap_or_default()];
            if let Ok(exe) = std::env::current_exe() {
                // target/release/mmc-bench -> the repository
                if let Some(r) = exe.ancestors().nth(3) {
                    v.push(r.to_path_buf());
                }
            }
            v
        };
        let script = roots
            .iter()
            .map(|r| r.join("crates/mmc-python/bench/bench_vs_mooncake.py"))
            .find(|p| p.exists())
            .ok_or("crates/mmc-python/bench/bench_vs_mooncake.py not found (run from the repository)")?;
        let python = match python {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("MMC_BENCH_PYTHON") {
                Some(p) => PathBuf::from(p),
                None => roots
                    .iter()
                    .map(|r| r.join(".venv/bin/python"))
                    .find(|p| p.exists())
                    .ok_or("no .venv/bin/python (scripts/bench.sh creates it with Mooncake installed)")?,
            },
        };
        let master = python.with_file_name("mooncake_master");
        if !master.exists() {
            return Err(format!(
                "{} not found: install mooncake-transfer-engine-non-cuda into that venv (scripts/bench.sh does)",
                master.display()
            ));
        }
        let ok = Command::new(&python)
            .args(["-c", "import mooncake.store, numpy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("{} cannot import mooncake.store and numpy", python.display()));
        }
        Ok(MooncakeSetup { python, script, master })
    }
}

/// The Mooncake cluster the clients join.
pub(super) struct McCluster<'a> {
    setup: &'a MooncakeSetup,
    master: String,
    metadata: String,
}

/// `n` Python client processes in network namespace `netns` whose address is `host`.
pub(super) fn py_clients(
    shape: &Shape,
    mc: &McCluster<'_>,
    n: usize,
    (netns, host): (&str, &str),
    what: &str,
) -> Result<Vec<Proc>, String> {
    let (master, metadata) = (&mc.master, &mc.metadata);
    (0..n)
        .map(|i| {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns])
                .arg(&mc.setup.python)
                .arg(&mc.setup.script)
                .args(["--serve", "--host", host, "--mooncake-master", master])
                .args(["--mooncake-metadata", metadata]);
            Proc::spawn(
                c,
                &format!("{what} {i}"),
                Some(&shape.log(&format!("{what}-{i}.log"))),
                60,
            )
        })
        .collect()
}

/// The Mooncake master and providers, stopped when dropped (the providers
/// first).
pub(super) struct McServices {
    provs: Vec<Proc>,
    _master: Killed,
}

impl McServices {
    /// Starts mooncake_master (with its HTTP metadata server) and
    /// `shape.providers` provider processes in namespace A.
    pub(super) fn start<'a>(
        shape: &Shape,
        ns: &Pair,
        mc: &'a MooncakeSetup,
    ) -> Result<(McServices, McCluster<'a>), String> {
        let master = format!("{}:50051", ns.ip_a);
        let metadata = format!("http://{}:8080/metadata", ns.ip_a);
        progress(&format!(
            "mooncake: mooncake_master and {} providers in {}",
            shape.providers, ns.a
        ));
        let mut m = Command::new("ip");
        m.args(["netns", "exec", &ns.a])
            .arg(&mc.master)
            .args(["--rpc_port=50051", "--enable_http_metadata_server=true"])
            .arg(format!("--http_metadata_server_host={}", ns.ip_a))
            .args(["--http_metadata_server_port=8080", "--metrics_port=9003"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(shape.log("mooncake-master.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        crate::cluster::die_with_parent(&mut m);
        let _master = Killed(m.spawn().map_err(|e| format!("cannot start mooncake_master: {e}"))?);
        wait_port(&ns.a, &master, Duration::from_secs(20))?;
        wait_port(&ns.a, &format!("{}:8080", ns.ip_a), Duration::from_secs(20))?;
        let provs = (0..shape.providers)
            .map(|i| {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.a])
                    .arg(&mc.python)
                    .arg(&mc.script)
                    .args(["--mooncake-provider", "--host", &ns.ip_a, "--mooncake-master", &master])
                    .args([
                        "--mooncake-metadata",
                        &metadata,
                        "--segment",
                        &shape.segment.to_string(),
                    ]);
                Proc::spawn(
                    c,
                    &format!("mooncake provider {i}"),
                    Some(&shape.log(&format!("mooncake-provider-{i}.log"))),
                    60,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cl = McCluster {
            setup: mc,
            master: master.clone(),
            metadata: metadata.clone(),
        };
        Ok((McServices { provs, _master }, cl))
    }

    /// The report's note on the Mooncake services.
    pub(super) fn note(&self, shape: &Shape, ns: &Pair, cl: &McCluster<'_>) -> String {
        let (provs, mc, master, metadata) = (&self.provs, cl.setup, &cl.master, &cl.metadata);
        let pids: Vec<String> = provs.iter().map(|p| p.pid.to_string()).collect();
        format!(
            "mooncake: mooncake_master ({master}, HTTP metadata {metadata}) and {} provider processes (pids {}, {} segments) \
             in {}, TCP transport; clients are `{} {} --serve` processes ({} for same-host figures, {} for cross-host \
             ones) running the same loops as `mmc bench-client` through the Python client (put_from / get_into / \
             batch_put_from / batch_get_into / batch_is_exist / batch_*_multi_buffers on registered numpy buffers)",
            shape.providers,
            pids.join(", "),
            fmt_size(shape.segment),
            ns.a,
            mc.python.display(),
            mc.script.display(),
            ns.a,
            ns.b
        )
    }
}
