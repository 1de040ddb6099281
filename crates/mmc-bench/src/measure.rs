//! Timing, percentiles, page-fault and CPU accounting for `mmc bench`.

use std::time::{Duration, Instant};

/// How long one measurement runs: a wall-clock budget, or a fixed number
/// of operations when `iters` is given.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub seconds: f64,
    pub iters: Option<u64>,
    /// Operations a time budget always makes.
    pub min_ops: u64,
}

/// Operations a timed measurement always makes, for meaningful percentiles.
pub const MIN_OPS: u64 = 20;
/// Operations an untimed warm-up always makes.
pub const WARM_OPS: u64 = 2;

impl Budget {
    /// Whether a measurement that made `ops` operations in `elapsed` goes on.
    pub fn more(&self, ops: u64, elapsed: Duration) -> bool {
        match self.iters {
            Some(n) => ops < n,
            None => ops < self.min_ops || elapsed.as_secs_f64() < self.seconds,
        }
    }

    /// A budget of `seconds` (and at least [`MIN_OPS`] operations).
    pub fn time(seconds: f64) -> Budget {
        Budget {
            seconds,
            iters: None,
            min_ops: MIN_OPS,
        }
    }

    /// A budget of exactly `n` operations.
    pub fn ops(n: u64) -> Budget {
        Budget {
            seconds: 0.0,
            iters: Some(n),
            min_ops: MIN_OPS,
        }
    }

    /// A budget for untimed warm-up: a tenth of the measurement (at most
    /// 0.3 s and at least [`WARM_OPS`] operations), or a tenth of its
    /// operations (at most 50).
    pub fn warmup(&self) -> Budget {
        match self.iters {
            Some(n) => Budget::ops((n / 10).clamp(1, 50)),
            None => Budget {
                seconds: (self.seconds / 10.0).min(0.3),
                iters: None,
                min_ops: WARM_OPS,
            },
        }
    }
}

/// CPU seconds spent, split by who spent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// The benchmark thread (and other unnamed threads of this process).
    pub main: f64,
    /// The client runtimes' worker threads (`mmc-local`).
    pub rt: f64,
    /// The in-process MetaService runtime (`mmc-bench-meta`).
    pub meta: f64,
    /// The memory-provider LocalService child process.
    pub peer: f64,
    /// Context switches (voluntary and not) of all threads of both processes.
    pub csw: f64,
}

impl Cpu {
    fn minus(self, o: Cpu) -> Cpu {
        Cpu {
            main: self.main - o.main,
            rt: self.rt - o.rt,
            meta: self.meta - o.meta,
            peer: self.peer - o.peer,
            csw: self.csw - o.csw,
        }
    }

    /// CPU seconds to percent of one core over `wall` seconds.
    fn percent(self, wall: f64) -> Cpu {
        let k = 100.0 / wall.max(1e-9);
        Cpu {
            main: self.main * k,
            rt: self.rt * k,
            meta: self.meta * k,
            peer: self.peer * k,
            csw: self.csw,
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime, in seconds, from a `/proc/.../stat` line.
fn stat_cpu(path: &str, tck: f64) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command name start at field 3 (state); utime is 14, stime 15.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / tck)
}

/// Context switches of one thread, from its `status` file.
fn ctx_switches(task: &std::path::Path) -> f64 {
    let s = std::fs::read_to_string(task.join("status")).unwrap_or_default();
    s.lines()
        .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum()
}

/// CPU time of this process's threads by group, and of `peer`.
pub fn cpu_snapshot(peer: Option<u32>) -> Cpu {
    let tck = clock_ticks();
    let mut c = Cpu::default();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let p = e.path();
            let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            let Some(t) = stat_cpu(&p.join("stat").to_string_lossy(), tck) else {
                continue;
            };
            c.csw += ctx_switches(&p);
            if comm.starts_with("mmc-local") {
                c.rt += t;
            } else if comm.starts_with("mmc-bench-meta") {
                c.meta += t;
            } else {
                c.main += t;
            }
        }
    }
    if let Some(pid) = peer {
        c.peer = stat_cpu(&format!("/proc/{pid}/stat"), tck).unwrap_or(0.0);
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            c.csw += dir.flatten().map(|e| ctx_switches(&e.path())).sum::<f64>();
        }
    }
    c
}

