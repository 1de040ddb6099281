//! Client subcommands: put, get, rm, stat (text or `--json`), drain.

use clap::Args;
use mmc_local::{AdminClient, ObjectStore, PutOptions};
use mmc_wire::message::{ClusterStat, DrainReport, DrainState, Request, Response};
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Args)]
pub struct Conn {
    /// MetaService address.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub meta: String,
    /// File whose first line is the cluster token (default: $MMC_TOKEN_FILE,
    /// else the token of $MMC_LOCAL_CONFIG_PATH's [local.security] / [cluster]).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// etcd endpoint(s) of an HA cluster, comma-separated: reach the
    /// MetaService leader named there instead of --meta.
    #[arg(long)]
    pub etcd: Option<String>,
    /// HA cluster name (with --etcd).
    #[arg(long, default_value = "memcache")]
    pub cluster: String,
}

impl Conn {
    /// A pure-client configuration (no segment) for this connection.
    fn config(&self) -> Result<mmc_local::LocalConfig, String> {
        let mut cfg = crate::local_config(None, Some(&self.meta), Some("0"), None)?;
        crate::apply_token_file(&mut cfg.security, self.token_file.as_deref());
        if let Some(e) = &self.etcd {
            cfg.etcd_endpoints = crate::etcd_list(e);
            cfg.cluster_name = self.cluster.clone();
            cfg.validate().map_err(|e| e.to_string())?;
        }
        Ok(cfg)
    }
}

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    conn: Conn,
    /// Key to store the value under. Objects are immutable: a put of an
    /// existing key keeps the first value (a note says so on stderr);
    /// `mmc rm KEY` first to replace it.
    key: String,
    /// File to store, or `-` for stdin.
    file: String,
    /// Number of replicas.
    #[arg(long, default_value_t = 1)]
    replicas: u32,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    conn: Conn,
    /// Key to read; a missing key exits non-zero.
    key: String,
    /// Write the value to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
pub struct RmArgs {
    #[command(flatten)]
    conn: Conn,
    /// Key to remove; a missing key exits non-zero.
    key: String,
}

#[derive(Args)]
pub struct StatArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Print the cluster state as one JSON document (see docs/operations.md).
    #[arg(long)]
    json: bool,
}

/// A pure client (no segment) attached to `conn`'s MetaService.
fn client(conn: &Conn) -> Result<mmc_local::BlockingObjectStore, String> {
    let cfg = conn.config()?;
    crate::init_logging("warn");
    ObjectStore::connect(cfg)
        .map(|s| s.blocking())
        .map_err(|e| e.to_string())
}

pub fn put(a: PutArgs) -> Result<(), String> {
    let mut data = Vec::new();
    if a.file == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| format!("reading stdin: {e}"))?;
    } else {
        data = std::fs::read(&a.file).map_err(|e| format!("reading {}: {e}", a.file))?;
    }
    let c = client(&a.conn)?;
    let opts = PutOptions {
        replicas: a.replicas,
        preferred: vec![],
    };
    // The put of an existing key succeeds and keeps the first value; ask
    // first so the user hears of it (a key put meanwhile goes unnoticed).
    let existed = c.exist(&a.key).unwrap_or(false);
    let r = c
        .put(&a.key, &data, &opts)
        .map_err(|e| format!("put {}: {e} (code {})", a.key, e.code()));
    c.close();
    if r.is_ok() && existed {
        eprintln!(
            "mmc: note: {} already existed and keeps its first value (objects are immutable; `mmc rm {}` first to replace it)",
            a.key, a.key
        );
    }
    r
}

pub fn get(a: GetArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    let r = c.get(&a.key);
    c.close();
    let v = r.map_err(|e| format!("get {}: {e} (code {})", a.key, e.code()))?;
    match a.output {
        Some(p) => std::fs::write(&p, &v).map_err(|e| format!("writing {}: {e}", p.display())),
        None => to_stdout(&v),
    }
}

/// Writes `bytes` to stdout; a reader that went away (`mmc stat | head`)
/// ends the output quietly instead of failing.
pub fn to_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("writing to stdout: {e}")),
        _ => Ok(()),
    }
}

pub fn rm(a: RmArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    let r = c.remove(&a.key);
    c.close();
    r.map_err(|e| format!("rm {}: {e} (code {})", a.key, e.code()))
}

/// A control-RPC client of `conn`'s MetaService: its token, and TLS as the
/// LocalService config ($MMC_LOCAL_CONFIG_PATH) says. Call inside a runtime.
pub fn meta_client(conn: &Conn) -> Result<AdminClient, String> {
    let cfg = conn.config()?;
    let token = cfg.security.resolve_token().map_err(|e| e.to_string())?;
    let tls = if cfg.security.tls.enable {
        Some(mmc_tls::ClientTls::new(&cfg.security.tls).map_err(|e| format!("local.security.tls: {e}"))?)
    } else {
        None
    };
    Ok(AdminClient::new(
        conn.meta.clone(),
        std::time::Duration::from_secs(5),
        tokio::runtime::Handle::current(),
    )
    .with_token(mmc_wire::auth::ClusterToken::from_option(token))
    .with_tls(tls)
    .with_etcd(
        cfg.etcd_endpoints.clone(),
        &cfg.cluster_name,
        std::time::Duration::from_millis(cfg.leader_wait_ms),
    ))
}

