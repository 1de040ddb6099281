//! Cluster-token authentication with real processes: a MetaService and
//! LocalServices started with a token file serve clients that know the
//! token (over shared memory and over the TCP transfer port), refuse those
//! that do not, close raw connections that skip or fail the handshake
//! before reading any frame or transfer header, guard the HTTP endpoint
//! with the bearer token, and a service on a non-loopback address refuses
//! to start without a token unless `--insecure`.

mod common;

use common::{free_port, handshake, pattern, Cluster, Opts, MMC};
use mmc_local::{Error, ErrorKind, ObjectStore, Protocol, PutOptions};
use mmc_wire::auth::{client_handshake_blocking, AuthError, Domain, CHALLENGE_LEN, CHALLENGE_MAGIC};
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::Request;
use mmc_wire::transfer::{Header, Op};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "auth-test-token-0123456789abcdef";

fn token_cluster(http: bool) -> Cluster {
    Cluster::start(Opts {
        locals: 2,
        segment: "32MB",
        token: Some(TOKEN.into()),
        http,
        ..Opts::default()
    })
}

/// Everything the peer sends until it closes the connection; panics when
/// it is still open after 15 s (the server's handshake limit is 5 s).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("connection still open after 15 s; received {got:?}")
            }
            // A reset also ends it.
            Err(_) => return got,
        }
    }
}

/// Asserts that what came back is the server's challenge and nothing else:
/// no frame, no transfer reply.
fn only_the_challenge(got: &[u8], what: &str) {
    assert_eq!(
        got.len(),
        CHALLENGE_LEN,
        "{what}: {} bytes came back: {got:?}",
        got.len()
    );
    assert_eq!(&got[..8], CHALLENGE_MAGIC, "{what}");
}

fn tcp_client(c: &Cluster, token: Option<&str>) -> Result<ObjectStore, Error> {
    let mut cfg = c.client_config(Protocol::Tcp, 0);
    cfg.security.token = token.map(str::to_owned);
    ObjectStore::connect(cfg)
}

#[test]
fn clients_with_the_token_store_and_read_across_providers_over_shm_and_tcp() {
    let c = token_cluster(false);
    let tcp = c.client(Protocol::Tcp, 0);
    let shm = c.client(Protocol::Auto, 0);
    let two = PutOptions {
        replicas: 2,
        preferred: vec![],
    };
    for i in 0..4 {
        let k = format!("tcp-{i}");
        tcp.put(&k, &pattern(&k, 300_000 + i), &two).unwrap();
    }
    let k = "shm-0";
    shm.put(k, &pattern(k, 1 << 20), &PutOptions::default()).unwrap();
    let st = c.stat().unwrap();
    assert_eq!(st.segments.len(), 2);
    assert!(
        st.segments.iter().all(|s| s.objects >= 4),
        "both providers hold a replica of each 2-replica put: {st:?}"
    );
    for i in 0..4 {
        let k = format!("tcp-{i}");
        assert_eq!(tcp.get(&k).unwrap(), pattern(&k, 300_000 + i), "{k} over tcp");
        assert_eq!(shm.get(&k).unwrap(), pattern(&k, 300_000 + i), "{k} over shm");
    }
    assert_eq!(tcp.get(k).unwrap(), pattern(k, 1 << 20));
    tcp.close();
    shm.close();

    // The command line, with --token-file.
    let file = c.dir.join("token");
    let mut put = Command::new(MMC)
        .args(["put", "--meta", &c.meta_addr, "--token-file"])
        .arg(&file)
        .args(["cli-key", "-"])
        .env_remove("MMC_LOCAL_CONFIG_PATH")
        .env_remove("MMC_TOKEN_FILE")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin.take().unwrap().write_all(b"from the cli").unwrap();
    assert!(put.wait().unwrap().success());
    let out = Command::new(MMC)
        .args(["get", "--meta", &c.meta_addr, "cli-key"])
        .env_remove("MMC_LOCAL_CONFIG_PATH")
        .env("MMC_TOKEN_FILE", &file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"from the cli");
}

