//! HA under faults, with real processes and a real etcd (as in `ha.rs`):
//!
//! - `leader_partitioned_from_etcd_steps_down_before_a_new_leader_serves`:
//!   each MetaService runs in its own network namespace joined to the root
//!   namespace by a veth pair; etcd listens on an address of a dummy
//!   link of the root namespace, where the LocalServices and the
//!   clients run. A blackhole route to etcd's address in the leader's
//!   namespace cuts the leader from etcd alone: clients and providers still
//!   reach it. The intervals in which each MetaService served as leader (from
//!   its log, and from data-path probes sent to each one directly) must not
//!   overlap; a standby takes over and clients resume. Needs root and
//!   iproute2; skipped with a message when `ip netns` is unusable and `CI`
//!   is not set.
//! - `chaos_every_replica_holds_the_bytes_of_one_put`: provider SIGSTOP
//!   (until declared dead) / SIGCONT, provider SIGKILL and restart, leader
//!   SIGKILL (failover), and both at once, with every key removed and put
//!   again with a new version in between. After each step every replica of
//!   every key, read one by one from its provider, holds the bytes of the
//!   current put; and no get, by a reader running throughout, returns the
//!   bytes of a put that was not current while the get ran.
//!
//! Every process is killed by PID, every namespace and link deleted by
//! name, by Drop guards (also when an assertion fails).

mod common;

use common::etcd::Etcd;

use common::{free_port, handshake, pattern, MMC};
use mmc_local::{BlockingObjectStore, LocalConfig, ObjectStore, Protocol, PutOptions};
use mmc_wire::auth::Domain;
use mmc_wire::message::{Request, Response};
use mmc_wire::transfer::{decode_reply, Header, Op, REPLY_LEN};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lease TTL of the MetaServices, in seconds.
const TTL_S: u64 = 2;
const METAS: usize = 3;
const LOCALS: usize = 3;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed (needs root and iproute2)");
}

/// The namespaces and links of the partition test, deleted by name on drop.
struct Net {
    /// One namespace per MetaService.
    ns: Vec<String>,
    /// The link in the root namespace that carries etcd's address.
    dummy: String,
    /// etcd's address.
    etcd_ip: String,
    /// Address of MetaService `i` inside its namespace.
    meta_ip: Vec<String>,
}

