//! Result rows, the printed table and the JSON file of `mmc bench`.

use super::measure::Measured;
use super::rows::RowId;
use serde_json::{json, Value};

/// One measured line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// Stable identifier, printed e.g. `shm.put.1MiB`; baselines refer to it.
    pub id: RowId,
    pub section: &'static str,
    pub op: String,
    /// Bytes per key.
    pub size: u64,
    /// Keys per operation (batch size).
    pub keys: u64,
    pub m: Measured,
    /// (label, row id) of the baselines this row is compared with.
    pub baselines: Vec<(String, RowId)>,
    /// (label, throughput ratio) filled by [`resolve_ratios`].
    pub ratios: Vec<(String, f64)>,
    /// Rows of a section are listed by group (object size, client count).
    pub group: u64,
}

impl Row {
    pub fn new(id: RowId, section: &'static str, op: impl Into<String>, size: u64, keys: u64, m: Measured) -> Row {
        Row {
            id,
            section,
            op: op.into(),
            size,
            keys,
            m,
            baselines: Vec::new(),
            ratios: Vec::new(),
            group: 0,
        }
    }

    pub fn group(mut self, g: u64) -> Row {
        self.group = g;
        self
    }

    pub fn vs(mut self, label: impl Into<String>, id: RowId) -> Row {
        self.baselines.push((label.into(), id));
        self
    }

    pub fn bytes(&self) -> f64 {
        self.size as f64 * self.keys as f64 * self.m.ops as f64
    }

    /// Decimal GB per second of timed operation.
    pub fn gbps(&self) -> f64 {
        self.bytes() / self.m.busy_s.max(1e-12) / 1e9
    }

    pub fn keys_per_s(&self) -> f64 {
        (self.keys * self.m.ops) as f64 / self.m.busy_s.max(1e-12)
    }
}

/// Fills every row's ratios to its baselines (throughput over throughput).
pub fn resolve_ratios(rows: &mut [Row]) {
    let tput: Vec<(RowId, u64, f64, f64)> = rows.iter().map(|r| (r.id, r.size, r.gbps(), r.keys_per_s())).collect();
    for r in rows.iter_mut() {
        let (size, gbps, kps) = (r.size, r.gbps(), r.keys_per_s());
        r.ratios = r
            .baselines
            .iter()
            .filter_map(|(label, id)| {
                let (_, bsize, bgbps, bkps) = tput.iter().find(|(i, ..)| i == id)?;
                // Bytes per second where both move data, else keys per second.
                let ratio = if size > 0 && *bsize > 0 {
                    gbps / bgbps
                } else {
                    kps / bkps
                };
                Some((label.clone(), ratio))
            })
            .collect();
    }
}

pub fn fmt_size(n: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1u64 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    if n == 0 {
        return "-".into();
    }
    if n >= 1 << 20 {
        return format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64);
    }
    format!("{n} B")
}

fn fmt_opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn fmt_count(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// The readable table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let head = format!(
        "{:<7} {:<30} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>6} {:>6} {:>16}  {}",
        "section",
        "operation",
        "size",
        "ops",
        "GB/s",
        "keys/s",
        "p50 us",
        "p99 us",
        "flt/op",
        "csw/op",
        "cpu% mn/rt/mt/pr",
        "ratio to baseline"
    );
    out.push_str(&head);
    out.push('\n');
    out.push_str(&"-".repeat(head.len() + 24));
    out.push('\n');
    let mut last = "";
    for r in rows {
        if !last.is_empty() && last != r.section {
            out.push('\n');
        }
        last = r.section;
        let size = if r.keys > 1 && r.size > 0 {
            format!("{}x{}", r.keys, fmt_size(r.size).replace(' ', ""))
        } else {
            fmt_size(r.size)
        };
        // CPU time is counted in 10 ms ticks: too coarse for short measurements.
        let cpu = match r.m.cpu_pct {
            Some(c) if r.m.wall_s >= 0.5 => format!("{:.0}/{:.0}/{:.0}/{:.0}", c.main, c.rt, c.meta, c.peer),
            _ => "-".into(),
        };
        let per_op = |x: f64| {
            let v = if r.m.ops > 0 { x / r.m.ops as f64 } else { 0.0 };
            if v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        };
        let csw = r.m.cpu_pct.map(|c| per_op(c.csw)).unwrap_or_else(|| "-".into());
        let ratios = r
            .ratios
            .iter()
            .map(|(l, v)| format!("{v:.2}x {l}"))
            .collect::<Vec<_>>()
            .join(", ");
        let gbps = if r.size > 0 {
            format!("{:.2}", r.gbps())
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<7} {:<30} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>6} {:>6} {:>16}  {}\n",
            r.section,
            r.op,
            size,
            r.m.ops,
            gbps,
            fmt_count(r.keys_per_s()),
            fmt_opt(r.m.p50_us),
            fmt_opt(r.m.p99_us),
            per_op(r.m.faults as f64),
            csw,
            cpu,
            ratios
        ));
    }
    out
}

pub fn row_json(r: &Row) -> Value {
    json!({
        "id": r.id,
        "section": r.section,
        "operation": r.op,
        "size_bytes": r.size,
        "keys_per_op": r.keys,
        "ops": r.m.ops,
        "timed_seconds": r.m.busy_s,
        "wall_seconds": r.m.wall_s,
        "gb_per_s": (r.size > 0).then(|| r.gbps()),
        "keys_per_s": r.keys_per_s(),
        "p50_us": r.m.p50_us,
        "p99_us": r.m.p99_us,
        "page_faults": r.m.faults,
        "cpu_percent": r.m.cpu_pct.map(|c| json!({
            "bench_thread": c.main, "client_runtime": c.rt, "metaservice": c.meta, "provider": c.peer
        })),
        "context_switches": r.m.cpu_pct.map(|c| c.csw),
        "ratios": r.ratios.iter().map(|(l, v)| json!({"baseline": l, "ratio": v})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Kind;

    #[test]
    fn ratios_compare_throughput() {
        let a = Kind::MemcpyWsWrite.size(1 << 20);
        let mut rows = vec![
            Row::new(a, "memcpy", "copy", 1 << 20, 1, Measured::of(1000, 0.1)),
            Row::new(
                Kind::ShmPut.size(1 << 20),
                "shm",
                "put",
                1 << 20,
                1,
                Measured::of(1000, 0.2),
            )
            .vs("copy", a)
            .vs("missing", Kind::RedisSet.size(1 << 20)),
        ];
        resolve_ratios(&mut rows);
        assert_eq!(rows[1].ratios.len(), 1);
        assert!((rows[1].ratios[0].1 - 0.5).abs() < 1e-9);
        assert!((rows[0].gbps() - 1000.0 * (1 << 20) as f64 / 0.1 / 1e9).abs() < 1e-6);
        assert!(table(&rows).contains("0.50x copy"));
        assert_eq!(fmt_size(4096), "4 KiB");
        assert_eq!(fmt_size(8 << 20), "8 MiB");
    }
}
