//! The etcd backend of [`Election`]: etcd's election service (v3election)
//! over a lease of `meta.ha.lease_ttl_s` that a task keeps alive.
//!
//! The election name is [`mmc_config::ha_election_name`] of the cluster;
//! each candidate's key under it holds its control address, and the leader
//! is the candidate whose key was created first. The leader's term is that
//! key's create revision: a later leader's key was created after every key
//! that existed while an earlier one led, so terms only grow.
//!
//! Everything read from etcd is checked: an address that is not UTF-8 or is
//! over 255 bytes, or a revision that is not positive, is an error, never a
//! panic.

use super::{BoxFuture, Election, ElectionError, LeaderInfo, Leadership, LeaseGuard};
use etcd_client::{Client, ConnectOptions, LeaderKey, ResignOptions};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest a single etcd request (other than a campaign) may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest address accepted from etcd.
const MAX_ADDR: usize = 255;

struct Session {
    id: i64,
    guard: LeaseGuard,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

/// An etcd-backed candidate of one cluster's election.
pub struct EtcdElection {
    client: Client,
    name: String,
    ttl: Duration,
    session: tokio::sync::Mutex<Option<Session>>,
    leader_key: Mutex<Option<LeaderKey>>,
    observed: watch::Sender<Option<LeaderInfo>>,
    observer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for EtcdElection {
    fn drop(&mut self) {
        if let Some(t) = self.observer.lock().take() {
            t.abort();
        }
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> ElectionError {
    ElectionError(format!("etcd {what}: {e}"))
}

/// Connects (lazily: etcd need not be up yet) to `endpoints` for the
/// election of `cluster`.
pub async fn client(endpoints: &[String]) -> Result<Client, ElectionError> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(RPC_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), RPC_TIMEOUT)
        .with_keep_alive_while_idle(true);
    Client::connect(endpoints, Some(opts))
        .await
        .map_err(|e| err(&format!("connect to {endpoints:?}"), e))
}

/// Reads the leader of election `name`: `None` when there is none.
pub async fn read_leader(client: &Client, name: &str) -> Result<Option<LeaderInfo>, ElectionError> {
    let mut ec = client.election_client();
    match tokio::time::timeout(RPC_TIMEOUT, ec.leader(name)).await {
        Err(_) => Err(ElectionError(format!(
            "etcd leader of {name}: no answer within {RPC_TIMEOUT:?}"
        ))),
        Ok(Err(etcd_client::Error::GRpcStatus(s))) if s.message().contains("no leader") => Ok(None),
        Ok(Err(e)) => Err(err(&format!("leader of {name}"), e)),
        Ok(Ok(resp)) => match resp.kv() {
            None => Ok(None),
            Some(kv) => leader_info(kv.value(), kv.create_revision()).map(Some),
        },
    }
}

/// Checks a leader record read from etcd.
pub fn leader_info(value: &[u8], revision: i64) -> Result<LeaderInfo, ElectionError> {
    if value.is_empty() || value.len() > MAX_ADDR {
        return Err(ElectionError(format!(
            "etcd leader record: address of {} bytes (1 to {MAX_ADDR} expected)",
            value.len()
        )));
    }
    let addr = std::str::from_utf8(value)
        .map_err(|_| ElectionError("etcd leader record: address is not UTF-8".into()))?
        .to_string();
    let term = u64::try_from(revision)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| ElectionError(format!("etcd leader record: revision {revision} is not positive")))?;
    Ok(LeaderInfo { addr, term })
}

/// Where the records of dead providers live: beside the election's keys,
/// not under its prefix (every key under `<name>/` is a candidate).
fn dead_prefix(election_name: &str) -> String {
    format!("{election_name}-dead/")
}

impl EtcdElection {
    /// A candidate in `cluster`'s election through `endpoints`, with
    /// leases of `ttl_s` seconds. Starts observing the leader at once.
    pub async fn connect(endpoints: &[String], cluster: &str, ttl_s: u64) -> Result<Arc<Self>, ElectionError> {
        let client = client(endpoints).await?;
        let (observed, _) = watch::channel(None);
        let e = Arc::new(EtcdElection {
            client,
            name: mmc_config::ha_election_name(cluster),
            ttl: Duration::from_secs(ttl_s.clamp(1, 3600)),
            session: tokio::sync::Mutex::new(None),
            leader_key: Mutex::new(None),
            observed,
            observer: Mutex::new(None),
        });
        let task = tokio::spawn(observe_loop(Arc::downgrade(&e)));
        *e.observer.lock() = Some(task);
        Ok(e)
    }

