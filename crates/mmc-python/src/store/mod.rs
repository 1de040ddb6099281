//! `DistributedObjectStore`: the memcache_hybrid-compatible object API, and
//! the process-wide client behind it.
//!
//! Every method parses its arguments while attached to the interpreter
//! (holding buffer views so the memory stays put), then detaches (releases
//! the GIL) for the whole blocking call into [`BlockingObjectStore`], so
//! several Python threads make progress together. Results follow the
//! memcache_hybrid conventions: 0 / negative result codes, `is_exist` 1 / 0,
//! `get` returning `b""` when absent, one int per key for batch calls, a
//! duplicate put counting as success.
//!
//! This file holds the class and its Python methods; `clients` the
//! process-wide clients a store holds a reference to, and `calls` the
//! detached batch calls behind the methods and their result codes.

use crate::args;
use crate::code;
use crate::config::LocalConfig;
use crate::types::{KeyInfo, ReplicateConfig};
use mmc_local::{BlockingObjectStore, ObjectStore, Piece};
use parking_lot::{Mutex, RwLock};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyBytes, PyDict, PyList};

mod calls;
mod clients;

use calls::{blocking, first_failure};
pub(crate) use clients::close_all;
use clients::{share, Shared, CLIENTS, NEXT_CLIENT};

/// Distributed object store client (memcache_hybrid's
/// ``DistributedObjectStore``).
///
/// Typical use::
///
///     store = DistributedObjectStore()
///     store.setup(LocalConfig(meta_addr="127.0.0.1:5000", dram_size="1GB"))  # optional
///     assert store.init(0) == 0
///     store.put("k", b"value")
///     store.get("k")  # b"value"
///     store.close()
#[pyclass(module = "memcache_rs", name = "DistributedObjectStore", frozen)]
pub struct DistributedObjectStore {
    config: Mutex<Option<mmc_config::LocalConfig>>,
    /// The process client this store holds a reference to, and its id.
    store: RwLock<Option<(u64, BlockingObjectStore)>>,
}

#[pymethods]
impl DistributedObjectStore {
    #[new]
    fn py_new() -> Self {
        DistributedObjectStore {
            config: Mutex::new(None),
            store: RwLock::new(None),
        }
    }

