//! The key-value targets the loops run against: MemCache through the
//! blocking client, Redis over one connection, and a plain memcpy "store".

use super::buffers::fill;
use mmc_local::{BatchResult, BlockingObjectStore, Piece, PutOptions};

/// A key-value store as the loops see it. `slot` is the key's index in its
/// round or fill set (the memcpy target copies to that slot).
pub trait Target {
    fn put(&mut self, slot: usize, key: &str, value: &[&[u8]]) -> Result<(), String>;
    fn get(&mut self, slot: usize, key: &str, into: &mut [&mut [u8]]) -> Result<(), String>;
    fn put_batch(&mut self, slot0: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String>;
    fn get_batch(&mut self, slot0: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String>;
    fn exist_batch(&mut self, keys: &[&str]) -> Result<(), String>;
    fn remove(&mut self, keys: &[&str]) -> Result<(), String>;
}

fn check(what: &str, r: BatchResult) -> Result<(), String> {
    let v = r.map_err(|e| format!("{what}: {e} (code {})", e.code()))?;
    for (i, x) in v.into_iter().enumerate() {
        if let Err(e) = x {
            return Err(format!("{what}: key #{i}: {e} (code {})", e.code()));
        }
    }
    Ok(())
}

/// MemCache through the blocking client: raw `Piece` puts and gets (one
/// control RPC per call, the data copied once, straight from / into the
/// caller's buffers).
pub struct Mmc(pub BlockingObjectStore);

impl Target for Mmc {
    fn put(&mut self, _: usize, key: &str, value: &[&[u8]]) -> Result<(), String> {
        let pieces: Vec<Piece> = value.iter().map(|v| Piece::of(v)).collect();
        // SAFETY: the pieces borrow `value`, alive and unmodified for the call.
        check("put", unsafe {
            self.0.put_raw_batch(&[key], &[pieces], &PutOptions::default())
        })
    }

    fn get(&mut self, _: usize, key: &str, into: &mut [&mut [u8]]) -> Result<(), String> {
        let pieces: Vec<Piece> = into.iter_mut().map(|b| Piece::of_mut(b)).collect();
        // SAFETY: the pieces borrow `into` exclusively for the call.
        check("get", unsafe { self.0.get_into_raw_batch(&[key], &[pieces]) })
    }

    fn put_batch(&mut self, _: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String> {
        let pieces: Vec<Vec<Piece>> = values.iter().map(|v| vec![Piece::of(v)]).collect();
        // SAFETY: as in `put`.
        check("put_batch", unsafe {
            self.0.put_raw_batch(keys, &pieces, &PutOptions::default())
        })
    }

    fn get_batch(&mut self, _: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String> {
        check("get_into_batch", self.0.get_into_batch(keys, into))
    }

    fn exist_batch(&mut self, keys: &[&str]) -> Result<(), String> {
        let v = self.0.exist_batch(keys).map_err(|e| format!("exist_batch: {e}"))?;
        if v.iter().all(|x| *x) {
            Ok(())
        } else {
            Err("exist_batch: a key that was put reads as absent".into())
        }
    }

    fn remove(&mut self, keys: &[&str]) -> Result<(), String> {
        for c in keys.chunks(mmc_wire::MAX_BATCH) {
            check("remove", self.0.remove_batch(c))?;
        }
        Ok(())
    }
}

/// Redis over one connection: SET / GET per key, MSET / MGET / EXISTS per
/// batch (one command for the whole batch: Redis's own batching).
pub struct Redis(pub crate::redis::Conn);

impl Target for Redis {
    fn put(&mut self, _: usize, key: &str, value: &[&[u8]]) -> Result<(), String> {
        self.0.set(key, value)
    }

    fn get(&mut self, _: usize, key: &str, into: &mut [&mut [u8]]) -> Result<(), String> {
        self.0.get_into(key, into)
    }

    fn put_batch(&mut self, _: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String> {
        self.0.mset(keys, values)
    }

    fn get_batch(&mut self, _: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String> {
        self.0.mget_into(keys, into)
    }

    fn exist_batch(&mut self, keys: &[&str]) -> Result<(), String> {
        let n = self.0.exists(keys)?;
        if n as usize == keys.len() {
            Ok(())
        } else {
            Err(format!("redis EXISTS: {n} of {} keys exist", keys.len()))
        }
    }

    fn remove(&mut self, keys: &[&str]) -> Result<(), String> {
        self.0.del(keys)
    }
}

/// The memcpy baseline as a store: a put copies the value into slot
/// `slot` of a `ws`-byte region, a get copies it back out (glibc memcpy).
pub struct Memcpy {
    region: Vec<u8>,
}

impl Memcpy {
    pub fn new(ws: u64) -> Memcpy {
        let mut region = vec![0u8; ws as usize];
        fill(&mut region, 1);
        Memcpy { region }
    }

    fn at(&mut self, slot: usize, size: usize) -> *mut u8 {
        let slots = (self.region.len() / size.max(1)).max(1);
        assert!(size <= self.region.len(), "memcpy target: value larger than its region");
        self.region.as_mut_ptr().wrapping_add((slot % slots) * size)
    }
}

impl Target for Memcpy {
    fn put(&mut self, slot: usize, _: &str, value: &[&[u8]]) -> Result<(), String> {
        let total: usize = value.iter().map(|v| v.len()).sum();
        let mut d = self.at(slot, total);
        for v in value {
            // SAFETY: `at` returns `total` bytes inside the region.
            unsafe {
                std::ptr::copy_nonoverlapping(v.as_ptr(), d, v.len());
                d = d.add(v.len());
            }
        }
        std::hint::black_box(d);
        Ok(())
    }

    fn get(&mut self, slot: usize, _: &str, into: &mut [&mut [u8]]) -> Result<(), String> {
        let total: usize = into.iter().map(|v| v.len()).sum();
        let mut s = self.at(slot, total) as *const u8;
        for b in into.iter_mut() {
            // SAFETY: as in `put`.
            unsafe {
                std::ptr::copy_nonoverlapping(s, b.as_mut_ptr(), b.len());
                s = s.add(b.len());
            }
        }
        std::hint::black_box(into);
        Ok(())
    }

    fn put_batch(&mut self, slot0: usize, keys: &[&str], values: &[&[u8]]) -> Result<(), String> {
        for (i, (k, v)) in keys.iter().zip(values).enumerate() {
            self.put(slot0 + i, k, &[v])?;
        }
        Ok(())
    }

    fn get_batch(&mut self, slot0: usize, keys: &[&str], into: &mut [&mut [u8]]) -> Result<(), String> {
        for (i, (k, b)) in keys.iter().zip(into.iter_mut()).enumerate() {
            self.get(slot0 + i, k, std::slice::from_mut(b))?;
        }
        Ok(())
    }

    fn exist_batch(&mut self, _: &[&str]) -> Result<(), String> {
        Ok(())
    }

    fn remove(&mut self, _: &[&str]) -> Result<(), String> {
        Ok(())
    }
}
