//! The cluster `mmc bench` measures: a MetaService in this process, one
//! memory-provider LocalService as a child process (`mmc local`), and pure
//! clients (no segment) in this process, so every shm put/get is a memcpy
//! into or out of the child's segment mapped here. The cluster runs with a
//! cluster token, as a production cluster does: every connection the
//! measurements open proves it (one handshake per connection).

use mmc_config::{ByteSize, LocalConfig, MetaConfig, Protocol};
use mmc_local::BlockingObjectStore;
use mmc_wire::message::{ClusterStat, Request, Response};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// `spin_wait_us` of the MetaServices (`.0`) and MemCache clients (`.1`)
/// the bench starts, when set by `--meta-spin-us` / `--local-spin-us`.
static SPIN_US: std::sync::OnceLock<(Option<u64>, Option<u64>)> = std::sync::OnceLock::new();

/// Records the spin settings of this run (once, before any cluster starts).
pub fn set_spin(meta_us: Option<u64>, local_us: Option<u64>) {
    let _ = SPIN_US.set((meta_us, local_us));
}

/// `meta.spin_wait_us` of the MetaServices of this run.
pub fn meta_spin_us() -> u64 {
    SPIN_US
        .get()
        .and_then(|s| s.0)
        .unwrap_or(MetaConfig::default().spin_wait_us)
}

/// `local.spin_wait_us` of the MemCache clients of this run.
pub fn local_spin_us() -> u64 {
    SPIN_US
        .get()
        .and_then(|s| s.1)
        .unwrap_or(LocalConfig::default().spin_wait_us)
}

/// `meta.tcp_polling` of the MetaServices the bench starts (`--meta-tcp-polling`).
static TCP_POLLING: std::sync::OnceLock<mmc_config::TcpPolling> = std::sync::OnceLock::new();

/// Records the TCP polling of this run (once, before any cluster starts).
pub fn set_tcp_polling(p: mmc_config::TcpPolling) {
    let _ = TCP_POLLING.set(p);
}

/// `meta.tcp_polling` of the MetaServices of this run.
pub fn tcp_polling() -> mmc_config::TcpPolling {
    TCP_POLLING.get().copied().unwrap_or(MetaConfig::default().tcp_polling)
}

/// `local.transfer_congestion` of the LocalServices the bench starts and of
/// its raw TCP baselines, when set by `--transfer-congestion`.
static CONGESTION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the congestion control of this run (once, before any cluster starts).
pub fn set_congestion(name: Option<String>) {
    if let Some(n) = name {
        let _ = CONGESTION.set(n);
    }
}

/// `local.transfer_congestion` of this run: MemCache's transfer sockets and
/// the raw TCP baselines use the same, so the baseline is the limit of the
/// path MemCache actually takes.
pub fn congestion() -> String {
    CONGESTION
        .get()
        .cloned()
        .unwrap_or_else(|| LocalConfig::default().transfer_congestion)
}

/// How long the child LocalService may take to register.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The memory-provider LocalService child. Dropping it kills it by PID.
pub struct Provider {
    child: Child,
    pub pid: u32,
    pub service_id: u32,
    pub transfer_addr: String,
}

/// Makes the child get SIGKILL when this process dies, even if it is killed
/// before it can clean up (the setting survives `ip netns exec`'s exec).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only makes one
    // async-signal-safe syscall.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The `mmc` binary the services run from: `$MMC_BIN`, else the `mmc`
/// beside this executable (cargo builds both into the same directory).
pub fn mmc_binary() -> Result<std::path::PathBuf, String> {
    if let Some(p) = std::env::var_os("MMC_BIN").filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mmc = exe.with_file_name("mmc");
    if mmc.is_file() {
        Ok(mmc)
    } else {
        Err(format!(
            "the mmc binary is not at {} (build it: cargo build --release -p mmc-cli), and $MMC_BIN is unset",
            mmc.display()
        ))
    }
}

/// The `mmc` binary (services: `mmc meta`, `mmc local`), run inside network
/// namespace `netns` when given.
pub fn mmc_command(netns: Option<&str>) -> Result<Command, String> {
    in_netns(mmc_binary()?, netns)
}

