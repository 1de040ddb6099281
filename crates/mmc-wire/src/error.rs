//! Result codes and the error every MemCache operation reports.
//!
//! An [`Error`] is a kind ([`ErrorKind`], exactly one result code each), a
//! message saying what went wrong in the words of the layer that saw it,
//! and, when a lower-level failure caused it (an I/O error, a frame or TLS
//! error, a peer's refusal), that failure as its source. Layers add context
//! as the error travels up ([`Error::context`]); callers branch on
//! [`Error::kind`] or [`Error::code`], never on the message.
//!
//! The numeric values are part of the public contract (Python, C and C++
//! callers compare against them) and must never change.
//!
//! On the wire an error is `{code, detail}`: the result code and the whole
//! message including its sources (a source's type does not cross a
//! process), never an enum's variant index. Adding kinds does not change
//! what a peer decodes, and a code this build does not know arrives as
//! [`ErrorKind::Other`] naming it. The control frame version
//! (`frame::FRAME_VERSION`) covers this encoding.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;
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

/// What kind of failure an [`Error`] is: one per result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Anything without a code of its own (`ERROR`, -1).
    Other,
    /// The caller passed something invalid; retrying the same call fails again.
    InvalidParam,
    NotStarted,
    Timeout,
    DuplicatedObject,
    ObjectNotExists,
    NotInitialized,
    NotEnoughMemory,
    /// The MetaService could not be reached (transport, TLS, handshake).
    NotConnectedMeta,
    /// A LocalService (memory provider) could not be reached.
    NotConnectedLocal,
    /// Too few live memory providers for the replicas asked for (retry).
    NoProvider,
    /// The MetaService reached is not the HA leader (retry).
    NotLeader,
    UnmatchedKey,
    LeaseExpired,
}

impl ErrorKind {
    /// Every kind, in code order of the table in docs.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::Other,
        ErrorKind::InvalidParam,
        ErrorKind::NotStarted,
        ErrorKind::Timeout,
        ErrorKind::DuplicatedObject,
        ErrorKind::ObjectNotExists,
        ErrorKind::NotInitialized,
        ErrorKind::NotEnoughMemory,
        ErrorKind::NotConnectedMeta,
        ErrorKind::NotConnectedLocal,
        ErrorKind::NoProvider,
        ErrorKind::NotLeader,
        ErrorKind::UnmatchedKey,
        ErrorKind::LeaseExpired,
    ];

    /// The integer result code (see [`code`]).
    pub const fn code(self) -> i32 {
        match self {
            ErrorKind::Other => code::ERROR,
            ErrorKind::InvalidParam => code::INVALID_PARAM,
            ErrorKind::NotStarted => code::NOT_STARTED,
            ErrorKind::Timeout => code::TIMEOUT,
            ErrorKind::DuplicatedObject => code::DUPLICATED_OBJECT,
            ErrorKind::ObjectNotExists => code::OBJECT_NOT_EXISTS,
            ErrorKind::NotInitialized => code::NOT_INITIALIZED,
            ErrorKind::NotEnoughMemory => code::NOT_ENOUGH_MEMORY,
            ErrorKind::NotConnectedMeta => code::NOT_CONNECTED_META,
            ErrorKind::NotConnectedLocal => code::NOT_CONNECTED_LOCAL,
            ErrorKind::NoProvider => code::NO_PROVIDER,
            ErrorKind::NotLeader => code::NOT_LEADER,
            ErrorKind::UnmatchedKey => code::UNMATCHED_KEY,
            ErrorKind::LeaseExpired => code::LEASE_EXPIRED,
        }
    }

    /// The kind of a result code, `None` for `OK` and codes this build
    /// does not know.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// What the kind says on its own; the message follows it.
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Other => "",
            ErrorKind::InvalidParam => "invalid parameter",
            ErrorKind::NotStarted => "service not started",
            ErrorKind::Timeout => "timed out",
            ErrorKind::DuplicatedObject => "object already exists",
            ErrorKind::ObjectNotExists => "object does not exist",
            ErrorKind::NotInitialized => "not initialized",
            ErrorKind::NotEnoughMemory => "not enough memory",
            ErrorKind::NotConnectedMeta => "metaservice unreachable",
            ErrorKind::NotConnectedLocal => "localservice unreachable",
            ErrorKind::NoProvider => "no memory provider can take this now",
            ErrorKind::NotLeader => "not the metaservice leader",
            ErrorKind::UnmatchedKey => "key not found",
            ErrorKind::LeaseExpired => "read lease expired before the copy finished",
        }
    }

    /// True for failures worth retrying as they are (transport, lease, too
    /// few memory providers alive, a MetaService that is not the leader).
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout
                | ErrorKind::NotConnectedMeta
                | ErrorKind::NotConnectedLocal
                | ErrorKind::NoProvider
                | ErrorKind::NotLeader
                | ErrorKind::LeaseExpired
        )
    }
}

