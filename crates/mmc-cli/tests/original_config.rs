//! The original MemCache's configuration files (`ock.mmc.<key> = value`,
//! copies of the shape of its mmc-meta.conf / mmc-local.conf under
//! crates/mmc-config/tests/data) start real services: `mmc meta --config`,
//! `mmc local --config`, `mmc up --config`, and a client configured from
//! the local file; `log_path` writes rotated log files.

mod common;

use common::{free_port, Cluster, Opts, MMC};
use mmc_config::ConfigFile;
use mmc_local::{ObjectStore, Protocol, PutOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A child killed (by PID, through `Child::kill`) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workdir() -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "mmc-ockcfg-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `dir/name`: the test-data file `name` with `edits` applied.
fn original_file(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mmc-config/tests/data")
        .join(name);
    let mut text = std::fs::read_to_string(&src).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from} not in {}", src.display());
        text = text.replace(from, to);
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn wait_port(addr: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("exited with {st}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `child`'s stdout up to a line containing `what`; returns it.
fn read_until(child: &mut Child, what: &str, log: &Path) -> String {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "exited before printing {what:?}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        if line.contains(what) {
            return line;
        }
    }
}

fn wait_file(path: &Path, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what} in {}:\n{text}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn meta_and_local_start_from_the_original_files() {
    let dir = workdir();
    let meta_addr = format!("127.0.0.1:{}", free_port());
    let http_addr = format!("127.0.0.1:{}", free_port());
    let log_dir = dir.join("mmc-logs");
    let meta_conf = original_file(
        &dir,
        "mmc-meta.conf",
        &[
            ("127.0.0.1:5000", &meta_addr),
            ("127.0.0.1:8000", &http_addr),
            ("LOG_DIR", log_dir.to_str().unwrap()),
        ],
    );
    let local_conf = original_file(&dir, "mmc-local.conf", &[("127.0.0.1:5000", &meta_addr)]);

    let meta_err = dir.join("meta.stderr");
    let mut meta = Killed(
        Command::new(MMC)
            .args(["meta", "--config"])
            .arg(&meta_conf)
            .env_remove("MMC_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&meta_err).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_port(&meta_addr, &mut meta.0, &meta_err);
    // metrics_url took effect: the HTTP endpoint answers.
    wait_port(&http_addr, &mut meta.0, &meta_err);

    let local_err = dir.join("local.stderr");
    let mut local = Killed(
        Command::new(MMC)
            .args(["local", "--config"])
            .arg(&local_conf)
            .env_remove("MMC_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&local_err).unwrap())
            .spawn()
            .unwrap(),
    );
    let ready = read_until(&mut local.0, "ready", &local_err);
    let provider: u32 = ready.split_whitespace().nth(1).unwrap().parse().unwrap();

    // A client configured from the same file (a pure client here).
    let mut cfg = ConfigFile::load(&local_conf).unwrap().local;
    assert_eq!(cfg.meta_addr, meta_addr);
    cfg.dram_size.0 = 0;
    let client = ObjectStore::connect(cfg).unwrap().blocking();
    let value = common::pattern("ock", 1 << 20);
    client.put("ock-key", &value, &PutOptions::default()).unwrap();
    assert_eq!(client.get("ock-key").unwrap(), value);
    let info = client.key_info("ock-key").unwrap();
    assert_eq!(info.replicas.iter().map(|r| r.0).collect::<Vec<_>>(), [provider]);
    // dram.size = 32MB took effect: a 40 MB value does not fit anywhere.
    assert!(client
        .put("too-big", &vec![1u8; 40 << 20], &PutOptions::default())
        .is_err());
    client.close();

    // The LocalService logged one warning per key without effect, and the
    // protocol fallback.
    let local_log = std::fs::read_to_string(&local_err).unwrap();
    for key in [
        "ock.mmc.local_service.world_size",
        "ock.mmc.local_service.hcom_url",
        "ock.mmc.client.aggregate.num",
        "ock.mmc.local_service.max.dram.size",
    ] {
        assert_eq!(local_log.matches(key).count(), 1, "{key} in:\n{local_log}");
    }
    assert!(local_log.contains("`host_rdma` is not available here"), "{local_log}");

    // log_path took effect: the MetaService logs to <log_path>/logs/mmc-meta.log
    // (debug level, from the file), with the config store warning and the
    // membership audit lines; stderr only says where the log went.
    let file = log_dir.join("logs/mmc-meta.log");
    let log = wait_file(&file, "leave audit line", |l| l.contains("event=\"leave\""));
    assert!(log.contains("ock.mmc.meta_service.config_store_url"), "{log}");
    assert!(
        log.contains("metaservice ready") && log.contains("event=\"join\""),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "ANSI codes in a log file");
    let err = std::fs::read_to_string(&meta_err).unwrap();
    assert!(err.contains("logging to") && err.contains("mmc-meta.log"), "{err}");
    drop(local);
    drop(meta);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_runs_from_an_original_local_file() {
    let dir = workdir();
    let meta_addr = format!("127.0.0.1:{}", free_port());
    let conf = original_file(&dir, "mmc-local.conf", &[("127.0.0.1:5000", &meta_addr)]);
    let err = dir.join("up.stderr");
    let mut up = Killed(
        Command::new(MMC)
            .args(["up", "--http", "", "--config"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    // meta_service_url is where the MetaService listens; dram.size the segment.
    let banner = read_until(&mut up.0, "memcache up", &err);
    assert!(banner.contains(&format!("metaservice {meta_addr}")), "{banner}");
    assert!(banner.contains("32MB segment"), "{banner}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_original_files_are_refused_naming_file_line_and_key() {
    let dir = workdir();
    let conf = original_file(
        &dir,
        "mmc-local.conf",
        &[(
            "ock.mmc.local_service.dram.size = 32MB",
            "ock.mmc.local_service.dram.size = 32 apples",
        )],
    );
    let out = Command::new(MMC)
        .args(["local", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .position(|l| l.contains("32 apples"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("{}:{line}: `ock.mmc.local_service.dram.size`", conf.display()))
            && err.contains("32 apples"),
        "{err}"
    );
    let conf = original_file(
        &dir,
        "mmc-meta.conf",
        &[(
            "ock.mmc.log_rotation_file_count = 3",
            "ock.mmc.log_rotation_file_count = 99",
        )],
    );
    let out = Command::new(MMC)
        .args(["meta", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`ock.mmc.log_rotation_file_count`") && err.contains("1..=50"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_files_rotate_by_size() {
    let dir = workdir();
    let extra: &'static str = Box::leak(
        format!(
            "log_path = \"{}\"\nlog_rotation_size = \"4KB\"\nlog_rotation_count = 2\n",
            dir.display()
        )
        .into_boxed_str(),
    );
    let c = Cluster::start(Opts {
        locals: 1,
        meta_extra: extra,
        ..Opts::default()
    });
    // Every client that joins and leaves writes two audit lines (some 200
    // bytes each): 40 of them fill the 4 KB file several times over.
    for _ in 0..40 {
        c.client(Protocol::Tcp, 0).close();
    }
    let log = dir.join("logs/mmc-meta.log");
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", log.display()));
    wait_file(&rotated(2), "rotated file .2", |t| !t.is_empty());
    assert!(!rotated(3).exists(), "more rotated files than log_rotation_count");
    for p in [log.clone(), rotated(1), rotated(2)] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 4096, "{} is {len} bytes", p.display());
    }
    let old = std::fs::read_to_string(rotated(1)).unwrap();
    assert!(old.contains("membership"), "{old}");
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_retries_an_unreachable_metaservice_for_retry_milliseconds() {
    let dir = workdir();
    let meta_addr = format!("127.0.0.1:{}", free_port());
    let plain = original_file(&dir, "mmc-local.conf", &[("127.0.0.1:5000", &meta_addr)]);
    let mut cfg = ConfigFile::load(&plain).unwrap().local;
    cfg.dram_size.0 = 0;
    // Without the key: NOT_CONNECTED_META at once.
    let e = ObjectStore::connect(cfg).err().expect("nothing listens yet");
    assert_eq!(e.code(), mmc_wire::error::code::NOT_CONNECTED_META, "{e}");

    let retrying = original_file(
        &dir,
        "mmc-local.conf",
        &[
            ("127.0.0.1:5000", &meta_addr),
            (
                "# ock.mmc.client.retry_milliseconds = 0",
                "ock.mmc.client.retry_milliseconds = 600000",
            ),
        ],
    );
    let mut cfg = ConfigFile::load(&retrying).unwrap().local;
    assert_eq!(cfg.meta_retry_ms, 600_000);
    cfg.dram_size.0 = 0;
    // The client starts first and keeps trying until the MetaService is up.
    let client = std::thread::spawn(move || ObjectStore::connect(cfg).map(|s| s.blocking()));
    let err = dir.join("meta.stderr");
    let mut meta = Killed(
        Command::new(MMC)
            .args(["meta", "--http", "", "--listen", &meta_addr])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_port(&meta_addr, &mut meta.0, &err);
    let client = client
        .join()
        .unwrap()
        .expect("the client connected once the MetaService started");
    assert!(client.service_id() > 0);
    client.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_keys_of_the_original_files_secure_the_control_connections() {
    let dir = workdir();
    let pki = mmc_tls::testing::TestPki::new("ockcfg");
    let meta_addr = format!("127.0.0.1:{}", free_port());
    let tls_lines = |cert: &Path, key: &Path| {
        format!(
            "ock.mmc.tls.enable = true\nock.mmc.tls.ca.path = {}\nock.mmc.tls.cert.path = {}\nock.mmc.tls.key.path = {}\n",
            pki.ca.display(),
            cert.display(),
            key.display()
        )
    };
    let meta_conf = original_file(
        &dir,
        "mmc-meta.conf",
        &[
            ("127.0.0.1:5000", &meta_addr),
            ("ock.mmc.meta_service.metrics_url = http://127.0.0.1:8000\n", ""),
            ("ock.mmc.log_path = LOG_DIR\n", ""),
            (
                "## TLS of the MetaService's port\n",
                &tls_lines(&pki.server_cert, &pki.server_key),
            ),
        ],
    );
    let meta_tls = ConfigFile::load(&meta_conf).unwrap().meta.security.tls;
    assert!(meta_tls.enable && meta_tls.mutual);
    let err = dir.join("meta.stderr");
    let mut meta = Killed(
        Command::new(MMC)
            .args(["meta", "--http", "", "--config"])
            .arg(&meta_conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_port(&meta_addr, &mut meta.0, &err);

    let local_conf = original_file(
        &dir,
        "mmc-local.conf",
        &[
            ("127.0.0.1:5000", &meta_addr),
            (
                "## TLS towards the MetaService\n",
                &tls_lines(&pki.client_cert, &pki.client_key),
            ),
        ],
    );
    let mut cfg = ConfigFile::load(&local_conf).unwrap().local;
    cfg.dram_size.0 = 8 << 20;
    let client = ObjectStore::connect(cfg.clone()).unwrap().blocking();
    client.put("tls-key", b"over tls", &PutOptions::default()).unwrap();
    assert_eq!(client.get("tls-key").unwrap(), b"over tls");
    client.close();
    // The MetaService requires a client certificate (the original's
    // mutual authentication): a TLS client without one is refused.
    cfg.security.tls.mutual = false;
    cfg.rpc_timeout_ms = 2000;
    let e = ObjectStore::connect(cfg).err().expect("no client certificate");
    assert!(
        [
            mmc_wire::error::code::NOT_CONNECTED_META,
            mmc_wire::error::code::TIMEOUT
        ]
        .contains(&e.code()),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
