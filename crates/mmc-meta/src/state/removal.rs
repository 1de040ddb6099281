//! Removal: removing keys (one, a batch, all) and retiring removed objects,
//! which wait for their read leases to end.

use super::MetaState;
use crate::index::Key;
use crate::object::Object;
use mmc_wire::{validate_key, Error, ErrorKind, Result};
use std::sync::atomic::Ordering;

impl MetaState {
    pub fn remove(&self, keys: &[String]) -> Vec<Result<()>> {
        keys.iter()
            .map(|key| {
                validate_key(key)?;
                let mut shard = self.index.lock_key(key);
                match shard.get(key.as_str()) {
                    Some(o) if o.is_readable() => {}
                    Some(_) => return Err(Error::from(ErrorKind::UnmatchedKey)),
                    None => {
                        // Unknown here, maybe only for now: every object
                        // of the key created before this remove is gone.
                        if self.recording.load(Ordering::SeqCst) {
                            self.tombstone(&Key::from(key.as_str()), self.last_object_id());
                        }
                        return Err(Error::from(ErrorKind::UnmatchedKey));
                    }
                }
                let o = shard.remove(key.as_str()).expect("present");
                self.retire(o);
                if self.recording.load(Ordering::SeqCst) {
                    // Not only this object: an older or newer one of the key
                    // may be in a ledger still on its way; every object
                    // created before this remove is gone.
                    self.tombstone(&Key::from(key.as_str()), self.last_object_id());
                }
                drop(shard);
                Ok(())
            })
            .collect()
    }

    /// Frees a committed object now, or when its leases end.
    pub(super) fn retire(&self, o: Object) {
        if o.lease.is_active(self.now()) {
            self.zombies.lock().push(o);
        } else {
            Self::free_replicas(&mut self.members.lock(), &o);
        }
    }

    pub fn remove_all(&self) -> u64 {
        if self.recording.load(Ordering::SeqCst) {
            self.returns.lock().removed_all(self.last_object_id() + 1);
        }
        let mut n = 0;
        for s in 0..self.index.shard_count() {
            let mut shard = self.index.lock(s);
            let keys: Vec<Key> = shard
                .iter()
                .filter(|(_, o)| o.is_readable())
                .map(|(k, _)| k.clone())
                .collect();
            let objs: Vec<(Key, Object)> = keys
                .into_iter()
                .filter_map(|k| shard.remove(&*k).map(|o| (k, o)))
                .collect();
            n += objs.len() as u64;
            for (k, o) in objs {
                let id = o.id;
                self.retire(o);
                self.tombstone(&k, id);
            }
            drop(shard);
        }
        n
    }
}
