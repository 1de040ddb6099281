//! Whole-cluster failure behaviour with real processes: SIGKILLed
//! LocalServices, pool pressure and eviction, writers that never commit,
//! and a MetaService killed and restarted.

mod common;

use common::{pattern, Cluster, Opts};
use mmc_local::{ErrorKind, Protocol, PutOptions};
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::{AllocItem, RegisterReq, Request, Response};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn replica_survives_sigkill_of_its_peer() {
    let mut c = Cluster::start(Opts::default());
    let s = c.client(Protocol::Auto, 0);
    let keys: Vec<String> = (0..10).map(|i| format!("rep-{i}")).collect();
    let two = PutOptions {
        replicas: 2,
        preferred: vec![],
    };
    for k in &keys {
        s.put(k, &pattern(k, 200_000), &two).unwrap();
    }
    let victim = s.key_info(&keys[0]).unwrap().replicas[0].0;
    c.kill_local(c.local_index(victim));
    c.wait_until(
        Duration::from_secs(10),
        "the killed LocalService to be declared dead",
        |st| st.segments.iter().all(|g| g.service_id != victim),
    );
    for k in &keys {
        let info = s.key_info(k).unwrap();
        assert!(
            info.replicas.iter().all(|r| r.0 != victim),
            "{k} still lists the dead service"
        );
        assert!(!info.replicas.is_empty());
        assert_eq!(
            s.get(k).unwrap(),
            pattern(k, 200_000),
            "{k} readable from the surviving replica"
        );
    }
    assert_eq!(s.key_info(&keys[0]).unwrap().replicas.len(), 1);
    // Objects with a single replica on the dead service are gone, not wrong.
    let one = PutOptions {
        replicas: 1,
        preferred: vec![victim],
    };
    assert!(
        s.put("after", b"after", &one).is_ok(),
        "placement skips the dead service"
    );
    s.close();
}

