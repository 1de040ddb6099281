//! [`AdminClient`]: the MetaService's control requests for tools and tests
//! (`mmc stat`, `mmc top`, `mmc drain`): one control connection, with the
//! cluster token, TLS and HA leader lookup a LocalService would use, that
//! joins nothing (no registration, no segment, no heartbeat).

use crate::leader::LeaderResolver;
use crate::meta_client::{unexpected, MetaClient};
use mmc_tls::ClientTls;
use mmc_wire::auth::ClusterToken;
use mmc_wire::message::{ClusterStat, DrainReport, Request, Response};
use mmc_wire::{Result, ServiceId};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// A control-RPC client of a MetaService. Connects on the first call and
/// again after a failure; every call waits at most the timeout it was
/// built with.
pub struct AdminClient {
    meta: MetaClient,
}

impl AdminClient {
    /// A client of the MetaService at `addr` whose calls time out after
    /// `timeout`; its connection's tasks run on `handle`.
    pub fn new(addr: String, timeout: Duration, handle: Handle) -> Self {
        AdminClient {
            meta: MetaClient::new(addr, timeout, Duration::ZERO, handle),
        }
    }

    /// The cluster token to prove on every connection.
    pub fn with_token(mut self, token: Option<ClusterToken>) -> Self {
        self.meta = self.meta.with_token(token);
        self
    }

    /// Speak TLS with these settings (`None`: plain TCP).
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Self {
        self.meta = self.meta.with_tls(tls);
        self
    }

    /// An HA cluster: reach the leader that the etcd `endpoints` name for
    /// `cluster` (none: the fixed address), waiting up to `wait` for one
    /// (`local.leader_wait_ms`).
    pub fn with_etcd(mut self, endpoints: Vec<String>, cluster: &str, wait: Duration) -> Self {
        let resolver = (!endpoints.is_empty()).then(|| Arc::new(LeaderResolver::new(endpoints, cluster)));
        self.meta = self.meta.with_leader_resolver(resolver, wait);
        self
    }

    /// Any control request of the wire protocol (`mmc_wire::message`), its
    /// answer as sent (a result code other than success is the `Err`).
    pub async fn call(&self, req: &Request) -> Result<Response> {
        self.meta.call(req).await
    }

    /// The cluster state as the MetaService sees it now (`Stat`).
    pub async fn stat(&self) -> Result<ClusterStat> {
        match self.call(&Request::Stat).await? {
            Response::Stat(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Starts draining the memory provider `service_id` (see
    /// [`ObjectStore::drain_start`](crate::ObjectStore::drain_start)).
    pub async fn drain_start(&self, service_id: ServiceId) -> Result<DrainReport> {
        match self.call(&Request::Drain { service_id }).await? {
            Response::Drain(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// The report of the drain of `service_id`, running or finished.
    pub async fn drain_status(&self, service_id: ServiceId) -> Result<DrainReport> {
        match self.call(&Request::DrainStatus { service_id }).await? {
            Response::Drain(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}
