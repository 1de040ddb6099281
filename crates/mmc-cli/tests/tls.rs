//! TLS with real processes: a MetaService whose control port and HTTP
//! endpoint speak TLS (mutual TLS for the control port in most cases),
//! LocalService providers connecting to it over TLS, and clients in this
//! process. Correct clients put and get over both data paths (shared
//! memory on the same host, forced TCP transfers); a client trusting
//! another CA, one without a client certificate, and a plain-TCP client
//! get nothing from the control port; HTTP over TLS answers /health and
//! plain HTTP to that port gets no HTTP answer. With `tls.transfer`,
//! providers serve TCP transfers over TLS only: a TLS client moves bytes,
//! a client without transfer TLS cannot.
//!
//! Certificates are generated per test (rcgen) into the cluster's temp
//! folder and passed through `--config` TOML files.

mod common;

use common::{free_port, pattern, Proc, MMC};
use mmc_local::{AdminClient, BlockingObjectStore, ErrorKind, LocalConfig, ObjectStore, Protocol, PutOptions};
use mmc_tls::testing::TestPki;
use mmc_tls::ClientTls;
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::{ClusterStat, Request, Response};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct TlsCluster {
    dir: PathBuf,
    pki: TestPki,
    meta_addr: String,
    http_addr: String,
    config: PathBuf,
    mutual: bool,
    transfer: bool,
    // Dropped (killed) in this order: providers first.
    locals: Vec<Proc>,
    meta: Option<Proc>,
}

fn tls_section(section: &str, t: &mmc_config::TlsConfig) -> String {
    format!(
        "[{section}.security.tls]\nenable = true\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\nmutual = {}\ntransfer = {}\n",
        t.cert, t.key, t.ca, t.mutual, t.transfer
    )
}

/// LocalService TLS settings. With `transfer` they present the server
/// certificate (for 127.0.0.1, no key-usage restriction), which serves both
/// as the transfer server's certificate and as the client certificate.
fn local_tls(pki: &TestPki, mutual: bool, transfer: bool) -> mmc_config::TlsConfig {
    let mut t = pki.client_config(mutual);
    if transfer {
        t.cert = pki.server_cert.display().to_string();
        t.key = pki.server_key.display().to_string();
        t.transfer = true;
    }
    t
}

impl TlsCluster {
    /// A TLS MetaService (control port mutual TLS when `mutual`) and
    /// `locals` providers connecting over TLS.
    fn start(tag: &str, mutual: bool, locals: usize) -> TlsCluster {
        Self::start_with(tag, mutual, false, locals)
    }

