//! High availability with real processes: a real etcd (Debian's
//! `etcd-server`, started here on free loopback ports with a temporary data
//! directory and stopped by PID), three `mmc meta --ha` instances, three
//! memory-provider `mmc local` processes and in-process clients that find
//! the leader through etcd, under a put/get load that checks every byte.
//!
//! The leader is SIGKILLed; a standby must take over, the clients resume
//! without being restarted, every object whose ledger record had reached
//! its provider before the kill reads back with the right bytes, no read
//! ever returns wrong bytes, and the old leader, restarted, is a standby.
//! The failover time (SIGKILL to the next successful put) is printed, not
//! asserted.

mod common;

use common::etcd::Etcd;
use common::{free_port, pattern, MMC};
use mmc_local::{BlockingObjectStore, LocalConfig, ObjectStore, Protocol, PutOptions};
use parking_lot::Mutex;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lease TTL of the MetaServices, in seconds.
const TTL_S: u64 = 2;
const METAS: usize = 3;
const LOCALS: usize = 3;

/// One HTTP/1.1 GET; the body, or `None` when anything fails.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

struct Meta {
    listen: String,
    http: String,
    child: Option<Child>,
}

struct HaCluster {
    dir: PathBuf,
    config: PathBuf,
    cluster: String,
    etcd: Etcd,
    metas: Vec<Meta>,
    locals: Vec<Child>,
}

