//! Graceful scale-in with real processes: `mmc drain`, the HTTP drain route
//! and the Rust API move a provider's objects to the others while clients
//! read, the drained `mmc local` leaves and exits, and a drain that cannot
//! fit everything reports what it could not move (the provider stays).

mod common;

use common::{pattern, Cluster, Opts, MMC};
use mmc_local::{BlockingObjectStore, DrainState, Protocol, PutOptions};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "drain-test-cluster-token-0123456789";

fn on(service: u32) -> PutOptions {
    PutOptions {
        replicas: 1,
        preferred: vec![service],
    }
}

fn key(i: usize) -> String {
    format!("drain-{i:04}")
}

/// One HTTP/1.1 request (no body) to the MetaService's HTTP endpoint;
/// returns (status, body).
fn http(c: &Cluster, method: &str, target: &str, token: Option<&str>) -> (u16, String) {
    let addr = c.http_addr.as_deref().expect("http endpoint");
    let mut s = std::net::TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Waits for the `mmc local` child to exit on its own; returns its status.
fn wait_exit(c: &mut Cluster, i: usize, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = c.locals[i].child.try_wait().unwrap() {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "drained provider did not exit; logs in {}",
            c.dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Readers that loop over every key until stopped, checking bytes; returns
/// (reads, wrong bytes, errors with the first error seen).
struct Readers {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<(u64, u64, Option<String>)>>,
}

impl Readers {
    fn start(c: &Cluster, n_keys: usize, len: usize) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let threads = [Protocol::Tcp, Protocol::Auto]
            .into_iter()
            .enumerate()
            .map(|(t, proto)| {
                let s: BlockingObjectStore = c.client(proto, 0);
                let (stop, reads) = (stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    let (mut wrong, mut errors, mut first) = (0u64, 0u64, None);
                    let mut i = t * 7;
                    while !stop.load(Ordering::Relaxed) {
                        let k = key(i % n_keys);
                        match s.get(&k) {
                            Ok(v) if v == pattern(&k, len) => {}
                            Ok(_) => wrong += 1,
                            Err(e) => {
                                errors += 1;
                                first.get_or_insert_with(|| format!("{k}: {e} (code {})", e.code()));
                            }
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                        i += 13;
                    }
                    s.close();
                    (wrong, errors, first)
                })
            })
            .collect();
        Readers { stop, reads, threads }
    }

    fn finish(self) -> (u64, u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = (0, 0, None);
        for t in self.threads {
            let (w, e, f) = t.join().expect("reader thread");
            total.0 += w;
            total.1 += e;
            if total.2.is_none() {
                total.2 = f;
            }
        }
        total
    }
}

#[test]
fn drain_moves_the_only_replicas_while_clients_read_and_the_provider_exits() {
    const N: usize = 1000;
    const LEN: usize = 16 * 1024;
    let mut c = Cluster::start(Opts {
        locals: 3,
        token: Some(TOKEN.into()),
        http: true,
        ..Opts::default()
    });
    let s = c.client(Protocol::Tcp, 0);
    let b = c.locals[1].service_id;
    let b_index = 1;
    for i in 0..N {
        let k = key(i);
        s.put(&k, &pattern(&k, LEN), &on(b)).unwrap();
    }
    for i in (0..N).step_by(97) {
        let reps: Vec<u32> = s.key_info(&key(i)).unwrap().replicas.iter().map(|r| r.0).collect();
        assert_eq!(reps, vec![b], "the only replica of {} is on B", key(i));
    }

    // A drain of a service that does not exist is a clear error.
    let out = std::process::Command::new(MMC)
        .args(["drain", "--meta", &c.meta_addr, "--token-file"])
        .arg(c.dir.join("token"))
        .arg("4000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("service 4000 is not a member"), "{err}");

    // Clients read every key while B drains.
    let readers = Readers::start(&c, N, LEN);
    let reads_before = {
        let deadline = Instant::now() + Duration::from_secs(20);
        while readers.reads.load(Ordering::Relaxed) < 200 {
            assert!(Instant::now() < deadline, "readers do not read");
            std::thread::sleep(Duration::from_millis(20));
        }
        readers.reads.load(Ordering::Relaxed)
    };
    let out = std::process::Command::new(MMC)
        .args(["drain", "--json", "--meta", &c.meta_addr, "--token-file"])
        .arg(c.dir.join("token"))
        .arg(b.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mmc drain failed: {stdout} {}; logs in {}",
        String::from_utf8_lossy(&out.stderr),
        c.dir.display()
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("drain --json");
    assert_eq!(report["state"], "done", "{report}");
    assert_eq!(report["moved"], N as u64, "{report}");
    assert_eq!(report["unmoved"].as_array().map(Vec::len), Some(0), "{report}");

    // The drained `mmc local` leaves the cluster and exits by itself.
    let st = wait_exit(&mut c, b_index, Duration::from_secs(30));
    assert!(st.success(), "drained provider exited with {st}");
    let stat = c.wait_until(Duration::from_secs(10), "B gone", |st| {
        st.segments.iter().all(|g| g.service_id != b)
    });
    assert_eq!(stat.keys, N as u64);
    assert_eq!(stat.segments.len(), 2);

    // Reads went on during the drain and never failed nor returned wrong bytes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while readers.reads.load(Ordering::Relaxed) < reads_before + 200 {
        assert!(Instant::now() < deadline, "readers stalled after the drain");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (wrong, errors, first) = readers.finish();
    assert_eq!(wrong, 0, "reads returned wrong bytes");
    assert_eq!(errors, 0, "reads failed during the drain, first: {first:?}");

    // Every object is readable with its bytes, from the other providers.
    for i in 0..N {
        let k = key(i);
        assert_eq!(s.get(&k).unwrap(), pattern(&k, LEN), "{k}");
        let reps: Vec<u32> = s.key_info(&k).unwrap().replicas.iter().map(|r| r.0).collect();
        assert_eq!(reps.len(), 1, "{k}: {reps:?}");
        assert_ne!(reps[0], b, "{k} still on the drained provider");
    }

    // The audit log says so, and the HTTP route reports the drain (bearer
    // token required, like the other routes).
    let log = std::fs::read_to_string(c.dir.join("meta.log")).unwrap();
    assert!(log.contains("service drained") && log.contains("\"drained\""), "{log}");
    let (status, _) = http(&c, "GET", &format!("/api/v1/drain?service_id={b}"), None);
    assert_eq!(status, 401);
    let (status, body) = http(&c, "GET", &format!("/api/v1/drain?service_id={b}"), Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["moved"].as_u64()),
        (Some("done"), Some(N as u64))
    );
    let (status, body) = http(&c, "POST", &format!("/api/v1/drain?service_id={b}"), Some(TOKEN));
    assert_eq!(status, 404, "a drained provider is no member: {body}");

    // A provider that joins now is the emptiest: new objects land on it.
    let j = c.add_local();
    let newcomer = c.locals[j].service_id;
    c.wait_members(3);
    s.put("after-join", &pattern("after-join", LEN), &PutOptions::default())
        .unwrap();
    let reps: Vec<u32> = s.key_info("after-join").unwrap().replicas.iter().map(|r| r.0).collect();
    assert_eq!(reps, vec![newcomer]);
    s.close();
}

#[test]
fn a_drain_that_cannot_fit_everything_reports_what_it_could_not_move() {
    const MB: usize = 1 << 20;
    let c = Cluster::start(Opts {
        locals: 2,
        segment: "16MB",
        http: true,
        ..Opts::default()
    });
    let s = c.client(Protocol::Tcp, 0);
    let (a, b) = (c.locals[0].service_id, c.locals[1].service_id);
    // A holds 12 MiB of its 16, B 8 objects of 1 MiB: 4 fit on A.
    for i in 0..12 {
        let k = format!("a-{i}");
        s.put(&k, &pattern(&k, MB), &on(a)).unwrap();
    }
    for i in 0..8 {
        let k = format!("b-{i}");
        s.put(&k, &pattern(&k, MB), &on(b)).unwrap();
    }
    // Through HTTP: start it, then follow it to its end.
    let (status, body) = http(&c, "POST", &format!("/api/v1/drain?service_id={b}"), None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&c, "POST", "/api/v1/drain?service_id=777", None);
    assert_eq!(status, 404);
    assert!(body.contains("service 777 is not a member"), "{body}");
    // The Rust API waits for the end of the drain already running.
    let report = s.drain(b).unwrap();
    assert_eq!(report.state, DrainState::Incomplete, "{report:?}");
    assert_eq!(report.moved, 4, "{report:?}");
    assert_eq!(report.unmoved.len(), 4, "{report:?}");
    for u in &report.unmoved {
        assert!(u.key.starts_with("b-") && u.size == MB as u64, "{u:?}");
        assert!(u.reason.contains("no room"), "{u:?}");
    }
    let (_, body) = http(&c, "GET", &format!("/api/v1/drain?service_id={b}"), None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["state"], "incomplete");
    assert_eq!(v["unmoved"].as_array().map(Vec::len), Some(4));

    // Nothing was lost: B stays, with the objects that did not fit.
    let stat = c.stat().unwrap();
    assert!(stat.segments.iter().any(|g| g.service_id == b));
    assert_eq!(stat.keys, 20);
    for k in (0..12)
        .map(|i| format!("a-{i}"))
        .chain((0..8).map(|i| format!("b-{i}")))
    {
        assert_eq!(s.get(&k).unwrap(), pattern(&k, MB), "{k}");
    }
    for u in &report.unmoved {
        let reps: Vec<u32> = s.key_info(&u.key).unwrap().replicas.iter().map(|r| r.0).collect();
        assert_eq!(reps, vec![b]);
    }
    // B takes allocations again.
    s.put("b-again", &pattern("b-again", MB), &on(b)).unwrap();
    let reps: Vec<u32> = s.key_info("b-again").unwrap().replicas.iter().map(|r| r.0).collect();
    assert_eq!(reps, vec![b]);
    s.close();
}
