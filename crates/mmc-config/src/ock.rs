//! The original MemCache's configuration format: `ock.mmc.<key> = value`
//! lines (its `mmc-meta.conf` and `mmc-local.conf`), read into a
//! [`ConfigFile`] so its users keep their files.
//!
//! Format: one `key = value` per line; blank lines and lines starting with
//! `#` are ignored; the value is the rest of the line, trimmed (no quotes,
//! no trailing comments). A file is taken for this format when its first
//! line that is not blank or a comment starts with `ock.`
//! ([`is_ock_format`]).
//!
//! Every key of the original is known. Keys that exist in both of its
//! files (`meta_service_url`, `log_level`, `log_path`, the `tls.*` family)
//! set both sections, so one file can serve `mmc up`; the others set the
//! section they belong to. Keys that mean nothing here (the config store,
//! HCOM, HBM, thread pools, I/O aggregation, UBS-IO, ...) are accepted,
//! checked against the original's ranges, and reported once each in
//! [`ConfigFile::warnings`]. A value out of range, an unknown key, a
//! repeated key or a line without `=` is an error naming the line and the
//! key. Keys absent from the file keep this project's defaults
//! (docs/configuration.md), not the original's.

use crate::{format_size, parse_size, ByteSize, ConfigError, ConfigFile, Protocol};
use std::collections::HashMap;

/// Whether `text` is in the original MemCache's format: its first line that
/// is not blank or a `#` comment starts with `ock.`.
pub fn is_ock_format(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("ock."))
}

/// `path:line` or `line N`, as [`ConfigError::Line`] shows it.
pub(crate) fn location(path: &Option<String>, line: usize) -> String {
    match path {
        Some(p) => format!("{p}:{line}"),
        None => format!("line {line}"),
    }
}

/// Every key of the original's format that has no effect here, with the
/// reason shown in its warning.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "ock.mmc.meta_service.config_store_url",
        "there is no config store: LocalServices register with the MetaService",
    ),
    (
        "ock.mmc.local_service.config_store_url",
        "there is no config store: LocalServices register with the MetaService",
    ),
    (
        "ock.mmc.local_service.world_size",
        "service ids are handed out by the MetaService; there is no fixed rank count",
    ),
    (
        "ock.mmc.local_service.hcom_url",
        "there is no HCOM transport: set `local.transfer_listen` in a TOML file for the TCP transfer server",
    ),
    (
        "ock.mmc.local_service.hbm.size",
        "there is no accelerator memory medium: only DRAM segments",
    ),
    (
        "ock.mmc.local_service.max.dram.size",
        "segments are not reserved in one global address space, so no maximum is needed",
    ),
    (
        "ock.mmc.local_service.max.hbm.size",
        "there is no accelerator memory medium",
    ),
    (
        "ock.mmc.local_service.memory.pool.mode",
        "the pool's address space is not limited by a mode (segments up to 256TB each)",
    ),
    (
        "ock.mmc.client.read_thread_pool.size",
        "reads run on the caller's thread and the LocalService runtime (`local.worker_threads`)",
    ),
    (
        "ock.mmc.client.write_thread_pool.size",
        "writes run on the caller's thread and the LocalService runtime (`local.worker_threads`)",
    ),
    (
        "ock.mmc.client.aggregate.io",
        "every batch call is already one control request for the whole batch",
    ),
    (
        "ock.mmc.client.aggregate.num",
        "every batch call is already one control request for the whole batch",
    ),
    ("ock.mmc.ubs_io.enable", "there is no UBS-IO tier"),
    (
        "ock.mmc.tls.ca.crl.path",
        "certificate revocation lists are not checked",
    ),
    (
        "ock.mmc.tls.key.pass.path",
        "encrypted private keys are not supported: give an unencrypted key in ock.mmc.tls.key.path",
    ),
    (
        "ock.mmc.tls.package.path",
        "TLS is built in (rustls); no library is loaded",
    ),
    ("ock.mmc.tls.decrypter.path", "encrypted private keys are not supported"),
    ("ock.mmc.config_store.tls.enable", "there is no config store"),
    ("ock.mmc.config_store.tls.ca.path", "there is no config store"),
    ("ock.mmc.config_store.tls.ca.crl.path", "there is no config store"),
    ("ock.mmc.config_store.tls.cert.path", "there is no config store"),
    ("ock.mmc.config_store.tls.key.path", "there is no config store"),
    ("ock.mmc.config_store.tls.key.pass.path", "there is no config store"),
    ("ock.mmc.config_store.tls.package.path", "there is no config store"),
    ("ock.mmc.config_store.tls.decrypter.path", "there is no config store"),
    (
        "ock.mmc.local_service.hcom.tls.ca.path",
        "transfer TLS uses the ock.mmc.tls.* files",
    ),
    (
        "ock.mmc.local_service.hcom.tls.ca.crl.path",
        "certificate revocation lists are not checked",
    ),
    (
        "ock.mmc.local_service.hcom.tls.cert.path",
        "transfer TLS uses the ock.mmc.tls.* files",
    ),
    (
        "ock.mmc.local_service.hcom.tls.key.path",
        "transfer TLS uses the ock.mmc.tls.* files",
    ),
    (
        "ock.mmc.local_service.hcom.tls.key.pass.path",
        "encrypted private keys are not supported",
    ),
    (
        "ock.mmc.local_service.hcom.tls.decrypter.path",
        "encrypted private keys are not supported",
    ),
];

