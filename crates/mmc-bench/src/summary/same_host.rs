//! The same-host tables: the object size sweep (shm) with its ratios, the
//! batches, the layered KV block and N client processes.

use super::{g, k, pair, ratio, x, Rows, Table};
use crate::report::fmt_size;
use crate::rows::{At, Kind};
use serde_json::{json, Value};

/// Same host (shm): the object size sweep (GB/s, latency, the baselines) and
/// its ratio table; the JSON `sweep` rows.
pub(super) fn sweep(r: &Rows<'_>, sizes: &[u64], text: &mut String) -> Vec<Value> {
    let mut sweep = Vec::new();
    if sizes.iter().any(|&s| r.gbps(Kind::ShmPut.size(s)).is_some()) {
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
            let at = At::Size(s);
            let (put_id, get_id) = (Kind::ShmPut.at(at), Kind::ShmGet.at(at));
            let (put, get) = (r.gbps(put_id), r.gbps(get_id));
            // The memcpy each was interleaved with (`workloads::interleaved`).
            let (mw, mr) = r.gbps2(Kind::ShmWsWrite, Kind::ShmWsRead, at);
            let aw = r.gbps(Kind::ShmWsWriteAc.at(at));
            let (cw, cr) = r.gbps2(Kind::MemcpyMmcWrite, Kind::MemcpyMmcRead, at);
            let (rs, rg) = r.gbps2(Kind::RedisSet, Kind::RedisGet, at);
            let (ms, mg) = r.gbps2(Kind::MooncakePut, Kind::MooncakeGet, at);
            let ac = r.gbps(Kind::ShmPutAc.at(at));
            t.row(vec![
                fmt_size(s),
                g(put),
                g(get),
                r.lat(put_id),
                r.lat(get_id),
                match ac {
                    Some(v) => format!("{} ({})", g(Some(v)), r.lat(Kind::ShmPutAc.at(at))),
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
                "put_p50_us": r.get(put_id).and_then(|x| x.m.p50_us),
                "put_p99_us": r.get(put_id).and_then(|x| x.m.p99_us),
                "get_p50_us": r.get(get_id).and_then(|x| x.m.p50_us),
                "get_p99_us": r.get(get_id).and_then(|x| x.m.p99_us),
                "memcpy_write_gbps": mw, "memcpy_read_gbps": mr,
                "mmc_copy_write_gbps": cw, "mmc_copy_read_gbps": cr,
                "memcpy_hot_gbps": r.gbps(Kind::MemcpyHot.at(at)),
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
pub(super) fn batches(r: &Rows<'_>, batch_values: &[u64], text: &mut String) -> Vec<Value> {
    let mut batches = Vec::new();
    if batch_values.iter().any(|&v| r.kps(Kind::BatchPut.size(v)).is_some()) {
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
            for (op, mine, one, rd, mc) in [
                (
                    "put",
                    Kind::BatchPut,
                    Kind::BatchPut1,
                    Kind::RedisMset,
                    Kind::MooncakePutB,
                ),
                (
                    "put, async_commit",
                    Kind::BatchPutAc,
                    Kind::BatchPut1,
                    Kind::RedisMset,
                    Kind::MooncakePutB,
                ),
                (
                    "get",
                    Kind::BatchGet,
                    Kind::BatchGet1,
                    Kind::RedisMget,
                    Kind::MooncakeGetB,
                ),
                (
                    "exist",
                    Kind::BatchExist,
                    Kind::BatchExist1,
                    Kind::RedisExists,
                    Kind::MooncakeExistB,
                ),
            ] {
                let a = r.kps(mine.size(v));
                let o = r.kps(one.size(v));
                let b = r.kps(rd.size(v));
                let c = r.kps(mc.size(v));
                let keys = r.get(mine.size(v)).map(|x| x.keys).unwrap_or(0);
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
pub(super) fn layered_block(r: &Rows<'_>, text: &mut String) -> Value {
    let mut layers = Value::Null;
    if r.gbps(Kind::LayersPut.one()).is_some() {
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
                Kind::LayersPut,
                Kind::LayersMemcpyPut,
                Kind::LayersRedisSet,
                Kind::LayersMooncakePut,
            ),
            (
                "get",
                Kind::LayersGet,
                Kind::LayersMemcpyGet,
                Kind::LayersRedisGet,
                Kind::LayersMooncakeGet,
            ),
        ] {
            let (mine, mc, rd, mk) = (mine.one(), mc.one(), rd.one(), mk.one());
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
        let gbps = |kind: Kind| r.gbps(kind.one());
        layers = json!({
            "put_gbps": gbps(Kind::LayersPut), "get_gbps": gbps(Kind::LayersGet),
            "memcpy_put_gbps": gbps(Kind::LayersMemcpyPut), "memcpy_get_gbps": gbps(Kind::LayersMemcpyGet),
            "redis_set_gbps": gbps(Kind::LayersRedisSet), "redis_get_gbps": gbps(Kind::LayersRedisGet),
            "mooncake_put_gbps": gbps(Kind::LayersMooncakePut), "mooncake_get_gbps": gbps(Kind::LayersMooncakeGet),
        });
        text.push_str(&t.done());
    }
    layers
}

/// N client processes on the same host: aggregate GB/s; the JSON `scale` rows.
pub(super) fn client_scaling(r: &Rows<'_>, clients: &[usize], text: &mut String) -> Vec<Value> {
    let mut scale = Vec::new();
    if clients.iter().any(|&n| r.gbps(Kind::ScaleMmcPut.procs(n)).is_some()) {
        let size = r
            .get(Kind::ScaleMmcPut.procs(1))
            .or(r.get(Kind::ScaleMmcPut.procs(clients[0])))
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
            let at = At::Procs(n);
            let (p, gg) = r.gbps2(Kind::ScaleMmcPut, Kind::ScaleMmcGet, at);
            let (mw, mr) = r.gbps2(Kind::ScaleMemcpyPut, Kind::ScaleMemcpyGet, at);
            let (rs, rg) = r.gbps2(Kind::ScaleRedisSet, Kind::ScaleRedisGet, at);
            let (ms, mg) = r.gbps2(Kind::ScaleMooncakePut, Kind::ScaleMooncakeGet, at);
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
