//! A real etcd (Debian `etcd-server`) for the HA tests: started on free
//! ports with its data in the test's directory, restartable on the same
//! ports and data, stopped by PID on drop.

use super::free_port;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The body of `GET /health` at `addr`, `None` when it does not answer.
fn health_get(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

pub struct Etcd {
    child: Option<Child>,
    pub endpoint: String,
    /// host:port of the client URL.
    pub addr: String,
    ip: String,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
}

impl Etcd {
    /// etcd on 127.0.0.1.
    pub fn start(dir: &Path) -> Etcd {
        Self::start_on(dir, "127.0.0.1")
    }

    /// etcd whose client URL listens on `ip` (peers stay on loopback).
    pub fn start_on(dir: &Path, ip: &str) -> Etcd {
        let (client_port, peer_port) = (free_port(), free_port());
        let mut e = Etcd {
            child: None,
            endpoint: format!("http://{ip}:{client_port}"),
            addr: format!("{ip}:{client_port}"),
            ip: ip.to_string(),
            client_port,
            peer_port,
            dir: dir.to_path_buf(),
        };
        e.spawn();
        e
    }

    /// Starts etcd (again, on the same ports and data directory) and waits
    /// until it reports itself healthy.
    pub fn spawn(&mut self) {
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let child = Command::new("etcd")
            .arg("--name")
            .arg("t")
            .arg("--data-dir")
            .arg(self.dir.join("etcd-data"))
            .args([
                "--listen-client-urls",
                &self.endpoint,
                "--advertise-client-urls",
                &self.endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .arg("--initial-cluster")
            .arg(format!("t={peer_url}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start etcd ({e}): install it with scripts/install-test-deps.sh (Debian etcd-server)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !health_get(&self.addr).is_some_and(|b| b.contains("true")) {
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy; see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops etcd by its PID (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
