//! The workloads of issue #5 beyond the single in-process client: Redis
//! beside every same-host figure, the layered KV block, N client processes
//! against M memory providers, the cross-host path between two network
//! namespaces, and Mooncake Store through its Python client.

use super::cluster::{bench_command, mmc_command, write_private, Cluster, Provider};
use super::measure::{Budget, Measured};
use super::netns::{in_netns, Pair};
use super::procs::{aggregate, measure_all, run_all, Proc};
use super::report::{fmt_size, Row};
use super::rows::Kind;
use super::worker::{Cmd, Memcpy, Mmc, Redis, Target, Worker, BLOCK_BYTES};
use super::workloads::{progress, slots_for, tag, SMALL_KEYS};
use mmc_local::BlockingObjectStore;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the phases need from the plan.
#[derive(Clone, Debug)]
pub struct Shape {
    pub budget: Budget,
    pub ws: u64,
    pub segment: u64,
    pub sizes: Vec<u64>,
    pub batch_keys: usize,
    pub batch_values: Vec<u64>,
    pub clients: Vec<usize>,
    pub providers: usize,
    pub scale_size: u64,
    pub cross_sizes: Vec<u64>,
    pub cross_batch_keys: usize,
    pub logs: PathBuf,
}

impl Shape {
    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    fn max_clients(&self) -> usize {
        self.clients.iter().copied().max().unwrap_or(1)
    }
}

fn cmd(op: &str, size: u64, slots: usize, prefix: &str) -> Cmd {
    Cmd {
        op: op.into(),
        size,
        slots,
        prefix: prefix.into(),
        ..Cmd::default()
    }
}

fn with_batch(mut c: Cmd, batch: usize) -> Cmd {
    c.batch = batch;
    c
}

fn layered(mut c: Cmd) -> Cmd {
    c.layers = true;
    c.size = 0;
    c
}

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

// ---- Redis beside the in-process workloads -------------------------------------

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

// ---- the layered KV block ---------------------------------------------------------

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

// ---- N client processes -------------------------------------------------------------

fn client_procs(shape: &Shape, n: usize, netns: Option<&str>, args: &[&str], what: &str) -> Result<Vec<Proc>, String> {
    (0..n)
        .map(|i| {
            let mut c = bench_command(netns)?;
            c.arg("bench-client")
                .args(args)
                .args(["--congestion", &super::cluster::congestion()])
                .env_remove(mmc_config::TOKEN_FILE_ENV)
                .env("RUST_LOG", "warn");
            Proc::spawn(
                c,
                &format!("{what} client {i}"),
                Some(&shape.log(&format!("{what}-{i}.log"))),
                30,
            )
        })
        .collect()
}

/// Put (fresh keys) and get (rotation) of `size` with the first `n` of `procs`,
/// each keeping `ws / n` bytes live. Returns the aggregate (put, get).
fn put_get_n(
    procs: &mut [Proc],
    n: usize,
    size: u64,
    shape: &Shape,
    key: &str,
) -> Result<(Measured, Measured), String> {
    let slots = slots_for(shape.ws / n as u64, size);
    let ps = &mut procs[..n];
    let put = aggregate(&measure_all(
        ps,
        &cmd("put", size, slots, &format!("{key}p")),
        shape.budget,
    )?);
    run_all(ps, &cmd("fill", size, slots, &format!("{key}g")), false)?;
    let get = aggregate(&measure_all(ps, &cmd("get", size, slots, ""), shape.budget)?);
    run_all(ps, &cmd("clear", 0, 0, ""), false)?;
    Ok((put, get))
}

/// The cross sizes also measured in batches: those whose batch of
/// `shape.cross_batch_keys` objects fits the working set.
pub fn cross_batch_sizes(shape: &Shape) -> Vec<u64> {
    let b = shape.cross_batch_keys as u64;
    if b == 0 {
        return Vec::new();
    }
    shape
        .cross_sizes
        .iter()
        .copied()
        .filter(|&s| s * b <= shape.ws)
        .collect()
}

