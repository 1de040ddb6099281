//! MemCache configuration.
//!
//! One TOML format for both services: a `[meta]` section for the MetaService
//! and a `[local]` section for LocalServices. Every key has a default, unknown
//! keys are rejected, and [`MetaConfig::validate`] / [`LocalConfig::validate`]
//! name the offending key and its allowed range. Sizes accept `128MB`, `2.5G`,
//! `1TB`, `4096` (bytes; powers of 1024).
//!
//! The original MemCache's `ock.mmc.<key> = value` files are read too
//! (detected by their content, see [`ock`]), so its users keep their files.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[doc(hidden)]
pub mod fuzzing;
mod log_file;
pub mod ock;
mod security;
mod size;

pub use log_file::{log_file_path, RotatingFile};
pub use security::{is_loopback_addr, SecurityConfig, TlsConfig, MIN_TOKEN_LEN};
pub use size::{format_size, parse_size};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Environment variable naming the MetaService configuration file.
pub const META_CONFIG_ENV: &str = "MMC_META_CONFIG_PATH";
/// Environment variable naming the LocalService configuration file.
pub const LOCAL_CONFIG_ENV: &str = "MMC_LOCAL_CONFIG_PATH";
/// Environment variable naming the cluster token file, used by the command
/// line tools when neither a flag nor the configuration names a token.
pub const TOKEN_FILE_ENV: &str = "MMC_TOKEN_FILE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config key `{key}`: {msg}")]
    Invalid { key: String, msg: String },
    /// A line of an `ock.mmc.<key> = value` file (see [`ock`]).
    #[error("{}: `{key}`: {msg}", ock::location(.path, *.line))]
    Line {
        /// The file, when read from one.
        path: Option<String>,
        /// 1-based line number.
        line: usize,
        key: String,
        msg: String,
    },
}

fn invalid(key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        msg: msg.into(),
    }
}

/// A whole configuration file: any section may be absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Security settings for both services at once (token, TLS): copied
    /// into `meta.security` and `local.security` where those are not set.
    pub cluster: Option<SecurityConfig>,
    pub meta: MetaConfig,
    pub local: LocalConfig,
    /// What the reader wants said about the file but is not an error: keys
    /// of the original MemCache's format that have no effect here, protocol
    /// names that fall back to the paths available here. The caller logs
    /// them once logging is set up ([`ConfigFile::load`] does not log).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl ConfigFile {
    /// Reads a config file's text in either format: the original MemCache's
    /// `ock.mmc.<key> = value` lines when the first line that is not blank
    /// or a comment starts with `ock.` (see [`ock`]), else TOML.
    pub fn from_text(text: &str) -> Result<Self, ConfigError> {
        if ock::is_ock_format(text) {
            ock::parse(text)
        } else {
            Self::from_toml(text)
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut cfg: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(cluster) = &cfg.cluster {
            if cfg.meta.security == SecurityConfig::default() {
                cfg.meta.security = cluster.clone();
            }
            if cfg.local.security == SecurityConfig::default() {
                cfg.local.security = cluster.clone();
            }
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.display().to_string(),
            err,
        })?;
        let at_path = |e: ConfigError| match e {
            ConfigError::Line { line, key, msg, .. } => ConfigError::Line {
                path: Some(path.display().to_string()),
                line,
                key,
                msg,
            },
            e => e,
        };
        let mut cfg = Self::from_text(&text).map_err(at_path)?;
        for w in &mut cfg.warnings {
            if let Some(rest) = w.strip_prefix("line ") {
                *w = format!("{}:{rest}", path.display());
            }
        }
        cfg.meta.validate()?;
        cfg.local.validate()?;
        Ok(cfg)
    }

    /// Loads `explicit`, else the file named by `env_var`, else the
    /// defaults. Either format (see [`ConfigFile::from_text`]).
    pub fn load_or_env(explicit: Option<&Path>, env_var: &str) -> Result<Self, ConfigError> {
        if let Some(p) = explicit {
            return Self::load(p);
        }
        match std::env::var_os(env_var) {
            Some(p) if !p.is_empty() => Self::load(Path::new(&p)),
            _ => Ok(Self::default()),
        }
    }
}

