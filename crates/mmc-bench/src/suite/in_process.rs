//! The phases a [`Worker`] runs in this process: Redis beside the
//! same-host figures, and the layered KV block (MemCache beside memcpy
//! and Redis).

use super::{cmd, layered, with_batch};
use crate::cluster::Cluster;
use crate::measure::{Budget, Measured};
use crate::report::Row;
use crate::rows::Kind;
use crate::worker::{Cmd, Memcpy, Mmc, Redis, Target, Worker, BLOCK_BYTES};
use crate::workloads::{progress, slots_for, tag, SMALL_KEYS};
use mmc_local::BlockingObjectStore;

/// A warm-up (a tenth of the budget) and the measurement, in this process.
pub fn local<T: Target>(w: &mut Worker<T>, c: &Cmd, budget: Budget) -> Result<Measured, String> {
    let wb = budget.warmup();
    w.exec(&Cmd {
        seconds: wb.seconds,
        iters: wb.iters,
        min_ops: Some(wb.min_ops),
        prefix: format!("{}-warm", c.prefix),
        ..c.clone()
    })?;
    Ok(w.exec(&Cmd {
        seconds: budget.seconds,
        iters: budget.iters,
        min_ops: Some(budget.min_ops),
        ..c.clone()
    })?
    .measured())
}

fn untimed<T: Target>(w: &mut Worker<T>, c: &Cmd) -> Result<(), String> {
    w.exec(c).map(|_| ())
}

/// SET / GET of `size`-byte values, the same rotation as the shm workload.
pub fn redis_size(w: &mut Worker<Redis>, size: u64, budget: Budget, ws: u64) -> Result<Vec<Row>, String> {
    let t = tag(size);
    let slots = slots_for(ws, size);
    progress(&format!("redis SET / GET {t}"));
    let set = local(w, &cmd("put", size, slots, &format!("rs-{t}")), budget)?;
    untimed(w, &cmd("fill", size, slots, &format!("rg-{t}")))?;
    let get = local(w, &cmd("get", size, slots, &format!("rg-{t}")), budget)?;
    untimed(w, &cmd("clear", 0, 0, ""))?;
    Ok(vec![
        Row::new(Kind::RedisSet.size(size), "shm", "redis SET", size, 1, set).group(size),
        Row::new(Kind::RedisGet.size(size), "shm", "redis GET", size, 1, get).group(size),
    ])
}

/// MSET / MGET / EXISTS of `batch` keys, the rotation of the batch workload.
pub fn redis_batch(w: &mut Worker<Redis>, batch: usize, value: u64, budget: Budget) -> Result<Vec<Row>, String> {
    let t = tag(value);
    let n = (SMALL_KEYS / batch).max(1) * batch;
    progress(&format!("redis MSET / MGET / EXISTS {batch} x {t}"));
    let b = batch as u64;
    let put = local(
        w,
        &with_batch(cmd("put_batch", value, n, &format!("rbs-{t}")), batch),
        budget,
    )?;
    untimed(w, &cmd("fill", value, n, &format!("rbg-{t}")))?;
    let get = local(w, &with_batch(cmd("get_batch", value, n, ""), batch), budget)?;
    let ex = local(w, &with_batch(cmd("exist_batch", value, n, ""), batch), budget)?;
    untimed(w, &cmd("clear", 0, 0, ""))?;
    Ok(vec![
        Row::new(
            Kind::RedisMset.size(value),
            "batch",
            format!("redis MSET x{batch}"),
            value,
            b,
            put,
        )
        .group(value),
        Row::new(
            Kind::RedisMget.size(value),
            "batch",
            format!("redis MGET x{batch}"),
            value,
            b,
            get,
        )
        .group(value),
        Row::new(
            Kind::RedisExists.size(value),
            "batch",
            format!("redis EXISTS x{batch}"),
            0,
            b,
            ex,
        )
        .group(value),
    ])
}

/// put / get of layered blocks through `w` (fresh keys; rotation over filled ones).
fn layers_of<T: Target>(
    w: &mut Worker<T>,
    name: &str,
    budget: Budget,
    ws: u64,
) -> Result<(Measured, Measured), String> {
    let slots = slots_for(ws, BLOCK_BYTES);
    let put = local(w, &layered(cmd("put", 0, slots, &format!("{name}-lp"))), budget)?;
    untimed(w, &layered(cmd("fill", 0, slots, &format!("{name}-lg"))))?;
    let get = local(w, &layered(cmd("get", 0, slots, "")), budget)?;
    untimed(w, &cmd("clear", 0, 0, ""))?;
    Ok((put, get))
}

/// MemCache put / get of the layered block (one raw `Piece` per buffer,
/// i.e. put_from_layers / get_into_layers), beside the same gather / scatter
/// with memcpy and Redis SET / GET of the block written from / read into the
/// 122 buffers.
pub fn layers(
    cluster: &Cluster,
    c: &BlockingObjectStore,
    redis: Option<&mut Worker<Redis>>,
    budget: Budget,
    ws: u64,
) -> Result<Vec<Row>, String> {
    let sz = BLOCK_BYTES;
    let mut rows = Vec::new();
    progress("layered block: memcpy gather / scatter");
    let slots = slots_for(ws, sz);
    let mut mw = Worker::new(Memcpy::new(slots as u64 * sz), None);
    let (p, g) = layers_of(&mut mw, "m", budget, ws)?;
    rows.push(Row::new(
        Kind::LayersMemcpyPut.one(),
        "layers",
        "memcpy gather 122 bufs -> ws",
        sz,
        1,
        p,
    ));
    rows.push(Row::new(
        Kind::LayersMemcpyGet.one(),
        "layers",
        "memcpy scatter ws -> 122 bufs",
        sz,
        1,
        g,
    ));
    progress("layered block: MemCache put_from_layers / get_into_layers");
    let mut w = Worker::new(Mmc(c.clone()), Some(cluster.provider().pid));
    let (p, g) = layers_of(&mut w, "c", budget, ws)?;
    cluster.empty(c)?;
    rows.push(
        Row::new(Kind::LayersPut.one(), "layers", "MemCache put_from_layers", sz, 1, p)
            .vs("memcpy", Kind::LayersMemcpyPut.one())
            .vs("redis", Kind::LayersRedisSet.one())
            .vs("mooncake", Kind::LayersMooncakePut.one()),
    );
    rows.push(
        Row::new(Kind::LayersGet.one(), "layers", "MemCache get_into_layers", sz, 1, g)
            .vs("memcpy", Kind::LayersMemcpyGet.one())
            .vs("redis", Kind::LayersRedisGet.one())
            .vs("mooncake", Kind::LayersMooncakeGet.one()),
    );
    if let Some(r) = redis {
        progress("layered block: redis SET / GET (writev from / read into the 122 buffers)");
        let (p, g) = layers_of(r, "r", budget, ws)?;
        rows.push(Row::new(
            Kind::LayersRedisSet.one(),
            "layers",
            "redis SET of the block",
            sz,
            1,
            p,
        ));
        rows.push(Row::new(
            Kind::LayersRedisGet.one(),
            "layers",
            "redis GET of the block",
            sz,
            1,
            g,
        ));
    }
    Ok(rows)
}