/// Batch puts / gets of `shape.cross_batch_keys` objects of `size` bytes
/// (one call each) with the first of `procs`, rotating over the working
/// set: rows of kinds `kinds.0` and `kinds.1` at `size`, named `{ops.0} xB` and `{ops.1} xB`.
/// A row of the client-scaling section: `n` client processes, one key of
/// `size` bytes per operation, grouped by `n`.
fn scale_row(kind: Kind, op: &str, n: usize, size: u64, m: Measured) -> Row {
    Row::new(kind.procs(n), "scale", format!("{op}, {n} procs"), size, 1, m).group(n as u64)
}

fn batch_rows(
    procs: &mut [Proc],
    size: u64,
    shape: &Shape,
    key: &str,
    kinds: (Kind, Kind),
    ops: (&str, &str),
) -> Result<(Row, Row), String> {
    let batch = shape.cross_batch_keys.max(1);
    let slots = (slots_for(shape.ws, size) / batch).max(1) * batch;
    let one = &mut procs[..1];
    let put = aggregate(&measure_all(
        one,
        &with_batch(cmd("put_batch", size, slots, &format!("{key}p")), batch),
        shape.budget,
    )?);
    run_all(one, &cmd("fill", size, slots, &format!("{key}g")), false)?;
    let get = aggregate(&measure_all(
        one,
        &with_batch(cmd("get_batch", size, slots, ""), batch),
        shape.budget,
    )?);
    run_all(one, &cmd("clear", 0, 0, ""), false)?;
    let b = batch as u64;
    let row =
        |kind: Kind, op: &str, m| Row::new(kind.size(size), "cross", format!("{op} x{b}"), size, b, m).group(size);
    Ok((row(kinds.0, ops.0, put), row(kinds.1, ops.1, get)))
}

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
    let spin = super::cluster::local_spin_us().to_string();
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

// ---- cross-host -----------------------------------------------------------------

