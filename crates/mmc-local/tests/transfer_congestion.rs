//! `local.transfer_congestion` reaches the sockets of a real transfer: a
//! provider and a TCP client in this process move a value, and every socket
//! on either end of the provider's transfer port (its listener, the
//! connections it accepted, the client's connections to it) is then
//! inspected with `getsockopt(TCP_CONGESTION)`.

use mmc_config::ByteSize;
use mmc_local::{BlockingObjectStore, LocalConfig, Protocol, PutOptions};
use std::net::SocketAddr;
use std::os::fd::RawFd;

mod common;

fn sockaddr(fd: RawFd, peer: bool) -> Option<SocketAddr> {
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = &mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr;
    // SAFETY: the buffer is a sockaddr_storage of `len` bytes.
    let r = unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    };
    if r != 0 || ss.ss_family as i32 != libc::AF_INET {
        return None;
    }
    // SAFETY: the family says it is a sockaddr_in.
    let sin = unsafe { &*(p as *const libc::sockaddr_in) };
    Some(SocketAddr::from((
        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
        u16::from_be(sin.sin_port),
    )))
}

fn congestion(fd: RawFd) -> Option<String> {
    let mut buf = [0u8; 16];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt into a buffer of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then(|| {
        String::from_utf8_lossy(&buf[..len as usize])
            .trim_end_matches('\0')
            .to_owned()
    })
}

/// (role, congestion control) of every TCP socket of this process with
/// `port` as its local or peer port.
fn sockets_of(port: u16) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        let local = sockaddr(fd, false).map(|a| a.port());
        let peer = sockaddr(fd, true).map(|a| a.port());
        let role = match (local == Some(port), peer) {
            (true, None) => "listener",
            (true, Some(_)) => "accepted",
            (false, Some(p)) if p == port => "client",
            _ => continue,
        };
        if let Some(cc) = congestion(fd) {
            out.push((role, cc));
        }
    }
    out
}

fn run_with(meta: &str, cc: &str) -> Vec<(&'static str, String)> {
    let provider = BlockingObjectStore::connect(LocalConfig {
        meta_addr: meta.into(),
        dram_size: ByteSize(64 << 20),
        protocol: Protocol::Tcp,
        transfer_congestion: cc.into(),
        log_level: Some("warn".into()),
        ..LocalConfig::default()
    })
    .unwrap();
    let client = BlockingObjectStore::connect(LocalConfig {
        meta_addr: meta.into(),
        dram_size: ByteSize(0),
        protocol: Protocol::Tcp,
        transfer_congestion: cc.into(),
        log_level: Some("warn".into()),
        ..LocalConfig::default()
    })
    .unwrap();
    let value: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let key = format!("cc-{cc}");
    client.put(&key, &value, &PutOptions::default()).unwrap();
    assert_eq!(client.get(&key).unwrap(), value);
    let port: SocketAddr = provider.store().local_service().transfer_addr.parse().unwrap();
    let found = sockets_of(port.port());
    client.close();
    provider.close();
    found
}

#[test]
fn transfer_sockets_use_the_configured_congestion_control() {
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .unwrap()
        .trim()
        .to_owned();
    // reno is in every kernel and always allowed; pick the other when it is
    // the default, so the setting is seen to take effect.
    let chosen = if system == "reno" { "cubic" } else { "reno" };
    let (meta, _rt) = common::start_meta("127.0.0.1:0");

    let found = run_with(&meta, chosen);
    for role in ["listener", "accepted", "client"] {
        assert!(found.iter().any(|(r, _)| *r == role), "no {role} socket in {found:?}");
    }
    assert!(found.iter().all(|(_, cc)| cc == chosen), "{found:?} not all {chosen}");

    let found = run_with(&meta, "system");
    assert!(found.iter().any(|(r, _)| *r == "client"), "{found:?}");
    assert!(found.iter().all(|(_, cc)| *cc == system), "{found:?} not all {system}");
}
