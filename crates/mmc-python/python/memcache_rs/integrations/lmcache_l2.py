"""LMCache multiprocess-server L2 adapter on MemCache: ``memcache_rs.integrations.lmcache_l2``.

This module owns ``MemCacheL2Adapter``, an LMCache (0.5.6)
``L2AdapterInterface``, and its configuration class ``MemCacheL2AdapterConfig``.
LMCache's multiprocess server (``lmcache server``, which SGLang's
``--enable-lmcache`` connects to) keeps chunks in its L1 memory and hands
them to its L2 adapters; LMCache's ``plugin`` adapter type loads this one
by module path and class name, with no LMCache change::

    lmcache server --host 127.0.0.1 --port 5556 --l1-size-gb 4 --eviction-policy LRU \\
      --l2-adapter '{"type": "plugin",
                     "module_path": "memcache_rs.integrations.lmcache_l2",
                     "class_name": "MemCacheL2Adapter",
                     "adapter_params": {"meta_addr": "127.0.0.1:5000", "dram_size": 0}}'

``adapter_params`` keys (anything else is an error that names the key):

- ``config_path``: a LocalService configuration file (TOML or the original's
  ``ock.mmc.*`` format) to start from; else ``$MMC_LOCAL_CONFIG_PATH``; else
  the defaults (MetaService 127.0.0.1:5000, a 1 GiB segment).
- any ``memcache_rs.LocalConfig`` attribute (``meta_addr``,
  ``meta_service_url``, ``dram_size``, ``protocol``, ``token_file``, ...);
  ``dram_size`` > 0 makes the server process a memory provider too, 0 a pure
  client of ``mmc local`` providers.
- ``replicas``: replicas per chunk (1..=8, default 1).
- ``lock_ms``: length of the read lease a lookup takes on each key it finds
  (the interface's "lock": the object is neither evicted nor freed until the
  load's unlock or the lease's end); 0 (default) takes the MetaService's
  ``lease_ms``; at most 3600000.
- ``num_workers``: threads per operation kind (stores, lookups, loads each
  have their own), default 2.
- ``max_capacity_gb``: capacity declared to LMCache for its aggregate-usage
  L2 eviction (default 0: none; MemCache evicts by its own LRU).

How it maps: one MemCache object per chunk, named
``lmcache-l2@<model>@<kv_rank:08x>@<object_group_id:x>@<chunk_hash hex>[@<cache_salt>]``
(a name longer than 256 bytes is stored as ``lmcache-l2#<sha256 of it>``
and is not listed). Every submitted batch is one MemCache batch call on a
worker thread: stores ``batch_put_from`` straight from the L1 memory
objects' ``data_ptr``, lookups ``batch_add_lease`` (one lookup RPC that also
takes the leases; unlocks give them back with ``batch_remove_lease``, no
RPC), loads ``batch_get_into`` straight into the L1 buffers (an object of
another size than the buffer fails that key). Completions are signalled on
three event fds, as the interface requires. ``delete`` is one
``remove_batch``; ``list_l2_keys`` pages through the cluster's key listing.
Byte accounting (``get_usage``) counts the chunks this adapter stored and
has not deleted; chunks MemCache evicts on its own stay counted until a
``delete`` of their keys finds them gone.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

# First Party (LMCache): this module is loaded by LMCache's plugin L2 adapter, so LMCache is installed.
from lmcache.lmcache_native import Bitmap
from lmcache.logging import init_logger
from lmcache.v1.distributed.api import EncodedObjectKey, KeyEntry, KeyListPage, MemoryLayoutDesc, ObjectKey
from lmcache.v1.distributed.internal_api import L1MemoryDesc, L2StoreResult
from lmcache.v1.distributed.l2_adapters.base import L2AdapterInterface, L2TaskId
from lmcache.v1.distributed.l2_adapters.config import L2AdapterConfigBase
from lmcache.v1.memory_management import MemoryObj
from lmcache.v1.platform import create_event_notifier

import memcache_rs as _mmc

from ._common import fit_key, is_local_config_attr, local_config, parse_replicas

logger = init_logger(__name__)

__all__ = ["MemCacheL2Adapter", "MemCacheL2AdapterConfig", "object_name", "parse_object_name"]

KEY_PREFIX = "lmcache-l2@"
HASHED_PREFIX = "lmcache-l2#"
MAX_LOCK_MS = 3_600_000

# adapter_params keys of this adapter itself (all others must be LocalConfig attributes).
_OWN_KEYS = ("config_path", "replicas", "lock_ms", "num_workers", "max_capacity_gb")


def object_name(key: ObjectKey) -> str:
    """The MemCache object name of an L2 object key (see the module docstring)."""
    name = f"{KEY_PREFIX}{key.model_name}@{key.kv_rank:08x}@{key.object_group_id:x}@{key.chunk_hash.hex()}"
    if key.cache_salt:
        name = f"{name}@{key.cache_salt}"
    return fit_key(name, HASHED_PREFIX)


def parse_object_name(name: str) -> Optional[EncodedObjectKey]:
    """The key an object name written by ``object_name`` stands for; None for
    any other name (including hashed over-long ones)."""
    if not name.startswith(KEY_PREFIX):
        return None
    parts = name[len(KEY_PREFIX) :].split("@")
    if len(parts) not in (4, 5) or not parts[0]:
        return None
    model, rank, group, chunk_hash = parts[:4]
    try:
        kv_rank = int(rank, 16)
        group_id = int(group, 16)
        bytes.fromhex(chunk_hash)
    except ValueError:
        return None
    return EncodedObjectKey(
        chunk_hash_hex=chunk_hash,
        model_name=model,
        kv_rank=kv_rank,
        object_group_id=group_id,
        cache_salt=parts[4] if len(parts) == 5 else "",
    )


def _int_param(d: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"adapter_params key {key!r}: expected an int in {lo}..={hi}, got {v!r}")
    return v


class MemCacheL2AdapterConfig(L2AdapterConfigBase):
    """Parsed ``adapter_params`` of ``MemCacheL2Adapter`` (see the module docstring).

    LMCache's plugin factory finds this class by its name (the adapter's
    class name + ``Config``) and builds it with ``from_dict(adapter_params)``.
    """

    def __init__(
        self,
        local: "_mmc.LocalConfig",
        replicas: int = 1,
        lock_ms: int = 0,
        num_workers: int = 2,
        max_capacity_gb: float = 0.0,
    ) -> None:
        super().__init__()
        self.local = local
        self.replicas = replicas
        self.lock_ms = lock_ms
        self.num_workers = num_workers
        self.max_capacity_gb = max_capacity_gb

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "MemCacheL2AdapterConfig":
        """Checks every key and value of ``adapter_params``; ValueError names a bad one."""
        if not isinstance(d, Mapping):
            raise ValueError(f"adapter_params must be a JSON object, got {type(d).__name__}")
        unknown = sorted(k for k in d if k not in _OWN_KEYS and not is_local_config_attr(str(k)))
        if unknown:
            raise ValueError(
                f"adapter_params key {unknown[0]!r} is neither a memcache_rs.LocalConfig attribute "
                f"nor one of {list(_OWN_KEYS)}"
            )
        path = d.get("config_path")
        if path is not None and not isinstance(path, str):
            raise ValueError(f"adapter_params key 'config_path': expected a path string, got {path!r}")
        replicas = parse_replicas(d.get("replicas", 1), "adapter_params key 'replicas'")
        lock_ms = _int_param(d, "lock_ms", 0, 0, MAX_LOCK_MS)
        num_workers = _int_param(d, "num_workers", 2, 1, 64)
        cap = d.get("max_capacity_gb", 0)
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap < 0:
            raise ValueError(f"adapter_params key 'max_capacity_gb': expected a number >= 0, got {cap!r}")
        settings = [(f"adapter_params key {k!r}", k, v) for k, v in d.items() if k not in _OWN_KEYS]
        local = local_config(path, "adapter_params key 'config_path'", settings, "adapter_params")
        return cls(local, replicas, lock_ms, num_workers, float(cap))

    @classmethod
    def help(cls) -> str:
        return (
            "MemCache L2 adapter (memcache_rs.integrations.lmcache_l2.MemCacheL2Adapter), "
            'loaded as {"type": "plugin", "module_path": "memcache_rs.integrations.lmcache_l2", '
            '"class_name": "MemCacheL2Adapter", "adapter_params": {...}}. adapter_params:\n'
            "- any memcache_rs.LocalConfig attribute (meta_addr, meta_service_url, dram_size, "
            "protocol, token_file, ...)\n"
            "- config_path (str): LocalService config file read first (else $MMC_LOCAL_CONFIG_PATH)\n"
            "- replicas (int, 1..=8, default 1)\n"
            "- lock_ms (int, default 0 = the MetaService's lease_ms): lease a lookup takes per key\n"
            "- num_workers (int, default 2): threads per operation kind\n"
            "- max_capacity_gb (float, default 0): capacity declared for LMCache's L2 eviction"
        )


class MemCacheL2Adapter(L2AdapterInterface):
    """LMCache L2 adapter storing chunks in a MemCache cluster (see the module docstring)."""

    def __init__(
        self,
        config: Union[MemCacheL2AdapterConfig, Mapping[str, Any]],
        l1_memory_desc: Optional[L1MemoryDesc] = None,
    ) -> None:
        # l1_memory_desc: host memory needs no registration with MemCache; unused.
        if not isinstance(config, MemCacheL2AdapterConfig):
            if not isinstance(config, Mapping):
                raise TypeError(
                    f"MemCacheL2Adapter takes a MemCacheL2AdapterConfig or an adapter_params dict, "
                    f"got {type(config).__name__}"
                )
            config = MemCacheL2AdapterConfig.from_dict(dict(config))
        super().__init__(max_capacity_bytes=int(config.max_capacity_gb * (1 << 30)))
        self._config = config
        store = _mmc.DistributedObjectStore()
        rc = store.setup(config.local)
        if rc != 0:
            raise ValueError(f"MemCacheL2Adapter: invalid MemCache configuration (code {rc})")
        rc = store.init(0, init_bm=config.local.dram_size > 0)
        if rc != 0:
            raise ConnectionError(
                f"MemCacheL2Adapter: cannot join the MemCache cluster at {config.local.meta_addr} (code {rc})"
            )
        self._store = store
        self._opts = _mmc.ReplicateConfig(replicaNum=config.replicas)

        # Three distinct notifiers, as the interface requires.
        self._store_efd = create_event_notifier()
        self._lookup_efd = create_event_notifier()
        self._load_efd = create_event_notifier()

        self._lock = threading.Lock()  # task results, sizes, closed flag
        self._notify_lock = threading.Lock()  # listeners are called from one thread at a time
        self._task_ids = itertools.count()
        self._done_stores: Dict[L2TaskId, L2StoreResult] = {}
        self._done_lookups: Dict[L2TaskId, Bitmap] = {}
        self._done_loads: Dict[L2TaskId, Bitmap] = {}
        # Bytes of each key this adapter stored (for delete's accounting).
        self._sizes: Dict[ObjectKey, int] = {}
        self._closed = False
        n = config.num_workers
        self._store_pool = ThreadPoolExecutor(n, thread_name_prefix="memcache-l2-store")
        self._lookup_pool = ThreadPoolExecutor(n, thread_name_prefix="memcache-l2-lookup")
        self._load_pool = ThreadPoolExecutor(n, thread_name_prefix="memcache-l2-load")
        logger.info(
            "MemCacheL2Adapter: joined %s (segment %d bytes, %d replica(s), lock %s, %d worker(s) per kind)",
            config.local.meta_addr,
            config.local.dram_size,
            config.replicas,
            f"{config.lock_ms} ms" if config.lock_ms else "the MetaService's lease_ms",
            n,
        )

    # ---- event fds -------------------------------------------------------------

    def get_store_event_fd(self) -> int:
        return self._store_efd.fileno()

    def get_lookup_and_lock_event_fd(self) -> int:
        return self._lookup_efd.fileno()

    def get_load_event_fd(self) -> int:
        return self._load_efd.fileno()

    # ---- helpers ---------------------------------------------------------------

    def _submit(self, pool: ThreadPoolExecutor, job: Callable[[L2TaskId], None]) -> L2TaskId:
        with self._lock:
            if self._closed:
                raise RuntimeError("MemCacheL2Adapter is closed")
            task_id = next(self._task_ids)
        pool.submit(job, task_id)
        return task_id

    def _complete(self, done: Dict[L2TaskId, Any], efd: Any, task_id: L2TaskId, result: Any) -> None:
        """Records a finished task's result and signals its event fd."""
        with self._lock:
            done[task_id] = result
        efd.notify()

    @staticmethod
    def _buffers(keys: Sequence[ObjectKey], objects: Sequence[MemoryObj]) -> Tuple[List[str], List[int], List[int]]:
        if len(keys) != len(objects):
            raise ValueError(f"{len(keys)} keys but {len(objects)} memory objects")
        return [object_name(k) for k in keys], [o.data_ptr for o in objects], [o.get_size() for o in objects]

    # ---- store -----------------------------------------------------------------

    def submit_store_task(self, keys: List[ObjectKey], objects: List[MemoryObj]) -> L2TaskId:
        keys, objects = list(keys), list(objects)
        return self._submit(self._store_pool, lambda t: self._run_store(t, keys, objects))

    def _run_store(self, task_id: L2TaskId, keys: List[ObjectKey], objects: List[MemoryObj]) -> None:
        ok = False
        task_bytes = 0
        stored: List[ObjectKey] = []
        sizes: List[int] = []
        try:
            names, ptrs, lens = self._buffers(keys, objects)
            codes = self._store.batch_put_from(names, ptrs, lens, 3, self._opts) if keys else []
            ok = all(c == 0 for c in codes)
            with self._lock:
                for k, n, c in zip(keys, lens, codes):
                    if c != 0:
                        continue
                    # A key stored before adds no bytes (a put of a present key copies nothing)
                    # but is still reported, so that LRU policies see it used.
                    first = k not in self._sizes
                    self._sizes[k] = n
                    stored.append(k)
                    sizes.append(n if first else 0)
                    task_bytes += n if first else 0
            if not ok:
                bad = [(name, c) for name, c in zip(names, codes) if c != 0]
                logger.warning(
                    "MemCacheL2Adapter: %d of %d puts failed (first: %s code %d)", len(bad), len(keys), *bad[0]
                )
        except Exception:
            logger.exception("MemCacheL2Adapter: store task %d failed", task_id)
        if stored:
            with self._notify_lock:
                self._notify_keys_stored(stored, sizes)
        self._complete(self._done_stores, self._store_efd, task_id, L2StoreResult(ok, task_bytes))

    def pop_completed_store_tasks(self) -> Dict[L2TaskId, L2StoreResult]:
        with self._lock:
            done, self._done_stores = self._done_stores, {}
        return done

    # ---- lookup and lock -----------------------------------------------------

    def submit_lookup_and_lock_task(
        self, keys: List[ObjectKey], group_layout_descs: Dict[int, MemoryLayoutDesc]
    ) -> L2TaskId:
        # group_layout_descs is advisory: objects are looked up by name alone.
        keys = list(keys)
        return self._submit(self._lookup_pool, lambda t: self._run_lookup(t, keys))

    def _run_lookup(self, task_id: L2TaskId, keys: List[ObjectKey]) -> None:
        bitmap = Bitmap(len(keys))
        try:
            if keys:
                codes = self._store.batch_add_lease([object_name(k) for k in keys], self._config.lock_ms)
                errors = 0
                for i, c in enumerate(codes):
                    if c == 0:
                        bitmap.set(i)
                    elif c != _mmc.OBJECT_NOT_EXISTS:
                        errors += 1
                if errors:
                    logger.warning("MemCacheL2Adapter: lookup of %d of %d keys failed", errors, len(keys))
        except Exception:
            logger.exception("MemCacheL2Adapter: lookup task %d failed", task_id)
        self._complete(self._done_lookups, self._lookup_efd, task_id, bitmap)

    def query_lookup_and_lock_result(self, task_id: L2TaskId) -> Optional[Bitmap]:
        with self._lock:
            return self._done_lookups.pop(task_id, None)

    def submit_unlock(self, keys: List[ObjectKey]) -> None:
        """Gives back one lease per key (local bookkeeping; the releases reach
        the MetaService in the background). A lease that ran out or is not
        held is nothing to give back."""
        if not keys:
            return
        with self._lock:
            if self._closed:
                return
        rc = self._store.batch_remove_lease([object_name(k) for k in keys])
        if rc not in (0, _mmc.LEASE_EXPIRED):
            logger.debug("MemCacheL2Adapter: unlock of %d keys: code %d (a lease not held here)", len(keys), rc)

    # ---- load ------------------------------------------------------------------

    def submit_load_task(self, keys: List[ObjectKey], objects: List[MemoryObj]) -> L2TaskId:
        keys, objects = list(keys), list(objects)
        return self._submit(self._load_pool, lambda t: self._run_load(t, keys, objects))

    def _run_load(self, task_id: L2TaskId, keys: List[ObjectKey], objects: List[MemoryObj]) -> None:
        bitmap = Bitmap(len(keys))
        loaded: List[ObjectKey] = []
        try:
            names, ptrs, lens = self._buffers(keys, objects)
            codes = self._store.batch_get_into(names, ptrs, lens) if keys else []
            errors = []
            for i, c in enumerate(codes):
                if c == 0:
                    bitmap.set(i)
                    loaded.append(keys[i])
                elif c != _mmc.OBJECT_NOT_EXISTS:
                    errors.append((names[i], c))
            if errors:
                # INVALID_PARAM: the object's size is not the buffer's (another layout).
                logger.warning(
                    "MemCacheL2Adapter: %d of %d loads failed (first: %s code %d)", len(errors), len(keys), *errors[0]
                )
        except Exception:
            logger.exception("MemCacheL2Adapter: load task %d failed", task_id)
        if loaded:
            with self._notify_lock:
                self._notify_keys_accessed(loaded)
        self._complete(self._done_loads, self._load_efd, task_id, bitmap)

    def query_load_result(self, task_id: L2TaskId) -> Optional[Bitmap]:
        with self._lock:
            return self._done_loads.pop(task_id, None)

    # ---- delete, listing, status -------------------------------------------

    def delete(self, keys: List[ObjectKey]) -> None:
        """Removes the keys (one ``remove_batch``). Listeners hear of each key
        removed, and of each key this adapter stored that was already gone
        (evicted by MemCache), with the bytes it had counted for it."""
        if not keys:
            return
        with self._lock:
            if self._closed:
                return
        keys = list(keys)
        codes = self._store.remove_batch([object_name(k) for k in keys])
        gone: List[ObjectKey] = []
        sizes: List[int] = []
        failed = 0
        with self._lock:
            for k, c in zip(keys, codes):
                if c == 0 or c == _mmc.UNMATCHED_KEY:
                    n = self._sizes.pop(k, None)
                    if c == 0 or n is not None:
                        gone.append(k)
                        sizes.append(n or 0)
                else:
                    failed += 1
        if failed:
            logger.warning("MemCacheL2Adapter: %d of %d removals failed", failed, len(keys))
        if gone:
            with self._notify_lock:
                self._notify_keys_deleted(gone, sizes)

    def list_l2_keys(
        self,
        model_name: Optional[str] = None,
        page_size: int = 500,
        cursor: Optional[str] = None,
    ) -> KeyListPage:
        """One page of the keys stored through this adapter's naming scheme
        (by any process), in name order; ``cursor`` is the last name of the
        previous page. Over-long (hashed) names are not listed."""
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size <= 0:
            raise ValueError(f"page_size must be a positive int (got {page_size!r})")
        prefix = KEY_PREFIX if model_name is None else f"{KEY_PREFIX}{model_name}@"
        if cursor is not None and (not isinstance(cursor, str) or not cursor.startswith(prefix)):
            raise ValueError(f"malformed cursor {cursor!r}: not a name under {prefix!r}")
        page, after = self._store._list_keys(cursor if cursor is not None else prefix, min(page_size, 100_000))
        done = after is None
        last: Optional[str] = None
        names: List[str] = []
        keys: List[EncodedObjectKey] = []
        for name in page:
            if not name.startswith(prefix):
                done = True  # names are listed in order: the prefix's range has ended
                break
            last = name
            k = parse_object_name(name)
            if k is not None:
                names.append(name)
                keys.append(k)
        entries: List[KeyEntry] = []
        if names:
            for k, info in zip(keys, self._store.batch_get_key_info(names)):
                size = info.size()
                if size > 0:  # 0: removed since it was listed
                    entries.append(KeyEntry(key=k, size_bytes=size))
        return KeyListPage(entries=tuple(entries), next_page_token=None if done or last is None else last)

    def report_status(self) -> Dict[str, Any]:
        with self._lock:
            closed = self._closed
            stored = len(self._sizes)
        healthy = not closed and self._store.is_exist("__lmcache_l2_ping__") >= 0
        usage = self.get_usage()
        return {
            "is_healthy": healthy,
            "type": "MemCacheL2Adapter",
            "meta_addr": self._config.local.meta_addr,
            "replicas": self._config.replicas,
            "lock_ms": self._config.lock_ms,
            "num_workers": self._config.num_workers,
            "stored_keys": stored,
            "current_size_bytes": usage.total_bytes_used,
            "max_capacity_bytes": usage.total_capacity_bytes,
        }

    # ---- cleanup ---------------------------------------------------------------

    def close(self) -> None:
        """Waits for running tasks (queued ones are dropped), closes the event
        fds and gives this adapter's share of the process's MemCache client back."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for pool in (self._store_pool, self._lookup_pool, self._load_pool):
            pool.shutdown(wait=True, cancel_futures=True)
        self._store_efd.close()
        self._lookup_efd.close()
        self._load_efd.close()
        self._store.close()
        logger.info("MemCacheL2Adapter: closed")

    def __repr__(self) -> str:
        return f"<MemCacheL2Adapter meta_addr={self._config.local.meta_addr!r}>"