    /// Sets the LocalService configuration used by ``init``. Returns 0, or
    /// INVALID_PARAM (-3000) when the config is invalid (the reason is
    /// logged on the ``memcache_rs`` logger). Attributes of the original
    /// that have no effect here, when set, are logged once per process.
    fn setup(&self, py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<i32> {
        let cfg = match config.cast::<LocalConfig>() {
            Ok(c) => {
                let c = c.borrow();
                c.warn_no_effect(py);
                c.inner.clone()
            }
            Err(_) => return Err(PyTypeError::new_err("setup() takes a LocalConfig")),
        };
        if let Err(e) = cfg.validate() {
            crate::log_error(py, &format!("setup: {e}"));
            return Ok(code::INVALID_PARAM);
        }
        *self.config.lock() = Some(cfg);
        Ok(code::OK)
    }

    /// Joins the cluster. The configuration is the one given to ``setup``,
    /// else the ``[local]`` section of the file named by
    /// ``MMC_LOCAL_CONFIG_PATH`` (TOML or the original's ``ock.mmc.*``
    /// format), else the defaults (MetaService at 127.0.0.1:5000, a 1 GiB
    /// DRAM segment). ``init_bm=False`` makes a pure client that contributes
    /// no memory. ``device_id`` names the accelerator (unused: no
    /// accelerator backend is compiled in).
    ///
    /// One client per process: when this process already runs a client
    /// with the same configuration (another store's, or one whose stores
    /// were collected without ``close()``), this store shares it and the
    /// objects stored through it stay; otherwise a LocalService is started.
    /// Returns 0 (also when already initialized or sharing) or a negative
    /// code, e.g. NOT_CONNECTED_META (-3017) when the MetaService is
    /// unreachable.
    #[pyo3(signature = (device_id = 0, init_bm = true))]
    fn init(&self, py: Python<'_>, device_id: i64, init_bm: bool) -> i32 {
        if device_id < 0 {
            return code::INVALID_PARAM;
        }
        if self.store.read().is_some() {
            return code::OK;
        }
        let cfg = match self.config.lock().clone() {
            Some(c) => c,
            None => match mmc_config::ConfigFile::load_or_env(None, mmc_config::LOCAL_CONFIG_ENV) {
                Ok(f) => {
                    crate::compat::warn_file(py, &f.warnings);
                    f.local
                }
                Err(e) => {
                    crate::log_error(py, &format!("init: {e}"));
                    return code::INVALID_PARAM;
                }
            },
        };
        let mut cfg = cfg;
        if !init_bm {
            cfg.dram_size = mmc_config::ByteSize(0);
        }
        if let Err(e) = crate::init_logging(cfg.log_level_or("warn"), cfg.log_format, &crate::LogTarget::local(&cfg)) {
            crate::log_error(py, &format!("init: {e}"));
            return code::INVALID_PARAM;
        }
        if let Some(shared) = share(&cfg) {
            return self.hold(py, shared);
        }
        // No lock is held while detached: another thread waiting on it with
        // the GIL would deadlock with this one re-attaching.
        let started = cfg.clone();
        match blocking(py, move || ObjectStore::connect(started)) {
            Some(Ok(s)) => {
                let s = s.blocking();
                let spare;
                let held = {
                    let mut clients = CLIENTS.lock();
                    match clients.iter_mut().find(|c| c.cfg == cfg) {
                        // A concurrent init started one first: share it.
                        Some(c) => {
                            c.refs += 1;
                            spare = Some(s);
                            (c.id, c.store.clone())
                        }
                        None => {
                            let id = NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            clients.push(Shared {
                                id,
                                cfg,
                                store: s.clone(),
                                refs: 1,
                            });
                            spare = None;
                            (id, s)
                        }
                    }
                };
                if let Some(s) = spare {
                    let _ = blocking(py, move || s.close());
                }
                self.hold(py, held)
            }
            Some(Err(e)) => {
                crate::log_error(py, &format!("init: {e}"));
                e.code()
            }
            None => code::ERROR,
        }
    }

    /// Releases this store's share of the process client: the last
    /// ``close()`` of the process leaves the cluster and stops the
    /// LocalService (its segment's objects go with it); until then the
    /// other stores keep working and nothing is lost. Returns 0 (also when
    /// not initialized). The store may be initialized again.
    fn close(&self, py: Python<'_>) -> i32 {
        self.close_inner(Some(py));
        code::OK
    }

    /// The service id (rank) the MetaService gave this LocalService, or
    /// NOT_INITIALIZED (-3008) before ``init``.
    fn get_local_service_id(&self) -> i64 {
        match self.handle() {
            Some(s) => s.service_id() as i64,
            None => code::NOT_INITIALIZED as i64,
        }
    }

    /// Stores ``buf`` (any buffer-protocol object: bytes, bytearray,
    /// memoryview, numpy array; read in place) under ``key``. Returns 0 (also
    /// when the key already exists: objects are immutable) or a negative code.
    #[pyo3(signature = (key, buf, replicateConfig = None))]
    #[allow(non_snake_case)]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        replicateConfig: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i32> {
        let key = args::key(key)?;
        let opts = ReplicateConfig::from_arg(replicateConfig)?;
        let view = args::value(buf)?;
        let piece = view.as_ref().and_then(|v| v.piece());
        Ok(self.run_put(py, &[key], vec![piece.map(|p| [p])], opts)[0])
    }

    /// Stores each buffer of ``values`` under the matching key. Returns 0
    /// when every put succeeded, else the first failure code.
    #[pyo3(signature = (keys, values, replicateConfig = None))]
    #[allow(non_snake_case)]
    fn put_batch(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        replicateConfig: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i32> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        let opts = ReplicateConfig::from_arg(replicateConfig)?;
        let vals = args::items(values, "values")?;
        let views = vals.iter().map(args::value).collect::<PyResult<Vec<_>>>()?;
        if keys.is_empty() || keys.len() != views.len() {
            return Ok(code::INVALID_PARAM);
        }
        let pieces = views
            .iter()
            .map(|v| v.as_ref().and_then(|v| v.piece()).map(|p| [p]))
            .collect();
        Ok(first_failure(&self.run_put(py, &keys, pieces, opts)))
    }

