//! Result codes and the typed error that maps 1:1 onto them.
//!
//! The numeric values are part of the public contract (Python, C and C++
//! callers compare against them) and must never change.
//!
//! On the wire an error is `{code, detail}` (the result code and the
//! variant's message, empty for variants without one), never the enum's
//! variant index: reordering or adding variants does not change what a peer
//! decodes, and a code this build does not know arrives as
//! [`Error::Other`] naming it. The control frame version
//! (`frame::FRAME_VERSION`) covers this encoding.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Numeric result codes shared by every API surface.
pub mod code {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = -1;
    pub const INVALID_PARAM: i32 = -3000;
    pub const NOT_STARTED: i32 = -3003;
    pub const TIMEOUT: i32 = -3004;
    pub const DUPLICATED_OBJECT: i32 = -3006;
    pub const OBJECT_NOT_EXISTS: i32 = -3007;
    pub const NOT_INITIALIZED: i32 = -3008;
    pub const NOT_ENOUGH_MEMORY: i32 = -3016;
    pub const NOT_CONNECTED_META: i32 = -3017;
    pub const NOT_CONNECTED_LOCAL: i32 = -3018;
    /// Too few live memory providers (LocalServices with a segment that can
    /// take a new object) for the replicas requested: retry once more join.
    pub const NO_PROVIDER: i32 = -3019;
    /// The MetaService reached is not the leader of its HA cluster (a
    /// standby, or a leader that lost its etcd lease); the message names
    /// the leader when known. Retry: clients configured with etcd
    /// endpoints find the new leader on their own.
    pub const NOT_LEADER: i32 = -3020;
    pub const UNMATCHED_KEY: i32 = -3102;
    pub const LEASE_EXPIRED: i32 = -3106;
}

/// Every failure a MemCache operation can report. Each variant has exactly
/// one result code ([`Error::code`]); the message says what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Other(String),
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
    #[error("service not started")]
    NotStarted,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("object already exists")]
    DuplicatedObject,
    #[error("object does not exist")]
    ObjectNotExists,
    #[error("not initialized")]
    NotInitialized,
    #[error("not enough memory: {0}")]
    NotEnoughMemory(String),
    #[error("metaservice unreachable: {0}")]
    NotConnectedMeta(String),
    #[error("localservice unreachable: {0}")]
    NotConnectedLocal(String),
    #[error("no memory provider can take this now: {0}")]
    NoProvider(String),
    #[error("not the metaservice leader: {0}")]
    NotLeader(String),
    #[error("key not found")]
    UnmatchedKey,
    #[error("read lease expired before the copy finished")]
    LeaseExpired,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The integer result code of SPEC section 5.
    pub fn code(&self) -> i32 {
        match self {
            Error::Other(_) => code::ERROR,
            Error::InvalidParam(_) => code::INVALID_PARAM,
            Error::NotStarted => code::NOT_STARTED,
            Error::Timeout(_) => code::TIMEOUT,
            Error::DuplicatedObject => code::DUPLICATED_OBJECT,
            Error::ObjectNotExists => code::OBJECT_NOT_EXISTS,
            Error::NotInitialized => code::NOT_INITIALIZED,
            Error::NotEnoughMemory(_) => code::NOT_ENOUGH_MEMORY,
            Error::NotConnectedMeta(_) => code::NOT_CONNECTED_META,
            Error::NotConnectedLocal(_) => code::NOT_CONNECTED_LOCAL,
            Error::NoProvider(_) => code::NO_PROVIDER,
            Error::NotLeader(_) => code::NOT_LEADER,
            Error::UnmatchedKey => code::UNMATCHED_KEY,
            Error::LeaseExpired => code::LEASE_EXPIRED,
        }
    }

    /// The variant's own message ("" for variants without one).
    pub fn detail(&self) -> &str {
        match self {
            Error::Other(m)
            | Error::InvalidParam(m)
            | Error::Timeout(m)
            | Error::NotEnoughMemory(m)
            | Error::NotConnectedMeta(m)
            | Error::NotConnectedLocal(m)
            | Error::NoProvider(m)
            | Error::NotLeader(m) => m,
            Error::NotStarted
            | Error::DuplicatedObject
            | Error::ObjectNotExists
            | Error::NotInitialized
            | Error::UnmatchedKey
            | Error::LeaseExpired => "",
        }
    }

    /// The error a peer sent as `{code, detail}`.
    pub fn from_wire(code: i32, detail: String) -> Self {
        match code {
            code::ERROR => Error::Other(detail),
            code::INVALID_PARAM => Error::InvalidParam(detail),
            code::NOT_STARTED => Error::NotStarted,
            code::TIMEOUT => Error::Timeout(detail),
            code::DUPLICATED_OBJECT => Error::DuplicatedObject,
            code::OBJECT_NOT_EXISTS => Error::ObjectNotExists,
            code::NOT_INITIALIZED => Error::NotInitialized,
            code::NOT_ENOUGH_MEMORY => Error::NotEnoughMemory(detail),
            code::NOT_CONNECTED_META => Error::NotConnectedMeta(detail),
            code::NOT_CONNECTED_LOCAL => Error::NotConnectedLocal(detail),
            code::NO_PROVIDER => Error::NoProvider(detail),
            code::NOT_LEADER => Error::NotLeader(detail),
            code::UNMATCHED_KEY => Error::UnmatchedKey,
            code::LEASE_EXPIRED => Error::LeaseExpired,
            other => Error::Other(format!("result code {other} unknown to this build: {detail}")),
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParam(msg.into())
    }

    /// True for failures worth retrying as they are (transport, lease, too
    /// few memory providers alive, a MetaService that is not the leader).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Timeout(_)
                | Error::NotConnectedMeta(_)
                | Error::NotConnectedLocal(_)
                | Error::NoProvider(_)
                | Error::NotLeader(_)
                | Error::LeaseExpired
        )
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.code(), self.detail()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Error {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (code, detail) = <(i32, String)>::deserialize(d)?;
        Ok(Error::from_wire(code, detail))
    }
}

