//! The value checks shared by [`MetaConfig::validate`](crate::MetaConfig::validate)
//! and [`LocalConfig::validate`](crate::LocalConfig::validate): addresses,
//! ranges, names. Each error names the key and what it accepts.

use crate::{invalid, ConfigError};

/// Checks an HA cluster name: 1 to 128 characters of `[A-Za-z0-9._-]`.
pub(crate) fn check_cluster_name(key: &'static str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{v}` must be 1 to 128 characters of A-Z a-z 0-9 . _ -"),
        ))
    }
}

pub(crate) fn check_addr(key: &'static str, v: &str) -> Result<(), ConfigError> {
    v.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| invalid(key, format!("`{v}` is not an ip:port socket address")))
}

pub(crate) fn check_range(key: &'static str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(invalid(key, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(())
}

/// A congestion-control name as the kernel spells them (`TCP_CA_NAME_MAX`
/// is 16 bytes with the terminator), or `system`.
pub(crate) fn check_congestion(key: &'static str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty() && v.len() < 16 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{v}` is not a congestion-control name (like cubic, reno, bbr) or `system`"),
        ))
    }
}