#[test]
fn pool_pressure_evicts_lru_and_never_serves_wrong_bytes() {
    // 3 x 32 MiB = 96 MiB pool; write 3x its capacity in 1 MiB objects.
    let c = Cluster::start(Opts {
        segment: "32MB",
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    let one = PutOptions::default();
    let hot: Vec<String> = (0..8).map(|i| format!("hot-{i}")).collect();
    for k in &hot {
        s.put(k, &pattern(k, 1 << 20), &one).unwrap();
    }
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // A concurrent reader checks every byte it gets back.
    let reader = {
        let s = c.client(Protocol::Auto, 0);
        let (written, stop) = (written.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut ok = 0usize;
            let mut buf = vec![0u8; 1 << 20];
            while !stop.load(Ordering::Relaxed) {
                let n = written.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let k = format!("cold-{}", n - 1 - (ok % n.min(20)));
                match s.get_into(&k, &mut buf) {
                    Ok(()) => {
                        assert!(buf == pattern(&k, 1 << 20), "wrong bytes for {k}");
                        ok += 1;
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::ObjectNotExists | ErrorKind::LeaseExpired) => {}
                    Err(e) => panic!("unexpected read error {e:?}"),
                }
            }
            s.close();
            ok
        })
    };
    let total = 3 * 96;
    for i in 0..total {
        let k = format!("cold-{i}");
        s.put(&k, &pattern(&k, 1 << 20), &one)
            .unwrap_or_else(|e| panic!("put {k} under pressure: {e:?}"));
        written.store(i + 1, Ordering::Relaxed);
        if i % 8 == 0 {
            // Keep the hot set recently used.
            for h in &hot {
                assert!(s.exist(h).unwrap(), "{h} was evicted although recently used");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader saw only correct bytes");
    assert!(reads > 0, "the concurrent reader completed reads");
    for h in &hot {
        assert_eq!(s.get(h).unwrap(), pattern(h, 1 << 20));
    }
    let st = c.stat().unwrap();
    assert!(st.evictions > 0);
    assert!(!s.exist("cold-0").unwrap(), "the oldest cold object was evicted");
    for g in &st.segments {
        assert!(g.used <= g.capacity);
    }
    s.close();
}

/// A raw control-protocol client, to act as a writer that stops between
/// alloc and commit.
struct RawClient {
    sock: std::net::TcpStream,
    next: u64,
}

impl RawClient {
    fn connect(addr: &str) -> Self {
        let sock = common::handshake(addr, mmc_wire::auth::Domain::Control, None);
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawClient { sock, next: 1 }
    }

    fn call(&mut self, req: &Request) -> Response {
        let id = self.next;
        self.next += 1;
        self.sock
            .write_all(&frame::encode(FrameKind::Request, id, req).unwrap())
            .unwrap();
        let mut len = [0u8; 4];
        self.sock.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        self.sock.read_exact(&mut body).unwrap();
        assert_eq!(body[0], frame::FRAME_VERSION);
        assert_eq!(body[1], FrameKind::Response as u8);
        assert_eq!(u64::from_le_bytes(body[2..10].try_into().unwrap()), id);
        postcard::from_bytes(&body[10..]).unwrap()
    }

    fn register_pure(&mut self) -> u32 {
        let req = Request::Register(RegisterReq {
            host_id: 1,
            transfer_addr: String::new(),
            segment: None,
            prev_service_id: None,
            recovering: false,
        });
        match self.call(&req) {
            Response::Registered { service_id, .. } => service_id,
            r => panic!("{r:?}"),
        }
    }

    fn alloc(&mut self, writer: u32, key: &str, size: u64) {
        let req = Request::Alloc {
            writer,
            items: vec![AllocItem {
                key: key.into(),
                size,
                replicas: 1,
                preferred: vec![],
            }],
        };
        match self.call(&req) {
            Response::Alloc { items, .. } => assert!(items[0].is_ok(), "{items:?}"),
            r => panic!("{r:?}"),
        }
    }
}

#[test]
fn uncommitted_write_is_reclaimed_after_put_timeout() {
    let c = Cluster::start(Opts {
        locals: 1,
        put_timeout_ms: 1500,
        heartbeat_timeout_ms: 5000,
        ..Opts::default()
    });
    let base = c.used_bytes();
    let mut w = RawClient::connect(&c.meta_addr);
    let me = w.register_pure();
    w.alloc(me, "stalled", 8 << 20);
    assert_eq!(c.used_bytes(), base + (8 << 20), "the write holds its space");
    let s = c.client(Protocol::Auto, 0);
    assert!(!s.exist("stalled").unwrap(), "a WRITING object is invisible");
    // Stay alive (heartbeats) but never commit.
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(250));
        assert!(matches!(
            w.call(&Request::Heartbeat { service_id: me }),
            Response::HeartbeatAck { known: true, .. }
        ));
    }
    c.wait_until(Duration::from_secs(5), "space of the stalled write back", |st| {
        st.segments.iter().map(|g| g.used).sum::<u64>() == base
    });
    match w.call(&Request::Finish {
        writer: me,
        commit: vec!["stalled".into()],
        revoke: vec![],
    }) {
        Response::Finish { commit } => assert!(matches!(commit[0], Err(ref e) if e.kind() == ErrorKind::Timeout)),
        r => panic!("{r:?}"),
    }
    // The key is free for a new writer.
    s.put("stalled", b"fresh", &PutOptions::default()).unwrap();
    assert_eq!(s.get("stalled").unwrap(), b"fresh");
    s.close();
}

#[test]
fn writer_killed_between_alloc_and_commit_releases_its_space() {
    let c = Cluster::start(Opts {
        locals: 1,
        put_timeout_ms: 60_000,
        ..Opts::default()
    });
    let base = c.used_bytes();
    {
        let mut w = RawClient::connect(&c.meta_addr);
        let me = w.register_pure();
        w.alloc(me, "orphan", 4 << 20);
        assert_eq!(c.used_bytes(), base + (4 << 20));
        // The writer vanishes: connection dropped, no more heartbeats.
    }
    c.wait_until(Duration::from_secs(10), "the dead writer's space back", |st| {
        st.segments.iter().map(|g| g.used).sum::<u64>() == base
    });
    let s = c.client(Protocol::Auto, 0);
    assert!(!s.exist("orphan").unwrap());
    s.close();
}

#[test]
fn metaservice_restart_rebuilds_from_ledgers() {
    let mut c = Cluster::start(Opts::default());
    let s = c.client(Protocol::Auto, 0);
    let keys: Vec<String> = (0..30).map(|i| format!("durable-{i}")).collect();
    let two = PutOptions {
        replicas: 2,
        preferred: vec![],
    };
    for (i, k) in keys.iter().enumerate() {
        let opts = if i % 3 == 0 { two.clone() } else { PutOptions::default() };
        s.put(k, &pattern(k, 100_000 + i), &opts).unwrap();
    }
    let before: Vec<_> = keys.iter().map(|k| s.key_info(k).unwrap()).collect();
    // Give the ledger long-polls a moment to deliver the last commits.
    std::thread::sleep(Duration::from_millis(500));
    c.kill_meta();
    assert!(matches!(
        s.get(&keys[0]).map_err(|e| e.kind()),
        Err(ErrorKind::NotConnectedMeta | ErrorKind::Timeout)
    ));
    c.start_meta();
    c.wait_until(
        Duration::from_secs(15),
        "LocalServices re-registered with their ledgers",
        |st| st.segments.len() == 3 && st.keys == keys.len() as u64,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for (i, k) in keys.iter().enumerate() {
        let v = loop {
            match s.get(k) {
                Ok(v) => break v,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{k} not readable after restart: {e:?}"),
            }
        };
        assert_eq!(v, pattern(k, 100_000 + i));
        let info = s.key_info(k).unwrap();
        assert_eq!(info.size, before[i].size);
        assert_eq!(info.replicas.len(), before[i].replicas.len());
    }
    // New writes after the restart do not overlap recovered objects.
    for i in 0..20 {
        let k = format!("new-{i}");
        s.put(&k, &pattern(&k, 300_000), &PutOptions::default()).unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            s.get(k).unwrap(),
            pattern(k, 100_000 + i),
            "{k} intact after new writes"
        );
    }
    s.close();
}

#[test]
fn a_batch_get_reads_around_a_frozen_peer() {
    // Heartbeats outlast the test: the frozen provider stays a member, so
    // its replicas are still handed out and reading them must fail over.
    let c = Cluster::start(Opts {
        locals: 2,
        heartbeat_timeout_ms: 60_000,
        ..Opts::default()
    });
    let mut cfg = c.client_config(Protocol::Tcp, 0);
    cfg.transfer_timeout_ms = 400;
    let s = mmc_local::ObjectStore::connect(cfg).unwrap().blocking();
    let victim = c.locals[0].service_id;
    let both: Vec<String> = (0..12).map(|i| format!("frozen-two-{i}")).collect();
    let only: Vec<String> = (0..6).map(|i| format!("frozen-one-{i}")).collect();
    let two = PutOptions {
        replicas: 2,
        preferred: vec![],
    };
    let on_victim = PutOptions {
        replicas: 1,
        preferred: vec![victim],
    };
    for k in &both {
        s.put(k, &pattern(k, 100_000), &two).unwrap();
    }
    for k in &only {
        s.put(k, &pattern(k, 100_000), &on_victim).unwrap();
        assert_eq!(s.key_info(k).unwrap().replicas[0].0, victim);
    }
    let read = |keys: &[String]| {
        let refs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        let mut bufs: Vec<Vec<u8>> = keys.iter().map(|_| vec![0u8; 100_000]).collect();
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        let r = s.get_into_batch(&refs, &mut outs).unwrap();
        (r, bufs)
    };
    let pid = c.locals[0].child.id() as libc::pid_t;
    common::sigstop_and_wait(pid as u32);
    let (r, bufs) = read(&both);
    let (r1, _) = read(&only);
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    for ((k, r), b) in both.iter().zip(&r).zip(&bufs) {
        assert!(r.is_ok(), "{k}: {r:?}");
        assert!(*b == pattern(k, 100_000), "{k} read from the other replica");
    }
    for (k, r) in only.iter().zip(&r1) {
        assert!(
            matches!(r, Err(ref e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::NotConnectedLocal)),
            "{k}: the frozen peer's only replica: {r:?}"
        );
    }
    // Running again, it serves its replicas.
    let (r1, bufs) = read(&only);
    for ((k, r), b) in only.iter().zip(&r1).zip(&bufs) {
        assert!(r.is_ok(), "{k}: {r:?}");
        assert!(*b == pattern(k, 100_000));
    }
    s.close();
}
