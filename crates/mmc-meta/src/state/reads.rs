//! Reads: lookups that grant read leases, releasing leases, existence and
//! key information.

use super::{placements, vanished_peer, MetaState, PeerTable};
use crate::object::Object;
use mmc_wire::message::{KeyInfo, Located, PeerInfo};
use mmc_wire::{validate_key, Error, ErrorKind, Medium, Result, ServiceId};

impl MetaState {
    /// Finds readable replicas and grants the reader a lease on each object.
    pub fn lookup(&self, reader: ServiceId, keys: &[String]) -> (Vec<PeerInfo>, Vec<Result<Located>>) {
        self.lookup_for(reader, keys, self.params.lease_ms)
    }

    /// [`MetaState::lookup`] with leases of `lease_ms` (see [`lease_for`]).
    pub fn lookup_for(
        &self,
        reader: ServiceId,
        keys: &[String],
        lease_ms: u64,
    ) -> (Vec<PeerInfo>, Vec<Result<Located>>) {
        let now = self.now();
        let mut peers = PeerTable::default();
        let mut items: Vec<Result<Located>> = keys
            .iter()
            .map(|key| {
                validate_key(key)?;
                let (h, mut shard) = self.index.lock_hashed(key);
                let Some(o) = self.index.get_touch(&mut shard, h, key, Object::is_readable) else {
                    return Err(Error::from(ErrorKind::ObjectNotExists));
                };
                o.lease.grant(reader, now, lease_ms);
                Ok(Located {
                    size: o.size,
                    object_id: o.id,
                    replicas: placements(&mut peers, &o.replicas),
                })
            })
            .collect();
        let resolved = peers.resolve(&self.members.lock());
        // Drop replicas whose owner vanished between the two locks.
        for it in items.iter_mut() {
            if let Ok(loc) = it {
                loc.replicas.retain(|p| resolved[p.peer as usize].is_some());
                if loc.replicas.is_empty() {
                    *it = Err(Error::from(ErrorKind::ObjectNotExists));
                }
            }
        }
        let peers = resolved.into_iter().map(|p| p.unwrap_or_else(vanished_peer)).collect();
        (peers, items)
    }

    pub fn release_leases(&self, reader: ServiceId, leases: &[(String, u64)]) {
        let mut missed = Vec::new();
        for (key, id) in leases {
            let mut shard = self.index.lock_key(key);
            match shard.get_mut(key.as_str()) {
                Some(o) if o.id == *id => o.lease.release(reader),
                _ => missed.push(*id),
            }
        }
        if !missed.is_empty() {
            let mut z = self.zombies.lock();
            for id in missed {
                if let Some(o) = z.iter_mut().find(|o| o.id == id) {
                    o.lease.release(reader);
                }
            }
        }
    }

    pub fn exist(&self, keys: &[String]) -> Vec<bool> {
        keys.iter()
            .map(|key| {
                let (h, mut shard) = self.index.lock_hashed(key);
                self.index.get_touch(&mut shard, h, key, Object::is_readable).is_some()
            })
            .collect()
    }

    pub fn key_info(&self, keys: &[String]) -> Vec<Result<KeyInfo>> {
        let infos: Vec<Result<(u64, Vec<ServiceId>)>> = keys
            .iter()
            .map(|key| {
                validate_key(key)?;
                let shard = self.index.lock_key(key);
                match shard.get(key.as_str()) {
                    Some(o) if o.is_readable() => Ok((o.size, o.replicas.iter().map(|r| r.service).collect())),
                    _ => Err(Error::from(ErrorKind::ObjectNotExists)),
                }
            })
            .collect();
        let m = self.members.lock();
        infos
            .into_iter()
            .map(|r| {
                r.map(|(size, services)| KeyInfo {
                    size,
                    replicas: services
                        .into_iter()
                        .map(|s| {
                            (
                                s,
                                m.members
                                    .get(&s)
                                    .and_then(|x| x.segment.as_ref())
                                    .map_or(Medium::Dram, |g| g.medium),
                            )
                        })
                        .collect(),
                })
            })
            .collect()
    }
}