#[test]
fn clients_without_the_right_token_are_refused_and_store_nothing() {
    let c = token_cluster(false);
    let before = c.stat().unwrap();

    let e = tcp_client(&c, None).err().expect("a client without a token is refused");
    assert!(e.kind() == ErrorKind::NotConnectedMeta, "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("security.token") && msg.contains("token_file"), "{msg}");

    let e = tcp_client(&c, Some("auth-test-token-but-not-the-right-one"))
        .err()
        .expect("a client with a wrong token is refused");
    assert!(e.kind() == ErrorKind::NotConnectedMeta, "{e:?}");
    assert!(e.to_string().contains("refused our cluster token"), "{e}");

    // The command line without a token.
    let mut put = Command::new(MMC)
        .args(["put", "--meta", &c.meta_addr, "no-token-key", "-"])
        .env_remove("MMC_LOCAL_CONFIG_PATH")
        .env_remove("MMC_TOKEN_FILE")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    put.stdin.take().unwrap().write_all(b"nope").unwrap();
    let out = put.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("security.token"), "{err}");

    let after = c.stat().unwrap();
    assert_eq!(after.keys, before.keys, "nothing was stored");
    assert_eq!(after.segments.len(), 2, "no member was added");
    let s = c.client(Protocol::Tcp, 0);
    assert_eq!(s.get("no-token-key"), Err(Error::from(ErrorKind::ObjectNotExists)));
    s.close();
}

#[test]
fn raw_connections_that_skip_or_fail_the_handshake_are_closed_unheard() {
    let c = token_cluster(true);
    let store = c.client(Protocol::Tcp, 0);
    store
        .put("guarded", &pattern("guarded", 4096), &PutOptions::default())
        .unwrap();
    let st = c.stat().unwrap();
    let seg = st
        .segments
        .iter()
        .find(|s| s.used > 0)
        .expect("a segment holds it")
        .clone();

    // Control port: a well-formed Stat frame (and an Exist, and a ring
    // offer) without a handshake. The server reads them as a proof, finds
    // no proof magic, and closes: only its challenge ever comes back.
    let mut frames = frame::encode(FrameKind::Request, 1, &Request::Stat).unwrap();
    frames.extend(
        frame::encode(
            FrameKind::Request,
            2,
            &Request::Exist {
                keys: vec!["guarded".into()],
            },
        )
        .unwrap(),
    );
    frames.extend(
        frame::encode(
            FrameKind::Request,
            3,
            &Request::AttachRing {
                name: "/proc/self/fd/0".into(),
                nonce: 1,
            },
        )
        .unwrap(),
    );
    let mut x = TcpStream::connect(&c.meta_addr).unwrap();
    x.write_all(&frames).unwrap();
    only_the_challenge(&read_until_closed(&mut x), "frames without a handshake (control)");

    // A lone short frame: the server waits for a proof, then gives up.
    let mut x = TcpStream::connect(&c.meta_addr).unwrap();
    x.write_all(&frame::encode(FrameKind::Request, 1, &Request::Stat).unwrap())
        .unwrap();
    only_the_challenge(&read_until_closed(&mut x), "a short frame (control)");

    // Transfer port: a valid read header for the stored bytes.
    let header = Header {
        op: Op::Read,
        segment: seg.service_id,
        offset: 0,
        len: 4096,
    }
    .encode();
    let mut x = TcpStream::connect(&seg.transfer_addr).unwrap();
    let mut three = Vec::new();
    for _ in 0..3 {
        three.extend_from_slice(&header);
    }
    x.write_all(&three).unwrap();
    only_the_challenge(
        &read_until_closed(&mut x),
        "read headers without a handshake (transfer)",
    );

    // A wrong token, then frames anyway: refused, closed, nothing answered.
    for (addr, domain) in [(&c.meta_addr, Domain::Control), (&seg.transfer_addr, Domain::Transfer)] {
        let mut x = TcpStream::connect(addr).unwrap();
        x.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let e = client_handshake_blocking(&mut x, Some(b"auth-test-token-wrong-wrong-wrong"), domain).unwrap_err();
        assert!(matches!(e, AuthError::Refused), "{domain:?}: {e:?}");
        let _ = x.write_all(&frames);
        let _ = x.write_all(&header);
        assert!(
            read_until_closed(&mut x).is_empty(),
            "{domain:?}: nothing after the verdict"
        );
    }
    // A proof for the other protocol is worthless.
    let mut x = TcpStream::connect(&seg.transfer_addr).unwrap();
    x.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let e = client_handshake_blocking(&mut x, Some(TOKEN.as_bytes()), Domain::Control).unwrap_err();
    assert!(matches!(e, AuthError::Refused), "{e:?}");

    // With the token, the same raw read is served.
    let mut x = handshake(&seg.transfer_addr, Domain::Transfer, Some(TOKEN));
    x.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    x.write_all(&header).unwrap();
    let mut reply = [0u8; mmc_wire::transfer::REPLY_LEN];
    x.read_exact(&mut reply).unwrap();
    assert_eq!(mmc_wire::transfer::decode_reply(&reply), 0);

    // The failures are counted, and the cluster still serves its clients.
    let (status, body) = http_get(c.http_addr.as_deref().unwrap(), "/metrics", Some(TOKEN));
    assert_eq!(status, 200);
    let failures: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("mmc_auth_failures_total{port=\"control\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no control auth failure counter in {body}"));
    assert!(failures >= 3, "{failures} control auth failures counted");
    assert_eq!(store.get("guarded").unwrap(), pattern("guarded", 4096));
    store.close();
}

