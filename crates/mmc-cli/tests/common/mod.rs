//! Test harness: a real cluster of `mmc` processes on loopback.
//!
//! Each [`Cluster`] writes its own TOML config into a private temp folder,
//! starts `mmc meta` and `mmc local` children on free ports, and kills every
//! child with SIGKILL (by PID, through `Child::kill`) when dropped.
//! With [`Opts::token`] the cluster requires that token (written to a token
//! file named by the config's `[cluster]` section); raw connections made by
//! tests go through [`handshake`] first, as every connection must.

#![allow(dead_code)]

pub mod etcd;

use mmc_local::{BlockingObjectStore, LocalConfig, ObjectStore, Protocol};
use mmc_wire::auth::{client_handshake_blocking, ClusterToken, Domain};
use mmc_wire::message::{ClusterStat, Request, Response};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const MMC: &str = env!("CARGO_BIN_EXE_mmc");

#[derive(Clone)]
pub struct Opts {
    pub locals: usize,
    pub segment: &'static str,
    pub heartbeat_timeout_ms: u64,
    pub put_timeout_ms: u64,
    pub lease_ms: u64,
    /// Cluster token of the services and of this process's clients.
    pub token: Option<String>,
    /// Serve the MetaService's HTTP endpoint (on a free loopback port).
    pub http: bool,
    /// More `[meta]` lines for the config file (`key = value\n` each).
    pub meta_extra: &'static str,
    /// More `[local]` lines for the config file.
    pub local_extra: &'static str,
    /// Soft and hard descriptor limit (`RLIMIT_NOFILE`) of the MetaService
    /// process, when set.
    pub meta_nofile: Option<u64>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            locals: 3,
            segment: "64MB",
            heartbeat_timeout_ms: 1500,
            put_timeout_ms: 30_000,
            lease_ms: 2000,
            token: None,
            http: false,
            meta_extra: "",
            local_extra: "",
            meta_nofile: None,
        }
    }
}