/// Minor plus major page faults of this process so far.
pub fn page_faults() -> u64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return 0;
        }
        (ru.ru_minflt + ru.ru_majflt) as u64
    }
}

/// Collects per-operation latencies of one measurement.
pub struct Recorder {
    lat_ns: Vec<u64>,
    busy: Duration,
    start: Instant,
    faults0: u64,
    cpu0: Cpu,
    peer: Option<u32>,
    budget: Budget,
}

impl Recorder {
    pub fn start(budget: Budget, peer: Option<u32>) -> Self {
        Recorder {
            lat_ns: Vec::with_capacity(1 << 16),
            busy: Duration::ZERO,
            start: Instant::now(),
            faults0: page_faults(),
            cpu0: cpu_snapshot(peer),
            peer,
            budget,
        }
    }

    /// Whether the budget allows another operation.
    pub fn more(&self) -> bool {
        self.budget.more(self.lat_ns.len() as u64, self.start.elapsed())
    }

    /// Runs and times one operation.
    #[inline]
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        let d = t.elapsed();
        self.lat_ns.push(d.as_nanos() as u64);
        self.busy += d;
        r
    }

    /// Records an operation timed by the caller.
    pub fn record(&mut self, d: Duration) {
        self.lat_ns.push(d.as_nanos() as u64);
        self.busy += d;
    }

    pub fn finish(mut self) -> Measured {
        let wall = self.start.elapsed().as_secs_f64();
        let faults = page_faults().saturating_sub(self.faults0);
        let cpu = cpu_snapshot(self.peer).minus(self.cpu0).percent(wall);
        self.lat_ns.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            let n = self.lat_ns.len();
            if n == 0 {
                return None;
            }
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            Some(self.lat_ns[i] as f64 / 1000.0)
        };
        Measured {
            ops: self.lat_ns.len() as u64,
            busy_s: self.busy.as_secs_f64(),
            wall_s: wall,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            faults,
            cpu_pct: Some(cpu),
        }
    }
}

/// What one measurement observed.
#[derive(Debug, Clone)]
pub struct Measured {
    pub ops: u64,
    /// Sum of the timed operations' durations.
    pub busy_s: f64,
    /// The whole measurement, untimed housekeeping (removals) included.
    pub wall_s: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub faults: u64,
    /// CPU use in percent of one core over `wall_s`, and context switches.
    pub cpu_pct: Option<Cpu>,
}

#[cfg(test)]
impl Measured {
    /// `ops` operations in `busy_s` seconds, nothing else measured.
    pub fn of(ops: u64, busy_s: f64) -> Measured {
        Measured {
            ops,
            busy_s,
            wall_s: busy_s,
            p50_us: None,
            p99_us: None,
            faults: 0,
            cpu_pct: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_iterations_or_time() {
        let b = Budget {
            seconds: 10.0,
            ..Budget::ops(3)
        };
        assert!(b.more(2, Duration::from_secs(100)));
        assert!(!b.more(3, Duration::ZERO));
        let b = Budget::time(0.5);
        assert!(b.more(5, Duration::from_secs(1)), "minimum operation count");
        assert!(b.more(100, Duration::from_millis(100)));
        assert!(!b.more(100, Duration::from_secs(1)));
        let w = b.warmup();
        assert!(w.more(1, Duration::from_secs(1)) && !w.more(2, Duration::from_secs(1)));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut r = Recorder::start(Budget::ops(100), None);
        for i in 1..=100u64 {
            r.record(Duration::from_micros(i));
        }
        let m = r.finish();
        assert_eq!(m.ops, 100);
        assert_eq!(m.p50_us, Some(50.0));
        assert_eq!(m.p99_us, Some(99.0));
        assert!((m.busy_s - 5050e-6).abs() < 1e-9);
    }

    #[test]
    fn own_cpu_is_visible() {
        let c = cpu_snapshot(Some(std::process::id()));
        assert!(c.main + c.rt + c.meta >= 0.0);
        assert!(c.peer >= 0.0);
    }
}
