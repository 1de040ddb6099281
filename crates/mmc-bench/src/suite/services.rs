//! Service processes a phase starts itself (the cross-host MetaService,
//! Mooncake's master): stopped when dropped, waited for until they listen.

use crate::netns::in_netns;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Waits until something accepts TCP connections on `addr` inside `netns`.
pub fn wait_port(netns: &str, addr: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let a = addr.to_owned();
        let ok = in_netns(netns, move || {
            TcpStream::connect_timeout(&a.parse().ok()?, Duration::from_millis(200)).ok()
        })?;
        if ok.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing listens on {addr} in namespace {netns} after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed by PID when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
