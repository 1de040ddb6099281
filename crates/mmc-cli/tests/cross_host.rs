//! Two simulated hosts: network namespaces joined by a veth pair. The
//! LocalServices in different namespaces get different host ids and move
//! data over TCP; the ones sharing a namespace use shared memory.
//!
//! The services listen on the veth addresses, not loopback, so the cluster
//! runs with a token: every `mmc` command here gets it through
//! `MMC_TOKEN_FILE`.
//!
//! Needs root and iproute2 (`ip netns`), as CI has. Set MMC_SKIP_NETNS=1 to
//! skip on machines without them.

mod common;

use common::{free_port, pattern, MMC};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Netns {
    names: [String; 2],
    /// The cluster token file every command of the test uses.
    token_file: std::path::PathBuf,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(
        st.success(),
        "ip {args:?} failed (needs root and iproute2; MMC_SKIP_NETNS=1 skips this test)"
    );
}

impl Netns {
    /// Two namespaces, 10.231.X.1 and 10.231.X.2, joined by a veth pair.
    fn create(subnet: u8) -> Netns {
        let tag = format!("{}-{subnet}", std::process::id());
        let names = [format!("mmc-a-{tag}"), format!("mmc-b-{tag}")];
        for n in &names {
            ip(&["netns", "add", n]);
        }
        let (va, vb) = (
            format!("mva{subnet}-{}", std::process::id() % 10000),
            format!("mvb{subnet}-{}", std::process::id() % 10000),
        );
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", &names[0]]);
        ip(&["link", "set", &vb, "netns", &names[1]]);
        for (n, v, a) in [(&names[0], &va, 1), (&names[1], &vb, 2)] {
            ip(&["-n", n, "addr", "add", &format!("10.231.{subnet}.{a}/24"), "dev", v]);
            ip(&["-n", n, "link", "set", v, "up"]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        let token_file = std::env::temp_dir().join(format!("mmc-cross-token-{tag}"));
        std::fs::write(&token_file, mmc_wire::auth::generate_token().unwrap()).unwrap();
        Netns { names, token_file }
    }

    fn cmd(&self, i: usize) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i], MMC]);
        c.env("MMC_TOKEN_FILE", &self.token_file);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        let _ = std::fs::remove_file(&self.token_file);
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_local(ns: &Netns, i: usize, meta: &str, listen: &str) -> (Kill, u32) {
    let mut child = ns
        .cmd(i)
        .args([
            "local",
            "--meta",
            meta,
            "--dram-size",
            "32MB",
            "--transfer-listen",
            listen,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    (Kill(child), id)
}

#[test]
fn namespaces_are_hosts_and_exchange_data_over_tcp() {
    if std::env::var_os("MMC_SKIP_NETNS").is_some() {
        eprintln!("MMC_SKIP_NETNS set: skipping");
        return;
    }
    let ns = Netns::create(((std::process::id() % 200) + 20) as u8);
    let subnet = ns.names[0].rsplit('-').next().unwrap().to_owned();
    let meta = format!("10.231.{subnet}.1:{}", free_port());
    let _meta = Kill(
        ns.cmd(0)
            .args(["meta", "--listen", &meta, "--http", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = ns
            .cmd(1)
            .args(["stat", "--meta", &meta])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if ok.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metaservice unreachable across the veth pair"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_a, id_a) = start_local(&ns, 0, &meta, &format!("10.231.{subnet}.1:0"));
    let (_b, id_b) = start_local(&ns, 1, &meta, &format!("10.231.{subnet}.2:0"));

    // Two different host ids in the cluster state.
    let out = ns.cmd(1).args(["stat", "--meta", &meta]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let hosts: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(&id_a.to_string()) || l.trim_start().starts_with(&id_b.to_string()))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(hosts.len(), 2, "two namespaces are two hosts:\n{text}");

    // Write from namespace B onto A's segment (TCP), read it back from A's
    // namespace (shm) and from B's (TCP), and the other way round.
    let value = pattern("cross-host", 5 << 20);
    let put = |i: usize, key: &str, replicas: &str| {
        let mut c = ns
            .cmd(i)
            .args(["put", "--meta", &meta, "--replicas", replicas, key, "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&value).unwrap();
        assert!(c.wait().unwrap().success(), "put {key} from namespace {i}");
    };
    let get = |i: usize, key: &str| {
        let out = ns.cmd(i).args(["get", "--meta", &meta, key]).output().unwrap();
        assert!(
            out.status.success(),
            "get {key} from namespace {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == value, "bytes of {key} read from namespace {i} differ");
    };
    put(1, "both-replicas", "2");
    get(0, "both-replicas");
    get(1, "both-replicas");
    for i in 0..4 {
        let k = format!("k{i}");
        put(i % 2, &k, "1");
        get(0, &k);
        get(1, &k);
    }
    let missing = ns.cmd(0).args(["get", "--meta", &meta, "absent"]).output().unwrap();
    assert!(!missing.status.success(), "a missing key exits non-zero");
}
