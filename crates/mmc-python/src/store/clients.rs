//! The process-wide clients of `DistributedObjectStore`, and a store's
//! reference to one.
//!
//! One client per process, as in the original: the first ``init`` starts a
//! LocalService (joins the cluster); a later ``init`` of any store object of
//! the process with the same effective configuration (the ``setup`` config,
//! or the ``MMC_LOCAL_CONFIG_PATH`` file, with ``init_bm`` applied) shares
//! it and returns 0, so nothing the first one stored is lost. A store set
//! up differently (another cluster, a pure client next to a provider, ...)
//! gets a LocalService of its own. Each store that initialised holds a
//! reference: ``close()`` drops it, and the last ``close()`` leaves the
//! cluster (its segment's objects go with it). A store collected without
//! ``close()`` drops its reference but never makes the client leave: the
//! client stays joined, for the next store to share, until interpreter exit
//! (the package's ``atexit`` hook leaves gracefully).

use super::calls::blocking;
use super::DistributedObjectStore;
use crate::code;
use mmc_local::BlockingObjectStore;
use parking_lot::Mutex;
use pyo3::prelude::*;

/// A client of this process (see the module documentation).
pub(super) struct Shared {
    pub(super) id: u64,
    /// The configuration it was started with (`init_bm` applied).
    pub(super) cfg: mmc_config::LocalConfig,
    pub(super) store: BlockingObjectStore,
    /// Store objects holding it: initialised, not closed, not collected.
    pub(super) refs: usize,
}

/// The clients of this process.
pub(super) static CLIENTS: Mutex<Vec<Shared>> = Mutex::new(Vec::new());

/// The next [`Shared::id`].
pub(super) static NEXT_CLIENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Takes a reference to the client started with `cfg`, if there is one.
pub(super) fn share(cfg: &mmc_config::LocalConfig) -> Option<(u64, BlockingObjectStore)> {
    let mut clients = CLIENTS.lock();
    let c = clients.iter_mut().find(|c| c.cfg == *cfg)?;
    c.refs += 1;
    Some((c.id, c.store.clone()))
}

/// Drops a reference to client `id`. With `leave`, the last reference
/// takes the client out of the registry and returns it, to be closed; a
/// reference dropped without `leave` (collection) keeps it joined.
fn release(id: u64, leave: bool) -> Option<BlockingObjectStore> {
    let mut clients = CLIENTS.lock();
    let i = clients.iter().position(|c| c.id == id)?;
    let c = &mut clients[i];
    c.refs = c.refs.saturating_sub(1);
    if leave && c.refs == 0 {
        return Some(clients.remove(i).store);
    }
    None
}

/// Leaves the cluster with every client of this process (the package
/// registers it with ``atexit``). Stores that still hold one then return
/// NOT_INITIALIZED-like failures. Returns the number of clients closed.
#[pyfunction]
#[pyo3(name = "_close_all")]
pub(crate) fn close_all(py: Python<'_>) -> usize {
    let all: Vec<Shared> = std::mem::take(&mut *CLIENTS.lock());
    let n = all.len();
    let _ = blocking(py, move || {
        for c in all {
            c.store.close();
        }
    });
    n
}

impl DistributedObjectStore {
    pub(super) fn handle(&self) -> Option<BlockingObjectStore> {
        self.store.read().as_ref().map(|(_, s)| s.clone())
    }

    /// Makes this store hold `client` (a reference already taken); a
    /// concurrent init of this same store that won gives it back.
    pub(super) fn hold(&self, py: Python<'_>, client: (u64, BlockingObjectStore)) -> i32 {
        let mut guard = self.store.write();
        if guard.is_none() {
            *guard = Some(client);
            return code::OK;
        }
        drop(guard);
        if let Some(store) = release(client.0, true) {
            let _ = blocking(py, move || store.close());
        }
        code::OK
    }

    /// Drops this store's reference to its client; with `py` (an explicit
    /// `close()`), the last reference leaves the cluster.
    pub(super) fn close_inner(&self, py: Option<Python<'_>>) {
        let Some((id, _)) = self.store.write().take() else {
            return;
        };
        let Some(py) = py else {
            // Collected without close(): the client stays joined.
            release(id, false);
            return;
        };
        if let Some(store) = release(id, true) {
            let _ = blocking(py, move || {
                store.close();
                drop(store);
            });
        }
    }
}

impl Drop for DistributedObjectStore {
    fn drop(&mut self) {
        // Collected without close(): drop the reference; the process client
        // stays joined (as in the original, where only an explicit teardown
        // stops it) for the next store to share, until interpreter exit.
        self.close_inner(None);
    }
}
