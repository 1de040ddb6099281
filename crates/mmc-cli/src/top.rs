//! `mmc top`: the cluster state redrawn in the terminal every interval
//! (members, capacity and usage per segment, keys, leases, evictions), with
//! rates computed from successive `Stat` snapshots, until `q` or Ctrl-C.
//! Plain ANSI escapes; the terminal is put back as it was on every exit.

use crate::client::{fetch_stat, meta_client, to_stdout, Conn};
use clap::Args;
use mmc_wire::message::ClusterStat;
use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct TopArgs {
    #[command(flatten)]
    conn: Conn,
    /// Milliseconds between refreshes.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Stop after this many refreshes (0: until q or Ctrl-C).
    #[arg(long, default_value_t = 0)]
    iterations: u64,
}

/// Restores the terminal's input mode and screen when dropped.
struct Terminal {
    saved: Option<libc::termios>,
    screen: bool,
}

impl Terminal {
    /// Non-canonical, no-echo input on a terminal stdin (keys arrive one by
    /// one; Ctrl-C still raises SIGINT) and the alternate screen on a
    /// terminal stdout. Anything that is not a terminal is left alone.
    fn enter() -> Terminal {
        let mut saved = None;
        if std::io::stdin().is_terminal() {
            // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed, then filled
            // termios owned by this frame.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) == 0 {
                    let orig = t;
                    t.c_lflag &= !(libc::ICANON | libc::ECHO);
                    t.c_cc[libc::VMIN] = 1;
                    t.c_cc[libc::VTIME] = 0;
                    if libc::tcsetattr(0, libc::TCSANOW, &t) == 0 {
                        saved = Some(orig);
                    }
                }
            }
        }
        let screen = std::io::stdout().is_terminal();
        if screen {
            let _ = to_stdout(b"\x1b[?1049h\x1b[?25l");
        }
        Terminal { saved, screen }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the termios read from fd 0 in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
        if self.screen {
            let _ = to_stdout(b"\x1b[?25h\x1b[?1049l");
        }
    }
}

fn bytes(n: u64) -> String {
    mmc_config::format_size(n)
}

fn bar(used: u64, capacity: u64, width: usize) -> String {
    let filled = if capacity == 0 {
        0
    } else {
        ((used as f64 / capacity as f64) * width as f64)
            .round()
            .min(width as f64) as usize
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

fn per_sec(now: u64, before: u64, dt: f64) -> f64 {
    if dt <= 0.0 {
        0.0
    } else {
        now.saturating_sub(before) as f64 / dt
    }
}

/// One frame of the view, as text lines.
fn frame(meta: &str, st: &ClusterStat, prev: Option<(&ClusterStat, Duration)>) -> String {
    let mut out = String::new();
    out += &format!("mmc top - {meta}    (q or Ctrl-C quits)\n\n");
    out += &format!(
        "members {}   keys {}   active leases {}   evictions {}\n",
        st.members, st.keys, st.leases_active, st.evictions
    );
    let used: u64 = st.segments.iter().map(|s| s.used).sum();
    match prev {
        Some((p, dt)) => {
            let dt = dt.as_secs_f64();
            let key_rate = (st.keys as f64 - p.keys as f64) / dt.max(f64::EPSILON);
            let used_before: u64 = p.segments.iter().map(|s| s.used).sum();
            let used_rate = (used as f64 - used_before as f64) / dt.max(f64::EPSILON);
            out += &format!(
                "rates: keys {key_rate:+.1}/s   evictions {:.1}/s   used bytes {used_rate:+.0}/s\n",
                per_sec(st.evictions, p.evictions, dt)
            );
        }
        None => out += "rates: (after the next refresh)\n",
    }
    out += "\n";
    out += &format!(
        "{:>8} {:>22} {:>6} {:>10} {:>10} {:>6} {:>9}  usage\n",
        "service", "transfer", "medium", "capacity", "used", "used%", "objects"
    );
    let mut cap = 0;
    for s in &st.segments {
        cap += s.capacity;
        let pct = if s.capacity > 0 {
            s.used as f64 * 100.0 / s.capacity as f64
        } else {
            0.0
        };
        out += &format!(
            "{:>8} {:>22} {:>6} {:>10} {:>10} {:>5.1}% {:>9}  {}\n",
            s.service_id,
            s.transfer_addr,
            s.medium.name(),
            bytes(s.capacity),
            bytes(s.used),
            pct,
            s.objects,
            bar(s.used, s.capacity, 20)
        );
    }
    if st.segments.is_empty() {
        out += "(no segments registered)\n";
    }
    out += &format!(
        "\ntotal {} of {} used {}\n",
        bytes(used),
        bytes(cap),
        bar(used, cap, 30)
    );
    out
}

pub fn run(a: TopArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    crate::init_logging("error");
    let interval = Duration::from_millis(a.interval_ms.max(50));
    let (tx, mut keys) = tokio::sync::mpsc::unbounded_channel::<u8>();
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        // Blocking reads of stdin, key by key; ends with the process.
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            while let Ok(1) = std::io::stdin().read(&mut b) {
                if tx.send(b[0]).is_err() {
                    return;
                }
            }
        });
    }
    let _term = Terminal::enter();
    let clear = if std::io::stdout().is_terminal() {
        "\x1b[H\x1b[2J"
    } else {
        ""
    };
    rt.block_on(async {
        let mc = meta_client(&a.conn)?;
        let mut prev: Option<(ClusterStat, Instant)> = None;
        let mut n = 0u64;
        loop {
            let now = Instant::now();
            let text = match fetch_stat(&mc, &a.conn.meta).await {
                Ok(st) => {
                    let text = frame(&a.conn.meta, &st, prev.as_ref().map(|(p, t)| (p, now - *t)));
                    prev = Some((st, now));
                    text
                }
                Err(e) => format!("mmc top - {}\n\n{e}\n(retrying)\n", a.conn.meta),
            };
            to_stdout(format!("{clear}{text}").as_bytes())?;
            n += 1;
            if a.iterations > 0 && n >= a.iterations {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
                k = keys.recv(), if interactive => match k {
                    Some(b'q' | b'Q') | None => return Ok(()),
                    Some(_) => {} // any other key refreshes now
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmc_wire::message::SegmentStat;
    use mmc_wire::Medium;

    fn stat(keys: u64, used: u64) -> ClusterStat {
        ClusterStat {
            members: 1,
            keys,
            segments: vec![SegmentStat {
                service_id: 3,
                host_id: 1,
                transfer_addr: "127.0.0.1:9".into(),
                medium: Medium::Dram,
                capacity: 1000,
                used,
                objects: keys,
            }],
            evictions: 0,
            leases_active: 0,
        }
    }

    #[test]
    fn frames_show_segments_bars_and_rates() {
        let a = stat(10, 250);
        let f = frame("m:1", &a, None);
        assert!(f.contains("keys 10") && f.contains("(after the next refresh)"), "{f}");
        assert!(f.contains("25.0%") && f.contains(&format!("[{}{}]", "#".repeat(5), ".".repeat(15))));
        let b = stat(30, 500);
        let f = frame("m:1", &b, Some((&a, Duration::from_secs(2))));
        assert!(f.contains("keys +10.0/s") && f.contains("used bytes +125/s"), "{f}");
    }
}
