//! Batches of small keys: put_batch, get_into_batch and exist_batch beside
//! the same call on one key, put_batch through an async-commit client, and
//! `exist` through the async API on a current-thread runtime.

use super::objects::{get_measure, put_measure};
use super::tcp::raw_ping_pong;
use super::{check, emptied, progress, refs, remove, tag, SMALL_KEYS};
use crate::cluster::Cluster;
use crate::measure::{Budget, Measured, Recorder};
use crate::report::Row;
use crate::rows::Kind;
use crate::worker::{fill, stamp};
use mmc_local::{BlockingObjectStore, PutOptions};
use std::time::Instant;

fn batch_put_rounds(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    prefix: &str,
    batch: usize,
    src: &[u8],
) -> Result<Measured, String> {
    let opts = PutOptions::default();
    let per_round = (SMALL_KEYS / batch).max(1);
    let values: Vec<&[u8]> = vec![src; batch];
    let mut rec = Recorder::start(budget, Some(peer));
    let mut round = 0;
    while rec.more() {
        let keys: Vec<String> = (0..per_round * batch)
            .map(|j| format!("{prefix}-{round}-{j}"))
            .collect();
        let mut done = 0;
        for chunk in keys.chunks(batch) {
            if !rec.more() {
                break;
            }
            let r = refs(chunk);
            rec.time(|| check("put_batch", c.put_batch(&r, &values, &opts)))?;
            done += chunk.len();
        }
        remove(c, &keys[..done])?;
        round += 1;
    }
    Ok(rec.finish())
}

fn batch_get_loop(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    batch: usize,
    buf: &mut [u8],
) -> Result<Measured, String> {
    let groups: Vec<Vec<&str>> = keys.chunks(batch).filter(|g| g.len() == batch).map(refs).collect();
    let vlen = buf.len() / batch;
    let mut rec = Recorder::start(budget, Some(peer));
    let mut i = 0;
    while rec.more() {
        let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(vlen).collect();
        rec.time(|| check("get_into_batch", c.get_into_batch(&groups[i % groups.len()], &mut bufs)))?;
        i += 1;
    }
    Ok(rec.finish())
}

fn batch_exist_loop(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    batch: usize,
) -> Result<Measured, String> {
    let groups: Vec<Vec<&str>> = keys.chunks(batch).filter(|g| g.len() == batch).map(refs).collect();
    let mut rec = Recorder::start(budget, Some(peer));
    let mut i = 0;
    while rec.more() {
        let g = &groups[i % groups.len()];
        let v = rec.time(|| c.exist_batch(g)).map_err(|e| format!("exist_batch: {e}"))?;
        if v.iter().any(|x| !x) {
            return Err("exist_batch: a key that was put reads as absent".into());
        }
        i += 1;
    }
    Ok(rec.finish())
}

/// Batches of `batch` keys of `value` bytes: put_batch (fresh keys),
/// get_into_batch and exist_batch, each beside the same call on one key;
/// also put_batch through `ca` (an async-commit client) when given. The
/// raw round trip and the async `exist` run when `first`.
pub fn batch(
    cluster: &Cluster,
    c: &BlockingObjectStore,
    (batch, value): (usize, u64),
    budget: Budget,
    first: bool,
    ca: Option<&BlockingObjectStore>,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let run = BatchRun {
        cluster,
        c,
        peer: cluster.provider().pid,
        batch,
        value,
        budget,
    };
    let peer = run.peer;
    let t = tag(value);
    let mut src = vec![0u8; value as usize];
    fill(&mut src, 11);

    let (put1, putb, putac) = run.puts(&t, &src, ca, notes)?;

    let n = (SMALL_KEYS / batch).max(1) * batch;
    let keys: Vec<String> = (0..n).map(|j| format!("small-get-{j}")).collect();
    let mut buf = run.fill_checked(&keys, &src)?;

    progress(&format!("get_into {t} x1 and get_into_batch {batch} x {t}"));
    let mut one = vec![0u8; value as usize];
    let get1 = get_measure(budget, peer, c, &keys, &mut one)?;
    batch_get_loop(budget.warmup(), peer, c, &keys, batch, &mut buf)?;
    let getb = batch_get_loop(budget, peer, c, &keys, batch, &mut buf)?;

    let rtt = if first {
        progress("raw tcp ping-pong (64 B round trips)");
        Some(raw_ping_pong(budget)?)
    } else {
        None
    };
    let (ex1, exb, exa) = run.exists(&keys, first)?;
    emptied(cluster, c, notes)?;
    if first {
        notes.push(format!(
        "batch: puts use fresh keys in rounds of {n} keys removed (untimed) after each round; gets and exists \
         rotate over {n} live keys; `x1` rows are the same call with one key (exist x1 is one control-RPC round trip, compared with a raw loopback TCP round trip between two threads of this process); `exist x1, async 1-thread rt` is the same RPC through the async ObjectStore whose tasks run on a current-thread runtime driven by the calling thread (a separate pure client, registered last)"
        ));
    }
    let figures = Figures {
        put1,
        putb,
        putac,
        get1,
        getb,
        rtt,
        ex1,
        exb,
        exa,
    };
    Ok(figures.rows(batch, value))
}

