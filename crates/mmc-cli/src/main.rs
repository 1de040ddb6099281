//! `mmc`: the MemCache command line.
//!
//! Service commands (`meta`, `local`, `up`) run until SIGINT/SIGTERM. Client
//! commands (`put`, `get`, `rm`, `stat`) reach the MetaService at
//! 127.0.0.1:5000 unless `--meta` says otherwise, and exit non-zero on any
//! failure, a missing key included.
//!
//! Every command takes `--token-file PATH` (else `$MMC_TOKEN_FILE`, when the
//! configuration names no token): the cluster token proved on every
//! connection. Service commands also take `--insecure`, which allows a
//! non-loopback listen address without a token.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod client;
mod top;

use clap::{Args, Parser, Subcommand};
use mmc_config::{
    ConfigFile, LocalConfig, LogFormat, MetaConfig, Protocol, SecurityConfig, LOCAL_CONFIG_ENV, META_CONFIG_ENV,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the MetaService's index churns through many small allocations
/// (keys, objects, ledger entries), where it is much faster than glibc's
/// malloc (see docs/benchmarks.md, MetaService).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "mmc", version, about = "MemCache: a distributed KV-cache store")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a MetaService.
    Meta(MetaArgs),
    /// Run a memory-provider LocalService (no application).
    Local(LocalArgs),
    /// Run a single-node cluster: a MetaService plus one memory-provider
    /// LocalService, in this process.
    ///
    /// `--config FILE` (default: $MMC_META_CONFIG_PATH for the MetaService,
    /// $MMC_LOCAL_CONFIG_PATH for the LocalService) supplies both services:
    /// its [meta] section configures the MetaService and its [local] section
    /// the LocalService (segment size, log level and format, transfer
    /// settings, ...), except `local.meta_addr`, which is always this
    /// MetaService; an original MemCache `ock.mmc.*` file sets both. Flags
    /// given on the command line override the file. Logs
    /// of the MetaService follow meta.log_level, those of the LocalService
    /// local.log_level.
    Up(UpArgs),
    /// Store a file (or stdin with `-`) under KEY; an existing KEY keeps its
    /// first value (objects are immutable: `mmc rm KEY` first to replace).
    Put(client::PutArgs),
    /// Print the value of KEY to stdout (or to a file with -o).
    Get(client::GetArgs),
    /// Remove KEY.
    Rm(client::RmArgs),
    /// Show members, capacity, usage and key count.
    Stat(client::StatArgs),
    /// Graceful scale-in: move every object of the memory provider
    /// SERVICE_ID to the other providers (respecting their capacity), then
    /// make it leave (`mmc local` exits). Prints the drain report; objects
    /// that could not be moved are listed and stay on the provider.
    Drain(client::DrainArgs),
    /// Live view of the cluster in the terminal, refreshed every second (q quits).
    Top(top::TopArgs),
    /// Measure put/get throughput against same-run baselines: runs the
    /// `mmc-bench` binary beside this one with the same arguments
    /// (`mmc-bench --help` lists them).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Args, Clone)]
struct MetaArgs {
    /// Config file, TOML or the original MemCache's `ock.mmc.<key> = value`
    /// format (default: $MMC_META_CONFIG_PATH, else built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Control-RPC listen address (overrides meta.listen).
    #[arg(long)]
    listen: Option<String>,
    /// HTTP listen address (overrides meta.http_listen; "" disables).
    #[arg(long)]
    http: Option<String>,
    /// Microseconds a connection is polled for its next request (overrides meta.spin_wait_us).
    #[arg(long)]
    spin_wait_us: Option<u64>,
    /// Poll TCP connections too: auto, on or off (overrides meta.tcp_polling).
    #[arg(long)]
    tcp_polling: Option<String>,
    /// HA mode: campaign for leadership in etcd (sets meta.ha.enable).
    #[arg(long)]
    ha: bool,
    /// etcd endpoint(s), comma-separated (overrides meta.ha.etcd_endpoints).
    #[arg(long)]
    etcd: Option<String>,
    /// HA cluster name (overrides meta.ha.cluster_name).
    #[arg(long)]
    cluster: Option<String>,
    /// TTL of the leadership lease, in seconds (overrides meta.ha.lease_ttl_s).
    #[arg(long)]
    lease_ttl: Option<u64>,
    /// Address published for LocalServices while leading (overrides meta.ha.advertise).
    #[arg(long)]
    advertise: Option<String>,
    #[command(flatten)]
    security: ServiceSecurity,
}

/// Splits a comma-separated `--etcd` list.
pub fn etcd_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Environment variable naming the cluster token file, used when neither
/// `--token-file` nor the configuration names a token.
pub use mmc_config::TOKEN_FILE_ENV;

/// Security flags of the service commands.
#[derive(Args, Clone, Default)]
pub struct ServiceSecurity {
    /// File whose first line is the cluster token (overrides security.token
    /// and security.token_file; default: $MMC_TOKEN_FILE).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a cluster token (sets
    /// security.insecure): anyone who reaches the port can read, overwrite
    /// and remove objects.
    #[arg(long)]
    insecure: bool,
}

impl ServiceSecurity {
    fn apply(&self, sec: &mut SecurityConfig) {
        apply_token_file(sec, self.token_file.as_deref());
        if self.insecure {
            sec.insecure = true;
        }
    }
}

/// Sets `sec`'s token file from the flag, else from `$MMC_TOKEN_FILE` when
/// the configuration has no token of its own.
pub fn apply_token_file(sec: &mut SecurityConfig, flag: Option<&std::path::Path>) {
    if let Some(p) = flag {
        sec.token = None;
        sec.token_file = Some(p.display().to_string());
    } else if sec.token.is_none() && sec.token_file.is_none() {
        if let Some(p) = std::env::var_os(TOKEN_FILE_ENV).filter(|p| !p.is_empty()) {
            sec.token_file = Some(std::path::Path::new(&p).display().to_string());
        }
    }
}

#[derive(Args, Clone)]
struct LocalArgs {
    /// Config file, TOML or the original MemCache's `ock.mmc.<key> = value`
    /// format (default: $MMC_LOCAL_CONFIG_PATH, else built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// MetaService address (overrides local.meta_addr).
    #[arg(long)]
    meta: Option<String>,
    /// etcd endpoint(s) of an HA cluster, comma-separated: find the
    /// MetaService leader there (overrides local.etcd_endpoints).
    #[arg(long)]
    etcd: Option<String>,
    /// HA cluster name (overrides local.cluster_name).
    #[arg(long)]
    cluster: Option<String>,
    /// Segment size, e.g. 512MB (overrides local.dram_size).
    #[arg(long)]
    dram_size: Option<String>,
    /// auto or tcp (overrides local.protocol).
    #[arg(long)]
    protocol: Option<String>,
    /// Transfer server listen address (overrides local.transfer_listen).
    #[arg(long)]
    transfer_listen: Option<String>,
    /// TCP congestion control of transfer connections, or "system"
    /// (overrides local.transfer_congestion).
    #[arg(long)]
    transfer_congestion: Option<String>,
    #[command(flatten)]
    security: ServiceSecurity,
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    meta: MetaArgs,
    /// Segment size of the LocalService, e.g. 512MB (overrides
    /// local.dram_size, whose default is 1GB).
    #[arg(long)]
    dram_size: Option<String>,
}

/// Logs of a client command: warnings and errors as text.
pub fn init_logging(level: &str) {
    init_logging_as(level, LogFormat::Text);
}

/// Installs this process's logger on stderr: `filter` is an `EnvFilter`
/// directive (`MMC_LOG`, else `RUST_LOG`, overrides it); text is coloured
/// only when stderr is a terminal, so a log file carries no ANSI codes.
pub fn init_logging_as(filter: &str, format: LogFormat) {
    // Without a log file nothing can fail.
    let _ = init_logging_to(filter, format, None);
}

/// Where a service logs when its configuration sets `log_path`.
pub struct LogFile<'a> {
    /// `log_path` (the file goes to its `logs/` directory).
    pub log_path: &'a str,
    /// `mmc-meta.log` or `mmc-local.log`.
    pub name: &'a str,
    pub rotation_size: u64,
    pub rotation_count: u32,
}

