//! `LocalConfig`: the `[local]` section's class, its attributes of the
//! original without effect, its property table and the attributes that
//! convert, validate or warn.

use super::{
    load_file, opt_path, opt_string, parse_protocol, parse_size_arg, protocol_name, redacted, rotation_mb,
    strip_scheme, value_error,
};
use crate::compat::{config_class, SizeText};
use mmc_config::{ByteSize, ConfigFile, Protocol};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyAny;
use std::path::PathBuf;

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
        hbm_size: SizeText = "0".into() => "there is no accelerator memory medium: only DRAM segments";
        /// Largest dram_size of any process (memcache_hybrid); no effect.
        max_dram_size: SizeText = "64GB".into() => "segments are not reserved in one global address space";
        /// Largest hbm_size of any process (memcache_hybrid); no effect.
        max_hbm_size: SizeText = "0".into() => "there is no accelerator memory medium";
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

config_methods! {
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
    // Read and set as they are.
    copy {
        /// How long (ms) a client keeps retrying, every 200 ms, a MetaService
        /// that refuses or does not answer connections before failing with
        /// NOT_CONNECTED_META (memcache_hybrid; the TOML key
        /// ``local.meta_retry_ms``). 0, the default, fails at once.
        client_retry_milliseconds, set_client_retry_milliseconds: u64 => inner.meta_retry_ms;
        /// Rotated log files kept besides the current one (default 50).
        log_rotation_file_count, set_log_rotation_file_count: u32 => inner.log_rotation_count;
        /// TLS on the transfer connections between LocalServices, with the
        /// ``tls_*`` files (``local.security.tls.transfer``).
        hcom_tls_enable, set_hcom_tls_enable: bool => inner.security.tls.transfer;
        /// Return from a put once its commit is sent, without waiting for the
        /// answer (one round trip per put instead of two).
        async_commit, set_async_commit: bool => inner.async_commit;
        /// Microseconds the calling thread polls for the MetaService's answer to
        /// a data-path request before sleeping (0: never polls).
        spin_wait_us, set_spin_wait_us: u64 => inner.spin_wait_us;
        /// Allocate the whole segment at start and fill page tables of peer
        /// segments on first use, so the data path takes no page faults.
        prefault_segments, set_prefault_segments: bool => inner.prefault_segments;
        /// Threads of the LocalService's async runtime (1..=256).
        worker_threads, set_worker_threads: u32 => inner.worker_threads;
        /// TCP connections per peer used to split large transfers (1..=64).
        transfer_connections, set_transfer_connections: u32 => inner.transfer_connections;
        /// Control RPC timeout in milliseconds.
        rpc_timeout_ms, set_rpc_timeout_ms: u64 => inner.rpc_timeout_ms;
        /// Data transfer timeout in milliseconds.
        transfer_timeout_ms, set_transfer_timeout_ms: u64 => inner.transfer_timeout_ms;
        /// Heartbeat interval to the MetaService in milliseconds.
        heartbeat_interval_ms, set_heartbeat_interval_ms: u64 => inner.heartbeat_interval_ms;
        /// How long a call waits for an HA leader before failing, in
        /// milliseconds (``local.leader_wait_ms``).
        leader_wait_ms, set_leader_wait_ms: u64 => inner.leader_wait_ms;
        /// Allow a non-loopback listen address without a cluster token
        /// (``local.security.insecure``).
        insecure, set_insecure: bool => inner.security.insecure;
    }
    // Read back as a copy, set as given.
    clone {
        /// MetaService control address, ``host:port``.
        meta_addr, set_meta_addr: String => inner.meta_addr;
        /// CA bundle (PEM) trusted for the MetaService's certificate
        /// (``local.security.tls.ca``).
        tls_ca_path, set_tls_ca_path: String => inner.security.tls.ca;
        /// Client certificate chain (PEM) (``local.security.tls.cert``).
        tls_cert_path, set_tls_cert_path: String => inner.security.tls.cert;
        /// Private key (PEM, unencrypted) of ``tls_cert_path``
        /// (``local.security.tls.key``).
        tls_key_path, set_tls_key_path: String => inner.security.tls.key;
        /// Listen address of the transfer server (port 0: any free port).
        transfer_listen, set_transfer_listen: String => inner.transfer_listen;
        /// TCP congestion control of the transfer connections (default
        /// ``"cubic"``), or ``"system"`` for the kernel's default.
        transfer_congestion, set_transfer_congestion: String => inner.transfer_congestion;
        /// etcd endpoints of an HA cluster (``local.etcd_endpoints``): when set,
        /// the MetaService leader named in etcd is used instead of ``meta_addr``
        /// and found again after a failover.
        etcd_endpoints, set_etcd_endpoints: Vec<String> => inner.etcd_endpoints;
        /// HA cluster name (``local.cluster_name``, the etcd key prefix).
        cluster_name, set_cluster_name: String => inner.cluster_name;
    }
    // Optional strings: `None` and `""` both unset them.
    optional {
        /// Transfer address advertised to peers (``None``: the bound address).
        transfer_advertise, set_transfer_advertise => inner.transfer_advertise;
        /// Host id override (``None``: derived from machine id and network
        /// namespace). LocalServices with equal host ids share memory directly.
        host_id, set_host_id => inner.host_id;
        /// Cluster token (at least 16 bytes) proved on every connection; also
        /// the HTTP bearer token. ``None``: no token (loopback only, unless
        /// ``insecure``). Never shown by ``str()``.
        token, set_token => inner.security.token;
        /// File whose first line is the cluster token (used when ``token`` is
        /// unset).
        token_file, set_token_file => inner.security.token_file;
    }
}

impl LocalConfig {
    fn set_field(&mut self, py: Python<'_>, name: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(r) = self.set_table_field(name, v) {
            return r;
        }
        match name {
            "meta_service_url" => self.set_meta_service_url(v.extract()?),
            "dram_size" => self.set_dram_size(v)?,
            "protocol" => self.set_protocol(py, v.extract()?)?,
            "client_timeout_seconds" => self.set_client_timeout_seconds(v.extract()?)?,
            "log_path" => self.set_log_path(v.extract()?),
            "log_rotation_file_size" => self.set_log_rotation_file_size(v.extract()?)?,
            "tls_enable" => self.set_tls_enable(v.extract()?),
            "log_level" => self.set_log_level(v.extract()?),
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
