//! Two measurements run in alternating slices, so that their ratio does
//! not measure the drift of the machine's memory bandwidth; and the memcpy
//! step the same-host figures are interleaved with.

use crate::measure::{Budget, Measured, Recorder};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Length of one slice of an [`interleaved`] pair.
pub(super) const SLICE: Duration = Duration::from_millis(40);

/// Two measurements in alternating slices of [`SLICE`] (after an untimed
/// warm-up of both), each until its own budget, measured over the pair's
/// wall time, is spent: a time budget therefore gives each about half its
/// seconds of timed operations, so the pair runs over twice the budget.
/// The memory bandwidth of this shared machine drifts by a third within
/// seconds; a ratio of two measurements made seconds apart would measure
/// the drift. CPU and fault columns cover both (one wall clock).
pub(super) fn interleaved(
    budget: Budget,
    peer: Option<u32>,
    mut a: impl FnMut(&mut Recorder) -> Result<(), String>,
    mut b: impl FnMut(&mut Recorder) -> Result<(), String>,
) -> Result<(Measured, Measured), String> {
    let pair = match budget.iters {
        Some(_) => budget,
        None => Budget {
            seconds: budget.seconds * 2.0,
            ..budget
        },
    };
    let mut run = |budget: Budget| {
        let (mut ra, mut rb) = (Recorder::start(budget, peer), Recorder::start(budget, peer));
        while ra.more() || rb.more() {
            one_slice(&mut ra, &mut a)?;
            one_slice(&mut rb, &mut b)?;
        }
        Ok::<_, String>((ra.finish(), rb.finish()))
    };
    run(pair.warmup())?;
    run(pair)
}

/// Operations of `op` for one [`SLICE`], or until `rec`'s budget is spent.
fn one_slice(rec: &mut Recorder, op: &mut impl FnMut(&mut Recorder) -> Result<(), String>) -> Result<(), String> {
    let until = Instant::now() + SLICE;
    while rec.more() && Instant::now() < until {
        op(rec)?;
    }
    Ok(())
}

/// `memcpy` of `n` bytes per step between one buffer and the next of
/// `slots` slots at the start of `seg` (into it when `into`), as a put or a
/// get moves its bytes.
pub(super) fn memcpy_step(
    seg: &mmc_local::segment::Segment,
    slots: usize,
    n: usize,
    buf: *mut u8,
    into: bool,
) -> impl FnMut(&mut Recorder) -> Result<(), String> + '_ {
    let slots = slots.min(seg.len() / n).max(1);
    let mut i = 0;
    move |rec| {
        let slot = seg.base().wrapping_add((i % slots) * n);
        let (s, d) = if into {
            (buf as *const u8, slot)
        } else {
            (slot as *const u8, buf)
        };
        // SAFETY: `slot..slot+n` lies in the mapping, `buf` is a live buffer
        // of `n` bytes of the caller's that nothing else uses meanwhile. The
        // provider's bytes there may belong to objects: those of a put
        // measurement are never read back, and a get measurement only reads.
        rec.time(|| unsafe { std::ptr::copy_nonoverlapping(black_box(s), black_box(d), n) });
        i += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interleaved_pair_alternates_in_slices_and_keeps_each_budget() {
        // Each operation takes a third of a slice: a slice holds about
        // three, then the other measurement gets its turn.
        let op_time = SLICE / 3;
        let order = std::cell::RefCell::new(Vec::new());
        let op = |label: char| {
            let order = &order;
            move |rec: &mut Recorder| -> Result<(), String> {
                rec.time(|| std::thread::sleep(op_time));
                order.borrow_mut().push(label);
                Ok(())
            }
        };
        let (a, b) = interleaved(Budget::ops(9), None, op('a'), op('b')).unwrap();
        assert_eq!((a.ops, b.ops), (9, 9));
        assert!(a.busy_s >= 9.0 * op_time.as_secs_f64());
        let order = order.into_inner();
        // The warm-up's operation of each, then the measured ones.
        assert_eq!(order.len(), 2 + 18);
        let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches >= 5, "a and b alternate in slices: {order:?}");
        assert!(
            order.windows(5).all(|w| !w.iter().all(|&c| c == w[0])),
            "no slice runs much past its length: {order:?}"
        );
    }
}