/// As [`init_logging_as`], but into a size-rotated file under
/// `<log_path>/logs/` when `file` is given (one line on stderr says
/// where). Fails when the file cannot be created, naming it.
pub fn init_logging_to(filter: &str, format: LogFormat, file: Option<LogFile<'_>>) -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = ["MMC_LOG", "RUST_LOG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find_map(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(filter));
    let (writer, ansi) = match file {
        Some(f) => {
            let path = mmc_config::log_file_path(f.log_path, f.name);
            let file = mmc_config::RotatingFile::open(&path, f.rotation_size, f.rotation_count)
                .map_err(|e| format!("log_path: {e}"))?;
            eprintln!("mmc: logging to {}", path.display());
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => fmt.try_init(),
        LogFormat::Json => fmt.json().with_ansi(false).try_init(),
    };
    Ok(())
}

/// Logs what reading the configuration files had to say (keys of the
/// original MemCache's format without effect here, protocol fallbacks),
/// each message once per process.
fn log_config_warnings(warnings: &[String]) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for w in warnings {
        if !said.contains(w) {
            tracing::warn!("{w}");
            said.push(w.clone());
        }
    }
}

fn meta_log_file(c: &MetaConfig) -> Option<LogFile<'_>> {
    c.log_path.as_deref().map(|p| LogFile {
        log_path: p,
        name: "mmc-meta.log",
        rotation_size: c.log_rotation_size.0,
        rotation_count: c.log_rotation_count,
    })
}

