//! Hostile clients against real `mmc meta` / `mmc local` processes: frame
//! heads announcing 64 MiB then silence, thousands of idle connections,
//! running out of descriptors, half-sent and dribbled frames, allocation
//! sizes near 2^64, and a transfer that announces 1 GiB then stalls. Each
//! time the services stay up, their memory stays bounded, and normal
//! clients keep being served.
//!
//! Every raw connection goes through [`raw`], which runs the open-mode
//! authentication handshake first where the test needs it.

mod common;

use common::{pattern, Cluster, Opts};
use mmc_local::{Protocol, PutOptions};
use mmc_wire::auth::{client_handshake_blocking, Domain};
use mmc_wire::frame::{self, FrameKind, FRAME_VERSION, MAX_FRAME};
use mmc_wire::message::{AllocItem, Request, Response};
use mmc_wire::transfer::{Header, Op};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// Connects to `addr` and sends `bytes` (nothing when empty). All raw
/// plumbing of this file goes through here.
fn raw(addr: &str, domain: Option<Domain>, bytes: &[u8]) -> TcpStream {
    let a: std::net::SocketAddr = addr.parse().expect("ip:port");
    let mut s =
        TcpStream::connect_timeout(&a, Duration::from_secs(20)).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    if let Some(domain) = domain {
        // The open-mode handshake. A connection refused beyond a limit is
        // closed before its challenge: it is returned as it is, for the
        // caller to find closed.
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let authenticated = client_handshake_blocking(&mut s, None, domain).is_ok();
        s.set_read_timeout(None).unwrap();
        assert!(
            authenticated || bytes.is_empty(),
            "handshake with {addr} failed before sending bytes"
        );
    }
    if !bytes.is_empty() {
        s.write_all(bytes).unwrap_or_else(|e| panic!("sending to {addr}: {e}"));
    }
    s
}

/// A request frame.
fn request(id: u64, req: &Request) -> Vec<u8> {
    frame::encode(FrameKind::Request, id, req).unwrap()
}

/// The 14 bytes that start a frame announcing `len` bytes after the length.
fn frame_head(len: usize) -> Vec<u8> {
    let mut b = (len as u32).to_le_bytes().to_vec();
    b.extend([FRAME_VERSION, FrameKind::Request as u8]);
    b.extend(1u64.to_le_bytes());
    b
}

/// Reads one response frame (blocking, with the socket's read timeout).
fn read_response(s: &mut TcpStream) -> std::io::Result<(u64, Response)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest)?;
    let id = u64::from_le_bytes(rest[2..10].try_into().unwrap());
    let resp = postcard::from_bytes(&rest[10..]).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
    Ok((id, resp))
}

/// Waits (up to `within`) for the server to close `s`: true on EOF or reset.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500)))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
}

/// True when `s` is still open: nothing to read, no end of stream.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!((&*s).read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kb * 1024
}

fn meta_pid(c: &Cluster) -> u32 {
    c.meta.as_ref().expect("meta running").child.id()
}

fn meta_alive(c: &mut Cluster) -> bool {
    matches!(c.meta.as_mut().expect("meta started").child.try_wait(), Ok(None))
}

/// Raises this process's descriptor limit to its hard limit.
fn raise_own_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on structs we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur >= need,
        "this test needs {need} descriptors; the hard limit is {}",
        lim.rlim_cur
    );
}

/// A put/get/remove round of a normal client.
fn round_trip(s: &mmc_local::BlockingObjectStore, key: &str, len: usize) {
    let v = pattern(key, len);
    s.put(key, &v, &PutOptions::default())
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    assert_eq!(s.get(key).unwrap_or_else(|e| panic!("get {key}: {e}")), v);
    s.remove(key).unwrap_or_else(|e| panic!("remove {key}: {e}"));
}

