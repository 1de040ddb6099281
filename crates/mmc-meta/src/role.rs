//! The role a MetaService plays in HA mode (leader or standby), consulted
//! before every control request: a standby, and a leader whose lease no
//! longer surely holds (fencing), refuse with NOT_LEADER naming the leader
//! they know of; a serving leader stamps its commands with its term.

use crate::election::{LeaderInfo, LeaseGuard};
use mmc_wire::{Error, ErrorKind};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The role of one MetaService in HA mode.
#[derive(Default)]
pub struct Role {
    /// This MetaService's term once elected (0: never elected).
    term: AtomicU64,
    /// The lease its leadership is bound to, once elected.
    lease: OnceLock<LeaseGuard>,
    /// The leader last seen in the coordination service.
    leader: Mutex<Option<LeaderInfo>>,
    /// Requests refused while not leading (standby or fenced).
    pub refused: AtomicU64,
}

impl Role {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records winning the election: serve from now on, while `lease` holds.
    pub fn become_leader(&self, term: u64, lease: LeaseGuard) {
        let _ = self.lease.set(lease);
        self.term.store(term, Ordering::Release);
    }

    /// Records the leader seen in the coordination service.
    pub fn set_leader(&self, l: Option<LeaderInfo>) {
        *self.leader.lock() = l;
    }

    /// The leader term when this MetaService serves now, else NOT_LEADER
    /// naming the leader it knows of.
    pub fn check(&self) -> Result<u64, Error> {
        let term = self.term.load(Ordering::Acquire);
        if term != 0 && self.lease.get().is_some_and(LeaseGuard::is_valid) {
            return Ok(term);
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        let known = match &*self.leader.lock() {
            Some(l) if term == 0 => format!("the leader is {} (term {})", l.addr, l.term),
            _ if term != 0 => "this MetaService lost its etcd lease and stepped down".to_string(),
            _ => "no leader is known yet".to_string(),
        };
        Err(Error::new(
            ErrorKind::NotLeader,
            if term == 0 {
                format!("this MetaService is a standby; {known}")
            } else {
                known
            },
        ))
    }

    /// "leader" while serving, else "standby".
    pub fn name(&self) -> &'static str {
        if self.check_quiet() {
            "leader"
        } else {
            "standby"
        }
    }

    fn check_quiet(&self) -> bool {
        self.term.load(Ordering::Acquire) != 0 && self.lease.get().is_some_and(LeaseGuard::is_valid)
    }

    /// This MetaService's term (0 before it was elected).
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn standby_refuses_naming_the_leader_and_a_lapsed_leader_is_fenced() {
        let r = Role::new();
        r.set_leader(Some(LeaderInfo {
            addr: "10.1.1.1:5000".into(),
            term: 7,
        }));
        let e = r.check().unwrap_err();
        assert_eq!(e.code(), mmc_wire::error::code::NOT_LEADER);
        assert!(e.to_string().contains("10.1.1.1:5000"), "{e}");
        assert_eq!(r.name(), "standby");
        let lease = LeaseGuard::new(Instant::now() + Duration::from_secs(60));
        r.become_leader(9, lease.clone());
        assert_eq!(r.check(), Ok(9));
        assert_eq!(r.name(), "leader");
        lease.set_lost();
        let e = r.check().unwrap_err();
        assert!(e.to_string().contains("stepped down"), "{e}");
        assert_eq!(r.refused.load(Ordering::Relaxed), 2);
    }
}
