//! Housekeeping: the periodic tick (dead services, timed-out writes,
//! expired leases of removed objects, background eviction).

use super::MetaState;
use crate::object::Object;
use mmc_wire::{Medium, ServiceId};
use std::sync::atomic::Ordering;

impl MetaState {
    /// Periodic work: dead LocalServices, timed-out writes, expired leases
    /// of removed objects, background eviction above the high watermark.
    pub fn tick(&self) {
        let now = self.now();
        let dead = self.members.lock().expired(now, self.params.heartbeat_timeout_ms);
        for id in dead {
            self.declare_dead(id, "heartbeat timeout");
        }
        if self.recording.load(Ordering::SeqCst) {
            let recovering = self.segments_recovering() > 0;
            let mut r = self.returns.lock();
            let open = r.prune(now, recovering);
            self.recording.store(open, Ordering::SeqCst);
        }
        self.reap_writes(now);
        self.reap_zombies(now);
        self.background_evict(now);
    }

    fn reap_writes(&self, now: u64) {
        loop {
            let (h, id) = {
                let mut w = self.writing.lock();
                match w.first_key_value() {
                    Some((_, &(since, _))) if now.saturating_sub(since) >= self.params.put_timeout_ms => {
                        let (id, (_, h)) = w.pop_first().expect("first");
                        (h, id)
                    }
                    _ => return,
                }
            };
            if let Some((key, o)) = self.index.remove_hashed(h, id, |o| !o.is_readable()) {
                Self::free_replicas(&mut self.members.lock(), &o);
                self.counters.put_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = &*key, "write not committed within put_timeout: space reclaimed");
            }
        }
    }

    fn reap_zombies(&self, now: u64) {
        let done: Vec<Object> = {
            let mut z = self.zombies.lock();
            let (done, keep) = std::mem::take(&mut *z)
                .into_iter()
                .partition(|o| !o.lease.is_active(now));
            *z = keep;
            done
        };
        if !done.is_empty() {
            let mut m = self.members.lock();
            for o in &done {
                Self::free_replicas(&mut m, o);
            }
        }
    }

    fn background_evict(&self, now: u64) {
        for medium in Medium::ALL {
            let (cap, used) = {
                let m = self.members.lock();
                let (cap, used) = m.medium_usage(medium);
                // Bytes whose Del awaits the owner's ack are already
                // evicted: without this every tick before the ack would
                // evict another `used - target` bytes.
                let waiting: u64 = m
                    .members
                    .values()
                    .filter_map(|x| x.segment.as_ref())
                    .filter(|s| s.medium == medium)
                    .map(|s| s.ledger.waiting_bytes())
                    .sum();
                (cap, used.saturating_sub(waiting))
            };
            if cap == 0 || used * 100 < cap * self.params.high_watermark as u64 {
                continue;
            }
            let target = cap * self.params.low_watermark as u64 / 100;
            let want = used.saturating_sub(target);
            let segs: Vec<ServiceId> = {
                let m = self.members.lock();
                m.members
                    .iter()
                    .filter(|(_, x)| x.segment.as_ref().is_some_and(|s| s.medium == medium))
                    .map(|(id, _)| *id)
                    .collect()
            };
            let freed = self.evict_on(&segs, want, now);
            if freed > 0 {
                tracing::debug!(medium = medium.name(), freed, "background eviction");
            }
        }
    }
}
