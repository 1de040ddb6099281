//! The client API: [`ObjectStore`] (async) and [`BlockingObjectStore`].
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

use crate::buffer::{gather, scatter, total_len, Piece};
use crate::segment::Segment;
use crate::service::LocalService;
use crate::transfer::client::{Job, TransferClient};
use mmc_config::{LocalConfig, Protocol};
use mmc_wire::message::{AllocItem, DrainReport, KeyInfo, Located, PeerInfo, Placement, Request, Response};
use mmc_wire::{validate_batch_len, validate_key, validate_replicas, Error, Result, ServiceId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
}

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
    Error::Other(format!("malformed reply from metaservice: {what}"))
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

fn put_ok(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::DuplicatedObject) => Ok(()),
        r => r,
    }
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
            .map_err(|e| Error::Other(format!("cannot start runtime: {e}")))?;
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
                .map_err(|e| Error::invalid(format!("local.security.tls (transfer): {e}")))?;
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

    pub(crate) fn lease_tx(&self) -> &mpsc::UnboundedSender<(String, u64)> {
        &self.inner.lease_tx
    }

    /// The LocalService behind this store (an internal, for `mmc-cli`).
    #[cfg(feature = "bench-internals")]
    pub fn local_service(&self) -> &Arc<LocalService> {
        &self.inner.svc
    }

    /// Leaves the cluster and stops background work.
    pub async fn close(&self) {
        self.inner.svc.close().await;
    }

    // ---- puts -------------------------------------------------------------

    pub async fn put(&self, key: &str, value: &[u8], opts: &PutOptions) -> Result<()> {
        // SAFETY: the borrow keeps `value` alive and unmodified for the call.
        let r = unsafe { self.put_raw_batch(&[key], &[vec![Piece::of(value)]], opts).await? };
        put_ok(only(r))
    }

    /// Stores the concatenation of `layers` as one object.
    pub async fn put_layers(&self, key: &str, layers: &[&[u8]], opts: &PutOptions) -> Result<()> {
        let pieces: Vec<Piece> = layers.iter().map(|l| Piece::of(l)).collect();
        // SAFETY: the borrows keep the layers alive for the call.
        let r = unsafe { self.put_raw_batch(&[key], &[pieces], opts).await? };
        put_ok(only(r))
    }

    pub async fn put_batch(&self, keys: &[&str], values: &[&[u8]], opts: &PutOptions) -> BatchResult {
        let values: Vec<Vec<Piece>> = values.iter().map(|v| vec![Piece::of(v)]).collect();
        // SAFETY: the borrows keep the values alive for the call.
        let r = unsafe { self.put_raw_batch(keys, &values, opts).await? };
        Ok(r.into_iter().map(put_ok).collect())
    }

    pub async fn put_layers_batch(&self, keys: &[&str], layers: &[Vec<&[u8]>], opts: &PutOptions) -> BatchResult {
        let values: Vec<Vec<Piece>> = layers
            .iter()
            .map(|ls| ls.iter().map(|l| Piece::of(l)).collect())
            .collect();
        // SAFETY: the borrows keep the layers alive for the call.
        let r = unsafe { self.put_raw_batch(keys, &values, opts).await? };
        Ok(r.into_iter().map(put_ok).collect())
    }

    /// Puts values given as raw buffers (each a list of layers). An existing
    /// key is reported as `Err(DuplicatedObject)` (the safe methods map it
    /// to success).
    ///
    /// # Safety
    /// Every piece must be valid for reads, and not written by anyone,
    /// until the call completes (or its future is dropped).
    pub async unsafe fn put_raw_batch(&self, keys: &[&str], values: &[Vec<Piece>], opts: &PutOptions) -> BatchResult {
        validate_batch_len(keys.len())?;
        if keys.len() != values.len() {
            return Err(Error::invalid(format!(
                "{} keys but {} values",
                keys.len(),
                values.len()
            )));
        }
        validate_replicas(opts.replicas)?;
        let mut results: Vec<Result<()>> = vec![Ok(()); keys.len()];
        let mut items = Vec::new();
        let mut which = Vec::new();
        for (i, (k, v)) in keys.iter().zip(values).enumerate() {
            match validate_key(k).and_then(|_| total_len(v)) {
                Ok(size) => {
                    items.push(AllocItem {
                        key: (*k).to_owned(),
                        size,
                        replicas: opts.replicas,
                        preferred: opts.preferred.clone(),
                    });
                    which.push((i, size));
                }
                Err(e) => results[i] = Err(e),
            }
        }
        if items.is_empty() {
            return Ok(results);
        }
        let me = self.service_id();
        let (peers, placed) = match self
            .inner
            .svc
            .meta
            .call_fast(&Request::Alloc { writer: me, items })
            .await?
        {
            Response::Alloc { peers, items, .. } => (peers, check_count("alloc", items, which.len())?),
            other => return Err(crate::meta_client::unexpected(other)),
        };
        let placed: Vec<(usize, Result<Vec<Placement>>, u64)> = placed
            .into_iter()
            .zip(which.iter().copied())
            .map(|(p, (i, size))| {
                let p = p.and_then(|reps| {
                    if reps.is_empty() {
                        return Err(malformed("alloc placed no replica"));
                    }
                    check_placements(&peers, &reps, size).map(|()| reps)
                });
                (i, p, size)
            })
            .collect();
        let copied = self.write_placed(&peers, placed, values).await;
        let mut commit = Vec::new();
        let mut commit_idx = Vec::new();
        let mut revoke = Vec::new();
        for (i, r) in copied {
            match r {
                Ok(()) => {
                    commit.push(keys[i].to_owned());
                    commit_idx.push(i);
                }
                Err(Error::DuplicatedObject) => results[i] = Err(Error::DuplicatedObject),
                Err(e) => {
                    if !matches!(e, Error::NotEnoughMemory(_) | Error::InvalidParam(_)) {
                        revoke.push(keys[i].to_owned());
                    }
                    results[i] = Err(e);
                }
            }
        }
        if commit.is_empty() && revoke.is_empty() {
            return Ok(results);
        }
        if self.inner.async_commit {
            // The commit is on the connection, ahead of anything this client
            // sends next; others see the objects once it is processed.
            let req = Request::Finish {
                writer: me,
                commit,
                revoke,
            };
            self.inner.svc.meta.send_only(&req, "commit").await?;
            return Ok(results);
        }
        match self
            .inner
            .svc
            .meta
            .call_fast(&Request::Finish {
                writer: me,
                commit,
                revoke,
            })
            .await?
        {
            Response::Finish { commit } => {
                let commit = check_count("finish", commit, commit_idx.len())?;
                for (r, i) in commit.into_iter().zip(commit_idx) {
                    results[i] = r;
                }
            }
            other => return Err(crate::meta_client::unexpected(other)),
        }
        Ok(results)
    }

    /// Copies every placed value into its replicas: a memcpy into a segment
    /// mapped here, TCP writes for the others, all writes to one peer in one
    /// [`TransferClient::write_many`] so a batch streams to it. Per value
    /// (its batch index): `Ok` once every replica holds the bytes.
    async fn write_placed(
        &self,
        peers: &[PeerInfo],
        placed: Vec<(usize, Result<Vec<Placement>>, u64)>,
        values: &[Vec<Piece>],
    ) -> Vec<(usize, Result<()>)> {
        let mut out: Vec<(usize, Result<()>)> = Vec::with_capacity(placed.len());
        let mut local: Vec<(usize, Arc<Segment>, u64, u64)> = Vec::new();
        // Remote writes by peer index: (slot in `out`, the write).
        let mut remote: HashMap<u16, Vec<(usize, Job<'_>)>> = HashMap::new();
        for (i, p, size) in placed {
            let slot = out.len();
            let reps = match p {
                Ok(reps) => reps,
                Err(e) => {
                    out.push((i, Err(e)));
                    continue;
                }
            };
            out.push((i, Ok(())));
            for rep in reps {
                let Some(peer) = peers.get(rep.peer as usize) else {
                    out[slot].1 = Err(malformed(format!("replica on peer index {}", rep.peer)));
                    continue;
                };
                match self.local_view(peer) {
                    Some(seg) => local.push((slot, seg, rep.offset, size)),
                    None => remote.entry(rep.peer).or_default().push((
                        slot,
                        Job {
                            offset: rep.offset,
                            pieces: &values[i],
                            len: size,
                        },
                    )),
                }
            }
        }
        // As a list, so each peer's jobs pair with their results below.
        let remote: Vec<(u16, Vec<(usize, Job<'_>)>)> = remote.into_iter().collect();
        let copy_local = || {
            local
                .iter()
                .map(|(slot, seg, offset, size)| {
                    let r = seg.range(*offset, *size).map(|dst| {
                        // SAFETY: dst is inside the mapping; the MetaService
                        // allocated this range to us; the pieces are valid per caller.
                        unsafe { gather(&values[out[*slot].0], dst) }
                    });
                    (*slot, r)
                })
                .collect::<Vec<_>>()
        };
        let (sent, copied) = if remote.is_empty() {
            (Vec::new(), copy_local())
        } else {
            let xfer = &self.inner.xfer;
            let sends = futures::future::join_all(remote.iter().map(|(p, jobs)| async move {
                let p = *p;
                let peer = &peers[p as usize];
                let js: Vec<Job<'_>> = jobs.iter().map(|(_, j)| *j).collect();
                // SAFETY: every job's pieces are a value of this put, valid
                // for reads and unmodified for the whole call (the callers'
                // contract, or borrows they hold), which outlives this future.
                unsafe { xfer.write_many(&peer.transfer_addr, peer.service_id, &js).await }
            }));
            // The sends start (their first bytes go out) before the copies here.
            let copies = async {
                tokio::task::yield_now().await;
                copy_local()
            };
            futures::join!(sends, copies)
        };
        let failed = copied
            .into_iter()
            .chain(
                remote
                    .iter()
                    .zip(sent)
                    .flat_map(|((_, jobs), rs)| jobs.iter().map(|(slot, _)| *slot).zip(rs)),
            )
            .filter_map(|(slot, r)| r.err().map(|e| (slot, e)));
        for (slot, e) in failed {
            if out[slot].1.is_ok() {
                out[slot].1 = Err(e);
            }
        }
        out
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
                    Err(Error::NotConnectedLocal(format!(
                        "{} is a segment already mapped for another service",
                        desc.name
                    )))
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

    // ---- gets -------------------------------------------------------------

    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        only(self.get_batch(&[key]).await?)
    }

    pub async fn get_batch(&self, keys: &[&str]) -> BatchResult<Vec<u8>> {
        let r = self.get_impl(keys, None).await?;
        Ok(r.into_iter()
            .map(|r| r.and_then(|v| v.ok_or_else(|| Error::Other("get produced no value buffer".into()))))
            .collect())
    }

    /// Copies the object into `buf`, whose length must equal the object size.
    pub async fn get_into(&self, key: &str, buf: &mut [u8]) -> Result<()> {
        let dest = [vec![Piece::of_mut(buf)]];
        // SAFETY: the borrow keeps `buf` alive and exclusive for the call.
        let r = unsafe { self.get_into_raw_batch(&[key], &dest).await? };
        only(r)
    }

    /// Scatters the object into `bufs` in order; their lengths must sum to
    /// the object size.
    pub async fn get_into_layers(&self, key: &str, bufs: &mut [&mut [u8]]) -> Result<()> {
        let dest = [bufs.iter_mut().map(|b| Piece::of_mut(b)).collect::<Vec<_>>()];
        // SAFETY: the borrows keep the buffers alive and exclusive for the call.
        let r = unsafe { self.get_into_raw_batch(&[key], &dest).await? };
        only(r)
    }

    pub async fn get_into_batch(&self, keys: &[&str], bufs: &mut [&mut [u8]]) -> BatchResult {
        let dest: Vec<Vec<Piece>> = bufs.iter_mut().map(|b| vec![Piece::of_mut(b)]).collect();
        // SAFETY: the borrows keep the buffers alive and exclusive for the call.
        unsafe { self.get_into_raw_batch(keys, &dest).await }
    }

    /// Gets into raw buffers (each a list of layers).
    ///
    /// # Safety
    /// Every piece must be valid for writes, and not otherwise accessed,
    /// until the call completes (or its future is dropped); no two pieces
    /// may overlap.
    pub async unsafe fn get_into_raw_batch(&self, keys: &[&str], dests: &[Vec<Piece>]) -> BatchResult {
        if keys.len() != dests.len() {
            validate_batch_len(keys.len())?;
            return Err(Error::invalid(format!(
                "{} keys but {} buffers",
                keys.len(),
                dests.len()
            )));
        }
        let r = self.get_impl(keys, Some(dests)).await?;
        Ok(r.into_iter().map(|r| r.map(|_| ())).collect())
    }

    async fn get_impl(&self, keys: &[&str], dests: Option<&[Vec<Piece>]>) -> BatchResult<Option<Vec<u8>>> {
        validate_batch_len(keys.len())?;
        let mut results: Vec<Result<Option<Vec<u8>>>> = Vec::with_capacity(keys.len());
        let mut ask = Vec::new();
        let mut which = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            // Null or empty buffers fail here; their total is checked
            // against the object's size once it is known (0: no buffers).
            let check = validate_key(k).and_then(|_| match dests {
                Some(d) => total_len(&d[i]),
                None => Ok(0),
            });
            match check {
                Ok(room) => {
                    ask.push((*k).to_owned());
                    which.push((i, room));
                    results.push(Ok(None));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if ask.is_empty() {
            return Ok(results);
        }
        let sent = Instant::now();
        let reader = self.service_id();
        let (peers, lease_ms, items) = match self
            .inner
            .svc
            .meta
            .call_fast(&Request::Lookup { reader, keys: ask })
            .await?
        {
            Response::Lookup { peers, lease_ms, items } => {
                (peers, lease_ms, check_count("lookup", items, which.len())?)
            }
            other => return Err(crate::meta_client::unexpected(other)),
        };
        // A lease is at most the longest `meta.lease_ms` accepted: a larger
        // number would overflow the deadline.
        let deadline = sent + Duration::from_millis(lease_ms.min(MAX_LEASE_MS));
        let mut found = Vec::with_capacity(items.len());
        for (item, (i, room)) in items.into_iter().zip(which.iter().copied()) {
            match item.and_then(|loc| check_placements(&peers, &loc.replicas, loc.size).map(|()| loc)) {
                Ok(loc) => found.push((i, room, loc)),
                Err(e) => results[i] = Err(e),
            }
        }
        // Into the caller's buffers, each object is first read from its
        // nearest replica: a memcpy when that is mapped here, else with the
        // others on that peer in one `read_many` (a batch streams from it).
        // A failed read, and every get into new buffers, goes through
        // `read_one`, which tries the replicas in turn.
        let mut first: Vec<Option<Result<()>>> = vec![None; found.len()];
        if let Some(dests) = dests {
            let mut remote: HashMap<u16, Vec<(usize, Job<'_>)>> = HashMap::new();
            for (n, (i, room, loc)) in found.iter().enumerate() {
                // A size mismatch is reported by `read_one`.
                let Some(p) = self.nearest(&peers, loc).filter(|_| *room == loc.size) else {
                    continue;
                };
                let peer = &peers[p.peer as usize];
                if let Some(seg) = self.local_view(peer) {
                    first[n] = Some(seg.range(p.offset, loc.size).map(|src| {
                        // SAFETY: src is inside the mapping and leased to us;
                        // the pieces are valid for writes per the caller.
                        unsafe { scatter(src, &dests[*i]) }
                    }));
                    continue;
                }
                let job = Job {
                    offset: p.offset,
                    pieces: &dests[*i],
                    len: loc.size,
                };
                remote.entry(p.peer).or_default().push((n, job));
            }
            let xfer = &self.inner.xfer;
            let peers = &peers;
            let remote: Vec<(u16, Vec<(usize, Job<'_>)>)> = remote.into_iter().collect();
            let reads = remote.iter().map(|(p, jobs)| async move {
                let p = *p;
                let peer = &peers[p as usize];
                let js: Vec<Job<'_>> = jobs.iter().map(|(_, j)| *j).collect();
                // SAFETY: every job's pieces are one key's destination,
                // valid for writes and not otherwise accessed for the whole
                // call (the callers' contract, or borrows they hold); each
                // key is read once at a time, so no two jobs share memory.
                unsafe { xfer.read_many(&peer.transfer_addr, peer.service_id, &js).await }
            });
            for ((_, jobs), rs) in remote.iter().zip(futures::future::join_all(reads).await) {
                for ((n, _), r) in jobs.iter().zip(rs) {
                    first[*n] = Some(r);
                }
            }
        }
        let expired = Instant::now() >= deadline;
        let mut retry = Vec::new();
        for ((i, _, loc), first) in found.into_iter().zip(first) {
            match first {
                Some(Ok(())) => {
                    results[i] = if expired { Err(Error::LeaseExpired) } else { Ok(None) };
                    let _ = self.inner.lease_tx.send((keys[i].to_owned(), loc.object_id));
                }
                // The nearest replica failed: the others, if any, in turn.
                Some(Err(e)) => {
                    let tried = self.nearest(&peers, &loc).copied();
                    retry.push((i, loc, tried.map(|p| (p, e))));
                }
                None => retry.push((i, loc, None)),
            }
        }
        if retry.is_empty() {
            return Ok(results);
        }
        let this = self;
        let peers = &peers;
        let reads = retry.into_iter().map(|(i, loc, failed)| async move {
            let r = this
                .read_one(peers, &loc, dests.map(|d| d[i].as_slice()), deadline, failed)
                .await;
            let _ = this.inner.lease_tx.send((keys[i].to_owned(), loc.object_id));
            (i, r)
        });
        for (i, r) in futures::future::join_all(reads).await {
            results[i] = r;
        }
        Ok(results)
    }

    /// How far a replica is: 0 in this process's own segment, 1 on this
    /// host, 2 elsewhere. Reads try the nearest first.
    pub(crate) fn distance(&self, peers: &[PeerInfo], p: &Placement) -> u8 {
        match peers.get(p.peer as usize) {
            Some(x) if x.service_id == self.inner.svc.id() => 0,
            Some(x) if x.host_id == self.inner.svc.host_id => 1,
            _ => 2,
        }
    }

    /// The replica of `loc` a read tries first (the first of the nearest).
    fn nearest<'l>(&self, peers: &[PeerInfo], loc: &'l Located) -> Option<&'l Placement> {
        loc.replicas
            .iter()
            .filter(|p| (p.peer as usize) < peers.len())
            .min_by_key(|p| self.distance(peers, p))
    }

    /// Reads one object from its replicas, nearest first, skipping the one
    /// in `failed` (already tried, with that error).
    async fn read_one(
        &self,
        peers: &[PeerInfo],
        loc: &Located,
        dest: Option<&[Piece]>,
        deadline: Instant,
        failed: Option<(Placement, Error)>,
    ) -> Result<Option<Vec<u8>>> {
        let mut owned: Option<Vec<u8>> = None;
        let one: [Piece; 1];
        let pieces: &[Piece] = match dest {
            Some(d) => {
                let total: u64 = d.iter().map(|p| p.len as u64).sum();
                if total != loc.size {
                    return Err(Error::invalid(format!(
                        "buffers hold {total} bytes but the object has {} bytes",
                        loc.size
                    )));
                }
                d
            }
            None => {
                let mut v = new_value_buffer(loc.size)?;
                let p = Piece {
                    addr: v.as_mut_ptr() as usize,
                    len: loc.size as usize,
                };
                owned = Some(std::mem::take(&mut v));
                one = [p];
                &one
            }
        };
        let (tried, mut last_err) = match failed {
            Some((p, e)) => (Some(p), e),
            None => (None, Error::ObjectNotExists),
        };
        let mut order: Vec<&Placement> = loc.replicas.iter().filter(|p| Some(**p) != tried).collect();
        order.sort_by_key(|p| self.distance(peers, p));
        for p in order {
            let Some(peer) = peers.get(p.peer as usize) else {
                continue;
            };
            let r = match self.local_view(peer) {
                Some(seg) => seg.range(p.offset, loc.size).map(|src| {
                    // SAFETY: src is inside the mapping and leased to us;
                    // the pieces are valid for writes per the caller.
                    unsafe { scatter(src, pieces) }
                }),
                None => {
                    // SAFETY: the pieces are valid for writes of loc.size
                    // bytes in all (checked above, or our own buffer) and not
                    // otherwise accessed for the call.
                    unsafe {
                        self.inner
                            .xfer
                            .read(&peer.transfer_addr, peer.service_id, p.offset, pieces, loc.size)
                            .await
                    }
                }
            };
            match r {
                Ok(()) => {
                    if Instant::now() >= deadline {
                        return Err(Error::LeaseExpired);
                    }
                    if let Some(mut v) = owned {
                        // SAFETY: the copy above initialised all `size` bytes.
                        unsafe { v.set_len(loc.size as usize) };
                        return Ok(Some(v));
                    }
                    return Ok(None);
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    // ---- metadata ---------------------------------------------------------

    pub async fn exist(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        self.exist_batch(&[key])
            .await?
            .first()
            .copied()
            .ok_or_else(|| malformed("exist answered no item for one key"))
    }

    /// One bool per key (an invalid key reads as absent).
    pub async fn exist_batch(&self, keys: &[&str]) -> Result<Vec<bool>> {
        validate_batch_len(keys.len())?;
        let asked = keys.len();
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        match self.inner.svc.meta.call_fast(&Request::Exist { keys }).await? {
            Response::Exist(v) => check_count("exist", v, asked),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    pub async fn key_info(&self, key: &str) -> Result<KeyInfo> {
        only(self.key_info_batch(&[key]).await?)
    }

    pub async fn key_info_batch(&self, keys: &[&str]) -> BatchResult<KeyInfo> {
        validate_batch_len(keys.len())?;
        let asked = keys.len();
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        match self.inner.svc.meta.call_fast(&Request::KeyInfo { keys }).await? {
            Response::KeyInfo(v) => check_count("key info", v, asked),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    pub async fn remove(&self, key: &str) -> Result<()> {
        only(self.remove_batch(&[key]).await?)
    }

    pub async fn remove_batch(&self, keys: &[&str]) -> BatchResult {
        validate_batch_len(keys.len())?;
        let asked = keys.len();
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        match self.inner.svc.meta.call_fast(&Request::Remove { keys }).await? {
            Response::Remove(v) => check_count("remove", v, asked),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// Removes every key; returns how many were removed.
    pub async fn remove_all(&self) -> Result<u64> {
        match self.inner.svc.meta.call(&Request::RemoveAll).await? {
            Response::RemoveAll { removed } => Ok(removed),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// One page of the readable keys, in key order, after `after` (`None`:
    /// from the first): at most `limit` keys and the cursor of the next page
    /// (`None` at the end). A scan never skips nor repeats a key that exists
    /// for its whole duration.
    pub async fn list_keys(&self, after: Option<&str>, limit: u32) -> Result<(Vec<String>, Option<String>)> {
        let req = Request::ListKeys {
            after: after.map(str::to_owned),
            limit,
        };
        match self.inner.svc.meta.call(&req).await? {
            Response::Keys { keys, next_cursor } => Ok((keys, next_cursor)),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    // ---- administration ---------------------------------------------------

    /// Starts draining the memory provider `service_id` (graceful
    /// scale-in, see docs/operations.md) and returns at once with the
    /// drain's report (state `Running`); [`ObjectStore::drain_status`]
    /// follows it.
    pub async fn drain_start(&self, service_id: ServiceId) -> Result<DrainReport> {
        match self.inner.svc.meta.call(&Request::Drain { service_id }).await? {
            Response::Drain(r) => Ok(r),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// The report of the drain of `service_id`, running or finished.
    pub async fn drain_status(&self, service_id: ServiceId) -> Result<DrainReport> {
        match self.inner.svc.meta.call(&Request::DrainStatus { service_id }).await? {
            Response::Drain(r) => Ok(r),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// Drains the memory provider `service_id` and waits until the drain
    /// is over: `Done` (every object moved, the provider left),
    /// `Incomplete` (the report lists what could not be moved; the provider
    /// stays) or `Aborted`.
    pub async fn drain(&self, service_id: ServiceId) -> Result<DrainReport> {
        let mut r = self.drain_start(service_id).await?;
        while !r.state.is_final() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            r = self.drain_status(service_id).await?;
        }
        Ok(r)
    }

    /// Waits until this store's own provider has been drained and has left
    /// the cluster (`mmc local` exits then).
    pub async fn wait_drained(&self) {
        self.inner.svc.wait_drained().await
    }

    /// True once this store's provider has been drained and has left.
    pub fn is_drained(&self) -> bool {
        self.inner.svc.is_drained()
    }

    /// Copies the objects of one drain plan out of this provider's segment
    /// (the put path: memcpy into a segment mapped here, transfer writes to
    /// the others) and reports which copies landed.
    async fn drain_batch(&self, peers: &[PeerInfo], moves: &[mmc_wire::message::DrainMove]) -> Result<()> {
        let svc = &self.inner.svc;
        let me = svc.id();
        let Some(seg) = svc.segment.clone() else {
            return Err(Error::invalid("a pure client has nothing to drain"));
        };
        // Nothing in the plan is trusted: the source must be inside our
        // segment, the destination inside another provider's.
        let mut values: Vec<Vec<Piece>> = Vec::with_capacity(moves.len());
        let mut placed = Vec::with_capacity(moves.len());
        for (i, mv) in moves.iter().enumerate() {
            let src = usize::try_from(mv.size).map_err(|_| malformed("size")).and_then(|len| {
                if len == 0 {
                    return Err(malformed(format!("drain move of {} has size 0", mv.key)));
                }
                seg.range(mv.src_offset, mv.size)
                    .map(|p| Piece { addr: p as usize, len })
            });
            let dst = src.as_ref().map_err(Clone::clone).and_then(|_| {
                check_placements(peers, &[mv.dst], mv.size)?;
                if peers[mv.dst.peer as usize].service_id == me {
                    return Err(malformed("drain move onto the draining provider itself"));
                }
                Ok(vec![mv.dst])
            });
            values.push(src.map(|p| vec![p]).unwrap_or_default());
            placed.push((i, dst, mv.size));
        }
        let copied = self.write_placed(peers, placed, &values).await;
        let mut moved = Vec::new();
        let mut failed = Vec::new();
        for (i, r) in copied {
            let mv = &moves[i];
            match r {
                Ok(()) => moved.push((mv.key.clone(), mv.object_id)),
                Err(e) => failed.push((mv.key.clone(), mv.object_id, e.to_string())),
            }
        }
        if !failed.is_empty() {
            tracing::warn!(failed = failed.len(), first = ?failed.first(), "drain: some copies failed");
        }
        match svc
            .meta
            .call(&Request::DrainCommit {
                service_id: me,
                moved,
                failed,
            })
            .await?
        {
            Response::Ok => Ok(()),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// Runs this provider's drain: plans, copies and commits until the
    /// MetaService says it is over; then leaves the cluster when every
    /// object moved.
    async fn run_drain(&self) {
        let svc = self.inner.svc.clone();
        let mut errors = 0u32;
        loop {
            let req = Request::DrainPlan {
                service_id: svc.id(),
                max: DRAIN_PLAN_MAX,
            };
            match svc.meta.call(&req).await {
                Ok(Response::DrainPlan {
                    peers,
                    moves,
                    done,
                    leave,
                    ..
                }) => {
                    errors = 0;
                    if done {
                        if leave {
                            tracing::info!(service = svc.id(), "drained: every object moved, leaving the cluster");
                            svc.leave_drained().await;
                        } else {
                            tracing::warn!(service = svc.id(), "drain over without leaving (see the drain report)");
                        }
                        return;
                    }
                    if moves.is_empty() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    if let Err(e) = self.drain_batch(&peers, &moves).await {
                        tracing::warn!(error = %e, "drain: commit failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Ok(other) => {
                    tracing::warn!(reply = ?other, "drain: unexpected reply to a drain plan; drain stopped");
                    return;
                }
                Err(e) => {
                    errors += 1;
                    // A failover forgets the drain: the new leader's
                    // heartbeat answer clears the flag.
                    if !svc.is_draining() || errors > 50 {
                        tracing::warn!(error = %e, "drain stopped");
                        return;
                    }
                    tracing::debug!(error = %e, "drain plan failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Objects per drain plan.
const DRAIN_PLAN_MAX: u32 = 256;

/// Waits for the MetaService to ask this provider to drain, and runs the
/// drain (again when asked again after an incomplete one).
async fn drain_task(svc: Arc<LocalService>, inner: std::sync::Weak<Inner>) {
    loop {
        svc.drain_requested().await;
        let Some(inner) = inner.upgrade() else { return };
        if svc.is_drained() || !svc.is_draining() {
            return; // closed
        }
        ObjectStore { inner }.run_drain().await;
        if svc.is_drained() {
            return;
        }
        // Asked again only after the flag went down (incomplete or aborted).
        while svc.is_draining() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Longest read lease honoured (the largest `meta.lease_ms`).
pub(crate) const MAX_LEASE_MS: u64 = 3_600_000;

/// Largest value a get into a new buffer allocates: beyond it, use
/// `get_into` with buffers of the caller's own.
pub const MAX_GET_ALLOC: u64 = 1 << 40;

/// An empty buffer with room for a value of `size` bytes, as the MetaService
/// recorded it: refused beyond [`MAX_GET_ALLOC`], and allocated fallibly.
fn new_value_buffer(size: u64) -> Result<Vec<u8>> {
    if size > MAX_GET_ALLOC {
        return Err(Error::invalid(format!(
            "object of {size} bytes exceeds the {MAX_GET_ALLOC} bytes a get allocates (use get_into with your own buffers)"
        )));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(size as usize)
        .map_err(|e| Error::Other(format!("cannot allocate {size} bytes for the object: {e}")))?;
    Ok(v)
}

/// Drops mappings of segments whose owners left the cluster (so their
/// memory is released), checking whenever the membership epoch moves.
async fn prune_mappings(inner: std::sync::Weak<Inner>) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(inner) = inner.upgrade() else { return };
        let epoch = inner.svc.members_epoch();
        if epoch == seen {
            continue;
        }
        if let Ok(Response::Members { peers, .. }) = inner.svc.meta.call(&Request::Members).await {
            let live: std::collections::HashSet<ServiceId> = peers.iter().map(|p| p.service_id).collect();
            let mut pm = inner.peers.lock();
            pm.maps.retain(|id, _| live.contains(id));
            pm.refused.retain(|id, _| live.contains(id));
            drop(pm);
            seen = epoch;
        }
    }
}

/// How long lease releases are gathered before one RPC carries them all.
const RELEASE_COALESCE: Duration = Duration::from_millis(5);

/// Sends lease releases in batches: one RPC per few milliseconds at most,
/// however many gets complete meanwhile.
async fn release_leases(svc: Arc<LocalService>, mut rx: mpsc::UnboundedReceiver<(String, u64)>) {
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, mmc_wire::MAX_BATCH).await > 0 {
        tokio::time::sleep(RELEASE_COALESCE).await;
        while buf.len() < mmc_wire::MAX_BATCH {
            match rx.try_recv() {
                Ok(x) => buf.push(x),
                Err(_) => break,
            }
        }
        let leases = std::mem::take(&mut buf);
        let req = Request::ReleaseLeases {
            reader: svc.id(),
            leases,
        };
        if let Err(e) = svc.meta.call(&req).await {
            tracing::debug!(error = %e, "lease release failed (leases lapse on their own)");
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

/// Blocking form of [`ObjectStore`]: every method runs the async one to
/// completion on the calling thread. Must not be called from async code.
#[derive(Clone)]
pub struct BlockingObjectStore {
    store: ObjectStore,
}

impl BlockingObjectStore {
    pub fn connect(cfg: LocalConfig) -> Result<Self> {
        Ok(ObjectStore::connect(cfg)?.blocking())
    }

    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.store.inner.handle.block_on(f)
    }

    pub fn service_id(&self) -> ServiceId {
        self.store.service_id()
    }

    pub fn close(&self) {
        self.run(self.store.close())
    }

    /// Leaves the cluster, then stops the store's own runtime and waits (up
    /// to `timeout`) for its threads to exit, so nothing of this store runs
    /// after the call returns. Other clones of the store stop working.
    pub fn shutdown(&self, timeout: Duration) {
        self.close();
        let rt = self.store.inner.runtime.lock().take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(timeout);
        }
    }

    pub fn put(&self, key: &str, value: &[u8], opts: &PutOptions) -> Result<()> {
        self.run(self.store.put(key, value, opts))
    }

    pub fn put_layers(&self, key: &str, layers: &[&[u8]], opts: &PutOptions) -> Result<()> {
        self.run(self.store.put_layers(key, layers, opts))
    }

    pub fn put_batch(&self, keys: &[&str], values: &[&[u8]], opts: &PutOptions) -> BatchResult {
        self.run(self.store.put_batch(keys, values, opts))
    }

    pub fn put_layers_batch(&self, keys: &[&str], layers: &[Vec<&[u8]>], opts: &PutOptions) -> BatchResult {
        self.run(self.store.put_layers_batch(keys, layers, opts))
    }

    /// # Safety
    /// See [`ObjectStore::put_raw_batch`].
    pub unsafe fn put_raw_batch(&self, keys: &[&str], values: &[Vec<Piece>], opts: &PutOptions) -> BatchResult {
        // SAFETY: the caller's contract; `run` completes the future before returning.
        self.run(unsafe { self.store.put_raw_batch(keys, values, opts) })
    }

    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.run(self.store.get(key))
    }

    pub fn get_batch(&self, keys: &[&str]) -> BatchResult<Vec<u8>> {
        self.run(self.store.get_batch(keys))
    }

    pub fn get_into(&self, key: &str, buf: &mut [u8]) -> Result<()> {
        self.run(self.store.get_into(key, buf))
    }

    pub fn get_into_layers(&self, key: &str, bufs: &mut [&mut [u8]]) -> Result<()> {
        self.run(self.store.get_into_layers(key, bufs))
    }

    pub fn get_into_batch(&self, keys: &[&str], bufs: &mut [&mut [u8]]) -> BatchResult {
        self.run(self.store.get_into_batch(keys, bufs))
    }

    /// # Safety
    /// See [`ObjectStore::get_into_raw_batch`].
    pub unsafe fn get_into_raw_batch(&self, keys: &[&str], dests: &[Vec<Piece>]) -> BatchResult {
        // SAFETY: the caller's contract; `run` completes the future before returning.
        self.run(unsafe { self.store.get_into_raw_batch(keys, dests) })
    }

    pub fn exist(&self, key: &str) -> Result<bool> {
        self.run(self.store.exist(key))
    }

    pub fn exist_batch(&self, keys: &[&str]) -> Result<Vec<bool>> {
        self.run(self.store.exist_batch(keys))
    }

    pub fn key_info(&self, key: &str) -> Result<KeyInfo> {
        self.run(self.store.key_info(key))
    }

    pub fn key_info_batch(&self, keys: &[&str]) -> BatchResult<KeyInfo> {
        self.run(self.store.key_info_batch(keys))
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        self.run(self.store.remove(key))
    }

    pub fn remove_batch(&self, keys: &[&str]) -> BatchResult {
        self.run(self.store.remove_batch(keys))
    }

    /// See [`ObjectStore::drain`].
    pub fn drain(&self, service_id: ServiceId) -> Result<DrainReport> {
        self.run(self.store.drain(service_id))
    }

    /// See [`ObjectStore::drain_start`].
    pub fn drain_start(&self, service_id: ServiceId) -> Result<DrainReport> {
        self.run(self.store.drain_start(service_id))
    }

    /// See [`ObjectStore::drain_status`].
    pub fn drain_status(&self, service_id: ServiceId) -> Result<DrainReport> {
        self.run(self.store.drain_status(service_id))
    }

    pub fn remove_all(&self) -> Result<u64> {
        self.run(self.store.remove_all())
    }

    /// See [`ObjectStore::list_keys`].
    pub fn list_keys(&self, after: Option<&str>, limit: u32) -> Result<(Vec<String>, Option<String>)> {
        self.run(self.store.list_keys(after, limit))
    }

    /// See [`ObjectStore::alloc_batch`].
    pub fn alloc_batch(&self, keys: &[&str], sizes: &[u64]) -> BatchResult<u64> {
        self.run(self.store.alloc_batch(keys, sizes))
    }

    /// See [`ObjectStore::write_finish_batch`].
    pub fn write_finish_batch(&self, keys: &[&str], ok: &[bool]) -> BatchResult {
        self.run(self.store.write_finish_batch(keys, ok))
    }

    /// See [`ObjectStore::add_lease_batch`].
    pub fn add_lease_batch(&self, keys: &[&str], lease_ms: u64) -> BatchResult {
        self.run(self.store.add_lease_batch(keys, lease_ms))
    }

    /// See [`ObjectStore::remove_lease_batch`].
    pub fn remove_lease_batch(&self, keys: &[&str]) -> BatchResult {
        self.run(self.store.remove_lease_batch(keys))
    }

    /// See [`ObjectStore::direct_addresses_batch`].
    pub fn direct_addresses_batch(&self, keys: &[&str]) -> BatchResult<Vec<u64>> {
        self.run(self.store.direct_addresses_batch(keys))
    }

    /// # Safety
    /// See [`ObjectStore::copy_batch`].
    pub unsafe fn copy_batch(
        &self,
        gvas: &[u64],
        addrs: &[usize],
        sizes: &[u64],
        dir: crate::direct::CopyDirection,
    ) -> BatchResult {
        // SAFETY: the caller's contract; `run` completes the future before returning.
        self.run(unsafe { self.store.copy_batch(gvas, addrs, sizes, dir) })
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

    #[test]
    fn a_huge_recorded_size_is_an_error_not_a_panic() {
        for size in [u64::MAX, MAX_GET_ALLOC + 1] {
            let e = new_value_buffer(size).unwrap_err().to_string();
            assert!(e.contains(&size.to_string()), "{e}");
        }
        assert_eq!(new_value_buffer(10).unwrap().capacity(), 10);
    }
}
