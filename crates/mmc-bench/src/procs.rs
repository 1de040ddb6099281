//! Client processes of the bench (the hidden `mmc bench-client`, or the
//! Python Mooncake client), driven over the JSON-lines protocol of
//! [`super::worker`], and the aggregation of their results.

use super::measure::{Budget, Measured};
use super::worker::{unix_now, Cmd, Res};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a command may run beyond its time budget.
const SLACK: Duration = Duration::from_secs(120);

pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<String>,
    pub pid: u32,
    pub label: String,
    /// The `info` of the ready line (e.g. the listen address of a server).
    pub info: String,
}

impl Proc {
    /// Starts `cmd` (stdin/stdout piped, stderr to `log`) and waits up to
    /// `ready_s` for its ready line.
    pub fn spawn(mut cmd: Command, label: &str, log: Option<&std::path::Path>, ready_s: u64) -> Result<Proc, String> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        match log.and_then(|p| std::fs::File::create(p).ok()) {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::null()),
        };
        super::cluster::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {label}: {e}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("bench-proc-out".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // Only protocol lines: libraries may print to stdout too.
                    if line.starts_with('{') && tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let mut p = Proc {
            child,
            stdin,
            rx,
            pid,
            label: label.to_owned(),
            info: String::new(),
        };
        let r = p.recv(Duration::from_secs(ready_s)).map_err(|e| {
            let tail = log
                .and_then(|l| std::fs::read_to_string(l).ok())
                .map(|t| {
                    let lines: Vec<&str> = t.lines().collect();
                    lines[lines.len().saturating_sub(5)..].join(" | ")
                })
                .unwrap_or_default();
            format!("{e}; its log ends: {tail}")
        })?;
        p.info = r.info.unwrap_or_default();
        Ok(p)
    }

    pub fn send(&mut self, c: &Cmd) -> Result<(), String> {
        let line = serde_json::to_string(c).map_err(|e| e.to_string())?;
        let w = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(w, "{line}")
            .and_then(|_| w.flush())
            .map_err(|e| format!("{} (pid {}): {e}", self.label, self.pid))
    }

    pub fn recv(&mut self, timeout: Duration) -> Result<Res, String> {
        let line = match self.rx.recv_timeout(timeout) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("{} (pid {}): no answer in {timeout:?}", self.label, self.pid))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50));
                let st = self.child.try_wait().ok().flatten();
                return Err(format!(
                    "{} (pid {}) exited{}",
                    self.label,
                    self.pid,
                    st.map(|s| format!(": {s}")).unwrap_or_default()
                ));
            }
        };
        let r: Res = serde_json::from_str(&line).map_err(|e| format!("{}: bad answer {line:?}: {e}", self.label))?;
        if !r.ok {
            return Err(format!(
                "{} (pid {}): {}",
                self.label,
                self.pid,
                r.error.unwrap_or_else(|| "failed".into())
            ));
        }
        Ok(r)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing stdin ends the command loop; then the PID is killed.
        if let Some(mut w) = self.stdin.take() {
            let _ = writeln!(w, r#"{{"op":"quit"}}"#);
        }
        for _ in 0..40 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `cmd` (with a per-process prefix) to every process at once and
/// collects the answers; with `sync`, all start at the same Unix time.
pub fn run_all(procs: &mut [Proc], cmd: &Cmd, sync: bool) -> Result<Vec<Res>, String> {
    let start_at = sync.then(|| unix_now() + 0.05 + 0.01 * procs.len() as f64);
    for (i, p) in procs.iter_mut().enumerate() {
        let mut c = cmd.clone();
        c.prefix = format!("p{i}-{}", cmd.prefix);
        c.start_at = start_at;
        p.send(&c)?;
    }
    let timeout = Duration::from_secs_f64(cmd.seconds.max(0.0)) + SLACK;
    procs.iter_mut().map(|p| p.recv(timeout)).collect()
}

/// An untimed warm-up (a tenth of the budget) followed by the measurement.
pub fn measure_all(procs: &mut [Proc], cmd: &Cmd, budget: Budget) -> Result<Vec<Res>, String> {
    let w = budget.warmup();
    let warm = Cmd {
        seconds: w.seconds,
        iters: w.iters,
        min_ops: Some(w.min_ops),
        prefix: format!("{}-warm", cmd.prefix),
        ..cmd.clone()
    };
    run_all(procs, &warm, true)?;
    let c = Cmd {
        seconds: budget.seconds,
        iters: budget.iters,
        min_ops: Some(budget.min_ops),
        ..cmd.clone()
    };
    run_all(procs, &c, true)
}

/// The aggregate of several processes' results, which ran over the same
/// wall-clock interval (same start time and budget): the sum of their
/// rates, each its operations over its timed seconds (so untimed removals
/// between rounds count for none of them, as in a single-process
/// measurement). Latency percentiles are the worst process's.
pub fn aggregate(rs: &[Res]) -> Measured {
    let ops: u64 = rs.iter().map(|r| r.ops).sum();
    let rate: f64 = rs.iter().map(|r| r.ops as f64 / r.busy_s.max(1e-12)).sum();
    let worst = |f: fn(&Res) -> Option<f64>| {
        rs.iter()
            .filter_map(f)
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    };
    Measured {
        ops,
        busy_s: ops as f64 / rate.max(1e-12),
        wall_s: rs.iter().map(|r| r.wall_s).fold(0.0, f64::max),
        p50_us: worst(|r| r.p50_us),
        p99_us: worst(|r| r.p99_us),
        faults: 0,
        cpu_pct: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_sums_rates() {
        let r = |t0: f64, t1: f64, ops: u64, p: f64| Res {
            ok: true,
            ops,
            t0,
            t1,
            busy_s: t1 - t0,
            p50_us: Some(p),
            ..Res::default()
        };
        // 100 ops/s + 50 ops/s
        let m = aggregate(&[r(10.0, 11.0, 100, 5.0), r(10.0, 11.0, 50, 9.0)]);
        assert_eq!(m.ops, 150);
        assert!((m.ops as f64 / m.busy_s - 150.0).abs() < 1e-6);
        assert_eq!(m.p50_us, Some(9.0));
    }
}
