//! The JSON-lines protocol between the bench and its client processes:
//! one [`Cmd`] per line in, one [`Res`] per line out, and the timing rules
//! a command carries (its budget, and the Unix time it starts at).

use crate::measure::{Budget, Measured, Recorder};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One command of the client protocol.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Cmd {
    /// put, fill, get, put_batch, get_batch, exist_batch, clear,
    /// stream_send, stream_recv, pingpong, quit.
    pub op: String,
    /// Bytes per key (0 with `layers`).
    #[serde(default)]
    pub size: u64,
    /// Values are layered KV blocks.
    #[serde(default)]
    pub layers: bool,
    #[serde(default)]
    pub batch: usize,
    #[serde(default)]
    pub slots: usize,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub iters: Option<u64>,
    #[serde(default)]
    pub start_at: Option<f64>,
    /// Operations a time budget always makes (default 20).
    #[serde(default)]
    pub min_ops: Option<u64>,
    /// Peer of the raw TCP ops.
    #[serde(default)]
    pub addr: String,
}

/// One result of the client protocol.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Res {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub ops: u64,
    #[serde(default)]
    pub keys_per_op: u64,
    #[serde(default)]
    pub bytes_per_key: u64,
    /// Sum of the timed operations' durations.
    #[serde(default)]
    pub busy_s: f64,
    #[serde(default)]
    pub wall_s: f64,
    /// Unix time of the first timed operation's start and the last one's end.
    #[serde(default)]
    pub t0: f64,
    #[serde(default)]
    pub t1: f64,
    #[serde(default)]
    pub p50_us: Option<f64>,
    #[serde(default)]
    pub p99_us: Option<f64>,
    #[serde(default)]
    pub info: Option<String>,
}

impl Res {
    pub fn measured(&self) -> Measured {
        Measured {
            ops: self.ops,
            busy_s: self.busy_s,
            wall_s: self.wall_s,
            p50_us: self.p50_us,
            p99_us: self.p99_us,
            faults: 0,
            cpu_pct: None,
        }
    }

    pub(super) fn of(m: &Measured, keys: u64, size: u64, t0: f64, t1: f64) -> Res {
        Res {
            ok: true,
            ops: m.ops,
            keys_per_op: keys,
            bytes_per_key: size,
            busy_s: m.busy_s,
            wall_s: m.wall_s,
            t0,
            t1,
            p50_us: m.p50_us,
            p99_us: m.p99_us,
            ..Res::default()
        }
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn sleep_until(t: Option<f64>) {
    if let Some(t) = t {
        let d = t - unix_now();
        if d > 0.0 && d < 30.0 {
            std::thread::sleep(Duration::from_secs_f64(d));
        }
    }
}

fn budget(c: &Cmd) -> Budget {
    Budget {
        seconds: c.seconds,
        iters: c.iters,
        min_ops: c.min_ops.unwrap_or(crate::measure::MIN_OPS),
    }
}

/// A Recorder whose first operation starts at `start_at`, and the Unix
/// times of the measurement's start and end.
pub(super) fn timed<E>(
    c: &Cmd,
    peer: Option<u32>,
    f: impl FnOnce(&mut Recorder) -> Result<(), E>,
) -> Result<(Measured, f64, f64), E> {
    sleep_until(c.start_at);
    let t0 = unix_now();
    let mut rec = Recorder::start(budget(c), peer);
    f(&mut rec)?;
    let m = rec.finish();
    Ok((m, t0, unix_now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_round_trips() {
        let c: Cmd = serde_json::from_str(r#"{"op":"get","size":4096}"#).unwrap();
        assert_eq!((c.op.as_str(), c.size, c.slots), ("get", 4096, 0));
        let r: Res = serde_json::from_str(r#"{"ok":true,"ops":3,"busy_s":0.5}"#).unwrap();
        assert_eq!(r.measured().ops, 3);
    }
}
