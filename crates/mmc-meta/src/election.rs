//! Leader election of HA mode: the [`Election`] trait (campaign, leader,
//! observe, resign), the [`Leadership`] a won campaign hands over with its
//! term, and the [`LeaseGuard`] that says whether leadership still holds
//! (the leadership-lost notification). The etcd backend is [`etcd`].
//!
//! Fencing rests on the guard: leadership is bound to a lease of the
//! coordination service with a TTL, renewed by the leader; the guard counts
//! a renewal as good for three quarters of the TTL from the moment it was
//! *sent* (the service extends the lease no earlier than it receives it), so
//! a leader stops serving before the service can let its lease lapse and
//! elect another, as long as the two clocks run at about the same rate.

pub mod etcd;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure talking to the coordination service, with what was attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionError(pub String);

impl std::fmt::Display for ElectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ElectionError {}

/// The current leader as published in the coordination service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// Its control-RPC address (`host:port`).
    pub addr: String,
    /// Its term: grows with every new leader of the cluster.
    pub term: u64,
}

/// What a won campaign hands over.
pub struct Leadership {
    /// This leader's term (above every earlier leader's).
    pub term: u64,
    /// Whether leadership still holds; [`LeaseGuard::lost`] resolves when
    /// it no longer does.
    pub lease: LeaseGuard,
}

/// Leader election in one cluster.
pub trait Election: Send + Sync {
    /// Waits until this candidate leads, with `addr` published as the
    /// leader's address. Retries through outages of the coordination
    /// service; fails only when it cannot campaign at all.
    fn campaign<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, Result<Leadership, ElectionError>>;
    /// The current leader, `None` when there is none.
    fn leader(&self) -> BoxFuture<'_, Result<Option<LeaderInfo>, ElectionError>>;
    /// Follows the leader: the receiver holds the latest one seen.
    fn observe(&self) -> watch::Receiver<Option<LeaderInfo>>;
    /// Gives leadership up (so a standby takes over without waiting for the
    /// lease to lapse) and ends this candidate's lease.
    fn resign(&self) -> BoxFuture<'_, Result<(), ElectionError>>;

    /// Records, for the leaders after this one, that the provider whose
    /// segment carries `nonce` was declared dead; the record lapses after
    /// `keep` (when its ledger would be void anyway).
    fn record_dead(&self, nonce: u64, keep: Duration) -> BoxFuture<'_, Result<(), ElectionError>>;

    /// Deletes the record of a provider that came back in time.
    fn forget_dead(&self, nonce: u64) -> BoxFuture<'_, Result<(), ElectionError>>;

    /// Segment nonces of the providers that earlier leaders declared dead
    /// (records not lapsed).
    fn dead_providers(&self) -> BoxFuture<'_, Result<Vec<u64>, ElectionError>>;
}

/// Whether a lease (and the leadership bound to it) still holds: valid
/// until a deadline that each renewal pushes forward, or until it is known
/// lost. Cheap to check on every request.
#[derive(Clone)]
pub struct LeaseGuard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    base: Instant,
    /// Nanoseconds after `base` until which the lease surely holds.
    valid_until_ns: AtomicU64,
    lost: AtomicBool,
    lost_tx: watch::Sender<bool>,
}

impl LeaseGuard {
    /// A guard valid until `until`.
    pub fn new(until: Instant) -> Self {
        let base = Instant::now();
        let (lost_tx, _) = watch::channel(false);
        let g = LeaseGuard {
            inner: Arc::new(GuardInner {
                base,
                valid_until_ns: AtomicU64::new(0),
                lost: AtomicBool::new(false),
                lost_tx,
            }),
        };
        g.extend(until);
        g
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.inner.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Moves the deadline forward to `until` (never back).
    pub fn extend(&self, until: Instant) {
        self.inner.valid_until_ns.fetch_max(self.ns(until), Ordering::AcqRel);
    }

    /// True while the lease surely holds.
    pub fn is_valid(&self) -> bool {
        !self.inner.lost.load(Ordering::Acquire)
            && self.ns(Instant::now()) < self.inner.valid_until_ns.load(Ordering::Acquire)
    }

    /// Time left before the deadline (zero once passed or lost).
    pub fn remaining(&self) -> Duration {
        if self.inner.lost.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        let until = self.inner.valid_until_ns.load(Ordering::Acquire);
        Duration::from_nanos(until.saturating_sub(self.ns(Instant::now())))
    }

    /// Marks the lease lost for good (revoked, expired, or not renewed in
    /// time) and wakes [`lost`](Self::lost).
    pub fn set_lost(&self) {
        self.inner.lost.store(true, Ordering::Release);
        self.inner.lost_tx.send_replace(true);
    }

    /// Resolves once the lease no longer holds: marked lost, or its
    /// deadline passed without a renewal.
    pub async fn lost(&self) {
        let mut rx = self.inner.lost_tx.subscribe();
        loop {
            if !self.is_valid() {
                return;
            }
            let left = self.remaining();
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return; } }
                _ = tokio::time::sleep(left) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn guard_lapses_without_renewal_and_on_loss() {
        let g = LeaseGuard::new(Instant::now() + Duration::from_millis(50));
        assert!(g.is_valid());
        g.lost().await;
        assert!(!g.is_valid(), "the deadline passed");
        g.extend(Instant::now() + Duration::from_secs(60));
        assert!(g.is_valid(), "a renewal moves the deadline");
        let g2 = g.clone();
        let waiter = tokio::spawn(async move { g2.lost().await });
        g.set_lost();
        waiter.await.unwrap();
        assert!(!g.is_valid());
        assert_eq!(g.remaining(), Duration::ZERO);
    }
}
