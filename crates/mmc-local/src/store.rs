//! The client API's handle, [`ObjectStore`]: its shared state (the
//! LocalService, the transfer client, mappings of peers' segments, the
//! lease-release queue), connect and close, the checks every MetaService
//! reply goes through, and the choice of data path to a peer
//! ([`ObjectStore::local_view`]). The operations live in the submodules:
//! `put` (the put path), `get` (the get path), `control` (metadata and
//! administration requests), `background` (the tasks a store runs) and
//! `blocking` ([`BlockingObjectStore`]).
//!
//! A put is one `Alloc` RPC for the whole batch, the data copies (a memcpy
//! into a segment mapped here; the TCP writes to each remote peer together,
//! streamed over the transfer client's lanes, while the memcpys run), then
//! one `Finish` RPC committing what was copied and revoking what was not. A
//! get is one `Lookup` RPC (which grants read leases), the copies from the
//! nearest replica straight into the caller's buffers (likewise: memcpy, or
//! one streamed read per remote peer; other replicas on failure), a lease
//! check, and an asynchronous batched lease release.
//! Per-key results keep the batch order; a whole-batch failure (bad batch
//! length, MetaService unreachable) is the outer `Err`.
//!
//! Nothing in a MetaService reply is trusted: a reply whose item count
//! differs from the request's is a whole-batch error, and a placement whose
//! peer index is out of the reply's peer table, or whose range does not fit
//! that peer's segment, fails its key ([`malformed`]), never a panic.

mod background;
mod blocking;
mod control;
mod get;
mod put;

pub use blocking::BlockingObjectStore;

use crate::clock::SystemClock;
use crate::segment::Segment;
use crate::service::LocalService;
use crate::transfer::client::TransferClient;
use background::{drain_task, prune_mappings, release_leases};
use mmc_config::{LocalConfig, Protocol};
use mmc_wire::message::{PeerInfo, Placement};
use mmc_wire::{Error, ErrorKind, Result, ServiceId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;

/// How a put places its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    /// Number of replicas, 1..=8, each on a different LocalService.
    pub replicas: u32,
    /// Service ids to place replicas on first.
    pub preferred: Vec<ServiceId>,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            replicas: 1,
            preferred: Vec::new(),
        }
    }
}

/// Per-key results of a batch.
pub type BatchResult<T = ()> = Result<Vec<Result<T>>>;

/// Async client handle: `Send + Sync`, cheap to clone.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    svc: Arc<LocalService>,
    xfer: TransferClient,
    protocol: Protocol,
    prefault: bool,
    async_commit: bool,
    peers: Mutex<PeerMaps>,
    lease_tx: mpsc::UnboundedSender<(String, u64)>,
    /// Addresses handed out by the layer-wise API (`direct.rs`).
    regions: Mutex<crate::direct::Regions>,
    /// The clock of read leases (zero-sized: the real clock).
    clock: StoreClock,
}

/// The clock a store's lease checks read (see `clock.rs`).
pub(crate) type StoreClock = SystemClock;

/// Mappings of other LocalServices' segments, kept while they are members.
#[derive(Default)]
struct PeerMaps {
    maps: HashMap<ServiceId, Arc<Segment>>,
    /// Same-host segments that failed [`Segment::open`]'s checks, by the
    /// (name, nonce) refused: those peers are reached over TCP, the warning
    /// is logged once, and the open is not retried unless they register a
    /// different segment.
    refused: HashMap<ServiceId, (String, u64)>,
}

/// The error of a MetaService reply that does not have the shape its
/// request calls for.
pub(crate) fn malformed(what: impl std::fmt::Display) -> Error {
    Error::other(format!("malformed reply from metaservice: {what}"))
}

/// The one result of a one-key batch.
fn only<T>(results: Vec<Result<T>>) -> Result<T> {
    let n = results.len();
    let mut it = results.into_iter();
    match (it.next(), it.next()) {
        (Some(r), None) => r,
        _ => Err(malformed(format!("{n} results for one key"))),
    }
}

/// Checks a reply's answer to a batch of `asked` keys: one item per key.
pub(crate) fn check_count<T>(what: &str, items: Vec<T>, asked: usize) -> Result<Vec<T>> {
    if items.len() == asked {
        Ok(items)
    } else {
        Err(malformed(format!(
            "{what} answered {} items for {asked} keys",
            items.len()
        )))
    }
}