/// One `Stat` call: the cluster state as the MetaService sees it now.
pub async fn fetch_stat(mc: &AdminClient, meta: &str) -> Result<ClusterStat, String> {
    match mc.call(&Request::Stat).await {
        Ok(Response::Stat(s)) => Ok(s),
        Ok(other) => Err(format!("stat from {meta}: unexpected reply {other:?}")),
        Err(e) => Err(format!("stat from {meta}: {e}")),
    }
}

fn pct(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        (used as f64 * 10_000.0 / capacity as f64).round() / 100.0
    }
}

/// The JSON document of `mmc stat --json`.
pub fn stat_json(st: &ClusterStat) -> serde_json::Value {
    let segments: Vec<serde_json::Value> = st
        .segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "service_id": s.service_id,
                "host_id": s.host_id,
                "transfer_addr": s.transfer_addr,
                "medium": s.medium.name(),
                "capacity": s.capacity,
                "used": s.used,
                "percent": pct(s.used, s.capacity),
                "objects": s.objects,
            })
        })
        .collect();
    let capacity: u64 = st.segments.iter().map(|s| s.capacity).sum();
    let used: u64 = st.segments.iter().map(|s| s.used).sum();
    serde_json::json!({
        "members": st.members,
        "keys": st.keys,
        "evictions": st.evictions,
        "leases_active": st.leases_active,
        "segments": segments,
        "total": { "capacity": capacity, "used": used, "percent": pct(used, capacity) },
    })
}

pub fn stat(a: StatArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    crate::init_logging("warn");
    let st = rt.block_on(async {
        let mc = meta_client(&a.conn)?;
        fetch_stat(&mc, &a.conn.meta).await
    })?;
    if a.json {
        let mut text = stat_json(&st).to_string();
        text.push('\n');
        return to_stdout(text.as_bytes());
    }
    let mut text = String::new();
    text += &format!(
        "members: {}  keys: {}  evictions: {}  active leases: {}\n",
        st.members, st.keys, st.evictions, st.leases_active
    );
    text += &format!(
        "{:>8} {:>20} {:>22} {:>6} {:>12} {:>12} {:>6} {:>9}\n",
        "service", "host", "transfer", "medium", "capacity", "used", "used%", "objects"
    );
    let (mut cap, mut used) = (0u64, 0u64);
    for s in &st.segments {
        cap += s.capacity;
        used += s.used;
        text += &format!(
            "{:>8} {:>20} {:>22} {:>6} {:>12} {:>12} {:>5.1}% {:>9}\n",
            s.service_id,
            s.host_id,
            s.transfer_addr,
            s.medium.name(),
            mmc_config::format_size(s.capacity),
            s.used,
            if s.capacity > 0 {
                s.used as f64 * 100.0 / s.capacity as f64
            } else {
                0.0
            },
            s.objects
        );
    }
    text += &format!("total capacity {cap} bytes, used {used} bytes\n");
    to_stdout(text.as_bytes())
}

#[derive(Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Service id of the memory provider to drain (`mmc stat` lists them).
    service_id: u32,
    /// Return once the drain has started instead of waiting for its end.
    #[arg(long)]
    no_wait: bool,
    /// Print the drain report as one JSON document.
    #[arg(long)]
    json: bool,
}

/// The JSON document of `mmc drain --json` (and of the HTTP drain route).
pub fn drain_json(r: &DrainReport) -> serde_json::Value {
    serde_json::json!({
        "service_id": r.service_id,
        "state": r.state.name(),
        "moved": r.moved,
        "dropped_replicas": r.dropped_replicas,
        "unmoved": r.unmoved.iter().map(|u| serde_json::json!({
            "key": u.key, "size": u.size, "reason": u.reason,
        })).collect::<Vec<_>>(),
        "message": r.message,
    })
}

async fn drain_call(mc: &AdminClient, req: Request) -> Result<DrainReport, String> {
    match mc.call(&req).await {
        Ok(Response::Drain(r)) => Ok(r),
        Ok(other) => Err(format!("unexpected reply {other:?}")),
        Err(e) => Err(format!("{e} (code {})", e.code())),
    }
}

/// `mmc drain SERVICE_ID`: moves the provider's objects to the others, then
/// it leaves. Exits non-zero when the drain did not end with the provider
/// gone (some objects could not be moved, or it was aborted).
pub fn drain(a: DrainArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    crate::init_logging("warn");
    let id = a.service_id;
    let r = rt.block_on(async {
        let mc = meta_client(&a.conn)?;
        let mut r = drain_call(&mc, Request::Drain { service_id: id })
            .await
            .map_err(|e| format!("drain {id}: {e}"))?;
        while !a.no_wait && !r.state.is_final() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            r = drain_call(&mc, Request::DrainStatus { service_id: id })
                .await
                .map_err(|e| format!("drain {id} status: {e}"))?;
        }
        Ok::<_, String>(r)
    })?;
    let mut text = if a.json {
        drain_json(&r).to_string()
    } else {
        let mut t = format!(
            "drain of service {}: {} (moved {}, replicas dropped {}, not moved {})",
            r.service_id,
            r.state.name(),
            r.moved,
            r.dropped_replicas,
            r.unmoved.len()
        );
        if !r.message.is_empty() {
            t += &format!("\n{}", r.message);
        }
        for u in &r.unmoved {
            t += &format!("\nnot moved: {} ({} bytes): {}", u.key, u.size, u.reason);
        }
        t
    };
    text.push('\n');
    to_stdout(text.as_bytes())?;
    match r.state {
        DrainState::Done | DrainState::Running | DrainState::Leaving => Ok(()),
        s => Err(format!("drain of service {id} ended {}: {}", s.name(), r.message)),
    }
}