    /// The lease of this candidate, granted (with its keep-alive task) when
    /// there is none or the last one was lost.
    async fn session(&self) -> Result<(i64, LeaseGuard), ElectionError> {
        let mut s = self.session.lock().await;
        if let Some(cur) = s.as_ref() {
            if cur.guard.is_valid() {
                return Ok((cur.id, cur.guard.clone()));
            }
        }
        *s = None;
        let ttl_s = i64::try_from(self.ttl.as_secs()).unwrap_or(3600);
        let sent = Instant::now();
        let mut client = self.client.clone();
        let resp = tokio::time::timeout(RPC_TIMEOUT, client.lease_grant(ttl_s, None))
            .await
            .map_err(|_| ElectionError(format!("etcd lease grant: no answer within {RPC_TIMEOUT:?}")))?
            .map_err(|e| err("lease grant", e))?;
        if resp.ttl() <= 0 || resp.id() == 0 {
            return Err(ElectionError(format!(
                "etcd lease grant: lease {} with ttl {}",
                resp.id(),
                resp.ttl()
            )));
        }
        // etcd may raise a TTL below its minimum; it never lowers one.
        let ttl = self.ttl.min(Duration::from_secs(resp.ttl().unsigned_abs()));
        let guard = LeaseGuard::new(sent + ttl * 3 / 4);
        let keepalive = tokio::spawn(keep_alive(self.client.clone(), resp.id(), ttl, guard.clone()));
        tracing::info!(lease = resp.id(), ttl_s = ttl.as_secs(), "etcd lease granted");
        *s = Some(Session {
            id: resp.id(),
            guard: guard.clone(),
            keepalive,
        });
        Ok((resp.id(), guard))
    }

    async fn campaign_once(&self, addr: &str) -> Result<Option<Leadership>, ElectionError> {
        let (lease, guard) = self.session().await?;
        let mut ec = self.client.election_client();
        let won = tokio::select! {
            r = ec.campaign(self.name.as_str(), addr, lease) => r.map_err(|e| err("campaign", e))?,
            _ = guard.lost() => {
                tracing::warn!(lease, "etcd lease lost while campaigning; campaigning again with a new one");
                return Ok(None);
            }
        };
        let Some(key) = won.leader().cloned() else {
            return Err(ElectionError("etcd campaign answered without a leader key".into()));
        };
        let term = u64::try_from(key.rev())
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| ElectionError(format!("etcd campaign: revision {} is not positive", key.rev())))?;
        if !guard.is_valid() {
            return Ok(None);
        }
        *self.leader_key.lock() = Some(key);
        Ok(Some(Leadership { term, lease: guard }))
    }
}

/// Keeps lease `id` alive every quarter TTL; each answered renewal makes
/// the guard valid for three quarters of the TTL from when it was sent. The
/// guard is marked lost when etcd says the lease is gone, or when its
/// deadline passes without a renewal (etcd unreachable or too slow).
async fn keep_alive(mut client: Client, id: i64, ttl: Duration, guard: LeaseGuard) {
    let every = (ttl / 4).max(Duration::from_millis(100));
    'stream: loop {
        if !guard.is_valid() {
            break;
        }
        let opened = tokio::time::timeout(every, client.lease_keep_alive(id)).await;
        let (mut keeper, mut stream) = match opened {
            Ok(Ok(ks)) => ks,
            Ok(Err(e)) => {
                tracing::warn!(lease = id, error = %e, "etcd lease keep-alive stream failed; retrying");
                tokio::time::sleep(every / 2).await;
                continue;
            }
            Err(_) => continue,
        };
        loop {
            let sent = Instant::now();
            if keeper.keep_alive().await.is_err() {
                continue 'stream;
            }
            match tokio::time::timeout(every, stream.message()).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => guard.extend(sent + ttl * 3 / 4),
                Ok(Ok(Some(_))) => {
                    tracing::warn!(lease = id, "etcd says the lease expired");
                    guard.set_lost();
                    return;
                }
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    if !guard.is_valid() {
                        break 'stream;
                    }
                    continue 'stream;
                }
            }
            if !guard.is_valid() {
                break 'stream;
            }
            tokio::time::sleep_until((sent + every).into()).await;
        }
    }
    tracing::warn!(lease = id, "etcd lease not renewed in time: lost");
    guard.set_lost();
}