/// Checks that every replica of an object of `size` bytes names a peer of
/// the reply's peer table and, when that peer describes its segment, lies
/// inside it.
pub(crate) fn check_placements(peers: &[PeerInfo], replicas: &[Placement], size: u64) -> Result<()> {
    for p in replicas {
        let peer = peers.get(p.peer as usize).ok_or_else(|| {
            malformed(format!(
                "replica on peer index {} of a {}-peer table",
                p.peer,
                peers.len()
            ))
        })?;
        if let Some(seg) = &peer.segment {
            if p.offset.checked_add(size).is_none_or(|end| end > seg.size) {
                return Err(malformed(format!(
                    "replica at {}+{size} is outside the {}-byte segment of service {}",
                    p.offset, seg.size, peer.service_id
                )));
            }
        }
    }
    Ok(())
}

impl ObjectStore {
    /// Starts a LocalService from `cfg` (contributing a segment unless
    /// `dram_size` is 0) on a runtime of its own and joins the cluster.
    /// Must not be called from inside an async context; use
    /// [`ObjectStore::connect_async`] there.
    pub fn connect(cfg: LocalConfig) -> Result<Self> {
        cfg.validate().map_err(|e| Error::invalid(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.worker_threads as usize)
            .thread_name("mmc-local")
            .enable_all()
            .build()
            .map_err(|e| Error::caused_by(ErrorKind::Other, "cannot start runtime", e))?;
        let handle = rt.handle().clone();
        let store = handle.block_on(Self::start(cfg, handle.clone()))?;
        *store.inner.runtime.lock() = Some(rt);
        Ok(store)
    }

    /// Like [`ObjectStore::connect`], from inside a Tokio runtime whose
    /// handle then runs the background tasks.
    pub async fn connect_async(cfg: LocalConfig) -> Result<Self> {
        cfg.validate().map_err(|e| Error::invalid(e.to_string()))?;
        Self::start(cfg, Handle::current()).await
    }

    async fn start(cfg: LocalConfig, handle: Handle) -> Result<Self> {
        let xfer_tls = if cfg.security.tls.transfer {
            let t = mmc_tls::ClientTls::new(&cfg.security.tls)
                .map_err(|e| Error::caused_by(ErrorKind::InvalidParam, "local.security.tls (transfer)", e))?;
            Some(t)
        } else {
            None
        };
        let svc = LocalService::start(&cfg, handle.clone()).await?;
        let (lease_tx, lease_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            runtime: Mutex::new(None),
            xfer: TransferClient::new(
                cfg.transfer_connections as usize,
                Duration::from_millis(cfg.transfer_timeout_ms),
                crate::transfer::Congestion::from_config(&cfg.transfer_congestion),
                handle.clone(),
            )
            .with_token(svc.token.clone())
            .with_tls(xfer_tls),
            handle: handle.clone(),
            svc: svc.clone(),
            protocol: cfg.protocol,
            prefault: cfg.prefault_segments,
            async_commit: cfg.async_commit,
            peers: Mutex::new(PeerMaps::default()),
            lease_tx,
            regions: Mutex::new(Default::default()),
            clock: StoreClock::default(),
        });
        if svc.segment.is_some() {
            handle.spawn(drain_task(svc.clone(), Arc::downgrade(&inner)));
        }
        handle.spawn(release_leases(svc, lease_rx));
        handle.spawn(prune_mappings(Arc::downgrade(&inner)));
        Ok(ObjectStore { inner })
    }

    /// A blocking view of this store.
    pub fn blocking(&self) -> BlockingObjectStore {
        BlockingObjectStore { store: self.clone() }
    }

    /// The service id (rank) the MetaService gave this LocalService.
    pub fn service_id(&self) -> ServiceId {
        self.inner.svc.id()
    }

    pub(crate) fn svc(&self) -> &Arc<LocalService> {
        &self.inner.svc
    }

    pub(crate) fn xfer(&self) -> &TransferClient {
        &self.inner.xfer
    }

    pub(crate) fn regions(&self) -> &Mutex<crate::direct::Regions> {
        &self.inner.regions
    }

    pub(crate) fn clock(&self) -> &StoreClock {
        &self.inner.clock
    }

    pub(crate) fn lease_tx(&self) -> &mpsc::UnboundedSender<(String, u64)> {
        &self.inner.lease_tx
    }

    /// The address other LocalServices reach this one's segment at (its
    /// transfer server; empty for a pure client).
    pub fn transfer_addr(&self) -> &str {
        &self.inner.svc.transfer_addr
    }

    /// Whether this store's data-path requests (alloc, lookup, ...) travel
    /// through a shared-memory ring to the MetaService (`None`: not
    /// connected now). A client on the MetaService's host uses one unless
    /// `protocol = "tcp"` or TLS.
    pub fn data_path_uses_ring(&self) -> Option<bool> {
        self.inner.svc.meta.data_path_uses_ring()
    }