pub struct Proc {
    pub child: Child,
    pub service_id: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub meta_addr: String,
    /// The HTTP endpoint's address when [`Opts::http`].
    pub http_addr: Option<String>,
    pub config: PathBuf,
    pub opts: Opts,
    pub meta: Option<Proc>,
    pub locals: Vec<Proc>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    pub fn start(opts: Opts) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "mmc-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let meta_addr = format!("127.0.0.1:{}", free_port());
        let config = dir.join("mmc.toml");
        let http_addr = opts.http.then(|| format!("127.0.0.1:{}", free_port()));
        let cluster = match &opts.token {
            Some(t) => {
                let file = dir.join("token");
                std::fs::write(&file, format!("{t}\n")).unwrap();
                format!("[cluster]\ntoken_file = \"{}\"\n\n", file.display())
            }
            None => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                "{cluster}[meta]\nlisten = \"{meta_addr}\"\nhttp_listen = \"{}\"\nheartbeat_timeout_ms = {}\nput_timeout_ms = {}\nlease_ms = {}\nlog_level = \"info\"\n{}\n[local]\nmeta_addr = \"{meta_addr}\"\ndram_size = \"{}\"\nheartbeat_interval_ms = 200\nlog_level = \"info\"\n{}",
                http_addr.as_deref().unwrap_or(""),
                opts.heartbeat_timeout_ms,
                opts.put_timeout_ms,
                opts.lease_ms,
                opts.meta_extra,
                opts.segment,
                opts.local_extra
            ),
        )
        .unwrap();
        let mut c = Cluster {
            dir,
            meta_addr,
            http_addr,
            config,
            opts: opts.clone(),
            meta: None,
            locals: Vec::new(),
        };
        c.start_meta();
        for _ in 0..opts.locals {
            c.add_local();
        }
        c.wait_members(opts.locals);
        c
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap()
    }

    pub fn start_meta(&mut self) {
        let mut cmd = Command::new(MMC);
        cmd.args(["meta", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(self.log("meta"))
            .stderr(self.log("meta"));
        if let Some(n) = self.opts.meta_nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure runs in the child between fork and exec
            // and only calls setrlimit, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("spawn mmc meta");
        self.meta = Some(Proc { child, service_id: 0 });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.meta_addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "metaservice did not start; see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts one more memory-provider LocalService; returns its index.
    pub fn add_local(&mut self) -> usize {
        let i = self.locals.len();
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
        // "localservice N ready (transfer ADDR)"
        let service_id = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected local start line {line:?}; see {}", self.dir.display()));
        self.locals.push(Proc { child, service_id });
        i
    }

    pub fn kill_local(&mut self, i: usize) {
        let p = &mut self.locals[i];
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }

    pub fn kill_meta(&mut self) {
        let mut p = self.meta.take().unwrap();
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }

    pub fn local_index(&self, service_id: u32) -> usize {
        self.locals
            .iter()
            .position(|p| p.service_id == service_id)
            .expect("known service")
    }

    pub fn client_config(&self, protocol: Protocol, dram_size: u64) -> LocalConfig {
        let mut cfg = LocalConfig {
            meta_addr: self.meta_addr.clone(),
            protocol,
            heartbeat_interval_ms: 200,
            ..LocalConfig::default()
        };
        cfg.dram_size.0 = dram_size;
        cfg.security.token = self.opts.token.clone();
        cfg
    }

    /// A client in this test process (pure client when `dram_size` is 0).
    pub fn client(&self, protocol: Protocol, dram_size: u64) -> BlockingObjectStore {
        ObjectStore::connect(self.client_config(protocol, dram_size))
            .expect("client connects")
            .blocking()
    }

    pub fn stat(&self) -> Result<ClusterStat, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mc = mmc_local::AdminClient::new(
                self.meta_addr.clone(),
                Duration::from_secs(3),
                tokio::runtime::Handle::current(),
            )
            .with_token(self.token());
            match mc.call(&Request::Stat).await {
                Ok(Response::Stat(s)) => Ok(s),
                Ok(o) => Err(format!("{o:?}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Waits until `n` segments are registered.
    pub fn wait_members(&self, n: usize) {
        self.wait_until(Duration::from_secs(15), "segments registered", |s| {
            s.segments.len() == n
        });
    }

    /// Polls the cluster state until `pred` holds (panics after `timeout`).
    pub fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&ClusterStat) -> bool) -> ClusterStat {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(s) = self.stat() {
                if pred(&s) {
                    return s;
                }
                if Instant::now() > deadline {
                    panic!(
                        "timed out waiting for {what}; last state {s:?}; logs in {}",
                        self.dir.display()
                    );
                }
            } else if Instant::now() > deadline {
                panic!("timed out waiting for {what}; metaservice unreachable");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The cluster token as the services hold it.
    pub fn token(&self) -> Option<ClusterToken> {
        self.opts.token.as_deref().map(ClusterToken::new)
    }

    /// A raw connection to the control port, authenticated as a client of
    /// this cluster: frames may follow.
    pub fn control_conn(&self) -> TcpStream {
        handshake(&self.meta_addr, Domain::Control, self.opts.token.as_deref())
    }

    /// A raw connection to a transfer port, authenticated likewise.
    pub fn transfer_conn(&self, addr: &str) -> TcpStream {
        handshake(addr, Domain::Transfer, self.opts.token.as_deref())
    }

    pub fn used_bytes(&self) -> u64 {
        self.stat().unwrap().segments.iter().map(|s| s.used).sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.locals.clear();
        self.meta = None;
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Connects to `addr` and runs the client side of the authentication
/// handshake (open mode without `token`); panics when it fails.
pub fn handshake(addr: &str, domain: Domain, token: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client_handshake_blocking(&mut s, token.map(str::as_bytes), domain)
        .unwrap_or_else(|e| panic!("handshake with {addr}: {e}"));
    s.set_read_timeout(None).unwrap();
    s
}

/// Deterministic content for a key, so any reader can verify bytes.
pub fn pattern(key: &str, len: usize) -> Vec<u8> {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    let mut out = Vec::with_capacity(len);
    let mut x = h | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends SIGSTOP to `pid` and waits until every thread of it is stopped
/// (`kill` returns before the signal has taken effect: a thread already
/// running on another CPU may still answer a request meanwhile).
pub fn sigstop_and_wait(pid: u32) {
    // SAFETY: a signal to a child process of this test.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let all_stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.flatten().all(|t| {
                    std::fs::read_to_string(t.path().join("stat"))
                        .ok()
                        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
                        .unwrap_or(true)
                })
            })
            .unwrap_or(true);
        if all_stopped {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "process {pid} did not stop");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
