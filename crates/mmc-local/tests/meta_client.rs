//! The MetaService client against a real MetaService in this process: answers
//! reach the right caller whether callers poll for them or sleep, many
//! threads share the data-path connection, and a lost MetaService fails the
//! calls and is reconnected to once it is back. Each runs with the
//! data-path connection on the shared-memory ring and on plain TCP. Offers
//! of rings that are not what they claim, and a ring scribbled over, are
//! refused or close only that connection.

use mmc_local::meta_client::MetaClient;
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::{Request, Response};
use mmc_wire::shm_ring::{RingTx, ShmRegion, TO_META};
use mmc_wire::{Error, ErrorKind};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{runtime, start_meta};

fn exist(rt: &tokio::runtime::Runtime, mc: &MetaClient, keys: Vec<String>) -> Result<Vec<bool>, Error> {
    match rt.block_on(mc.call_fast(&Request::Exist { keys }))? {
        Response::Exist(v) => Ok(v),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn client(rt: &tokio::runtime::Runtime, addr: &str, timeout: Duration, spin_us: u64, ring: bool) -> MetaClient {
    MetaClient::new(
        addr.to_string(),
        timeout,
        Duration::from_micros(spin_us),
        rt.handle().clone(),
    )
    .with_shm_ring(ring)
}

#[test]
fn answers_reach_their_callers_polling_or_sleeping() {
    let rt = runtime();
    let (addr, _meta) = start_meta("127.0.0.1:0");
    for (spin_us, ring) in [
        (0u64, false),
        (100, false),
        (5000, false),
        (0, true),
        (100, true),
        (5000, true),
    ] {
        let mc = Arc::new(client(&rt, &addr, Duration::from_secs(5), spin_us, ring));
        assert_eq!(exist(&rt, &mc, vec!["first".into()]).unwrap(), vec![false]);
        assert_eq!(
            mc.data_path_uses_ring(),
            Some(ring),
            "a MetaService in this process accepts the ring when offered"
        );
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
                            Response::Exist(v) => assert_eq!(v, vec![false; n], "spin {spin_us} us, ring {ring}"),
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
        // Frames larger than a ring (a 16384-key batch of 200-byte keys is
        // about 3.3 MB each way) stream through it.
        let keys: Vec<String> = (0..16384).map(|i| format!("{i:0>200}")).collect();
        assert_eq!(exist(&rt, &mc, keys).unwrap(), vec![false; 16384], "ring {ring}");
    }
}

#[test]
fn a_lost_metaservice_fails_calls_and_is_reconnected() {
    for ring in [false, true] {
        lost_metaservice(ring);
    }
}

fn lost_metaservice(ring: bool) {
    let rt = runtime();
    let (addr, meta) = start_meta("127.0.0.1:0");
    let mc = client(&rt, &addr, Duration::from_secs(2), 100, ring);
    assert_eq!(exist(&rt, &mc, vec!["x".into()]).unwrap(), vec![false]);
    assert_eq!(mc.data_path_uses_ring(), Some(ring));
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
    assert!(e.kind() == ErrorKind::NotConnectedMeta, "{e:?}");
    let (_addr2, _meta2) = start_meta(&addr);
    let mut ok = false;
    for _ in 0..100 {
        if exist(&rt, &mc, vec!["y".into()]).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "the client reconnects to the restarted MetaService (ring {ring})");
    assert_eq!(mc.data_path_uses_ring(), Some(ring));
}

/// Sends one request frame on a blocking socket and reads one answer.
fn roundtrip(sock: &mut std::net::TcpStream, id: u64, req: &Request) -> Response {
    let buf = frame::encode(FrameKind::Request, id, req).unwrap();
    sock.write_all(&buf).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let std = sock.try_clone().unwrap();
    std.set_nonblocking(true).unwrap();
    let f = rt.block_on(async move {
        let mut s = tokio::net::TcpStream::from_std(std).unwrap();
        frame::read_frame(&mut s).await.unwrap().expect("an answer")
    });
    sock.set_nonblocking(false).unwrap();
    assert_eq!(f.id, id);
    f.decode().unwrap()
}

#[test]
fn ring_offers_that_are_not_rings_are_refused_and_tcp_goes_on() {
    let (addr, _meta) = start_meta("127.0.0.1:0");
    let real = ShmRegion::create().unwrap();
    let file = std::env::temp_dir().join(format!("mmc-ring-offer-{}", std::process::id()));
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(4 << 20).unwrap();
    let fd_name = {
        use std::os::fd::AsRawFd;
        format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd())
    };
    let offers = [
        ("/etc/passwd".to_string(), real.nonce(), "not /proc/<pid>/fd/<n>"),
        (fd_name, real.nonce(), "sealed"),
        (real.name().to_string(), real.nonce() ^ 4, "nonce"),
        ("/proc/999999999/fd/3".to_string(), 1, "network namespace"),
    ];
    for (name, nonce, why) in offers {
        let mut s = common::raw_control(&addr);
        match roundtrip(
            &mut s,
            7,
            &Request::AttachRing {
                name: name.clone(),
                nonce,
            },
        ) {
            Response::Failed(ref e) if e.kind() == ErrorKind::InvalidParam => {
                assert!(e.message().contains(why), "{name}: {e}")
            }
            other => panic!("{name}: {other:?}"),
        }
        // The same connection goes on over TCP.
        match roundtrip(&mut s, 8, &Request::Exist { keys: vec!["k".into()] }) {
            Response::Exist(v) => assert_eq!(v, vec![false]),
            other => panic!("{other:?}"),
        }
        // An offer later in a connection is refused too.
        match roundtrip(
            &mut s,
            9,
            &Request::AttachRing {
                name: real.name().into(),
                nonce: real.nonce(),
            },
        ) {
            Response::Failed(ref e) if e.kind() == ErrorKind::InvalidParam => {
                assert!(e.message().contains("first request"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
    drop(f);
    let _ = std::fs::remove_file(&file);
}

/// A hand-driven ring connection: the region and the socket (doorbell).
fn raw_ring_client(addr: &str) -> (Arc<ShmRegion>, std::net::TcpStream) {
    let region = Arc::new(ShmRegion::create().unwrap());
    let mut s = common::raw_control(addr);
    let offer = Request::AttachRing {
        name: region.name().into(),
        nonce: region.nonce(),
    };
    assert_eq!(roundtrip(&mut s, 1, &offer), Response::Ok);
    (region, s)
}

#[test]
fn a_scribbled_ring_closes_only_its_connection() {
    let rt = runtime();
    let (addr, _meta) = start_meta("127.0.0.1:0");
    let (region, mut s) = raw_ring_client(&addr);
    // A frame header claiming 4 GiB, then the doorbell.
    let tx = RingTx::new(region.clone(), TO_META);
    tx.write(&[0xff, 0xff, 0xff, 0xff, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    s.write_all(&[1]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    let n = std::io::Read::read(&mut s, &mut b).unwrap_or(0);
    assert_eq!(n, 0, "the MetaService closes the connection of a bad ring");
    // Everyone else is still served, on a ring too.
    let mc = client(&rt, &addr, Duration::from_secs(2), 100, true);
    assert_eq!(exist(&rt, &mc, vec!["x".into()]).unwrap(), vec![false]);
    assert_eq!(mc.data_path_uses_ring(), Some(true));
}

#[test]
fn a_client_that_never_reads_its_answers_holds_up_nobody() {
    let rt = runtime();
    let (addr, _meta) = start_meta("127.0.0.1:0");
    let (region, mut s) = raw_ring_client(&addr);
    // 100 requests whose answers (16 KiB each) overflow the 1 MiB answer
    // ring, which this client never reads.
    let tx = RingTx::new(region.clone(), TO_META);
    let keys: Vec<String> = (0..16384).map(|i| format!("{}", i % 10)).collect();
    for id in 0..100u64 {
        let buf = frame::encode(FrameKind::Request, 100 + id, &Request::Exist { keys: keys.clone() }).unwrap();
        let mut off = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while off < buf.len() {
            off += tx.write(&buf[off..]).unwrap();
            let _ = s.write_all(&[1]);
            assert!(
                std::time::Instant::now() < deadline,
                "the MetaService stopped reading requests"
            );
            std::thread::yield_now();
        }
    }
    // Everyone else is served meanwhile.
    let mc = client(&rt, &addr, Duration::from_secs(2), 100, true);
    for _ in 0..20 {
        assert_eq!(exist(&rt, &mc, vec!["x".into()]).unwrap(), vec![false]);
    }
    // The stuck client's connection is closed once its ring has stayed
    // full for a while.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut b = [0u8; 64];
    let closed = loop {
        match std::io::Read::read(&mut s, &mut b) {
            Ok(0) => break true,
            Ok(_) => continue, // doorbell bytes
            Err(_) => break false,
        }
    };
    assert!(
        closed,
        "the MetaService closes the connection of a client that never reads"
    );
    assert_eq!(exist(&rt, &mc, vec!["y".into()]).unwrap(), vec![false]);
}