    /// The LocalService behind this store (an internal, for `mmc-bench`).
    #[cfg(feature = "bench-internals")]
    pub fn local_service(&self) -> &Arc<LocalService> {
        &self.inner.svc
    }

    /// Leaves the cluster and stops background work.
    pub async fn close(&self) {
        self.inner.svc.close().await;
    }

    /// The segment of `peer` mapped in this process, when the data path to
    /// it is shared memory: only a same-host segment that [`Segment::open`]
    /// verified (the owner's sealed memfd carrying the registered nonce),
    /// and not another name for memory already mapped under another
    /// service id. Any other peer is reached over TCP.
    pub(crate) fn local_view(&self, peer: &PeerInfo) -> Option<Arc<Segment>> {
        let svc = &self.inner.svc;
        if peer.service_id == svc.id() {
            return svc.segment.clone();
        }
        let desc = peer.segment.as_ref()?;
        if self.inner.protocol != Protocol::Auto || peer.host_id != svc.host_id {
            return None;
        }
        let mut pm = self.inner.peers.lock();
        if let Some(s) = pm.maps.get(&peer.service_id) {
            if s.name() == desc.name && s.len() as u64 == desc.size && s.nonce() == desc.nonce {
                return Some(s.clone());
            }
        }
        if pm
            .refused
            .get(&peer.service_id)
            .is_some_and(|(name, nonce)| *name == desc.name && *nonce == desc.nonce)
        {
            return None;
        }
        let opened = usize::try_from(desc.size)
            .map_err(|_| Error::invalid(format!("segment size {} does not fit in memory", desc.size)))
            .and_then(|size| Segment::open(&desc.name, size, desc.nonce, self.inner.prefault))
            .and_then(|s| {
                let aliased = svc.segment.iter().any(|own| own.file_id() == s.file_id())
                    || pm
                        .maps
                        .iter()
                        .any(|(id, m)| *id != peer.service_id && m.file_id() == s.file_id());
                if aliased {
                    Err(Error::new(
                        ErrorKind::NotConnectedLocal,
                        format!("{} is a segment already mapped for another service", desc.name),
                    ))
                } else {
                    Ok(s)
                }
            });
        match opened {
            Ok(s) => {
                let s = Arc::new(s);
                pm.refused.remove(&peer.service_id);
                pm.maps.insert(peer.service_id, s.clone());
                Some(s)
            }
            Err(e) => {
                tracing::warn!(
                    peer = peer.service_id,
                    segment = %desc.name,
                    error = %e,
                    "refusing to map a same-host peer segment that failed verification; using tcp"
                );
                pm.maps.remove(&peer.service_id);
                pm.refused.insert(peer.service_id, (desc.name.clone(), desc.nonce));
                None
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmc_wire::message::SegmentDesc;
    use mmc_wire::Medium;

    fn peer(id: ServiceId, size: Option<u64>) -> PeerInfo {
        PeerInfo {
            service_id: id,
            host_id: 1,
            transfer_addr: "127.0.0.1:1".into(),
            segment: size.map(|size| SegmentDesc {
                name: "s".into(),
                medium: Medium::Dram,
                size,
                nonce: 1,
            }),
        }
    }

    #[test]
    fn reply_shapes_are_checked_not_trusted() {
        assert_eq!(only(vec![Ok::<u8, Error>(3)]), Ok(3));
        let e = only::<u8>(vec![]).unwrap_err().to_string();
        assert!(e.contains("malformed reply from metaservice: 0 results"), "{e}");
        assert!(only(vec![Ok::<u8, Error>(1), Ok(2)]).is_err());
        assert!(check_count("exist", vec![true], 1).is_ok());
        let e = check_count("exist", vec![true, false], 1).unwrap_err().to_string();
        assert!(e.contains("exist answered 2 items for 1 keys"), "{e}");

        let peers = [peer(1, Some(1 << 20)), peer(2, None)];
        let at = |peer, offset| Placement { peer, offset };
        assert!(check_placements(&peers, &[at(0, 0), at(1, 77)], 1 << 20).is_ok());
        let e = check_placements(&peers, &[at(2, 0)], 10).unwrap_err().to_string();
        assert!(e.contains("peer index 2 of a 2-peer table"), "{e}");
        let e = check_placements(&peers, &[at(0, 4096)], 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the 1048576-byte segment"), "{e}");
        assert!(
            check_placements(&peers, &[at(0, u64::MAX)], 2).is_err(),
            "offset + size overflows"
        );
        assert!(check_placements(&peers, &[at(0, 0)], u64::MAX).is_err());
    }
}
