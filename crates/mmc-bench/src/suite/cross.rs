//! The cross-host phase: MemCache with forced TCP between two network
//! namespaces, beside raw TCP streams, raw request/response and Redis
//! between the same namespaces.

use super::clients::{batch_rows, client_procs, put_get_n};
use super::cross_cluster::CrossCluster;
use super::{cmd, cross_batch_sizes, with_batch, Shape};
use crate::measure::{Budget, Measured};
use crate::netns::Pair;
use crate::procs::{aggregate, measure_all, run_all, Proc};
use crate::report::Row;
use crate::rows::Kind;
use crate::workloads::{progress, tag, SMALL_KEYS};

/// Raw TCP streams of `size`-byte writes / reads with the first `n` of `procs`.
fn streams_n(
    procs: &mut [Proc],
    n: usize,
    size: u64,
    addr: &str,
    budget: Budget,
) -> Result<(Measured, Measured), String> {
    let ps = &mut procs[..n];
    let mut c = cmd("stream_send", size, 0, "");
    c.addr = addr.to_owned();
    let send = aggregate(&measure_all(ps, &c, budget)?);
    c.op = "stream_recv".into();
    let recv = aggregate(&measure_all(ps, &c, budget)?);
    Ok((send, recv))
}

/// MetaService and memory providers in namespace A, forced-TCP clients in
/// namespace B; beside raw TCP streams and Redis between the same two
/// namespaces.
pub fn cross(shape: &Shape, ns: &Pair, with_redis: bool, notes: &mut Vec<String>) -> Result<Vec<Row>, String> {
    let mut cl = CrossCluster::start(shape, ns)?;
    let batched = cross_batch_sizes(shape);
    let mut rows = cross_control_path(shape, &mut cl)?;
    for &size in &shape.cross_sizes {
        rows.extend(cross_size(shape, &mut cl, size, batched.contains(&size))?);
    }
    rows.extend(cross_clients(shape, &mut cl)?);
    // The MetaService stays up until the Redis phase is over, as it always has.
    let (_meta, note) = cl.stop(shape, ns);
    notes.push(note);
    if with_redis {
        rows.extend(cross_redis(shape, ns, &batched)?);
    }
    Ok(rows)
}

/// The raw TCP round trip between the namespaces and the small operations of
/// a remote client: what one control round trip over TCP costs (the
/// MetaService polls TCP connections only on larger machines,
/// `meta.tcp_polling`).
fn cross_control_path(shape: &Shape, cl: &mut CrossCluster) -> Result<Vec<Row>, String> {
    progress("cross: raw tcp ping-pong between the namespaces");
    let mut pc = cmd("pingpong", 0, 0, "");
    pc.addr = cl.raw_addr.clone();
    let rtt = aggregate(&measure_all(&mut cl.raw[..1], &pc, shape.budget)?);
    let mut rows = vec![Row::new(
        Kind::CrossRtt.one(),
        "cross",
        "raw tcp ping-pong 64 B (A <-> B)",
        0,
        1,
        rtt,
    )];
    progress("cross: MemCache exist x1 and get_into 4KiB x1 (protocol tcp), 1 client");
    let small = SMALL_KEYS;
    let one = &mut cl.mmc[..1];
    run_all(one, &cmd("fill", 4096, small, "xsg"), false)?;
    let exist1 = aggregate(&measure_all(
        one,
        &with_batch(cmd("exist_batch", 4096, small, ""), 1),
        shape.budget,
    )?);
    let get1 = aggregate(&measure_all(one, &cmd("get", 4096, small, "xsg"), shape.budget)?);
    run_all(one, &cmd("clear", 0, 0, ""), false)?;
    rows.push(Row::new(
        Kind::CrossExist1.one(),
        "cross",
        "MemCache exist x1 (tcp)",
        4096,
        1,
        exist1,
    ));
    rows.push(Row::new(
        Kind::CrossGet1.size(4096),
        "cross",
        "MemCache get_into 4 KiB x1 (tcp)",
        4096,
        1,
        get1,
    ));
    Ok(rows)
}