/// Converts a per-item result to its integer code (0 on success).
pub fn to_code<T>(r: &Result<T>) -> i32 {
    match r {
        Ok(_) => code::OK,
        Err(e) => e.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_stable() {
        let all = [
            Error::Other(String::new()),
            Error::InvalidParam(String::new()),
            Error::NotStarted,
            Error::Timeout(String::new()),
            Error::DuplicatedObject,
            Error::ObjectNotExists,
            Error::NotInitialized,
            Error::NotEnoughMemory(String::new()),
            Error::NotConnectedMeta(String::new()),
            Error::NotConnectedLocal(String::new()),
            Error::NoProvider(String::new()),
            Error::NotLeader(String::new()),
            Error::UnmatchedKey,
            Error::LeaseExpired,
        ];
        let codes: Vec<i32> = all.iter().map(Error::code).collect();
        let mut dedup = codes.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), codes.len());
        assert_eq!(Error::NotEnoughMemory(String::new()).code(), -3016);
        assert_eq!(Error::LeaseExpired.code(), -3106);
        assert_eq!(Error::NoProvider(String::new()).code(), -3019);
        assert_eq!(Error::NotLeader(String::new()).code(), -3020);
        assert!(Error::NotLeader(String::new()).is_retryable());
        assert_eq!(to_code::<()>(&Ok(())), 0);
        for e in all {
            assert_eq!(Error::from_wire(e.code(), e.detail().to_string()), e);
        }
    }

    #[test]
    fn the_wire_form_is_code_and_detail() {
        let e = Error::NoProvider("2 replicas, 1 provider".into());
        let bytes = postcard::to_allocvec(&e).unwrap();
        let (code, detail): (i32, String) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!((code, detail.as_str()), (-3019, "2 replicas, 1 provider"));
        assert_eq!(postcard::from_bytes::<Error>(&bytes).unwrap(), e);
        let future = postcard::to_allocvec(&(-3999i32, "new")).unwrap();
        assert_eq!(
            postcard::from_bytes::<Error>(&future).unwrap(),
            Error::Other("result code -3999 unknown to this build: new".into())
        );
    }
}
