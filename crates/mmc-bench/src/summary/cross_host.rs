//! The cross-host tables (TCP between two network namespaces): by object
//! size and client count, and several objects per call.

use super::{g, pair, ratio, x, Rows, Table};
use crate::report::fmt_size;
use crate::rows::{At, Kind};
use serde_json::{json, Value};

/// Cross host, by object size and by client count: GB/s, latency and the
/// ratio table; the JSON `cross` rows.
pub(super) fn by_size_and_clients(
    r: &Rows<'_>,
    clients: &[usize],
    cross_sizes: &[u64],
    text: &mut String,
) -> Vec<Value> {
    let mut cross = Vec::new();
    let cross_keys: Vec<(String, At, u64)> = cross_sizes
        .iter()
        .map(|&s| (fmt_size(s), At::Size(s), s))
        .chain(
            clients
                .iter()
                .filter(|&&n| n > 1)
                .map(|&n| (format!("{n} procs"), At::Procs(n), 0)),
        )
        .collect();
    if cross_keys
        .iter()
        .any(|&(_, at, _)| r.gbps(Kind::CrossPut.at(at)).is_some())
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
        for (label, at, s) in &cross_keys {
            let at = *at;
            let (p, gg) = r.gbps2(Kind::CrossPut, Kind::CrossGet, at);
            let (ws, wr) = r.gbps2(Kind::CrossRawSend, Kind::CrossRawRecv, at);
            let (qs, qr) = r.gbps2(Kind::CrossRrSend, Kind::CrossRrRecv, at);
            let (rs, rg) = r.gbps2(Kind::CrossRedisSet, Kind::CrossRedisGet, at);
            let (ms, mg) = r.gbps2(Kind::CrossMooncakePut, Kind::CrossMooncakeGet, at);
            t.row(vec![
                label.clone(),
                g(p),
                g(gg),
                r.lat(Kind::CrossPut.at(at)),
                r.lat(Kind::CrossGet.at(at)),
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
pub(super) fn batched_sizes(r: &Rows<'_>, cross_sizes: &[u64]) -> Vec<(u64, u64)> {
    cross_sizes
        .iter()
        .filter_map(|&s| r.get(Kind::CrossPutB.size(s)).map(|row| (s, row.keys)))
        .collect()
}

/// Cross host, several objects per call: GB/s, latency and the ratio table;
/// the JSON `cross_batch` rows.
pub(super) fn batches(r: &Rows<'_>, batched: &[(u64, u64)], text: &mut String) -> Vec<Value> {
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
            let at = At::Size(s);
            let label = format!("{keys} x {}", fmt_size(s));
            let (p, gg) = r.gbps2(Kind::CrossPutB, Kind::CrossGetB, at);
            let (ws, wr) = r.gbps2(Kind::CrossRawSend, Kind::CrossRawRecv, at);
            let (rs, rg) = r.gbps2(Kind::CrossRedisMset, Kind::CrossRedisMget, at);
            let (ms, mg) = r.gbps2(Kind::CrossMooncakePutB, Kind::CrossMooncakeGetB, at);
            t.row(vec![
                label.clone(),
                g(p),
                g(gg),
                r.lat(Kind::CrossPutB.at(at)),
                r.lat(Kind::CrossGetB.at(at)),
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
