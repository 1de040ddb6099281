//! The performance targets (docs/benchmarks.md), each checked over the ratios of one run, and
//! their table.

use super::{ratio, Rows, Table};
use crate::report::fmt_size;
use crate::rows::{At, Kind};
use serde_json::{json, Value};

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

/// (label, ratio) pairs one target is checked over.
type Items = Vec<(String, Option<f64>)>;

/// The ratios of this run that each performance target is checked over,
/// named after the target (`t4xpb`: target 4, cross host, put, batched).
struct Ratios {
    t1: Items,
    t1a: Items,
    t2: Items,
    t2b: Items,
    t3a: Items,
    t3b: Items,
    t3c: Items,
    t4p: Items,
    t4g: Items,
    t4xp: Items,
    t4xg: Items,
    t4xpb: Items,
    t4xgb: Items,
    t5: Items,
    t5a: Items,
}

/// Gathers the [`Ratios`] from the rows of this run.
fn ratios(r: &Rows<'_>, sizes: &[u64], cross_sizes: &[u64], batched: &[(u64, u64)]) -> Ratios {
    let big: Vec<u64> = sizes
        .iter()
        .copied()
        .filter(|&s| (1 << 20..=64 << 20).contains(&s))
        .collect();
    let sweep_ratio = |mine: Kind, base: Kind, s: u64| r.ratio2(mine, base, At::Size(s));
    let mut t1 = Vec::new();
    for &s in &big {
        t1.push((
            format!("put {}", fmt_size(s)),
            sweep_ratio(Kind::ShmPut, Kind::ShmWsWrite, s),
        ));
        t1.push((
            format!("get {}", fmt_size(s)),
            sweep_ratio(Kind::ShmGet, Kind::ShmWsRead, s),
        ));
    }
    let mut t2 = Vec::new();
    for &s in cross_sizes.iter().filter(|&&s| s >= 1 << 20) {
        let at = At::Size(s);
        t2.push((
            format!("put {}", fmt_size(s)),
            r.ratio2(Kind::CrossPut, Kind::CrossRawSend, at),
        ));
        t2.push((
            format!("get {}", fmt_size(s)),
            r.ratio2(Kind::CrossGet, Kind::CrossRawRecv, at),
        ));
    }
    let b4 = |mine: Kind, mc: Kind| ratio(r.kps(mine.size(4 << 10)), r.kps(mc.size(4 << 10)));
    let t3a = vec![
        ("put".to_string(), b4(Kind::BatchPut, Kind::MooncakePutB)),
        ("get".to_string(), b4(Kind::BatchGet, Kind::MooncakeGetB)),
    ];
    let t3b = vec![("exist".to_string(), b4(Kind::BatchExist, Kind::MooncakeExistB))];
    let mut t4p = Vec::new();
    let mut t4g = Vec::new();
    for &s in &big {
        t4p.push((fmt_size(s), sweep_ratio(Kind::ShmPut, Kind::MooncakePut, s)));
        t4g.push((fmt_size(s), sweep_ratio(Kind::ShmGet, Kind::MooncakeGet, s)));
    }
    if r.gbps(Kind::LayersPut.one()).is_some() {
        t4p.push((
            "layered block".into(),
            r.ratio2(Kind::LayersPut, Kind::LayersMooncakePut, At::One),
        ));
        t4g.push((
            "layered block".into(),
            r.ratio2(Kind::LayersGet, Kind::LayersMooncakeGet, At::One),
        ));
    }
    let mut t4xp = Vec::new();
    let mut t4xg = Vec::new();
    for &s in cross_sizes {
        let at = At::Size(s);
        t4xp.push((fmt_size(s), r.ratio2(Kind::CrossPut, Kind::CrossMooncakePut, at)));
        t4xg.push((fmt_size(s), r.ratio2(Kind::CrossGet, Kind::CrossMooncakeGet, at)));
    }
    // The same targets for objects moved several per call across hosts.
    let mut t2b = Vec::new();
    let mut t4xpb = Vec::new();
    let mut t4xgb = Vec::new();
    for &(s, keys) in batched {
        let at = At::Size(s);
        let what = |op: &str| format!("{op} {keys} x {}", fmt_size(s));
        t2b.push((what("put"), r.ratio2(Kind::CrossPutB, Kind::CrossRawSend, at)));
        t2b.push((what("get"), r.ratio2(Kind::CrossGetB, Kind::CrossRawRecv, at)));
        t4xpb.push((what("put"), r.ratio2(Kind::CrossPutB, Kind::CrossMooncakePutB, at)));
        t4xgb.push((what("get"), r.ratio2(Kind::CrossGetB, Kind::CrossMooncakeGetB, at)));
    }
    let mut t5 = Vec::new();
    let mut t5a = Vec::new();
    let mut t1a = Vec::new();
    for &s in sizes.iter().filter(|&&s| s >= 64 << 10) {
        t5.push((
            format!("put {}", fmt_size(s)),
            sweep_ratio(Kind::ShmPut, Kind::RedisSet, s),
        ));
        t5.push((
            format!("get {}", fmt_size(s)),
            sweep_ratio(Kind::ShmGet, Kind::RedisGet, s),
        ));
        t5a.push((
            format!("put {}", fmt_size(s)),
            sweep_ratio(Kind::ShmPutAc, Kind::RedisSet, s),
        ));
    }
    for &s in &big {
        t1a.push((
            format!("put {}", fmt_size(s)),
            sweep_ratio(Kind::ShmPutAc, Kind::ShmWsWriteAc, s),
        ));
    }
    let t3c = vec![("put".to_string(), b4(Kind::BatchPutAc, Kind::MooncakePutB))];
    Ratios {
        t1,
        t1a,
        t2,
        t2b,
        t3a,
        t3b,
        t3c,
        t4p,
        t4g,
        t4xp,
        t4xg,
        t4xpb,
        t4xgb,
        t5,
        t5a,
    }
}