/// Every key of the original's format that takes effect here, and what it
/// sets (shown in docs/integrations.md).
pub const MAPPED: &[(&str, &str)] = &[
    ("ock.mmc.meta_service_url", "meta.listen and local.meta_addr"),
    ("ock.mmc.meta_service.metrics_url", "meta.http_listen"),
    ("ock.mmc.meta.ha.enable", "meta.ha.enable"),
    ("ock.mmc.log_level", "meta.log_level and local.log_level"),
    ("ock.mmc.log_path", "meta.log_path and local.log_path"),
    ("ock.mmc.log_rotation_file_size", "meta/local.log_rotation_size (MB)"),
    ("ock.mmc.log_rotation_file_count", "meta/local.log_rotation_count"),
    ("ock.mmc.evict_threshold_high", "meta.evict_high_watermark"),
    ("ock.mmc.evict_threshold_low", "meta.evict_low_watermark"),
    ("ock.mmc.tls.enable", "meta/local.security.tls.enable and .mutual"),
    ("ock.mmc.tls.ca.path", "meta/local.security.tls.ca"),
    ("ock.mmc.tls.cert.path", "meta/local.security.tls.cert"),
    ("ock.mmc.tls.key.path", "meta/local.security.tls.key"),
    ("ock.mmc.local_service.protocol", "local.protocol"),
    ("ock.mmc.local_service.dram.size", "local.dram_size"),
    ("ock.mmc.local_service.hcom.tls.enable", "local.security.tls.transfer"),
    ("ock.mmc.client.retry_milliseconds", "local.meta_retry_ms"),
    (
        "ock.mmc.client.timeout.seconds",
        "local.rpc_timeout_ms and local.transfer_timeout_ms",
    ),
];

/// The keys of the original's format that have no effect here, with why.
pub fn no_effect_keys() -> &'static [(&'static str, &'static str)] {
    NO_EFFECT
}

/// One line's problem: the message of a [`ConfigError::Line`].
type LineResult<T> = Result<T, String>;

fn bool_value(v: &str) -> LineResult<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{v}` is not true or false")),
    }
}

fn int_value(v: &str, lo: u64, hi: u64) -> LineResult<u64> {
    let n: u64 = v
        .parse()
        .map_err(|_| format!("`{v}` is not a whole number in {lo}..={hi}"))?;
    if n < lo || n > hi {
        return Err(format!("{n} is outside {lo}..={hi}"));
    }
    Ok(n)
}

/// A size as the original accepts it (`134217728`, `2048KB`, `200m`,
/// `2.5GB`, `1TB`), at most 1TB.
fn size_value(v: &str) -> LineResult<u64> {
    let n = parse_size(v)?;
    if n > 1 << 40 {
        return Err(format!("{} is above the 1TB maximum", format_size(n)));
    }
    Ok(n)
}

/// `scheme://ip:port` (or a bare `ip:port`) as `ip:port`.
fn url_value(v: &str, schemes: &[&str]) -> LineResult<String> {
    let rest = schemes
        .iter()
        .find_map(|s| v.strip_prefix(s))
        .unwrap_or(v)
        .trim_end_matches('/');
    if rest.contains("://") {
        return Err(format!("`{v}` is not {}<ip>:<port>", schemes[0]));
    }
    rest.parse::<std::net::SocketAddr>()
        .map(|_| rest.to_owned())
        .map_err(|_| format!("`{v}` is not {}<ip>:<port>", schemes[0]))
}

