//! `LocalConfig` and `MetaConfig`: property objects over the `[local]` and
//! `[meta]` sections of the MemCache TOML configuration (SPEC section 7).
//!
//! Setters check the Python type (`TypeError`) and parse what can be parsed
//! on its own (a size such as ``"64MB"``, a protocol name: `ValueError`);
//! cross-field rules and ranges are checked by ``validate()`` and when the
//! config is used (`setup` returns INVALID_PARAM for an invalid config).
//! A few aliases keep the property names of the original `memcache_hybrid`
//! config objects working (`meta_service_url`, `metrics_url`,
//! `evict_threshold_high` / `evict_threshold_low`).

use mmc_config::{ByteSize, ConfigFile, Protocol};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyAny;
use std::path::PathBuf;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Loads a whole config file: `path`, else the file named by `env_var`,
/// else the defaults.
fn load_file(path: Option<PathBuf>, env_var: &str) -> PyResult<ConfigFile> {
    ConfigFile::load_or_env(path.as_deref(), env_var).map_err(value_error)
}

fn strip_scheme<'a>(v: &'a str, schemes: &[&str]) -> &'a str {
    for s in schemes {
        if let Some(rest) = v.strip_prefix(s) {
            return rest;
        }
    }
    v
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Auto => "auto",
        Protocol::Tcp => "tcp",
    }
}

/// Parses a protocol name. `auto` (shared memory with LocalServices on this
/// host, TCP otherwise) and `tcp`; the memcache_hybrid names `host_shm` and
/// `host_tcp` map onto them.
fn parse_protocol(v: &str) -> PyResult<Protocol> {
    match v.trim().to_ascii_lowercase().as_str() {
        "auto" | "shm" | "host_shm" => Ok(Protocol::Auto),
        "tcp" | "host_tcp" => Ok(Protocol::Tcp),
        other => Err(PyValueError::new_err(format!(
            "protocol `{other}` is not supported: use auto (shm on this host, tcp otherwise) or tcp"
        ))),
    }
}

/// A size given as an int (bytes) or a string such as ``"64MB"``.
fn parse_size_arg(v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(s) = v.extract::<String>() {
        return mmc_config::parse_size(&s).map_err(value_error);
    }
    v.extract::<u64>()
}

fn opt_string(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// How `str()` shows a token: whether one is set, never its value.
fn redacted(t: &Option<String>) -> &'static str {
    if t.is_some() {
        "'<set>'"
    } else {
        "None"
    }
}

/// Configuration of a LocalService (the `[local]` section).
///
/// ``LocalConfig(**fields)`` starts from the defaults (MetaService at
/// 127.0.0.1:5000, a 1 GiB DRAM segment) and sets the given properties.
#[pyclass(module = "memcache_rs", name = "LocalConfig")]
#[derive(Clone, Debug, Default)]
pub struct LocalConfig {
    pub inner: mmc_config::LocalConfig,
}

#[pymethods]
impl LocalConfig {
    #[new]
    #[pyo3(signature = (**fields))]
    fn py_new(fields: Option<&Bound<'_, pyo3::types::PyDict>>) -> PyResult<Self> {
        let mut c = LocalConfig::default();
        if let Some(f) = fields {
            for (k, v) in f.iter() {
                let k: String = k.extract()?;
                c.set_field(&k, &v)?;
            }
        }
        Ok(c)
    }