/// This binary (its hidden `bench-client` command), run inside network
/// namespace `netns` when given.
pub fn bench_command(netns: Option<&str>) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the mmc-bench binary: {e}"))?;
    in_netns(exe, netns)
}

fn in_netns(exe: std::path::PathBuf, netns: Option<&str>) -> Result<Command, String> {
    Ok(match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe);
            c
        }
        None => Command::new(exe),
    })
}

/// Writes `text` to a new file at `path` readable by its owner only.
pub fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Provider {
    /// A memory-provider `mmc local` child, in network namespace `netns`
    /// and with its transfer server on `transfer_listen` and the cluster
    /// token of `token_file` when given.
    pub fn spawn_in(
        netns: Option<&str>,
        meta: &str,
        segment: u64,
        transfer_listen: Option<&str>,
        token_file: Option<&std::path::Path>,
    ) -> Result<Provider, String> {
        let mut cmd = mmc_command(netns)?;
        cmd.arg("local")
            .arg("--meta")
            .arg(meta)
            .arg("--dram-size")
            .arg(segment.to_string())
            .arg("--transfer-congestion")
            .arg(congestion())
            .env_remove(mmc_config::LOCAL_CONFIG_ENV)
            // The token, when there is one, is passed explicitly.
            .env_remove(mmc_config::TOKEN_FILE_ENV)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = transfer_listen {
            cmd.arg("--transfer-listen").arg(t);
        }
        if let Some(t) = token_file {
            cmd.arg("--token-file").arg(t);
        }
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start mmc local: {e}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut p = Provider {
            child,
            pid,
            service_id: 0,
            transfer_addr: String::new(),
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("bench-child-out".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                // "localservice <id> ready (transfer <addr>)"
                Ok(line) if line.starts_with("localservice ") => {
                    let w: Vec<&str> = line.split_whitespace().collect();
                    p.service_id = w.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    p.transfer_addr = w.get(4).map(|s| s.trim_end_matches(')').to_owned()).unwrap_or_default();
                    return Ok(p);
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(st)) = p.child.try_wait() {
                        return Err(format!("memory-provider LocalService (pid {pid}) exited early: {st}"));
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "memory-provider LocalService (pid {pid}) not ready after {START_TIMEOUT:?}"
                        ));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(100));
                    let st = p
                        .child
                        .try_wait()
                        .ok()
                        .flatten()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "closed its stdout".into());
                    return Err(format!(
                        "memory-provider LocalService (pid {pid}) failed to start: {st}"
                    ));
                }
            }
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// MetaService (in process) plus the memory-provider child.
pub struct Cluster {
    rt: Option<Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub meta_addr: SocketAddr,
    pub segment: u64,
    pub high_watermark: u8,
    pub low_watermark: u8,
    providers: Vec<Provider>,
    /// The cluster token and the private file holding it (for children).
    token: String,
    token_file: std::path::PathBuf,
}

impl Cluster {
    /// Starts the MetaService on a free loopback port and a LocalService
    /// child contributing a `segment`-byte segment.
    pub fn start(segment: u64) -> Result<Cluster, String> {
        Self::start_with(segment, 1)
    }

