//! The comparison tables (Markdown, so they can go into docs as printed)
//! and the check of the performance targets, all from the rows of one run. Rows
//! are looked up by their typed [`RowId`]; the tables of each part of the
//! run are in the submodules.

mod control;
mod cross_host;
mod same_host;
mod targets;

use super::report::Row;
use super::rows::{At, Kind, RowId};
use serde_json::{json, Value};
use std::collections::HashMap;

pub struct Summary {
    pub text: String,
    pub json: Value,
}

/// The rows of one run by id.
struct Rows<'a>(HashMap<RowId, &'a Row>);

impl<'a> Rows<'a> {
    fn get(&self, id: RowId) -> Option<&'a Row> {
        self.0.get(&id).copied()
    }

    fn gbps(&self, id: RowId) -> Option<f64> {
        self.get(id).filter(|r| r.m.ops > 0).map(|r| r.gbps())
    }

    /// GB/s of rows `a` and `b` at `at` (a put and a get, two directions).
    fn gbps2(&self, a: Kind, b: Kind, at: At) -> (Option<f64>, Option<f64>) {
        (self.gbps(a.at(at)), self.gbps(b.at(at)))
    }

    /// Throughput of row `a` at `at` over that of row `b` at `at`.
    fn ratio2(&self, a: Kind, b: Kind, at: At) -> Option<f64> {
        let (x, y) = self.gbps2(a, b, at);
        ratio(x, y)
    }

    fn kps(&self, id: RowId) -> Option<f64> {
        self.get(id).filter(|r| r.m.ops > 0).map(|r| r.keys_per_s())
    }

    fn lat(&self, id: RowId) -> String {
        match self.get(id) {
            Some(r) => format!("{} / {}", us(r.m.p50_us), us(r.m.p99_us)),
            None => "-".into(),
        }
    }
}

fn us(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn g(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

fn k(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 1e6 => format!("{:.2}M", x / 1e6),
        Some(x) if x >= 1e3 => format!("{:.1}k", x / 1e3),
        Some(x) => format!("{x:.0}"),
        None => "-".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn x(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into())
}

fn pair(a: String, b: String) -> String {
    if a == "-" && b == "-" {
        "-".into()
    } else {
        format!("{a} / {b}")
    }
}

struct Table {
    out: String,
}

impl Table {
    fn new(title: &str, head: &[&str]) -> Table {
        let mut out = format!("{title}\n\n| {} |\n|", head.join(" | "));
        for (i, _) in head.iter().enumerate() {
            out.push_str(if i == 0 { " --- |" } else { " ---: |" });
        }
        out.push('\n');
        Table { out }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }

    fn done(mut self) -> String {
        self.out.push('\n');
        self.out
    }
}

/// Builds the comparison tables and their JSON from the rows of one run,
/// section by section; a section without its MemCache rows is left out.
pub fn summarize(rows: &[Row], sizes: &[u64], batch_values: &[u64], clients: &[usize], cross_sizes: &[u64]) -> Summary {
    let r = Rows(rows.iter().map(|r| (r.id, r)).collect());
    let mut text = String::new();
    let sweep = same_host::sweep(&r, sizes, &mut text);
    let batches = same_host::batches(&r, batch_values, &mut text);
    let layers = same_host::layered_block(&r, &mut text);
    let scale = same_host::client_scaling(&r, clients, &mut text);
    let cross = cross_host::by_size_and_clients(&r, clients, cross_sizes, &mut text);
    let batched = cross_host::batched_sizes(&r, cross_sizes);
    let cross_batch = cross_host::batches(&r, &batched, &mut text);
    let lat_json = control::latency(&r, &mut text);
    let checks = targets::checks(&r, sizes, cross_sizes, &batched);
    let targets = targets::table(&checks, &mut text);
    Summary {
        text,
        json: json!({
            "sweep": sweep, "batches": batches, "layers": layers, "scale": scale, "cross": cross, "cross_batch": cross_batch,
            "latency": lat_json, "targets": targets,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Measured;

    #[test]
    fn cross_host_batches_are_compared_with_the_stream_and_mooncake() {
        const MIB: u64 = 1 << 20;
        // 1 s each: the raw stream moves 1000 MiB, MemCache's batches of 8
        // 100 x 8 MiB (put) and 150 x 8 MiB (get), Mooncake's 10 x 8 MiB.
        let row = |kind: Kind, keys: u64, ops: u64| {
            Row::new(kind.size(MIB), "cross", "op", MIB, keys, Measured::of(ops, 1.0))
        };
        let rows = vec![
            row(Kind::CrossRawSend, 1, 1000),
            row(Kind::CrossRawRecv, 1, 1000),
            row(Kind::CrossPutB, 8, 100),
            row(Kind::CrossGetB, 8, 150),
            row(Kind::CrossMooncakePutB, 8, 10),
            row(Kind::CrossMooncakeGetB, 8, 10),
        ];
        let s = summarize(&rows, &[], &[], &[1], &[MIB, 4 * MIB]);
        assert!(
            s.text
                .contains("| 8 x 1 MiB | 0.80x | 1.20x | - | - | 10.00x | 15.00x |"),
            "{}",
            s.text
        );
        assert!(!s.text.contains("8 x 4 MiB"), "a size without batch rows is left out");
        let target = |name: &str| {
            s.json["targets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["target"].as_str().unwrap().starts_with(name))
                .map(|t| t["result"]["status"].as_str().unwrap_or("n/a").to_owned())
                .unwrap()
        };
        assert_eq!(target("(batched) cross-host TCP"), "met");
        assert_eq!(target("(batched) large objects, cross host: put_batch"), "met");
        assert_eq!(s.json["cross_batch"][0]["keys"], 8);
    }
}
