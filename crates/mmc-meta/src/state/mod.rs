//! The MetaService state machine: every control request is a method here.
//!
//! It is synchronous and transport-free so it can be driven directly by
//! tests with a [`ManualClock`](crate::clock::ManualClock). Locks are taken in
//! one order only: an index shard first, then the membership; never the
//! reverse. The server (`server.rs`) adds the network, the periodic
//! [`MetaState::tick`] and the waiting that alloc and ledger polls need.
//!
//! Layout: this file holds the state ([`MetaState`], its tunables and
//! counters) and what the parts share; each request family is a file of
//! `impl MetaState` methods: `membership` (join, heartbeats, ledger polls,
//! leaving and death), `recovery` (ledgers that come back, leaderships,
//! tombstones), `writes` (alloc, eviction for space, commit), `reads`
//! (lookups and leases), `removal`, `housekeeping` (the periodic tick) and
//! `introspection` (statistics and listings).

/// Target of the audit log: one INFO line per membership change (join,
/// leave, declared dead) with the service id, host and transfer address.
pub const AUDIT_TARGET: &str = "mmc_meta::audit";

use crate::clock::Clock;
use crate::index::Index;
use crate::membership::Membership;
use crate::object::{first_object_id, Object, Replica};
use crate::returns::Returns;
use mmc_wire::message::{PeerInfo, Placement};
use mmc_wire::{Result, ServiceId};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

mod housekeeping;
mod introspection;
mod membership;
mod reads;
mod recovery;
mod removal;
mod writes;

/// Tunables of the state machine (a subset of `MetaConfig`).
#[derive(Debug, Clone)]
pub struct MetaParams {
    pub lease_ms: u64,
    pub put_timeout_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub high_watermark: u8,
    pub low_watermark: u8,
}

impl From<&mmc_config::MetaConfig> for MetaParams {
    fn from(c: &mmc_config::MetaConfig) -> Self {
        MetaParams {
            lease_ms: c.lease_ms,
            put_timeout_ms: c.put_timeout_ms,
            heartbeat_timeout_ms: c.heartbeat_timeout_ms,
            high_watermark: c.evict_high_watermark,
            low_watermark: c.evict_low_watermark,
        }
    }
}

impl Default for MetaParams {
    fn default() -> Self {
        (&mmc_config::MetaConfig::default()).into()
    }
}

/// Result of one alloc attempt for one item.
#[derive(Debug)]
pub enum AllocOutcome {
    Done(Result<Vec<Replica>>),
    /// Space is being reclaimed (eviction freed ranges that wait for their
    /// owner's ledger ack): retry shortly.
    WaitSpace,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub evictions: AtomicU64,
    pub evicted_bytes: AtomicU64,
    pub put_timeouts: AtomicU64,
    pub dead_services: AtomicU64,
}

pub struct MetaState {
    params: MetaParams,
    clock: Arc<dyn Clock>,
    pub(crate) index: Index,
    pub(crate) members: Mutex<Membership>,
    next_object_id: AtomicU64,
    /// In-flight writes by object id (ids grow with time): (since_ms, hash
    /// of the key in the index).
    /// Entries leave at commit or revoke, so only writes in flight cost memory.
    writing: Mutex<BTreeMap<u64, (u64, u64)>>,
    /// Removed or evicted objects whose leases are still live.
    zombies: Mutex<Vec<Object>>,
    /// Drains (graceful scale-in) by provider, running and finished
    /// (`drain.rs`).
    pub(crate) drains: Mutex<crate::drain::Drains>,
    /// What a ledger that comes back may still restore (`returns.rs`).
    /// Locked after every other lock, never before one.
    returns: Mutex<Returns>,
    /// Whether removes must leave tombstones (a ledger may still come
    /// back); written under the `returns` lock.
    recording: AtomicBool,
    pub counters: Counters,
}

/// Maps service ids to indexes of a response's peer list.
#[derive(Default)]
pub(crate) struct PeerTable {
    ids: Vec<ServiceId>,
}

impl PeerTable {
    pub(crate) fn index_of(&mut self, id: ServiceId) -> u16 {
        match self.ids.iter().position(|&x| x == id) {
            Some(i) => i as u16,
            None => {
                self.ids.push(id);
                (self.ids.len() - 1) as u16
            }
        }
    }

    pub(crate) fn resolve(&self, m: &Membership) -> Vec<Option<PeerInfo>> {
        self.ids
            .iter()
            .map(|id| m.members.get(id).map(|mem| mem.info.clone()))
            .collect()
    }
}

fn placements(peers: &mut PeerTable, replicas: &[Replica]) -> Vec<Placement> {
    replicas
        .iter()
        .map(|r| Placement {
            peer: peers.index_of(r.service),
            offset: r.offset,
        })
        .collect()
}

impl MetaState {
    pub fn new(params: MetaParams, clock: Arc<dyn Clock>) -> Self {
        let st = MetaState {
            params,
            clock,
            index: Index::default(),
            members: Mutex::new(Membership::default()),
            next_object_id: AtomicU64::new(first_object_id()),
            writing: Mutex::new(BTreeMap::new()),
            zombies: Mutex::new(Vec::new()),
            drains: Mutex::new(crate::drain::Drains::default()),
            returns: Mutex::new(Returns::default()),
            recording: AtomicBool::new(false),
            counters: Counters::default(),
        };
        st.begin_recovery_window();
        st
    }

    pub fn params(&self) -> &MetaParams {
        &self.params
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// Placeholder for a peer that left between two locks; never referenced.
pub(crate) fn vanished_peer() -> PeerInfo {
    PeerInfo {
        service_id: 0,
        host_id: 0,
        transfer_addr: String::new(),
        segment: None,
    }
}

/// Longest lease a reader may ask for (`LookupLease`): one hour.
pub const MAX_ASKED_LEASE_MS: u64 = 3_600_000;

/// The lease a `LookupLease` asking for `asked` ms gets: the configured
/// `default_ms` for 0, else `asked` capped at [`MAX_ASKED_LEASE_MS`].
pub fn lease_for(default_ms: u64, asked: u64) -> u64 {
    if asked == 0 {
        default_ms
    } else {
        asked.min(MAX_ASKED_LEASE_MS)
    }
}