    /// Reads the ``[local]`` section of a TOML file: ``path``, else the file
    /// named by ``MMC_LOCAL_CONFIG_PATH``, else the defaults. Raises
    /// ``ValueError`` naming the bad key.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn load(path: Option<PathBuf>) -> PyResult<Self> {
        Ok(LocalConfig {
            inner: load_file(path, mmc_config::LOCAL_CONFIG_ENV)?.local,
        })
    }

    /// Checks every value; raises ``ValueError`` naming the bad key.
    fn validate(&self) -> PyResult<()> {
        self.inner.validate().map_err(value_error)
    }

    /// The config as a TOML document with a ``[local]`` section.
    fn to_toml(&self) -> PyResult<String> {
        let f = ConfigFile {
            local: self.inner.clone(),
            ..Default::default()
        };
        let t = toml::to_string(&f).map_err(value_error)?;
        // Keep only the [local] section.
        Ok(t.find("[local]").map(|i| t[i..].to_owned()).unwrap_or(t))
    }

    /// MetaService control address, ``host:port``.
    #[getter]
    fn meta_addr(&self) -> String {
        self.inner.meta_addr.clone()
    }
    #[setter]
    fn set_meta_addr(&mut self, v: String) {
        self.inner.meta_addr = v;
    }

    /// MetaService address as a URL, ``tcp://host:port`` (memcache_hybrid
    /// spelling of ``meta_addr``).
    #[getter]
    fn meta_service_url(&self) -> String {
        format!("tcp://{}", self.inner.meta_addr)
    }
    #[setter]
    fn set_meta_service_url(&mut self, v: String) {
        self.inner.meta_addr = strip_scheme(&v, &["tcp://", "tcp:"]).to_owned();
    }

    /// Size of the DRAM segment this process contributes, in bytes; set as an
    /// int or a string such as ``"64MB"``, ``"2.5G"``. 0 makes a pure client.
    #[getter]
    fn dram_size(&self) -> u64 {
        self.inner.dram_size.0
    }
    #[setter]
    fn set_dram_size(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.dram_size = ByteSize(parse_size_arg(v)?);
        Ok(())
    }

    /// Data path between LocalServices: ``auto`` (shared memory on this
    /// host, TCP to others) or ``tcp``.
    #[getter]
    fn protocol(&self) -> &'static str {
        protocol_name(self.inner.protocol)
    }
    #[setter]
    fn set_protocol(&mut self, v: String) -> PyResult<()> {
        self.inner.protocol = parse_protocol(&v)?;
        Ok(())
    }

    /// Listen address of the transfer server (port 0: any free port).
    #[getter]
    fn transfer_listen(&self) -> String {
        self.inner.transfer_listen.clone()
    }
    #[setter]
    fn set_transfer_listen(&mut self, v: String) {
        self.inner.transfer_listen = v;
    }

    /// Transfer address advertised to peers (``None``: the bound address).
    #[getter]
    fn transfer_advertise(&self) -> Option<String> {
        self.inner.transfer_advertise.clone()
    }
    #[setter]
    fn set_transfer_advertise(&mut self, v: Option<String>) {
        self.inner.transfer_advertise = opt_string(v);
    }

    /// Host id override (``None``: derived from machine id and network
    /// namespace). LocalServices with equal host ids share memory directly.
    #[getter]
    fn host_id(&self) -> Option<String> {
        self.inner.host_id.clone()
    }
    #[setter]
    fn set_host_id(&mut self, v: Option<String>) {
        self.inner.host_id = opt_string(v);
    }

    /// Return from a put once its commit is sent, without waiting for the
    /// answer (one round trip per put instead of two).
    #[getter]
    fn async_commit(&self) -> bool {
        self.inner.async_commit
    }
    #[setter]
    fn set_async_commit(&mut self, v: bool) {
        self.inner.async_commit = v;
    }

    /// Microseconds the calling thread polls for the MetaService's answer to
    /// a data-path request before sleeping (0: never polls).
    #[getter]
    fn spin_wait_us(&self) -> u64 {
        self.inner.spin_wait_us
    }
    #[setter]
    fn set_spin_wait_us(&mut self, v: u64) {
        self.inner.spin_wait_us = v;
    }

    /// Allocate the whole segment at start and fill page tables of peer
    /// segments on first use, so the data path takes no page faults.
    #[getter]
    fn prefault_segments(&self) -> bool {
        self.inner.prefault_segments
    }
    #[setter]
    fn set_prefault_segments(&mut self, v: bool) {
        self.inner.prefault_segments = v;
    }

    /// Threads of the LocalService's async runtime (1..=256).
    #[getter]
    fn worker_threads(&self) -> u32 {
        self.inner.worker_threads
    }
    #[setter]
    fn set_worker_threads(&mut self, v: u32) {
        self.inner.worker_threads = v;
    }

    /// TCP connections per peer used to split large transfers (1..=64).
    #[getter]
    fn transfer_connections(&self) -> u32 {
        self.inner.transfer_connections
    }
    #[setter]
    fn set_transfer_connections(&mut self, v: u32) {
        self.inner.transfer_connections = v;
    }

    /// TCP congestion control of the transfer connections (default
    /// ``"cubic"``), or ``"system"`` for the kernel's default.
    #[getter]
    fn transfer_congestion(&self) -> String {
        self.inner.transfer_congestion.clone()
    }
    #[setter]
    fn set_transfer_congestion(&mut self, v: String) {
        self.inner.transfer_congestion = v;
    }

    /// Control RPC timeout in milliseconds.
    #[getter]
    fn rpc_timeout_ms(&self) -> u64 {
        self.inner.rpc_timeout_ms
    }
    #[setter]
    fn set_rpc_timeout_ms(&mut self, v: u64) {
        self.inner.rpc_timeout_ms = v;
    }

    /// Data transfer timeout in milliseconds.
    #[getter]
    fn transfer_timeout_ms(&self) -> u64 {
        self.inner.transfer_timeout_ms
    }
    #[setter]
    fn set_transfer_timeout_ms(&mut self, v: u64) {
        self.inner.transfer_timeout_ms = v;
    }

    /// Heartbeat interval to the MetaService in milliseconds.
    #[getter]
    fn heartbeat_interval_ms(&self) -> u64 {
        self.inner.heartbeat_interval_ms
    }
    #[setter]
    fn set_heartbeat_interval_ms(&mut self, v: u64) {
        self.inner.heartbeat_interval_ms = v;
    }

    /// Log level: error, warn, info, debug, trace (unset: warn, a library
    /// client stays quiet).
    #[getter]
    fn log_level(&self) -> String {
        self.inner.log_level_or("warn").to_owned()
    }
    #[setter]
    fn set_log_level(&mut self, v: String) {
        self.inner.log_level = Some(v);
    }

    /// Cluster token (at least 16 bytes) proved on every connection; also
    /// the HTTP bearer token. ``None``: no token (loopback only, unless
    /// ``insecure``). Never shown by ``str()``.
    #[getter]
    fn token(&self) -> Option<String> {
        self.inner.security.token.clone()
    }
    #[setter]
    fn set_token(&mut self, v: Option<String>) {
        self.inner.security.token = opt_string(v);
    }

    /// File whose first line is the cluster token (used when ``token`` is
    /// unset).
    #[getter]
    fn token_file(&self) -> Option<String> {
        self.inner.security.token_file.clone()
    }
    #[setter]
    fn set_token_file(&mut self, v: Option<String>) {
        self.inner.security.token_file = opt_string(v);
    }

    /// Allow a non-loopback listen address without a cluster token
    /// (``local.security.insecure``).
    #[getter]
    fn insecure(&self) -> bool {
        self.inner.security.insecure
    }
    #[setter]
    fn set_insecure(&mut self, v: bool) {
        self.inner.security.insecure = v;
    }

    /// All properties as one string (memcache_hybrid's ``str()``).
    fn str(&self) -> String {
        self.__repr__()
    }

    fn __repr__(&self) -> String {
        let c = &self.inner;
        format!(
            "LocalConfig(meta_addr={:?}, dram_size={}, protocol={:?}, transfer_listen={:?}, \
             transfer_advertise={:?}, host_id={:?}, worker_threads={}, transfer_connections={}, \
             transfer_congestion={:?}, rpc_timeout_ms={}, transfer_timeout_ms={}, heartbeat_interval_ms={}, log_level={:?}, token={}, \
             token_file={:?}, insecure={})",
            c.meta_addr,
            c.dram_size.0,
            protocol_name(c.protocol),
            c.transfer_listen,
            c.transfer_advertise,
            c.host_id,
            c.worker_threads,
            c.transfer_connections,
            c.transfer_congestion,
            c.rpc_timeout_ms,
            c.transfer_timeout_ms,
            c.heartbeat_interval_ms,
            c.log_level_or("warn"),
            redacted(&c.security.token),
            c.security.token_file,
            c.security.insecure
        )
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }
}