/// One cross size with one client: MemCache put / get, the raw streams and
/// the raw request/response beside them, and (`batched`) the batch calls.
fn cross_size(shape: &Shape, cl: &mut CrossCluster, size: u64, batched: bool) -> Result<Vec<Row>, String> {
    let t = tag(size);
    progress(&format!(
        "cross: MemCache put_from / get_into {t} (protocol tcp), 1 client"
    ));
    let (p, g) = put_get_n(&mut cl.mmc, 1, size, shape, &format!("x{t}"))?;
    progress(&format!("cross: raw tcp stream {t} B -> A and A -> B"));
    let (s, r) = streams_n(&mut cl.raw, 1, size, &cl.raw_addr, shape.budget)?;
    progress(&format!("cross: raw tcp request/response {t}"));
    let mut rr = cmd("rr_send", size, 0, "");
    rr.addr = cl.raw_addr.clone();
    let rs = aggregate(&measure_all(&mut cl.raw[..1], &rr, shape.budget)?);
    rr.op = "rr_recv".into();
    let rg = aggregate(&measure_all(&mut cl.raw[..1], &rr, shape.budget)?);
    let row = |kind: Kind, op: &str, m| Row::new(kind.size(size), "cross", op, size, 1, m).group(size);
    let mut rows = vec![
        row(Kind::CrossRawSend, "raw tcp stream B -> A", s),
        row(Kind::CrossRawRecv, "raw tcp stream A -> B", r),
        row(Kind::CrossRrSend, "raw tcp request+ack B -> A", rs),
        row(Kind::CrossRrRecv, "raw tcp request+reply A -> B", rg),
        row(Kind::CrossPut, "MemCache put_from (tcp)", p)
            .vs("raw tcp", Kind::CrossRawSend.size(size))
            .vs("raw req/resp", Kind::CrossRrSend.size(size))
            .vs("redis", Kind::CrossRedisSet.size(size))
            .vs("mooncake", Kind::CrossMooncakePut.size(size)),
        row(Kind::CrossGet, "MemCache get_into (tcp)", g)
            .vs("raw tcp", Kind::CrossRawRecv.size(size))
            .vs("raw req/resp", Kind::CrossRrRecv.size(size))
            .vs("redis", Kind::CrossRedisGet.size(size))
            .vs("mooncake", Kind::CrossMooncakeGet.size(size)),
    ];
    if batched {
        // Several objects per call, as an engine offloads a layer's
        // blocks: one Alloc and one Finish (or one Lookup) for the
        // batch, the transfers concurrent.
        progress(&format!(
            "cross: MemCache batch put / get {} x {t} (protocol tcp), 1 client",
            shape.cross_batch_keys
        ));
        let (p, g) = batch_rows(
            &mut cl.mmc,
            size,
            shape,
            &format!("xb{t}"),
            (Kind::CrossPutB, Kind::CrossGetB),
            ("MemCache put_batch", "MemCache get_batch"),
        )?;
        rows.push(
            p.vs("raw tcp", Kind::CrossRawSend.size(size))
                .vs("redis", Kind::CrossRedisMset.size(size))
                .vs("mooncake", Kind::CrossMooncakePutB.size(size)),
        );
        rows.push(
            g.vs("raw tcp", Kind::CrossRawRecv.size(size))
                .vs("redis", Kind::CrossRedisMget.size(size))
                .vs("mooncake", Kind::CrossMooncakeGetB.size(size)),
        );
    }
    Ok(rows)
}

/// The group of the cross-host rows with `n` client processes (after every size).
fn cross_procs_group(n: usize) -> u64 {
    (1u64 << 40) + n as u64
}