impl HaCluster {
    fn start() -> HaCluster {
        let dir = std::env::temp_dir().join(format!("mmc-ha-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let etcd = Etcd::start(&dir);
        let cluster = format!("t{}", std::process::id());
        let config = dir.join("mmc.toml");
        std::fs::write(
            &config,
            format!(
                "[meta]\nheartbeat_timeout_ms = 3000\nlog_level = \"info\"\n\n[meta.ha]\nenable = true\n\
                 etcd_endpoints = [\"{e}\"]\ncluster_name = \"{cluster}\"\nlease_ttl_s = {TTL_S}\n\n\
                 [local]\netcd_endpoints = [\"{e}\"]\ncluster_name = \"{cluster}\"\ndram_size = \"64MB\"\n\
                 heartbeat_interval_ms = 200\nrpc_timeout_ms = 3000\nleader_wait_ms = 15000\nlog_level = \"info\"\n",
                e = etcd.endpoint
            ),
        )
        .unwrap();
        let metas = (0..METAS)
            .map(|_| Meta {
                listen: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
                child: None,
            })
            .collect();
        let mut c = HaCluster {
            dir,
            config,
            cluster,
            etcd,
            metas,
            locals: Vec::new(),
        };
        for i in 0..METAS {
            c.start_meta(i);
        }
        c.leader(Duration::from_secs(20));
        for i in 0..LOCALS {
            c.start_local(i);
        }
        c
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap()
    }

    fn start_meta(&mut self, i: usize) {
        let child = Command::new(MMC)
            .args(["meta", "--config"])
            .arg(&self.config)
            .args(["--listen", &self.metas[i].listen, "--http", &self.metas[i].http])
            .stdin(Stdio::null())
            .stdout(self.log(&format!("meta{i}")))
            .stderr(self.log(&format!("meta{i}")))
            .spawn()
            .expect("spawn mmc meta");
        self.metas[i].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.role(i).is_none() {
            assert!(
                Instant::now() < deadline,
                "meta{i} did not start; see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_local(&mut self, i: usize) {
        let mut child = Command::new(MMC)
            .args(["local", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(self.log(&format!("local{i}")))
            .spawn()
            .expect("spawn mmc local");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("localservice "),
            "local{i}: {line:?}; see {}",
            self.dir.display()
        );
        self.locals.push(child);
    }

    /// `/role` of MetaService `i` ("leader" or "standby"); `None` when it
    /// does not answer.
    fn role(&self, i: usize) -> Option<String> {
        let body = http_get(&self.metas[i].http, "/role")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["role"].as_str().map(String::from)
    }

    /// Waits until one MetaService reports itself leader; returns it.
    fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let leaders: Vec<usize> = (0..METAS)
                .filter(|&i| self.role(i).as_deref() == Some("leader"))
                .collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no single leader ({leaders:?}); see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The leader's status document.
    fn status(&self, i: usize) -> Option<serde_json::Value> {
        serde_json::from_str(&http_get(&self.metas[i].http, "/api/v1/status")?).ok()
    }

    /// The leader evicted nothing: the load is sized so that the segments
    /// never reach the eviction watermark (an evicted object is not lost).
    fn assert_nothing_evicted(&self, when: &str) {
        let l = self.leader(Duration::from_secs(30));
        if let Some(s) = self.status(l) {
            assert_eq!(
                s["evictions"],
                0,
                "the leader evicted objects {when}: the test's load outgrew the segments; see {}",
                self.dir.display()
            );
        }
    }

    /// Waits until the leader has `LOCALS` segments, none recovering its
    /// ledger, and every ledger op acknowledged by its owner.
    fn wait_settled(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = self.leader(Duration::from_secs(30));
            if let Some(s) = self.status(l) {
                let segments = s["members"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter(|m| m["segments"].as_array().is_some_and(|s| !s.is_empty()))
                            .count()
                    })
                    .unwrap_or(0);
                if segments == LOCALS && s["segments_recovering"] == 0 && s["ledgers_pending"] == 0 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not settle ({what}); see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts every MetaService whose process ended (a leader that lost
    /// its lease exits); returns which.
    fn restart_exited_metas(&mut self) -> Vec<usize> {
        let mut restarted = Vec::new();
        for i in 0..METAS {
            let exited = match self.metas[i].child.as_mut() {
                Some(c) => c.try_wait().unwrap().is_some(),
                None => true,
            };
            if exited {
                self.metas[i].child = None;
                self.start_meta(i);
                restarted.push(i);
            }
        }
        restarted
    }

    fn kill_meta(&mut self, i: usize) {
        let mut c = self.metas[i].child.take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn client_config(&self) -> LocalConfig {
        let mut cfg = LocalConfig {
            etcd_endpoints: vec![self.etcd.endpoint.clone()],
            cluster_name: self.cluster.clone(),
            protocol: Protocol::Tcp,
            heartbeat_interval_ms: 200,
            rpc_timeout_ms: 3000,
            leader_wait_ms: 15_000,
            ..LocalConfig::default()
        };
        cfg.dram_size.0 = 0;
        cfg
    }

    fn client(&self) -> BlockingObjectStore {
        ObjectStore::connect(self.client_config())
            .expect("client connects through etcd")
            .blocking()
    }
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        for c in self.locals.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in self.metas.iter_mut() {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Keys each load client keeps; older ones it removes (about 2 x 400 x
/// 12 KiB of 3 x 64 MiB: far below the eviction watermark).
const WINDOW: usize = 400;

fn size_of(key: &str) -> usize {
    1024 + (pattern(key, 2)[0] as usize) * 64
}

/// What the load clients saw.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// Keys whose put returned success (and that the client has not
    /// removed since).
    committed: Mutex<std::collections::BTreeSet<String>>,
    puts_ok: AtomicU64,
    gets_ok: AtomicU64,
    /// Gets of committed keys that found nothing (lost in a failover).
    gets_missing: AtomicU64,
    /// Failed calls, by result code.
    errors: Mutex<std::collections::BTreeMap<i32, u64>>,
    /// Reads that returned bytes other than the key's (must stay empty).
    wrong: Mutex<Vec<String>>,
    /// When each successful put began and ended.
    put_times: Mutex<Vec<(Instant, Instant)>>,
}

impl Load {
    fn error(&self, e: &mmc_local::Error) {
        *self.errors.lock().entry(e.code()).or_default() += 1;
    }
}

/// A client thread: puts new keys and reads back earlier ones, checking
/// every byte, until `load.stop`.
fn run_client(store: BlockingObjectStore, id: usize, load: Arc<Load>) {
    let opts = PutOptions::default();
    let mut seq = 0u64;
    let mut mine: Vec<String> = Vec::new();
    while !load.stop.load(Ordering::Relaxed) {
        let key = format!("c{id}-{seq}");
        seq += 1;
        let began = Instant::now();
        match store.put(&key, &pattern(&key, size_of(&key)), &opts) {
            Ok(()) => {
                load.puts_ok.fetch_add(1, Ordering::Relaxed);
                load.put_times.lock().push((began, Instant::now()));
                load.committed.lock().insert(key.clone());
                mine.push(key);
                // A bounded working set: the segments never fill, so nothing
                // is evicted (an evicted baseline object would read as lost).
                if mine.len() > WINDOW {
                    let old = mine.remove(0);
                    load.committed.lock().remove(&old);
                    if let Err(e) = store.remove(&old) {
                        load.error(&e);
                    }
                }
            }
            Err(e) => {
                load.error(&e);
                assert!(e.is_retryable(), "put {key}: non-retryable {e:?} (code {})", e.code());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(k) = mine.get((seq as usize * 7919) % mine.len().max(1)) {
            match store.get(k) {
                Ok(v) => {
                    if v != pattern(k, size_of(k)) {
                        load.wrong.lock().push(k.clone());
                    }
                    load.gets_ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(ref e) if e.kind() == mmc_local::ErrorKind::ObjectNotExists => {
                    load.gets_missing.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => load.error(&e),
            }
        }
    }
}

/// Reads `keys` (retrying retryable failures for a while); returns the
/// keys read with wrong bytes and the keys not found.
fn verify(store: &BlockingObjectStore, keys: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut wrong, mut missing) = (Vec::new(), Vec::new());
    for k in keys {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match store.get(k) {
                Ok(v) => {
                    if v != pattern(k, size_of(k)) {
                        wrong.push(k.clone());
                    }
                    break;
                }
                Err(ref e) if e.kind() == mmc_local::ErrorKind::ObjectNotExists => {
                    missing.push(k.clone());
                    break;
                }
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("get {k}: {e:?}"),
            }
        }
    }
    (wrong, missing)
}

/// Kills the leader under load; returns the failover time (SIGKILL to the
/// next successful put of a load client). Checks the invariants.
fn failover_round(c: &mut HaCluster, checker: &BlockingObjectStore, load: &Load, round: usize) -> Duration {
    // A baseline every later read must find: committed, and recorded in
    // its provider's ledger.
    let baseline: Vec<String> = (0..100).map(|i| format!("base{round}-{i}")).collect();
    for k in &baseline {
        checker.put(k, &pattern(k, size_of(k)), &PutOptions::default()).unwrap();
    }
    c.wait_settled("baseline recorded in the ledgers");
    c.assert_nothing_evicted("before the kill");
    let before = load.puts_ok.load(Ordering::Relaxed);
    let old = c.leader(Duration::from_secs(10));
    let killed_at = Instant::now();
    c.kill_meta(old);
    // Failover: the kill to the end of the first successful put that
    // began after it (one that began before may have been served by the
    // old leader).
    let deadline = Instant::now() + Duration::from_secs(60);
    let failover = loop {
        let first = load
            .put_times
            .lock()
            .iter()
            .filter(|(began, _)| *began > killed_at)
            .map(|(_, ended)| *ended)
            .min();
        if let Some(t) = first {
            break t - killed_at;
        }
        assert!(
            Instant::now() < deadline,
            "no put succeeded after the leader's kill; see {}",
            c.dir.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let new = c.leader(Duration::from_secs(30));
    assert_ne!(new, old, "the killed MetaService cannot lead");
    c.wait_settled("providers re-registered with the new leader");
    let (wrong, missing) = verify(checker, &baseline);
    c.assert_nothing_evicted("after the failover");
    assert!(wrong.is_empty(), "baseline read with wrong bytes: {wrong:?}");
    assert!(
        missing.is_empty(),
        "baseline objects lost in the failover: {missing:?}; see {}",
        c.dir.display()
    );
    // The load clients resumed on their own.
    let resumed = load.puts_ok.load(Ordering::Relaxed);
    assert!(resumed > before, "no put after the failover");
    // The old leader, restarted, is a standby.
    c.start_meta(old);
    assert_eq!(
        c.role(old).as_deref(),
        Some("standby"),
        "a restarted old leader must join as a standby"
    );
    assert_eq!(
        c.leader(Duration::from_secs(5)),
        new,
        "leadership stays with the new leader"
    );
    assert!(
        load.wrong.lock().is_empty(),
        "wrong bytes read: {:?}",
        load.wrong.lock()
    );
    failover
}

/// Starts the load clients.
fn start_load(c: &HaCluster, load: &Arc<Load>) -> Vec<std::thread::JoinHandle<()>> {
    (0..2)
        .map(|i| {
            let store = c.client();
            let load = load.clone();
            std::thread::spawn(move || run_client(store, i, load))
        })
        .collect()
}

fn run(rounds: usize) {
    let mut c = HaCluster::start();
    c.wait_settled("start");
    let checker = c.client();
    let load = Arc::new(Load::default());
    let clients = start_load(&c, &load);
    let mut times = Vec::new();
    for round in 0..rounds {
        let t = failover_round(&mut c, &checker, &load, round);
        eprintln!("failover {round}: {:.3} s (lease TTL {TTL_S} s)", t.as_secs_f64());
        times.push(t);
    }
    load.stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().expect("load client");
    }
    // Every key a client saw committed: right bytes or (committed in the
    // moment before a kill, before its ledger record reached the
    // provider) gone; never other bytes.
    let committed: Vec<String> = load.committed.lock().iter().cloned().collect();
    let (wrong, missing) = verify(&checker, &committed);
    assert!(wrong.is_empty(), "committed keys read with wrong bytes: {wrong:?}");
    assert!(
        load.wrong.lock().is_empty(),
        "wrong bytes read under load: {:?}",
        load.wrong.lock()
    );
    let mut sorted = times.clone();
    sorted.sort();
    eprintln!(
        "HA summary: {} failovers, failover time min {:.3} s, median {:.3} s, max {:.3} s (lease TTL {TTL_S} s); \
         puts ok {}, gets ok {}, committed keys {} of which {} lost in failovers; gets of missing keys {}; \
         errors by code {:?}",
        times.len(),
        sorted[0].as_secs_f64(),
        sorted[sorted.len() / 2].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64(),
        load.puts_ok.load(Ordering::Relaxed),
        load.gets_ok.load(Ordering::Relaxed),
        committed.len(),
        missing.len(),
        load.gets_missing.load(Ordering::Relaxed),
        load.errors.lock(),
    );
    checker.close();
}

#[test]
fn leader_sigkill_fails_over_to_a_standby_under_load() {
    run(1);
}

#[test]
fn leader_churn_five_kills() {
    run(5);
}

/// etcd is SIGKILLed and restarted (same data directory) while the cluster
/// serves: a leader that could not renew its lease in the meantime steps
/// down (and exits); afterwards one leader serves again, the clients resume,
/// and every object recorded in the ledgers before reads back right.
#[test]
fn etcd_restart_while_the_cluster_runs() {
    let mut c = HaCluster::start();
    c.wait_settled("start");
    let checker = c.client();
    let load = Arc::new(Load::default());
    let clients = start_load(&c, &load);
    let baseline: Vec<String> = (0..100).map(|i| format!("base-{i}")).collect();
    for k in &baseline {
        checker.put(k, &pattern(k, size_of(k)), &PutOptions::default()).unwrap();
    }
    c.wait_settled("baseline recorded in the ledgers");
    let before = c.leader(Duration::from_secs(10));
    c.etcd.stop();
    let stopped_at = Instant::now();
    // Down for longer than the leader's lease guard (3/4 of the TTL).
    while stopped_at.elapsed() < Duration::from_secs(TTL_S) {
        std::thread::sleep(Duration::from_millis(50));
    }
    c.etcd.spawn();
    let restarted_at = Instant::now();
    let after = c.leader(Duration::from_secs(30));
    let restarted = c.restart_exited_metas();
    for &i in &restarted {
        assert_ne!(
            c.role(i).as_deref(),
            Some("leader"),
            "meta{i} restarted while meta{after} leads"
        );
    }
    c.wait_settled("after the etcd restart");
    let puts = load.puts_ok.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.put_times.lock().iter().all(|(began, _)| *began < restarted_at) {
        assert!(
            Instant::now() < deadline,
            "no put succeeded after etcd came back ({puts} before)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (wrong, missing) = verify(&checker, &baseline);
    assert!(wrong.is_empty(), "baseline read with wrong bytes: {wrong:?}");
    assert!(
        missing.is_empty(),
        "baseline lost: {missing:?}; see {}",
        c.dir.display()
    );
    load.stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().expect("load client");
    }
    assert!(
        load.wrong.lock().is_empty(),
        "wrong bytes read: {:?}",
        load.wrong.lock()
    );
    eprintln!(
        "etcd restart: leader before meta{before}, after meta{after}; MetaServices that exited and were restarted: \
         {restarted:?}; errors by code {:?}",
        load.errors.lock()
    );
    checker.close();
}

#[test]
fn standbys_refuse_naming_the_leader_and_no_leader_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("mmc-ha-nl-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let etcd = Etcd::start(&dir);
    // No MetaService at all: a client configured with etcd gives up after
    // leader_wait_ms with a clear, retryable error.
    let cfg = LocalConfig {
        etcd_endpoints: vec![etcd.endpoint.clone()],
        cluster_name: "nobody".into(),
        leader_wait_ms: 300,
        dram_size: mmc_config::ByteSize(0),
        ..LocalConfig::default()
    };
    let e = ObjectStore::connect(cfg).err().expect("no leader: connect fails");
    assert_eq!(e.code(), mmc_wire::error::code::NOT_CONNECTED_META, "{e}");
    assert!(e.to_string().contains("no metaservice leader"), "{e}");
    assert!(e.is_retryable());
    drop(etcd);
    let _ = std::fs::remove_dir_all(&dir);

    let c = HaCluster::start();
    let leader = c.leader(Duration::from_secs(10));
    let standby = (0..METAS).find(|&i| i != leader).unwrap();
    // A client pinned to a standby's address is refused with NOT_LEADER
    // naming the leader.
    let cfg = LocalConfig {
        meta_addr: c.metas[standby].listen.clone(),
        dram_size: mmc_config::ByteSize(0),
        ..LocalConfig::default()
    };
    let e = ObjectStore::connect(cfg).err().expect("a standby refuses registration");
    assert_eq!(e.code(), mmc_wire::error::code::NOT_LEADER, "{e}");
    assert!(e.to_string().contains(&c.metas[leader].listen), "{e}");
    assert!(e.is_retryable());
    let s = c.status(standby).unwrap();
    assert_eq!(s["role"], "standby");
    assert!(s["ha"]["refused_not_leader"].as_u64().unwrap() >= 1);
    let s = c.status(leader).unwrap();
    assert_eq!(s["role"], "leader");
    assert!(s["ha"]["term"].as_u64().unwrap() > 0);
}
