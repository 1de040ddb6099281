//! Golden tests of everything the bench prints or writes from a fixed set
//! of result rows: the summary tables and their JSON, the per-row table,
//! the rows' JSON and the bandwidth plot. The golden files under
//! `src/testdata/` were produced by the code before the summary was split
//! into steps and rows got typed ids; the output must stay byte-identical.
//!
//! `MMC_BENCH_BLESS=1 cargo test -p mmc-bench golden` rewrites them (only
//! when a change of the output is intended).

use crate::measure::Measured;
use crate::report::{self, Row};
use crate::{plot, summary};

/// The row id type the fixture names rows with.
type Id = crate::rows::RowId;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const SIZES: [u64; 4] = [4 * KIB, 64 * KIB, MIB, 4 * MIB];
const BATCH_VALUES: [u64; 2] = [4 * KIB, 128 * KIB];
const CLIENTS: [usize; 2] = [1, 2];
const CROSS_SIZES: [u64; 2] = [MIB, 4 * MIB];

/// Builds the fixture rows with deterministic, varied measurements.
struct Fixture {
    rows: Vec<Row>,
}

impl Fixture {
    /// A row `id`; its figures depend only on its position in the list.
    fn add(&mut self, id: &str, section: &'static str, op: &str, size: u64, keys: u64) -> &mut Row {
        let i = self.rows.len() as u64;
        let ops = 20 + (i * 7919) % 4000;
        let busy = 0.25 + ((i * 31) % 17) as f64 * 0.05;
        let p50 = (i % 5 != 3).then(|| 2.0 + ((i * 131) % 997) as f64 * 1.7);
        let m = Measured {
            ops,
            busy_s: busy,
            wall_s: busy * 1.25,
            p50_us: p50,
            p99_us: p50.map(|p| p * 3.5 + 0.25),
            faults: i * 3,
            cpu_pct: None,
        };
        self.rows
            .push(Row::new(id.parse().expect("fixture id"), section, op, size, keys, m));
        self.rows.last_mut().expect("just pushed")
    }

    /// Adds the baseline `id` (by name) to the last row.
    fn vs(&mut self, label: &str, id: &str) -> &mut Self {
        let last = self.rows.pop().expect("a row");
        self.rows.push(last.vs(label, id.parse::<Id>().expect("fixture id")));
        self
    }

    /// Sets the last row's operation count to zero (a failed measurement).
    fn no_ops(&mut self) {
        self.rows.last_mut().expect("a row").m.ops = 0;
    }
}

fn tag(s: u64) -> String {
    crate::workloads::tag(s)
}

/// Rows of every workload, some baselines left out or measured empty.
fn fixture() -> Vec<Row> {
    let mut f = Fixture { rows: Vec::new() };
    memcpy_rows(&mut f);
    shm_rows(&mut f);
    tcp_rows(&mut f);
    batch_rows(&mut f);
    layers_rows(&mut f);
    scale_rows(&mut f);
    cross_rows(&mut f);
    report::resolve_ratios(&mut f.rows);
    f.rows
}

/// The memcpy baselines at every size.
fn memcpy_rows(f: &mut Fixture) {
    for &s in &SIZES {
        let t = tag(s);
        f.add(
            &format!("memcpy.hot.{t}"),
            "memcpy",
            "memcpy hot: buffer -> buffer",
            s,
            1,
        );
        f.add(&format!("memcpy.wswrite.{t}"), "memcpy", "memcpy ws-write", s, 1);
        f.add(&format!("memcpy.wsread.{t}"), "memcpy", "memcpy ws-read", s, 1);
        if s >= MIB {
            f.add(&format!("memcpy.mmcwrite.{t}"), "memcpy", "mmc copy ws-write", s, 1);
            f.add(&format!("memcpy.mmcread.{t}"), "memcpy", "mmc copy ws-read", s, 1);
        }
    }
}

