//! The single-object loops of the in-process client: puts of fresh keys in
//! rounds, filling a readable key set and checking it, and gets rotating
//! over it (each with a warm-up).

use super::{put_from, remove};
use crate::measure::{Budget, Measured, Recorder};
use crate::worker::stamp;
use mmc_local::BlockingObjectStore;

/// Puts of fresh keys, one per [`PutRounds::step`], in rounds of `slots`:
/// a full round's keys are removed (untimed) before the next round starts,
/// so the live data never exceeds `slots` objects.
pub(super) struct PutRounds<'a> {
    c: &'a BlockingObjectStore,
    prefix: &'a str,
    slots: usize,
    src: &'a [u8],
    round: usize,
    keys: Vec<String>,
}

impl<'a> PutRounds<'a> {
    pub(super) fn new(c: &'a BlockingObjectStore, prefix: &'a str, slots: usize, src: &'a [u8]) -> Self {
        PutRounds {
            c,
            prefix,
            slots,
            src,
            round: 0,
            keys: Vec::with_capacity(slots),
        }
    }

    pub(super) fn step(&mut self, rec: &mut Recorder) -> Result<(), String> {
        if self.keys.len() == self.slots {
            remove(self.c, &self.keys)?;
            self.keys.clear();
            self.round += 1;
        }
        let k = format!("{}-{}-{}", self.prefix, self.round, self.keys.len());
        rec.time(|| put_from(self.c, &k, self.src))?;
        self.keys.push(k);
        Ok(())
    }

    /// Removes the last round's keys.
    pub(super) fn done(self) -> Result<(), String> {
        remove(self.c, &self.keys)
    }
}

fn put_rounds(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    prefix: &str,
    slots: usize,
    src: &[u8],
) -> Result<Measured, String> {
    let mut rec = Recorder::start(budget, Some(peer));
    let mut puts = PutRounds::new(c, prefix, slots, src);
    while rec.more() {
        puts.step(&mut rec)?;
    }
    puts.done()?;
    Ok(rec.finish())
}

pub(super) fn put_measure(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    prefix: &str,
    slots: usize,
    src: &[u8],
) -> Result<Measured, String> {
    put_rounds(budget.warmup(), peer, c, &format!("{prefix}-warm"), slots, src)?;
    put_rounds(budget, peer, c, prefix, slots, src)
}

/// Puts `slots` objects (each stamped with its index) to read back.
pub(super) fn put_readable(
    c: &BlockingObjectStore,
    prefix: &str,
    slots: usize,
    src: &mut [u8],
) -> Result<Vec<String>, String> {
    let keys: Vec<String> = (0..slots).map(|j| format!("{prefix}-{j}")).collect();
    for (j, k) in keys.iter().enumerate() {
        stamp(src, j as u64);
        put_from(c, k, src)?;
    }
    Ok(keys)
}

/// Reads a few of `keys` back and compares them with what was put.
pub(super) fn verify(c: &BlockingObjectStore, keys: &[String], src: &mut [u8]) -> Result<(), String> {
    let mut got = vec![0u8; src.len()];
    for j in [0, keys.len() / 2, keys.len() - 1] {
        stamp(src, j as u64);
        c.get_into(&keys[j], &mut got)
            .map_err(|e| format!("get_into {}: {e}", keys[j]))?;
        if got != src {
            return Err(format!("get_into {} returned different bytes than were put", keys[j]));
        }
    }
    Ok(())
}

/// `get_into` of `keys` in turn, one per [`GetRotating::step`].
pub(super) struct GetRotating<'a> {
    pub(super) c: &'a BlockingObjectStore,
    pub(super) keys: &'a [String],
    pub(super) dst: &'a mut [u8],
    pub(super) i: usize,
}

impl GetRotating<'_> {
    pub(super) fn step(&mut self, rec: &mut Recorder) -> Result<(), String> {
        let k = &self.keys[self.i % self.keys.len()];
        rec.time(|| self.c.get_into(k, self.dst))
            .map_err(|e| format!("get_into {k}: {e} (code {})", e.code()))?;
        self.i += 1;
        Ok(())
    }
}

fn get_loop(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    dst: &mut [u8],
) -> Result<Measured, String> {
    let mut rec = Recorder::start(budget, Some(peer));
    let mut gets = GetRotating { c, keys, dst, i: 0 };
    while rec.more() {
        gets.step(&mut rec)?;
    }
    Ok(rec.finish())
}

pub(super) fn get_measure(
    budget: Budget,
    peer: u32,
    c: &BlockingObjectStore,
    keys: &[String],
    dst: &mut [u8],
) -> Result<Measured, String> {
    get_loop(budget.warmup(), peer, c, keys, dst)?;
    get_loop(budget, peer, c, keys, dst)
}