/// Default `meta.max_connections` and `local.max_transfer_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// Largest connection limit accepted.
pub const MAX_CONNECTIONS_LIMIT: u64 = 1_000_000;

/// Largest `spin_wait_us` accepted: 10 ms.
pub const MAX_SPIN_WAIT_US: u64 = 10_000;

/// A byte size written as a number of bytes or a string such as `"512MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SizeRepr", into = "SizeRepr")]
pub struct ByteSize(pub u64);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Int(u64),
    Str(String),
}

impl TryFrom<SizeRepr> for ByteSize {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Int(n) => Ok(ByteSize(n)),
            SizeRepr::Str(s) => parse_size(&s).map(ByteSize),
        }
    }
}

impl From<ByteSize> for SizeRepr {
    fn from(b: ByteSize) -> Self {
        SizeRepr::Str(format_size(b.0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaConfig {
    pub enable: bool,
    pub etcd_endpoints: Vec<String>,
    /// MetaServices (and LocalServices) with the same name form one cluster.
    pub cluster_name: String,
    /// TTL of the etcd lease leadership is bound to, in seconds: a standby
    /// takes over within about this long after the leader dies.
    pub lease_ttl_s: u64,
    /// `host:port` LocalServices and clients reach this MetaService at,
    /// published in etcd while it leads; empty: the bound `meta.listen`
    /// address (which must then not be a wildcard address).
    pub advertise: String,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            enable: false,
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            cluster_name: "memcache".into(),
            lease_ttl_s: 5,
            advertise: String::new(),
        }
    }
}

/// The etcd election name (key prefix) of HA cluster `cluster`: candidates
/// put their keys under it and the leader's key carries its address.
pub fn ha_election_name(cluster: &str) -> String {
    format!("/memcache/{cluster}/leader")
}

/// Checks an HA cluster name: 1 to 128 characters of `[A-Za-z0-9._-]`.
fn check_cluster_name(key: &'static str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{v}` must be 1 to 128 characters of A-Z a-z 0-9 . _ -"),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    /// Control-RPC listen address.
    pub listen: String,
    /// HTTP (health, metrics, queries) listen address; empty disables it.
    pub http_listen: String,
    /// Percent of a medium's capacity above which background eviction starts.
    pub evict_high_watermark: u8,
    /// Percent of a medium's capacity background eviction brings usage down to.
    pub evict_low_watermark: u8,
    /// Read lease granted by a lookup, in milliseconds.
    pub lease_ms: u64,
    /// A write left uncommitted this long is reclaimed, in milliseconds.
    pub put_timeout_ms: u64,
    /// A LocalService silent this long is declared dead, in milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// After serving a data-path request (alloc, finish, lookup, exist, key
    /// info, remove), poll its connection for the next one this long
    /// (microseconds) before sleeping; 0 never polls. Saves the wake-up of a
    /// sleeping thread (tens of microseconds on a virtual machine) when
    /// requests come back to back, at the cost of up to that much CPU time
    /// per request. Heartbeats and other control requests never poll.
    pub spin_wait_us: u64,
    /// Whether connections of clients on other hosts (TCP; the same-host
    /// shared-memory rings always follow `spin_wait_us`) are polled too:
    /// `auto` polls them on machines of 4 CPUs or more. A polling thread
    /// holds a CPU; on a 2-CPU host that also runs memory providers it took
    /// the CPU their transfers needed (docs/benchmarks.md).
    pub tcp_polling: TcpPolling,
    /// Most control connections served at once; more are accepted and
    /// closed at once (counted in `mmc_connections_refused_total`).
    pub max_connections: u64,
    /// Once a control frame's first byte has arrived, the whole frame must
    /// arrive within this many milliseconds or the connection is closed.
    /// Idle time between frames is not bounded (clients pool connections).
    pub frame_timeout_ms: u64,
    /// `error`, `warn`, `info`, `debug` or `trace`; `MMC_LOG` / `RUST_LOG`
    /// override it.
    pub log_level: String,
    /// `text` (coloured only when stderr is a terminal) or `json` (one JSON
    /// object per line).
    pub log_format: LogFormat,
    /// Log to files under `<log_path>/logs/` (`mmc-meta.log`) instead of
    /// stderr, as the original MemCache's `ock.mmc.log_path`; a relative
    /// path is relative to the working directory. Unset: stderr.
    pub log_path: Option<String>,
    /// A log file that reaches this size is rotated (`.1` is the newest
    /// old file).
    pub log_rotation_size: ByteSize,
    /// Rotated log files kept besides the current one.
    pub log_rotation_count: u32,
    pub ha: HaConfig,
    /// Cluster token and TLS (`[meta.security]`, or `[cluster]` for both services).
    pub security: SecurityConfig,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            listen: "127.0.0.1:5000".into(),
            http_listen: "127.0.0.1:8000".into(),
            evict_high_watermark: 90,
            evict_low_watermark: 80,
            lease_ms: 2000,
            put_timeout_ms: 30_000,
            heartbeat_timeout_ms: 5000,
            spin_wait_us: 200,
            tcp_polling: TcpPolling::Auto,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            frame_timeout_ms: 10_000,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            log_path: None,
            log_rotation_size: ByteSize(DEFAULT_LOG_ROTATION_SIZE),
            log_rotation_count: DEFAULT_LOG_ROTATION_COUNT,
            ha: HaConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

fn check_addr(key: &'static str, v: &str) -> Result<(), ConfigError> {
    v.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| invalid(key, format!("`{v}` is not an ip:port socket address")))
}

fn check_range(key: &'static str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(invalid(key, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(())
}

/// A congestion-control name as the kernel spells them (`TCP_CA_NAME_MAX`
/// is 16 bytes with the terminator), or `system`.
fn check_congestion(key: &'static str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty() && v.len() < 16 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{v}` is not a congestion-control name (like cubic, reno, bbr) or `system`"),
        ))
    }
}

