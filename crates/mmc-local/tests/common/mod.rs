//! Shared by the integration tests: a MetaService in the test process.

#![allow(dead_code)]

use mmc_config::MetaConfig;

/// A two-thread runtime with IO and timers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts a MetaService on `listen` on a runtime of its own; dropping the
/// runtime stops it and closes its connections, like a killed process.
pub fn start_meta(listen: &str) -> (String, tokio::runtime::Runtime) {
    let rt = runtime();
    let cfg = MetaConfig {
        listen: listen.into(),
        http_listen: String::new(),
        ..MetaConfig::default()
    };
    let svc = rt.block_on(mmc_meta::MetaService::bind(&cfg)).unwrap();
    let addr = svc.local_addr().to_string();
    rt.spawn(svc.run(std::future::pending()));
    (addr, rt)
}

/// A raw control connection to `addr` that has run the (open-mode)
/// authentication handshake, as every connection must before its frames.
pub fn raw_control(addr: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    mmc_wire::auth::client_handshake_blocking(&mut s, None, mmc_wire::auth::Domain::Control).unwrap();
    s.set_read_timeout(None).unwrap();
    s
}