fn local_log_file(c: &LocalConfig) -> Option<LogFile<'_>> {
    c.log_path.as_deref().map(|p| LogFile {
        log_path: p,
        name: "mmc-local.log",
        rotation_size: c.log_rotation_size.0,
        rotation_count: c.log_rotation_count,
    })
}

/// The MetaService's configuration, and the warnings reading it gave.
fn meta_config(a: &MetaArgs) -> Result<(MetaConfig, Vec<String>), String> {
    let file = ConfigFile::load_or_env(a.config.as_deref(), META_CONFIG_ENV).map_err(|e| e.to_string())?;
    let warnings = file.warnings;
    let mut c = file.meta;
    if let Some(l) = &a.listen {
        c.listen = l.clone();
    }
    if let Some(us) = a.spin_wait_us {
        c.spin_wait_us = us;
    }
    if let Some(p) = &a.tcp_polling {
        c.tcp_polling = p.parse().map_err(|e| format!("--tcp-polling: {e}"))?;
    }
    if let Some(h) = &a.http {
        c.http_listen = h.clone();
    }
    if a.ha {
        c.ha.enable = true;
    }
    if let Some(e) = &a.etcd {
        c.ha.etcd_endpoints = etcd_list(e);
    }
    if let Some(n) = &a.cluster {
        c.ha.cluster_name = n.clone();
    }
    if let Some(t) = a.lease_ttl {
        c.ha.lease_ttl_s = t;
    }
    if let Some(ad) = &a.advertise {
        c.ha.advertise = ad.clone();
    }
    a.security.apply(&mut c.security);
    c.validate().map_err(|e| e.to_string())?;
    Ok((c, warnings))
}

pub fn local_config(
    config: Option<&std::path::Path>,
    meta: Option<&str>,
    dram_size: Option<&str>,
    protocol: Option<&str>,
) -> Result<LocalConfig, String> {
    local_config_warn(config, meta, dram_size, protocol).map(|(c, _)| c)
}

