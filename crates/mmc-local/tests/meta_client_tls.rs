//! The MetaService client over TLS against a TLS MetaService in this
//! process: control and data-path calls are answered, sends without
//! waiting stay ordered before later requests, the data path never uses a
//! shared-memory ring, and a client that trusts another CA or lacks the
//! client certificate a mutual-TLS MetaService requires gets
//! NOT_CONNECTED_META instead of answers.

use mmc_config::MetaConfig;
use mmc_local::meta_client::MetaClient;
use mmc_tls::testing::TestPki;
use mmc_tls::ClientTls;
use mmc_wire::message::{Request, Response};
use mmc_wire::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::runtime;

fn start_tls_meta(pki: &TestPki, mutual: bool) -> (String, tokio::runtime::Runtime) {
    let rt = runtime();
    let mut cfg = MetaConfig {
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        ..MetaConfig::default()
    };
    cfg.security.tls = pki.server_config(mutual);
    let svc = rt.block_on(mmc_meta::MetaService::bind(&cfg)).unwrap();
    let addr = svc.local_addr().to_string();
    rt.spawn(svc.run(std::future::pending()));
    (addr, rt)
}

fn client(rt: &tokio::runtime::Runtime, addr: &str, tls: &mmc_config::TlsConfig) -> MetaClient {
    MetaClient::new(
        addr.to_string(),
        Duration::from_secs(5),
        Duration::from_micros(100),
        rt.handle().clone(),
    )
    .with_tls(Some(ClientTls::new(tls).unwrap()))
}

#[test]
fn calls_over_tls_are_answered_in_order() {
    let pki = TestPki::new("client-ok");
    let (addr, _meta) = start_tls_meta(&pki, true);
    let rt = runtime();
    let mc = Arc::new(client(&rt, &addr, &pki.client_config(true)));
    match rt.block_on(mc.call(&Request::Stat)).unwrap() {
        Response::Stat(s) => assert_eq!(s.members, 0),
        other => panic!("{other:?}"),
    }
    match rt
        .block_on(mc.call_fast(&Request::Exist { keys: vec!["a".into()] }))
        .unwrap()
    {
        Response::Exist(v) => assert_eq!(v, vec![false]),
        other => panic!("{other:?}"),
    }
    assert_eq!(mc.data_path_uses_ring(), Some(false));
    // Many threads share the data-path connection.
    let threads: Vec<_> = (0..4usize)
        .map(|t| {
            let mc = mc.clone();
            let h = rt.handle().clone();
            std::thread::spawn(move || {
                for i in 0..200usize {
                    let n = 1 + (t * 5 + i) % 11;
                    let keys = (0..n).map(|k| format!("k{t}-{i}-{k}")).collect();
                    match h.block_on(mc.call_fast(&Request::Exist { keys })).unwrap() {
                        Response::Exist(v) => assert_eq!(v, vec![false; n]),
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // A send without waiting is processed before the next request: the
    // remove-all answered to nobody precedes the stat.
    rt.block_on(mc.send_only(&Request::RemoveAll, "remove all")).unwrap();
    assert!(matches!(
        rt.block_on(mc.call_fast(&Request::Exist { keys: vec!["a".into()] })),
        Ok(Response::Exist(_))
    ));
    // Reconnects after a reset.
    rt.block_on(mc.reset());
    assert!(rt.block_on(mc.call(&Request::Members)).is_ok());
    assert!(rt
        .block_on(mc.call_fast(&Request::Exist { keys: vec!["a".into()] }))
        .is_ok());
}

#[test]
fn untrusted_server_and_missing_client_cert_are_refused() {
    let pki = TestPki::new("client-refused");
    let (addr, _meta) = start_tls_meta(&pki, true);
    let rt = runtime();
    let mut wrong_ca = pki.client_config(true);
    wrong_ca.ca = pki.other_ca.display().to_string();
    let mc = client(&rt, &addr, &wrong_ca);
    let e = rt.block_on(mc.call(&Request::Stat)).unwrap_err();
    assert!(e.kind() == ErrorKind::NotConnectedMeta, "{e}");
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    // No client certificate: the handshake completes on the client's side
    // (TLS 1.3) but the MetaService closes the connection unanswered.
    let mc = client(&rt, &addr, &pki.client_config(false));
    let e = rt.block_on(mc.call(&Request::Stat)).unwrap_err();
    assert!(e.kind() == ErrorKind::NotConnectedMeta, "{e}");
    let e = rt
        .block_on(mc.call_fast(&Request::Exist { keys: vec!["a".into()] }))
        .unwrap_err();
    assert!(e.kind() == ErrorKind::NotConnectedMeta, "{e}");
}