impl LocalConfig {
    fn set_field(&mut self, name: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        match name {
            "meta_addr" => self.set_meta_addr(v.extract()?),
            "meta_service_url" => self.set_meta_service_url(v.extract()?),
            "dram_size" => self.set_dram_size(v)?,
            "protocol" => self.set_protocol(v.extract()?)?,
            "transfer_listen" => self.set_transfer_listen(v.extract()?),
            "transfer_advertise" => self.set_transfer_advertise(v.extract()?),
            "host_id" => self.set_host_id(v.extract()?),
            "prefault_segments" => self.set_prefault_segments(v.extract()?),
            "async_commit" => self.set_async_commit(v.extract()?),
            "spin_wait_us" => self.set_spin_wait_us(v.extract()?),
            "worker_threads" => self.set_worker_threads(v.extract()?),
            "transfer_connections" => self.set_transfer_connections(v.extract()?),
            "transfer_congestion" => self.set_transfer_congestion(v.extract()?),
            "rpc_timeout_ms" => self.set_rpc_timeout_ms(v.extract()?),
            "transfer_timeout_ms" => self.set_transfer_timeout_ms(v.extract()?),
            "heartbeat_interval_ms" => self.set_heartbeat_interval_ms(v.extract()?),
            "log_level" => self.set_log_level(v.extract()?),
            "token" => self.set_token(v.extract()?),
            "token_file" => self.set_token_file(v.extract()?),
            "insecure" => self.set_insecure(v.extract()?),
            other => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "LocalConfig has no property `{other}`"
                )))
            }
        }
        Ok(())
    }
}