fn check_log_level(key: &'static str, v: &str) -> Result<(), ConfigError> {
    match v {
        "error" | "warn" | "info" | "debug" | "trace" => Ok(()),
        _ => Err(invalid(
            key,
            format!("`{v}` is not one of error, warn, info, debug, trace"),
        )),
    }
}

/// Default `log_rotation_size`: 20 MB, as the original MemCache.
pub const DEFAULT_LOG_ROTATION_SIZE: u64 = 20 << 20;
/// Default `log_rotation_count`: 50, as the original MemCache.
pub const DEFAULT_LOG_ROTATION_COUNT: u32 = 50;
/// Smallest `log_rotation_size` accepted: 4 KB.
pub const MIN_LOG_ROTATION_SIZE: u64 = 4 << 10;

fn check_log_files(section: &str, path: &Option<String>, size: ByteSize, count: u32) -> Result<(), ConfigError> {
    if path.as_deref() == Some("") {
        return Err(invalid(
            format!("{section}.log_path"),
            "must name a directory (leave it unset to log to stderr)",
        ));
    }
    if size.0 < MIN_LOG_ROTATION_SIZE || size.0 > 1 << 40 {
        return Err(invalid(
            format!("{section}.log_rotation_size"),
            format!("{} is outside 4KB..=1TB", format_size(size.0)),
        ));
    }
    if !(1..=1000).contains(&count) {
        return Err(invalid(
            format!("{section}.log_rotation_count"),
            format!("{count} is outside 1..=1000"),
        ));
    }
    Ok(())
}

/// `meta.log_format` / `local.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when the output is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("`{s}` is not text or json")),
        }
    }
}

impl LocalConfig {
    /// `log_level`, else `default` (`info` for a service, `warn` for a
    /// library client).
    pub fn log_level_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.log_level.as_deref().unwrap_or(default)
    }
}

