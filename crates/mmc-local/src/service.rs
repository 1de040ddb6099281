//! The LocalService: membership of this process in the cluster.
//!
//! It owns the contributed segment and its transfer server, registration
//! with the MetaService (service id), the heartbeat loop, and the segment's
//! ledger of committed replicas, which it pulls from the MetaService in
//! batches and hands back when it must register again (MetaService restart
//! or failover) so the new MetaService can rebuild its metadata.

use crate::meta_client::{unexpected, MetaClient};
use crate::segment::Segment;
use mmc_config::LocalConfig;
use mmc_wire::auth::ClusterToken;
use mmc_wire::message::{LedgerEntry, LedgerOp, RegisterReq, Request, Response, SegmentDesc};
use mmc_wire::{Error, ErrorKind, HostId, Medium, Result, ServiceId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Ledger entries per `Recover` request.
const RECOVER_CHUNK: usize = 8192;

#[derive(Default)]
struct OwnerLedger {
    /// offset -> entry (key, size, object id) of each committed replica in
    /// our segment. The object id goes back with the entry at
    /// re-registration, so the MetaService merges it only into that object.
    entries: HashMap<u64, LedgerEntry>,
    /// Last ledger op applied (in the current MetaService's numbering).
    acked: u64,
    /// The epoch `acked` counts in: the ledger epoch of our current
    /// registration. Read together with `acked`, so a poll never carries an
    /// ack counted against an earlier MetaService into the current one.
    epoch: u64,
}

pub struct LocalService {
    pub host_id: HostId,
    pub segment: Option<Arc<Segment>>,
    pub transfer_addr: String,
    pub meta: Arc<MetaClient>,
    /// The cluster token (`local.security`), proved on every connection.
    pub token: Option<ClusterToken>,
    id: Arc<AtomicU32>,
    lease_ms: AtomicU64,
    members_epoch: AtomicU64,
    ledger: Mutex<OwnerLedger>,
    /// Bumped on every (re)registration; ledger polls of an older one are void.
    generation: AtomicU64,
    register_lock: tokio::sync::Mutex<()>,
    heartbeat_interval: Duration,
    closed: AtomicBool,
    /// The MetaService said (in a heartbeat answer) that this provider is
    /// being drained; `drain_signal` wakes the store's drain task.
    draining: AtomicBool,
    drain_signal: tokio::sync::Notify,
    /// Set once this provider left the cluster at the end of a drain.
    drained: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl LocalService {
    /// Creates the segment (when `dram_size > 0`), starts the transfer
    /// server, registers, and starts the heartbeat and ledger loops.
    pub async fn start(cfg: &LocalConfig, handle: Handle) -> Result<Arc<Self>> {
        let token = cfg
            .security
            .resolve_token()
            .map_err(|e| Error::invalid(e.to_string()))?;
        if cfg.dram_size.0 > 0 {
            let exposed = [("local.transfer_listen", cfg.transfer_listen.as_str())];
            match cfg.security.check_exposure(token.is_some(), &exposed) {
                Ok(Some(warning)) => tracing::warn!("INSECURE: {warning}"),
                Ok(None) => {}
                Err(e) => return Err(Error::invalid(e.to_string())),
            }
        }
        let token = ClusterToken::from_option(token);
        // Peers' transfer connections and this process's own connections
        // need descriptors: use all the hard limit allows.
        if let Err(e) = mmc_wire::listen::raise_nofile_limit() {
            tracing::warn!(error = %e, "cannot raise the descriptor limit (RLIMIT_NOFILE)");
        }
        let host_id = crate::hostid::host_id(cfg.host_id.as_deref());
        // Measure the copy method now, not in the first get.
        crate::copy::method();
        let tls = if cfg.security.tls.enable {
            let t = mmc_tls::ClientTls::new(&cfg.security.tls)
                .map_err(|e| Error::caused_by(ErrorKind::InvalidParam, "local.security.tls", e))?;
            Some(t)
        } else {
            None
        };
        let meta = Arc::new(
            MetaClient::new(
                cfg.meta_addr.clone(),
                Duration::from_millis(cfg.rpc_timeout_ms),
                Duration::from_micros(cfg.spin_wait_us),
                handle.clone(),
            )
            // Forced TCP keeps the control path off shared memory too.
            .with_shm_ring(cfg.protocol == mmc_config::Protocol::Auto)
            .with_token(token.clone())
            .with_tls(tls)
            .with_leader_resolver(
                (!cfg.etcd_endpoints.is_empty()).then(|| {
                    Arc::new(crate::leader::LeaderResolver::new(
                        cfg.etcd_endpoints.clone(),
                        &cfg.cluster_name,
                    ))
                }),
                Duration::from_millis(cfg.leader_wait_ms),
            )
            .with_connect_retry(Duration::from_millis(cfg.meta_retry_ms)),
        );
        let id = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        let (segment, transfer_addr) = if cfg.dram_size.0 > 0 {
            let seg = Arc::new(Segment::create(cfg.dram_size.0 as usize, cfg.prefault_segments)?);
            let listener = TcpListener::bind(&cfg.transfer_listen)
                .await
                .map_err(|e| Error::caused_by(ErrorKind::Other, format!("cannot listen on {}", cfg.transfer_listen), e))?;
            // Accepted transfer connections inherit it; nobody knows the
            // address before registration, so none is accepted without it.
            crate::transfer::Congestion::from_config(&cfg.transfer_congestion).apply(&listener);
            let bound = listener.local_addr().map_err(|e| Error::other(e.to_string()))?;
            // An advertised port of 0 means "the port actually bound".
            let advertised = match cfg
                .transfer_advertise
                .as_deref()
                .map(str::parse::<std::net::SocketAddr>)
            {
                Some(Ok(mut a)) => {
                    if a.port() == 0 {
                        a.set_port(bound.port());
                    }
                    a.to_string()
                }
                _ => bound.to_string(),
            };
            let timeout = Duration::from_millis(cfg.transfer_timeout_ms);
            let max = usize::try_from(cfg.max_transfer_connections).unwrap_or(usize::MAX);
            if cfg.security.tls.transfer {
                let acceptor = mmc_tls::acceptor(&cfg.security.tls)
                    .map_err(|e| Error::caused_by(ErrorKind::InvalidParam, "local.security.tls (transfer)", e))?;
                tasks.push(handle.spawn(crate::transfer::tls::serve(
                    listener,
                    seg.clone(),
                    id.clone(),
                    acceptor,
                    token.clone(),
                    timeout,
                    max,
                )));
            } else {
                tasks.push(handle.spawn(crate::transfer::server::serve(
                    listener,
                    seg.clone(),
                    id.clone(),
                    token.clone(),
                    timeout,
                    max,
                )));
            }
            (Some(seg), advertised)
        } else {
            (None, String::new())
        };
        let svc = Arc::new(LocalService {
            host_id,
            segment,
            transfer_addr,
            meta,
            token,
            id,
            lease_ms: AtomicU64::new(2000),
            members_epoch: AtomicU64::new(0),
            ledger: Mutex::new(OwnerLedger::default()),
            generation: AtomicU64::new(0),
            register_lock: tokio::sync::Mutex::new(()),
            heartbeat_interval: Duration::from_millis(cfg.heartbeat_interval_ms),
            closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            drain_signal: tokio::sync::Notify::new(),
            drained: tokio::sync::watch::channel(false).0,
            tasks: Mutex::new(tasks),
        });
        if let Err(e) = svc.register().await {
            svc.abort_tasks();
            return Err(e);
        }
        let hb = handle.spawn(svc.clone().heartbeat_loop());
        svc.tasks.lock().push(hb);
        if svc.segment.is_some() {
            let lp = handle.spawn(svc.clone().ledger_loop());
            svc.tasks.lock().push(lp);
        }
        Ok(svc)
    }

    /// This LocalService's id (0 before registration).
    pub fn id(&self) -> ServiceId {
        self.id.load(Ordering::Acquire)
    }

    pub fn lease_ms(&self) -> u64 {
        self.lease_ms.load(Ordering::Relaxed)
    }

    pub fn members_epoch(&self) -> u64 {
        self.members_epoch.load(Ordering::Relaxed)
    }

    /// Number of replicas recorded in this segment's ledger.
    pub fn ledger_len(&self) -> usize {
        self.ledger.lock().entries.len()
    }

    /// Registers (again), sending the ledger when there is one.
    async fn register(&self) -> Result<()> {
        let _g = self.register_lock.lock().await;
        let entries: Vec<LedgerEntry> = self
            .ledger
            .lock()
            .entries
            .values()
            .cloned()
            .collect();
        let prev = self.id();
        let req = RegisterReq {
            host_id: self.host_id,
            transfer_addr: self.transfer_addr.clone(),
            segment: self.segment.as_ref().map(|s| SegmentDesc {
                name: s.name().to_owned(),
                medium: Medium::Dram,
                size: s.len() as u64,
                nonce: s.nonce(),
            }),
            prev_service_id: (prev != 0).then_some(prev),
            recovering: !entries.is_empty(),
        };
        let recovering = req.recovering;
        let (sid, lease_ms, epoch, ledger_epoch) = match self.meta.call(&Request::Register(req)).await? {
            Response::Registered {
                service_id,
                lease_ms,
                members_epoch,
                ledger_epoch,
                ..
            } => (service_id, lease_ms, members_epoch, ledger_epoch),
            other => return Err(unexpected(other)),
        };
        {
            let mut l = self.ledger.lock();
            l.acked = 0;
            l.epoch = ledger_epoch;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.id.store(sid, Ordering::Release);
        self.lease_ms.store(lease_ms, Ordering::Relaxed);
        self.members_epoch.store(epoch, Ordering::Relaxed);
        if recovering {
            let n = entries.len();
            let mut chunks = entries.chunks(RECOVER_CHUNK).peekable();
            while let Some(c) = chunks.next() {
                let done = chunks.peek().is_none();
                self.meta
                    .call(&Request::Recover {
                        service_id: sid,
                        entries: c.to_vec(),
                        done,
                    })
                    .await?;
            }
            tracing::info!(service = sid, prev, replicas = n, "re-registered and sent the ledger");
        } else {
            tracing::info!(service = sid, host = self.host_id, addr = %self.transfer_addr, "registered");
        }
        Ok(())
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let mut iv = tokio::time::interval(self.heartbeat_interval);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A new HA leader hears from us at once (it does not know us:
            // we register again and send the ledger).
            tokio::select! {
                _ = iv.tick() => {}
                _ = self.meta.leader_changed() => {}
            }
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let r = self
                .meta
                .call_timeout(
                    &Request::Heartbeat { service_id: self.id() },
                    self.heartbeat_interval * 2,
                )
                .await;
            match r {
                Ok(Response::HeartbeatAck {
                    known: true,
                    members_epoch,
                    draining,
                    ..
                }) => {
                    self.members_epoch.store(members_epoch, Ordering::Relaxed);
                    let was = self.draining.swap(draining, Ordering::AcqRel);
                    if draining && !was && self.segment.is_some() {
                        tracing::info!(service = self.id(), "the metaservice asks this provider to drain");
                        self.drain_signal.notify_one();
                    }
                }
                Ok(Response::HeartbeatAck { known: false, .. }) => {
                    tracing::warn!(service = self.id(), "metaservice does not know us: registering again");
                    if let Err(e) = self.register().await {
                        tracing::warn!(error = %e, "re-registration failed");
                    }
                }
                Ok(other) => tracing::warn!(?other, "unexpected heartbeat reply"),
                Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
            }
        }
    }

    async fn ledger_loop(self: Arc<Self>) {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let gen = self.generation.load(Ordering::Acquire);
            let (epoch, acked) = {
                let l = self.ledger.lock();
                (l.epoch, l.acked)
            };
            let req = Request::LedgerPoll {
                service_id: self.id(),
                epoch,
                acked,
            };
            match self.meta.call(&req).await {
                Ok(Response::LedgerOps {
                    known: true,
                    last_seq,
                    ops,
                    ..
                }) => {
                    let mut l = self.ledger.lock();
                    if self.generation.load(Ordering::Acquire) != gen {
                        continue;
                    }
                    for op in ops {
                        match op {
                            LedgerOp::Add(e) => {
                                l.entries.insert(e.offset, e);
                            }
                            LedgerOp::Del { offset } => {
                                l.entries.remove(&offset);
                            }
                        }
                    }
                    l.acked = l.acked.max(last_seq);
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// True while the MetaService says this provider is being drained.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Waits until the MetaService asks this provider to drain.
    pub async fn drain_requested(&self) {
        loop {
            let n = self.drain_signal.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.is_draining() || self.closed.load(Ordering::Acquire) {
                return;
            }
            n.await;
        }
    }

    /// True once this provider left the cluster at the end of a drain.
    pub fn is_drained(&self) -> bool {
        *self.drained.borrow()
    }

    /// Waits until this provider has left the cluster at the end of a drain.
    pub async fn wait_drained(&self) {
        let mut rx = self.drained.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Leaves the cluster at the end of a drain (every object moved).
    pub async fn leave_drained(&self) {
        self.close().await;
        self.drained.send_replace(true);
    }

    fn abort_tasks(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// Stops the loops and leaves the cluster gracefully.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.abort_tasks();
        // A drain task parked on the signal ends.
        self.drain_signal.notify_one();
        let id = self.id();
        if id != 0 {
            let _ = self
                .meta
                .call_timeout(&Request::Unregister { service_id: id }, Duration::from_secs(2))
                .await;
        }
    }
}

impl Drop for LocalService {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}
