//! The MetaService client against a real MetaService in this process: answers
//! reach the right caller whether callers poll for them or sleep, many
//! threads share the data-path connection, and a lost MetaService fails the
//! calls and is reconnected to once it is back.

use mmc_config::MetaConfig;
use mmc_local::meta_client::MetaClient;
use mmc_wire::message::{Request, Response};
use mmc_wire::Error;
use std::sync::Arc;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts a MetaService on `listen` on a runtime of its own; dropping the
/// runtime stops it and closes its connections, like a killed process.
fn start_meta(listen: &str) -> (String, tokio::runtime::Runtime) {
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

fn exist(rt: &tokio::runtime::Runtime, mc: &MetaClient, keys: Vec<String>) -> Result<Vec<bool>, Error> {
    match rt.block_on(mc.call_fast(&Request::Exist { keys }))? {
        Response::Exist(v) => Ok(v),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[test]
fn answers_reach_their_callers_polling_or_sleeping() {
    let rt = runtime();
    let (addr, _meta) = start_meta("127.0.0.1:0");
    for spin_us in [0u64, 100, 5000] {
        let mc = Arc::new(MetaClient::new(
            addr.clone(),
            Duration::from_secs(5),
            Duration::from_micros(spin_us),
            rt.handle().clone(),
        ));
        // Each thread asks for a different number of keys and checks it gets
        // exactly that many answers back: a mixed-up answer would not fit.
        let threads: Vec<_> = (0..6usize)
            .map(|t| {
                let mc = mc.clone();
                let h = rt.handle().clone();
                std::thread::spawn(move || {
                    for i in 0..300usize {
                        let n = 1 + (t * 7 + i) % 13;
                        let keys = (0..n).map(|k| format!("k{t}-{i}-{k}")).collect();
                        let r = h.block_on(mc.call_fast(&Request::Exist { keys })).unwrap();
                        match r {
                            Response::Exist(v) => assert_eq!(v, vec![false; n], "spin {spin_us} us"),
                            other => panic!("unexpected answer {other:?}"),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Async callers on the runtime's own threads are answered too.
        let handles: Vec<_> = (0..20usize)
            .map(|i| {
                let mc = mc.clone();
                rt.spawn(async move {
                    let keys = (0..=i).map(|k| format!("a{i}-{k}")).collect();
                    match mc.call_fast(&Request::Exist { keys }).await.unwrap() {
                        Response::Exist(v) => assert_eq!(v.len(), i + 1),
                        other => panic!("unexpected answer {other:?}"),
                    }
                })
            })
            .collect();
        for h in handles {
            rt.block_on(h).unwrap();
        }
    }
}

#[test]
fn a_lost_metaservice_fails_calls_and_is_reconnected() {
    let rt = runtime();
    let (addr, meta) = start_meta("127.0.0.1:0");
    let mc = MetaClient::new(
        addr.clone(),
        Duration::from_secs(2),
        Duration::from_micros(100),
        rt.handle().clone(),
    );
    assert_eq!(exist(&rt, &mc, vec!["x".into()]).unwrap(), vec![false]);
    meta.shutdown_background();
    // The server's connections close with it; calls fail until it is back.
    let mut failed = None;
    for _ in 0..50 {
        match exist(&rt, &mc, vec!["x".into()]) {
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let e = failed.expect("calls fail once the MetaService is gone");
    assert!(matches!(e, Error::NotConnectedMeta(_)), "{e:?}");
    let (_addr2, _meta2) = start_meta(&addr);
    let mut ok = false;
    for _ in 0..100 {
        if exist(&rt, &mc, vec!["y".into()]).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "the client reconnects to the restarted MetaService");
}
