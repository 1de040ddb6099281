//! Client scaling: N MemCache client processes against a MetaService in
//! this process and M memory-provider processes, beside N memcpy
//! processes and N Redis clients.

use super::clients::{client_procs, put_get_n};
use super::Shape;
use crate::cluster::Cluster;
use crate::measure::Measured;
use crate::report::{fmt_size, Row};
use crate::rows::Kind;
use crate::workloads::{progress, tag};

/// A row of the client-scaling section: `n` client processes, one key of
/// `size` bytes per operation, grouped by `n`.
pub(super) fn scale_row(kind: Kind, op: &str, n: usize, size: u64, m: Measured) -> Row {
    Row::new(kind.procs(n), "scale", format!("{op}, {n} procs"), size, 1, m).group(n as u64)
}

/// N client processes (`mmc bench-client`) against a MetaService (in this
/// process) and `providers` memory-provider processes, beside N memcpy
/// processes and N Redis clients.
pub fn scale(shape: &Shape, redis: Option<&str>, notes: &mut Vec<String>) -> Result<Vec<Row>, String> {
    let size = shape.scale_size;
    let t = tag(size);
    let nmax = shape.max_clients();
    progress(&format!(
        "scale: MetaService + {} memory providers, {nmax} client processes",
        shape.providers
    ));
    let cluster = Cluster::start_with(shape.segment, shape.providers)?;
    let meta = cluster.meta_addr.to_string();
    let spin = crate::cluster::local_spin_us().to_string();
    let token_arg = cluster.token_file().display().to_string();
    let mut mmc = client_procs(
        shape,
        nmax,
        None,
        &[
            "--target",
            "mmc",
            "--meta",
            &meta,
            "--spin-us",
            &spin,
            "--token-file",
            &token_arg,
        ],
        "scale-mmc",
    )?;
    let mut rows = Vec::new();
    for &n in &shape.clients {
        progress(&format!(
            "scale: {n} MemCache client processes, put_from / get_into {t}"
        ));
        let (p, g) = put_get_n(&mut mmc, n, size, shape, &format!("s{n}"))?;
        rows.push(
            scale_row(Kind::ScaleMmcPut, "MemCache put_from", n, size, p)
                .vs("memcpy", Kind::ScaleMemcpyPut.procs(n))
                .vs("redis", Kind::ScaleRedisSet.procs(n))
                .vs("mooncake", Kind::ScaleMooncakePut.procs(n))
                .vs("1 proc", Kind::ScaleMmcPut.procs(1)),
        );
        rows.push(
            scale_row(Kind::ScaleMmcGet, "MemCache get_into", n, size, g)
                .vs("memcpy", Kind::ScaleMemcpyGet.procs(n))
                .vs("redis", Kind::ScaleRedisGet.procs(n))
                .vs("mooncake", Kind::ScaleMooncakeGet.procs(n))
                .vs("1 proc", Kind::ScaleMmcGet.procs(1)),
        );
    }
    let pids: Vec<String> = cluster.providers().iter().map(|p| p.pid.to_string()).collect();
    notes.push(format!(
        "scale: MetaService in this process ({meta}), {} memory-provider processes (pids {}) with {} segments, \
         {nmax} `mmc bench-client` processes (pure clients); with N processes each keeps working-set/N live; \
         aggregate = sum of the processes' rates over the same interval (they start together at a set time)",
        shape.providers,
        pids.join(", "),
        fmt_size(shape.segment)
    ));
    drop(mmc);
    drop(cluster);
    let ws = shape.ws.to_string();
    let mut mc = client_procs(shape, nmax, None, &["--target", "memcpy", "--ws", &ws], "scale-memcpy")?;
    for &n in &shape.clients {
        progress(&format!("scale: {n} memcpy processes {t}"));
        let (p, g) = put_get_n(&mut mc, n, size, shape, "m")?;
        rows.push(scale_row(Kind::ScaleMemcpyPut, "memcpy ws-write", n, size, p));
        rows.push(scale_row(Kind::ScaleMemcpyGet, "memcpy ws-read", n, size, g));
    }
    drop(mc);
    if let Some(addr) = redis {
        let mut rc = client_procs(shape, nmax, None, &["--target", "redis", "--addr", addr], "scale-redis")?;
        for &n in &shape.clients {
            progress(&format!("scale: {n} redis clients {t}"));
            let (p, g) = put_get_n(&mut rc, n, size, shape, "r")?;
            rows.push(scale_row(Kind::ScaleRedisSet, "redis SET", n, size, p));
            rows.push(scale_row(Kind::ScaleRedisGet, "redis GET", n, size, g));
        }
    }
    Ok(rows)
}