/// Configuration of a MetaService (the `[meta]` section).
///
/// ``MetaConfig(**fields)`` starts from the defaults (listen on
/// 127.0.0.1:5000, HTTP on 127.0.0.1:8000) and sets the given properties.
#[pyclass(module = "memcache_rs", name = "MetaConfig")]
#[derive(Clone, Debug, Default)]
pub struct MetaConfig {
    pub inner: mmc_config::MetaConfig,
}

#[pymethods]
impl MetaConfig {
    #[new]
    #[pyo3(signature = (**fields))]
    fn py_new(fields: Option<&Bound<'_, pyo3::types::PyDict>>) -> PyResult<Self> {
        let mut c = MetaConfig::default();
        if let Some(f) = fields {
            for (k, v) in f.iter() {
                let k: String = k.extract()?;
                c.set_field(&k, &v)?;
            }
        }
        Ok(c)
    }

    /// Reads the ``[meta]`` section of a TOML file: ``path``, else the file
    /// named by ``MMC_META_CONFIG_PATH``, else the defaults. Raises
    /// ``ValueError`` naming the bad key.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn load(path: Option<PathBuf>) -> PyResult<Self> {
        Ok(MetaConfig {
            inner: load_file(path, mmc_config::META_CONFIG_ENV)?.meta,
        })
    }

    /// Checks every value; raises ``ValueError`` naming the bad key.
    fn validate(&self) -> PyResult<()> {
        self.inner.validate().map_err(value_error)
    }

    /// The config as a TOML document with a ``[meta]`` section.
    fn to_toml(&self) -> PyResult<String> {
        #[derive(serde::Serialize)]
        struct OnlyMeta<'a> {
            meta: &'a mmc_config::MetaConfig,
        }
        toml::to_string(&OnlyMeta { meta: &self.inner }).map_err(value_error)
    }

    /// Control-RPC listen address, ``host:port``.
    #[getter]
    fn listen(&self) -> String {
        self.inner.listen.clone()
    }
    #[setter]
    fn set_listen(&mut self, v: String) {
        self.inner.listen = v;
    }

    /// Listen address as a URL, ``tcp://host:port`` (memcache_hybrid
    /// spelling of ``listen``).
    #[getter]
    fn meta_service_url(&self) -> String {
        format!("tcp://{}", self.inner.listen)
    }
    #[setter]
    fn set_meta_service_url(&mut self, v: String) {
        self.inner.listen = strip_scheme(&v, &["tcp://", "tcp:"]).to_owned();
    }

    /// HTTP listen address (health, metrics, queries); empty disables it.
    #[getter]
    fn http_listen(&self) -> String {
        self.inner.http_listen.clone()
    }
    #[setter]
    fn set_http_listen(&mut self, v: String) {
        self.inner.http_listen = v;
    }

    /// HTTP address as a URL, ``http://host:port`` (memcache_hybrid spelling
    /// of ``http_listen``; empty disables it).
    #[getter]
    fn metrics_url(&self) -> String {
        if self.inner.http_listen.is_empty() {
            String::new()
        } else {
            format!("http://{}", self.inner.http_listen)
        }
    }
    #[setter]
    fn set_metrics_url(&mut self, v: String) {
        self.inner.http_listen = strip_scheme(&v, &["http://", "tcp://"])
            .trim_end_matches('/')
            .to_owned();
    }

    /// Percent of a medium's capacity above which background eviction starts.
    #[getter]
    fn evict_high_watermark(&self) -> u8 {
        self.inner.evict_high_watermark
    }
    #[setter]
    fn set_evict_high_watermark(&mut self, v: u8) {
        self.inner.evict_high_watermark = v;
    }

    /// Alias of ``evict_high_watermark`` (memcache_hybrid spelling).
    #[getter]
    fn evict_threshold_high(&self) -> u8 {
        self.inner.evict_high_watermark
    }
    #[setter]
    fn set_evict_threshold_high(&mut self, v: u8) {
        self.inner.evict_high_watermark = v;
    }

    /// Percent of a medium's capacity background eviction brings usage down to.
    #[getter]
    fn evict_low_watermark(&self) -> u8 {
        self.inner.evict_low_watermark
    }
    #[setter]
    fn set_evict_low_watermark(&mut self, v: u8) {
        self.inner.evict_low_watermark = v;
    }

    /// Alias of ``evict_low_watermark`` (memcache_hybrid spelling).
    #[getter]
    fn evict_threshold_low(&self) -> u8 {
        self.inner.evict_low_watermark
    }
    #[setter]
    fn set_evict_threshold_low(&mut self, v: u8) {
        self.inner.evict_low_watermark = v;
    }

    /// Read lease granted by a lookup, in milliseconds.
    #[getter]
    fn lease_ms(&self) -> u64 {
        self.inner.lease_ms
    }
    #[setter]
    fn set_lease_ms(&mut self, v: u64) {
        self.inner.lease_ms = v;
    }

    /// A write left uncommitted this long is reclaimed, in milliseconds.
    #[getter]
    fn put_timeout_ms(&self) -> u64 {
        self.inner.put_timeout_ms
    }
    #[setter]
    fn set_put_timeout_ms(&mut self, v: u64) {
        self.inner.put_timeout_ms = v;
    }

    /// A LocalService silent this long is declared dead, in milliseconds.
    #[getter]
    fn heartbeat_timeout_ms(&self) -> u64 {
        self.inner.heartbeat_timeout_ms
    }
    #[setter]
    fn set_heartbeat_timeout_ms(&mut self, v: u64) {
        self.inner.heartbeat_timeout_ms = v;
    }

    /// Microseconds a connection is polled for its next request after one
    /// is served, before its task sleeps (0: never polls).
    #[getter]
    fn spin_wait_us(&self) -> u64 {
        self.inner.spin_wait_us
    }
    #[setter]
    fn set_spin_wait_us(&mut self, v: u64) {
        self.inner.spin_wait_us = v;
    }

    /// Log level: error, warn, info, debug, trace.
    #[getter]
    fn log_level(&self) -> String {
        self.inner.log_level.clone()
    }
    #[setter]
    fn set_log_level(&mut self, v: String) {
        self.inner.log_level = v;
    }

    /// High availability (several MetaServices, leader elected through etcd).
    #[getter]
    fn ha_enable(&self) -> bool {
        self.inner.ha.enable
    }
    #[setter]
    fn set_ha_enable(&mut self, v: bool) {
        self.inner.ha.enable = v;
    }

    /// etcd endpoints used in HA mode.
    #[getter]
    fn ha_etcd_endpoints(&self) -> Vec<String> {
        self.inner.ha.etcd_endpoints.clone()
    }
    #[setter]
    fn set_ha_etcd_endpoints(&mut self, v: Vec<String>) {
        self.inner.ha.etcd_endpoints = v;
    }

    /// Cluster name (etcd key prefix) in HA mode.
    #[getter]
    fn ha_cluster_name(&self) -> String {
        self.inner.ha.cluster_name.clone()
    }
    #[setter]
    fn set_ha_cluster_name(&mut self, v: String) {
        self.inner.ha.cluster_name = v;
    }

    /// Leader lease TTL in seconds in HA mode.
    #[getter]
    fn ha_lease_ttl_s(&self) -> u64 {
        self.inner.ha.lease_ttl_s
    }
    #[setter]
    fn set_ha_lease_ttl_s(&mut self, v: u64) {
        self.inner.ha.lease_ttl_s = v;
    }

    /// Cluster token (at least 16 bytes) proved on every connection; also
    /// the HTTP bearer token. ``None``: no token (loopback only, unless
    /// ``insecure``). Never shown by ``str()``.
    #[getter]
    fn token(&self) -> Option<String> {
        self.inner.security.token.clone()
    }
    #[setter]
    fn set_token(&mut self, v: Option<String>) {
        self.inner.security.token = opt_string(v);
    }

    /// File whose first line is the cluster token (used when ``token`` is
    /// unset).
    #[getter]
    fn token_file(&self) -> Option<String> {
        self.inner.security.token_file.clone()
    }
    #[setter]
    fn set_token_file(&mut self, v: Option<String>) {
        self.inner.security.token_file = opt_string(v);
    }

    /// Allow a non-loopback listen address without a cluster token
    /// (``meta.security.insecure``).
    #[getter]
    fn insecure(&self) -> bool {
        self.inner.security.insecure
    }
    #[setter]
    fn set_insecure(&mut self, v: bool) {
        self.inner.security.insecure = v;
    }

    /// All properties as one string (memcache_hybrid's ``str()``).
    fn str(&self) -> String {
        self.__repr__()
    }

    fn __repr__(&self) -> String {
        let c = &self.inner;
        format!(
            "MetaConfig(listen={:?}, http_listen={:?}, evict_high_watermark={}, evict_low_watermark={}, \
             lease_ms={}, put_timeout_ms={}, heartbeat_timeout_ms={}, spin_wait_us={}, log_level={:?}, ha_enable={}, \
             ha_etcd_endpoints={:?}, ha_cluster_name={:?}, ha_lease_ttl_s={}, token={}, token_file={:?}, \
             insecure={})",
            c.listen,
            c.http_listen,
            c.evict_high_watermark,
            c.evict_low_watermark,
            c.lease_ms,
            c.put_timeout_ms,
            c.heartbeat_timeout_ms,
            c.spin_wait_us,
            c.log_level,
            c.ha.enable,
            c.ha.etcd_endpoints,
            c.ha.cluster_name,
            c.ha.lease_ttl_s,
            redacted(&c.security.token),
            c.security.token_file,
            c.security.insecure
        )
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }
}

