//! Metadata and administration requests of the object API: exist, key
//! info, remove, remove all, and starting and following a drain (of any
//! provider; this store's own drain runs in `background`).

use super::{check_count, malformed, only, BatchResult, ObjectStore};
use mmc_wire::message::{DrainReport, KeyInfo, Request, Response};
use mmc_wire::{validate_batch_len, validate_key, Result, ServiceId};
use std::time::Duration;

impl ObjectStore {
    pub async fn exist(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        self.exist_batch(&[key])
            .await?
            .first()
            .copied()
            .ok_or_else(|| malformed("exist answered no item for one key"))
    }

    /// One bool per key (an invalid key reads as absent).
    pub async fn exist_batch(&self, keys: &[&str]) -> Result<Vec<bool>> {
        validate_batch_len(keys.len())?;
        let asked = keys.len();
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        match self.inner.svc.meta.call_fast(&Request::Exist { keys }).await? {
            Response::Exist(v) => check_count("exist", v, asked),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    pub async fn key_info(&self, key: &str) -> Result<KeyInfo> {
        only(self.key_info_batch(&[key]).await?)
    }

    pub async fn key_info_batch(&self, keys: &[&str]) -> BatchResult<KeyInfo> {
        validate_batch_len(keys.len())?;
        let asked = keys.len();
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        match self.inner.svc.meta.call_fast(&Request::KeyInfo { keys }).await? {
            Response::KeyInfo(v) => check_count("key info", v, asked),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    pub async fn remove(&self, key: &str) -> Result<()> {
        only(self.remove_batch(&[key]).await?)
    }

    pub async fn remove_batch(&self, keys: &[&str]) -> BatchResult {
        validate_batch_len(keys.len())?;
        let asked = keys.len();
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        match self.inner.svc.meta.call_fast(&Request::Remove { keys }).await? {
            Response::Remove(v) => check_count("remove", v, asked),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// Removes every key; returns how many were removed.
    pub async fn remove_all(&self) -> Result<u64> {
        match self.inner.svc.meta.call(&Request::RemoveAll).await? {
            Response::RemoveAll { removed } => Ok(removed),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// One page of the readable keys, in key order, after `after` (`None`:
    /// from the first): at most `limit` keys and the cursor of the next page
    /// (`None` at the end). A scan never skips nor repeats a key that exists
    /// for its whole duration.
    pub async fn list_keys(&self, after: Option<&str>, limit: u32) -> Result<(Vec<String>, Option<String>)> {
        let req = Request::ListKeys {
            after: after.map(str::to_owned),
            limit,
        };
        match self.inner.svc.meta.call(&req).await? {
            Response::Keys { keys, next_cursor } => Ok((keys, next_cursor)),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    // ---- administration ---------------------------------------------------

    /// Starts draining the memory provider `service_id` (graceful
    /// scale-in, see docs/operations.md) and returns at once with the
    /// drain's report (state `Running`); [`ObjectStore::drain_status`]
    /// follows it.
    pub async fn drain_start(&self, service_id: ServiceId) -> Result<DrainReport> {
        match self.inner.svc.meta.call(&Request::Drain { service_id }).await? {
            Response::Drain(r) => Ok(r),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// The report of the drain of `service_id`, running or finished.
    pub async fn drain_status(&self, service_id: ServiceId) -> Result<DrainReport> {
        match self.inner.svc.meta.call(&Request::DrainStatus { service_id }).await? {
            Response::Drain(r) => Ok(r),
            other => Err(crate::meta_client::unexpected(other)),
        }
    }

    /// Drains the memory provider `service_id` and waits until the drain
    /// is over: `Done` (every object moved, the provider left),
    /// `Incomplete` (the report lists what could not be moved; the provider
    /// stays) or `Aborted`.
    pub async fn drain(&self, service_id: ServiceId) -> Result<DrainReport> {
        let mut r = self.drain_start(service_id).await?;
        while !r.state.is_final() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            r = self.drain_status(service_id).await?;
        }
        Ok(r)
    }

    /// Waits until this store's own provider has been drained and has left
    /// the cluster (`mmc local` exits then).
    pub async fn wait_drained(&self) {
        self.inner.svc.wait_drained().await
    }

    /// True once this store's provider has been drained and has left.
    pub fn is_drained(&self) -> bool {
        self.inner.svc.is_drained()
    }
}
