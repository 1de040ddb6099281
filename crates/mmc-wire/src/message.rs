//! Control-RPC messages between LocalServices (and clients) and the MetaService.
//!
//! Every batch operation is a single request carrying all its keys and a
//! single response carrying one result per key, in the same order.
//! Peer descriptors are sent once per response and referenced by index.

use crate::error::{Error, Result};
use crate::types::{HostId, Medium, ServiceId};
use serde::{Deserialize, Serialize};

/// What a memory-providing LocalService contributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDesc {
    /// Name other LocalServices on the same host open to map the segment.
    pub name: String,
    pub medium: Medium,
    pub size: u64,
    /// The random nonce in the segment's trailer: a peer that opens `name`
    /// maps it only when the file there carries this nonce (and is the
    /// owner's sealed memfd).
    pub nonce: u64,
}

/// How to reach a LocalService's segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub service_id: ServiceId,
    pub host_id: HostId,
    /// `host:port` of its transfer server (empty for a pure client).
    pub transfer_addr: String,
    pub segment: Option<SegmentDesc>,
}

/// One committed replica recorded in the segment owner's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Shared, not copied, between the MetaService's ledger queue and the
    /// polls that hand it out (encoded as a plain string).
    pub key: std::sync::Arc<str>,
    pub offset: u64,
    pub size: u64,
    /// The object instance this replica belongs to (the MetaService's
    /// object id, unique across restarts). Recovery merges replicas only
    /// into the object with this very id, never into another put of the key.
    pub object_id: u64,
}

/// A change to a segment owner's ledger, pushed by the MetaService.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerOp {
    Add(LedgerEntry),
    Del { offset: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterReq {
    pub host_id: HostId,
    pub transfer_addr: String,
    pub segment: Option<SegmentDesc>,
    /// The id this LocalService had before (re-registration after a
    /// MetaService restart or failover); honoured when free.
    pub prev_service_id: Option<ServiceId>,
    /// True when ledger entries follow in `Recover` requests: the segment is
    /// not allocatable until the last chunk arrives.
    pub recovering: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocItem {
    pub key: String,
    pub size: u64,
    pub replicas: u32,
    /// Service ids to place replicas on first, in order.
    pub preferred: Vec<ServiceId>,
}

/// A replica location: an index into the response's peer list and an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub peer: u16,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    pub size: u64,
    /// Identifies this object instance; echoed when releasing the lease.
    pub object_id: u64,
    pub replicas: Vec<Placement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub size: u64,
    pub replicas: Vec<(ServiceId, Medium)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentStat {
    pub service_id: ServiceId,
    pub host_id: HostId,
    pub transfer_addr: String,
    pub medium: Medium,
    pub capacity: u64,
    pub used: u64,
    pub objects: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStat {
    pub members: u32,
    pub keys: u64,
    pub segments: Vec<SegmentStat>,
    pub evictions: u64,
    pub leases_active: u64,
}

/// One object a draining provider copies out of its segment: the bytes at
/// `src_offset` (`size` of them) go to `dst` (an index into the plan's peer
/// table), then the move is reported in `DrainCommit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainMove {
    pub key: String,
    pub object_id: u64,
    pub size: u64,
    pub src_offset: u64,
    pub dst: Placement,
}

/// An object a drain could not move, and why (no room on the other
/// providers, a failed copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainUnmoved {
    pub key: String,
    pub size: u64,
    pub reason: String,
}

/// Where a drain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrainState {
    /// Objects are being copied off the provider.
    Running,
    /// Everything was moved; the provider is waiting for the read leases
    /// on its replicas to lapse before it leaves.
    Leaving,
    /// Everything was moved and the provider has left.
    Done,
    /// Some objects could not be moved (see `unmoved`): the provider stays,
    /// holding them, and takes allocations again.
    Incomplete,
    /// The provider left or died before the drain finished, or the
    /// MetaService that ran it lost leadership.
    Aborted,
}

impl DrainState {
    pub fn name(self) -> &'static str {
        match self {
            DrainState::Running => "running",
            DrainState::Leaving => "leaving",
            DrainState::Done => "done",
            DrainState::Incomplete => "incomplete",
            DrainState::Aborted => "aborted",
        }
    }

    /// True once the drain will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, DrainState::Done | DrainState::Incomplete | DrainState::Aborted)
    }
}

