//! Identifiers and limits shared by the MetaService and LocalServices.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The id the MetaService gives a LocalService when it joins (its "rank").
/// Segment ids are equal to the service id of the segment's owner.
pub type ServiceId = u32;

/// Identifies a machine: LocalServices with the same host id share memory
/// directly through shm.
pub type HostId = u64;

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Most keys accepted in one batch call.
pub const MAX_BATCH: usize = 16384;
/// Most replicas one object may have.
pub const MAX_REPLICAS: u32 = 8;
/// Highest service id: service ids double as 16-bit segment ids in a [`Gva`].
pub const MAX_SERVICE_ID: ServiceId = 0xFFFF;

/// Where a segment lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Medium {
    Dram,
    Hbm,
    Ssd,
}

impl Medium {
    pub const ALL: [Medium; 3] = [Medium::Dram, Medium::Hbm, Medium::Ssd];

    /// Numeric medium as reported by `KeyInfo.type_list()` (0 = DRAM).
    pub fn as_u8(self) -> u8 {
        match self {
            Medium::Dram => 0,
            Medium::Hbm => 1,
            Medium::Ssd => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Medium::Dram => "dram",
            Medium::Hbm => "hbm",
            Medium::Ssd => "ssd",
        }
    }
}

/// A global address: the segment (16 bits, equal to the owner's service id)
/// and the byte offset inside it (48 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gva(pub u64);

impl Gva {
    pub const OFFSET_BITS: u32 = 48;

    pub fn new(segment: ServiceId, offset: u64) -> Self {
        debug_assert!(segment <= MAX_SERVICE_ID);
        debug_assert!(offset < (1 << Self::OFFSET_BITS));
        Gva(((segment as u64) << Self::OFFSET_BITS) | offset)
    }

    pub fn segment(self) -> ServiceId {
        (self.0 >> Self::OFFSET_BITS) as ServiceId
    }

    pub fn offset(self) -> u64 {
        self.0 & ((1 << Self::OFFSET_BITS) - 1)
    }
}

impl std::fmt::Display for Gva {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{:#x}", self.segment(), self.offset())
    }
}

/// Whether `key` follows the rules [`validate_key`] checks, without
/// building an error (for callers that only need the answer).
#[inline]
pub fn key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

/// Checks a key against the rules: UTF-8 (guaranteed by `&str`), 1..=256 bytes.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "key is {} bytes, the limit is {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a batch length: 1..=16384 keys.
pub fn validate_batch_len(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("batch is empty"));
    }
    if n > MAX_BATCH {
        return Err(Error::invalid(format!("batch has {n} keys, the limit is {MAX_BATCH}")));
    }
    Ok(())
}

/// Checks a replica count: 1..=8.
pub fn validate_replicas(n: u32) -> Result<()> {
    if n == 0 || n > MAX_REPLICAS {
        return Err(Error::invalid(format!(
            "replica count {n} is outside 1..={MAX_REPLICAS}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gva_round_trips() {
        let g = Gva::new(0xFFFF, (1 << 48) - 1);
        assert_eq!(g.segment(), 0xFFFF);
        assert_eq!(g.offset(), (1 << 48) - 1);
        let g = Gva::new(7, 4096);
        assert_eq!((g.segment(), g.offset()), (7, 4096));
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("").is_err());
        assert!(validate_key(&"k".repeat(256)).is_ok());
        assert!(validate_key(&"k".repeat(257)).is_err());
        assert!(validate_batch_len(16384).is_ok());
        assert!(validate_batch_len(16385).is_err());
        assert!(validate_replicas(0).is_err());
        assert!(validate_replicas(8).is_ok());
        assert!(validate_replicas(9).is_err());
    }
}
