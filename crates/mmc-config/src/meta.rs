//! The `[meta]` section: [`MetaConfig`] with its defaults and validation,
//! the HA settings ([`HaConfig`]) and `meta.tcp_polling` ([`TcpPolling`]).

use crate::checks::{check_addr, check_cluster_name, check_range};
use crate::log_settings::{check_log_files, check_log_level};
use crate::MAX_SPIN_WAIT_US;
use crate::{invalid, ByteSize, ConfigError, LogFormat, SecurityConfig};
use crate::{DEFAULT_LOG_ROTATION_COUNT, DEFAULT_LOG_ROTATION_SIZE, DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_LIMIT};
use serde::{Deserialize, Serialize};

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