impl MetaConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_addr("meta.listen", &self.listen)?;
        if !self.http_listen.is_empty() {
            check_addr("meta.http_listen", &self.http_listen)?;
        }
        check_range("meta.evict_high_watermark", self.evict_high_watermark as u64, 1, 100)?;
        check_range(
            "meta.evict_low_watermark",
            self.evict_low_watermark as u64,
            0,
            self.evict_high_watermark as u64,
        )?;
        check_range("meta.lease_ms", self.lease_ms, 10, 3_600_000)?;
        check_range("meta.put_timeout_ms", self.put_timeout_ms, 10, 86_400_000)?;
        check_range("meta.heartbeat_timeout_ms", self.heartbeat_timeout_ms, 100, 3_600_000)?;
        check_range("meta.spin_wait_us", self.spin_wait_us, 0, MAX_SPIN_WAIT_US)?;
        check_range("meta.max_connections", self.max_connections, 1, MAX_CONNECTIONS_LIMIT)?;
        check_range("meta.frame_timeout_ms", self.frame_timeout_ms, 10, 3_600_000)?;
        check_log_level("meta.log_level", &self.log_level)?;
        check_log_files("meta", &self.log_path, self.log_rotation_size, self.log_rotation_count)?;
        if self.ha.enable && self.ha.etcd_endpoints.is_empty() {
            return Err(invalid(
                "meta.ha.etcd_endpoints",
                "must list at least one endpoint when ha.enable",
            ));
        }
        check_range("meta.ha.lease_ttl_s", self.ha.lease_ttl_s, 1, 3600)?;
        check_cluster_name("meta.ha.cluster_name", &self.ha.cluster_name)?;
        if self.ha.advertise.len() > 255 {
            return Err(invalid("meta.ha.advertise", "longer than 255 bytes"));
        }
        self.security.validate("meta.security")?;
        Ok(())
    }
}

/// `meta.tcp_polling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpPolling {
    /// On when the machine has at least [`TCP_POLLING_MIN_CPUS`] CPUs.
    Auto,
    On,
    Off,
}

/// CPUs from which `meta.tcp_polling = "auto"` polls TCP connections.
pub const TCP_POLLING_MIN_CPUS: usize = 4;

impl TcpPolling {
    /// The value as the config file spells it.
    pub fn name(self) -> &'static str {
        match self {
            TcpPolling::Auto => "auto",
            TcpPolling::On => "on",
            TcpPolling::Off => "off",
        }
    }

    /// Whether TCP connections are polled on a machine of `cpus` CPUs.
    pub fn enabled(self, cpus: usize) -> bool {
        match self {
            TcpPolling::Auto => cpus >= TCP_POLLING_MIN_CPUS,
            TcpPolling::On => true,
            TcpPolling::Off => false,
        }
    }
}

impl std::str::FromStr for TcpPolling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [TcpPolling::Auto, TcpPolling::On, TcpPolling::Off]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("`{s}` is not auto, on or off"))
    }
}