/// The same-host rows, with Redis and Mooncake beside them.
fn shm_rows(f: &mut Fixture) {
    f.add("shm.pretouch", "shm", "put_from, first touch", MIB, 1);
    for &s in &SIZES {
        let t = tag(s);
        f.add(
            &format!("shm.wswrite.{t}"),
            "shm",
            "memcpy ws-write (interleaved)",
            s,
            1,
        );
        f.add(&format!("shm.put.{t}"), "shm", "MemCache put_from", s, 1);
        f.vs("memcpy ws-write (interleaved)", &format!("shm.wswrite.{t}"))
            .vs("mmc copy", &format!("memcpy.mmcwrite.{t}"))
            .vs("memcpy hot", &format!("memcpy.hot.{t}"))
            .vs("redis", &format!("redis.set.{t}"))
            .vs("mooncake", &format!("mooncake.put.{t}"));
        f.add(&format!("shm.wsread.{t}"), "shm", "memcpy ws-read (interleaved)", s, 1);
        f.add(&format!("shm.get.{t}"), "shm", "MemCache get_into", s, 1);
        f.vs("memcpy ws-read (interleaved)", &format!("shm.wsread.{t}"))
            .vs("redis", &format!("redis.get.{t}"));
        if s >= MIB {
            f.add(
                &format!("shm.wswriteac.{t}"),
                "shm",
                "memcpy ws-write (interleaved)",
                s,
                1,
            );
            f.add(
                &format!("shm.putac.{t}"),
                "shm",
                "MemCache put_from, async_commit",
                s,
                1,
            );
            f.vs("memcpy ws-write (interleaved)", &format!("shm.wswriteac.{t}"))
                .vs("default put", &format!("shm.put.{t}"));
        }
        if s != 4 * MIB {
            f.add(&format!("redis.set.{t}"), "shm", "redis SET", s, 1);
            f.add(&format!("redis.get.{t}"), "shm", "redis GET", s, 1);
        }
        f.add(&format!("mooncake.put.{t}"), "shm", "mooncake put_from", s, 1);
        f.add(&format!("mooncake.get.{t}"), "shm", "mooncake get_into", s, 1);
        if s == 4 * KIB {
            f.no_ops();
        }
    }
}

/// The forced-TCP rows on one host.
fn tcp_rows(f: &mut Fixture) {
    f.add("tcp.raw.1MiB", "tcp", "raw loopback stream", MIB, 1);
    f.add("tcp.put.1MiB", "tcp", "put_from (protocol tcp)", MIB, 1);
    f.vs("raw tcp", "tcp.raw.1MiB");
    f.add("tcp.get.1MiB", "tcp", "get_into (protocol tcp)", MIB, 1);
    f.vs("raw tcp", "tcp.raw.1MiB");
}

/// The batches of small keys.
fn batch_rows(f: &mut Fixture) {
    for &v in &BATCH_VALUES {
        let t = tag(v);
        f.add(&format!("batch.put1.{t}"), "batch", "MemCache put_from x1", v, 1);
        f.add(&format!("batch.put.{t}"), "batch", "MemCache put_batch x32", v, 32);
        f.vs("x1", &format!("batch.put1.{t}"))
            .vs("redis MSET", &format!("redis.mset.{t}"))
            .vs("mooncake", &format!("mooncake.putb.{t}"));
        f.add(&format!("batch.get1.{t}"), "batch", "MemCache get_into x1", v, 1);
        f.add(&format!("batch.get.{t}"), "batch", "MemCache get_into_batch x32", v, 32);
        f.vs("x1", &format!("batch.get1.{t}"));
        if v == 4 * KIB {
            f.add(
                &format!("batch.putac.{t}"),
                "batch",
                "MemCache put_batch x32, async_commit",
                v,
                32,
            );
            f.vs("default", &format!("batch.put.{t}"));
            f.add("batch.rtt", "batch", "raw tcp ping-pong 64 B", 0, 1);
        }
        f.add(&format!("batch.exist1.{t}"), "batch", "MemCache exist x1", 0, 1);
        f.vs("raw rtt", "batch.rtt");
        f.add(&format!("batch.exist.{t}"), "batch", "MemCache exist_batch x32", 0, 32);
        f.vs("x1", &format!("batch.exist1.{t}"));
        if v == 4 * KIB {
            f.add(
                &format!("batch.existasync.{t}"),
                "batch",
                "MemCache exist x1, async",
                0,
                1,
            );
        }
        f.add(&format!("redis.mset.{t}"), "batch", "redis MSET x32", v, 32);
        f.add(&format!("redis.mget.{t}"), "batch", "redis MGET x32", v, 32);
        f.add(&format!("redis.exists.{t}"), "batch", "redis EXISTS x32", 0, 32);
        f.add(
            &format!("mooncake.putb.{t}"),
            "batch",
            "mooncake batch_put_from x32",
            v,
            32,
        );
        f.add(
            &format!("mooncake.getb.{t}"),
            "batch",
            "mooncake batch_get_into x32",
            v,
            32,
        );
        if v == 4 * KIB {
            f.add(
                &format!("mooncake.existb.{t}"),
                "batch",
                "mooncake batch_is_exist x32",
                0,
                32,
            );
        }
    }
}

