//! Host identity: LocalServices with equal host ids exchange data through
//! shared memory. Derived from the machine id and the network namespace, so
//! processes in different network namespaces count as different hosts.
//!
//! The hash is FNV-1a 64, written out here, so every build (Rust CLI, Python
//! wheel, C library, whichever compiler made them) derives the same id on
//! the same host; `std`'s `DefaultHasher` promises no such stability.

use mmc_wire::HostId;
use std::os::unix::fs::MetadataExt;

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ b as u64).wrapping_mul(PRIME))
}

/// The identity of this process's network namespace: the inode of
/// `/proc/self/ns/net` (the link text `net:[<inode>]` as a fallback).
fn netns_id() -> String {
    match std::fs::metadata("/proc/self/ns/net") {
        Ok(m) => m.ino().to_string(),
        Err(_) => std::fs::read_link("/proc/self/ns/net")
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    }
}

/// The host id from `override_` (a number as is, any other text hashed), or
/// derived from machine id + network namespace.
pub fn host_id(override_: Option<&str>) -> HostId {
    if let Some(o) = override_ {
        return o.parse::<u64>().unwrap_or_else(|_| fnv1a64(o.as_bytes()));
    }
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .unwrap_or_default();
    fnv1a64(format!("{}|{}", machine.trim(), netns_id()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_answers() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn stable_and_overridable() {
        assert_eq!(host_id(None), host_id(None));
        assert_eq!(host_id(Some("17")), 17);
        assert_eq!(host_id(Some("a")), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(host_id(Some("a")), host_id(Some("b")));
    }

    #[test]
    fn derived_from_machine_and_network_namespace() {
        let netns = netns_id();
        assert!(!netns.is_empty(), "no network namespace id");
        let machine = std::fs::read_to_string("/etc/machine-id")
            .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
            .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
            .unwrap_or_default();
        assert_eq!(host_id(None), fnv1a64(format!("{}|{netns}", machine.trim()).as_bytes()));
    }
}