    /// As [`start`](Self::start); with `transfer`, providers and clients
    /// also encrypt TCP transfers.
    fn start_with(tag: &str, mutual: bool, transfer: bool, locals: usize) -> TlsCluster {
        let pki = TestPki::new(tag);
        let dir = pki.dir.clone();
        let meta_addr = format!("127.0.0.1:{}", free_port());
        let http_addr = format!("127.0.0.1:{}", free_port());
        let config = dir.join("mmc.toml");
        let text = format!(
            "[meta]\nlisten = \"{meta_addr}\"\nhttp_listen = \"{http_addr}\"\nheartbeat_timeout_ms = 1500\nlog_level = \"info\"\n\n{}\n[local]\nmeta_addr = \"{meta_addr}\"\ndram_size = \"64MB\"\nheartbeat_interval_ms = 200\nlog_level = \"info\"\n\n{}",
            tls_section("meta", &pki.server_config(mutual)),
            tls_section("local", &local_tls(&pki, mutual, transfer)),
        );
        std::fs::write(&config, text).unwrap();
        let mut c = TlsCluster {
            dir,
            pki,
            meta_addr,
            http_addr,
            config,
            mutual,
            transfer,
            locals: Vec::new(),
            meta: None,
        };
        let child = Command::new(MMC)
            .args(["meta", "--config"])
            .arg(&c.config)
            .stdin(Stdio::null())
            .stdout(c.log("meta"))
            .stderr(c.log("meta"))
            .spawn()
            .expect("spawn mmc meta");
        c.meta = Some(Proc { child, service_id: 0 });
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.stat().is_err() {
            assert!(
                Instant::now() < deadline,
                "metaservice did not start; see {}",
                c.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for i in 0..locals {
            c.add_local(i);
        }
        c.wait_until("providers registered", |s| s.segments.len() == locals);
        c
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap()
    }

    fn add_local(&mut self, i: usize) {
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
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected local start line {line:?}; see {}", self.dir.display()));
        self.locals.push(Proc { child, service_id });
    }

    /// Client settings: this cluster's CA, client certificate when mutual.
    fn client_tls(&self) -> mmc_config::TlsConfig {
        local_tls(&self.pki, self.mutual, self.transfer)
    }

    fn client_config(&self, protocol: Protocol, tls: mmc_config::TlsConfig) -> LocalConfig {
        let mut cfg = LocalConfig {
            meta_addr: self.meta_addr.clone(),
            protocol,
            heartbeat_interval_ms: 200,
            rpc_timeout_ms: 3000,
            ..LocalConfig::default()
        };
        cfg.dram_size.0 = 0;
        cfg.security.tls = tls;
        cfg
    }

    fn client(&self, protocol: Protocol) -> BlockingObjectStore {
        ObjectStore::connect(self.client_config(protocol, self.client_tls()))
            .unwrap_or_else(|e| panic!("TLS client connects: {e}; logs in {}", self.dir.display()))
            .blocking()
    }

    fn stat(&self) -> Result<ClusterStat, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mc = AdminClient::new(
                self.meta_addr.clone(),
                Duration::from_secs(3),
                tokio::runtime::Handle::current(),
            )
            .with_tls(Some(ClientTls::new(&self.client_tls()).map_err(|e| e.to_string())?));
            match mc.call(&Request::Stat).await {
                Ok(Response::Stat(s)) => Ok(s),
                Ok(o) => Err(format!("{o:?}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn wait_until(&self, what: &str, pred: impl Fn(&ClusterStat) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.stat() {
                Ok(s) if pred(&s) => return,
                r => assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {r:?}; logs in {}",
                    self.dir.display()
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn meta_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("meta.log")).unwrap_or_default()
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        self.locals.clear();
        self.meta = None;
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn put_get(s: &BlockingObjectStore, tag: &str) {
    let one = PutOptions::default();
    for (i, len) in [100usize, 300_000, 4 << 20].into_iter().enumerate() {
        let k = format!("{tag}-{i}");
        let v = pattern(&k, len);
        s.put(&k, &v, &one).unwrap();
        assert_eq!(s.get(&k).unwrap(), v, "{k}");
        assert!(s.exist(&k).unwrap());
    }
    let keys: Vec<String> = (0..20).map(|i| format!("{tag}-batch-{i}")).collect();
    let krefs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    let vals: Vec<Vec<u8>> = keys.iter().map(|k| pattern(k, 8192)).collect();
    let vrefs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
    assert!(s.put_batch(&krefs, &vrefs, &one).unwrap().iter().all(|r| r.is_ok()));
    for (g, v) in s.get_batch(&krefs).unwrap().iter().zip(&vals) {
        assert_eq!(g.as_ref().unwrap(), v);
    }
    s.remove(&format!("{tag}-0")).unwrap();
    assert!(!s.exist(&format!("{tag}-0")).unwrap());
}

#[test]
fn tls_cluster_serves_tls_clients_over_both_data_paths() {
    let c = TlsCluster::start("cluster", true, 2);
    let shm = c.client(Protocol::Auto);
    let tcp = c.client(Protocol::Tcp);
    put_get(&shm, "shm");
    put_get(&tcp, "tcp");
    // Each reads what the other wrote.
    let k = "tcp-1";
    assert_eq!(shm.get(k).unwrap(), pattern(k, 300_000));
    let k = "shm-2";
    assert_eq!(tcp.get(k).unwrap(), pattern(k, 4 << 20));
    // The command-line tool takes its TLS settings from the config file.
    let out = Command::new(MMC)
        .args(["stat", "--meta", &c.meta_addr])
        .env("MMC_LOCAL_CONFIG_PATH", &c.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("total capacity 134217728 bytes"), "{text}");
    let out = Command::new(MMC)
        .args(["get", "--meta", &c.meta_addr, "tcp-1"])
        .env("MMC_LOCAL_CONFIG_PATH", &c.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, pattern("tcp-1", 300_000));
    shm.close();
    tcp.close();
}

/// Writes a Stat request frame on a plain TCP connection to `addr`;
/// returns whatever came back before the server closed it.
fn plain_frames_to(addr: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = frame::encode(FrameKind::Request, 1, &Request::Stat).unwrap();
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn tls_control_port_refuses_wrong_ca_missing_client_cert_and_plain_tcp() {
    let c = TlsCluster::start("refuse", true, 0);

    let mut wrong_ca = c.client_tls();
    wrong_ca.ca = c.pki.other_ca.display().to_string();
    let e = ObjectStore::connect(c.client_config(Protocol::Auto, wrong_ca)).err();
    assert!(
        matches!(e, Some(ref e) if e.kind() == ErrorKind::NotConnectedMeta),
        "{e:?}"
    );

    let mut foreign_cert = c.client_tls();
    foreign_cert.cert = c.pki.other_client_cert.display().to_string();
    foreign_cert.key = c.pki.other_client_key.display().to_string();
    let e = ObjectStore::connect(c.client_config(Protocol::Auto, foreign_cert)).err();
    assert!(
        matches!(e, Some(ref e) if e.kind() == ErrorKind::NotConnectedMeta),
        "{e:?}"
    );

    let mut no_cert = c.client_tls();
    no_cert.mutual = false;
    let e = ObjectStore::connect(c.client_config(Protocol::Auto, no_cert)).err();
    assert!(
        matches!(e, Some(ref e) if e.kind() == ErrorKind::NotConnectedMeta),
        "{e:?}"
    );

    // A client without TLS at all waits for an authentication challenge
    // that a TLS port never sends (it waits for a TLS hello): refused once
    // the connect timeout passes, with a hint at TLS.
    let e = ObjectStore::connect(c.client_config(Protocol::Auto, Default::default())).err();
    assert!(
        matches!(e, Some(ref e) if e.kind() == ErrorKind::Timeout && e.message().contains("TLS")),
        "{e:?}"
    );

    // Raw frames on plain TCP: no response frame, the connection closed.
    let back = plain_frames_to(&c.meta_addr);
    let mut cur = back.as_slice();
    let got = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(frame::read_frame(&mut cur));
    assert!(
        !matches!(got, Ok(Some(ref f)) if f.kind == FrameKind::Response),
        "a plain-TCP client got a frame: {got:?}"
    );
    // The MetaService logged the refused handshakes.
    let log = c.meta_log();
    assert!(log.contains("TLS handshake failed"), "{log}");
    // A correct client still works afterwards.
    assert!(c.stat().is_ok());
}

#[test]
fn http_over_tls_answers_health_and_refuses_plain_http() {
    let c = TlsCluster::start("http", false, 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpStream::connect(&c.http_addr).await.unwrap();
        let tls = ClientTls::new(&c.client_tls()).unwrap();
        let mut s = tls.connect(&c.http_addr, sock).await.expect("TLS handshake with http");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Plain HTTP to the TLS port: no HTTP answer.
    let mut s = std::net::TcpStream::connect(&c.http_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(!out.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&out));

    // curl, where installed, with the CA bundle.
    if let Ok(o) = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&c.pki.ca)
        .arg(format!("https://{}/health", c.http_addr))
        .output()
    {
        assert!(o.status.success(), "curl: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    }
}

#[test]
fn tls_transfers_carry_tcp_puts_and_gets() {
    let c = TlsCluster::start_with("transfer", true, true, 2);
    let tcp = c.client(Protocol::Tcp);
    put_get(&tcp, "tcp");
    let shm = c.client(Protocol::Auto);
    put_get(&shm, "shm");
    assert_eq!(tcp.get("shm-1").unwrap(), pattern("shm-1", 300_000));
    // Control TLS but plain transfers: the providers refuse the transfer.
    let mut plain_xfer = c.client_tls();
    plain_xfer.transfer = false;
    let s = ObjectStore::connect(c.client_config(Protocol::Tcp, plain_xfer))
        .expect("control connection is TLS as required")
        .blocking();
    let e = s.get("tcp-1");
    assert!(e.is_err(), "a plain transfer read from a TLS provider: {e:?}");
    let e = s.put("plain", &[1u8; 4096], &PutOptions::default());
    assert!(e.is_err(), "a plain transfer write to a TLS provider: {e:?}");
    assert!(tcp.get("tcp-1").is_ok(), "TLS transfers still work");
    s.close();
    tcp.close();
    shm.close();
}

#[test]
fn unusable_tls_files_stop_start_up_naming_the_file() {
    let pki = TestPki::new("badfiles");
    let junk = pki.dir.join("junk.pem");
    std::fs::write(&junk, "not pem\n").unwrap();
    let mut meta = pki.server_config(false);
    meta.cert = pki.dir.join("missing-cert.pem").display().to_string();
    let mut local = pki.client_config(false);
    local.ca = junk.display().to_string();
    let config = pki.dir.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "[meta]\nlisten = \"127.0.0.1:{}\"\nhttp_listen = \"\"\n\n{}\n[local]\nmeta_addr = \"127.0.0.1:1\"\ndram_size = \"16MB\"\n\n{}",
            free_port(),
            tls_section("meta", &meta),
            tls_section("local", &local)
        ),
    )
    .unwrap();
    for (cmd, file, key) in [
        ("meta", "missing-cert.pem", "tls.cert"),
        ("local", "junk.pem", "tls.ca"),
    ] {
        let out = Command::new(MMC)
            .args([cmd, "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mmc {cmd} started with a bad TLS file");
        assert!(err.contains(file) && err.contains(key), "mmc {cmd}: {err}");
    }
    let _ = std::fs::remove_dir_all(&pki.dir);
}