/// The performance targets, each checked over the ratios of this run.
pub(super) fn checks(r: &Rows<'_>, sizes: &[u64], cross_sizes: &[u64], batched: &[(u64, u64)]) -> [Check; 15] {
    let m = ratios(r, sizes, cross_sizes, batched);
    [
        check(
            "same-host put_from / get_into, 1 MiB..64 MiB, >= 0.85x memcpy (same working set)",
            &m.t1,
            0.85,
            false,
        ),
        check(
            "cross-host TCP put / get, 1 MiB+, >= 0.80x raw TCP stream",
            &m.t2,
            0.80,
            false,
        ),
        check(
            "32 x 4 KiB batches, put and get >= 3x Mooncake keys/s",
            &m.t3a,
            3.0,
            false,
        ),
        check("32 x 4 KiB batches, exist >= 2x Mooncake keys/s", &m.t3b, 2.0, false),
        check(
            "large objects (1 MiB+, layered block), same host: put >= 5x Mooncake",
            &m.t4p,
            5.0,
            false,
        ),
        check(
            "large objects (1 MiB+, layered block), same host: get >= 1x Mooncake",
            &m.t4g,
            1.0,
            false,
        ),
        check("large objects, cross host: put >= 5x Mooncake", &m.t4xp, 5.0, false),
        check("large objects, cross host: get >= 1x Mooncake", &m.t4xg, 1.0, false),
        check(
            "(batched) cross-host TCP put_batch / get_batch, 1 MiB+, >= 0.80x raw TCP stream",
            &m.t2b,
            0.80,
            false,
        ),
        check(
            "(batched) large objects, cross host: put_batch >= 5x Mooncake batch_put_from",
            &m.t4xpb,
            5.0,
            false,
        ),
        check(
            "(batched) large objects, cross host: get_batch >= 1x Mooncake batch_get_into",
            &m.t4xgb,
            1.0,
            false,
        ),
        check(
            "beats Redis (put vs SET, get vs GET) at every size >= 64 KiB, same host",
            &m.t5,
            1.0,
            true,
        ),
        check(
            "(opt-in async_commit) same-host put_from 1 MiB..64 MiB >= 0.85x memcpy",
            &m.t1a,
            0.85,
            false,
        ),
        check(
            "(opt-in async_commit) 32 x 4 KiB put >= 3x Mooncake",
            &m.t3c,
            3.0,
            false,
        ),
        check(
            "(opt-in async_commit) put beats Redis SET at every size >= 64 KiB",
            &m.t5a,
            1.0,
            true,
        ),
    ]
}

/// The table of the targets (left out when none was measured); the JSON
/// `targets` rows.
pub(super) fn table(checks: &[Check], text: &mut String) -> Vec<Value> {
    if checks.iter().any(|c| c.2 != "n/a") {
        let mut t = Table::new(
            "Performance targets (ratios from this run)",
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