/// What the steps of one batch shape measure with.
struct BatchRun<'a> {
    cluster: &'a Cluster,
    c: &'a BlockingObjectStore,
    peer: u32,
    batch: usize,
    value: u64,
    budget: Budget,
}

impl BatchRun<'_> {
    /// put_from x1 and put_batch of fresh keys, and put_batch through `ca`
    /// (an async-commit client) when given.
    fn puts(
        &self,
        t: &str,
        src: &[u8],
        ca: Option<&BlockingObjectStore>,
        notes: &mut Vec<String>,
    ) -> Result<(Measured, Measured, Option<Measured>), String> {
        let (cluster, c, peer, batch, budget) = (self.cluster, self.c, self.peer, self.batch, self.budget);
        progress(&format!("put {t} x1 and put_batch {batch} x {t} (fresh keys)"));
        let put1 = put_measure(budget, peer, c, "small-put1", SMALL_KEYS, src)?;
        batch_put_rounds(budget.warmup(), peer, c, "small-putb-warm", batch, src)?;
        let putb = batch_put_rounds(budget, peer, c, "small-putb", batch, src)?;
        emptied(cluster, c, notes)?;
        let putac = match ca {
            Some(ca) => {
                progress(&format!("put_batch {batch} x {t}, async_commit client"));
                batch_put_rounds(budget.warmup(), peer, ca, "small-putac-warm", batch, src)?;
                let m = batch_put_rounds(budget, peer, ca, "small-putac", batch, src)?;
                emptied(cluster, ca, notes)?;
                Some(m)
            }
            None => None,
        };
        Ok((put1, putb, putac))
    }

    /// Puts `keys` in batches, each value `src` stamped with its key's index,
    /// and checks that the first batch reads back; returns the buffer the
    /// batch gets read into.
    fn fill_checked(&self, keys: &[String], src: &[u8]) -> Result<Vec<u8>, String> {
        let (c, batch, value) = (self.c, self.batch, self.value);
        let values: Vec<Vec<u8>> = (0..keys.len())
            .map(|j| {
                let mut v = src.to_vec();
                stamp(&mut v, j as u64);
                v
            })
            .collect();
        for (kc, vc) in keys.chunks(batch).zip(values.chunks(batch)) {
            let vr: Vec<&[u8]> = vc.iter().map(Vec::as_slice).collect();
            check("put_batch", c.put_batch(&refs(kc), &vr, &PutOptions::default()))?;
        }
        let mut buf = vec![0u8; batch * value as usize];
        {
            let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(value as usize).collect();
            check("get_into_batch", c.get_into_batch(&refs(&keys[..batch]), &mut bufs))?;
        }
        for (j, got) in buf.chunks(value as usize).enumerate() {
            if got != values[j].as_slice() {
                return Err(format!(
                    "get_into_batch: {} returned different bytes than were put",
                    keys[j]
                ));
            }
        }
        Ok(buf)
    }

    /// exist x1 and exist_batch, and (`first`) `exist` through the async API.
    fn exists(&self, keys: &[String], first: bool) -> Result<(Measured, Measured, Option<Measured>), String> {
        let (cluster, c, peer, batch, budget) = (self.cluster, self.c, self.peer, self.batch, self.budget);
        progress(&format!("exist x1 and exist_batch {batch}"));
        batch_exist_loop(budget.warmup(), peer, c, keys, 1)?;
        let ex1 = batch_exist_loop(budget, peer, c, keys, 1)?;
        batch_exist_loop(budget.warmup(), peer, c, keys, batch)?;
        let exb = batch_exist_loop(budget, peer, c, keys, batch)?;
        let exa = if first {
            Some(exist_async(cluster, peer, keys, budget)?)
        } else {
            None
        };
        Ok((ex1, exb, exa))
    }
}

/// The figures of one batch shape (`None`: not measured in this shape).
struct Figures {
    put1: Measured,
    putb: Measured,
    putac: Option<Measured>,
    get1: Measured,
    getb: Measured,
    rtt: Option<Measured>,
    ex1: Measured,
    exb: Measured,
    exa: Option<Measured>,
}

