//! The `[local]` section: [`LocalConfig`] with its defaults and validation,
//! and the data path between LocalServices ([`Protocol`]).

use crate::checks::{check_addr, check_cluster_name, check_congestion, check_range};
use crate::log_settings::{check_log_files, check_log_level};
use crate::MAX_SPIN_WAIT_US;
use crate::{invalid, ByteSize, ConfigError, LogFormat, SecurityConfig};
use crate::{DEFAULT_LOG_ROTATION_COUNT, DEFAULT_LOG_ROTATION_SIZE, DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_LIMIT};
use serde::{Deserialize, Serialize};

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
    /// `log_level`, else `default` (`info` for a service, `warn` for a
    /// library client).
    pub fn log_level_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.log_level.as_deref().unwrap_or(default)
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
