//! [`BlockingObjectStore`]: the object API for synchronous callers, each
//! method running its async twin to completion on the calling thread.

use super::{BatchResult, ObjectStore, PutOptions};
use crate::buffer::Piece;
use mmc_config::LocalConfig;
use mmc_wire::message::{DrainReport, KeyInfo};
use mmc_wire::{Result, ServiceId};
use std::time::Duration;

/// Blocking form of [`ObjectStore`]: every method runs the async one to
/// completion on the calling thread. Must not be called from async code.
#[derive(Clone)]
pub struct BlockingObjectStore {
    pub(super) store: ObjectStore,
}

impl BlockingObjectStore {
    pub fn connect(cfg: LocalConfig) -> Result<Self> {
        Ok(ObjectStore::connect(cfg)?.blocking())
    }

    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.store.inner.handle.block_on(f)
    }

    pub fn service_id(&self) -> ServiceId {
        self.store.service_id()
    }

    pub fn close(&self) {
        self.run(self.store.close())
    }

    /// Leaves the cluster, then stops the store's own runtime and waits (up
    /// to `timeout`) for its threads to exit, so nothing of this store runs
    /// after the call returns. Other clones of the store stop working.
    pub fn shutdown(&self, timeout: Duration) {
        self.close();
        let rt = self.store.inner.runtime.lock().take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(timeout);
        }
    }

    pub fn put(&self, key: &str, value: &[u8], opts: &PutOptions) -> Result<()> {
        self.run(self.store.put(key, value, opts))
    }

    pub fn put_layers(&self, key: &str, layers: &[&[u8]], opts: &PutOptions) -> Result<()> {
        self.run(self.store.put_layers(key, layers, opts))
    }

    pub fn put_batch(&self, keys: &[&str], values: &[&[u8]], opts: &PutOptions) -> BatchResult {
        self.run(self.store.put_batch(keys, values, opts))
    }

    pub fn put_layers_batch(&self, keys: &[&str], layers: &[Vec<&[u8]>], opts: &PutOptions) -> BatchResult {
        self.run(self.store.put_layers_batch(keys, layers, opts))
    }

    /// # Safety
    /// See [`ObjectStore::put_raw_batch`].
    pub unsafe fn put_raw_batch<V: AsRef<[Piece]> + Sync>(
        &self,
        keys: &[&str],
        values: &[V],
        opts: &PutOptions,
    ) -> BatchResult {
        // SAFETY: the caller's contract; `run` completes the future before returning.
        self.run(unsafe { self.store.put_raw_batch(keys, values, opts) })
    }

    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.run(self.store.get(key))
    }

    pub fn get_batch(&self, keys: &[&str]) -> BatchResult<Vec<u8>> {
        self.run(self.store.get_batch(keys))
    }

    pub fn get_into(&self, key: &str, buf: &mut [u8]) -> Result<()> {
        self.run(self.store.get_into(key, buf))
    }

    pub fn get_into_layers(&self, key: &str, bufs: &mut [&mut [u8]]) -> Result<()> {
        self.run(self.store.get_into_layers(key, bufs))
    }

    pub fn get_into_batch(&self, keys: &[&str], bufs: &mut [&mut [u8]]) -> BatchResult {
        self.run(self.store.get_into_batch(keys, bufs))
    }

    /// # Safety
    /// See [`ObjectStore::get_into_raw_batch`].
    pub unsafe fn get_into_raw_batch<D: AsRef<[Piece]> + Sync>(&self, keys: &[&str], dests: &[D]) -> BatchResult {
        // SAFETY: the caller's contract; `run` completes the future before returning.
        self.run(unsafe { self.store.get_into_raw_batch(keys, dests) })
    }

    pub fn exist(&self, key: &str) -> Result<bool> {
        self.run(self.store.exist(key))
    }

    pub fn exist_batch(&self, keys: &[&str]) -> Result<Vec<bool>> {
        self.run(self.store.exist_batch(keys))
    }

    pub fn key_info(&self, key: &str) -> Result<KeyInfo> {
        self.run(self.store.key_info(key))
    }

    pub fn key_info_batch(&self, keys: &[&str]) -> BatchResult<KeyInfo> {
        self.run(self.store.key_info_batch(keys))
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        self.run(self.store.remove(key))
    }

    pub fn remove_batch(&self, keys: &[&str]) -> BatchResult {
        self.run(self.store.remove_batch(keys))
    }

    /// See [`ObjectStore::drain`].
    pub fn drain(&self, service_id: ServiceId) -> Result<DrainReport> {
        self.run(self.store.drain(service_id))
    }

    /// See [`ObjectStore::drain_start`].
    pub fn drain_start(&self, service_id: ServiceId) -> Result<DrainReport> {
        self.run(self.store.drain_start(service_id))
    }

    /// See [`ObjectStore::drain_status`].
    pub fn drain_status(&self, service_id: ServiceId) -> Result<DrainReport> {
        self.run(self.store.drain_status(service_id))
    }

    pub fn remove_all(&self) -> Result<u64> {
        self.run(self.store.remove_all())
    }

    /// See [`ObjectStore::list_keys`].
    pub fn list_keys(&self, after: Option<&str>, limit: u32) -> Result<(Vec<String>, Option<String>)> {
        self.run(self.store.list_keys(after, limit))
    }

    /// See [`ObjectStore::alloc_batch`].
    pub fn alloc_batch(&self, keys: &[&str], sizes: &[u64]) -> BatchResult<u64> {
        self.run(self.store.alloc_batch(keys, sizes))
    }

    /// See [`ObjectStore::write_finish_batch`].
    pub fn write_finish_batch(&self, keys: &[&str], ok: &[bool]) -> BatchResult {
        self.run(self.store.write_finish_batch(keys, ok))
    }

    /// See [`ObjectStore::add_lease_batch`].
    pub fn add_lease_batch(&self, keys: &[&str], lease_ms: u64) -> BatchResult {
        self.run(self.store.add_lease_batch(keys, lease_ms))
    }

    /// See [`ObjectStore::remove_lease_batch`].
    pub fn remove_lease_batch(&self, keys: &[&str]) -> BatchResult {
        self.run(self.store.remove_lease_batch(keys))
    }

    /// See [`ObjectStore::direct_addresses_batch`].
    pub fn direct_addresses_batch(&self, keys: &[&str]) -> BatchResult<Vec<u64>> {
        self.run(self.store.direct_addresses_batch(keys))
    }

    /// # Safety
    /// See [`ObjectStore::copy_batch`].
    pub unsafe fn copy_batch(
        &self,
        gvas: &[u64],
        addrs: &[usize],
        sizes: &[u64],
        dir: crate::direct::CopyDirection,
    ) -> BatchResult {
        // SAFETY: the caller's contract; `run` completes the future before returning.
        self.run(unsafe { self.store.copy_batch(gvas, addrs, sizes, dir) })
    }
}