    /// The value of ``key`` as bytes; ``b""`` when absent or on any error.
    fn get<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let empty = PyBytes::new(py, b"");
        let Some(key) = args::key(key)? else {
            return Ok(empty);
        };
        let Some(store) = self.handle() else {
            return Ok(empty);
        };
        match blocking(py, || store.get(key)) {
            Some(Ok(v)) => Ok(PyBytes::new(py, &v)),
            _ => Ok(empty),
        }
    }

    /// The values of ``keys``, ``b""`` for each key absent or failed.
    fn get_batch<'py>(&self, py: Python<'py>, keys: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        let out = self.values(py, &keys);
        PyList::new(py, out.iter().map(|v| PyBytes::new(py, v.as_deref().unwrap_or(b""))))
    }

    /// Stores ``size`` bytes at ``buffer_ptr`` (an int address such as
    /// ``tensor.data_ptr()``, or a buffer-protocol object) under ``key``,
    /// without an intermediate copy. ``direct``: 3 host->pool, 0
    /// device->pool (host memory assumed: no accelerator backend), 9 auto.
    #[pyo3(signature = (key, buffer_ptr, size, direct = 3, replicateConfig = None))]
    #[allow(non_snake_case)]
    fn put_from(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        buffer_ptr: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        direct: i64,
        replicateConfig: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i32> {
        let key = args::key(key)?;
        let ptr = args::ptr(buffer_ptr, false, "buffer_ptr")?;
        let size = args::size(size, "size")?;
        let opts = ReplicateConfig::from_arg(replicateConfig)?;
        if !args::direct_put_ok(direct) {
            return Ok(code::INVALID_PARAM);
        }
        let piece = ptr.as_ref().and_then(|p| p.piece(size));
        Ok(self.run_put(py, &[key], vec![piece.map(|p| [p])], opts)[0])
    }

    /// ``put_from`` for many keys: one control RPC for the batch, copies in
    /// parallel. Returns one code per key.
    #[pyo3(signature = (keys, buffer_ptrs, sizes, direct = 3, replicateConfig = None))]
    #[allow(non_snake_case)]
    fn batch_put_from(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
        replicateConfig: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<i32>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        let opts = ReplicateConfig::from_arg(replicateConfig)?;
        let (pieces, _held) = Self::flat_pieces(keys.len(), buffer_ptrs, sizes, false)?;
        if !args::direct_put_ok(direct) {
            return Ok(vec![code::INVALID_PARAM; keys.len()]);
        }
        Ok(self.run_put(py, &keys, pieces, opts))
    }

    /// Copies the object ``key`` into ``size`` bytes at ``buffer_ptr`` (int
    /// address or writable buffer-protocol object); ``size`` must equal the
    /// object size. ``direct``: 2 pool->host, 1 pool->device (host memory
    /// assumed), 9 auto. Returns 0 or a negative code (OBJECT_NOT_EXISTS
    /// -3007 when absent).
    #[pyo3(signature = (key, buffer_ptr, size, direct = 2))]
    fn get_into(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        buffer_ptr: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        direct: i64,
    ) -> PyResult<i32> {
        let key = args::key(key)?;
        let ptr = args::ptr(buffer_ptr, true, "buffer_ptr")?;
        let size = args::size(size, "size")?;
        if !args::direct_get_ok(direct) {
            return Ok(code::INVALID_PARAM);
        }
        let arg = key.zip(ptr.as_ref().and_then(|p| p.piece(size)));
        let get = |store: &BlockingObjectStore, (key, piece): (&str, Piece)| {
            // SAFETY: the piece is in a buffer view this frame holds, or at an
            // address the caller vouched for (the memcache_hybrid contract).
            let mut r = unsafe { store.get_into_raw_batch(&[key], &[[piece]]) }?;
            r.pop()
                .unwrap_or_else(|| Err(mmc_local::Error::other("get_into produced no result")))
        };
        Ok(self.one(py, arg, get, |_| code::OK))
    }

    /// ``get_into`` for many keys. Returns one code per key.
    #[pyo3(signature = (keys, buffer_ptrs, sizes, direct = 2))]
    fn batch_get_into(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
    ) -> PyResult<Vec<i32>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        let (pieces, _held) = Self::flat_pieces(keys.len(), buffer_ptrs, sizes, true)?;
        if !args::direct_get_ok(direct) {
            return Ok(vec![code::INVALID_PARAM; keys.len()]);
        }
        Ok(self.run_get_into(py, &keys, pieces))
    }

    /// Stores the concatenation of the buffers ``buffer_ptrs`` (one per
    /// layer, ``sizes`` bytes each) as one object.
    #[pyo3(signature = (key, buffer_ptrs, sizes, direct = 3, replicateConfig = None))]
    #[allow(non_snake_case)]
    fn put_from_layers(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
        replicateConfig: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i32> {
        let key = args::key(key)?;
        let ptrs = args::ptrs(buffer_ptrs, false, "buffer_ptrs")?;
        let sizes = args::sizes(sizes, "sizes")?;
        let opts = ReplicateConfig::from_arg(replicateConfig)?;
        if !args::direct_put_ok(direct) {
            return Ok(code::INVALID_PARAM);
        }
        let pieces = args::layer_pieces(&ptrs, &sizes);
        Ok(self.run_put(py, &[key], vec![pieces], opts)[0])
    }

    /// ``put_from_layers`` for many keys: ``buffer_ptrs`` and ``sizes`` are
    /// lists (one per key) of lists (one per layer). One code per key.
    #[pyo3(signature = (keys, buffer_ptrs, sizes, direct = 3, replicateConfig = None))]
    #[allow(non_snake_case)]
    fn batch_put_from_layers(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
        replicateConfig: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<i32>> {
        self.batch_put_layers_impl(py, keys, buffer_ptrs, sizes, direct, replicateConfig)
    }

    /// Scatters the object ``key`` into the layer buffers, in order; the
    /// sizes must sum to the object size.
    #[pyo3(signature = (key, buffer_ptrs, sizes, direct = 2))]
    fn get_into_layers(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
    ) -> PyResult<i32> {
        let key = args::key(key)?;
        let ptrs = args::ptrs(buffer_ptrs, true, "buffer_ptrs")?;
        let sizes = args::sizes(sizes, "sizes")?;
        if !args::direct_get_ok(direct) {
            return Ok(code::INVALID_PARAM);
        }
        let pieces = args::layer_pieces(&ptrs, &sizes);
        Ok(self.run_get_into(py, &[key], vec![pieces])[0])
    }

    /// ``get_into_layers`` for many keys. One code per key.
    #[pyo3(signature = (keys, buffer_ptrs, sizes, direct = 2))]
    fn batch_get_into_layers(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffer_ptrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
    ) -> PyResult<Vec<i32>> {
        self.batch_get_layers_impl(py, keys, buffer_ptrs, sizes, direct)
    }

    /// Mooncake-style alias of ``batch_put_from_layers``:
    /// ``batch_put_from_multi_buffers(keys, all_buffer_ptrs, all_sizes,
    /// config=ReplicateConfig())``. The fourth argument may also be an int
    /// ``direct`` (memcache_hybrid order).
    #[pyo3(signature = (keys, all_buffer_ptrs, all_sizes, config = None, direct = 3))]
    fn batch_put_from_multi_buffers(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        all_buffer_ptrs: &Bound<'_, PyAny>,
        all_sizes: &Bound<'_, PyAny>,
        config: Option<&Bound<'_, PyAny>>,
        direct: i64,
    ) -> PyResult<Vec<i32>> {
        let (direct, config) = match config {
            Some(c) if c.is_instance_of::<pyo3::types::PyInt>() => (c.extract::<i64>()?, None),
            c => (direct, c),
        };
        self.batch_put_layers_impl(py, keys, all_buffer_ptrs, all_sizes, direct, config)
    }

    /// Mooncake-style alias of ``batch_get_into_layers``:
    /// ``batch_get_into_multi_buffers(keys, all_buffer_ptrs, all_sizes,
    /// prefer_alloc_in_same_node=False)`` (the flag is accepted and ignored:
    /// the nearest replica is always read first).
    #[pyo3(signature = (keys, all_buffer_ptrs, all_sizes, prefer_alloc_in_same_node = false, direct = 2))]
    fn batch_get_into_multi_buffers(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        all_buffer_ptrs: &Bound<'_, PyAny>,
        all_sizes: &Bound<'_, PyAny>,
        prefer_alloc_in_same_node: bool,
        direct: i64,
    ) -> PyResult<Vec<i32>> {
        let _ = prefer_alloc_in_same_node;
        self.batch_get_layers_impl(py, keys, all_buffer_ptrs, all_sizes, direct)
    }

    /// 1 if a committed replica of ``key`` exists, 0 if not, a negative code
    /// on error (INVALID_PARAM for a bad key).
    fn is_exist(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<i32> {
        let key = args::key(key)?;
        Ok(self.one(py, key, |store, key| store.exist(key), |&found| found as i32))
    }

    /// ``is_exist`` for many keys, one RPC. One result per key.
    fn batch_is_exist(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<i32>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        Ok(self.exist_codes(py, &keys))
    }

    /// Removes ``key``. Returns 0, UNMATCHED_KEY (-3102) when absent, or a
    /// negative code.
    fn remove(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<i32> {
        let keys = vec![args::key(key)?];
        Ok(self.remove_codes(py, &keys)[0])
    }

    /// ``remove`` for many keys. One code per key.
    fn remove_batch(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<i32>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        Ok(self.remove_codes(py, &keys))
    }

    /// Removes every key of the cluster. Returns 0 or a negative code.
    fn remove_all(&self, py: Python<'_>) -> i32 {
        let Some(store) = self.handle() else {
            return code::NOT_INITIALIZED;
        };
        match blocking(py, || store.remove_all()) {
            Some(Ok(_)) => code::OK,
            Some(Err(e)) => e.code(),
            None => code::ERROR,
        }
    }

    /// ``remove_all`` returning the number of objects removed (or a negative
    /// code), for the Mooncake-compatible client (``memcache_rs.mooncake``).
    fn _remove_all_count(&self, py: Python<'_>) -> i64 {
        let Some(store) = self.handle() else {
            return code::NOT_INITIALIZED as i64;
        };
        match blocking(py, || store.remove_all()) {
            Some(Ok(n)) => i64::try_from(n).unwrap_or(i64::MAX),
            Some(Err(e)) => e.code() as i64,
            None => code::ERROR as i64,
        }
    }

    /// One page of the cluster's readable keys in key order, after ``after``
    /// (None: from the first): ``(keys, next_after)`` with at most ``limit``
    /// keys and ``next_after`` None at the end. Raises RuntimeError naming the
    /// result code on failure. Used by ``memcache_rs.integrations.lmcache``.
    #[pyo3(signature = (after = None, limit = 1000))]
    fn _list_keys(&self, py: Python<'_>, after: Option<String>, limit: u32) -> PyResult<(Vec<String>, Option<String>)> {
        let Some(store) = self.handle() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "list_keys: not initialized ({})",
                code::NOT_INITIALIZED
            )));
        };
        let limit = limit.clamp(1, 100_000);
        match blocking(py, || store.list_keys(after.as_deref(), limit)) {
            Some(Ok(page)) => Ok(page),
            Some(Err(e)) => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "list_keys failed ({}): {e}",
                e.code()
            ))),
            None => Err(pyo3::exceptions::PyRuntimeError::new_err("list_keys failed")),
        }
    }

    /// Drains the memory provider ``service_id`` (graceful scale-in: its
    /// objects move to the other providers, then it leaves) and waits for
    /// the end. Returns a dict: ``code`` (0, or a negative code when the
    /// drain could not run, e.g. an unknown service id), ``state`` ("done",
    /// "incomplete", "aborted"), ``moved``, ``dropped_replicas``,
    /// ``unmoved`` (dicts of ``key``, ``size``, ``reason``: objects that
    /// stay on the provider) and ``message``.
    fn drain<'py>(&self, py: Python<'py>, service_id: u32) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let Some(store) = self.handle() else {
            d.set_item("code", code::NOT_INITIALIZED)?;
            d.set_item("message", "the store is not initialized")?;
            return Ok(d);
        };
        match blocking(py, || store.drain(service_id)) {
            Some(Ok(r)) => {
                d.set_item("code", code::OK)?;
                d.set_item("service_id", r.service_id)?;
                d.set_item("state", r.state.name())?;
                d.set_item("moved", r.moved)?;
                d.set_item("dropped_replicas", r.dropped_replicas)?;
                let unmoved = PyList::empty(py);
                for u in &r.unmoved {
                    let x = PyDict::new(py);
                    x.set_item("key", &u.key)?;
                    x.set_item("size", u.size)?;
                    x.set_item("reason", &u.reason)?;
                    unmoved.append(x)?;
                }
                d.set_item("unmoved", unmoved)?;
                d.set_item("message", &r.message)?;
            }
            Some(Err(e)) => {
                d.set_item("code", e.code())?;
                d.set_item("message", e.to_string())?;
            }
            None => {
                d.set_item("code", code::ERROR)?;
                d.set_item("message", "internal error")?;
            }
        }
        Ok(d)
    }

    /// Size and replica locations of ``key`` (size 0 and empty lists when
    /// absent or on error).
    fn get_key_info(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<KeyInfo> {
        let keys = vec![args::key(key)?];
        Ok(self.key_infos(py, &keys).pop().unwrap_or_default())
    }

    /// ``get_key_info`` for many keys, one RPC.
    fn batch_get_key_info(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<KeyInfo>> {
        let items = args::items(keys, "keys")?;
        let keys = args::keys(&items)?;
        Ok(self.key_infos(py, &keys))
    }

    // ---- the layer-wise, direct-address calls (see `layerwise.rs`) -------

    /// Reserves one object of ``sizes[i]`` bytes per key and returns its
    /// pool address (> 0), or a negative code (DUPLICATED_OBJECT -3006 for an
    /// existing key, NOT_ENOUGH_MEMORY -3016, INVALID_PARAM -3000 for a bad
    /// key, a size of 0, or lists of different lengths). Fill the object
    /// with ``batch_copy(..., direct=0 or 3)`` (or, for an address in a
    /// segment mapped here, by writing there), then ``batch_write_finish``.
    /// Unfinished objects are invisible; the MetaService frees them after
    /// its put timeout.
    fn batch_alloc(&self, py: Python<'_>, keys: &Bound<'_, PyAny>, sizes: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
        crate::layerwise::alloc(py, self.handle(), keys, sizes)
    }

    /// Ends writes begun by ``batch_alloc`` in this process: a result of 0
    /// commits the key (readable from now on), any other revokes it. One
    /// code per key (OBJECT_NOT_EXISTS -3007: no write of it pending here).
    fn batch_write_finish(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        results: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<i32>> {
        crate::layerwise::write_finish(py, self.handle(), keys, results)
    }

    /// Takes a read lease of ``lease_ttl_ms`` (0: the MetaService's lease;
    /// at most an hour) on each key: the object is neither evicted nor
    /// freed while it lasts, and ``batch_copy(..., direct=1 or 2)`` reads
    /// from the address ``KeyInfo.gva_list()[0]``. One code per key.
    #[pyo3(signature = (keys, lease_ttl_ms = None))]
    fn batch_add_lease(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        lease_ttl_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<i32>> {
        let zero = 0u64.into_pyobject(py)?.into_any();
        crate::layerwise::add_lease(py, self.handle(), keys, lease_ttl_ms.unwrap_or(&zero))
    }

    /// Removes one lease per key. Returns 0, LEASE_EXPIRED (-3106) when a
    /// lease had run out (bytes read under it may be overwritten: discard
    /// them), or another negative code (INVALID_PARAM: no lease held here).
    fn batch_remove_lease(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<i32> {
        crate::layerwise::remove_lease(py, self.handle(), keys)
    }

    /// Copies ``sizes[i]`` bytes between ``addrs[i]`` (int address or
    /// buffer) and pool address ``gvas[i]`` (from ``batch_alloc`` or
    /// ``KeyInfo.gva_list()``, possibly offset). ``direct``: 0 / 3 into the
    /// pool (an object allocated and not finished here), 1 / 2 out of it
    /// (an object leased here). Returns 0 or the first failure
    /// (LEASE_EXPIRED -3106 when a lease ran out during the copy).
    #[pyo3(signature = (gvas, addrs, sizes, direct))]
    fn batch_copy(
        &self,
        py: Python<'_>,
        gvas: &Bound<'_, PyAny>,
        addrs: &Bound<'_, PyAny>,
        sizes: &Bound<'_, PyAny>,
        direct: i64,
    ) -> PyResult<i32> {
        crate::layerwise::copy(py, self.handle(), gvas, addrs, sizes, direct)
    }

    /// Registers a memory region for direct transfers. Host memory needs no
    /// registration here (shm and TCP paths copy from any address), so this
    /// only checks the arguments: 0, or INVALID_PARAM for a null pointer or
    /// a non-positive size.
    fn register_buffer(&self, buffer_ptr: &Bound<'_, PyAny>, size: &Bound<'_, PyAny>) -> PyResult<i32> {
        let ptr = args::ptr(buffer_ptr, false, "buffer_ptr")?;
        let size = args::size(size, "size")?;
        Ok(if ptr.as_ref().and_then(|p| p.piece(size)).is_some() {
            code::OK
        } else {
            code::INVALID_PARAM
        })
    }

    /// Counterpart of ``register_buffer``; same checks, returns 0.
    fn unregister_buffer(&self, buffer_ptr: &Bound<'_, PyAny>, size: &Bound<'_, PyAny>) -> PyResult<i32> {
        self.register_buffer(buffer_ptr, size)
    }

    fn __repr__(&self) -> String {
        match self.handle() {
            Some(s) => format!("DistributedObjectStore(service_id={})", s.service_id()),
            None => "DistributedObjectStore(not initialized)".into(),
        }
    }
}
