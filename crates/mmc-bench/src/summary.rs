//! The comparison tables (Markdown, so they can go into docs as printed)
//! and the check of issue #5's targets, all from the rows of one run.

use super::report::{fmt_size, Row};
use super::workloads::tag;
use serde_json::{json, Value};
use std::collections::HashMap;

pub struct Summary {
    pub text: String,
    pub json: Value,
}

struct Rows<'a>(HashMap<String, &'a Row>);

impl<'a> Rows<'a> {
    fn gbps(&self, id: &str) -> Option<f64> {
        self.0.get(id).filter(|r| r.m.ops > 0).map(|r| r.gbps())
    }

    /// GB/s of rows `{a}.{tag}` and `{b}.{tag}` (a put and a get, two directions).
    fn gbps2(&self, a: &str, b: &str, tag: &str) -> (Option<f64>, Option<f64>) {
        (self.gbps(&format!("{a}.{tag}")), self.gbps(&format!("{b}.{tag}")))
    }

    /// Throughput of `{a}.{tag}` over that of `{b}.{tag}`.
    fn ratio2(&self, a: &str, b: &str, tag: &str) -> Option<f64> {
        let (x, y) = self.gbps2(a, b, tag);
        ratio(x, y)
    }

    fn kps(&self, id: &str) -> Option<f64> {
        self.0.get(id).filter(|r| r.m.ops > 0).map(|r| r.keys_per_s())
    }