/// The failure behind an error, kept for `std::error::Error::source` and
/// shown after the message.
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Every failure a MemCache operation can report: a kind (its result
/// code), a message and, optionally, the lower-level failure that caused
/// it. Cheap to clone (a batch reports one error to several keys).
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` saying `message` ("" when the kind says it all).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`; `message` says what was
    /// being done ("connect to 10.0.0.1:5000"), the source what failed.
    pub fn caused_by(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// A caller's invalid parameter.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidParam, message)
    }

    /// A failure without a code of its own.
    pub fn other(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Other, message)
    }

    /// The same error with `context` (what the caller was doing) in front
    /// of its message; kind and source are kept.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = if self.message.is_empty() {
            context.to_string()
        } else {
            format!("{context}: {}", self.message)
        };
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The integer result code.
    pub fn code(&self) -> i32 {
        self.kind.code()
    }

    /// The message this layer gave, without the kind's words or the source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What a peer is told besides the code: the message followed by every
    /// source in the chain ("" for a bare kind).
    pub fn detail(&self) -> String {
        let mut d = self.message.clone();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self.source.as_deref().map(|s| s as _);
        while let Some(e) = next {
            if !d.is_empty() {
                d.push_str(": ");
            }
            d.push_str(&e.to_string());
            next = e.source();
        }
        d
    }

    /// The error a peer sent as `{code, detail}`.
    pub fn from_wire(code: i32, detail: String) -> Self {
        match ErrorKind::from_code(code) {
            Some(kind) => Error::new(kind, detail),
            None => Error::other(format!("result code {code} unknown to this build: {detail}")),
        }
    }

    /// True for failures worth retrying as they are ([`ErrorKind::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind, "")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = self.kind.describe();
        let detail = self.detail();
        match (words.is_empty(), detail.is_empty()) {
            (_, true) => f.write_str(words),
            (true, false) => f.write_str(&detail),
            (false, false) => write!(f, "{words}: {detail}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

/// Two errors are equal when they would read the same to a peer: same kind
/// and same detail (a source compares by what it says).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.detail() == other.detail()
    }
}

impl Eq for Error {}

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
        let codes: Vec<i32> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        let mut dedup = codes.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), codes.len());
        assert_eq!(ErrorKind::NotEnoughMemory.code(), -3016);
        assert_eq!(ErrorKind::LeaseExpired.code(), -3106);
        assert_eq!(ErrorKind::NoProvider.code(), -3019);
        assert_eq!(ErrorKind::NotLeader.code(), -3020);
        assert!(Error::from(ErrorKind::NotLeader).is_retryable());
        assert!(!Error::invalid("x").is_retryable());
        assert_eq!(to_code::<()>(&Ok(())), 0);
        assert_eq!(ErrorKind::from_code(code::OK), None);
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
            let e = Error::new(kind, "m");
            assert_eq!(Error::from_wire(e.code(), e.detail()), e);
        }
    }

    #[test]
    fn the_message_follows_the_kind_and_the_source_follows_the_message() {
        assert_eq!(Error::invalid("bad key").to_string(), "invalid parameter: bad key");
        assert_eq!(
            Error::from(ErrorKind::ObjectNotExists).to_string(),
            "object does not exist"
        );
        assert_eq!(Error::other("disk on fire").to_string(), "disk on fire");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::caused_by(ErrorKind::NotConnectedMeta, "connect to 10.0.0.1:5000", io).context("register");
        assert_eq!(e.kind(), ErrorKind::NotConnectedMeta);
        assert_eq!(e.message(), "register: connect to 10.0.0.1:5000");
        assert_eq!(e.detail(), "register: connect to 10.0.0.1:5000: refused");
        assert_eq!(
            e.to_string(),
            "metaservice unreachable: register: connect to 10.0.0.1:5000: refused"
        );
        let src = std::error::Error::source(&e).expect("the io error is the source");
        assert_eq!(
            src.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(
            Error::from(ErrorKind::LeaseExpired).context("key k").to_string(),
            "read lease expired before the copy finished: key k"
        );
    }

    #[test]
    fn the_wire_form_is_code_and_detail() {
        let e = Error::new(ErrorKind::NoProvider, "2 replicas, 1 provider");
        let bytes = postcard::to_allocvec(&e).unwrap();
        let (code, detail): (i32, String) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!((code, detail.as_str()), (-3019, "2 replicas, 1 provider"));
        assert_eq!(postcard::from_bytes::<Error>(&bytes).unwrap(), e);
        let io = std::io::Error::other("broken pipe");
        let caused = Error::caused_by(ErrorKind::NotConnectedLocal, "transfer with p1", io);
        let back: Error = postcard::from_bytes(&postcard::to_allocvec(&caused).unwrap()).unwrap();
        assert_eq!(back.kind(), ErrorKind::NotConnectedLocal);
        assert_eq!(back.message(), "transfer with p1: broken pipe");
        assert_eq!(back, caused);
        let future = postcard::to_allocvec(&(-3999i32, "new")).unwrap();
        assert_eq!(
            postcard::from_bytes::<Error>(&future).unwrap(),
            Error::other("result code -3999 unknown to this build: new")
        );
    }
}