/// Data path between LocalServices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Shared memory with LocalServices on the same host, TCP otherwise.
    Auto,
    /// TCP always, even on the same host.
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// MetaService control address (unused when `etcd_endpoints` is set).
    pub meta_addr: String,
    /// etcd endpoints of an HA cluster (`http://host:port`): the MetaService
    /// leader is found there (election of `cluster_name`) and found again
    /// after a failover. Empty: `meta_addr` is the MetaService.
    pub etcd_endpoints: Vec<String>,
    /// The HA cluster's name (`meta.ha.cluster_name` of its MetaServices).
    pub cluster_name: String,
    /// How long a call waits for a MetaService leader to appear in etcd and
    /// accept a connection before failing with NOT_CONNECTED_META, in
    /// milliseconds.
    pub leader_wait_ms: u64,
    /// DRAM segment contributed to the pool; 0 makes a pure client.
    pub dram_size: ByteSize,
    pub protocol: Protocol,
    /// Transfer server listen address; port 0 lets the OS pick.
    pub transfer_listen: String,
    /// Address advertised to peers; defaults to the bound listen address.
    pub transfer_advertise: Option<String>,
    /// Overrides the host id derived from machine id and network namespace.
    pub host_id: Option<String>,
    /// Allocate and map every page of the segment at start, and fill the
    /// page tables of peers' segments when first mapped, so the data path
    /// takes no page faults (the segment's memory is committed at once).
    pub prefault_segments: bool,
    /// Return from a put once its bytes are copied and its commit is sent,
    /// without waiting for the MetaService's answer: one control round trip
    /// per put instead of two. The writer sees its own puts at once (its
    /// requests are processed in order); others see them a moment later; a
    /// commit that fails (the write was reclaimed) is logged, not returned.
    pub async_commit: bool,
    /// Poll the MetaService connection for the answer to a data-path request
    /// (alloc, lookup, exist, remove, ...) this long (microseconds) from the
    /// calling thread before sleeping; 0 never polls. Saves the wake-up of a
    /// sleeping thread (tens of microseconds on a virtual machine) per
    /// request, at the cost of that much CPU time while waiting.
    pub spin_wait_us: u64,
    /// Threads of the LocalService's async runtime.
    pub worker_threads: u32,
    /// TCP connections per peer a large transfer (2 MiB and more) is split
    /// over, less the transfers to that peer already in flight (a batch of
    /// large objects keeps about this many busy rather than this many each).
    pub transfer_connections: u32,
    /// TCP congestion control of the transfer connections (both ends), or
    /// `system` for the kernel's default. BBR, a common default, paces
    /// every send with timers; a transfer is one burst then silence, and
    /// paced bursts between two namespaces of docs/benchmarks.md's machine
    /// moved 2.3-2.9 GB/s against 11 GB/s unpaced (cubic). A name the
    /// kernel does not offer is logged once and the default kept.
    pub transfer_congestion: String,
    /// Control RPC timeout, in milliseconds.
    pub rpc_timeout_ms: u64,
    /// While the MetaService cannot be reached (connection refused or not
    /// answered), keep trying to connect every 200 ms for this long before
    /// failing with NOT_CONNECTED_META (the original MemCache's
    /// `ock.mmc.client.retry_milliseconds`); 0 fails at once.
    pub meta_retry_ms: u64,
    /// Data transfer timeout, in milliseconds: the time one transfer may
    /// take, an object (or a chunk of a large one) or the share of a batch's
    /// objects one connection carries to a peer.
    pub transfer_timeout_ms: u64,
    /// Most transfer connections (from peers' LocalServices) served at
    /// once; more are accepted and closed at once.
    pub max_transfer_connections: u64,
    pub heartbeat_interval_ms: u64,
    /// `error`, `warn`, `info`, `debug` or `trace`. Unset, a service
    /// (`mmc local`, `mmc up`) logs at `info` and a library client (Python,
    /// C) at `warn`; `MMC_LOG` / `RUST_LOG` override it.
    pub log_level: Option<String>,
    /// `text` or `json`, as `meta.log_format`.
    pub log_format: LogFormat,
    /// As `meta.log_path` (the file is `mmc-local.log`).
    pub log_path: Option<String>,
    /// As `meta.log_rotation_size`.
    pub log_rotation_size: ByteSize,
    /// As `meta.log_rotation_count`.
    pub log_rotation_count: u32,
    /// Cluster token and TLS (`[local.security]`, or `[cluster]` for both services).
    pub security: SecurityConfig,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            meta_addr: "127.0.0.1:5000".into(),
            etcd_endpoints: Vec::new(),
            cluster_name: "memcache".into(),
            leader_wait_ms: 10_000,
            dram_size: ByteSize(1 << 30),
            protocol: Protocol::Auto,
            transfer_listen: "127.0.0.1:0".into(),
            transfer_advertise: None,
            host_id: None,
            prefault_segments: true,
            async_commit: false,
            spin_wait_us: 100,
            worker_threads: 2,
            transfer_connections: 4,
            transfer_congestion: "cubic".into(),
            rpc_timeout_ms: 10_000,
            meta_retry_ms: 0,
            transfer_timeout_ms: 30_000,
            max_transfer_connections: DEFAULT_MAX_CONNECTIONS,
            heartbeat_interval_ms: 1000,
            log_level: None,
            log_format: LogFormat::Text,
            log_path: None,
            log_rotation_size: ByteSize(DEFAULT_LOG_ROTATION_SIZE),
            log_rotation_count: DEFAULT_LOG_ROTATION_COUNT,
            security: SecurityConfig::default(),
        }
    }
}