    fn lat(&self, id: &str) -> String {
        match self.0.get(id) {
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

/// One target: (range of the worst ratios, met?) over the given (label, ratio) pairs.
fn check(
    name: &str,
    items: &[(String, Option<f64>)],
    need: f64,
    strict: bool,
) -> (String, String, &'static str, Value) {
    let have: Vec<(&String, f64)> = items.iter().filter_map(|(l, r)| r.map(|r| (l, r))).collect();
    if have.is_empty() {
        return (name.into(), "not measured in this run".into(), "n/a", json!(null));
    }
    let ok = |r: f64| if strict { r > need } else { r >= need };
    let met = have.len() == items.len() && have.iter().all(|(_, r)| ok(*r));
    let worst = have.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("non-empty");
    let detail = have
        .iter()
        .map(|(l, r)| format!("{l} {r:.2}x"))
        .collect::<Vec<_>>()
        .join(", ");
    let status = if met { "met" } else { "MISSED" };
    let text = format!("worst {} {:.2}x; {detail}", worst.0, worst.1);
    (
        name.into(),
        text,
        status,
        json!({
            "status": status,
            "need": need,
            "ratios": have.iter().map(|(l, r)| json!({"what": l, "ratio": r})).collect::<Vec<_>>(),
        }),
    )
}

/// The check of one target: (name, measured detail, status, JSON result).
type Check = (String, String, &'static str, Value);

/// Builds the comparison tables and their JSON from the rows of one run,
/// section by section; a section without its MemCache rows is left out.
pub fn summarize(rows: &[Row], sizes: &[u64], batch_values: &[u64], clients: &[usize], cross_sizes: &[u64]) -> Summary {
    let r = Rows(rows.iter().map(|r| (r.id.to_string(), r)).collect());
    let mut text = String::new();
    let sweep = same_host_sweep(&r, sizes, &mut text);
    let batches = batches(&r, batch_values, &mut text);
    let layers = layered_block(&r, &mut text);
    let scale = client_scaling(&r, clients, &mut text);
    let cross = cross_host(&r, clients, cross_sizes, &mut text);
    let batched = cross_batched(&r, cross_sizes);
    let cross_batch = cross_host_batches(&r, &batched, &mut text);
    let lat_json = control_latency(&r, &mut text);
    let checks = target_checks(&r, sizes, cross_sizes, &batched);
    let targets = targets_table(&checks, &mut text);
    Summary {
        text,
        json: json!({
            "sweep": sweep, "batches": batches, "layers": layers, "scale": scale, "cross": cross, "cross_batch": cross_batch,
            "latency": lat_json, "targets": targets,
        }),
    }
}

/// Same host (shm): the object size sweep (GB/s, latency, the baselines) and
/// its ratio table; the JSON `sweep` rows.
fn same_host_sweep(r: &Rows<'_>, sizes: &[u64], text: &mut String) -> Vec<Value> {
    let mut sweep = Vec::new();
    // ---- same-host sweep
    if sizes.iter().any(|&s| r.gbps(&format!("shm.put.{}", tag(s))).is_some()) {
        let mut t = Table::new(
            "Same host (shm), object size sweep: GB/s; latency p50 / p99 in us; memcpy w / r = memcpy into / out of \
             the provider's segment at the objects' offsets, interleaved with the put / get",
            &[
                "size",
                "put_from",
                "get_into",
                "put lat",
                "get lat",
                "put, async_commit",
                "memcpy w / r",
                "mmc copy w / r",
                "redis SET / GET",
                "mooncake put / get",
            ],
        );
        let mut q = Table::new(
            "Same host: ratios (MemCache / baseline, same run)",
            &[
                "size",
                "put / memcpy",
                "get / memcpy",
                "put / mmc copy",
                "get / mmc copy",
                "put / redis",
                "get / redis",
                "put / mooncake",
                "get / mooncake",
                "async put / memcpy",
                "async put / redis",
            ],
        );
        for &s in sizes {
            let tg = tag(s);
            let (put, get) = (r.gbps(&format!("shm.put.{tg}")), r.gbps(&format!("shm.get.{tg}")));
            // The memcpy each was interleaved with (`workloads::interleaved`).
            let (mw, mr) = r.gbps2("shm.wswrite", "shm.wsread", &tg);
            let aw = r.gbps(&format!("shm.wswriteac.{tg}"));
            let (cw, cr) = r.gbps2("memcpy.mmcwrite", "memcpy.mmcread", &tg);
            let (rs, rg) = (r.gbps(&format!("redis.set.{tg}")), r.gbps(&format!("redis.get.{tg}")));
            let (ms, mg) = r.gbps2("mooncake.put", "mooncake.get", &tg);
            let ac = r.gbps(&format!("shm.putac.{tg}"));
            t.row(vec![
                fmt_size(s),
                g(put),
                g(get),
                r.lat(&format!("shm.put.{tg}")),
                r.lat(&format!("shm.get.{tg}")),
                match ac {
                    Some(v) => format!("{} ({})", g(Some(v)), r.lat(&format!("shm.putac.{tg}"))),
                    None => "-".into(),
                },
                pair(g(mw), g(mr)),
                pair(g(cw), g(cr)),
                pair(g(rs), g(rg)),
                pair(g(ms), g(mg)),
            ]);
            q.row(vec![
                fmt_size(s),
                x(ratio(put, mw)),
                x(ratio(get, mr)),
                x(ratio(put, cw)),
                x(ratio(get, cr)),
                x(ratio(put, rs)),
                x(ratio(get, rg)),
                x(ratio(put, ms)),
                x(ratio(get, mg)),
                x(ratio(ac, aw)),
                x(ratio(ac, rs)),
            ]);
            sweep.push(json!({
                "put_async_commit_gbps": ac,
                "size": s, "put_gbps": put, "get_gbps": get,
                "put_p50_us": r.0.get(format!("shm.put.{tg}").as_str()).and_then(|x| x.m.p50_us),
                "put_p99_us": r.0.get(format!("shm.put.{tg}").as_str()).and_then(|x| x.m.p99_us),
                "get_p50_us": r.0.get(format!("shm.get.{tg}").as_str()).and_then(|x| x.m.p50_us),
                "get_p99_us": r.0.get(format!("shm.get.{tg}").as_str()).and_then(|x| x.m.p99_us),
                "memcpy_write_gbps": mw, "memcpy_read_gbps": mr,
                "mmc_copy_write_gbps": cw, "mmc_copy_read_gbps": cr,
                "memcpy_hot_gbps": r.gbps(&format!("memcpy.hot.{tg}")),
                "redis_set_gbps": rs, "redis_get_gbps": rg, "mooncake_put_gbps": ms, "mooncake_get_gbps": mg,
            }));
        }
        text.push_str(&t.done());
        text.push_str(&q.done());
    }
    sweep
}

/// Batches on the same host: keys/s against one call per key, Redis and
/// Mooncake; the JSON `batches` rows.
fn batches(r: &Rows<'_>, batch_values: &[u64], text: &mut String) -> Vec<Value> {
    let mut batches = Vec::new();
    if batch_values
        .iter()
        .any(|&v| r.kps(&format!("batch.put.{}", tag(v))).is_some())
    {
        let mut t = Table::new(
            "Batches: keys/s (ratio = MemCache / baseline)",
            &[
                "batch",
                "op",
                "MemCache",
                "x1 call",
                "redis",
                "vs redis",
                "mooncake",
                "vs mooncake",
            ],
        );
        for &v in batch_values {
            let tg = tag(v);
            for (op, mine, one, rd, mc) in [
                ("put", "batch.put", "batch.put1", "redis.mset", "mooncake.putb"),
                (
                    "put, async_commit",
                    "batch.putac",
                    "batch.put1",
                    "redis.mset",
                    "mooncake.putb",
                ),
                ("get", "batch.get", "batch.get1", "redis.mget", "mooncake.getb"),
                (
                    "exist",
                    "batch.exist",
                    "batch.exist1",
                    "redis.exists",
                    "mooncake.existb",
                ),
            ] {
                let a = r.kps(&format!("{mine}.{tg}"));
                let o = r.kps(&format!("{one}.{tg}"));
                let b = r.kps(&format!("{rd}.{tg}"));
                let c = r.kps(&format!("{mc}.{tg}"));
                let keys = r.0.get(format!("{mine}.{tg}").as_str()).map(|x| x.keys).unwrap_or(0);
                t.row(vec![
                    format!("{keys} x {}", fmt_size(v)),
                    op.into(),
                    k(a),
                    k(o),
                    k(b),
                    x(ratio(a, b)),
                    k(c),
                    x(ratio(a, c)),
                ]);
                batches.push(
                    json!({"value": v, "op": op, "memcache_kps": a, "x1_kps": o, "redis_kps": b, "mooncake_kps": c}),
                );
            }
        }
        text.push_str(&t.done());
    }
    batches
}

/// The layered KV block against memcpy, Redis and Mooncake; the JSON `layers`
/// object (null when not measured).
fn layered_block(r: &Rows<'_>, text: &mut String) -> Value {
    let mut layers = Value::Null;
    if r.gbps("layers.put").is_some() {
        let mut t = Table::new(
            "Layered KV block (61 x 128 KiB + 61 x 16 KiB in 122 buffers, 8.58 MiB): GB/s",
            &[
                "op",
                "MemCache",
                "lat p50 / p99 us",
                "memcpy",
                "vs memcpy",
                "redis",
                "vs redis",
                "mooncake",
                "vs mooncake",
            ],
        );
        for (op, mine, mc, rd, mk) in [
            (
                "put",
                "layers.put",
                "layers.memcpy.put",
                "layers.redis.set",
                "layers.mooncake.put",
            ),
            (
                "get",
                "layers.get",
                "layers.memcpy.get",
                "layers.redis.get",
                "layers.mooncake.get",
            ),
        ] {
            let a = r.gbps(mine);
            t.row(vec![
                op.into(),
                g(a),
                r.lat(mine),
                g(r.gbps(mc)),
                x(ratio(a, r.gbps(mc))),
                g(r.gbps(rd)),
                x(ratio(a, r.gbps(rd))),
                g(r.gbps(mk)),
                x(ratio(a, r.gbps(mk))),
            ]);
        }
        layers = json!({
            "put_gbps": r.gbps("layers.put"), "get_gbps": r.gbps("layers.get"),
            "memcpy_put_gbps": r.gbps("layers.memcpy.put"), "memcpy_get_gbps": r.gbps("layers.memcpy.get"),
            "redis_set_gbps": r.gbps("layers.redis.set"), "redis_get_gbps": r.gbps("layers.redis.get"),
            "mooncake_put_gbps": r.gbps("layers.mooncake.put"), "mooncake_get_gbps": r.gbps("layers.mooncake.get"),
        });
        text.push_str(&t.done());
    }
    layers
}

/// N client processes on the same host: aggregate GB/s; the JSON `scale` rows.
fn client_scaling(r: &Rows<'_>, clients: &[usize], text: &mut String) -> Vec<Value> {
    let mut scale = Vec::new();
    if clients
        .iter()
        .any(|&n| r.gbps(&format!("scale.mmc.put.n{n}")).is_some())
    {
        let size =
            r.0.get("scale.mmc.put.n1")
                .or(r.0.get(format!("scale.mmc.put.n{}", clients[0]).as_str()))
                .map(|x| x.size)
                .unwrap_or(0);
        let mut t = Table::new(
            &format!(
                "N client processes, same host, {} objects: aggregate GB/s",
                fmt_size(size)
            ),
            &[
                "N",
                "put_from",
                "get_into",
                "memcpy w / r",
                "redis SET / GET",
                "put / redis",
                "get / redis",
                "mooncake put / get",
                "put / mooncake",
                "get / mooncake",
            ],
        );
        for &n in clients {
            let p = r.gbps(&format!("scale.mmc.put.n{n}"));
            let gg = r.gbps(&format!("scale.mmc.get.n{n}"));
            let (mw, mr) = (
                r.gbps(&format!("scale.memcpy.put.n{n}")),
                r.gbps(&format!("scale.memcpy.get.n{n}")),
            );
            let (rs, rg) = (
                r.gbps(&format!("scale.redis.set.n{n}")),
                r.gbps(&format!("scale.redis.get.n{n}")),
            );
            let (ms, mg) = (
                r.gbps(&format!("scale.mooncake.put.n{n}")),
                r.gbps(&format!("scale.mooncake.get.n{n}")),
            );
            t.row(vec![
                n.to_string(),
                g(p),
                g(gg),
                pair(g(mw), g(mr)),
                pair(g(rs), g(rg)),
                x(ratio(p, rs)),
                x(ratio(gg, rg)),
                pair(g(ms), g(mg)),
                x(ratio(p, ms)),
                x(ratio(gg, mg)),
            ]);
            scale.push(
                json!({"clients": n, "put_gbps": p, "get_gbps": gg, "memcpy_write_gbps": mw, "memcpy_read_gbps": mr,
                "redis_set_gbps": rs, "redis_get_gbps": rg, "mooncake_put_gbps": ms, "mooncake_get_gbps": mg}),
            );
        }
        text.push_str(&t.done());
    }
    scale
}

/// Cross host, by object size and by client count: GB/s, latency and the
/// ratio table; the JSON `cross` rows.
fn cross_host(r: &Rows<'_>, clients: &[usize], cross_sizes: &[u64], text: &mut String) -> Vec<Value> {
    let mut cross = Vec::new();
    let cross_keys: Vec<(String, String, u64)> = cross_sizes
        .iter()
        .map(|&s| (fmt_size(s), tag(s), s))
        .chain(
            clients
                .iter()
                .filter(|&&n| n > 1)
                .map(|&n| (format!("{n} procs"), format!("n{n}"), 0)),
        )
        .collect();
    if cross_keys
        .iter()
        .any(|(_, k, _)| r.gbps(&format!("cross.put.{k}")).is_some())
    {
        let mut t = Table::new(
            "Cross host (TCP over a veth pair between two network namespaces): GB/s; latency p50 / p99 in us",
            &[
                "size / clients",
                "put_from",
                "get_into",
                "put lat",
                "get lat",
                "raw stream B->A / A->B",
                "raw req/resp B->A / A->B",
                "redis SET / GET",
                "mooncake put / get",
            ],
        );
        let mut q = Table::new(
            "Cross host: ratios (MemCache / baseline, same run)",
            &[
                "size / clients",
                "put / stream",
                "get / stream",
                "put / req-resp",
                "get / req-resp",
                "put / redis",
                "get / redis",
                "put / mooncake",
                "get / mooncake",
            ],
        );
        for (label, kk, s) in &cross_keys {
            let p = r.gbps(&format!("cross.put.{kk}"));
            let gg = r.gbps(&format!("cross.get.{kk}"));
            let (ws, wr) = r.gbps2("cross.raw.send", "cross.raw.recv", kk);
            let (qs, qr) = r.gbps2("cross.rr.send", "cross.rr.recv", kk);
            let (rs, rg) = r.gbps2("cross.redis.set", "cross.redis.get", kk);
            let (ms, mg) = r.gbps2("cross.mooncake.put", "cross.mooncake.get", kk);
            t.row(vec![
                label.clone(),
                g(p),
                g(gg),
                r.lat(&format!("cross.put.{kk}")),
                r.lat(&format!("cross.get.{kk}")),
                pair(g(ws), g(wr)),
                pair(g(qs), g(qr)),
                pair(g(rs), g(rg)),
                pair(g(ms), g(mg)),
            ]);
            q.row(vec![
                label.clone(),
                x(ratio(p, ws)),
                x(ratio(gg, wr)),
                x(ratio(p, qs)),
                x(ratio(gg, qr)),
                x(ratio(p, rs)),
                x(ratio(gg, rg)),
                x(ratio(p, ms)),
                x(ratio(gg, mg)),
            ]);
            cross.push(json!({"what": label, "size": s, "put_gbps": p, "get_gbps": gg, "raw_send_gbps": ws, "raw_recv_gbps": wr,
                "raw_rr_send_gbps": qs, "raw_rr_recv_gbps": qr,
                "redis_set_gbps": rs, "redis_get_gbps": rg, "mooncake_put_gbps": ms, "mooncake_get_gbps": mg}));
        }
        text.push_str(&t.done());
        text.push_str(&q.done());
    }
    cross
}

/// The cross-host sizes measured in batches, with their keys per call.
fn cross_batched(r: &Rows<'_>, cross_sizes: &[u64]) -> Vec<(u64, u64)> {
    cross_sizes
        .iter()
        .filter_map(|&s| {
            r.0.get(format!("cross.putb.{}", tag(s)).as_str())
                .map(|row| (s, row.keys))
        })
        .collect()
}

/// Cross host, several objects per call: GB/s, latency and the ratio table;
/// the JSON `cross_batch` rows.
fn cross_host_batches(r: &Rows<'_>, batched: &[(u64, u64)], text: &mut String) -> Vec<Value> {
    let mut cross_batch = Vec::new();
    if let Some(&(_, b)) = batched.first() {
        let mut t = Table::new(
            &format!(
                "Cross host, {b} objects per call (one Alloc + one Finish, or one Lookup, per call; the transfers \
                 concurrent): GB/s; latency per call p50 / p99 in us"
            ),
            &[
                "size",
                "put_batch",
                "get_batch",
                "put lat",
                "get lat",
                "raw stream B->A / A->B",
                "redis MSET / MGET",
                "mooncake batch put / get",
            ],
        );
        let mut q = Table::new(
            "Cross host batches: ratios (MemCache / baseline, same run)",
            &[
                "size",
                "put / stream",
                "get / stream",
                "put / redis",
                "get / redis",
                "put / mooncake",
                "get / mooncake",
            ],
        );
        for &(s, keys) in batched {
            let kk = &tag(s);
            let label = format!("{keys} x {}", fmt_size(s));
            let (p, gg) = r.gbps2("cross.putb", "cross.getb", kk);
            let (ws, wr) = r.gbps2("cross.raw.send", "cross.raw.recv", kk);
            let (rs, rg) = r.gbps2("cross.redis.mset", "cross.redis.mget", kk);
            let (ms, mg) = r.gbps2("cross.mooncake.putb", "cross.mooncake.getb", kk);
            t.row(vec![
                label.clone(),
                g(p),
                g(gg),
                r.lat(&format!("cross.putb.{kk}")),
                r.lat(&format!("cross.getb.{kk}")),
                pair(g(ws), g(wr)),
                pair(g(rs), g(rg)),
                pair(g(ms), g(mg)),
            ]);
            q.row(vec![
                label.clone(),
                x(ratio(p, ws)),
                x(ratio(gg, wr)),
                x(ratio(p, rs)),
                x(ratio(gg, rg)),
                x(ratio(p, ms)),
                x(ratio(gg, mg)),
            ]);
            cross_batch.push(
                json!({"what": label, "size": s, "keys": keys, "put_gbps": p, "get_gbps": gg,
                "raw_send_gbps": ws, "raw_recv_gbps": wr, "redis_mset_gbps": rs, "redis_mget_gbps": rg,
                "mooncake_put_gbps": ms, "mooncake_get_gbps": mg}),
            );
        }
        text.push_str(&t.done());
        text.push_str(&q.done());
    }
    cross_batch
}

/// Control path: the round-trip floor and small operations (p50, p99, ops/s);
/// the JSON `latency` rows.
fn control_latency(r: &Rows<'_>, text: &mut String) -> Vec<Value> {
    let mut lat = Table::new(
        "Control path: round-trip latency floor and small operations (us)",
        &["what", "p50", "p99", "ops/s"],
    );
    let mut lat_json = Vec::new();
    for (id, what) in [
        (
            "batch.rtt",
            "raw TCP ping-pong, 64 B, two threads of one process (loopback)",
        ),
        ("cross.rtt", "raw TCP ping-pong, 64 B, between the two namespaces"),
        (
            "cross.exist1",
            "MemCache exist x1 between the namespaces (one control RPC over TCP)",
        ),
        (
            "cross.get1.4KiB",
            "MemCache get_into 4 KiB x1 between the namespaces (Lookup RPC + TCP transfer)",
        ),
        ("batch.exist1.4KiB", "MemCache exist x1 (one control RPC)"),
        (
            "batch.put1.4KiB",
            "MemCache put_from 4 KiB x1 (Alloc + Finish RPCs + memcpy)",
        ),
        ("batch.get1.4KiB", "MemCache get_into 4 KiB x1 (Lookup RPC + memcpy)"),
        ("shm.put.1MiB", "MemCache put_from 1 MiB"),
        ("shm.get.1MiB", "MemCache get_into 1 MiB"),
        ("memcpy.wswrite.1MiB", "memcpy 1 MiB (ws-write)"),
    ] {
        if let Some(row) = r.0.get(id) {
            lat.row(vec![
                what.into(),
                us(row.m.p50_us),
                us(row.m.p99_us),
                k(Some(row.m.ops as f64 / row.m.busy_s.max(1e-12))),
            ]);
            lat_json.push(json!({"id": id, "what": what, "p50_us": row.m.p50_us, "p99_us": row.m.p99_us}));
        }
    }
    if !lat_json.is_empty() {
        text.push_str(&lat.done());
    }
    lat_json
}

/// The targets of issue #5, each checked over the ratios of this run.
fn target_checks(r: &Rows<'_>, sizes: &[u64], cross_sizes: &[u64], batched: &[(u64, u64)]) -> [Check; 15] {
    let big: Vec<u64> = sizes
        .iter()
        .copied()
        .filter(|&s| (1 << 20..=64 << 20).contains(&s))
        .collect();
    let sweep_ratio = |mine: &str, base: &str, s: u64| {
        ratio(
            r.gbps(&format!("{mine}.{}", tag(s))),
            r.gbps(&format!("{base}.{}", tag(s))),
        )
    };
    let mut t1 = Vec::new();
    for &s in &big {
        t1.push((format!("put {}", fmt_size(s)), sweep_ratio("shm.put", "shm.wswrite", s)));
        t1.push((format!("get {}", fmt_size(s)), sweep_ratio("shm.get", "shm.wsread", s)));
    }
    let mut t2 = Vec::new();
    for &s in cross_sizes.iter().filter(|&&s| s >= 1 << 20) {
        let tg = tag(s);
        t2.push((
            format!("put {}", fmt_size(s)),
            r.ratio2("cross.put", "cross.raw.send", &tg),
        ));
        t2.push((
            format!("get {}", fmt_size(s)),
            r.ratio2("cross.get", "cross.raw.recv", &tg),
        ));
    }
    let b4 = |mine: &str, mc: &str| ratio(r.kps(&format!("{mine}.4KiB")), r.kps(&format!("{mc}.4KiB")));
    let t3a = vec![
        ("put".to_string(), b4("batch.put", "mooncake.putb")),
        ("get".to_string(), b4("batch.get", "mooncake.getb")),
    ];
    let t3b = vec![("exist".to_string(), b4("batch.exist", "mooncake.existb"))];
    let mut t4p = Vec::new();
    let mut t4g = Vec::new();
    for &s in &big {
        t4p.push((fmt_size(s), sweep_ratio("shm.put", "mooncake.put", s)));
        t4g.push((fmt_size(s), sweep_ratio("shm.get", "mooncake.get", s)));
    }
    if r.gbps("layers.put").is_some() {
        t4p.push((
            "layered block".into(),
            ratio(r.gbps("layers.put"), r.gbps("layers.mooncake.put")),
        ));
        t4g.push((
            "layered block".into(),
            ratio(r.gbps("layers.get"), r.gbps("layers.mooncake.get")),
        ));
    }
    let mut t4xp = Vec::new();
    let mut t4xg = Vec::new();
    for &s in cross_sizes {
        let tg = tag(s);
        t4xp.push((fmt_size(s), r.ratio2("cross.put", "cross.mooncake.put", &tg)));
        t4xg.push((fmt_size(s), r.ratio2("cross.get", "cross.mooncake.get", &tg)));
    }
    // The same targets for objects moved several per call across hosts.
    let mut t2b = Vec::new();
    let mut t4xpb = Vec::new();
    let mut t4xgb = Vec::new();
    for &(s, keys) in batched {
        let tg = tag(s);
        let what = |op: &str| format!("{op} {keys} x {}", fmt_size(s));
        t2b.push((what("put"), r.ratio2("cross.putb", "cross.raw.send", &tg)));
        t2b.push((what("get"), r.ratio2("cross.getb", "cross.raw.recv", &tg)));
        t4xpb.push((what("put"), r.ratio2("cross.putb", "cross.mooncake.putb", &tg)));
        t4xgb.push((what("get"), r.ratio2("cross.getb", "cross.mooncake.getb", &tg)));
    }
    let mut t5 = Vec::new();
    let mut t5a = Vec::new();
    let mut t1a = Vec::new();
    for &s in sizes.iter().filter(|&&s| s >= 64 << 10) {
        t5.push((format!("put {}", fmt_size(s)), sweep_ratio("shm.put", "redis.set", s)));
        t5.push((format!("get {}", fmt_size(s)), sweep_ratio("shm.get", "redis.get", s)));
        t5a.push((format!("put {}", fmt_size(s)), sweep_ratio("shm.putac", "redis.set", s)));
    }
    for &s in &big {
        t1a.push((
            format!("put {}", fmt_size(s)),
            sweep_ratio("shm.putac", "shm.wswriteac", s),
        ));
    }
    let t3c = vec![("put".to_string(), b4("batch.putac", "mooncake.putb"))];
    [
        check(
            "same-host put_from / get_into, 1 MiB..64 MiB, >= 0.85x memcpy (same working set)",
            &t1,
            0.85,
            false,
        ),
        check(
            "cross-host TCP put / get, 1 MiB+, >= 0.80x raw TCP stream",
            &t2,
            0.80,
            false,
        ),
        check(
            "32 x 4 KiB batches, put and get >= 3x Mooncake keys/s",
            &t3a,
            3.0,
            false,
        ),
        check("32 x 4 KiB batches, exist >= 2x Mooncake keys/s", &t3b, 2.0, false),
        check(
            "large objects (1 MiB+, layered block), same host: put >= 5x Mooncake",
            &t4p,
            5.0,
            false,
        ),
        check(
            "large objects (1 MiB+, layered block), same host: get >= 1x Mooncake",
            &t4g,
            1.0,
            false,
        ),
        check("large objects, cross host: put >= 5x Mooncake", &t4xp, 5.0, false),
        check("large objects, cross host: get >= 1x Mooncake", &t4xg, 1.0, false),
        check(
            "(batched) cross-host TCP put_batch / get_batch, 1 MiB+, >= 0.80x raw TCP stream",
            &t2b,
            0.80,
            false,
        ),
        check(
            "(batched) large objects, cross host: put_batch >= 5x Mooncake batch_put_from",
            &t4xpb,
            5.0,
            false,
        ),
        check(
            "(batched) large objects, cross host: get_batch >= 1x Mooncake batch_get_into",
            &t4xgb,
            1.0,
            false,
        ),
        check(
            "beats Redis (put vs SET, get vs GET) at every size >= 64 KiB, same host",
            &t5,
            1.0,
            true,
        ),
        check(
            "(opt-in async_commit) same-host put_from 1 MiB..64 MiB >= 0.85x memcpy",
            &t1a,
            0.85,
            false,
        ),
        check("(opt-in async_commit) 32 x 4 KiB put >= 3x Mooncake", &t3c, 3.0, false),
        check(
            "(opt-in async_commit) put beats Redis SET at every size >= 64 KiB",
            &t5a,
            1.0,
            true,
        ),
    ]
}

/// The table of the targets (left out when none was measured); the JSON
/// `targets` rows.
fn targets_table(checks: &[Check], text: &mut String) -> Vec<Value> {
    if checks.iter().any(|c| c.2 != "n/a") {
        let mut t = Table::new(
            "Targets of issue #5 (ratios from this run)",
            &["target", "status", "measured"],
        );
        for (name, detail, status, _) in checks {
            t.row(vec![name.clone(), status.to_string(), detail.clone()]);
        }
        text.push_str(&t.done());
    }
    checks
        .iter()
        .map(|(name, detail, _, j)| json!({"target": name, "detail": detail, "result": j}))
        .collect()
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
        let rows = vec![
            Row::new(
                "cross.raw.send.1MiB".parse().unwrap(),
                "cross",
                "raw",
                MIB,
                1,
                Measured::of(1000, 1.0),
            ),
            Row::new(
                "cross.raw.recv.1MiB".parse().unwrap(),
                "cross",
                "raw",
                MIB,
                1,
                Measured::of(1000, 1.0),
            ),
            Row::new(
                "cross.putb.1MiB".parse().unwrap(),
                "cross",
                "put",
                MIB,
                8,
                Measured::of(100, 1.0),
            ),
            Row::new(
                "cross.getb.1MiB".parse().unwrap(),
                "cross",
                "get",
                MIB,
                8,
                Measured::of(150, 1.0),
            ),
            Row::new(
                "cross.mooncake.putb.1MiB".parse().unwrap(),
                "cross",
                "mc",
                MIB,
                8,
                Measured::of(10, 1.0),
            ),
            Row::new(
                "cross.mooncake.getb.1MiB".parse().unwrap(),
                "cross",
                "mc",
                MIB,
                8,
                Measured::of(10, 1.0),
            ),
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