/// One HTTP/1.1 GET; returns the status and the body.
fn http_get(addr: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn http_needs_the_bearer_token_except_health() {
    let c = Cluster::start(Opts {
        locals: 1,
        segment: "16MB",
        token: Some(TOKEN.into()),
        http: true,
        ..Opts::default()
    });
    let http = c.http_addr.clone().unwrap();
    for path in ["/role", "/metrics", "/get_all_segments", "/query_key?key=x"] {
        let (status, body) = http_get(&http, path, None);
        assert_eq!(status, 401, "{path} without a token");
        assert!(body.contains("\"error\""), "{path}: {body}");
        assert_eq!(
            http_get(&http, path, Some("auth-test-token-wrong")).0,
            401,
            "{path} wrong token"
        );
    }
    assert_eq!(http_get(&http, "/role", Some(TOKEN)).0, 200);
    let (status, body) = http_get(&http, "/get_all_segments", Some(TOKEN));
    assert_eq!(status, 200);
    assert!(body.contains("service_id"), "{body}");
    assert_eq!(http_get(&http, "/health", None), (200, "ok".to_string()));
}

#[derive(Debug)]
enum Run {
    /// It exited: success, and what it wrote to stderr.
    Exited(bool, String),
    /// `ready` held while it ran (it was then killed).
    Ready,
}

/// Runs `mmc` with `args` until it exits or `ready()` holds; panics when
/// neither happens within 20 s.
fn run_until(args: &[&str], ready: impl Fn() -> bool) -> Run {
    let mut child = Command::new(MMC)
        .args(args)
        .env_remove("MMC_META_CONFIG_PATH")
        .env_remove("MMC_LOCAL_CONFIG_PATH")
        .env_remove("MMC_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return Run::Exited(st.success(), err);
        }
        let ready = ready();
        if ready || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            assert!(ready, "mmc {args:?} neither exited nor became ready in 20 s");
            return Run::Ready;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stderr of a run that must have failed.
fn failed(r: Run) -> String {
    match r {
        Run::Exited(false, err) => err,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn exposed_addresses_need_a_token_or_insecure() {
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let local = format!("127.0.0.1:{port}");
    let never = || false;
    // Without a token: exits at once, naming the address and the remedies.
    let err = failed(run_until(&["meta", "--listen", &listen, "--http", ""], never));
    for needle in [
        listen.as_str(),
        "meta.listen",
        "--insecure",
        "--token-file",
        "security.token",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from {err}");
    }
    // The HTTP address counts too.
    let http = format!("0.0.0.0:{}", free_port());
    let err = failed(run_until(
        &[
            "meta",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--http",
            &http,
        ],
        never,
    ));
    assert!(err.contains("meta.http_listen") && err.contains(&http), "{err}");
    // A provider's transfer address likewise (checked before it contacts anyone).
    let err = failed(run_until(
        &[
            "local",
            "--meta",
            "127.0.0.1:1",
            "--dram-size",
            "8MB",
            "--transfer-listen",
            "0.0.0.0:0",
        ],
        never,
    ));
    assert!(
        err.contains("local.transfer_listen") && err.contains("--insecure"),
        "{err}"
    );

    // With --insecure, or with a token, it serves (an open-mode or token
    // handshake succeeds on the port).
    let serving = |token: Option<&'static str>| {
        let local = local.clone();
        move || {
            TcpStream::connect(&local)
                .ok()
                .map(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    client_handshake_blocking(&mut s, token.map(str::as_bytes), Domain::Control).is_ok()
                })
                .unwrap_or(false)
        }
    };
    let r = run_until(
        &["meta", "--listen", &listen, "--http", "", "--insecure"],
        serving(None),
    );
    assert!(matches!(r, Run::Ready), "mmc meta --insecure serves: {r:?}");
    let file = std::env::temp_dir().join(format!("mmc-auth-token-{}", std::process::id()));
    std::fs::write(&file, TOKEN).unwrap();
    let file_arg = file.display().to_string();
    let r = run_until(
        &["meta", "--listen", &listen, "--http", "", "--token-file", &file_arg],
        serving(Some(TOKEN)),
    );
    let _ = std::fs::remove_file(&file);
    assert!(matches!(r, Run::Ready), "mmc meta --token-file serves: {r:?}");
}

/// `mmc stat --json` and `mmc top` (with the token file) show what the
/// MetaService holds, and agree with `/api/v1/status`.
#[test]
fn stat_json_and_top_match_the_status_document() {
    let c = Cluster::start(Opts {
        locals: 2,
        segment: "16MB",
        token: Some(TOKEN.into()),
        http: true,
        ..Opts::default()
    });
    let s = c.client(Protocol::Tcp, 0);
    for i in 0..5 {
        let k = format!("stat-json-{i}");
        s.put(&k, &pattern(&k, 10_000), &PutOptions::default()).unwrap();
    }
    s.close();
    let file = c.dir.join("token");
    let mmc = |args: &[&str]| {
        Command::new(MMC)
            .args(args)
            .args(["--meta", &c.meta_addr, "--token-file"])
            .arg(&file)
            .env_remove("MMC_LOCAL_CONFIG_PATH")
            .env_remove("MMC_TOKEN_FILE")
            .output()
            .unwrap()
    };
    let out = mmc(&["stat", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let st = c.stat().unwrap();
    assert_eq!(v["keys"], 5);
    assert_eq!(v["members"], st.members);
    assert_eq!(v["evictions"], 0);
    assert_eq!(v["leases_active"], st.leases_active);
    let segs = v["segments"].as_array().expect("segments");
    assert_eq!(segs.len(), 2);
    let mut total = 0;
    for (j, s) in segs.iter().zip(&st.segments) {
        assert_eq!(j["service_id"], s.service_id);
        assert_eq!(j["medium"], "dram");
        assert_eq!(j["capacity"], 16 << 20);
        assert_eq!(j["used"], s.used);
        assert_eq!(j["objects"], s.objects);
        total += s.used;
    }
    assert_eq!(v["total"]["capacity"], 32 << 20);
    assert_eq!(v["total"]["used"], total);

    // The HTTP status document says the same.
    let (status, body) = http_get(c.http_addr.as_deref().unwrap(), "/api/v1/status", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["keys"], 5);
    assert_eq!(d["role"], "leader");
    let with_segment: Vec<_> = d["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["segments"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(with_segment.len(), 2);
    for m in with_segment {
        assert_eq!(m["segments"][0]["capacity"], 16 << 20);
    }

    // `mmc top`, two frames, no terminal: plain text with the members.
    let out = mmc(&["top", "--iterations", "2", "--interval-ms", "100"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("mmc top - ").count(), 2, "{text}");
    assert!(text.contains("keys 5") && text.contains("rates: keys +0.0/s"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no escapes when stdout is not a terminal: {text}"
    );

    // Without the token: refused, and the error says so.
    let out = Command::new(MMC)
        .args(["stat", "--json", "--meta", &c.meta_addr])
        .env_remove("MMC_LOCAL_CONFIG_PATH")
        .env_remove("MMC_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stat from"), "{err}");
}
