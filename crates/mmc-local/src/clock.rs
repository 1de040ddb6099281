//! Time source for the LocalService's time-dependent decisions, injectable
//! so tests drive them by hand (as `mmc-meta`'s `clock.rs` does for the
//! MetaService): whether a read lease has run out ([`LeaseDeadline`]: a get
//! whose copy ends after it is `LEASE_EXPIRED`), how long a connect keeps
//! retrying ([`RetryWindow`]) and how a client waits for an HA leader
//! ([`Backoff`]).
//!
//! The code paths name their clock's type, not a trait object: the real
//! clocks are zero-sized and `now()` inlines to the clock read it replaces,
//! so the put and get paths pay nothing for the seam. Heartbeats and the
//! other periodic tasks are paced by Tokio's timer and decide nothing from
//! the time they read.

use mmc_wire::{Error, ErrorKind, Result};
use std::time::{Duration, Instant};

pub(crate) trait Clock {
    /// The current instant of this clock.
    fn now(&self) -> Instant;
}

/// The real monotonic clock (`Instant::now`), of the get path and leases.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    #[inline(always)]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The clock of Tokio's timer (`tokio::time::Instant::now`), of retry loops
/// that sleep on that timer.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    #[inline(always)]
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A clock that moves only when told to.
#[cfg(test)]
pub(crate) struct ManualClock {
    origin: Instant,
    elapsed: parking_lot::Mutex<Duration>,
}

#[cfg(test)]
impl ManualClock {
    pub(crate) fn new() -> Self {
        ManualClock {
            origin: Instant::now(),
            elapsed: parking_lot::Mutex::new(Duration::ZERO),
        }
    }

    pub(crate) fn advance(&self, by: Duration) {
        *self.elapsed.lock() += by;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + *self.elapsed.lock()
    }
}

/// Longest read lease honoured (the largest `meta.lease_ms`).
pub(crate) const MAX_LEASE_MS: u64 = 3_600_000;

/// When a read lease ends: bytes copied under it are good only when the
/// copy completed before then.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct LeaseDeadline(Instant);

impl LeaseDeadline {
    /// The end of a lease of `lease_ms` granted to a request sent at `sent`
    /// (counted from the send: the MetaService granted it later). A lease
    /// is at most the longest `meta.lease_ms` accepted: a larger number
    /// would overflow the deadline.
    #[inline]
    pub(crate) fn granted(sent: Instant, lease_ms: u64) -> Self {
        LeaseDeadline(sent + Duration::from_millis(lease_ms.min(MAX_LEASE_MS)))
    }

    /// Whether the lease had ended at `now`.
    #[inline]
    pub(crate) fn expired_at(self, now: Instant) -> bool {
        now >= self.0
    }

    /// Whether the lease has ended by `clock`.
    #[inline]
    pub(crate) fn expired(self, clock: &impl Clock) -> bool {
        self.expired_at(clock.now())
    }

    /// `LeaseExpired` once the lease has ended, for a copy that just
    /// completed under it.
    #[inline]
    pub(crate) fn check(self, clock: &impl Clock) -> Result<()> {
        if self.expired(clock) {
            Err(Error::from(ErrorKind::LeaseExpired))
        } else {
            Ok(())
        }
    }
}

/// How a client waits for a MetaService leader: a try, then pauses of 20 ms
/// doubling up to 200 ms between tries, giving up when the next pause would
/// end past `local.leader_wait_ms` from the start.
pub(crate) struct Backoff {
    deadline: Instant,
    next: Duration,
}

impl Backoff {
    pub(crate) const FIRST: Duration = Duration::from_millis(20);
    pub(crate) const MAX: Duration = Duration::from_millis(200);

    pub(crate) fn start(clock: &impl Clock, wait: Duration) -> Self {
        Backoff {
            deadline: clock.now() + wait,
            next: Self::FIRST,
        }
    }

    /// The pause before the next try, or `None`: give up.
    pub(crate) fn next_pause(&mut self, clock: &impl Clock) -> Option<Duration> {
        let pause = self.next;
        if clock.now() + pause > self.deadline {
            return None;
        }
        self.next = (pause * 2).min(Self::MAX);
        Some(pause)
    }
}

/// How long a failing connect is tried again: while a pause of `interval`
/// still ends within the window.
pub(crate) struct RetryWindow {
    give_up: Instant,
}

impl RetryWindow {
    pub(crate) fn start(clock: &impl Clock, window: Duration) -> Self {
        RetryWindow {
            give_up: clock.now() + window,
        }
    }