impl Figures {
    /// The rows of `batch` keys of `value` bytes, in the report's order.
    fn rows(self, batch: usize, value: u64) -> Vec<Row> {
        let Figures {
            put1,
            putb,
            putac,
            get1,
            getb,
            rtt,
            ex1,
            exb,
            exa,
        } = self;
        let b = batch as u64;
        let g = value;
        let mut rows = vec![
            Row::new(
                Kind::BatchPut1.size(value),
                "batch",
                "MemCache put_from x1",
                value,
                1,
                put1,
            )
            .group(g),
            Row::new(
                Kind::BatchPut.size(value),
                "batch",
                format!("MemCache put_batch x{batch}"),
                value,
                b,
                putb,
            )
            .vs("x1", Kind::BatchPut1.size(value))
            .vs("redis MSET", Kind::RedisMset.size(value))
            .vs("mooncake", Kind::MooncakePutB.size(value))
            .group(g),
            Row::new(
                Kind::BatchGet1.size(value),
                "batch",
                "MemCache get_into x1",
                value,
                1,
                get1,
            )
            .group(g),
            Row::new(
                Kind::BatchGet.size(value),
                "batch",
                format!("MemCache get_into_batch x{batch}"),
                value,
                b,
                getb,
            )
            .vs("x1", Kind::BatchGet1.size(value))
            .vs("redis MGET", Kind::RedisMget.size(value))
            .vs("mooncake", Kind::MooncakeGetB.size(value))
            .group(g),
        ];
        if let Some(m) = putac {
            rows.push(
                Row::new(
                    Kind::BatchPutAc.size(value),
                    "batch",
                    format!("MemCache put_batch x{batch}, async_commit"),
                    value,
                    b,
                    m,
                )
                .vs("default", Kind::BatchPut.size(value))
                .vs("redis MSET", Kind::RedisMset.size(value))
                .vs("mooncake", Kind::MooncakePutB.size(value))
                .group(g),
            );
        }
        if let Some(rtt) = rtt {
            rows.push(Row::new(Kind::BatchRtt.one(), "batch", "raw tcp ping-pong 64 B", 0, 1, rtt).group(g));
        }
        rows.push(
            Row::new(Kind::BatchExist1.size(value), "batch", "MemCache exist x1", 0, 1, ex1)
                .vs("raw rtt", Kind::BatchRtt.one())
                .group(g),
        );
        rows.push(
            Row::new(
                Kind::BatchExist.size(value),
                "batch",
                format!("MemCache exist_batch x{batch}"),
                0,
                b,
                exb,
            )
            .vs("x1", Kind::BatchExist1.size(value))
            .vs("redis EXISTS", Kind::RedisExists.size(value))
            .vs("mooncake", Kind::MooncakeExistB.size(value))
            .group(g),
        );
        if let Some(exa) = exa {
            rows.push(
                Row::new(
                    Kind::BatchExistAsync.size(value),
                    "batch",
                    "MemCache exist x1, async 1-thread rt",
                    0,
                    1,
                    exa,
                )
                .vs("raw rtt", Kind::BatchRtt.one())
                .vs("x1", Kind::BatchExist1.size(value))
                .group(g),
            );
        }
        rows
    }
}

/// `exist` of one key through the async API, with the client's tasks on a
/// current-thread runtime driven by the calling thread: the same RPC as
/// `exist x1` without the hops between the caller and the client runtime's
/// worker threads. Registers one more (pure) client: run it last.
fn exist_async(cluster: &Cluster, peer: u32, keys: &[String], budget: Budget) -> Result<Measured, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let cfg = mmc_config::LocalConfig {
            spin_wait_us: mmc_config::LocalConfig::default().spin_wait_us,
            transfer_congestion: mmc_config::LocalConfig::default().transfer_congestion,
            ..cluster.client_config(mmc_config::Protocol::Auto)
        };
        let s = mmc_local::ObjectStore::connect_async(cfg)
            .await
            .map_err(|e| format!("async client: {e}"))?;
        let run = |budget: Budget| {
            let s = &s;
            async move {
                let mut rec = Recorder::start(budget, Some(peer));
                let mut i = 0;
                while rec.more() {
                    let k = &keys[i % keys.len()];
                    let t = Instant::now();
                    let found = s.exist(k).await.map_err(|e| format!("exist {k}: {e}"))?;
                    rec.record(t.elapsed());
                    if !found {
                        return Err(format!("exist {k}: a key that was put reads as absent"));
                    }
                    i += 1;
                }
                Ok::<Measured, String>(rec.finish())
            }
        };
        run(budget.warmup()).await?;
        let m = run(budget).await;
        s.close().await;
        m
    })
}
