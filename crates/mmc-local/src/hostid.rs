//! Host identity: LocalServices with equal host ids exchange data through
//! shared memory. Derived from the machine id and the network namespace, so
//! processes in different network namespaces count as different hosts.

use mmc_wire::HostId;
use std::hash::{Hash, Hasher};

fn fnv(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The host id from `override_`, or derived from machine id + net namespace.
pub fn host_id(override_: Option<&str>) -> HostId {
    if let Some(o) = override_ {
        return o.parse::<u64>().unwrap_or_else(|_| fnv(o.as_bytes()));
    }
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .unwrap_or_default();
    let netns = std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    fnv(format!("{}|{}", machine.trim(), netns).as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_and_overridable() {
        assert_eq!(super::host_id(None), super::host_id(None));
        assert_eq!(super::host_id(Some("17")), 17);
        assert_ne!(super::host_id(Some("a")), super::host_id(Some("b")));
    }
}