/// Follows the election's leader into `observed` until the election is
/// dropped; re-subscribes after errors.
async fn observe_loop(e: std::sync::Weak<EtcdElection>) {
    loop {
        let Some(this) = e.upgrade() else { return };
        let (client, name, tx) = (this.client.clone(), this.name.clone(), this.observed.clone());
        drop(this);
        if let Ok(Some(l)) = read_leader(&client, &name).await {
            tx.send_replace(Some(l));
        }
        let mut ec = client.election_client();
        if let Ok(mut stream) = ec.observe(name.as_str()).await {
            while let Ok(Some(r)) = stream.message().await {
                if let Some(kv) = r.kv() {
                    match leader_info(kv.value(), kv.create_revision()) {
                        Ok(l) => {
                            tx.send_replace(Some(l));
                        }
                        Err(err) => tracing::warn!(error = %err, "ignoring a bad leader record"),
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl Election for EtcdElection {
    fn campaign<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, Result<Leadership, ElectionError>> {
        Box::pin(async move {
            if addr.is_empty() || addr.len() > MAX_ADDR {
                return Err(ElectionError(format!("cannot campaign with address {addr:?}")));
            }
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.campaign_once(addr).await {
                    Ok(Some(l)) => return Ok(l),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "campaign failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        })
    }

    fn leader(&self) -> BoxFuture<'_, Result<Option<LeaderInfo>, ElectionError>> {
        Box::pin(read_leader(&self.client, &self.name))
    }

    fn observe(&self) -> watch::Receiver<Option<LeaderInfo>> {
        self.observed.subscribe()
    }

    fn record_dead(&self, nonce: u64, keep: Duration) -> BoxFuture<'_, Result<(), ElectionError>> {
        Box::pin(async move {
            let mut client = self.client.clone();
            let ttl = i64::try_from(keep.as_secs().max(1)).unwrap_or(i64::MAX);
            let lease = tokio::time::timeout(RPC_TIMEOUT, client.lease_grant(ttl, None))
                .await
                .map_err(|_| ElectionError("etcd lease grant (dead provider record): no answer".into()))?
                .map_err(|e| err("lease grant (dead provider record)", e))?;
            let key = format!("{}{nonce:016x}", dead_prefix(&self.name));
            let opts = etcd_client::PutOptions::new().with_lease(lease.id());
            tokio::time::timeout(RPC_TIMEOUT, client.put(key, Vec::new(), Some(opts)))
                .await
                .map_err(|_| ElectionError("etcd put (dead provider record): no answer".into()))?
                .map_err(|e| err("put (dead provider record)", e))?;
            Ok(())
        })
    }

    fn forget_dead(&self, nonce: u64) -> BoxFuture<'_, Result<(), ElectionError>> {
        Box::pin(async move {
            let mut client = self.client.clone();
            let key = format!("{}{nonce:016x}", dead_prefix(&self.name));
            tokio::time::timeout(RPC_TIMEOUT, client.delete(key, None))
                .await
                .map_err(|_| ElectionError("etcd delete (dead provider record): no answer".into()))?
                .map_err(|e| err("delete (dead provider record)", e))?;
            Ok(())
        })
    }

    fn dead_providers(&self) -> BoxFuture<'_, Result<Vec<u64>, ElectionError>> {
        Box::pin(async move {
            let mut client = self.client.clone();
            let prefix = dead_prefix(&self.name);
            let opts = etcd_client::GetOptions::new().with_prefix().with_keys_only();
            let resp = tokio::time::timeout(RPC_TIMEOUT, client.get(prefix.as_str(), Some(opts)))
                .await
                .map_err(|_| ElectionError("etcd get (dead provider records): no answer".into()))?
                .map_err(|e| err("get (dead provider records)", e))?;
            Ok(resp
                .kvs()
                .iter()
                .filter_map(|kv| {
                    let k = std::str::from_utf8(kv.key()).ok()?;
                    u64::from_str_radix(k.strip_prefix(prefix.as_str())?, 16).ok()
                })
                .collect())
        })
    }

    fn resign(&self) -> BoxFuture<'_, Result<(), ElectionError>> {
        Box::pin(async move {
            let key = self.leader_key.lock().take();
            let mut first = Ok(());
            if let Some(key) = key {
                let mut ec = self.client.election_client();
                let r = tokio::time::timeout(RPC_TIMEOUT, ec.resign(Some(ResignOptions::new().with_leader(key)))).await;
                if let Some(e) = match r {
                    Err(_) => Some(ElectionError("etcd resign: no answer".into())),
                    Ok(Err(e)) => Some(err("resign", e)),
                    Ok(Ok(_)) => None,
                } {
                    first = Err(e);
                }
            }
            if let Some(s) = self.session.lock().await.take() {
                s.guard.set_lost();
                let mut client = self.client.clone();
                let _ = tokio::time::timeout(RPC_TIMEOUT, client.lease_revoke(s.id)).await;
            }
            first
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_records_from_etcd_are_checked() {
        assert_eq!(
            leader_info(b"10.0.0.1:5000", 42).unwrap(),
            LeaderInfo {
                addr: "10.0.0.1:5000".into(),
                term: 42
            }
        );
        assert!(leader_info(b"", 1).is_err());
        assert!(leader_info(&[b'a'; 256], 1).is_err());
        assert!(leader_info(&[0xff, 0xfe], 1).is_err());
        assert!(leader_info(b"h:1", 0).is_err());
        assert!(leader_info(b"h:1", -5).is_err());
    }
}
