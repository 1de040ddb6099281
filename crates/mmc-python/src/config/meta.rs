//! `MetaConfig`: the `[meta]` section's class, its attributes of the
//! original without effect, its property table and the attributes that
//! convert, validate or warn.

use super::{load_file, opt_path, opt_string, redacted, rotation_mb, strip_scheme, value_error};
use crate::compat::config_class;
use mmc_config::ByteSize;
use pyo3::prelude::*;
use pyo3::types::PyAny;
use std::path::PathBuf;

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

config_methods! {
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
    // Read and set as they are.
    copy {
        /// Percent of a medium's capacity above which background eviction starts.
        evict_high_watermark, set_evict_high_watermark: u8 => inner.evict_high_watermark;
        /// Alias of ``evict_high_watermark`` (memcache_hybrid spelling).
        evict_threshold_high, set_evict_threshold_high: u8 => inner.evict_high_watermark;
        /// Percent of a medium's capacity background eviction brings usage down to.
        evict_low_watermark, set_evict_low_watermark: u8 => inner.evict_low_watermark;
        /// Alias of ``evict_low_watermark`` (memcache_hybrid spelling).
        evict_threshold_low, set_evict_threshold_low: u8 => inner.evict_low_watermark;
        /// Read lease granted by a lookup, in milliseconds.
        lease_ms, set_lease_ms: u64 => inner.lease_ms;
        /// A write left uncommitted this long is reclaimed, in milliseconds.
        put_timeout_ms, set_put_timeout_ms: u64 => inner.put_timeout_ms;
        /// A LocalService silent this long is declared dead, in milliseconds.
        heartbeat_timeout_ms, set_heartbeat_timeout_ms: u64 => inner.heartbeat_timeout_ms;
        /// Microseconds a connection is polled for its next request after one
        /// is served, before its task sleeps (0: never polls).
        spin_wait_us, set_spin_wait_us: u64 => inner.spin_wait_us;
        /// Rotated log files kept besides the current one (default 50).
        log_rotation_file_count, set_log_rotation_file_count: u32 => inner.log_rotation_count;
        /// High availability (several MetaServices, leader elected through etcd).
        ha_enable, set_ha_enable: bool => inner.ha.enable;
        /// Leader lease TTL in seconds in HA mode.
        ha_lease_ttl_s, set_ha_lease_ttl_s: u64 => inner.ha.lease_ttl_s;
        /// Allow a non-loopback listen address without a cluster token
        /// (``meta.security.insecure``).
        insecure, set_insecure: bool => inner.security.insecure;
    }
    // Read back as a copy, set as given.
    clone {
        /// Control-RPC listen address, ``host:port``.
        listen, set_listen: String => inner.listen;
        /// HTTP listen address (health, metrics, queries); empty disables it.
        http_listen, set_http_listen: String => inner.http_listen;
        /// Log level: error, warn, info, debug, trace.
        log_level, set_log_level: String => inner.log_level;
        /// CA bundle (PEM) client certificates must be issued by
        /// (``meta.security.tls.ca``).
        tls_ca_path, set_tls_ca_path: String => inner.security.tls.ca;
        /// Server certificate chain (PEM) (``meta.security.tls.cert``).
        tls_cert_path, set_tls_cert_path: String => inner.security.tls.cert;
        /// Private key (PEM, unencrypted) of ``tls_cert_path``
        /// (``meta.security.tls.key``).
        tls_key_path, set_tls_key_path: String => inner.security.tls.key;
        /// etcd endpoints used in HA mode.
        ha_etcd_endpoints, set_ha_etcd_endpoints: Vec<String> => inner.ha.etcd_endpoints;
        /// Cluster name (etcd key prefix) in HA mode.
        ha_cluster_name, set_ha_cluster_name: String => inner.ha.cluster_name;
    }
    // Optional strings: `None` and `""` both unset them.
    optional {
        /// Cluster token (at least 16 bytes) proved on every connection; also
        /// the HTTP bearer token. ``None``: no token (loopback only, unless
        /// ``insecure``). Never shown by ``str()``.
        token, set_token => inner.security.token;
        /// File whose first line is the cluster token (used when ``token`` is
        /// unset).
        token_file, set_token_file => inner.security.token_file;
    }
}

impl MetaConfig {
    fn set_field(&mut self, name: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(r) = self.set_table_field(name, v) {
            return r;
        }
        match name {
            "meta_service_url" => self.set_meta_service_url(v.extract()?),
            "metrics_url" => self.set_metrics_url(v.extract()?),
            "log_path" => self.set_log_path(v.extract()?),
            "log_rotation_file_size" => self.set_log_rotation_file_size(v.extract()?)?,
            "tls_enable" => self.set_tls_enable(v.extract()?),
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