/// Waits until something accepts TCP connections on `addr` inside `netns`.
pub fn wait_port(netns: &str, addr: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let a = addr.to_owned();
        let ok = in_netns(netns, move || {
            TcpStream::connect_timeout(&a.parse().ok()?, Duration::from_millis(200)).ok()
        })?;
        if ok.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing listens on {addr} in namespace {netns} after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed by PID when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cross-host MemCache cluster and the raw TCP pair: MetaService and
/// memory providers in namespace A, forced-TCP client processes and raw
/// TCP client processes in B, the raw TCP server in A. Fields drop in
/// declaration order (the clients first, the MetaService last).
struct CrossCluster {
    raw: Vec<Proc>,
    server: Proc,
    mmc: Vec<Proc>,
    provs: Vec<Provider>,
    meta_proc: Killed,
    /// The MetaService's address in A.
    meta: String,
    /// The raw TCP server's address in A.
    raw_addr: String,
}

impl CrossCluster {
    /// Starts the MetaService (with a cluster token the bench generates:
    /// the services listen on the namespaces' addresses, not loopback, so
    /// the measurements include its handshakes), the providers, the MemCache
    /// and raw TCP client processes and the raw TCP server.
    fn start(shape: &Shape, ns: &Pair) -> Result<CrossCluster, String> {
        let nmax = shape.max_clients();
        let meta = format!("{}:7000", ns.ip_a);
        progress(&format!(
            "cross: MetaService and {} providers in {}, clients in {}",
            shape.providers, ns.a, ns.b
        ));
        let token_file = shape.log("cross-token");
        let token = mmc_wire::auth::generate_token().map_err(|e| format!("cannot make a cluster token: {e}"))?;
        write_private(&token_file, &token)?;
        let token_arg = token_file.display().to_string();
        let meta_proc = Self::start_meta(shape, ns, &meta, &token_arg)?;
        let listen = format!("{}:0", ns.ip_a);
        let provs = (0..shape.providers)
            .map(|_| Provider::spawn_in(Some(&ns.a), &meta, shape.segment, Some(&listen), Some(&token_file)))
            .collect::<Result<Vec<_>, _>>()?;
        let mmc = client_procs(
            shape,
            nmax,
            Some(&ns.b),
            &[
                "--target",
                "mmc",
                "--meta",
                &meta,
                "--protocol",
                "tcp",
                "--spin-us",
                &super::cluster::local_spin_us().to_string(),
                "--token-file",
                &token_arg,
            ],
            "cross-mmc",
        )?;
        let server = {
            let mut c = bench_command(Some(&ns.a))?;
            c.args(["bench-client", "--target", "tcp-server", "--addr", &listen])
                .args(["--ws", &shape.ws.to_string()])
                .args(["--congestion", &super::cluster::congestion()]);
            Proc::spawn(c, "raw tcp server", Some(&shape.log("cross-tcp-server.log")), 10)?
        };
        let raw_addr = server.info.clone();
        let raw = client_procs(shape, nmax, Some(&ns.b), &["--target", "tcp"], "cross-tcp")?;
        Ok(CrossCluster {
            raw,
            server,
            mmc,
            provs,
            meta_proc,
            meta,
            raw_addr,
        })
    }

    /// The MetaService process in namespace A, once it accepts connections.
    fn start_meta(shape: &Shape, ns: &Pair, meta: &str, token_arg: &str) -> Result<Killed, String> {
        let mut mcmd = mmc_command(Some(&ns.a))?;
        let meta_spin = super::cluster::meta_spin_us().to_string();
        mcmd.args(["meta", "--listen", meta, "--http", "", "--spin-wait-us", &meta_spin])
            .args(["--token-file", token_arg])
            .args(["--tcp-polling", super::cluster::tcp_polling().name()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(shape.log("cross-meta.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        super::cluster::die_with_parent(&mut mcmd);
        let proc = Killed(
            mcmd.spawn()
                .map_err(|e| format!("cannot start the cross-host MetaService: {e}"))?,
        );
        wait_port(&ns.a, meta, Duration::from_secs(10))?;
        Ok(proc)
    }

    /// Stops the clients, the raw server and the providers (in that order);
    /// returns the MetaService (stopped when dropped) and the report's note.
    fn stop(self, shape: &Shape, ns: &Pair) -> (Killed, String) {
        let CrossCluster {
            raw,
            server,
            mmc,
            provs,
            meta_proc,
            meta,
            raw_addr,
        } = self;
        drop(mmc);
        drop(raw);
        drop(server);
        let pids: Vec<String> = provs.iter().map(|p| p.pid.to_string()).collect();
        drop(provs);
        let note = format!(
            "cross: {}; MetaService ({meta}) and {} memory providers (pids {}) in {}, `mmc bench-client --protocol tcp` \
             processes in {}; raw tcp = `mmc bench-client` processes in {} streaming to / from a raw TCP server process \
             in {} ({raw_addr}), the time running until the receiver has every byte",
            ns.describe(),
            shape.providers,
            pids.join(", "),
            ns.a,
            ns.b,
            ns.b,
            ns.a
        );
        (meta_proc, note)
    }
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
    let server = super::redis::Server::start(Some(&ns.a), &ns.ip_a, port)?;
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

// ---- Mooncake ---------------------------------------------------------------------

/// Where the Mooncake baseline's pieces are.
#[derive(Clone, Debug)]
pub struct MooncakeSetup {
    pub python: PathBuf,
    pub script: PathBuf,
    pub master: PathBuf,
}

impl MooncakeSetup {
    /// The venv's python (`--mooncake-python`, else `$MMC_BENCH_PYTHON`, else
    /// `.venv/bin/python` of the repository), the bench script and
    /// `mooncake_master` beside that python; an error says what is missing.
    pub fn find(python: Option<&Path>) -> Result<MooncakeSetup, String> {
        let roots: Vec<PathBuf> = {
            let mut v = vec![std::env::current_dir().unwrap_or_default()];
            if let Ok(exe) = std::env::current_exe() {
                // target/release/mmc-bench -> the repository
                if let Some(r) = exe.ancestors().nth(3) {
                    v.push(r.to_path_buf());
                }
            }
            v
        };
        let script = roots
            .iter()
            .map(|r| r.join("crates/mmc-python/bench/bench_vs_mooncake.py"))
            .find(|p| p.exists())
            .ok_or("crates/mmc-python/bench/bench_vs_mooncake.py not found (run from the repository)")?;
        let python = match python {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("MMC_BENCH_PYTHON") {
                Some(p) => PathBuf::from(p),
                None => roots
                    .iter()
                    .map(|r| r.join(".venv/bin/python"))
                    .find(|p| p.exists())
                    .ok_or("no .venv/bin/python (scripts/bench.sh creates it with Mooncake installed)")?,
            },
        };
        let master = python.with_file_name("mooncake_master");
        if !master.exists() {
            return Err(format!(
                "{} not found: install mooncake-transfer-engine-non-cuda into that venv (scripts/bench.sh does)",
                master.display()
            ));
        }
        let ok = Command::new(&python)
            .args(["-c", "import mooncake.store, numpy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("{} cannot import mooncake.store and numpy", python.display()));
        }
        Ok(MooncakeSetup { python, script, master })
    }
}

/// The Mooncake cluster the clients join.
struct McCluster<'a> {
    setup: &'a MooncakeSetup,
    master: String,
    metadata: String,
}

/// `n` Python client processes in network namespace `netns` whose address is `host`.
fn py_clients(
    shape: &Shape,
    mc: &McCluster<'_>,
    n: usize,
    (netns, host): (&str, &str),
    what: &str,
) -> Result<Vec<Proc>, String> {
    let (master, metadata) = (&mc.master, &mc.metadata);
    (0..n)
        .map(|i| {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns])
                .arg(&mc.setup.python)
                .arg(&mc.setup.script)
                .args(["--serve", "--host", host, "--mooncake-master", master])
                .args(["--mooncake-metadata", metadata]);
            Proc::spawn(
                c,
                &format!("{what} {i}"),
                Some(&shape.log(&format!("{what}-{i}.log"))),
                60,
            )
        })
        .collect()
}

/// Mooncake Store (master and `providers` memory-provider processes in
/// namespace A, TCP transport) driven through its Python client with the
/// same loops: clients in A for the same-host figures, in B for the
/// cross-host ones.
pub fn mooncake(
    shape: &Shape,
    ns: &Pair,
    mc: &MooncakeSetup,
    same_host: bool,
    cross_host: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let (services, cl) = McServices::start(shape, ns, mc)?;
    let mut rows = Vec::new();
    if same_host {
        rows.extend(mooncake_same_host(shape, ns, &cl)?);
    }
    if cross_host {
        rows.extend(mooncake_cross_host(shape, ns, &cl)?);
    }
    notes.push(services.note(shape, ns, &cl));
    Ok(rows)
}

/// The Mooncake master and providers, stopped when dropped (the providers
/// first).
struct McServices {
    provs: Vec<Proc>,
    _master: Killed,
}

impl McServices {
    /// Starts mooncake_master (with its HTTP metadata server) and
    /// `shape.providers` provider processes in namespace A.
    fn start<'a>(shape: &Shape, ns: &Pair, mc: &'a MooncakeSetup) -> Result<(McServices, McCluster<'a>), String> {
        let master = format!("{}:50051", ns.ip_a);
        let metadata = format!("http://{}:8080/metadata", ns.ip_a);
        progress(&format!(
            "mooncake: mooncake_master and {} providers in {}",
            shape.providers, ns.a
        ));
        let mut m = Command::new("ip");
        m.args(["netns", "exec", &ns.a])
            .arg(&mc.master)
            .args(["--rpc_port=50051", "--enable_http_metadata_server=true"])
            .arg(format!("--http_metadata_server_host={}", ns.ip_a))
            .args(["--http_metadata_server_port=8080", "--metrics_port=9003"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(shape.log("mooncake-master.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        super::cluster::die_with_parent(&mut m);
        let _master = Killed(m.spawn().map_err(|e| format!("cannot start mooncake_master: {e}"))?);
        wait_port(&ns.a, &master, Duration::from_secs(20))?;
        wait_port(&ns.a, &format!("{}:8080", ns.ip_a), Duration::from_secs(20))?;
        let provs = (0..shape.providers)
            .map(|i| {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.a])
                    .arg(&mc.python)
                    .arg(&mc.script)
                    .args(["--mooncake-provider", "--host", &ns.ip_a, "--mooncake-master", &master])
                    .args([
                        "--mooncake-metadata",
                        &metadata,
                        "--segment",
                        &shape.segment.to_string(),
                    ]);
                Proc::spawn(
                    c,
                    &format!("mooncake provider {i}"),
                    Some(&shape.log(&format!("mooncake-provider-{i}.log"))),
                    60,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cl = McCluster {
            setup: mc,
            master: master.clone(),
            metadata: metadata.clone(),
        };
        Ok((McServices { provs, _master }, cl))
    }

    /// The report's note on the Mooncake services.
    fn note(&self, shape: &Shape, ns: &Pair, cl: &McCluster<'_>) -> String {
        let (provs, mc, master, metadata) = (&self.provs, cl.setup, &cl.master, &cl.metadata);
        let pids: Vec<String> = provs.iter().map(|p| p.pid.to_string()).collect();
        format!(
            "mooncake: mooncake_master ({master}, HTTP metadata {metadata}) and {} provider processes (pids {}, {} segments) \
             in {}, TCP transport; clients are `{} {} --serve` processes ({} for same-host figures, {} for cross-host \
             ones) running the same loops as `mmc bench-client` through the Python client (put_from / get_into / \
             batch_put_from / batch_get_into / batch_is_exist / batch_*_multi_buffers on registered numpy buffers)",
            shape.providers,
            pids.join(", "),
            fmt_size(shape.segment),
            ns.a,
            mc.python.display(),
            mc.script.display(),
            ns.a,
            ns.b
        )
    }
}

/// Same host: Python clients in namespace A, one for the size sweep, the
/// batches and the layered block, N for the client scaling.
fn mooncake_same_host(shape: &Shape, ns: &Pair, cl: &McCluster<'_>) -> Result<Vec<Row>, String> {
    let mut ps = py_clients(shape, cl, shape.max_clients(), (&ns.a, &ns.ip_a), "mooncake-client")?;
    let mut rows = mooncake_sizes(shape, &mut ps)?;
    rows.extend(mooncake_batches(shape, &mut ps)?);
    rows.extend(mooncake_layers(shape, &mut ps)?);
    rows.extend(mooncake_scale(shape, &mut ps)?);
    Ok(rows)
}

/// put_from / get_into of every sweep size with one client.
fn mooncake_sizes(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &size in &shape.sizes {
        let t = tag(size);
        progress(&format!("mooncake: put_from / get_into {t}"));
        let (p, g) = put_get_n(ps, 1, size, shape, &format!("m{t}"))?;
        rows.push(Row::new(Kind::MooncakePut.size(size), "shm", "mooncake put_from", size, 1, p).group(size));
        rows.push(Row::new(Kind::MooncakeGet.size(size), "shm", "mooncake get_into", size, 1, g).group(size));
    }
    Ok(rows)
}

/// batch_put_from / batch_get_into / batch_is_exist of every batch shape.
fn mooncake_batches(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let budget = shape.budget;
    let mut rows = Vec::new();
    for &value in &shape.batch_values {
        let t = tag(value);
        let batch = shape.batch_keys;
        let n = (SMALL_KEYS / batch).max(1) * batch;
        progress(&format!(
            "mooncake: batch_put_from / batch_get_into / batch_is_exist {batch} x {t}"
        ));
        let one = &mut ps[..1];
        let put = aggregate(&measure_all(
            one,
            &with_batch(cmd("put_batch", value, n, &format!("mb{t}")), batch),
            budget,
        )?);
        run_all(one, &cmd("fill", value, n, &format!("mbg{t}")), false)?;
        let get = aggregate(&measure_all(
            one,
            &with_batch(cmd("get_batch", value, n, ""), batch),
            budget,
        )?);
        let ex = aggregate(&measure_all(
            one,
            &with_batch(cmd("exist_batch", value, n, ""), batch),
            budget,
        )?);
        run_all(one, &cmd("clear", 0, 0, ""), false)?;
        let b = batch as u64;
        rows.push(
            Row::new(
                Kind::MooncakePutB.size(value),
                "batch",
                format!("mooncake batch_put_from x{batch}"),
                value,
                b,
                put,
            )
            .group(value),
        );
        rows.push(
            Row::new(
                Kind::MooncakeGetB.size(value),
                "batch",
                format!("mooncake batch_get_into x{batch}"),
                value,
                b,
                get,
            )
            .group(value),
        );
        rows.push(
            Row::new(
                Kind::MooncakeExistB.size(value),
                "batch",
                format!("mooncake batch_is_exist x{batch}"),
                0,
                b,
                ex,
            )
            .group(value),
        );
    }
    Ok(rows)
}

/// The layered block (batch_*_multi_buffers) with one client.
fn mooncake_layers(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let budget = shape.budget;
    let mut rows = Vec::new();
    progress("mooncake: layered block (batch_put_from_multi_buffers / batch_get_into_multi_buffers)");
    {
        let one = &mut ps[..1];
        let slots = slots_for(shape.ws, BLOCK_BYTES);
        let put = aggregate(&measure_all(one, &layered(cmd("put", 0, slots, "mlp")), budget)?);
        run_all(one, &layered(cmd("fill", 0, slots, "mlg")), false)?;
        let get = aggregate(&measure_all(one, &layered(cmd("get", 0, slots, "")), budget)?);
        run_all(one, &cmd("clear", 0, 0, ""), false)?;
        rows.push(Row::new(
            Kind::LayersMooncakePut.one(),
            "layers",
            "mooncake put (multi buffers)",
            BLOCK_BYTES,
            1,
            put,
        ));
        rows.push(Row::new(
            Kind::LayersMooncakeGet.one(),
            "layers",
            "mooncake get (multi buffers)",
            BLOCK_BYTES,
            1,
            get,
        ));
    }
    Ok(rows)
}

/// N client processes, `shape.scale_size` objects.
fn mooncake_scale(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let size = shape.scale_size;
    let t = tag(size);
    for &n in &shape.clients {
        progress(&format!("mooncake: {n} client processes {t}"));
        let (p, g) = put_get_n(ps, n, size, shape, &format!("mn{n}"))?;
        rows.push(scale_row(Kind::ScaleMooncakePut, "mooncake put_from", n, size, p));
        rows.push(scale_row(Kind::ScaleMooncakeGet, "mooncake get_into", n, size, g));
    }
    Ok(rows)
}

/// Cross host: Python clients in namespace B; every cross size (and its
/// batch where it fits), then N > 1 clients.
fn mooncake_cross_host(shape: &Shape, ns: &Pair, cl: &McCluster<'_>) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let batched = cross_batch_sizes(shape);
    let b = shape.cross_batch_keys;
    let mut ps = py_clients(shape, cl, shape.max_clients(), (&ns.b, &ns.ip_b), "mooncake-xclient")?;
    for &size in &shape.cross_sizes {
        let t = tag(size);
        progress(&format!("mooncake cross-host: put_from / get_into {t}"));
        let (p, g) = put_get_n(&mut ps, 1, size, shape, &format!("mx{t}"))?;
        rows.push(
            Row::new(
                Kind::CrossMooncakePut.size(size),
                "cross",
                "mooncake put_from",
                size,
                1,
                p,
            )
            .group(size),
        );
        rows.push(
            Row::new(
                Kind::CrossMooncakeGet.size(size),
                "cross",
                "mooncake get_into",
                size,
                1,
                g,
            )
            .group(size),
        );
        if batched.contains(&size) {
            progress(&format!(
                "mooncake cross-host: batch_put_from / batch_get_into {b} x {t}"
            ));
            let (p, g) = batch_rows(
                &mut ps,
                size,
                shape,
                &format!("mxb{t}"),
                (Kind::CrossMooncakePutB, Kind::CrossMooncakeGetB),
                ("mooncake batch_put_from", "mooncake batch_get_into"),
            )?;
            rows.extend([p, g]);
        }
    }
    let size = shape.scale_size;
    let t = tag(size);
    for &n in shape.clients.iter().filter(|&&n| n > 1) {
        progress(&format!("mooncake cross-host: {n} client processes {t}"));
        let (p, g) = put_get_n(&mut ps, n, size, shape, &format!("mxn{n}"))?;
        let grp = (1u64 << 40) + n as u64;
        rows.push(
            Row::new(
                Kind::CrossMooncakePut.procs(n),
                "cross",
                format!("mooncake put_from, {n} procs"),
                size,
                1,
                p,
            )
            .group(grp),
        );
        rows.push(
            Row::new(
                Kind::CrossMooncakeGet.procs(n),
                "cross",
                format!("mooncake get_into, {n} procs"),
                size,
                1,
                g,
            )
            .group(grp),
        );
    }
    Ok(rows)
}
