//! `LocalConfig` and `MetaConfig`: property objects over the `[local]` and
//! `[meta]` sections of the MemCache TOML configuration (SPEC section 7).
//!
//! Setters check the Python type (`TypeError`) and parse what can be parsed
//! on its own (a size such as ``"64MB"``, a protocol name: `ValueError`);
//! cross-field rules and ranges are checked by ``validate()`` and when the
//! config is used (`setup` returns INVALID_PARAM for an invalid config).
//! Every attribute of the original `memcache_hybrid` config objects exists
//! too: aliases (`meta_service_url`, `metrics_url`, `evict_threshold_high` /
//! `evict_threshold_low`), attributes that map onto the TOML keys
//! (`client_timeout_seconds`, `client_retry_milliseconds`, `log_path` and
//! rotation, `tls_enable` and the certificate paths, `hcom_tls_enable`), and
//! the ones without effect here (see [`crate::compat`]), which read back
//! what was set and warn once when used.

use crate::compat::{config_class, warn_file, warn_once};
use mmc_config::{ByteSize, ConfigFile, Protocol};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyAny;
use std::path::PathBuf;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Loads a whole config file (TOML or the original's `ock.mmc.*` format):
/// `path`, else the file named by `env_var`, else the defaults. What the
/// file's reading had to say is logged once.
fn load_file(py: Python<'_>, path: Option<PathBuf>, env_var: &str) -> PyResult<ConfigFile> {
    let f = ConfigFile::load_or_env(path.as_deref(), env_var).map_err(value_error)?;
    warn_file(py, &f.warnings);
    Ok(f)
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

/// Parses a protocol name: `auto` (shared memory with LocalServices on this
/// host, TCP otherwise) and `tcp`, and the memcache_hybrid names:
/// `host_shm` is `auto`, `host_tcp` is `tcp`, and `host_rdma`, `host_urma`,
/// `device_rdma`, `device_sdma` (transports not built in) fall back to
/// `auto` with a one-line warning, once per process per name.
fn parse_protocol(py: Python<'_>, v: &str) -> PyResult<Protocol> {
    let (p, warning) =
        mmc_config::ock::protocol_value(v).map_err(|e| PyValueError::new_err(format!("protocol: {e}")))?;
    if let Some(w) = warning {
        warn_once(py, &format!("protocol {}", v.trim().to_ascii_lowercase()), &w);
    }
    Ok(p)
}

/// A path attribute: `""` means unset.
fn opt_path(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
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

config_class! {
    /// Configuration of a LocalService (the `[local]` section).
    ///
    /// ``LocalConfig(**fields)`` starts from the defaults (MetaService at
    /// 127.0.0.1:5000, a 1 GiB DRAM segment) and sets the given properties.
    #[pyclass(module = "memcache_rs", name = "LocalConfig")]
    #[derive(Clone, Debug)]
    pub struct LocalConfig {
        pub inner: mmc_config::LocalConfig,
        /// `protocol` as set when it named a transport not built in (it
        /// reads back as set while the path used instead is in place).
        protocol_as_set: Option<(String, Protocol)> = None,
    }
    no_effect {
        /// Config store URL (memcache_hybrid); no effect: there is no config store.
        config_store_url: String = "tcp://127.0.0.1:6000".into()
            => "there is no config store: LocalServices register with the MetaService";
        /// Most ranks of the cluster (memcache_hybrid); no effect.
        world_size: u32 = 256 => "service ids are handed out by the MetaService; there is no fixed rank count";
        /// HCOM transport URL (memcache_hybrid); no effect.
        hcom_url: String = "tcp://127.0.0.1:7000".into()
            => "there is no HCOM transport (transfer_listen sets the TCP transfer server)";
        /// Accelerator memory contributed (memcache_hybrid); no effect.
        hbm_size: String = "0".into() => "there is no accelerator memory medium: only DRAM segments";
        /// Largest dram_size of any process (memcache_hybrid); no effect.
        max_dram_size: String = "64GB".into() => "segments are not reserved in one global address space";
        /// Largest hbm_size of any process (memcache_hybrid); no effect.
        max_hbm_size: String = "0".into() => "there is no accelerator memory medium";
        /// Read thread pool size (memcache_hybrid); no effect.
        read_thread_pool_size: u32 = 32 => "reads run on the calling thread and the LocalService runtime (worker_threads)";
        /// Write thread pool size (memcache_hybrid); no effect.
        write_thread_pool_size: u32 = 4 => "writes run on the calling thread and the LocalService runtime (worker_threads)";
        /// I/O aggregation (memcache_hybrid); no effect.
        aggregate_io: bool = true => "every batch call is already one control request for the whole batch";
        /// I/O aggregation batch (memcache_hybrid); no effect.
        aggregate_num: u32 = 122 => "every batch call is already one control request for the whole batch";
        /// UBS-IO tier (memcache_hybrid); no effect.
        ubs_io_enable: bool = false => "there is no UBS-IO tier";
        /// ``standard`` or ``expanded`` (memcache_hybrid); no effect.
        memory_pool_mode: String = "standard".into() => "the pool's address space has no mode";
        /// CRL file (memcache_hybrid); no effect.
        tls_ca_crl_path: String = String::new() => "certificate revocation lists are not checked";
        /// Passphrase of an encrypted key (memcache_hybrid); no effect.
        tls_key_pass_path: String = String::new() => "encrypted private keys are not supported: give an unencrypted tls_key_path";
        /// TLS library directory (memcache_hybrid); no effect.
        tls_package_path: String = String::new() => "TLS is built in (rustls)";
        /// Key decrypter library (memcache_hybrid); no effect.
        tls_decrypter_path: String = String::new() => "encrypted private keys are not supported";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_enable: bool = false => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_ca_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_ca_crl_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_cert_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_key_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_key_pass_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_package_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_decrypter_path: String = String::new() => "there is no config store";
        /// HCOM TLS CA (memcache_hybrid); no effect: transfer TLS uses tls_ca_path.
        hcom_tls_ca_path: String = String::new() => "transfer TLS (hcom_tls_enable) uses the tls_* files";
        /// HCOM TLS CRL (memcache_hybrid); no effect.
        hcom_tls_ca_crl_path: String = String::new() => "certificate revocation lists are not checked";
        /// HCOM TLS certificate (memcache_hybrid); no effect: transfer TLS uses tls_cert_path.
        hcom_tls_cert_path: String = String::new() => "transfer TLS (hcom_tls_enable) uses the tls_* files";
        /// HCOM TLS key (memcache_hybrid); no effect: transfer TLS uses tls_key_path.
        hcom_tls_key_path: String = String::new() => "transfer TLS (hcom_tls_enable) uses the tls_* files";
        /// HCOM TLS key passphrase (memcache_hybrid); no effect.
        hcom_tls_key_pass_path: String = String::new() => "encrypted private keys are not supported";
        /// HCOM TLS key decrypter (memcache_hybrid); no effect.
        hcom_tls_decrypter_path: String = String::new() => "encrypted private keys are not supported";
    }
}

#[pymethods]
impl LocalConfig {
    #[new]
    #[pyo3(signature = (**fields))]
    fn py_new(py: Python<'_>, fields: Option<&Bound<'_, pyo3::types::PyDict>>) -> PyResult<Self> {
        let mut c = LocalConfig::default();
        if let Some(f) = fields {
            for (k, v) in f.iter() {
                let k: String = k.extract()?;
                c.set_field(py, &k, &v)?;
            }
        }
        Ok(c)
    }

    /// Reads the ``[local]`` section of a config file: ``path``, else the
    /// file named by ``MMC_LOCAL_CONFIG_PATH``, else the defaults. TOML, or
    /// the original MemCache's ``ock.mmc.<key> = value`` format (keys
    /// without effect are logged once). Raises ``ValueError`` naming the bad
    /// key (and line).
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn load(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        Ok(LocalConfig {
            inner: load_file(py, path, mmc_config::LOCAL_CONFIG_ENV)?.local,
            ..Default::default()
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
    /// host, TCP to others) or ``tcp``. The memcache_hybrid names work too:
    /// ``host_shm`` is ``auto`` and ``host_tcp`` is ``tcp``; ``host_rdma``,
    /// ``host_urma``, ``device_rdma``, ``device_sdma`` (transports not built
    /// in) use ``auto``, with a one-line warning, and read back as set.
    #[getter]
    fn protocol(&self) -> String {
        match &self.protocol_as_set {
            Some((name, p)) if *p == self.inner.protocol => name.clone(),
            _ => protocol_name(self.inner.protocol).to_owned(),
        }
    }
    #[setter]
    fn set_protocol(&mut self, py: Python<'_>, v: String) -> PyResult<()> {
        let p = parse_protocol(py, &v)?;
        self.inner.protocol = p;
        let name = v.trim().to_ascii_lowercase();
        let fallback = matches!(name.as_str(), "host_rdma" | "host_urma" | "device_rdma" | "device_sdma");
        self.protocol_as_set = fallback.then_some((name, p));
        Ok(())
    }

    /// Client request timeout in seconds (memcache_hybrid): sets
    /// ``rpc_timeout_ms`` and ``transfer_timeout_ms``; reads back
    /// ``rpc_timeout_ms`` in whole seconds (rounded up).
    #[getter]
    fn client_timeout_seconds(&self) -> u64 {
        self.inner.rpc_timeout_ms.div_ceil(1000)
    }
    #[setter]
    fn set_client_timeout_seconds(&mut self, v: u64) -> PyResult<()> {
        if !(1..=3600).contains(&v) {
            return Err(PyValueError::new_err(format!(
                "client_timeout_seconds: {v} is outside 1..=3600"
            )));
        }
        self.inner.rpc_timeout_ms = v * 1000;
        self.inner.transfer_timeout_ms = v * 1000;
        Ok(())
    }

    /// How long (ms) a client keeps retrying, every 200 ms, a MetaService
    /// that refuses or does not answer connections before failing with
    /// NOT_CONNECTED_META (memcache_hybrid; the TOML key
    /// ``local.meta_retry_ms``). 0, the default, fails at once.
    #[getter]
    fn client_retry_milliseconds(&self) -> u64 {
        self.inner.meta_retry_ms
    }
    #[setter]
    fn set_client_retry_milliseconds(&mut self, v: u64) {
        self.inner.meta_retry_ms = v;
    }

    /// Log directory: this process's logs go to
    /// ``<log_path>/logs/mmc-local.log`` instead of stderr, rotated by size
    /// (``""``: stderr). Takes effect for the first store or MetaService of
    /// the process that starts logging.
    #[getter]
    fn log_path(&self) -> String {
        opt_path(&self.inner.log_path)
    }
    #[setter]
    fn set_log_path(&mut self, v: String) {
        self.inner.log_path = opt_string(Some(v));
    }

    /// Size in MB at which a log file is rotated (1..=500 in the
    /// original; default 20).
    #[getter]
    fn log_rotation_file_size(&self) -> u64 {
        self.inner.log_rotation_size.0 >> 20
    }
    #[setter]
    fn set_log_rotation_file_size(&mut self, mb: u64) -> PyResult<()> {
        self.inner.log_rotation_size = ByteSize(rotation_mb(mb)?);
        Ok(())
    }

    /// Rotated log files kept besides the current one (default 50).
    #[getter]
    fn log_rotation_file_count(&self) -> u32 {
        self.inner.log_rotation_count
    }
    #[setter]
    fn set_log_rotation_file_count(&mut self, v: u32) {
        self.inner.log_rotation_count = v;
    }

    /// TLS (with client certificates, as the original) on the
    /// connections to the MetaService (``local.security.tls.enable`` and
    /// ``.mutual``); needs ``tls_ca_path``, ``tls_cert_path`` and
    /// ``tls_key_path``.
    #[getter]
    fn tls_enable(&self) -> bool {
        self.inner.security.tls.enable
    }
    #[setter]
    fn set_tls_enable(&mut self, v: bool) {
        self.inner.security.tls.enable = v;
        self.inner.security.tls.mutual = v;
    }

    /// CA bundle (PEM) trusted for the MetaService's certificate
    /// (``local.security.tls.ca``).
    #[getter]
    fn tls_ca_path(&self) -> String {
        self.inner.security.tls.ca.clone()
    }
    #[setter]
    fn set_tls_ca_path(&mut self, v: String) {
        self.inner.security.tls.ca = v;
    }

    /// Client certificate chain (PEM) (``local.security.tls.cert``).
    #[getter]
    fn tls_cert_path(&self) -> String {
        self.inner.security.tls.cert.clone()
    }
    #[setter]
    fn set_tls_cert_path(&mut self, v: String) {
        self.inner.security.tls.cert = v;
    }

    /// Private key (PEM, unencrypted) of ``tls_cert_path``
    /// (``local.security.tls.key``).
    #[getter]
    fn tls_key_path(&self) -> String {
        self.inner.security.tls.key.clone()
    }
    #[setter]
    fn set_tls_key_path(&mut self, v: String) {
        self.inner.security.tls.key = v;
    }

    /// TLS on the transfer connections between LocalServices, with the
    /// ``tls_*`` files (``local.security.tls.transfer``).
    #[getter]
    fn hcom_tls_enable(&self) -> bool {
        self.inner.security.tls.transfer
    }
    #[setter]
    fn set_hcom_tls_enable(&mut self, v: bool) {
        self.inner.security.tls.transfer = v;
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

    /// etcd endpoints of an HA cluster (``local.etcd_endpoints``): when set,
    /// the MetaService leader named in etcd is used instead of ``meta_addr``
    /// and found again after a failover.
    #[getter]
    fn etcd_endpoints(&self) -> Vec<String> {
        self.inner.etcd_endpoints.clone()
    }
    #[setter]
    fn set_etcd_endpoints(&mut self, v: Vec<String>) {
        self.inner.etcd_endpoints = v;
    }

    /// HA cluster name (``local.cluster_name``, the etcd key prefix).
    #[getter]
    fn cluster_name(&self) -> String {
        self.inner.cluster_name.clone()
    }
    #[setter]
    fn set_cluster_name(&mut self, v: String) {
        self.inner.cluster_name = v;
    }

    /// How long a call waits for an HA leader before failing, in
    /// milliseconds (``local.leader_wait_ms``).
    #[getter]
    fn leader_wait_ms(&self) -> u64 {
        self.inner.leader_wait_ms
    }
    #[setter]
    fn set_leader_wait_ms(&mut self, v: u64) {
        self.inner.leader_wait_ms = v;
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
        let mut extra = self.no_effect_changed();
        if c.meta_retry_ms != 0 {
            extra.insert(0, format!("client_retry_milliseconds={}", c.meta_retry_ms));
        }
        if !c.etcd_endpoints.is_empty() {
            extra.insert(
                0,
                format!(
                    "etcd_endpoints={:?}, cluster_name={:?}, leader_wait_ms={}",
                    c.etcd_endpoints, c.cluster_name, c.leader_wait_ms
                ),
            );
        }
        if let Some(p) = &c.log_path {
            extra.insert(0, format!("log_path={p:?}"));
        }
        if c.security.tls.enable || c.security.tls.transfer {
            extra.insert(
                0,
                format!(
                    "tls_enable={}, hcom_tls_enable={}",
                    c.security.tls.enable, c.security.tls.transfer
                ),
            );
        }
        let extra: String = extra.iter().map(|e| format!(", {e}")).collect();
        format!(
            "LocalConfig(meta_addr={:?}, dram_size={}, protocol={:?}, transfer_listen={:?}, \
             transfer_advertise={:?}, host_id={:?}, worker_threads={}, transfer_connections={}, \
             transfer_congestion={:?}, rpc_timeout_ms={}, transfer_timeout_ms={}, heartbeat_interval_ms={}, log_level={:?}, token={}, \
             token_file={:?}, insecure={}{extra})",
            c.meta_addr,
            c.dram_size.0,
            self.protocol(),
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
    fn set_field(&mut self, py: Python<'_>, name: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        match name {
            "meta_addr" => self.set_meta_addr(v.extract()?),
            "meta_service_url" => self.set_meta_service_url(v.extract()?),
            "dram_size" => self.set_dram_size(v)?,
            "protocol" => self.set_protocol(py, v.extract()?)?,
            "client_timeout_seconds" => self.set_client_timeout_seconds(v.extract()?)?,
            "client_retry_milliseconds" => self.set_client_retry_milliseconds(v.extract()?),
            "log_path" => self.set_log_path(v.extract()?),
            "log_rotation_file_size" => self.set_log_rotation_file_size(v.extract()?)?,
            "log_rotation_file_count" => self.set_log_rotation_file_count(v.extract()?),
            "tls_enable" => self.set_tls_enable(v.extract()?),
            "tls_ca_path" => self.set_tls_ca_path(v.extract()?),
            "tls_cert_path" => self.set_tls_cert_path(v.extract()?),
            "tls_key_path" => self.set_tls_key_path(v.extract()?),
            "hcom_tls_enable" => self.set_hcom_tls_enable(v.extract()?),
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
            "etcd_endpoints" => self.set_etcd_endpoints(v.extract()?),
            "cluster_name" => self.set_cluster_name(v.extract()?),
            "leader_wait_ms" => self.set_leader_wait_ms(v.extract()?),
            "log_level" => self.set_log_level(v.extract()?),
            "token" => self.set_token(v.extract()?),
            "token_file" => self.set_token_file(v.extract()?),
            "insecure" => self.set_insecure(v.extract()?),
            other => match self.set_no_effect(other, v) {
                Some(r) => r?,
                None => {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "LocalConfig has no property `{other}`"
                    )))
                }
            },
        }
        Ok(())
    }
}

/// `log_rotation_file_size` in MB as bytes (1..=500, the original's range).
fn rotation_mb(mb: u64) -> PyResult<u64> {
    if !(1..=500).contains(&mb) {
        return Err(PyValueError::new_err(format!(
            "log_rotation_file_size: {mb} MB is outside 1..=500"
        )));
    }
    Ok(mb << 20)
}

config_class! {
    /// Configuration of a MetaService (the `[meta]` section).
    ///
    /// ``MetaConfig(**fields)`` starts from the defaults (listen on
    /// 127.0.0.1:5000, HTTP on 127.0.0.1:8000) and sets the given properties.
    #[pyclass(module = "memcache_rs", name = "MetaConfig")]
    #[derive(Clone, Debug)]
    pub struct MetaConfig {
        pub inner: mmc_config::MetaConfig,
    }
    no_effect {
        /// Config store URL (memcache_hybrid); no effect: there is no config store.
        config_store_url: String = "tcp://127.0.0.1:6000".into()
            => "there is no config store: LocalServices register with the MetaService";
        /// UBS-IO tier (memcache_hybrid); no effect.
        ubs_io_enable: bool = false => "there is no UBS-IO tier";
        /// CRL file (memcache_hybrid); no effect.
        tls_ca_crl_path: String = String::new() => "certificate revocation lists are not checked";
        /// Passphrase of an encrypted key (memcache_hybrid); no effect.
        tls_key_pass_path: String = String::new() => "encrypted private keys are not supported: give an unencrypted tls_key_path";
        /// TLS library directory (memcache_hybrid); no effect.
        tls_package_path: String = String::new() => "TLS is built in (rustls)";
        /// Key decrypter library (memcache_hybrid); no effect.
        tls_decrypter_path: String = String::new() => "encrypted private keys are not supported";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_enable: bool = false => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_ca_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_ca_crl_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_cert_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_key_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_key_pass_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_package_path: String = String::new() => "there is no config store";
        /// Config store TLS (memcache_hybrid); no effect.
        config_store_tls_decrypter_path: String = String::new() => "there is no config store";
    }
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

    /// Reads the ``[meta]`` section of a config file: ``path``, else the
    /// file named by ``MMC_META_CONFIG_PATH``, else the defaults. TOML, or
    /// the original MemCache's ``ock.mmc.<key> = value`` format (keys
    /// without effect are logged once). Raises ``ValueError`` naming the bad
    /// key (and line).
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn load(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        Ok(MetaConfig {
            inner: load_file(py, path, mmc_config::META_CONFIG_ENV)?.meta,
            ..Default::default()
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

    /// Log directory: the MetaService's logs go to
    /// ``<log_path>/logs/mmc-meta.log`` instead of stderr, rotated by size
    /// (``""``: stderr).
    #[getter]
    fn log_path(&self) -> String {
        opt_path(&self.inner.log_path)
    }
    #[setter]
    fn set_log_path(&mut self, v: String) {
        self.inner.log_path = opt_string(Some(v));
    }

    /// Size in MB at which a log file is rotated (1..=500; default 20).
    #[getter]
    fn log_rotation_file_size(&self) -> u64 {
        self.inner.log_rotation_size.0 >> 20
    }
    #[setter]
    fn set_log_rotation_file_size(&mut self, mb: u64) -> PyResult<()> {
        self.inner.log_rotation_size = ByteSize(rotation_mb(mb)?);
        Ok(())
    }

    /// Rotated log files kept besides the current one (default 50).
    #[getter]
    fn log_rotation_file_count(&self) -> u32 {
        self.inner.log_rotation_count
    }
    #[setter]
    fn set_log_rotation_file_count(&mut self, v: u32) {
        self.inner.log_rotation_count = v;
    }

    /// TLS on the control port and the HTTP endpoint, requiring client
    /// certificates as the original (``meta.security.tls.enable`` and
    /// ``.mutual``); needs ``tls_ca_path``, ``tls_cert_path``,
    /// ``tls_key_path``.
    #[getter]
    fn tls_enable(&self) -> bool {
        self.inner.security.tls.enable
    }
    #[setter]
    fn set_tls_enable(&mut self, v: bool) {
        self.inner.security.tls.enable = v;
        self.inner.security.tls.mutual = v;
    }

    /// CA bundle (PEM) client certificates must be issued by
    /// (``meta.security.tls.ca``).
    #[getter]
    fn tls_ca_path(&self) -> String {
        self.inner.security.tls.ca.clone()
    }
    #[setter]
    fn set_tls_ca_path(&mut self, v: String) {
        self.inner.security.tls.ca = v;
    }

    /// Server certificate chain (PEM) (``meta.security.tls.cert``).
    #[getter]
    fn tls_cert_path(&self) -> String {
        self.inner.security.tls.cert.clone()
    }
    #[setter]
    fn set_tls_cert_path(&mut self, v: String) {
        self.inner.security.tls.cert = v;
    }

    /// Private key (PEM, unencrypted) of ``tls_cert_path``
    /// (``meta.security.tls.key``).
    #[getter]
    fn tls_key_path(&self) -> String {
        self.inner.security.tls.key.clone()
    }
    #[setter]
    fn set_tls_key_path(&mut self, v: String) {
        self.inner.security.tls.key = v;
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
        let mut extra = self.no_effect_changed();
        if let Some(p) = &c.log_path {
            extra.insert(0, format!("log_path={p:?}"));
        }
        if c.security.tls.enable {
            extra.insert(0, "tls_enable=true".to_owned());
        }
        let extra: String = extra.iter().map(|e| format!(", {e}")).collect();
        format!(
            "MetaConfig(listen={:?}, http_listen={:?}, evict_high_watermark={}, evict_low_watermark={}, \
             lease_ms={}, put_timeout_ms={}, heartbeat_timeout_ms={}, spin_wait_us={}, log_level={:?}, ha_enable={}, \
             ha_etcd_endpoints={:?}, ha_cluster_name={:?}, ha_lease_ttl_s={}, token={}, token_file={:?}, \
             insecure={}{extra})",
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
            "log_path" => self.set_log_path(v.extract()?),
            "log_rotation_file_size" => self.set_log_rotation_file_size(v.extract()?)?,
            "log_rotation_file_count" => self.set_log_rotation_file_count(v.extract()?),
            "tls_enable" => self.set_tls_enable(v.extract()?),
            "tls_ca_path" => self.set_tls_ca_path(v.extract()?),
            "tls_cert_path" => self.set_tls_cert_path(v.extract()?),
            "tls_key_path" => self.set_tls_key_path(v.extract()?),
            other => match self.set_no_effect(other, v) {
                Some(r) => r?,
                None => {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "MetaConfig has no property `{other}`"
                    )))
                }
            },
        }
        Ok(())
    }
}