/// The layered KV block.
fn layers_rows(f: &mut Fixture) {
    let block = 8_998_912;
    f.add("layers.memcpy.put", "layers", "memcpy gather", block, 1);
    f.add("layers.memcpy.get", "layers", "memcpy scatter", block, 1);
    f.add("layers.put", "layers", "MemCache put_from_layers", block, 1);
    f.vs("memcpy", "layers.memcpy.put")
        .vs("mooncake", "layers.mooncake.put");
    f.add("layers.get", "layers", "MemCache get_into_layers", block, 1);
    f.vs("memcpy", "layers.memcpy.get");
    f.add("layers.redis.set", "layers", "redis SET of the block", block, 1);
    f.add("layers.redis.get", "layers", "redis GET of the block", block, 1);
}

/// The client-scaling rows.
fn scale_rows(f: &mut Fixture) {
    for &n in &CLIENTS {
        f.add(
            &format!("scale.mmc.put.n{n}"),
            "scale",
            &format!("MemCache put_from, {n} procs"),
            MIB,
            1,
        );
        f.vs("memcpy", &format!("scale.memcpy.put.n{n}"))
            .vs("1 proc", "scale.mmc.put.n1");
        f.add(
            &format!("scale.mmc.get.n{n}"),
            "scale",
            &format!("MemCache get_into, {n} procs"),
            MIB,
            1,
        );
        f.add(&format!("scale.memcpy.put.n{n}"), "scale", "memcpy ws-write", MIB, 1);
        f.add(&format!("scale.memcpy.get.n{n}"), "scale", "memcpy ws-read", MIB, 1);
        f.add(&format!("scale.redis.set.n{n}"), "scale", "redis SET", MIB, 1);
        f.add(&format!("scale.redis.get.n{n}"), "scale", "redis GET", MIB, 1);
        if n > 1 {
            f.add(
                &format!("scale.mooncake.put.n{n}"),
                "scale",
                "mooncake put_from",
                MIB,
                1,
            );
            f.add(
                &format!("scale.mooncake.get.n{n}"),
                "scale",
                "mooncake get_into",
                MIB,
                1,
            );
        }
    }
}