#[test]
fn frame_heads_announcing_64_mib_cost_no_64_mib() {
    let c = Cluster::start(Opts {
        locals: 1,
        // The silent connections must stay open while RSS is measured.
        meta_extra: "frame_timeout_ms = 600000\n",
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    round_trip(&s, "warm-up", 100_000);
    let pid = meta_pid(&c);
    let before = rss(pid);
    let mut silent = Vec::new();
    for i in 0..16 {
        let mut head = frame_head(MAX_FRAME);
        if i % 2 == 1 {
            // Some also send part of the payload: growth follows arrivals.
            head.extend(vec![0u8; 256 << 10]);
        }
        silent.push(raw(&c.meta_addr, Some(Domain::Control), &head));
    }
    // A normal client keeps working meanwhile (and gives the MetaService
    // time to read what the silent ones sent).
    for i in 0..20 {
        round_trip(&s, &format!("meanwhile-{i}"), 200_000);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss(pid);
    eprintln!(
        "metaservice RSS: {} KiB before, {} KiB with 16 silent 64 MiB frame heads",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 64 * MIB,
        "RSS grew from {before} to {after} bytes: announced lengths were allocated"
    );
    for x in &silent {
        assert!(
            still_open(x),
            "silent connections are still open (within the frame timeout)"
        );
    }
    drop(silent);
    round_trip(&s, "after", 1000);
    s.close();
}

#[test]
fn two_thousand_idle_connections_beyond_the_limit_are_refused_not_fatal() {
    raise_own_nofile(2_200);
    let mut c = Cluster::start(Opts {
        locals: 1,
        meta_extra: "max_connections = 1000\n",
        ..Opts::default()
    });
    // A client connected before the flood holds its slot.
    let s = c.client(Protocol::Auto, 0);
    round_trip(&s, "before", 10_000);
    let pid = meta_pid(&c);
    let before = rss(pid);
    let idle: Vec<TcpStream> = (0..2000)
        .map(|_| raw(&c.meta_addr, Some(Domain::Control), &[]))
        .collect();
    // Connections beyond the limit are accepted and closed at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let refused = idle.iter().filter(|x| !still_open(x)).count();
        if refused >= 1000 || Instant::now() > deadline {
            break refused;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        (1000..2000).contains(&refused),
        "{refused} of 2000 idle connections refused with max_connections = 1000"
    );
    assert!(meta_alive(&mut c), "the metaservice is still running");
    for i in 0..10 {
        round_trip(&s, &format!("flooded-{i}"), 50_000);
    }
    let after = rss(pid);
    eprintln!(
        "metaservice RSS: {} KiB before, {} KiB with 2000 idle connections ({refused} refused)",
        before / 1024,
        after / 1024
    );
    assert!(after < before + 64 * MIB, "RSS grew from {before} to {after} bytes");
    // Once the flood leaves, new clients get in again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    let fresh = loop {
        match mmc_local::ObjectStore::connect(c.client_config(Protocol::Auto, 0)) {
            Ok(x) => break x.blocking(),
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no new client after the flood: {e}"),
        }
    };
    round_trip(&fresh, "after-flood", 10_000);
    fresh.close();
    s.close();
}

#[test]
fn running_out_of_descriptors_is_survived() {
    let mut c = Cluster::start(Opts {
        locals: 1,
        // Few descriptors: the flood exhausts them long before the
        // connection limit, and accept fails with EMFILE.
        meta_nofile: Some(128),
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    round_trip(&s, "before", 10_000);
    // Enough to exhaust 128 descriptors, with fewer left waiting than the
    // listen backlog (128) holds, so every connect completes in the kernel.
    let idle: Vec<TcpStream> = (0..180).map(|_| raw(&c.meta_addr, None, &[])).collect();
    let log = c.dir.join("meta.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("accept failed")
    {
        assert!(
            Instant::now() < deadline,
            "no accept failure logged; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(meta_alive(&mut c), "the metaservice survived EMFILE");
    round_trip(&s, "during", 10_000);
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    let fresh = loop {
        match mmc_local::ObjectStore::connect(c.client_config(Protocol::Auto, 0)) {
            Ok(x) => break x.blocking(),
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no new client once descriptors came back: {e}"),
        }
    };
    round_trip(&fresh, "after", 10_000);
    assert!(meta_alive(&mut c));
    fresh.close();
    s.close();
}

#[test]
fn a_half_sent_frame_is_closed_but_an_idle_connection_is_not() {
    let c = Cluster::start(Opts {
        locals: 1,
        meta_extra: "frame_timeout_ms = 500\n",
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    let mut idle = raw(&c.meta_addr, Some(Domain::Control), &[]);
    let mut head = frame_head(100);
    head.extend([1, 2, 3]);
    let mut half = raw(&c.meta_addr, Some(Domain::Control), &head);
    assert!(
        closed_within(&mut half, Duration::from_secs(60)),
        "a half-sent frame is closed after meta.frame_timeout_ms"
    );
    // The idle connection outlived the frame timeout several times over,
    // and still works.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(still_open(&idle), "idle connections are not timed out");
    idle.write_all(&request(7, &Request::Members)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (id, r) = read_response(&mut idle).unwrap();
    assert_eq!(id, 7);
    assert!(matches!(r, Response::Members { .. }), "{r:?}");
    round_trip(&s, "alive", 1000);
    s.close();
}

#[test]
fn a_frame_dribbled_within_the_timeout_works_and_one_beyond_it_is_cut() {
    // Within the bound (the 10 s default): answered.
    let c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let f = request(11, &Request::Members);
    let mut x = raw(&c.meta_addr, Some(Domain::Control), &f[..1]);
    for b in &f[1..] {
        std::thread::sleep(Duration::from_millis(20));
        x.write_all(std::slice::from_ref(b)).unwrap();
    }
    x.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (id, r) = read_response(&mut x).unwrap();
    assert_eq!(id, 11);
    assert!(matches!(r, Response::Members { .. }), "{r:?}");
    drop(c);

    // Beyond it (a 300 ms bound, 400 ms between bytes): cut, never answered.
    let c = Cluster::start(Opts {
        locals: 1,
        meta_extra: "frame_timeout_ms = 300\n",
        ..Opts::default()
    });
    let mut x = raw(&c.meta_addr, Some(Domain::Control), &f[..1]);
    let mut cut = false;
    for b in &f[1..] {
        std::thread::sleep(Duration::from_millis(400));
        if x.write_all(std::slice::from_ref(b)).is_err() {
            cut = true;
            break;
        }
    }
    cut = cut || closed_within(&mut x, Duration::from_secs(60));
    assert!(cut, "a frame slower than meta.frame_timeout_ms is cut");
    let s = c.client(Protocol::Auto, 0);
    round_trip(&s, "alive", 1000);
    s.close();
}

#[test]
fn alloc_sizes_near_2_pow_64_are_invalid_and_harm_nothing() {
    let c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    let v = pattern("real", 5000);
    s.put("real", &v, &PutOptions::default()).unwrap();
    let mut x = raw(&c.meta_addr, Some(Domain::Control), &[]);
    x.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for (n, size) in [u64::MAX, u64::MAX - 4094].into_iter().enumerate() {
        let req = Request::Alloc {
            writer: s.service_id(),
            items: vec![AllocItem {
                key: "bogus".into(),
                size,
                replicas: 1,
                preferred: vec![],
            }],
        };
        x.write_all(&request(n as u64, &req)).unwrap();
        match read_response(&mut x).unwrap().1 {
            Response::Alloc { items, .. } => match &items[..] {
                [Err(e)] if e.kind() == mmc_local::ErrorKind::InvalidParam => {
                    assert!(e.message().contains(&size.to_string()), "names the size: {e}")
                }
                other => panic!("size {size}: {other:?}"),
            },
            other => panic!("size {size}: {other:?}"),
        }
    }
    // A following put/get/remove cycle is unaffected, and removing the
    // bogus key touches nobody's ledger entry.
    round_trip(&s, "next", 7000);
    assert!(s.remove("bogus").is_err(), "the bogus key was never created");
    s.put("real-2", &pattern("real-2", 9000), &PutOptions::default())
        .unwrap();
    assert_eq!(s.get("real").unwrap(), v);
    assert_eq!(s.get("real-2").unwrap(), pattern("real-2", 9000));
    s.remove("real").unwrap();
    assert_eq!(s.get("real-2").unwrap(), pattern("real-2", 9000));
    s.close();
}

#[test]
fn a_stalled_transfer_is_closed_after_the_transfer_timeout() {
    let c = Cluster::start(Opts {
        locals: 1,
        // A 1 GiB segment whose pages are only committed when written.
        segment: "1GB",
        local_extra: "transfer_timeout_ms = 500\nprefault_segments = false\n",
        ..Opts::default()
    });
    let st = c.stat().unwrap();
    let seg = &st.segments[0];
    let write = Header {
        op: Op::Write,
        segment: seg.service_id,
        offset: 0,
        len: 1 << 30,
    }
    .encode();
    let mut stalled = raw(&seg.transfer_addr, Some(Domain::Transfer), &write);
    stalled.write_all(&[7u8; 10]).unwrap();
    // Half a header, then silence, is bounded too.
    let mut half_header = raw(&seg.transfer_addr, Some(Domain::Transfer), &write[..10]);
    // Other clients' transfers go on meanwhile (TCP: through the server).
    let tcp = c.client(Protocol::Tcp, 0);
    for i in 0..5 {
        round_trip(&tcp, &format!("through-{i}"), 1 << 20);
    }
    assert!(
        closed_within(&mut stalled, Duration::from_secs(60)),
        "the stalled write is closed after local.transfer_timeout_ms"
    );
    assert!(
        closed_within(&mut half_header, Duration::from_secs(60)),
        "a half-sent header is closed too"
    );
    round_trip(&tcp, "after", 1 << 20);
    tcp.close();
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed() {
    let mut c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    // 500 keys of 200 bytes: each key listing answers about 100 KB.
    let keys: Vec<String> = (0..500).map(|i| format!("{i:0>200}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values: Vec<&[u8]> = refs.iter().map(|_| b"v".as_slice()).collect();
    for r in s.put_batch(&refs, &values, &PutOptions::default()).unwrap() {
        r.unwrap();
    }
    let pid = meta_pid(&c);
    let before = rss(pid);
    // Far more answers than the MetaService queues for one connection
    // (64 MiB), never read.
    let list = request(
        1,
        &Request::ListKeys {
            after: None,
            limit: 100_000,
        },
    );
    let mut x = raw(&c.meta_addr, Some(Domain::Control), &list);
    x.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // Requests keep coming and nothing is ever read (reading would drain
    // the queue): the MetaService closes the connection once 64 MiB of
    // answers wait, and a send after that fails. Before that bound about
    // 700 listings are answered; at most 5000 are sent at once, then one
    // more now and then until the close shows.
    let mut sent = 1u32;
    let mut peak = rss(pid);
    let deadline = Instant::now() + Duration::from_secs(120);
    let closed = loop {
        if x.write_all(&list).is_err() {
            break true;
        }
        sent += 1;
        if sent >= 5000 {
            if Instant::now() > deadline {
                break false;
            }
            peak = peak.max(rss(pid));
            std::thread::sleep(Duration::from_millis(50));
        } else if sent.is_multiple_of(100) {
            peak = peak.max(rss(pid));
        }
    };
    eprintln!(
        "metaservice RSS: {} KiB before, at most {} KiB seen while a client sent {sent} key listings without reading",
        before / 1024,
        peak / 1024
    );
    assert!(
        closed,
        "the connection is closed once its unread answers pass the bound"
    );
    assert!(peak < before + 160 * MIB, "RSS grew from {before} to {peak} bytes");
    assert!(meta_alive(&mut c));
    round_trip(&s, "after", 1000);
    s.close();
}

#[test]
fn transfer_connections_beyond_the_limit_are_refused() {
    let mut c = Cluster::start(Opts {
        locals: 1,
        local_extra: "max_transfer_connections = 8\n",
        ..Opts::default()
    });
    let seg = c.stat().unwrap().segments[0].clone();
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| raw(&seg.transfer_addr, Some(Domain::Transfer), &[]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let refused = idle.iter().filter(|x| !still_open(x)).count();
        if refused >= 12 || Instant::now() > deadline {
            break refused;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(refused, 12, "20 idle connections against a limit of 8");
    assert!(
        matches!(c.locals[0].child.try_wait(), Ok(None)),
        "the localservice is still running"
    );
    // Slots come back as connections close.
    drop(idle);
    let tcp = c.client(Protocol::Tcp, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = pattern("after-limit", 1 << 20);
        match tcp.put("after-limit", &v, &PutOptions::default()) {
            Ok(()) => {
                assert_eq!(tcp.get("after-limit").unwrap(), v);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no transfer once the idle connections left: {e}"),
        }
    }
    tcp.close();
}
