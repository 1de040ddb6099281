//! A rogue "memory provider" that names an arbitrary file as its segment
//! (`/proc/self/root/<path>`) must not get a legitimate client on the same
//! host to write into that file: the client maps only a verified memfd of
//! the owner, so the rogue is reached over TCP (where it serves nothing and
//! the puts fail cleanly), the file stays as it was, and the cluster keeps
//! serving.

mod common;

use common::{pattern, Cluster, Opts};
use mmc_local::{Medium, Protocol, PutOptions};
use mmc_wire::auth::Domain;
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::{RegisterReq, Request, Response, SegmentDesc};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const VICTIM_LEN: usize = 4 << 20;

/// Opens a raw control connection to the MetaService (open-mode
/// handshake). Every raw connection of this test goes through here.
fn connect_control(addr: &str) -> TcpStream {
    let s = common::handshake(addr, Domain::Control, None);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends one request and reads its response on a raw control connection.
fn call(sock: &mut TcpStream, id: u64, req: &Request) -> Response {
    sock.write_all(&frame::encode(FrameKind::Request, id, req).unwrap())
        .unwrap();
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    sock.read_exact(&mut body).expect("response body");
    assert!(body.len() >= 10, "short response frame");
    assert_eq!(u64::from_le_bytes(body[2..10].try_into().unwrap()), id, "response id");
    postcard::from_bytes(&body[10..]).expect("decodable response")
}

#[test]
fn a_forged_segment_name_never_gets_a_file_overwritten() {
    let c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let host_id = c.stat().unwrap().segments[0].host_id;

    // The file the rogue wants overwritten, with known bytes.
    let victim = c.dir.join("victim");
    let original = pattern("victim", VICTIM_LEN);
    std::fs::write(&victim, &original).unwrap();
    let forged = format!("/proc/self/root{}", victim.canonicalize().unwrap().display());

    // The rogue registers with the real host id, the forged name, a made-up
    // nonce and a transfer address where nothing listens, then heartbeats.
    let mut rogue = connect_control(&c.meta_addr);
    let dead_port = common::free_port();
    let reg = Request::Register(RegisterReq {
        host_id,
        transfer_addr: format!("127.0.0.1:{dead_port}"),
        segment: Some(SegmentDesc {
            name: forged.clone(),
            medium: Medium::Dram,
            size: VICTIM_LEN as u64,
            nonce: 0x5eed,
        }),
        prev_service_id: None,
        recovering: false,
    });
    let rogue_id = match call(&mut rogue, 1, &reg) {
        Response::Registered { service_id, .. } => service_id,
        other => panic!("rogue registration: {other:?}"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let beat = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut id = 2;
            while !stop.load(Ordering::Relaxed) {
                match call(&mut rogue, id, &Request::Heartbeat { service_id: rogue_id }) {
                    Response::HeartbeatAck { known: true, .. } => {}
                    other => panic!("rogue heartbeat: {other:?}"),
                }
                id += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    c.wait_members(2);

    // A legitimate client on the same host puts with placement on the rogue.
    let client = c.client(Protocol::Auto, 0);
    let opts = PutOptions {
        replicas: 1,
        preferred: vec![rogue_id],
    };
    let mut failed = 0;
    for i in 0..64 {
        let key = format!("forged-{i}");
        let value = vec![0xAB; 64 << 10];
        match client.put(&key, &value, &opts) {
            Ok(()) => assert_eq!(client.get(&key).unwrap(), value, "{key} reads back"),
            Err(e) => {
                failed += 1;
                eprintln!("put {key} failed cleanly: {e}");
            }
        }
    }
    assert!(
        std::fs::read(&victim).unwrap() == original,
        "the file named by the forged segment was modified"
    );
    assert!(
        failed > 0,
        "puts placed on a provider that serves nothing cannot all succeed"
    );

    // The cluster keeps serving: a put placed on the genuine provider works
    // (over shared memory) and reads back.
    let genuine = PutOptions {
        replicas: 1,
        preferred: vec![c.locals[0].service_id],
    };
    let v = pattern("after", 1 << 20);
    client.put("after", &v, &genuine).unwrap();
    assert_eq!(client.get("after").unwrap(), v);
    assert_eq!(
        c.stat().unwrap().segments.len(),
        2,
        "the provider and the rogue stay members"
    );

    stop.store(true, Ordering::Relaxed);
    beat.join().unwrap();
    client.close();
    assert!(std::fs::read(&victim).unwrap() == original);
}