/// The cross-host rows.
fn cross_rows(f: &mut Fixture) {
    f.add("cross.rtt", "cross", "raw tcp ping-pong 64 B (A <-> B)", 0, 1);
    f.add("cross.exist1", "cross", "MemCache exist x1 (tcp)", 4096, 1);
    f.add("cross.get1.4KiB", "cross", "MemCache get_into 4 KiB x1 (tcp)", 4096, 1);
    for &s in &CROSS_SIZES {
        let t = tag(s);
        f.add(&format!("cross.raw.send.{t}"), "cross", "raw tcp stream B -> A", s, 1);
        f.add(&format!("cross.raw.recv.{t}"), "cross", "raw tcp stream A -> B", s, 1);
        f.add(
            &format!("cross.rr.send.{t}"),
            "cross",
            "raw tcp request+ack B -> A",
            s,
            1,
        );
        f.add(
            &format!("cross.rr.recv.{t}"),
            "cross",
            "raw tcp request+reply A -> B",
            s,
            1,
        );
        f.add(&format!("cross.put.{t}"), "cross", "MemCache put_from (tcp)", s, 1);
        f.vs("raw tcp", &format!("cross.raw.send.{t}"))
            .vs("raw req/resp", &format!("cross.rr.send.{t}"))
            .vs("redis", &format!("cross.redis.set.{t}"))
            .vs("mooncake", &format!("cross.mooncake.put.{t}"));
        f.add(&format!("cross.get.{t}"), "cross", "MemCache get_into (tcp)", s, 1);
        f.vs("raw tcp", &format!("cross.raw.recv.{t}"));
        if s == MIB {
            f.add(&format!("cross.putb.{t}"), "cross", "MemCache put_batch x8", s, 8);
            f.vs("raw tcp", &format!("cross.raw.send.{t}"))
                .vs("mooncake", &format!("cross.mooncake.putb.{t}"));
            f.add(&format!("cross.getb.{t}"), "cross", "MemCache get_batch x8", s, 8);
            f.add(&format!("cross.redis.mset.{t}"), "cross", "redis MSET x8", s, 8);
            f.add(&format!("cross.redis.mget.{t}"), "cross", "redis MGET x8", s, 8);
            f.add(
                &format!("cross.mooncake.putb.{t}"),
                "cross",
                "mooncake batch_put_from x8",
                s,
                8,
            );
            f.add(
                &format!("cross.mooncake.getb.{t}"),
                "cross",
                "mooncake batch_get_into x8",
                s,
                8,
            );
        }
        f.add(&format!("cross.redis.set.{t}"), "cross", "redis SET", s, 1);
        f.add(&format!("cross.redis.get.{t}"), "cross", "redis GET", s, 1);
        f.add(&format!("cross.mooncake.put.{t}"), "cross", "mooncake put_from", s, 1);
        f.add(&format!("cross.mooncake.get.{t}"), "cross", "mooncake get_into", s, 1);
    }
    f.add("cross.raw.send.n2", "cross", "raw tcp B -> A, 2 streams", MIB, 1);
    f.add("cross.raw.recv.n2", "cross", "raw tcp A -> B, 2 streams", MIB, 1);
    f.add("cross.put.n2", "cross", "MemCache put_from (tcp), 2 procs", MIB, 1);
    f.vs("raw tcp", "cross.raw.send.n2").vs("redis", "cross.redis.set.n2");
    f.add("cross.get.n2", "cross", "MemCache get_into (tcp), 2 procs", MIB, 1);
    f.add("cross.redis.set.n2", "cross", "redis SET, 2 procs", MIB, 1);
    f.add("cross.redis.get.n2", "cross", "redis GET, 2 procs", MIB, 1);
    f.add("cross.mooncake.put.n2", "cross", "mooncake put_from, 2 procs", MIB, 1);
    f.add("cross.mooncake.get.n2", "cross", "mooncake get_into, 2 procs", MIB, 1);
}

/// Compares `got` with the golden file `name` (or rewrites it when blessing).
fn golden(name: &str, expected: &str, got: &str) {
    if std::env::var_os("MMC_BENCH_BLESS").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/testdata")
            .join(name);
        std::fs::write(&path, got).expect("write the golden file");
        return;
    }
    if expected != got {
        let line = expected
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(got.lines().count()));
        panic!(
            "{name} differs from the golden file at line {}:\nexpected: {:?}\ngot:      {:?}",
            line + 1,
            expected.lines().nth(line),
            got.lines().nth(line)
        );
    }
}

#[test]
fn summary_text_is_unchanged() {
    let rows = fixture();
    let s = summary::summarize(&rows, &SIZES, &BATCH_VALUES, &CLIENTS, &CROSS_SIZES);
    golden("summary.txt", include_str!("testdata/summary.txt"), &s.text);
}

#[test]
fn summary_json_is_unchanged() {
    let rows = fixture();
    let s = summary::summarize(&rows, &SIZES, &BATCH_VALUES, &CLIENTS, &CROSS_SIZES);
    let got = serde_json::to_string_pretty(&s.json).expect("json") + "\n";
    golden("summary.json", include_str!("testdata/summary.json"), &got);
}

#[test]
fn summary_of_a_partial_run_is_unchanged() {
    // Only the cross workload, one client count: the other sections are left out.
    let rows: Vec<Row> = fixture().into_iter().filter(|r| r.section == "cross").collect();
    let s = summary::summarize(&rows, &[], &[], &[1], &CROSS_SIZES);
    let got = format!("{}\n{}\n", s.text, serde_json::to_string_pretty(&s.json).expect("json"));
    golden("summary-cross.txt", include_str!("testdata/summary-cross.txt"), &got);
}

#[test]
fn row_table_and_json_are_unchanged() {
    let rows = fixture();
    golden("table.txt", include_str!("testdata/table.txt"), &report::table(&rows));
    let json: Vec<_> = rows.iter().map(report::row_json).collect();
    let got = serde_json::to_string_pretty(&json).expect("json") + "\n";
    golden("rows.json", include_str!("testdata/rows.json"), &got);
}

#[test]
fn bandwidth_plot_is_unchanged() {
    let svg = plot::bandwidth_svg(&fixture(), "fixture machine").expect("a plot");
    golden("bandwidth.svg", include_str!("testdata/bandwidth.svg"), &svg);
}
