//! The workload loops (put, fill, get, put_batch, get_batch, exist_batch,
//! clear) of a [`Worker`] over any [`Target`], with the semantics the
//! module documentation of `worker` gives.

use super::buffers::{fill, stamp, Bufs};
use super::protocol::{timed, Cmd, Res};
use super::targets::Target;
use super::BLOCK_BYTES;

/// Runs commands against one target; remembers the keys of the last fill.
pub struct Worker<T: Target> {
    pub t: T,
    /// Process whose CPU time the measurements report (the provider).
    pub peer: Option<u32>,
    filled: Vec<String>,
    filled_layers: bool,
    filled_size: u64,
    bufs: Option<Bufs>,
}

fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

impl<T: Target> Worker<T> {
    pub fn new(t: T, peer: Option<u32>) -> Self {
        Worker {
            t,
            peer,
            filled: Vec::new(),
            filled_layers: false,
            filled_size: 0,
            bufs: None,
        }
    }

    pub fn exec(&mut self, c: &Cmd) -> Result<Res, String> {
        match c.op.as_str() {
            "put" => self.put(c),
            "fill" => self.fill(c).map(|_| Res {
                ok: true,
                ..Res::default()
            }),
            "get" => self.get(c),
            "put_batch" => self.put_batch(c),
            "get_batch" => self.get_batch(c),
            "exist_batch" => self.exist_batch(c),
            "clear" => {
                let keys = std::mem::take(&mut self.filled);
                self.t.remove(&refs(&keys))?;
                Ok(Res {
                    ok: true,
                    ..Res::default()
                })
            }
            other => Err(format!("unknown op {other}")),
        }
    }

    fn value_len(c: &Cmd) -> u64 {
        if c.layers {
            BLOCK_BYTES
        } else {
            c.size
        }
    }

    /// Fresh keys in rounds of `slots`, each round removed (untimed).
    fn put(&mut self, c: &Cmd) -> Result<Res, String> {
        let slots = c.slots.max(1);
        let peer = self.peer;
        let bufs = self.bufs.take();
        let bufs = match bufs {
            Some(b) if b.layers == c.layers && b.size == c.size as usize => b,
            _ => Bufs::new(c.layers, c.size as usize, 1),
        };
        let t = &mut self.t;
        let r = timed(c, peer, |rec| -> Result<(), String> {
            let mut round = 0;
            while rec.more() {
                let keys: Vec<String> = (0..slots).map(|j| format!("{}-{round}-{j}", c.prefix)).collect();
                let mut done = 0;
                for (j, k) in keys.iter().enumerate() {
                    if !rec.more() {
                        break;
                    }
                    let v = bufs.src_pieces(j);
                    rec.time(|| t.put(j, k, &v))?;
                    done += 1;
                }
                t.remove(&refs(&keys[..done]))?;
                round += 1;
            }
            Ok(())
        });
        self.bufs = Some(bufs);
        let (m, t0, t1) = r?;
        Ok(Res::of(&m, 1, Self::value_len(c), t0, t1))
    }

    /// `slots` keys `{prefix}-{j}` stamped with `j`, put in batches of up to 32
    /// (values up to 1 MiB) or one by one.
    fn fill(&mut self, c: &Cmd) -> Result<(), String> {
        let slots = c.slots.max(1);
        let keys: Vec<String> = (0..slots).map(|j| format!("{}-{j}", c.prefix)).collect();
        let group = if !c.layers && c.size <= 1 << 20 { 32 } else { 1 };
        let mut bufs = Bufs::new(c.layers, c.size as usize, group);
        let vlen = bufs.value_len();
        for i in 1..group {
            bufs.src.copy_within(0..vlen, i * vlen);
        }
        for (g, chunk) in keys.chunks(group).enumerate() {
            let j0 = g * group;
            if group == 1 {
                bufs.stamp_src(j0, j0 as u64);
                let v = bufs.src_pieces(j0);
                self.t.put(j0, &chunk[0], &v)?;
            } else {
                for i in 0..chunk.len() {
                    stamp(&mut bufs.src[i * vlen..], (j0 + i) as u64);
                }
                let vals: Vec<&[u8]> = (0..chunk.len()).map(|i| &bufs.src[i * vlen..(i + 1) * vlen]).collect();
                self.t.put_batch(j0, &refs(chunk), &vals)?;
            }
        }
        self.filled = keys;
        self.filled_layers = c.layers;
        self.filled_size = c.size;
        self.bufs = Some(Bufs::new(c.layers, c.size as usize, 1));
        Ok(())
    }

    fn need_fill(&self, c: &Cmd) -> Result<(), String> {
        if self.filled.is_empty() || self.filled_layers != c.layers || (!c.layers && self.filled_size != c.size) {
            return Err(format!("{}: no matching fill before it", c.op));
        }
        Ok(())
    }

    /// Single-key gets rotating over the filled keys, then a check of a few.
    fn get(&mut self, c: &Cmd) -> Result<Res, String> {
        self.need_fill(c)?;
        let peer = self.peer;
        let mut bufs = self.bufs.take().expect("fill made buffers");
        let keys = &self.filled;
        let t = &mut self.t;
        let r = timed(c, peer, |rec| -> Result<(), String> {
            let mut i = 0;
            while rec.more() {
                let j = i % keys.len();
                let mut d = bufs.dst_pieces(j);
                rec.time(|| t.get(j, &keys[j], &mut d))?;
                i += 1;
            }
            Ok(())
        });
        let mut verify = || -> Result<(), String> {
            for j in [0, keys.len() / 2, keys.len() - 1] {
                let mut d = bufs.dst_pieces(j);
                t.get(j, &keys[j], &mut d)?;
                if !bufs.check(j, j as u64) {
                    return Err(format!("get {}: different bytes than were put", keys[j]));
                }
            }
            Ok(())
        };
        let v = verify();
        self.bufs = Some(bufs);
        let (m, t0, t1) = r?;
        v?;
        Ok(Res::of(&m, 1, Self::value_len(c), t0, t1))
    }

