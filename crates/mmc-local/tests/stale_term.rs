//! Fencing on the client side: answers stamped with a leader term older than
//! one the client has already seen (a deposed HA leader that woke up) are
//! refused as NOT_LEADER, whatever they say; NOT_LEADER answers are passed on
//! as the retryable error they are.

use mmc_local::meta_client::MetaClient;
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::{LedgerEntry, LedgerOp, Request, Response};
use mmc_wire::{Error, ErrorKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A MetaService stand-in whose answers carry the term in `term` (0:
/// answers NOT_LEADER).
async fn serve(l: TcpListener, term: Arc<AtomicU64>) {
    while let Ok((mut sock, _)) = l.accept().await {
        let term = term.clone();
        tokio::spawn(async move {
            if mmc_wire::auth::server_handshake(&mut sock, None, mmc_wire::auth::Domain::Control)
                .await
                .is_err()
            {
                return;
            }
            let (mut rd, mut wr) = sock.into_split();
            while let Ok(Some(f)) = frame::read_frame(&mut rd).await {
                let Ok(req) = f.decode::<Request>() else { return };
                let t = term.load(Ordering::SeqCst);
                let resp = match req {
                    _ if t == 0 => {
                        Response::Failed(Error::new(ErrorKind::NotLeader, "the leader is 10.9.9.9:5000 (term 8)"))
                    }
                    Request::Heartbeat { .. } => Response::HeartbeatAck {
                        known: true,
                        members_epoch: 1,
                        term: t,
                        draining: false,
                    },
                    Request::LedgerPoll { acked, .. } => Response::LedgerOps {
                        last_seq: acked + 1,
                        ops: vec![LedgerOp::Add(LedgerEntry {
                            key: "k".into(),
                            offset: 0,
                            size: 1,
                            object_id: 1,
                        })],
                        known: true,
                        term: t,
                    },
                    _ => Response::Failed(Error::invalid("not served here")),
                };
                let Ok(buf) = frame::encode(FrameKind::Response, f.id, &resp) else {
                    return;
                };
                if wr.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[test]
fn answers_of_a_deposed_leader_are_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let term = Arc::new(AtomicU64::new(5));
    let addr = rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(serve(l, term.clone()));
        addr
    });
    let mc = MetaClient::new(addr, Duration::from_secs(5), Duration::ZERO, rt.handle().clone());
    let hb = Request::Heartbeat { service_id: 1 };
    let poll = Request::LedgerPoll {
        service_id: 1,
        epoch: 1,
        acked: 0,
    };
    assert!(matches!(
        rt.block_on(mc.call(&hb)),
        Ok(Response::HeartbeatAck { term: 5, .. })
    ));
    assert_eq!(mc.leader_term(), 5);
    // A deposed leader (term 3) answers: refused, heartbeat and ledger ops.
    term.store(3, Ordering::SeqCst);
    for req in [&hb, &poll] {
        match rt.block_on(mc.call(req)) {
            Err(ref e) if e.kind() == ErrorKind::NotLeader => {
                assert!(e.is_retryable());
                assert!(e.to_string().contains("older than term 5"), "{e}");
            }
            other => panic!("an answer of term 3 after term 5 was accepted: {other:?}"),
        }
    }
    // A newer leader is accepted, and raises the bar.
    term.store(6, Ordering::SeqCst);
    assert!(matches!(
        rt.block_on(mc.call(&poll)),
        Ok(Response::LedgerOps { term: 6, .. })
    ));
    term.store(5, Ordering::SeqCst);
    assert!(matches!(rt.block_on(mc.call(&hb)), Err(ref e) if e.kind() == ErrorKind::NotLeader));
    // NOT_LEADER from a standby is passed on, retryable, naming the leader.
    term.store(0, Ordering::SeqCst);
    match rt.block_on(mc.call(&hb)) {
        Err(e) => {
            assert_eq!(e.code(), mmc_wire::error::code::NOT_LEADER);
            assert!(e.to_string().contains("10.9.9.9:5000"), "{e}");
        }
        Ok(r) => panic!("accepted {r:?}"),
    }
}
