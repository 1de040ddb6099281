//! Measures what TLS costs a control-RPC round trip: sequential `exist`
//! calls of one key against a MetaService in this process, with TLS off and
//! on, on the control connection (`call`) and on the data-path connection
//! (`call_fast`; without TLS: polled TCP, and the shared-memory ring a
//! same-host client uses by default). Configurations alternate over
//! several rounds; each line reports the median round. Then the cost of
//! a new control connection: connect (and handshake) plus a first call,
//! median of fresh clients. Defaults of
//! `meta.spin_wait_us`, `meta.tcp_polling` and `local.spin_wait_us` apply.
//!
//! `cargo run --release -p mmc-local --example tls_rtt [calls] [rounds]`

use mmc_config::{LocalConfig, MetaConfig};
use mmc_local::meta_client::MetaClient;
use mmc_tls::testing::TestPki;
use mmc_tls::ClientTls;
use mmc_wire::message::{Request, Response};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn meta(tls: Option<mmc_config::TlsConfig>) -> (String, tokio::runtime::Runtime) {
    let rt = runtime();
    let mut cfg = MetaConfig {
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        ..MetaConfig::default()
    };
    if let Some(t) = tls {
        cfg.security.tls = t;
    }
    let svc = rt.block_on(mmc_meta::MetaService::bind(&cfg)).expect("bind");
    let addr = svc.local_addr().to_string();
    rt.spawn(svc.run(std::future::pending()));
    (addr, rt)
}

struct Case {
    name: &'static str,
    client: MetaClient,
    fast: bool,
    rounds_us: Vec<f64>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let pki = TestPki::new("rtt");
    let (plain_addr, _plain_meta) = meta(None);
    let (tls_addr, _tls_meta) = meta(Some(pki.server_config(false)));
    let (mtls_addr, _mtls_meta) = meta(Some(pki.server_config(true)));
    let rt = runtime();
    let local = LocalConfig::default();
    let mk = |addr: &str, ring: bool, tls: Option<mmc_config::TlsConfig>| {
        MetaClient::new(
            addr.to_string(),
            Duration::from_secs(5),
            Duration::from_micros(local.spin_wait_us),
            rt.handle().clone(),
        )
        .with_shm_ring(ring)
        .with_tls(tls.map(|t| ClientTls::new(&t).expect("client tls")))
    };
    let mut cases = vec![
        Case {
            name: "plain  control (call)",
            client: mk(&plain_addr, false, None),
            fast: false,
            rounds_us: vec![],
        },
        Case {
            name: "TLS    control (call)",
            client: mk(&tls_addr, false, Some(pki.client_config(false))),
            fast: false,
            rounds_us: vec![],
        },
        Case {
            name: "mTLS   control (call)",
            client: mk(&mtls_addr, false, Some(pki.client_config(true))),
            fast: false,
            rounds_us: vec![],
        },
        Case {
            name: "plain  data path, TCP (call_fast)",
            client: mk(&plain_addr, false, None),
            fast: true,
            rounds_us: vec![],
        },
        Case {
            name: "plain  data path, shm ring (call_fast)",
            client: mk(&plain_addr, true, None),
            fast: true,
            rounds_us: vec![],
        },
        Case {
            name: "TLS    data path (call_fast)",
            client: mk(&tls_addr, false, Some(pki.client_config(false))),
            fast: true,
            rounds_us: vec![],
        },
        Case {
            name: "mTLS   data path (call_fast)",
            client: mk(&mtls_addr, false, Some(pki.client_config(true))),
            fast: true,
            rounds_us: vec![],
        },
    ];
    let req = Request::Exist {
        keys: vec!["one-key".into()],
    };
    for round in 0..=rounds {
        for c in cases.iter_mut() {
            let start = Instant::now();
            for _ in 0..calls {
                let r = if c.fast {
                    rt.block_on(c.client.call_fast(&req))
                } else {
                    rt.block_on(c.client.call(&req))
                };
                assert!(matches!(r, Ok(Response::Exist(_))), "{}: {r:?}", c.name);
            }
            // Round 0 warms up (connects, handshakes).
            if round > 0 {
                c.rounds_us.push(start.elapsed().as_secs_f64() * 1e6 / calls as f64);
            }
        }
    }
    println!(
        "{calls} sequential exist calls x {rounds} rounds (median round; min..max), {} build",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    for c in &mut cases {
        c.rounds_us.sort_by(|a, b| a.total_cmp(b));
        let med = c.rounds_us[c.rounds_us.len() / 2];
        println!(
            "{:40} {:8.1} us/call  ({:.1}..{:.1})",
            c.name,
            med,
            c.rounds_us[0],
            c.rounds_us[c.rounds_us.len() - 1]
        );
    }
    // Connection set-up: a fresh client's first call.
    let setups = (calls / 50).max(20);
    let fresh = [
        ("plain", &plain_addr, None),
        ("TLS  ", &tls_addr, Some(pki.client_config(false))),
        ("mTLS ", &mtls_addr, Some(pki.client_config(true))),
    ];
    println!("new control connection + first call, median of {setups}:");
    for (name, addr, tls) in fresh {
        let mut us: Vec<f64> = (0..setups)
            .map(|_| {
                let c = mk(addr, false, tls.clone());
                let start = Instant::now();
                let r = rt.block_on(c.call(&req));
                assert!(matches!(r, Ok(Response::Exist(_))), "{name}: {r:?}");
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        us.sort_by(|a, b| a.total_cmp(b));
        println!("{name} {:8.1} us", us[us.len() / 2]);
    }
    let _ = std::fs::remove_dir_all(&pki.dir);
}
