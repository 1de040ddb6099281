"""SGLang HiCache L3 storage backend on MemCache (``MemCacheStore``).

Loaded by SGLang's dynamic backend loader; nothing in SGLang changes::

    python -m sglang.launch_server ... --enable-hierarchical-cache \\
      --hicache-mem-layout page_first \\
      --hicache-storage-backend dynamic \\
      --hicache-storage-backend-extra-config '{"backend_name": "memcache",
        "module_path": "memcache_rs.integrations.sglang",
        "class_name": "MemCacheStore", "interface_v1": 1,
        "meta_service_url": "tcp://127.0.0.1:5000", "dram_size": "4GB"}'

With ``interface_v1`` SGLang calls the zero-copy methods ``batch_exists``,
``batch_get_v1`` and ``batch_set_v1``: pages move between SGLang's host KV
pool and the cluster with one batch call each (``batch_put_from`` /
``batch_get_into``, or their ``_layers`` forms where a page is several
buffers), and ``batch_exists`` is one ``batch_is_exist`` RPC for a whole
batch. Without it SGLang uses ``batch_get`` / ``batch_set`` on flat page
tensors, which read and write the same objects; given int addresses and
sizes instead, ``get`` / ``set`` / ``batch_get`` / ``batch_set`` store raw
objects named by the key and return booleans (as SGLang's Mooncake backend).

Configuration (later sources override earlier ones):

1. ``LocalConfig`` defaults (MetaService 127.0.0.1:5000, a 1 GiB segment),
2. the file named by ``config_path`` in the extra config, else by
   ``$MMC_LOCAL_CONFIG_PATH`` (TOML or the original's ``ock.mmc.*`` format),
3. every other extra-config key that is a ``LocalConfig`` attribute
   (``meta_service_url``, ``meta_addr``, ``dram_size``, ``protocol``,
   ``token_file``, ...), set as given.

Keys of this backend itself: ``init_bm`` (default true: this process also
contributes its ``dram_size`` segment; false: a pure client),
``replica_num`` (replicas per object, default 1), ``extra_backend_tag``
(a key prefix that separates tenants, as in SGLang's Mooncake backend),
``device_id`` (the ``init`` device id; default the TP rank), and
SGLang's own ``backend_name``, ``module_path``, ``class_name``,
``interface_v1``. Any other key is an error that names it.

Objects, per page hash ``H`` (``P`` = ``<extra_backend_tag>_<model>_`` when
those are set, as Mooncake names them):

* MHA: ``P H _<tp_rank>_<fmt>_k`` and ``..._v`` (``<tp_rank>_<pp_rank>_<cp_rank>``
  under pipeline or context parallelism; one pair per target rank when
  SGLang splits heads for a larger ``tp_lcm_size``),
* MLA (rank-replicated): ``P H _mla_<fmt>`` (``_mla<pp>_<cp>_`` likewise).

``<fmt>`` names the byte order of a page, so that host pools whose layouts
store a page in the same order share objects and the others never read
each other's bytes: ``tm`` token-major (``page_first``), ``lm`` layer-major
(``layer_first`` and ``page_first_direct``), ``hm`` head-major
(``page_head``), ``kvs`` (MLA ``page_first_kv_split``: one object of the
k, v and indexer parts of a page).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

import memcache_rs
from sglang.srt.mem_cache.hicache_storage import (
    HiCacheStorage,
    HiCacheStorageConfig,
    HiCacheStorageExtraInfo,
)

try:  # SGLang's stats type (sglang >= 0.5)
    from sglang.srt.observability.metrics_collector import StorageMetrics
except ImportError:  # pragma: no cover - older SGLang
    try:
        from sglang.srt.metrics.collector import StorageMetrics
    except ImportError:
        StorageMetrics = None

logger = logging.getLogger(__name__)

# Extra-config keys SGLang's loader or this backend consumes (not LocalConfig attributes).
_SGLANG_KEYS = frozenset({"backend_name", "module_path", "class_name", "interface_v1", "tp_lcm_size"})
_OWN_KEYS = frozenset({"config_path", "init_bm", "replica_num", "extra_backend_tag", "device_id"})

# Host-pool layouts this backend accepts, and the byte-order tag of each.
MHA_LAYOUTS = {"page_first": "tm", "page_first_direct": "lm", "layer_first": "lm", "page_head": "hm"}
MLA_LAYOUTS = {"page_first": "tm", "page_first_direct": "lm", "layer_first": "lm", "page_first_kv_split": "kvs"}


def local_config_from(extra: Dict[str, Any]) -> Tuple["memcache_rs.LocalConfig", Dict[str, Any]]:
    """The LocalConfig an extra config describes, and this backend's own keys in it.

    Raises ValueError naming a key that is neither a LocalConfig attribute
    nor a key of this backend or SGLang's loader, or a config file that
    cannot be read; TypeError for a value of the wrong type.
    """
    path = extra.get("config_path")
    try:
        cfg = memcache_rs.LocalConfig.load(path) if path else memcache_rs.LocalConfig.load()
    except ValueError as e:
        raise ValueError(f"MemCacheStore: cannot read the LocalService config: {e}") from e
    own = {}
    for key, value in extra.items():
        if key in _SGLANG_KEYS:
            continue
        if key in _OWN_KEYS:
            own[key] = value
            continue
        if key.startswith("_") or not hasattr(cfg, key) or callable(getattr(cfg, key)):
            raise ValueError(
                f"MemCacheStore: unknown extra-config key {key!r}: not a memcache_rs.LocalConfig attribute "
                f"nor one of {sorted(_OWN_KEYS | _SGLANG_KEYS)}"
            )
        try:
            setattr(cfg, key, value)
        except (TypeError, ValueError) as e:
            raise type(e)(f"MemCacheStore: extra-config key {key!r}: {e}") from e
    try:
        cfg.validate()
    except ValueError as e:
        raise ValueError(f"MemCacheStore: invalid LocalService config: {e}") from e
    return cfg, own


class MemCacheStore(HiCacheStorage):
    """SGLang HiCache storage backend on a MemCache cluster (see the module docstring)."""

    def __init__(self, storage_config: Optional[HiCacheStorageConfig] = None, kwargs: Any = None):
        # SGLang's dynamic loader passes (storage_config, kwargs); a built-in
        # style registration passes (storage_config, mem_pool_host).
        mem_pool_host = kwargs if kwargs is not None and not isinstance(kwargs, dict) else None
        self.storage_config = storage_config
        self.store = None
        self.mem_pool_host = None
        extra = dict(getattr(storage_config, "extra_config", None) or {})
        cfg, own = local_config_from(extra)

        replica_num = own.get("replica_num", 1)
        if isinstance(replica_num, bool) or not isinstance(replica_num, int) or not 1 <= replica_num <= 8:
            raise ValueError(f"MemCacheStore: replica_num must be an int in 1..=8, got {replica_num!r}")
        self._replicate = memcache_rs.ReplicateConfig(replicaNum=replica_num)
        init_bm = own.get("init_bm", True)
        if not isinstance(init_bm, bool):
            raise TypeError(f"MemCacheStore: init_bm must be a bool, got {init_bm!r}")

        sc = storage_config
        self.tp_rank = sc.tp_rank if sc is not None else 0
        self.is_mla = bool(sc.is_mla_model) if sc is not None else False
        pp_rank, pp_size = (sc.pp_rank, sc.pp_size) if sc is not None else (0, 1)
        cp_rank, cp_size = (sc.attn_cp_rank, sc.attn_cp_size) if sc is not None else (0, 1)
        self.enable_storage_metrics = bool(sc.enable_storage_metrics) if sc is not None else False
        if sc is not None and getattr(sc, "dcp_size", 1) > 1:
            raise NotImplementedError("MemCacheStore: decode context parallelism (dcp_size > 1) is not supported")

        # Rank part of the object names (Mooncake's scheme, plus the CP rank).
        staged = pp_size > 1 or cp_size > 1
        rank_part = f"_{pp_rank}_{cp_rank}" if staged else ""
        self.mla_suffix = f"mla{rank_part}"
        self.split_factor = 0
        if sc is not None and sc.should_split_heads:
            self.split_factor = sc.tp_lcm_size // sc.tp_size
            ranks = [self.tp_rank * self.split_factor + i for i in range(self.split_factor)]
        else:
            ranks = [self.tp_rank]
        self.mha_suffixes = [f"{r}{rank_part}" for r in ranks]

        prefix = []
        if own.get("extra_backend_tag") is not None:
            prefix.append(str(own["extra_backend_tag"]))
        if sc is not None and sc.model_name:
            prefix.append("-".join(str(sc.model_name).split("/")))
        self.key_prefix = "_".join(prefix) + "_" if prefix else ""

        store = memcache_rs.DistributedObjectStore()
        if store.setup(cfg) != 0:
            raise ValueError(f"MemCacheStore: LocalConfig rejected: {cfg.str()}")
        device_id = int(own.get("device_id", self.tp_rank))
        rc = store.init(device_id, init_bm)
        if rc != 0:
            raise RuntimeError(
                f"MemCacheStore: joining the MemCache cluster at {cfg.meta_addr} failed with code {rc} "
                "(is a MetaService running there? see docs/integrations.md)"
            )
        self.store = store
        self.fmt = None
        self.components = None
        self.prefetch_pgs: List[int] = []
        self.backup_pgs: List[int] = []
        self.prefetch_bandwidth: List[float] = []
        self.backup_bandwidth: List[float] = []
        logger.info(
            "MemCacheStore joined %s (service id %s, tp_rank %s, mla %s)",
            cfg.meta_addr,
            store.get_local_service_id(),
            self.tp_rank,
            self.is_mla,
        )
        if mem_pool_host is not None:
            self.register_mem_pool_host(mem_pool_host)

    # ---- host pool -------------------------------------------------------

    def register_mem_pool_host(self, mem_pool_host) -> None:
        """Checks the host pool's layout and works out how a page maps onto objects."""
        layout = getattr(mem_pool_host, "layout", None)
        accepted = MLA_LAYOUTS if self.is_mla else MHA_LAYOUTS
        if layout not in accepted:
            raise ValueError(
                f"MemCacheStore: host pool layout {layout!r} is not supported for "
                f"{'MLA' if self.is_mla else 'MHA'} models; use one of {sorted(accepted)} (--hicache-mem-layout)"
            )
        if getattr(mem_pool_host, "kv_buffer", None) is None:
            raise ValueError("MemCacheStore: the host pool has no KV buffer (logical-only pools are not supported)")
        if self.split_factor and layout != "page_head":
            raise ValueError("MemCacheStore: splitting heads across ranks (tp_lcm_size) needs the page_head layout")
        super().register_mem_pool_host(mem_pool_host)
        self.fmt = accepted[layout]
        page_size = mem_pool_host.page_size
        probe = torch.arange(page_size, dtype=torch.int64)
        per_page = len(self._page_meta(probe)[0])
        # components: (object-name suffix, positions of its buffers in one page's pointer list)
        if self.is_mla:
            self.components = [(f"{self.mla_suffix}_{self.fmt}", list(range(per_page)))]
        elif self.split_factor:
            self.components = []
            for i, s in enumerate(self.mha_suffixes):
                self.components += [(f"{s}_{self.fmt}_k", [2 * i]), (f"{s}_{self.fmt}_v", [2 * i + 1])]
        else:
            # MHA: pointers come as (k, v) per page, or (k, v) per layer for layer_first.
            s = self.mha_suffixes[0]
            self.components = [
                (f"{s}_{self.fmt}_k", list(range(0, per_page, 2))),
                (f"{s}_{self.fmt}_v", list(range(1, per_page, 2))),
            ]
        if sum(len(p) for _, p in self.components) != per_page:
            raise ValueError(f"MemCacheStore: unexpected page buffer layout ({per_page} buffers per page)")
        self.multi = any(len(p) > 1 for _, p in self.components)
        self.page_bytes = sum(self._page_meta(probe)[1])

    def _page_meta(self, indices: torch.Tensor) -> Tuple[List[int], List[int]]:
        pool = self.mem_pool_host
        if self.split_factor:
            return pool.get_split_heads_page_buffer_meta(indices, self.split_factor)
        return pool.get_page_buffer_meta(indices)

    def _require_pool(self) -> None:
        if self.components is None:
            raise RuntimeError("MemCacheStore: register_mem_pool_host must be called first")

    def _object_keys(self, keys: Sequence[str]) -> List[str]:
        """Object names of pages `keys`, page by page, component by component."""
        self._require_pool()
        p = self.key_prefix
        return [f"{p}{k}_{suffix}" for k in keys for suffix, _ in self.components]

    def _plan(self, keys: Sequence[str], host_indices: torch.Tensor):
        """Object names, pointers and sizes of pages `keys` at `host_indices`."""
        self._require_pool()
        page_size = self.mem_pool_host.page_size
        if len(keys) * page_size != len(host_indices):
            raise ValueError(
                f"MemCacheStore: {len(keys)} keys need {len(keys) * page_size} host indices, got {len(host_indices)}"
            )
        ptrs, sizes = self._page_meta(host_indices)
        per_page = len(ptrs) // max(len(keys), 1)
        names = self._object_keys(keys)
        obj_ptrs, obj_sizes = [], []
        for page in range(len(keys)):
            base = page * per_page
            for _, pos in self.components:
                if self.multi:
                    obj_ptrs.append([ptrs[base + i] for i in pos])
                    obj_sizes.append([sizes[base + i] for i in pos])
                else:
                    obj_ptrs.append(ptrs[base + pos[0]])
                    obj_sizes.append(sizes[base + pos[0]])
        return names, obj_ptrs, obj_sizes

    def _put(self, names, ptrs, sizes) -> List[int]:
        if self.multi:
            return self.store.batch_put_from_layers(names, ptrs, sizes, 3, self._replicate)
        return self.store.batch_put_from(names, ptrs, sizes, 3, self._replicate)

    def _get(self, names, ptrs, sizes) -> List[int]:
        if self.multi:
            return self.store.batch_get_into_layers(names, ptrs, sizes)
        return self.store.batch_get_into(names, ptrs, sizes)

    def _per_page(self, codes: Sequence[int]) -> List[bool]:
        n = len(self.components)
        return [all(c == 0 for c in codes[i : i + n]) for i in range(0, len(codes), n)]

    def _record(self, pages: List[int], bandwidth: List[float], n: int, seconds: float) -> None:
        if self.enable_storage_metrics and n and seconds > 0:
            pages.append(n)
            bandwidth.append(n * self.page_bytes / (1 << 30) / seconds)

    # ---- zero-copy interface (interface_v1) --------------------------------

    def batch_exists(self, keys: List[str], extra_info: Optional[HiCacheStorageExtraInfo] = None) -> int:
        """Number of leading pages of `keys` whose objects are all present (one RPC)."""
        if not keys:
            return 0
        n = len(self.components) if self.components is not None else 0
        codes = self.store.batch_is_exist(self._object_keys(keys))
        for i, c in enumerate(codes):
            if c != 1:
                return i // n
        return len(keys)

    def batch_get_v1(
        self, keys: List[str], host_indices: torch.Tensor, extra_info: Optional[HiCacheStorageExtraInfo] = None
    ) -> List[bool]:
        """Copies pages `keys` into the host pool at `host_indices`; one bool per page."""
        if not keys:
            return []
        names, ptrs, sizes = self._plan(keys, host_indices)
        t = time.perf_counter()
        codes = self._get(names, ptrs, sizes)
        self._record(self.prefetch_pgs, self.prefetch_bandwidth, len(keys), time.perf_counter() - t)
        return self._per_page(codes)

    def batch_set_v1(
        self, keys: List[str], host_indices: torch.Tensor, extra_info: Optional[HiCacheStorageExtraInfo] = None
    ) -> List[bool]:
        """Stores pages `keys` from the host pool at `host_indices`; one bool per page.

        A page already stored counts as stored (objects are immutable and a put
        of an existing key returns 0 without copying), so no existence query
        precedes the put.
        """
        if not keys:
            return []
        names, ptrs, sizes = self._plan(keys, host_indices)
        t = time.perf_counter()
        codes = self._put(names, ptrs, sizes)
        self._record(self.backup_pgs, self.backup_bandwidth, len(keys), time.perf_counter() - t)
        return self._per_page(codes)

    # ---- flat pages and raw objects (without interface_v1) ----------------
    #
    # Tensors are flat pages (SGLang's get_data_page format, what its cache
    # controller passes without interface_v1): they are stored in and read from
    # the same per-page objects as batch_set_v1 / batch_get_v1. Integer
    # addresses with sizes are raw objects named by the key (as in SGLang's
    # Mooncake and npu_memcache backends), and those calls return booleans.

    def _flat_plan(self, keys: Sequence[str], tensors: Sequence[torch.Tensor]):
        """Object names, pointers and sizes of flat pages held in CPU tensors."""
        self._require_pool()
        if self.fmt == "kvs" or self.split_factor:
            raise NotImplementedError(
                "MemCacheStore: flat pages are not defined for this layout; use interface_v1 (batch_get_v1/batch_set_v1)"
            )
        n = len(self.components)
        ptrs, lens = [], []
        for t in tensors:
            if t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError("MemCacheStore: flat pages must be contiguous CPU tensors")
            total = t.numel() * t.element_size()
            if total != self.page_bytes:
                raise ValueError(f"MemCacheStore: a flat page is {self.page_bytes} bytes, got {total}")
            part = total // n  # MHA: the k half, then the v half; MLA: the whole page
            for j in range(n):
                ptrs.append(t.data_ptr() + j * part)
                lens.append(part)
        return self._object_keys(keys), ptrs, lens

    @staticmethod
    def _targets(keys, targets, sizes, what: str):
        """'tensors' or 'raw' (int addresses with sizes); checks the lengths."""
        if targets is None:
            raise ValueError(f"MemCacheStore: {what} needs the page tensors or addresses")
        if len(targets) != len(keys) or (sizes is not None and len(sizes) != len(keys)):
            raise ValueError(f"MemCacheStore: {what}: keys, targets and sizes differ in length")
        if all(isinstance(t, torch.Tensor) for t in targets):
            return "tensors"
        if sizes is not None and all(isinstance(t, int) and not isinstance(t, bool) for t in targets):
            return "raw"
        raise TypeError(f"MemCacheStore: {what} takes CPU tensors, or int addresses together with their sizes")

    def set(self, key: str, value: Optional[Any] = None, target_location: Optional[Any] = None, target_sizes: Optional[Any] = None) -> bool:
        """Stores a flat page tensor `value`, or the raw object at `target_location` (`target_sizes` bytes)."""
        if value is not None:
            return self.batch_set([key], [value])
        return self.batch_set([key], None, [target_location], None if target_sizes is None else [target_sizes])

    def batch_set(self, keys: List[str], values: Optional[Any] = None, target_locations: Optional[Any] = None, target_sizes: Optional[Any] = None) -> bool:
        """Stores flat pages (tensors) or raw objects (addresses and sizes); True when all are stored."""
        if not keys:
            return False
        targets = values if values is not None else target_locations
        if self._targets(keys, targets, target_sizes, "batch_set") == "raw":
            codes = self.store.batch_put_from(
                [self.key_prefix + k for k in keys], list(targets), [int(s) for s in target_sizes], 3, self._replicate
            )
            return all(c == 0 for c in codes)
        names, ptrs, lens = self._flat_plan(keys, targets)
        t = time.perf_counter()
        codes = self.store.batch_put_from(names, ptrs, lens, 3, self._replicate)
        self._record(self.backup_pgs, self.backup_bandwidth, len(keys), time.perf_counter() - t)
        return all(self._per_page(codes))

    def get(self, key: str, target_location: Optional[Any] = None, target_sizes: Optional[Any] = None):
        """Reads a flat page into tensor `target_location` (returns it, or None), or a raw object into an address (returns a bool)."""
        return self.batch_get([key], [target_location], None if target_sizes is None else [target_sizes])[0]

    def batch_get(self, keys: List[str], target_locations: Optional[Any] = None, target_sizes: Optional[Any] = None) -> List[Any]:
        """Reads flat pages into tensors (per key the tensor, or None when it could
        not be read) or raw objects into addresses (per key a bool)."""
        if not keys:
            return []
        if self._targets(keys, target_locations, target_sizes, "batch_get") == "raw":
            codes = self.store.batch_get_into(
                [self.key_prefix + k for k in keys], list(target_locations), [int(s) for s in target_sizes]
            )
            return [c == 0 for c in codes]
        names, ptrs, lens = self._flat_plan(keys, target_locations)
        t = time.perf_counter()
        codes = self.store.batch_get_into(names, ptrs, lens)
        ok = self._per_page(codes)
        self._record(self.prefetch_pgs, self.prefetch_bandwidth, sum(ok), time.perf_counter() - t)
        return [target if good else None for target, good in zip(target_locations, ok)]

    def exists(self, key: str) -> bool:
        """Whether page `key` is stored (all its objects) or a raw object `key` is; one RPC."""
        names = [self.key_prefix + key] + (self._object_keys([key]) if self.components is not None else [])
        codes = self.store.batch_is_exist(names)
        return codes[0] == 1 or (len(codes) > 1 and all(c == 1 for c in codes[1:]))

    # ---- housekeeping -------------------------------------------------------

    def clear(self) -> None:
        """Removes every object of the cluster (as SGLang's Mooncake backend does)."""
        self.store.remove_all()

    def close(self) -> None:
        """Gives this backend's share of the process's MemCache client back."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def get_stats(self):
        """Pages and GB/s of the loads and backups since the last call (SGLang's StorageMetrics)."""
        if StorageMetrics is None:
            return None
        m = StorageMetrics()
        m.prefetch_pgs.extend(self.prefetch_pgs)
        m.backup_pgs.extend(self.backup_pgs)
        m.prefetch_bandwidth.extend(self.prefetch_bandwidth)
        m.backup_bandwidth.extend(self.backup_bandwidth)
        self.prefetch_pgs.clear()
        self.backup_pgs.clear()
        self.prefetch_bandwidth.clear()
        self.backup_bandwidth.clear()
        return m