impl MetaConfig {
    fn set_field(&mut self, name: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        match name {
            "listen" => self.set_listen(v.extract()?),
            "meta_service_url" => self.set_meta_service_url(v.extract()?),
            "http_listen" => self.set_http_listen(v.extract()?),
            "metrics_url" => self.set_metrics_url(v.extract()?),
            "evict_high_watermark" | "evict_threshold_high" => self.set_evict_high_watermark(v.extract()?),
            "evict_low_watermark" | "evict_threshold_low" => self.set_evict_low_watermark(v.extract()?),
            "lease_ms" => self.set_lease_ms(v.extract()?),
            "put_timeout_ms" => self.set_put_timeout_ms(v.extract()?),
            "heartbeat_timeout_ms" => self.set_heartbeat_timeout_ms(v.extract()?),
            "spin_wait_us" => self.set_spin_wait_us(v.extract()?),
            "log_level" => self.set_log_level(v.extract()?),
            "ha_enable" => self.set_ha_enable(v.extract()?),
            "ha_etcd_endpoints" => self.set_ha_etcd_endpoints(v.extract()?),
            "ha_cluster_name" => self.set_ha_cluster_name(v.extract()?),
            "ha_lease_ttl_s" => self.set_ha_lease_ttl_s(v.extract()?),
            "token" => self.set_token(v.extract()?),
            "token_file" => self.set_token_file(v.extract()?),
            "insecure" => self.set_insecure(v.extract()?),
            other => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "MetaConfig has no property `{other}`"
                )))
            }
        }
        Ok(())
    }
}
