//! The MetaService's side of one segment's ledger.
//!
//! Each memory-providing LocalService keeps the list of committed replicas
//! that live in its segment, so a MetaService that restarts or fails over can
//! rebuild its index from them. The MetaService queues changes (`Add` at
//! commit, `Del` when a replica's space is released) and the owner pulls them
//! in batches with a long poll, acknowledging by sequence number.
//!
//! Freed space is handed back to the allocator only once the owner has
//! acknowledged the `Del`: otherwise a recovery could pair a stale ledger
//! entry with bytes a later object wrote over, and serve wrong bytes.

use mmc_wire::message::{LedgerEntry, LedgerOp};
use std::collections::VecDeque;
use std::sync::Arc;

/// Most ops handed out by one poll.
pub const MAX_OPS_PER_POLL: usize = 65536;

#[derive(Debug, Default)]
pub struct Ledger {
    /// Which registration of the owner this ledger belongs to: chosen at
    /// random when the owner registers and handed to it. An ack carries the
    /// epoch it counts in, so an ack counted against an earlier MetaService
    /// (or an earlier registration) never acknowledges this ledger's ops.
    epoch: u64,
    /// Sequence number of the newest queued op.
    last_seq: u64,
    /// Highest sequence number the owner acknowledged.
    acked: u64,
    ops: VecDeque<(u64, LedgerOp)>,
    /// Ranges waiting for the ack of their `Del`: (seq, offset, size).
    waiting_frees: VecDeque<(u64, u64, u64)>,
}

impl Ledger {
    /// An empty ledger of registration `epoch`.
    pub fn with_epoch(epoch: u64) -> Ledger {
        Ledger {
            epoch,
            ..Ledger::default()
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn add(&mut self, key: Arc<str>, offset: u64, size: u64, object_id: u64) {
        self.push(LedgerOp::Add(LedgerEntry {
            key,
            offset,
            size,
            object_id,
        }));
    }

    /// Queues the deletion of a replica; its range becomes free once acked.
    pub fn del(&mut self, offset: u64, size: u64) {
        self.push(LedgerOp::Del { offset });
        self.waiting_frees.push_back((self.last_seq, offset, size));
    }

    fn push(&mut self, op: LedgerOp) {
        self.last_seq += 1;
        self.ops.push_back((self.last_seq, op));
    }

    /// Records the owner's ack, counted in ledger `epoch`; returns the
    /// ranges that may now be freed. An ack of another epoch (sent before
    /// the owner registered again, e.g. across a failover) is ignored.
    pub fn ack(&mut self, epoch: u64, acked: u64) -> Vec<(u64, u64)> {
        if epoch != self.epoch {
            return Vec::new();
        }
        let acked = acked.min(self.last_seq);
        if acked > self.acked {
            self.acked = acked;
        }
        while self.ops.front().is_some_and(|(s, _)| *s <= self.acked) {
            self.ops.pop_front();
        }
        let mut freed = Vec::new();
        while let Some(&(s, off, size)) = self.waiting_frees.front() {
            if s > self.acked {
                break;
            }
            self.waiting_frees.pop_front();
            freed.push((off, size));
        }
        freed
    }

    /// Ops after the acknowledged ones (at most [`MAX_OPS_PER_POLL`]) and the
    /// sequence number of the last one handed out.
    pub fn pending(&self) -> (u64, Vec<LedgerOp>) {
        let ops: Vec<LedgerOp> = self.ops.iter().take(MAX_OPS_PER_POLL).map(|(_, o)| o.clone()).collect();
        let last = ops.len().checked_sub(1).map_or(self.acked, |i| self.ops[i].0);
        (last, ops)
    }

    /// Offsets whose `Del` the owner has not acknowledged yet.
    pub fn unacked_dels(&self) -> impl Iterator<Item = u64> + '_ {
        self.waiting_frees.iter().map(|&(_, off, _)| off)
    }

    pub fn has_pending(&self) -> bool {
        !self.ops.is_empty()
    }

    /// Bytes waiting for an ack before they return to the allocator.
    pub fn waiting_bytes(&self) -> u64 {
        self.waiting_frees
            .iter()
            .map(|&(_, _, s)| crate::allocator::align_up(s))
            .fold(0u64, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frees_only_after_ack() {
        let mut l = Ledger::default();
        l.add("a".into(), 0, 10, 1);
        l.del(0, 10);
        l.add("b".into(), 4096, 10, 2);
        let (last, ops) = l.pending();
        assert_eq!((last, ops.len()), (3, 3));
        assert!(l.ack(0, 1).is_empty());
        assert_eq!(l.ack(0, 2), vec![(0, 10)]);
        assert_eq!(l.pending().1.len(), 1);
        assert!(l.ack(0, 99).is_empty(), "ack beyond the queue is clamped");
        assert!(!l.has_pending());
        assert_eq!(l.pending().0, 3);
    }

    #[test]
    fn an_ack_of_another_epoch_acknowledges_nothing() {
        let mut l = Ledger::with_epoch(7);
        for i in 0..5u64 {
            l.add(format!("k{i}").into(), i * 4096, 10, i + 1);
        }
        l.del(0, 10);
        // An ack counted by an earlier MetaService, far beyond this queue.
        assert!(l.ack(6, 5_000).is_empty(), "no range freed by a stale ack");
        assert!(l.has_pending());
        assert_eq!(l.pending().1.len(), 6, "every op still goes to the owner");
        assert_eq!(l.ack(7, 6), vec![(0, 10)]);
        assert!(!l.has_pending());
    }
}