/// The result (or progress) of a drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    pub service_id: ServiceId,
    pub state: DrainState,
    /// Objects whose only replica was on the provider, copied elsewhere.
    pub moved: u64,
    /// Replicas dropped from the provider because their object had another
    /// replica elsewhere.
    pub dropped_replicas: u64,
    /// Objects that could not be moved (they stay on the provider).
    pub unmoved: Vec<DrainUnmoved>,
    /// A sentence for the operator (why it aborted, what to do).
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Register(RegisterReq),
    Recover {
        service_id: ServiceId,
        entries: Vec<LedgerEntry>,
        done: bool,
    },
    Heartbeat {
        service_id: ServiceId,
    },
    /// Long poll: returns ledger ops after `acked` (waiting up to a second
    /// for some); acknowledges every op up to `acked`, counted in ledger
    /// `epoch` (the one `Registered` gave; an ack of another epoch, counted
    /// against an earlier MetaService, acknowledges nothing).
    LedgerPoll {
        service_id: ServiceId,
        epoch: u64,
        acked: u64,
    },
    Unregister {
        service_id: ServiceId,
    },
    Alloc {
        writer: ServiceId,
        items: Vec<AllocItem>,
    },
    /// Ends writes begun by `Alloc`: commits some keys, revokes others.
    Finish {
        writer: ServiceId,
        commit: Vec<String>,
        revoke: Vec<String>,
    },
    Lookup {
        reader: ServiceId,
        keys: Vec<String>,
    },
    ReleaseLeases {
        reader: ServiceId,
        leases: Vec<(String, u64)>,
    },
    Exist {
        keys: Vec<String>,
    },
    KeyInfo {
        keys: Vec<String>,
    },
    Remove {
        keys: Vec<String>,
    },
    RemoveAll,
    Members,
    Stat,
    /// Lists readable keys in byte order, up to `limit` of those after the
    /// key `after` (from the first key when `None`). Paging with the last
    /// key returned never skips nor repeats a key that exists during the
    /// whole scan, whatever reads and writes happen meanwhile.
    ListKeys {
        after: Option<String>,
        limit: u32,
    },
    /// Offers a shared-memory ring pair ([`crate::shm_ring`]) for this
    /// connection's frames. Sent first and alone; answered `Ok` (every later
    /// frame in both directions goes through the rings) or `Failed` (the
    /// connection stays on TCP).
    AttachRing {
        name: String,
        nonce: u64,
    },
    /// A [`Request::Lookup`] whose leases last `lease_ms` (the layer-wise
    /// `batch_add_lease`); the MetaService caps it at its longest lease, and
    /// 0 means its configured `lease_ms`. Answered [`Response::Lookup`].
    LookupLease {
        reader: ServiceId,
        keys: Vec<String>,
        lease_ms: u64,
    },
    /// Starts draining a memory provider (graceful scale-in): no new
    /// allocations there, its objects move to other providers, then it
    /// leaves. Answered with the drain's report (state `Running`).
    Drain {
        service_id: ServiceId,
    },
    /// The report of the drain of `service_id` (running or finished).
    DrainStatus {
        service_id: ServiceId,
    },
    /// From the draining provider: the next objects to copy, at most `max`.
    DrainPlan {
        service_id: ServiceId,
        max: u32,
    },
    /// From the draining provider: copies done (key, object id) and failed
    /// (key, object id, why).
    DrainCommit {
        service_id: ServiceId,
        moved: Vec<(String, u64)>,
        failed: Vec<(String, u64, String)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The whole request failed.
    Failed(Error),
    Ok,
    Registered {
        service_id: ServiceId,
        lease_ms: u64,
        members_epoch: u64,
        /// The epoch of this registration's ledger: every `LedgerPoll`
        /// carries it (0 for a service without a segment).
        ledger_epoch: u64,
        /// The answering leader's term (see [`Response::leader_term`]).
        term: u64,
    },
    HeartbeatAck {
        /// False when the MetaService does not know this service (it
        /// restarted or failed over): the LocalService must register again.
        known: bool,
        members_epoch: u64,
        term: u64,
        /// The service is being drained: it should ask for `DrainPlan`s.
        draining: bool,
    },
    LedgerOps {
        /// Sequence number of the last op in `ops` (or `acked` when empty).
        last_seq: u64,
        ops: Vec<LedgerOp>,
        known: bool,
        term: u64,
    },
    Alloc {
        peers: Vec<PeerInfo>,
        items: Vec<Result<Vec<Placement>>>,
        term: u64,
    },
    Finish {
        commit: Vec<Result<()>>,
    },
    Lookup {
        peers: Vec<PeerInfo>,
        lease_ms: u64,
        items: Vec<Result<Located>>,
    },
    Exist(Vec<bool>),
    KeyInfo(Vec<Result<KeyInfo>>),
    Remove(Vec<Result<()>>),
    RemoveAll {
        removed: u64,
    },
    Members {
        epoch: u64,
        peers: Vec<PeerInfo>,
    },
    Stat(ClusterStat),
    Keys {
        keys: Vec<String>,
        /// The last key returned when more may follow (the next page's
        /// `after`); `None` at the end.
        next_cursor: Option<String>,
    },
    Drain(DrainReport),
    DrainPlan {
        peers: Vec<PeerInfo>,
        moves: Vec<DrainMove>,
        /// Nothing is left to plan: the drain is over for this provider.
        done: bool,
        /// With `done`: everything moved, leave the cluster (after the read
        /// leases of `lease_ms` have lapsed). Without: stay (some objects
        /// could not be moved, or the drain was aborted).
        leave: bool,
        term: u64,
    },
}

impl Response {
    /// The leader term a command carries: registrations, heartbeats, ledger
    /// ops and allocations are stamped with the term of the MetaService
    /// leader that issued them (0 outside HA mode). A LocalService refuses
    /// one stamped with a term older than one it has already seen: it comes
    /// from a deposed leader.
    pub fn leader_term(&self) -> Option<u64> {
        match self {
            Response::Registered { term, .. }
            | Response::HeartbeatAck { term, .. }
            | Response::LedgerOps { term, .. }
            | Response::Alloc { term, .. }
            | Response::DrainPlan { term, .. } => Some(*term),
            _ => None,
        }
    }
}
