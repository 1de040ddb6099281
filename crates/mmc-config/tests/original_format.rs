//! Reads files in the original MemCache's `ock.mmc.<key> = value` format
//! (tests/data/mmc-meta.conf and mmc-local.conf, shaped like its shipped
//! files) through the public loader, as the services and clients do.

use mmc_config::{ConfigFile, Protocol};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A copy of a data file with `edits` applied, in a fresh directory of its
/// own (tests run in parallel: two copies of one file must never share a
/// path, or one test reads the other's half-written file).
fn copy_with(name: &str, edits: &[(&str, &str)]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mmc-ockfmt-{}-{n}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = std::fs::read_to_string(data(name)).unwrap();
    for (from, to) in edits {
        text = text.replace(from, to);
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn meta_file_sets_the_meta_section() {
    let p = copy_with("mmc-meta.conf", &[("LOG_DIR", "/var/tmp/mmc-test-logs")]);
    let c = ConfigFile::load(&p).unwrap();
    assert_eq!(c.meta.listen, "127.0.0.1:5000");
    assert_eq!(c.meta.http_listen, "127.0.0.1:8000");
    assert!(!c.meta.ha.enable);
    assert_eq!(c.meta.log_level, "debug");
    assert_eq!(c.meta.log_path.as_deref(), Some("/var/tmp/mmc-test-logs"));
    assert_eq!((c.meta.log_rotation_size.0, c.meta.log_rotation_count), (1 << 20, 3));
    assert_eq!((c.meta.evict_high_watermark, c.meta.evict_low_watermark), (85, 75));
    // The shared keys also set the local section.
    assert_eq!(c.local.meta_addr, "127.0.0.1:5000");
    assert_eq!(c.local.log_level.as_deref(), Some("debug"));
    // One warning: the config store URL, named with the file and line.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = &c.warnings[0];
    assert!(
        w.starts_with(&format!("{}:9:", p.display())) && w.contains("ock.mmc.meta_service.config_store_url"),
        "{w}"
    );
}

#[test]
fn local_file_sets_the_local_section_and_warns_once_per_key() {
    let c = ConfigFile::load(&data("mmc-local.conf")).unwrap();
    assert_eq!(c.local.meta_addr, "127.0.0.1:5000");
    assert_eq!(c.local.dram_size.0, 32 << 20);
    assert_eq!(c.local.protocol, Protocol::Auto);
    assert_eq!((c.local.rpc_timeout_ms, c.local.transfer_timeout_ms), (60_000, 60_000));
    assert_eq!(c.local.log_level.as_deref(), Some("info"));
    let keys_warned: Vec<&str> = c
        .warnings
        .iter()
        .map(|w| w.split('`').nth(1).unwrap_or(w.as_str()))
        .collect();
    assert_eq!(
        keys_warned,
        [
            "ock.mmc.local_service.config_store_url",
            "ock.mmc.local_service.world_size",
            "host_rdma",
            "ock.mmc.local_service.hcom_url",
            "ock.mmc.local_service.max.dram.size",
            "ock.mmc.client.read_thread_pool.size",
            "ock.mmc.client.write_thread_pool.size",
            "ock.mmc.client.aggregate.io",
            "ock.mmc.client.aggregate.num",
        ],
        "{:#?}",
        c.warnings
    );
    assert!(c.warnings[2].contains("using `auto`"), "{}", c.warnings[2]);
}

#[test]
fn env_variable_finds_an_original_file() {
    // Only this test of this binary touches the variable.
    let var = "MMC_TEST_OCK_LOCAL_CONFIG_PATH";
    std::env::set_var(var, data("mmc-local.conf"));
    let c = ConfigFile::load_or_env(None, var).unwrap();
    std::env::remove_var(var);
    assert_eq!(c.local.dram_size.0, 32 << 20);
}

#[test]
fn bad_values_name_file_line_and_key() {
    let p = copy_with(
        "mmc-local.conf",
        &[(
            "ock.mmc.client.aggregate.num = 122",
            "ock.mmc.client.aggregate.num = 200000",
        )],
    );
    let e = ConfigFile::load(&p).unwrap_err().to_string();
    let line = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .position(|l| l.contains("aggregate.num = 200000"))
        .unwrap()
        + 1;
    assert!(
        e.starts_with(&format!("{}:{line}: `ock.mmc.client.aggregate.num`", p.display())) && e.contains("1..=131072"),
        "{e}"
    );
    let p = copy_with("mmc-meta.conf", &[("tcp://127.0.0.1:5000", "tcp://localhost")]);
    let e = ConfigFile::load(&p).unwrap_err().to_string();
    assert!(
        e.contains(":6: `ock.mmc.meta_service_url`") && e.contains("tcp://localhost"),
        "{e}"
    );
    // A TOML file is still read as TOML, with TOML's errors.
    let p = copy_with("mmc-meta.conf", &[]);
    let toml = p.with_file_name("plain.toml");
    std::fs::write(&toml, "[local]\ndram_size = \"16MB\"\n").unwrap();
    assert_eq!(ConfigFile::load(&toml).unwrap().local.dram_size.0, 16 << 20);
}