    /// Whether to pause `interval` and try again.
    pub(crate) fn again_after(&self, clock: &impl Clock, interval: Duration) -> bool {
        clock.now() + interval <= self.give_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lease_that_runs_out_mid_read_is_lease_expired() {
        let clock = ManualClock::new();
        // The lookup is sent; the MetaService grants a 2 s lease.
        let lease = LeaseDeadline::granted(clock.now(), 2000);
        clock.advance(300 * MS); // the lookup's round trip
        assert_eq!(lease.check(&clock), Ok(()), "a copy done well inside the lease");
        clock.advance(1699 * MS); // a long copy, ending 1 ms before the end
        assert_eq!(lease.check(&clock), Ok(()));
        clock.advance(MS); // ends exactly at the deadline: the bytes may be reused
        assert_eq!(lease.check(&clock), Err(Error::from(ErrorKind::LeaseExpired)));
        assert!(lease.expired(&clock));
        clock.advance(10_000 * MS);
        assert_eq!(lease.check(&clock), Err(Error::from(ErrorKind::LeaseExpired)));
    }

    #[test]
    fn a_lease_is_at_most_an_hour_and_never_overflows() {
        let clock = ManualClock::new();
        let sent = clock.now();
        let huge = LeaseDeadline::granted(sent, u64::MAX);
        assert_eq!(huge, LeaseDeadline::granted(sent, MAX_LEASE_MS));
        clock.advance(Duration::from_millis(MAX_LEASE_MS) - MS);
        assert_eq!(huge.check(&clock), Ok(()));
        clock.advance(MS);
        assert_eq!(huge.check(&clock), Err(Error::from(ErrorKind::LeaseExpired)));
        // A zero lease has ended when granted.
        assert_eq!(
            LeaseDeadline::granted(clock.now(), 0).check(&clock),
            Err(Error::from(ErrorKind::LeaseExpired))
        );
        // Deadlines order by time (a lease taken again keeps the later one).
        assert!(LeaseDeadline::granted(sent, 5) < LeaseDeadline::granted(sent, 6));
    }

    /// Runs a leader wait whose every try fails: the pauses it took.
    fn wait_for_a_leader_that_never_comes(clock: &ManualClock, wait: Duration) -> (u32, Vec<Duration>) {
        let mut backoff = Backoff::start(clock, wait);
        let (mut tries, mut pauses) = (0, Vec::new());
        loop {
            tries += 1;
            clock.advance(MS); // the try itself
            match backoff.next_pause(clock) {
                Some(p) => {
                    pauses.push(p);
                    clock.advance(p);
                }
                None => return (tries, pauses),
            }
        }
    }

    #[test]
    fn leader_wait_backs_off_doubling_to_a_bound_and_gives_up_at_its_deadline() {
        let clock = ManualClock::new();
        let start = clock.now();
        let (tries, pauses) = wait_for_a_leader_that_never_comes(&clock, Duration::from_secs(1));
        let ms: Vec<u64> = pauses.iter().map(|p| p.as_millis() as u64).collect();
        assert_eq!(ms, [20, 40, 80, 160, 200, 200, 200]);
        assert_eq!(tries, 8);
        // It gave up before the deadline rather than sleep past it...
        assert!(clock.now() - start <= Duration::from_secs(1));
        // ...and not earlier than one bounded pause before it.
        assert!(clock.now() - start + Backoff::MAX > Duration::from_secs(1));

        // A long wait keeps every pause at the bound.
        let clock = ManualClock::new();
        let (_, pauses) = wait_for_a_leader_that_never_comes(&clock, Duration::from_secs(60));
        assert!(pauses.len() > 250);
        assert!(pauses.iter().all(|p| *p <= Backoff::MAX));
        assert!(pauses[4..].iter().all(|p| *p == Backoff::MAX));

        // No wait: one try, no pause.
        let clock = ManualClock::new();
        assert_eq!(wait_for_a_leader_that_never_comes(&clock, Duration::ZERO), (1, vec![]));
    }

    #[test]
    fn a_connect_retries_within_its_window_only() {
        let interval = 100 * MS;
        let count = |window: Duration, try_takes: Duration| {
            let clock = ManualClock::new();
            let w = RetryWindow::start(&clock, window);
            let mut tries = 1;
            clock.advance(try_takes);
            while w.again_after(&clock, interval) {
                clock.advance(interval + try_takes);
                tries += 1;
            }
            tries
        };
        assert_eq!(count(Duration::ZERO, Duration::ZERO), 1, "no window: no retry");
        assert_eq!(
            count(Duration::from_secs(1), Duration::ZERO),
            11,
            "1 + 10 pauses of 100 ms"
        );
        assert_eq!(
            count(Duration::from_secs(1), 150 * MS),
            5,
            "slow tries use up the window"
        );
        assert_eq!(
            count(99 * MS, Duration::ZERO),
            1,
            "a pause that would end past the window"
        );
    }
}
