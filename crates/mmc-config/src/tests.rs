//! Tests of the configuration types: defaults, parsing of sizes and
//! sections, and validation errors naming the key.

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
    let c =
        ConfigFile::from_toml("[meta]\nlease_ms = 500\n[local]\ndram_size = \"2.5G\"\nprotocol = \"tcp\"\n").unwrap();
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
    let c =
        ConfigFile::from_toml("[meta]\nlog_format = \"json\"\n[local]\nlog_level = \"warn\"\nlog_format = \"json\"\n")
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