    /// Like [`Cluster::start`] with `providers` memory-provider children.
    pub fn start_with(segment: u64, providers: usize) -> Result<Cluster, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mmc-bench-meta")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the MetaService runtime: {e}"))?;
        static CLUSTERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let token = mmc_wire::auth::generate_token().map_err(|e| format!("cannot make a cluster token: {e}"))?;
        let token_file = std::env::temp_dir().join(format!(
            "mmc-bench-token-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        write_private(&token_file, &token)?;
        let mut cfg = MetaConfig {
            listen: "127.0.0.1:0".into(),
            http_listen: String::new(),
            log_level: "warn".into(),
            spin_wait_us: meta_spin_us(),
            tcp_polling: tcp_polling(),
            ..MetaConfig::default()
        };
        cfg.security.token = Some(token.clone());
        let svc = rt.block_on(mmc_meta::MetaService::bind(&cfg))?;
        let meta_addr = svc.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            if let Err(e) = svc
                .run(async {
                    let _ = rx.await;
                })
                .await
            {
                tracing::warn!(error = %e, "bench metaservice stopped");
            }
        });
        let mut c = Cluster {
            rt: Some(rt),
            shutdown: Some(tx),
            meta_addr,
            segment,
            high_watermark: cfg.evict_high_watermark,
            low_watermark: cfg.evict_low_watermark,
            providers: Vec::new(),
            token,
            token_file,
        };
        // On error `c` is dropped here, which stops the MetaService.
        for _ in 0..providers.max(1) {
            let p = Provider::spawn_in(None, &meta_addr.to_string(), segment, None, Some(&c.token_file))?;
            c.providers.push(p);
        }
        Ok(c)
    }

    pub fn provider(&self) -> &Provider {
        &self.providers[0]
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The file holding this cluster's token (for client processes).
    pub fn token_file(&self) -> &std::path::Path {
        &self.token_file
    }

    /// The configuration of a pure client (no segment) of this cluster.
    pub fn client_config(&self, protocol: Protocol) -> LocalConfig {
        let mut cfg = LocalConfig {
            meta_addr: self.meta_addr.to_string(),
            dram_size: ByteSize(0),
            protocol,
            spin_wait_us: local_spin_us(),
            transfer_congestion: congestion(),
            ..LocalConfig::default()
        };
        cfg.security.token = Some(self.token.clone());
        cfg
    }

    /// A pure client (no segment) of this cluster.
    pub fn client(&self, protocol: Protocol) -> Result<BlockingObjectStore, String> {
        BlockingObjectStore::connect(self.client_config(protocol))
            .map_err(|e| format!("cannot connect a {protocol:?} client: {e}"))
    }

    /// A pure shm client with `async_commit` on: a put returns once its
    /// commit is sent (one control round trip instead of two).
    pub fn client_async_commit(&self) -> Result<BlockingObjectStore, String> {
        let cfg = LocalConfig {
            async_commit: true,
            ..self.client_config(Protocol::Auto)
        };
        BlockingObjectStore::connect(cfg).map_err(|e| format!("cannot connect an async-commit client: {e}"))
    }

    /// Cluster statistics through `client`'s control connection.
    pub fn stat(&self, client: &BlockingObjectStore) -> Result<ClusterStat, String> {
        let rt = self.rt.as_ref().expect("running");
        match rt.block_on(client.store().local_service().meta.call(&Request::Stat)) {
            Ok(Response::Stat(s)) => Ok(s),
            Ok(other) => Err(format!("unexpected stat reply {other:?}")),
            Err(e) => Err(format!("stat: {e}")),
        }
    }

    /// The (first) provider's segment, mapped in this process: the memory
    /// the shm workload's objects live in, for the memcpy baselines.
    pub fn provider_segment(&self, client: &BlockingObjectStore) -> Result<mmc_local::segment::Segment, String> {
        let rt = self.rt.as_ref().expect("running");
        let id = self.provider().service_id;
        let peers = match rt.block_on(client.store().local_service().meta.call(&Request::Members)) {
            Ok(Response::Members { peers, .. }) => peers,
            Ok(other) => return Err(format!("unexpected members reply {other:?}")),
            Err(e) => return Err(format!("members: {e}")),
        };
        let desc = peers
            .into_iter()
            .find(|p| p.service_id == id)
            .and_then(|p| p.segment)
            .ok_or_else(|| format!("provider {id} lists no segment"))?;
        mmc_local::segment::Segment::open(&desc.name, desc.size as usize, desc.nonce, true)
            .map_err(|e| format!("cannot map the provider's segment {}: {e}", desc.name))
    }

    /// Bytes in use in the provider's segment.
    pub fn used(&self, client: &BlockingObjectStore) -> Result<u64, String> {
        Ok(self.stat(client)?.segments.iter().map(|s| s.used).sum())
    }

    /// Removes every key and waits until the segment is reported empty
    /// (removed objects are freed once their leases end and the owner has
    /// acknowledged the removal). Returns whether it got empty in time.
    pub fn empty(&self, client: &BlockingObjectStore) -> Result<bool, String> {
        client.remove_all().map_err(|e| format!("remove_all: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.used(client)? == 0 {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The children first (by PID), then the MetaService.
        self.providers.clear();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        let _ = std::fs::remove_file(&self.token_file);
    }
}