impl Net {
    /// Whether this machine can create network namespaces (root, iproute2).
    fn available() -> bool {
        let name = format!("mmc-probe-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
        ok
    }

    fn create() -> Net {
        let pid = std::process::id();
        let s = (pid % 200 + 20) as u8;
        let mut net = Net {
            ns: Vec::new(),
            dummy: format!("mpe{}", pid % 100_000),
            etcd_ip: format!("10.233.{s}.1"),
            meta_ip: Vec::new(),
        };
        // A veth pair with both ends here (the dummy link type may be
        // missing from the kernel); deleting one end deletes both.
        let peer = format!("mpf{}", pid % 100_000);
        ip(&["link", "add", &net.dummy, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "up"]);
        ip(&["addr", "add", &format!("{}/32", net.etcd_ip), "dev", &net.dummy]);
        ip(&["link", "set", &net.dummy, "up"]);
        for i in 0..METAS {
            let ns = format!("mmc-ha-{pid}-{i}");
            ip(&["netns", "add", &ns]);
            net.ns.push(ns.clone());
            let (root, inner) = (format!("mp{i}r{}", pid % 100_000), format!("mp{i}n{}", pid % 100_000));
            ip(&["link", "add", &root, "type", "veth", "peer", "name", &inner]);
            ip(&["link", "set", &inner, "netns", &ns]);
            let (a, b) = (format!("10.232.{s}.{}", 4 * i + 1), format!("10.232.{s}.{}", 4 * i + 2));
            ip(&["addr", "add", &format!("{a}/30"), "dev", &root]);
            ip(&["link", "set", &root, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{b}/30"), "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", &a]);
            net.meta_ip.push(b);
        }
        net
    }

    /// Cuts (or restores) MetaService `i`'s path to etcd: packets to etcd's
    /// address vanish, as in a partition; everything else still flows.
    fn cut_etcd(&self, i: usize, cut: bool) {
        let dst = format!("{}/32", self.etcd_ip);
        ip(&[
            "-n",
            &self.ns[i],
            "route",
            if cut { "add" } else { "del" },
            "blackhole",
            &dst,
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The root-side veth ends by name (a namespace lingering in the
        // kernel after `netns del` would otherwise keep its pair alive).
        let pid = std::process::id() % 100_000;
        for (i, n) in self.ns.iter().enumerate() {
            let _ = Command::new("ip")
                .args(["link", "del", &format!("mp{i}r{pid}")])
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.dummy]).status();
    }
}

/// One HTTP/1.1 GET; the body, or `None` when anything fails.
fn http_get(addr: &str, path: &str, token: Option<&str>) -> Option<String> {
    let a: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

struct Meta {
    listen: String,
    http: String,
    ns: Option<String>,
    child: Option<Child>,
}

struct Local {
    child: Child,
    service_id: u32,
}

/// Fields drop in order: processes first, then etcd, then the network.
struct HaCluster {
    metas: Vec<Meta>,
    locals: Vec<Option<Local>>,
    etcd: Etcd,
    net: Option<Net>,
    dir: PathBuf,
    config: PathBuf,
    cluster: String,
    token: String,
}

impl HaCluster {
    fn start(net: Option<Net>) -> HaCluster {
        let dir = std::env::temp_dir().join(format!("mmc-hafaults-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let etcd_ip = net.as_ref().map_or("127.0.0.1".to_string(), |n| n.etcd_ip.clone());
        let etcd = Etcd::start_on(&dir, &etcd_ip);
        let cluster = format!("f{}", std::process::id());
        let token = mmc_wire::auth::generate_token().unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let config = dir.join("mmc.toml");
        std::fs::write(
            &config,
            format!(
                "[cluster]\ntoken_file = \"{t}\"\n\n[meta]\nheartbeat_timeout_ms = 1500\nlog_level = \"info\"\n\n\
                 [meta.ha]\nenable = true\netcd_endpoints = [\"{e}\"]\ncluster_name = \"{cluster}\"\nlease_ttl_s = {TTL_S}\n\n\
                 [local]\netcd_endpoints = [\"{e}\"]\ncluster_name = \"{cluster}\"\ndram_size = \"64MB\"\n\
                 heartbeat_interval_ms = 200\nrpc_timeout_ms = 3000\nleader_wait_ms = 15000\nlog_level = \"info\"\n",
                t = token_file.display(),
                e = etcd.endpoint
            ),
        )
        .unwrap();
        let metas = (0..METAS)
            .map(|i| {
                let host = net.as_ref().map_or("127.0.0.1".to_string(), |n| n.meta_ip[i].clone());
                Meta {
                    listen: format!("{host}:{}", free_port()),
                    http: format!("{host}:{}", free_port()),
                    ns: net.as_ref().map(|n| n.ns[i].clone()),
                    child: None,
                }
            })
            .collect();
        let mut c = HaCluster {
            metas,
            locals: Vec::new(),
            etcd,
            net,
            dir,
            config,
            cluster,
            token,
        };
        for i in 0..METAS {
            c.start_meta(i);
        }
        c.leader(Duration::from_secs(20));
        for _ in 0..LOCALS {
            let l = c.spawn_local(c.locals.len());
            c.locals.push(Some(l));
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
        let mut cmd = match &self.metas[i].ns {
            // `ip netns exec` execs mmc: the child's PID is the MetaService's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, MMC]);
                c
            }
            None => Command::new(MMC),
        };
        let child = cmd
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

    /// Starts memory provider number `i` (its log is local{i}.log).
    fn spawn_local(&self, i: usize) -> Local {
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
        let service_id = line
            .strip_prefix("localservice ")
            .and_then(|l| l.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("local{i}: {line:?}; see {}", self.dir.display()));
        Local { child, service_id }
    }

    fn role(&self, i: usize) -> Option<String> {
        let v: serde_json::Value =
            serde_json::from_str(&http_get(&self.metas[i].http, "/role", Some(&self.token))?).ok()?;
        v["role"].as_str().map(String::from)
    }

    fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let leaders: Vec<usize> = (0..METAS)
                .filter(|&i| self.metas[i].child.is_some() && self.role(i).as_deref() == Some("leader"))
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

    fn status(&self, i: usize) -> Option<serde_json::Value> {
        serde_json::from_str(&http_get(&self.metas[i].http, "/api/v1/status", Some(&self.token))?).ok()
    }

    /// Waits until the leader knows exactly the providers `ids`, none
    /// recovering its ledger, every ledger op acknowledged by its owner.
    fn wait_settled(&self, ids: &[u32], what: &str) {
        let mut want = ids.to_vec();
        want.sort_unstable();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        loop {
            let l = self.leader(Duration::from_secs(30));
            if let Some(s) = self.status(l) {
                let mut have: Vec<u32> = s["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["segments"].as_array().is_some_and(|s| !s.is_empty()))
                    .filter_map(|m| m["service_id"].as_u64().map(|v| v as u32))
                    .collect();
                have.sort_unstable();
                if have == want && s["segments_recovering"] == 0 && s["ledgers_pending"] == 0 {
                    return;
                }
                last = Some((have, s["segments_recovering"].clone(), s["ledgers_pending"].clone()));
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not settle ({what}): want providers {want:?}, last (providers, recovering, pending) \
                 {last:?}; see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn live_ids(&self) -> Vec<u32> {
        self.locals.iter().flatten().map(|l| l.service_id).collect()
    }

    fn kill_meta(&mut self, i: usize) {
        let mut c = self.metas[i].child.take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn signal_local(&self, i: usize, sig: i32) {
        let pid = self.locals[i].as_ref().expect("running").child.id() as libc::pid_t;
        // SAFETY: kill has no memory effects; the pid is our own child.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
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
        cfg.security.token = Some(self.token.clone());
        cfg
    }

    fn client(&self) -> BlockingObjectStore {
        ObjectStore::connect(self.client_config())
            .expect("client connects through etcd")
            .blocking()
    }

    /// A control-connection client pinned to MetaService `i` (no leader
    /// lookup, no redirection).
    fn pinned(&self, i: usize, rt: &tokio::runtime::Runtime) -> mmc_local::AdminClient {
        mmc_local::AdminClient::new(
            self.metas[i].listen.clone(),
            Duration::from_secs(1),
            rt.handle().clone(),
        )
        .with_token(Some(mmc_wire::auth::ClusterToken::new(&self.token)))
    }
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        for l in self.locals.iter_mut().flatten() {
            let _ = l.child.kill();
            let _ = l.child.wait();
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The RFC 3339 UTC timestamps (fixed width, so they sort as strings) of
/// the lines of `log` that contain `what`.
fn log_times(log: &Path, what: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

// ---------------------------------------------------------------------------
// Partition of the leader from etcd

/// Data-path probes (`Exist`) sent to each MetaService directly: when each
/// answered as a leader.
#[derive(Default)]
struct Probes {
    stop: AtomicBool,
    /// Per MetaService: (sent, answered) of each successful probe.
    served: Mutex<Vec<Vec<(Instant, Instant)>>>,
    /// Per MetaService: refusals (NOT_LEADER) and connection failures.
    refused: Mutex<Vec<u64>>,
    failed: Mutex<Vec<u64>>,
}

fn probe_loop(addrs: Vec<(String, String)>, token: String, p: Arc<Probes>) {
    let rt = runtime();
    let clients: Vec<_> = addrs
        .iter()
        .map(|(listen, _)| {
            mmc_local::AdminClient::new(listen.clone(), Duration::from_millis(500), rt.handle().clone())
                .with_token(Some(mmc_wire::auth::ClusterToken::new(&token)))
        })
        .collect();
    while !p.stop.load(Ordering::Relaxed) {
        for (i, mc) in clients.iter().enumerate() {
            let sent = Instant::now();
            let r = rt.block_on(mc.call(&Request::Exist {
                keys: vec!["probe".into()],
            }));
            let answered = Instant::now();
            match r {
                Ok(Response::Exist(_)) => p.served.lock()[i].push((sent, answered)),
                Err(ref e) if e.kind() == mmc_local::ErrorKind::NotLeader => p.refused.lock()[i] += 1,
                _ => p.failed.lock()[i] += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn leader_partitioned_from_etcd_steps_down_before_a_new_leader_serves() {
    if !Net::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but network namespaces are unavailable (needs root and iproute2)"
        );
        eprintln!("SKIPPED: network namespaces unavailable (needs root and iproute2 `ip netns`)");
        return;
    }
    let mut c = HaCluster::start(Some(Net::create()));
    let ids = c.live_ids();
    c.wait_settled(&ids, "start");
    let store = c.client();
    let opts = PutOptions::default();
    let before: Vec<String> = (0..50).map(|i| format!("pre-{i}")).collect();
    for k in &before {
        store.put(k, &pattern(k, 4096 + k.len()), &opts).unwrap();
    }
    c.wait_settled(&ids, "baseline in the ledgers");
    let old = c.leader(Duration::from_secs(10));

    let probes = Arc::new(Probes {
        served: Mutex::new(vec![Vec::new(); METAS]),
        refused: Mutex::new(vec![0; METAS]),
        failed: Mutex::new(vec![0; METAS]),
        ..Probes::default()
    });
    let prober = {
        let addrs = c.metas.iter().map(|m| (m.listen.clone(), m.http.clone())).collect();
        let (token, p) = (c.token.clone(), probes.clone());
        std::thread::spawn(move || probe_loop(addrs, token, p))
    };
    // The old leader answers data-path probes before the cut.
    let deadline = Instant::now() + Duration::from_secs(10);
    while probes.served.lock()[old].is_empty() {
        assert!(Instant::now() < deadline, "the leader does not answer probes");
        std::thread::sleep(Duration::from_millis(10));
    }

    c.net.as_ref().unwrap().cut_etcd(old, true);
    let cut_at = Instant::now();
    // A standby takes over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (new, takeover) = loop {
        let l: Vec<usize> = (0..METAS)
            .filter(|&i| i != old && c.role(i).as_deref() == Some("leader"))
            .collect();
        if let [n] = l[..] {
            break (n, cut_at.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "no standby took over; see {}",
            c.dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The old leader, still reachable, refuses: its role says so and it
    // exits (a deposed leader's metadata may be stale).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exited = c.metas[old].child.as_mut().unwrap().try_wait().unwrap().is_some();
        if exited {
            break;
        }
        assert_ne!(c.role(old).as_deref(), Some("leader"), "two leaders after the takeover");
        assert!(Instant::now() < deadline, "the partitioned old leader did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.metas[old].child = None;
    // Clients resume through the new leader (and the old keys are there).
    let after: Vec<String> = (0..50).map(|i| format!("post-{i}")).collect();
    for k in &after {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match store.put(k, &pattern(k, 4096 + k.len()), &opts) {
                Ok(()) => break,
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("put {k} after the takeover: {e:?}"),
            }
        }
    }
    c.wait_settled(&ids, "providers with the new leader");
    for k in before.iter().chain(&after) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match store.get(k) {
                Ok(v) => {
                    assert!(v == pattern(k, 4096 + k.len()), "{k}: wrong bytes");
                    break;
                }
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("get {k}: {e:?}"),
            }
        }
    }
    // The new leader served probes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while probes.served.lock()[new].is_empty() {
        assert!(Instant::now() < deadline, "the new leader does not answer probes");
        std::thread::sleep(Duration::from_millis(10));
    }
    probes.stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();

    // No two leaders serving at once, from the probes: the old leader's
    // last data-path answer came before the new leader's first was asked.
    let served = probes.served.lock().clone();
    let old_last = served[old].iter().map(|&(_, a)| a).max().unwrap();
    let new_first = served[new].iter().map(|&(s, _)| s).min().unwrap();
    assert!(
        old_last < new_first,
        "the old leader answered a data-path probe {:?} after the new leader was first asked one",
        old_last - new_first
    );
    // From the logs: the old leader's step-down (logged when its lease
    // guard lapses) precedes the new leader's "elected leader: serving".
    let old_log = c.dir.join(format!("meta{old}.log"));
    let new_log = c.dir.join(format!("meta{new}.log"));
    let old_elected = log_times(&old_log, "elected leader: serving");
    let old_fenced = log_times(&old_log, "stepped down (fenced)");
    let new_elected = log_times(&new_log, "elected leader: serving");
    assert_eq!(old_elected.len(), 1, "{old_log:?}");
    assert_eq!(
        old_fenced.len(),
        1,
        "the old leader logs its step-down once: {old_log:?}"
    );
    assert_eq!(new_elected.len(), 1, "{new_log:?}");
    assert!(
        old_elected[0] <= old_fenced[0] && old_fenced[0] < new_elected[0],
        "leader intervals overlap: meta{old} served {} .. {}, meta{new} from {}",
        old_elected[0],
        old_fenced[0],
        new_elected[0]
    );
    let third = (0..METAS).find(|&i| i != old && i != new).unwrap();
    assert!(
        log_times(&c.dir.join(format!("meta{third}.log")), "elected leader: serving").is_empty(),
        "meta{third} never led"
    );
    let refused_old = probes.refused.lock()[old] + probes.failed.lock()[old];
    // Restore the link: the old leader, restarted, joins as a standby.
    c.net.as_ref().unwrap().cut_etcd(old, false);
    c.start_meta(old);
    assert_eq!(c.role(old).as_deref(), Some("standby"));
    assert_eq!(c.leader(Duration::from_secs(5)), new);
    let s = c.status(new).unwrap();
    assert_eq!(s["role"], "leader");
    eprintln!(
        "partition: a standby led {:.3} s after the cut; meta{old} led {} .. {} (fenced), meta{new} leads from {} (term {}); the old leader refused \
         or dropped {refused_old} probes; {} / {} probes answered by old / new",
        takeover.as_secs_f64(),
        old_elected[0],
        old_fenced[0],
        new_elected[0],
        s["ha"]["term"],
        served[old].len(),
        served[new].len()
    );
    store.close();
}

// ---------------------------------------------------------------------------
// Chaos consistency

const KEYS: usize = 24;

fn chaos_key(i: usize) -> String {
    format!("chaos-{i}")
}

/// Value of version `v` of `key`: "key#v#" then checked pattern bytes.
fn value(key: &str, v: u64) -> Vec<u8> {
    let mut out = format!("{key}#{v}#").into_bytes();
    let len = 4096 + (v as usize % 7) * 3000 + key.len() * 100;
    out.extend(pattern(&format!("{key}/{v}"), len));
    out
}

/// The version a value claims, if its bytes are exactly that version's.
fn version_of(key: &str, bytes: &[u8]) -> Option<u64> {
    let rest = bytes.strip_prefix(format!("{key}#").as_bytes())?;
    let end = rest.iter().position(|&b| b == b'#')?;
    let v: u64 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    (value(key, v) == bytes).then_some(v)
}

/// One put of a key: from its first attempt until its remove returned.
#[derive(Clone, Copy)]
struct Life {
    v: u64,
    began: Instant,
    ended: Option<Instant>,
}

#[derive(Default)]
struct History {
    lives: Mutex<HashMap<String, Vec<Life>>>,
    stop: AtomicBool,
    gets_ok: AtomicU64,
    gets_missing: AtomicU64,
    gets_failed: AtomicU64,
    violations: Mutex<Vec<String>>,
}

impl History {
    /// Whether version `v` of `key` was current at some moment in [s, r].
    fn current_during(&self, key: &str, v: u64, s: Instant, r: Instant) -> bool {
        self.lives
            .lock()
            .get(key)
            .and_then(|l| l.iter().find(|l| l.v == v).copied())
            .is_some_and(|l| l.began <= r && l.ended.is_none_or(|e| e >= s))
    }

    fn current(&self, key: &str) -> u64 {
        self.lives.lock()[key].last().unwrap().v
    }
}

fn retry<T>(what: &str, mut f: impl FnMut() -> mmc_local::Result<T>) -> mmc_local::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Err(e) if e.is_retryable() && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) if e.is_retryable() => panic!("{what}: still failing after 30 s: {e:?}"),
            r => return r,
        }
    }
}

/// Puts version `v` of `key` (retrying; a retry that finds the key checks it
/// holds this very version).
fn put_version(s: &BlockingObjectStore, h: &History, key: &str, v: u64) {
    h.lives.lock().entry(key.to_string()).or_default().push(Life {
        v,
        began: Instant::now(),
        ended: None,
    });
    let opts = PutOptions {
        replicas: 2,
        preferred: Vec::new(),
    };
    match retry(&format!("put {key} v{v}"), || s.put(key, &value(key, v), &opts)) {
        Ok(()) => {}
        Err(ref e) if e.kind() == mmc_local::ErrorKind::DuplicatedObject => {
            let got = retry(&format!("get {key}"), || s.get(key)).unwrap();
            assert_eq!(
                version_of(key, &got),
                Some(v),
                "{key}: a put of v{v} found the key holding another value"
            );
        }
        Err(e) => panic!("put {key} v{v}: {e:?}"),
    }
}

/// Removes `key` and puts it again with version `v`.
fn rewrite(s: &BlockingObjectStore, h: &History, key: &str, v: u64) {
    match retry(&format!("remove {key}"), || s.remove(key)) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                mmc_local::ErrorKind::ObjectNotExists | mmc_local::ErrorKind::UnmatchedKey
            ) => {}
        Err(e) => panic!("remove {key}: {e:?}"),
    }
    if let Some(l) = h.lives.lock().get_mut(key).and_then(|l| l.last_mut()) {
        l.ended = Some(Instant::now());
    }
    put_version(s, h, key, v);
}

/// Gets random keys until `h.stop`, checking each answer was current while
/// the get ran.
fn reader(s: BlockingObjectStore, h: Arc<History>) {
    let mut n = 0usize;
    while !h.stop.load(Ordering::Relaxed) {
        n += 1;
        let key = chaos_key((n * 7919) % KEYS);
        let began = Instant::now();
        let r = s.get(&key);
        let ended = Instant::now();
        match r {
            Ok(bytes) => {
                h.gets_ok.fetch_add(1, Ordering::Relaxed);
                match version_of(&key, &bytes) {
                    Some(v) if h.current_during(&key, v, began, ended) => {}
                    Some(v) => h
                        .violations
                        .lock()
                        .push(format!("get {key} returned v{v}, not current while the get ran")),
                    None => h.violations.lock().push(format!("get {key} returned bytes of no put")),
                }
            }
            Err(ref e) if e.kind() == mmc_local::ErrorKind::ObjectNotExists => {
                h.gets_missing.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                assert!(e.is_retryable(), "get {key}: {e:?}");
                h.gets_failed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Reads every replica of `key` from its provider, one by one.
fn read_replicas(c: &HaCluster, rt: &tokio::runtime::Runtime, reader: u32, key: &str) -> Vec<(u32, Vec<u8>)> {
    let l = c.leader(Duration::from_secs(30));
    let mc = c.pinned(l, rt);
    let (peers, located) = match rt.block_on(mc.call(&Request::Lookup {
        reader,
        keys: vec![key.to_string()],
    })) {
        Ok(Response::Lookup { peers, items, .. }) => match items.into_iter().next() {
            Some(Ok(located)) => (peers, located),
            other => panic!("lookup {key}: {other:?}"),
        },
        other => panic!("lookup {key}: {other:?}"),
    };
    let mut out = Vec::new();
    for p in &located.replicas {
        let peer = &peers[p.peer as usize];
        let mut s = handshake(&peer.transfer_addr, Domain::Transfer, Some(&c.token));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let h = Header {
            op: Op::Read,
            segment: peer.service_id,
            offset: p.offset,
            len: located.size,
        };
        s.write_all(&h.encode()).unwrap();
        let mut reply = [0u8; REPLY_LEN];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(
            decode_reply(&reply),
            0,
            "read of {key}'s replica on {}",
            peer.service_id
        );
        let mut bytes = vec![0u8; located.size as usize];
        s.read_exact(&mut bytes).unwrap();
        out.push((peer.service_id, bytes));
    }
    let _ = rt.block_on(mc.call(&Request::ReleaseLeases {
        reader,
        leases: vec![(key.to_string(), located.object_id)],
    }));
    out
}

/// Every replica of every key holds the bytes of the key's current put.
fn check_replicas(c: &HaCluster, h: &History, checker: &BlockingObjectStore, step: &str) -> usize {
    let rt = runtime();
    let reader = checker.service_id();
    let mut replicas = 0;
    for i in 0..KEYS {
        let key = chaos_key(i);
        let want = h.current(&key);
        let reps = read_replicas(c, &rt, reader, &key);
        assert!(!reps.is_empty(), "{step}: {key} has no replica");
        for (sid, bytes) in &reps {
            assert_eq!(
                version_of(&key, bytes),
                Some(want),
                "{step}: {key}'s replica on provider {sid} does not hold the bytes of the current put v{want} \
                 (replicas on {:?}); see {}",
                reps.iter().map(|r| r.0).collect::<Vec<_>>(),
                c.dir.display()
            );
        }
        replicas += reps.len();
    }
    replicas
}

#[test]
fn chaos_every_replica_holds_the_bytes_of_one_put() {
    let mut c = HaCluster::start(None);
    c.wait_settled(&c.live_ids(), "start");
    let writer = c.client();
    let checker = c.client();
    let h = Arc::new(History::default());
    let mut version = 0u64;
    let mut rewrite_all = |c: &HaCluster, h: &History| {
        version += 1;
        for i in 0..KEYS {
            rewrite(&writer, h, &chaos_key(i), version);
        }
        let _ = c;
    };
    rewrite_all(&c, &h);
    let reader_thread = {
        let (s, h) = (c.client(), h.clone());
        std::thread::spawn(move || reader(s, h))
    };
    c.wait_settled(&c.live_ids(), "first puts");
    check_replicas(&c, &h, &checker, "first puts");

    let wait_dead = |c: &HaCluster, sid: u32, what: &str| {
        let ids: Vec<u32> = c.live_ids().into_iter().filter(|&i| i != sid).collect();
        c.wait_settled(&ids, what);
    };
    let mut steps = Vec::new();
    for round in 0..2 {
        // 1. A provider paused until declared dead; keys rewritten; resumed:
        // it comes back with a ledger of older puts.
        let x = round % LOCALS;
        let sid = c.locals[x].as_ref().unwrap().service_id;
        c.signal_local(x, libc::SIGSTOP);
        wait_dead(&c, sid, "paused provider declared dead");
        rewrite_all(&c, &h);
        c.signal_local(x, libc::SIGCONT);
        c.wait_settled(&c.live_ids(), "paused provider back");
        steps.push(check_replicas(
            &c,
            &h,
            &checker,
            &format!("round {round}: SIGSTOP/SIGCONT"),
        ));

        // 2. A provider SIGKILLed; keys rewritten; restarted (empty).
        let y = (round + 1) % LOCALS;
        let sid = c.locals[y].as_ref().unwrap().service_id;
        {
            let l = c.locals[y].as_mut().unwrap();
            l.child.kill().unwrap();
            l.child.wait().unwrap();
        }
        c.locals[y] = None;
        c.wait_settled(&c.live_ids(), "killed provider declared dead");
        let _ = sid;
        rewrite_all(&c, &h);
        c.locals[y] = Some(c.spawn_local(y));
        c.wait_settled(&c.live_ids(), "provider restarted");
        steps.push(check_replicas(
            &c,
            &h,
            &checker,
            &format!("round {round}: provider SIGKILL"),
        ));

        // 3. The leader SIGKILLed; keys rewritten during the failover.
        let old = c.leader(Duration::from_secs(10));
        c.kill_meta(old);
        rewrite_all(&c, &h);
        c.start_meta(old);
        c.wait_settled(&c.live_ids(), "after the failover");
        steps.push(check_replicas(
            &c,
            &h,
            &checker,
            &format!("round {round}: leader SIGKILL"),
        ));

        // 4. Both: a provider paused until dead, keys rewritten, the leader
        // killed, the provider resumed: the new leader rebuilds from the
        // ledgers, one of them stale.
        let z = (round + 2) % LOCALS;
        let sid = c.locals[z].as_ref().unwrap().service_id;
        c.signal_local(z, libc::SIGSTOP);
        wait_dead(&c, sid, "paused provider declared dead (before a failover)");
        rewrite_all(&c, &h);
        wait_dead(&c, sid, "rewrites recorded in the ledgers");
        let old = c.leader(Duration::from_secs(10));
        c.kill_meta(old);
        c.signal_local(z, libc::SIGCONT);
        rewrite_all(&c, &h);
        c.start_meta(old);
        c.wait_settled(&c.live_ids(), "after the failover with a stale provider");
        steps.push(check_replicas(
            &c,
            &h,
            &checker,
            &format!("round {round}: stale provider + failover"),
        ));
    }
    h.stop.store(true, Ordering::Relaxed);
    reader_thread.join().expect("reader");
    let violations = h.violations.lock().clone();
    assert!(violations.is_empty(), "gets returned other puts' bytes: {violations:?}");
    eprintln!(
        "chaos: {} steps, versions 1..={version}, replicas checked per step {steps:?}; reader gets ok {}, \
         missing {}, failed (retryable) {}",
        steps.len(),
        h.gets_ok.load(Ordering::Relaxed),
        h.gets_missing.load(Ordering::Relaxed),
        h.gets_failed.load(Ordering::Relaxed)
    );
    writer.close();
    checker.close();
}