fn log_level_value(v: &str) -> LineResult<String> {
    match v.to_ascii_lowercase().as_str() {
        "debug" => Ok("debug".into()),
        "info" => Ok("info".into()),
        "warn" | "warning" => Ok("warn".into()),
        "error" | "critical" => Ok("error".into()),
        "trace" => Ok("trace".into()),
        _ => Err(format!("`{v}` is not one of debug, info, warn, error")),
    }
}

fn path_value(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

/// A protocol name of the original: the path used here, and a warning when
/// that is not what the name asked for.
pub fn protocol_value(v: &str) -> Result<(Protocol, Option<String>), String> {
    let name = v.trim().to_ascii_lowercase();
    match name.as_str() {
        "auto" | "shm" | "host_shm" => Ok((Protocol::Auto, None)),
        "tcp" | "host_tcp" => Ok((Protocol::Tcp, None)),
        "host_rdma" | "host_urma" | "device_rdma" | "device_sdma" => Ok((
            Protocol::Auto,
            Some(format!(
                "protocol `{name}` is not available here (no RDMA or accelerator transport is built in): \
                 using `auto`, shared memory with LocalServices on this host and TCP to the others"
            )),
        )),
        _ => Err(format!(
            "`{v}` is not a protocol: host_rdma, host_urma, host_tcp, host_shm, device_rdma, device_sdma \
             (or this project's auto, tcp)"
        )),
    }
}

/// Where each setting of the result came from, to name the original's key
/// and line when a later check of the whole section fails.
#[derive(Default)]
struct Origins(HashMap<String, (String, usize)>);

impl Origins {
    fn set(&mut self, ours: &[&str], key: &str, line: usize) {
        for o in ours {
            self.0.insert((*o).to_owned(), (key.to_owned(), line));
        }
    }
}

/// Applies one `key = value`; `Ok(Some(warning))` for keys without effect
/// and fallbacks.
fn apply(cfg: &mut ConfigFile, origins: &mut Origins, key: &str, v: &str, line: usize) -> LineResult<Option<String>> {
    let (m, l) = (&mut cfg.meta, &mut cfg.local);
    let mut set = |ours: &[&str]| origins.set(ours, key, line);
    match key {
        "ock.mmc.meta_service_url" => {
            let a = url_value(v, &["tcp://"])?;
            m.listen = a.clone();
            l.meta_addr = a;
            set(&["meta.listen", "local.meta_addr"]);
        }
        "ock.mmc.meta_service.metrics_url" => {
            m.http_listen = url_value(v, &["http://", "tcp://"])?;
            set(&["meta.http_listen"]);
        }
        "ock.mmc.meta.ha.enable" => {
            m.ha.enable = bool_value(v)?;
            set(&["meta.ha.enable", "meta.ha.etcd_endpoints"]);
        }
        "ock.mmc.log_level" => {
            let lv = log_level_value(v)?;
            m.log_level = lv.clone();
            l.log_level = Some(lv);
            set(&["meta.log_level", "local.log_level"]);
        }
        "ock.mmc.log_path" => {
            let p = path_value(v).ok_or("must name a directory")?;
            m.log_path = Some(p.clone());
            l.log_path = Some(p);
            set(&["meta.log_path", "local.log_path"]);
        }
        "ock.mmc.log_rotation_file_size" => {
            let mb = int_value(v, 1, 500)?;
            m.log_rotation_size = ByteSize(mb << 20);
            l.log_rotation_size = ByteSize(mb << 20);
            set(&["meta.log_rotation_size", "local.log_rotation_size"]);
        }
        "ock.mmc.log_rotation_file_count" => {
            let n = int_value(v, 1, 50)? as u32;
            m.log_rotation_count = n;
            l.log_rotation_count = n;
            set(&["meta.log_rotation_count", "local.log_rotation_count"]);
        }
        "ock.mmc.evict_threshold_high" => {
            m.evict_high_watermark = int_value(v, 1, 99)? as u8;
            set(&["meta.evict_high_watermark"]);
        }
        "ock.mmc.evict_threshold_low" => {
            m.evict_low_watermark = int_value(v, 1, 99)? as u8;
            set(&["meta.evict_low_watermark"]);
        }
        "ock.mmc.tls.enable" => {
            let on = bool_value(v)?;
            for s in [&mut m.security, &mut l.security] {
                // The original authenticates both ends with certificates.
                s.tls.enable = on;
                s.tls.mutual = on;
            }
            set(&["meta.security.tls.enable", "local.security.tls.enable"]);
            // Missing files are reported against this line unless they are
            // given on a line of their own.
            for f in ["cert", "key", "ca"] {
                for sec in ["meta", "local"] {
                    origins
                        .0
                        .entry(format!("{sec}.security.tls.{f}"))
                        .or_insert_with(|| (key.to_owned(), line));
                }
            }
        }
        "ock.mmc.tls.ca.path" | "ock.mmc.tls.cert.path" | "ock.mmc.tls.key.path" => {
            let p = path_value(v).unwrap_or_default();
            let field = match key {
                "ock.mmc.tls.ca.path" => "ca",
                "ock.mmc.tls.cert.path" => "cert",
                _ => "key",
            };
            for s in [&mut m.security, &mut l.security] {
                match field {
                    "ca" => s.tls.ca = p.clone(),
                    "cert" => s.tls.cert = p.clone(),
                    _ => s.tls.key = p.clone(),
                }
            }
            set(&[
                format!("meta.security.tls.{field}").as_str(),
                format!("local.security.tls.{field}").as_str(),
            ]);
        }
        "ock.mmc.local_service.protocol" => {
            let (p, warning) = protocol_value(v)?;
            l.protocol = p;
            return Ok(warning);
        }
        "ock.mmc.local_service.dram.size" => {
            l.dram_size = ByteSize(size_value(v)?);
            set(&["local.dram_size"]);
        }
        "ock.mmc.local_service.hcom.tls.enable" => {
            l.security.tls.transfer = bool_value(v)?;
            for f in ["cert", "key", "ca"] {
                origins
                    .0
                    .entry(format!("local.security.tls.{f}"))
                    .or_insert_with(|| (key.to_owned(), line));
            }
        }
        "ock.mmc.client.retry_milliseconds" => {
            l.meta_retry_ms = int_value(v, 0, 600_000)?;
            set(&["local.meta_retry_ms"]);
        }
        "ock.mmc.client.timeout.seconds" => {
            let ms = int_value(v, 1, 600)? * 1000;
            l.rpc_timeout_ms = ms;
            l.transfer_timeout_ms = ms;
            set(&["local.rpc_timeout_ms", "local.transfer_timeout_ms"]);
        }
        _ => {
            let Some((_, why)) = NO_EFFECT.iter().find(|(k, _)| *k == key) else {
                return Err(if key.starts_with("ock.") {
                    "unknown key: not a key of the original MemCache's configuration files \
                     (docs/integrations.md lists them)"
                        .to_owned()
                } else {
                    "expected `ock.mmc.<key> = value` (the original MemCache's format; \
                     a TOML file must not start with an `ock.` line)"
                        .to_owned()
                });
            };
            check_no_effect_value(key, v)?;
            if v.is_empty() {
                // An empty path is the same as no line at all.
                return Ok(None);
            }
            return Ok(Some(format!("`{key}` has no effect here ({why})")));
        }
    }
    Ok(None)
}

/// The original's checks for keys that have no effect here, so a file it
/// would refuse is refused here too.
fn check_no_effect_value(key: &str, v: &str) -> LineResult<()> {
    match key {
        "ock.mmc.local_service.world_size" => int_value(v, 1, 1024).map(drop),
        "ock.mmc.local_service.hbm.size"
        | "ock.mmc.local_service.max.dram.size"
        | "ock.mmc.local_service.max.hbm.size" => size_value(v).map(drop),
        "ock.mmc.local_service.memory.pool.mode" => match v {
            "standard" | "expanded" => Ok(()),
            _ => Err(format!("`{v}` is not standard or expanded")),
        },
        "ock.mmc.client.read_thread_pool.size" | "ock.mmc.client.write_thread_pool.size" => {
            int_value(v, 1, 64).map(drop)
        }
        "ock.mmc.client.aggregate.num" => int_value(v, 1, 131_072).map(drop),
        k if k.ends_with(".enable") || k == "ock.mmc.client.aggregate.io" => bool_value(v).map(drop),
        "ock.mmc.meta_service.config_store_url" | "ock.mmc.local_service.config_store_url" => {
            url_value(v, &["tcp://"]).map(drop)
        }
        "ock.mmc.local_service.hcom_url" => url_value(v, &["tcp://"]).map(drop),
        _ => Ok(()),
    }
}

/// Reads a file of the original's format (see the module documentation)
/// and checks the result as [`ConfigFile::load`] does, naming the
/// original's key and line when a check fails.
pub fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    let mut cfg = ConfigFile::default();
    let mut origins = Origins::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let line_err = |line: usize, key: &str, msg: String| ConfigError::Line {
        path: None,
        line,
        key: key.to_owned(),
        msg,
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            let shown: String = t.chars().take(60).collect();
            return Err(line_err(line, &shown, "expected `ock.mmc.<key> = value`".to_owned()));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(line_err(line, k, "the key is empty".to_owned()));
        }
        if let Some(first) = seen.insert(k.to_owned(), line) {
            return Err(line_err(line, k, format!("repeats line {first}")));
        }
        match apply(&mut cfg, &mut origins, k, v, line) {
            Ok(Some(w)) => cfg.warnings.push(format!("line {line}: {w}")),
            Ok(None) => {}
            Err(msg) => return Err(line_err(line, k, msg)),
        }
    }
    for r in [cfg.meta.validate(), cfg.local.validate()] {
        if let Err(e) = r {
            return Err(match e {
                ConfigError::Invalid { key, msg } => match origins.0.get(&key) {
                    Some((ock_key, line)) => line_err(*line, ock_key, format!("{msg} ({key})")),
                    None => ConfigError::Invalid { key, msg },
                },
                e => e,
            });
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_format_by_content() {
        assert!(is_ock_format("## comment\n\n  ock.mmc.log_level = info\n"));
        assert!(!is_ock_format("[local]\ndram_size = \"1GB\"\n"));
        assert!(!is_ock_format("# ock.mmc.log_level = info\n[meta]\n"));
        assert!(!is_ock_format(""));
    }

    #[test]
    fn maps_keys_and_warns_once_per_key_without_effect() {
        let c = parse(
            "ock.mmc.meta_service_url = tcp://127.0.0.1:6100\n\
             ock.mmc.local_service.world_size = 8\n\
             ock.mmc.local_service.dram.size = 256MB\n\
             ock.mmc.local_service.protocol = device_sdma\n\
             ock.mmc.client.timeout.seconds = 7\n\
             ock.mmc.client.retry_milliseconds = 1500\n\
             ock.mmc.evict_threshold_high = 70\n\
             ock.mmc.evict_threshold_low = 50\n",
        )
        .unwrap();
        assert_eq!(
            (c.meta.listen.as_str(), c.local.meta_addr.as_str()),
            ("127.0.0.1:6100", "127.0.0.1:6100")
        );
        assert_eq!(c.local.dram_size.0, 256 << 20);
        assert_eq!(c.local.protocol, Protocol::Auto);
        assert_eq!((c.local.rpc_timeout_ms, c.local.transfer_timeout_ms), (7000, 7000));
        assert_eq!(c.local.meta_retry_ms, 1500);
        assert_eq!((c.meta.evict_high_watermark, c.meta.evict_low_watermark), (70, 50));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("line 2:") && c.warnings[0].contains("world_size"));
        assert!(c.warnings[1].contains("device_sdma") && c.warnings[1].contains("auto"));
    }

    #[test]
    fn every_known_key_is_accepted() {
        let mut text = String::new();
        for (k, _) in MAPPED.iter().chain(NO_EFFECT) {
            let v = match *k {
                "ock.mmc.meta_service_url"
                | "ock.mmc.meta_service.config_store_url"
                | "ock.mmc.local_service.config_store_url"
                | "ock.mmc.local_service.hcom_url" => "tcp://127.0.0.1:5000",
                "ock.mmc.meta_service.metrics_url" => "http://127.0.0.1:8000",
                "ock.mmc.log_level" => "info",
                "ock.mmc.log_path" => "/tmp/x",
                "ock.mmc.local_service.world_size" => "16",
                "ock.mmc.local_service.protocol" => "host_tcp",
                "ock.mmc.local_service.memory.pool.mode" => "standard",
                k if k.ends_with("size") && k.contains("local_service") => "1GB",
                k if k.ends_with(".enable") || k.ends_with("aggregate.io") => "false",
                k if k.ends_with(".path") => "/tmp/x",
                _ => "20",
            };
            text += &format!("{k} = {v}\n");
        }
        let c = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.warnings.len(), NO_EFFECT.len());
        assert_eq!(c.local.protocol, Protocol::Tcp);
        assert_eq!(c.meta.log_path.as_deref(), Some("/tmp/x"));
    }

    #[test]
    fn bad_lines_name_the_line_and_key() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        let e = err("ock.mmc.log_level = info\nock.mmc.local_service.dram.size = lots\n");
        assert!(
            e.starts_with("line 2: `ock.mmc.local_service.dram.size`") && e.contains("lots"),
            "{e}"
        );
        let e = err("ock.mmc.local_service.world_size = 5000\n");
        assert!(
            e.contains("line 1") && e.contains("world_size") && e.contains("1..=1024"),
            "{e}"
        );
        let e = err("ock.mmc.local_servce.dram.size = 1GB\n"); // spellchecker:disable-line
        assert!(e.contains("local_servce") && e.contains("unknown key"), "{e}"); // spellchecker:disable-line
        let e = err("ock.mmc.log_level = info\nock.mmc.log_level = warn\n");
        assert!(e.contains("line 2") && e.contains("repeats line 1"), "{e}");
        let e = err("ock.mmc.log_level = info\njust words\n");
        assert!(e.contains("line 2") && e.contains("expected"), "{e}");
        let e = err("ock.mmc.meta_service_url = etcd://1.2.3.4:5\n");
        assert!(e.contains("tcp://<ip>:<port>"), "{e}");
        let e = err("ock.mmc.local_service.protocol = carrier_pigeon\n");
        assert!(e.contains("carrier_pigeon") && e.contains("host_rdma"), "{e}");
        // Cross-key checks name the original's key and line.
        let e = err("ock.mmc.evict_threshold_high = 50\nock.mmc.evict_threshold_low = 60\n");
        assert!(e.starts_with("line 2: `ock.mmc.evict_threshold_low`"), "{e}");
        let e = err("ock.mmc.log_level = info\nock.mmc.tls.enable = true\n");
        assert!(
            e.starts_with("line 2: `ock.mmc.tls.enable`") && e.contains("tls.cert"),
            "{e}"
        );
        let e = err("ock.mmc.local_service.dram.size = 2TB\n");
        assert!(e.contains("1TB maximum"), "{e}");
    }

    #[test]
    fn tls_keys_set_both_sections() {
        let c = parse(
            "ock.mmc.tls.enable = true\nock.mmc.tls.ca.path = /c/ca.pem\n\
             ock.mmc.tls.cert.path = /c/cert.pem\nock.mmc.tls.key.path = /c/key.pem\n\
             ock.mmc.local_service.hcom.tls.enable = true\n",
        )
        .unwrap();
        for s in [&c.meta.security, &c.local.security] {
            assert!(s.tls.enable && s.tls.mutual);
            assert_eq!(
                (s.tls.ca.as_str(), s.tls.cert.as_str(), s.tls.key.as_str()),
                ("/c/ca.pem", "/c/cert.pem", "/c/key.pem")
            );
        }
        assert!(c.local.security.tls.transfer && !c.meta.security.tls.transfer);
    }
}