/// [`local_config`], and the warnings reading the file gave.
fn local_config_warn(
    config: Option<&std::path::Path>,
    meta: Option<&str>,
    dram_size: Option<&str>,
    protocol: Option<&str>,
) -> Result<(LocalConfig, Vec<String>), String> {
    let file = ConfigFile::load_or_env(config, LOCAL_CONFIG_ENV).map_err(|e| e.to_string())?;
    let warnings = file.warnings;
    let mut c = file.local;
    if let Some(m) = meta {
        c.meta_addr = m.to_owned();
    }
    if let Some(s) = dram_size {
        c.dram_size = mmc_config::ByteSize(mmc_config::parse_size(s).map_err(|e| format!("--dram-size: {e}"))?);
    }
    if let Some(p) = protocol {
        c.protocol = match p {
            "auto" => Protocol::Auto,
            "tcp" => Protocol::Tcp,
            _ => return Err(format!("--protocol: `{p}` is not auto or tcp")),
        };
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok((c, warnings))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn run_meta(a: MetaArgs) -> Result<(), String> {
    let (cfg, warnings) = meta_config(&a)?;
    init_logging_to(&cfg.log_level, cfg.log_format, meta_log_file(&cfg))?;
    log_config_warnings(&warnings);
    runtime().block_on(async {
        let svc = mmc_meta::MetaService::bind(&cfg).await?;
        tracing::info!(listen = %svc.local_addr(), http = ?svc.http_addr(), ha = cfg.ha.enable, "metaservice ready");
        svc.run(shutdown_signal()).await.map_err(|e| e.to_string())
    })
}

fn run_local(a: LocalArgs) -> Result<(), String> {
    let (mut cfg, warnings) = local_config_warn(
        a.config.as_deref(),
        a.meta.as_deref(),
        a.dram_size.as_deref(),
        a.protocol.as_deref(),
    )?;
    if let Some(t) = a.transfer_listen {
        cfg.transfer_listen = t;
    }
    if let Some(c) = a.transfer_congestion {
        cfg.transfer_congestion = c;
    }
    if let Some(e) = &a.etcd {
        cfg.etcd_endpoints = etcd_list(e);
    }
    if let Some(n) = a.cluster {
        cfg.cluster_name = n;
    }
    a.security.apply(&mut cfg.security);
    cfg.validate().map_err(|e| e.to_string())?;
    if cfg.dram_size.0 == 0 {
        return Err("local.dram_size is 0: a memory-provider LocalService needs a segment".into());
    }
    init_logging_to(cfg.log_level_or("info"), cfg.log_format, local_log_file(&cfg))?;
    log_config_warnings(&warnings);
    let store = mmc_local::ObjectStore::connect(cfg).map_err(|e| e.to_string())?;
    let (id, transfer) = (store.service_id(), store.transfer_addr().to_owned());
    tracing::info!(service = id, transfer = %transfer, "localservice ready");
    println!("localservice {id} ready (transfer {transfer})");
    let rt = runtime();
    let drained = rt.block_on(async {
        tokio::select! {
            _ = shutdown_signal() => false,
            _ = store.wait_drained() => true,
        }
    });
    if drained {
        // Logged only: stdout may be a pipe nobody reads any more.
        tracing::info!(service = id, "drained and left the cluster: exiting");
        return Ok(());
    }
    store.blocking().close();
    Ok(())
}

/// The log filter of `mmc up`: each service's crate at its own level, the
/// rest (this binary, the wire layer) at the more verbose of the two.
fn up_log_filter(meta: &str, local: &str) -> String {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let rank = |l: &str| LEVELS.iter().position(|x| *x == l).unwrap_or(2);
    let rest = if rank(meta) >= rank(local) { meta } else { local };
    format!("{rest},mmc_meta={meta},mmc_local={local}")
}

/// `s`, quoted for a POSIX shell when it holds anything but plain characters.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+=@%,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn run_up(a: UpArgs) -> Result<(), String> {
    let (mcfg, mut warnings) = meta_config(&a.meta)?;
    // The file's [local] section (meta_addr is replaced once bound).
    let (mut lcfg, local_warnings) = local_config_warn(a.meta.config.as_deref(), None, a.dram_size.as_deref(), None)?;
    warnings.extend(local_warnings);
    // One cluster: the LocalService proves the MetaService's token, unless
    // the file gives it security settings of its own.
    if lcfg.security == SecurityConfig::default() {
        lcfg.security = mcfg.security.clone();
    } else {
        a.meta.security.apply(&mut lcfg.security);
    }
    if lcfg.dram_size.0 == 0 {
        return Err("local.dram_size is 0: `mmc up` runs a memory-provider LocalService, which needs a segment".into());
    }
    let format = if lcfg.log_format == LogFormat::Json {
        LogFormat::Json
    } else {
        mcfg.log_format
    };
    // One process, one log: the MetaService's file when it names one.
    let file = meta_log_file(&mcfg).or_else(|| local_log_file(&lcfg));
    init_logging_to(&up_log_filter(&mcfg.log_level, lcfg.log_level_or("info")), format, file)?;
    log_config_warnings(&warnings);
    let rt = runtime();
    let svc = rt.block_on(mmc_meta::MetaService::bind(&mcfg))?;
    let addr = svc.local_addr();
    let http = svc.http_addr();
    let meta_task = rt.spawn(svc.run(shutdown_signal()));
    lcfg.meta_addr = addr.to_string();
    lcfg.validate().map_err(|e| e.to_string())?;
    let segment = mmc_config::format_size(lcfg.dram_size.0);
    let token_file = lcfg.security.token_file.clone();
    let store = mmc_local::ObjectStore::connect(lcfg).map_err(|e| e.to_string())?;
    println!(
        "memcache up: metaservice {addr}{}, localservice {} with a {segment} segment",
        http.map(|h| format!(" (http {h})")).unwrap_or_default(),
        store.service_id(),
    );
    let exe = std::env::current_exe()
        .map(|p| shell_word(&p.display().to_string()))
        .unwrap_or_else(|_| "mmc".into());
    let mut flags = String::new();
    if addr.to_string() != LocalConfig::default().meta_addr {
        flags += &format!(" --meta {addr}");
    }
    if let Some(f) = token_file {
        flags += &format!(" --token-file {}", shell_word(&f));
    }
    println!("try: {exe} put{flags} hello - <<< world; {exe} get{flags} hello; {exe} stat{flags}   (Ctrl-C stops)");
    rt.block_on(meta_task)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    drop(store);
    Ok(())
}

/// `mmc bench ARGS`: replaces this process with `mmc-bench ARGS` (the
/// benchmark lives in its own binary, built beside this one).
fn run_bench(args: Vec<std::ffi::OsString>) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let bench = exe.with_file_name("mmc-bench");
    if !bench.is_file() {
        return Err(format!(
            "the benchmark is a separate binary, not found at {}: build it with cargo build --release -p mmc-bench",
            bench.display()
        ));
    }
    let e = std::process::Command::new(&bench).args(args).exec();
    Err(format!("cannot run {}: {e}", bench.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Meta(a) => run_meta(a),
        Cmd::Local(a) => run_local(a),
        Cmd::Up(a) => run_up(a),
        Cmd::Put(a) => client::put(a),
        Cmd::Get(a) => client::get(a),
        Cmd::Rm(a) => client::rm(a),
        Cmd::Stat(a) => client::stat(a),
        Cmd::Drain(a) => client::drain(a),
        Cmd::Top(a) => top::run(a),
        Cmd::Bench { args } => run_bench(args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmc: {e}");
            ExitCode::FAILURE
        }
    }
}