impl LocalConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.meta_addr.is_empty() && self.etcd_endpoints.is_empty() {
            return Err(invalid(
                "local.meta_addr",
                "must not be empty (unless local.etcd_endpoints is set)",
            ));
        }
        check_cluster_name("local.cluster_name", &self.cluster_name)?;
        check_range("local.leader_wait_ms", self.leader_wait_ms, 10, 3_600_000)?;
        if self.dram_size.0 != 0 && self.dram_size.0 < (1 << 20) {
            return Err(invalid(
                "local.dram_size",
                format!("{} is below the 1MB minimum (0 makes a pure client)", self.dram_size.0),
            ));
        }
        if self.dram_size.0 >= 1 << 48 {
            return Err(invalid("local.dram_size", "must be below 256TB"));
        }
        check_addr("local.transfer_listen", &self.transfer_listen)?;
        if let Some(a) = &self.transfer_advertise {
            check_addr("local.transfer_advertise", a)?;
        }
        check_range("local.spin_wait_us", self.spin_wait_us, 0, MAX_SPIN_WAIT_US)?;
        check_range("local.worker_threads", self.worker_threads as u64, 1, 256)?;
        check_range("local.transfer_connections", self.transfer_connections as u64, 1, 64)?;
        check_congestion("local.transfer_congestion", &self.transfer_congestion)?;
        check_range("local.rpc_timeout_ms", self.rpc_timeout_ms, 10, 3_600_000)?;
        check_range("local.meta_retry_ms", self.meta_retry_ms, 0, 3_600_000)?;
        check_range("local.transfer_timeout_ms", self.transfer_timeout_ms, 10, 3_600_000)?;
        check_range(
            "local.max_transfer_connections",
            self.max_transfer_connections,
            1,
            MAX_CONNECTIONS_LIMIT,
        )?;
        check_range("local.heartbeat_interval_ms", self.heartbeat_interval_ms, 10, 60_000)?;
        if let Some(l) = &self.log_level {
            check_log_level("local.log_level", l)?;
        }
        check_log_files("local", &self.log_path, self.log_rotation_size, self.log_rotation_count)?;
        self.security.validate("local.security")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_and_frame_timeout_are_validated() {
        let m = MetaConfig {
            max_connections: 0,
            ..Default::default()
        };
        assert!(m.validate().unwrap_err().to_string().contains("meta.max_connections"));
        let m = MetaConfig {
            frame_timeout_ms: 5,
            ..Default::default()
        };
        assert!(m.validate().unwrap_err().to_string().contains("meta.frame_timeout_ms"));
        let l = LocalConfig {
            max_transfer_connections: MAX_CONNECTIONS_LIMIT + 1,
            ..Default::default()
        };
        assert!(l
            .validate()
            .unwrap_err()
            .to_string()
            .contains("local.max_transfer_connections"));
        let f = ConfigFile::from_toml("[meta]\nmax_connections = 8\nframe_timeout_ms = 500\n").unwrap();
        assert_eq!((f.meta.max_connections, f.meta.frame_timeout_ms), (8, 500));
    }

    #[test]
    fn defaults_are_valid() {
        let c = ConfigFile::default();
        c.meta.validate().unwrap();
        c.local.validate().unwrap();
        assert_eq!(c.meta.listen, "127.0.0.1:5000");
        assert_eq!(c.local.dram_size.0, 1 << 30);
    }

    #[test]
    fn parses_sizes_and_sections() {
        let c = ConfigFile::from_toml("[meta]\nlease_ms = 500\n[local]\ndram_size = \"2.5G\"\nprotocol = \"tcp\"\n")
            .unwrap();
        assert_eq!(c.meta.lease_ms, 500);
        assert_eq!(c.local.dram_size.0, (2.5 * (1u64 << 30) as f64) as u64);
        assert_eq!(c.local.protocol, Protocol::Tcp);
        let c = ConfigFile::from_toml("[meta]\ntcp_polling = \"off\"\n").unwrap();
        assert_eq!(c.meta.tcp_polling, TcpPolling::Off);
        assert!(!c.meta.tcp_polling.enabled(64));
        assert!(TcpPolling::On.enabled(1));
        assert!(!TcpPolling::Auto.enabled(2) && TcpPolling::Auto.enabled(TCP_POLLING_MIN_CPUS));
        for p in [TcpPolling::Auto, TcpPolling::On, TcpPolling::Off] {
            assert_eq!(p.name().parse::<TcpPolling>(), Ok(p));
        }
        assert!("sometimes".parse::<TcpPolling>().unwrap_err().contains("sometimes"));
        let e = ConfigFile::from_toml("[meta]\ntcp_polling = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tcp_polling") && e.contains("sometimes"), "{e}");
        let c = ConfigFile::from_toml("[local]\ndram_size = 67108864\n").unwrap();
        assert_eq!(c.local.dram_size.0, 64 << 20);
        assert_eq!(
            (c.local.log_level.as_deref(), c.local.log_format),
            (None, LogFormat::Text)
        );
        let c = ConfigFile::from_toml(
            "[meta]\nlog_format = \"json\"\n[local]\nlog_level = \"warn\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(
            (c.meta.log_format, c.local.log_format),
            (LogFormat::Json, LogFormat::Json)
        );
        assert_eq!(c.local.log_level_or("info"), "warn");
        let e = ConfigFile::from_toml("[meta]\nlog_format = \"xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml"), "{e}");
        let e = ConfigFile::from_toml("[local]\nlog_level = \"loud\"\n")
            .unwrap()
            .local
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("local.log_level"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = ConfigFile::from_toml("[local]\nbogus = 1\n").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = ConfigFile::from_toml("[local]\ndram_size = \"12XB\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("12XB"), "{e}");
        let mut m = MetaConfig {
            evict_high_watermark: 50,
            evict_low_watermark: 60,
            ..Default::default()
        };
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("meta.evict_low_watermark"), "{e}");
        m.evict_low_watermark = 10;
        m.listen = "nope".into();
        assert!(m.validate().unwrap_err().to_string().contains("meta.listen"));
        let l = LocalConfig {
            worker_threads: 0,
            ..Default::default()
        };
        assert!(l.validate().unwrap_err().to_string().contains("local.worker_threads"));
        let l = LocalConfig {
            spin_wait_us: MAX_SPIN_WAIT_US + 1,
            ..Default::default()
        };
        assert!(l.validate().unwrap_err().to_string().contains("local.spin_wait_us"));
        let m = MetaConfig {
            spin_wait_us: MAX_SPIN_WAIT_US + 1,
            ..Default::default()
        };
        assert!(m.validate().unwrap_err().to_string().contains("meta.spin_wait_us"));
        let e = ConfigFile::from_toml("[meta]\nspin_wait_us = -1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("spin_wait_us"), "{e}");
        for bad in ["", "cubic; rm", "averyveryverylongname"] {
            let l = LocalConfig {
                transfer_congestion: bad.into(),
                ..Default::default()
            };
            let e = l.validate().unwrap_err().to_string();
            assert!(e.contains("local.transfer_congestion"), "{bad:?}: {e}");
        }
        for good in ["system", "reno", "bbr"] {
            let l = LocalConfig {
                transfer_congestion: good.into(),
                ..Default::default()
            };
            l.validate().unwrap();
        }
    }
}
