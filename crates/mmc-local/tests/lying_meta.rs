//! The client against a MetaService that lies: replies with the wrong
//! number of items, placements on peers that are not in the reply's peer
//! table or outside their segment, and objects of 2^64-1 bytes. Every call
//! returns an error naming what was wrong; nothing panics.

use mmc_local::{Error, LocalConfig, ObjectStore, Protocol, PutOptions};
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::{Located, PeerInfo, Placement, Request, Response, SegmentDesc};
use mmc_wire::Medium;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The one peer the liar admits to: a 1 MiB segment.
fn peer() -> PeerInfo {
    PeerInfo {
        service_id: 9,
        host_id: 12345,
        transfer_addr: "127.0.0.1:9".into(),
        segment: Some(SegmentDesc {
            name: "nowhere".into(),
            medium: Medium::Dram,
            size: 1 << 20,
            nonce: 1,
        }),
    }
}

/// The liar's answer to `req`.
async fn answer(req: Request) -> Response {
    match req {
        Request::Register(_) => Response::Registered {
            service_id: 1,
            lease_ms: 2000,
            members_epoch: 1,
            ledger_epoch: 1,
            term: 0,
        },
        Request::Heartbeat { .. } => Response::HeartbeatAck {
            known: true,
            members_epoch: 1,
            term: 0,
            draining: false,
        },
        Request::LedgerPoll { acked, .. } => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Response::LedgerOps {
                last_seq: acked,
                ops: Vec::new(),
                known: true,
                term: 0,
            }
        }
        Request::Members => Response::Members {
            epoch: 1,
            peers: vec![peer()],
        },
        // One item too many, or none at all.
        Request::Exist { keys } => Response::Exist(vec![true; keys.len() + 1]),
        Request::KeyInfo { .. } => Response::KeyInfo(Vec::new()),
        Request::Remove { keys } => Response::Remove(vec![Ok(()); keys.len() + 2]),
        // Replicas on peer 3 of a 1-peer table.
        Request::Alloc { items, .. } => Response::Alloc {
            peers: vec![peer()],
            items: items
                .iter()
                .map(|_| Ok(vec![Placement { peer: 3, offset: 0 }]))
                .collect(),
            term: 0,
        },
        Request::Finish { commit, .. } => Response::Finish {
            commit: commit.iter().map(|_| Ok(())).collect(),
        },
        // Per key: a size near 2^64 (on the segment, or on a peer that
        // describes none), a range past the segment's end, a peer index out
        // of the table.
        Request::Lookup { keys, .. } => Response::Lookup {
            peers: vec![
                peer(),
                PeerInfo {
                    service_id: 10,
                    host_id: 1,
                    transfer_addr: String::new(),
                    segment: None,
                },
            ],
            // A lease no deadline can hold.
            lease_ms: u64::MAX,
            items: keys
                .iter()
                .map(|k| {
                    let (size, at) = match k.as_str() {
                        "huge" => (u64::MAX, Placement { peer: 0, offset: 0 }),
                        "huge-elsewhere" => (u64::MAX, Placement { peer: 1, offset: 0 }),
                        "past-end" => (
                            4096,
                            Placement {
                                peer: 0,
                                offset: 1 << 20,
                            },
                        ),
                        _ => (10, Placement { peer: 7, offset: 0 }),
                    };
                    Ok(Located {
                        size,
                        object_id: 1,
                        replicas: vec![at],
                    })
                })
                .collect(),
        },
        Request::Unregister { .. } | Request::ReleaseLeases { .. } => Response::Ok,
        other => Response::Failed(mmc_wire::Error::invalid(format!("the liar does not do {other:?}"))),
    }
}

async fn serve_liar(mut sock: TcpStream) {
    if mmc_wire::auth::server_handshake(&mut sock, None, mmc_wire::auth::Domain::Control)
        .await
        .is_err()
    {
        return;
    }
    let (mut rd, mut wr) = sock.into_split();
    while let Ok(Some(f)) = frame::read_frame(&mut rd).await {
        let Ok(req) = f.decode::<Request>() else { return };
        let resp = answer(req).await;
        let Ok(buf) = frame::encode(FrameKind::Response, f.id, &resp) else {
            return;
        };
        if wr.write_all(&buf).await.is_err() {
            return;
        }
    }
}

fn malformed<T: std::fmt::Debug>(r: Result<T, Error>, what: &str, says: &str) {
    match r {
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains(says), "{what}: {m}");
        }
        Ok(v) => panic!("{what}: accepted {v:?}"),
    }
}

#[test]
fn lies_in_metaservice_replies_are_errors_not_panics() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                tokio::spawn(serve_liar(sock));
            }
        });
        addr
    });
    let s = ObjectStore::connect(LocalConfig {
        meta_addr: addr,
        protocol: Protocol::Tcp,
        dram_size: mmc_config::ByteSize(0),
        spin_wait_us: 0,
        rpc_timeout_ms: 5000,
        ..LocalConfig::default()
    })
    .expect("the liar registers us")
    .blocking();

    malformed(s.exist("k"), "exist", "exist answered 2 items for 1 keys");
    malformed(
        s.exist_batch(&["a", "b"]),
        "exist batch",
        "exist answered 3 items for 2 keys",
    );
    malformed(s.key_info("k"), "key info", "key info answered 0 items for 1 keys");
    malformed(s.remove("k"), "remove", "remove answered 3 items for 1 keys");
    malformed(
        s.put("k", b"value", &PutOptions::default()),
        "put",
        "peer index 3 of a 1-peer table",
    );
    malformed(
        s.get("huge"),
        "get of a 2^64-1 byte object",
        "outside the 1048576-byte segment",
    );
    malformed(
        s.get("past-end"),
        "get past the segment",
        "outside the 1048576-byte segment",
    );
    // This used to panic with `capacity overflow` allocating the value.
    malformed(
        s.get("huge-elsewhere"),
        "get of a 2^64-1 byte object on a peer without a segment",
        "object of 18446744073709551615 bytes exceeds",
    );
    malformed(s.get("k"), "get from a missing peer", "peer index 7 of a 2-peer table");
    let mut buf = [0u8; 10];
    malformed(s.get_into("k", &mut buf).map(|_| ()), "get_into", "peer index 7");
    s.close();
}