/// N > 1 MemCache client processes and N raw streams, `shape.scale_size` objects.
fn cross_clients(shape: &Shape, cl: &mut CrossCluster) -> Result<Vec<Row>, String> {
    let size = shape.scale_size;
    let t = tag(size);
    let mut rows = Vec::new();
    for &n in shape.clients.iter().filter(|&&n| n > 1) {
        progress(&format!(
            "cross: {n} MemCache client processes and {n} raw streams, {t}"
        ));
        let (p, g) = put_get_n(&mut cl.mmc, n, size, shape, &format!("xn{n}"))?;
        let (s, r) = streams_n(&mut cl.raw, n, size, &cl.raw_addr, shape.budget)?;
        let row =
            |kind: Kind, op: String, m| Row::new(kind.procs(n), "cross", op, size, 1, m).group(cross_procs_group(n));
        rows.push(row(Kind::CrossRawSend, format!("raw tcp B -> A, {n} streams"), s));
        rows.push(row(Kind::CrossRawRecv, format!("raw tcp A -> B, {n} streams"), r));
        rows.push(
            row(Kind::CrossPut, format!("MemCache put_from (tcp), {n} procs"), p)
                .vs("raw tcp", Kind::CrossRawSend.procs(n))
                .vs("redis", Kind::CrossRedisSet.procs(n))
                .vs("mooncake", Kind::CrossMooncakePut.procs(n)),
        );
        rows.push(
            row(Kind::CrossGet, format!("MemCache get_into (tcp), {n} procs"), g)
                .vs("raw tcp", Kind::CrossRawRecv.procs(n))
                .vs("redis", Kind::CrossRedisGet.procs(n))
                .vs("mooncake", Kind::CrossMooncakeGet.procs(n)),
        );
    }
    Ok(rows)
}

/// Redis between the namespaces: server in A, client processes in B; SET /
/// GET (and MSET / MGET of the `batched` sizes) at every cross size with
/// one client, then N > 1 clients.
fn cross_redis(shape: &Shape, ns: &Pair, batched: &[u64]) -> Result<Vec<Row>, String> {
    let port = 6379;
    progress(&format!("cross: redis-server in {}", ns.a));
    let server = crate::redis::Server::start(Some(&ns.a), &ns.ip_a, port)?;
    let addr = server.addr.clone();
    let mut rc = client_procs(
        shape,
        shape.max_clients(),
        Some(&ns.b),
        &["--target", "redis", "--addr", &addr],
        "cross-redis",
    )?;
    let mut rows = Vec::new();
    for &size in &shape.cross_sizes {
        let t = tag(size);
        progress(&format!("cross: redis SET / GET {t}"));
        let (p, g) = put_get_n(&mut rc, 1, size, shape, &format!("x{t}"))?;
        rows.push(Row::new(Kind::CrossRedisSet.size(size), "cross", "redis SET", size, 1, p).group(size));
        rows.push(Row::new(Kind::CrossRedisGet.size(size), "cross", "redis GET", size, 1, g).group(size));
        if batched.contains(&size) {
            progress(&format!("cross: redis MSET / MGET {} x {t}", shape.cross_batch_keys));
            let (p, g) = batch_rows(
                &mut rc,
                size,
                shape,
                &format!("xb{t}"),
                (Kind::CrossRedisMset, Kind::CrossRedisMget),
                ("redis MSET", "redis MGET"),
            )?;
            rows.extend([p, g]);
        }
    }
    let size = shape.scale_size;
    let t = tag(size);
    for &n in shape.clients.iter().filter(|&&n| n > 1) {
        progress(&format!("cross: {n} redis clients {t}"));
        let (p, g) = put_get_n(&mut rc, n, size, shape, &format!("xn{n}"))?;
        let grp = cross_procs_group(n);
        let op = |what: &str| format!("{what}, {n} procs");
        rows.push(Row::new(Kind::CrossRedisSet.procs(n), "cross", op("redis SET"), size, 1, p).group(grp));
        rows.push(Row::new(Kind::CrossRedisGet.procs(n), "cross", op("redis GET"), size, 1, g).group(grp));
    }
    Ok(rows)
}