    /// Fresh keys in batches of `batch`, rounds of `slots` keys.
    fn put_batch(&mut self, c: &Cmd) -> Result<Res, String> {
        let batch = c.batch.max(1);
        let per_round = (c.slots / batch).max(1) * batch;
        let peer = self.peer;
        let size = c.size as usize;
        let mut src = vec![0u8; size];
        fill(&mut src, 5);
        let values: Vec<&[u8]> = vec![&src; batch];
        let t = &mut self.t;
        let (m, t0, t1) = timed(c, peer, |rec| -> Result<(), String> {
            let mut round = 0;
            while rec.more() {
                let keys: Vec<String> = (0..per_round).map(|j| format!("{}-{round}-{j}", c.prefix)).collect();
                let mut done = 0;
                for (g, chunk) in keys.chunks(batch).enumerate() {
                    if !rec.more() {
                        break;
                    }
                    let r = refs(chunk);
                    rec.time(|| t.put_batch(g * batch, &r, &values))?;
                    done += chunk.len();
                }
                t.remove(&refs(&keys[..done]))?;
                round += 1;
            }
            Ok(())
        })?;
        Ok(Res::of(&m, batch as u64, c.size, t0, t1))
    }

    fn groups(filled: &[String], batch: usize) -> Vec<(usize, Vec<&str>)> {
        filled
            .chunks(batch)
            .enumerate()
            .filter(|(_, g)| g.len() == batch)
            .map(|(i, g)| (i * batch, refs(g)))
            .collect()
    }

    fn get_batch(&mut self, c: &Cmd) -> Result<Res, String> {
        self.need_fill(c)?;
        let batch = c.batch.max(1);
        let size = c.size as usize;
        let mut buf = vec![0u8; size * batch];
        fill(&mut buf, 7);
        let mut base = vec![0u8; size];
        fill(&mut base, 5);
        let groups = Self::groups(&self.filled, batch);
        if groups.is_empty() {
            return Err(format!("get_batch: fewer than {batch} keys filled"));
        }
        let peer = self.peer;
        let t = &mut self.t;
        let (m, t0, t1) = timed(c, peer, |rec| -> Result<(), String> {
            let mut i = 0;
            while rec.more() {
                let (slot0, g) = &groups[i % groups.len()];
                let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(size).collect();
                rec.time(|| t.get_batch(*slot0, g, &mut bufs))?;
                i += 1;
            }
            Ok(())
        })?;
        // The last batch read holds keys slot0.. stamped with their index.
        let n = (m.ops as usize).saturating_sub(1) % groups.len();
        let slot0 = groups[n].0 as u64;
        for (k, got) in buf.chunks(size).enumerate() {
            let mut want = base.clone();
            stamp(&mut want, slot0 + k as u64);
            if got != want.as_slice() {
                return Err(format!(
                    "get_batch: key #{} returned different bytes than were put",
                    slot0 + k as u64
                ));
            }
        }
        Ok(Res::of(&m, batch as u64, c.size, t0, t1))
    }

    fn exist_batch(&mut self, c: &Cmd) -> Result<Res, String> {
        self.need_fill(c)?;
        let batch = c.batch.max(1);
        let groups = Self::groups(&self.filled, batch);
        if groups.is_empty() {
            return Err(format!("exist_batch: fewer than {batch} keys filled"));
        }
        let peer = self.peer;
        let t = &mut self.t;
        let (m, t0, t1) = timed(c, peer, |rec| -> Result<(), String> {
            let mut i = 0;
            while rec.more() {
                let (_, g) = &groups[i % groups.len()];
                rec.time(|| t.exist_batch(g))?;
                i += 1;
            }
            Ok(())
        })?;
        Ok(Res::of(&m, batch as u64, 0, t0, t1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::Memcpy;

    fn cmd(op: &str, size: u64, slots: usize) -> Cmd {
        Cmd {
            op: op.into(),
            size,
            slots,
            batch: 4,
            prefix: "t".into(),
            iters: Some(25),
            ..Cmd::default()
        }
    }

    #[test]
    fn memcpy_target_runs_every_loop() {
        let mut w = Worker::new(Memcpy::new(1 << 20), None);
        let r = w.exec(&cmd("put", 4096, 8)).unwrap();
        assert_eq!((r.ops, r.keys_per_op, r.bytes_per_key), (25, 1, 4096));
        w.exec(&cmd("fill", 4096, 16)).unwrap();
        assert_eq!(w.exec(&cmd("get", 4096, 16)).unwrap().ops, 25);
        let r = w.exec(&cmd("get_batch", 4096, 16)).unwrap();
        assert_eq!(r.keys_per_op, 4);
        w.exec(&cmd("exist_batch", 4096, 16)).unwrap();
        assert!(w.exec(&cmd("get", 8192, 16)).is_err(), "size differs from the fill");
        let mut l = cmd("fill", 0, 3);
        l.layers = true;
        let mut w = Worker::new(Memcpy::new(32 << 20), None);
        w.exec(&l).unwrap();
        l.op = "get".into();
        assert_eq!(w.exec(&l).unwrap().bytes_per_key, BLOCK_BYTES);
    }
}
