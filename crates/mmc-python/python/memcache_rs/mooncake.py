"""Mooncake-compatible client: ``memcache_rs.mooncake.MooncakeDistributedStore``.

This module owns the Mooncake spelling of the MemCache client: the class,
method names, arguments and return conventions of Mooncake's
``mooncake.store.MooncakeDistributedStore`` (checked against
mooncake-transfer-engine 0.3.13), so code written for Mooncake switches by
changing one import::

    from memcache_rs.mooncake import MooncakeDistributedStore, ReplicateConfig

    store = MooncakeDistributedStore()
    store.setup("localhost", "P2PHANDSHAKE", 1 << 30, 16 << 20, "tcp", "", "127.0.0.1:5000")
    store.put("key", b"value")               # 0
    store.get_into("key", ptr, size)         # bytes read (5), or negative

Engine code that imports ``mooncake.store`` itself (SGLang's ``mooncake``
HiCache backend, LMCache's ``mooncakestore://`` connector, vLLM's
``MooncakeStoreConnector``) runs on MemCache unchanged in either of two ways:
``install_as_mooncake()`` in the process (``import mooncake.store`` then gives
this module), or, for engines that spawn worker processes, ``SHIM_PATH`` (a
directory holding a ``mooncake`` package that re-exports this module) on
``PYTHONPATH``: ``python -m memcache_rs.mooncake`` prints it.

Mapping of ``setup`` (details in docs/integrations.md):

- ``master_server_addr``: the MetaService (``host:port``, ``tcp://host:port``,
  or ``etcd://ep1;ep2`` for an HA cluster).
- ``global_segment_size``: the DRAM segment this process contributes
  (``LocalConfig.dram_size``); 0 makes a pure client.
- ``protocol``: ``tcp`` uses MemCache's automatic path (shared memory with
  same-host services, TCP otherwise); ``rdma`` and other transports fall back
  to it with a one-time warning.
- ``local_hostname`` names this client's segment (``get_hostname``;
  ``ReplicateConfig.preferred_segment`` equal to it places replicas here).
- ``metadata_server``, ``local_buffer_size``, ``rdma_devices``, ``engine``:
  no meaning here, accepted and ignored.
- Every other setting comes from ``$MMC_LOCAL_CONFIG_PATH`` when set (token,
  TLS, transfer address, ...), else MemCache's defaults.

Return conventions follow Mooncake: puts and removes return 0 or a negative
Mooncake error code, gets into buffers return the number of bytes read (a
buffer may be larger than the object) or a negative code, ``is_exist`` 1 / 0
/ -1, ``get`` ``b""`` when absent, ``get_size`` the size or -704. MemCache's
result codes are translated to Mooncake's (``OBJECT_NOT_FOUND`` -704,
``INVALID_PARAMS`` -600, ``NO_AVAILABLE_HANDLE`` -200, ...; see
``MOONCAKE_CODE``).
"""

from __future__ import annotations

import ctypes
import enum
import inspect
import logging
import sys
import threading
import os
import types
from typing import Any, Dict, List, Optional, Sequence

import memcache_rs as _mmc

__all__ = [
    "MooncakeDistributedStore",
    "ReplicateConfig",
    "ReplicaDescriptor",
    "MemoryDescriptor",
    "Descriptor",
    "ReplicaStatus",
    "SoftPinAction",
    "BufferHandle",
    "MOONCAKE_CODE",
    "install_as_mooncake",
    "SHIM_PATH",
]

SHIM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_mooncake_shim")
"""Directory to put on PYTHONPATH so that ``import mooncake.store`` gives this module in every process."""

_log = logging.getLogger("memcache_rs.mooncake")

# Mooncake's ErrorCode values (mooncake-store/include/types.h).
OK = 0
INTERNAL_ERROR = -1
NO_AVAILABLE_HANDLE = -200
INVALID_KEY = -400
INVALID_PARAMS = -600
OBJECT_NOT_FOUND = -704
OBJECT_ALREADY_EXISTS = -705
LEASE_EXPIRED = -707
TRANSFER_FAIL = -800
RPC_FAIL = -900
RPC_TIMEOUT = -901

MOONCAKE_CODE: Dict[int, int] = {
    _mmc.OK: OK,
    _mmc.ERROR: INTERNAL_ERROR,
    _mmc.INVALID_PARAM: INVALID_PARAMS,
    _mmc.NOT_STARTED: INTERNAL_ERROR,
    _mmc.NOT_INITIALIZED: INTERNAL_ERROR,
    _mmc.TIMEOUT: RPC_TIMEOUT,
    _mmc.DUPLICATED_OBJECT: OBJECT_ALREADY_EXISTS,
    _mmc.OBJECT_NOT_EXISTS: OBJECT_NOT_FOUND,
    _mmc.UNMATCHED_KEY: OBJECT_NOT_FOUND,
    _mmc.NOT_ENOUGH_MEMORY: NO_AVAILABLE_HANDLE,
    _mmc.NO_PROVIDER: NO_AVAILABLE_HANDLE,
    _mmc.NOT_CONNECTED_META: RPC_FAIL,
    _mmc.NOT_LEADER: RPC_FAIL,
    _mmc.NOT_CONNECTED_LOCAL: TRANSFER_FAIL,
    _mmc.LEASE_EXPIRED: LEASE_EXPIRED,
}
"""MemCache result code -> Mooncake ErrorCode; codes not listed pass through unchanged."""


def _mc(code: int) -> int:
    return MOONCAKE_CODE.get(code, code)


_warned: set = set()
_warn_lock = threading.Lock()


def _warn_once(what: str, msg: str) -> None:
    with _warn_lock:
        if what in _warned:
            return
        _warned.add(what)
    _log.warning(msg)


class ReplicaStatus(enum.IntEnum):
    UNDEFINED = 0
    INITIALIZED = 1
    PROCESSING = 2
    COMPLETE = 3
    REMOVED = 4
    FAILED = 5


class SoftPinAction(enum.IntEnum):
    PRESERVE = 0
    ENABLE = 1
    DISABLE = 2


class ReplicateConfig:
    """Mooncake's ``ReplicateConfig``: every field is accepted.

    ``replica_num`` (1..=8) sets the number of replicas.
    ``preferred_segment`` / ``preferred_segments`` naming this client's
    ``local_hostname``, or ``prefer_alloc_in_same_node``, place the first
    replica in this process's segment; other segment names have no
    counterpart here (MemCache places by service id) and are ignored with a
    warning. The pin fields (``with_soft_pin``, ``with_hard_pin``,
    ``soft_pin_action``, ``soft_pin_ttl_ms``), ``nof_replica_num``,
    ``dfs_replica_num``, ``data_type`` and ``group_ids`` are kept but have no
    effect: objects are evicted by MemCache's watermarks, never pinned, and
    one at a time (Mooncake's groups share one lease and are evicted
    together; a non-empty ``group_ids`` is warned about once).
    Unknown attributes raise ``AttributeError``, as the pybind class does.
    """

    __slots__ = (
        "replica_num",
        "with_soft_pin",
        "with_hard_pin",
        "soft_pin_action",
        "soft_pin_ttl_ms",
        "preferred_segment",
        "preferred_segments",
        "preferred_nof_segments",
        "prefer_alloc_in_same_node",
        "nof_replica_num",
        "dfs_replica_num",
        "data_type",
        "group_ids",
    )

    def __init__(self) -> None:
        self.replica_num = 1
        self.with_soft_pin = False
        self.with_hard_pin = False
        self.soft_pin_action = SoftPinAction.PRESERVE
        self.soft_pin_ttl_ms = None
        self.preferred_segment = ""
        self.preferred_segments: List[str] = []
        self.preferred_nof_segments: List[str] = []
        self.prefer_alloc_in_same_node = False
        self.nof_replica_num = 0
        self.dfs_replica_num = 0
        self.data_type = 0
        self.group_ids = None

    def __str__(self) -> str:
        return (
            f"ReplicateConfig: {{ replica_num: {self.replica_num}, with_soft_pin: {int(bool(self.with_soft_pin))}, "
            f"with_hard_pin: {int(bool(self.with_hard_pin))}, preferred_segment: {self.preferred_segment!r}, "
            f"preferred_segments: {list(self.preferred_segments)}, "
            f"prefer_alloc_in_same_node: {int(bool(self.prefer_alloc_in_same_node))} }}"
        )

    __repr__ = __str__


class Descriptor:
    """Where a memory replica lives: ``buffer_address`` (the pool address as
    seen from this process, see ``KeyInfo.gva_list``), ``size``, and
    ``transport_endpoint`` (``service-<id>``: the LocalService holding it)."""

    __slots__ = ("buffer_address", "size", "transport_endpoint")

    def __init__(self, buffer_address: int = 0, size: int = 0, transport_endpoint: str = "") -> None:
        self.buffer_address = buffer_address
        self.size = size
        self.transport_endpoint = transport_endpoint

    def __repr__(self) -> str:
        return f"Descriptor(buffer_address={self.buffer_address:#x}, size={self.size}, transport_endpoint={self.transport_endpoint!r})"


class MemoryDescriptor:
    __slots__ = ("buffer_descriptor",)

    def __init__(self, buffer_descriptor: Descriptor) -> None:
        self.buffer_descriptor = buffer_descriptor

    def __repr__(self) -> str:
        return f"MemoryDescriptor({self.buffer_descriptor!r})"


class ReplicaDescriptor:
    """One replica of an object (Mooncake's ``ReplicaDescriptor``). Every
    replica here is a complete DRAM replica."""

    __slots__ = ("_memory", "_medium", "status")

    def __init__(self, memory: MemoryDescriptor, medium: int = 0) -> None:
        self._memory = memory
        self._medium = medium
        self.status = ReplicaStatus.COMPLETE

    def is_memory_replica(self) -> bool:
        return self._medium in (0, 1)

    def is_disk_replica(self) -> bool:
        return self._medium == 2

    def is_local_disk_replica(self) -> bool:
        return False

    def get_memory_descriptor(self) -> MemoryDescriptor:
        return self._memory

    def get_disk_descriptor(self):
        raise RuntimeError("not a disk replica: MemCache keeps replicas in DRAM")

    def __repr__(self) -> str:
        return f"ReplicaDescriptor({self._memory!r}, status={self.status.name})"


class BufferHandle(bytearray):
    """What ``get_buffer`` returns: the value's bytes (a ``bytearray``, so
    ``memoryview`` and ``torch.frombuffer`` work on it) with Mooncake's
    ``ptr()`` and ``size()``."""

    def ptr(self) -> int:
        if not len(self):
            return 0
        return ctypes.addressof((ctypes.c_char * len(self)).from_buffer(self))

    def size(self) -> int:
        return len(self)


def _parse_size(value: Any, what: str) -> int:
    """An int, or a string of digits, or a size such as ``"4GB"`` (Mooncake and
    its callers pass both)."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what}: {value} is negative")
        return value
    if isinstance(value, str):
        s = value.strip().lower().replace(" ", "")
        if s.isdigit():
            return int(s)
        units = {"tb": 1 << 40, "gb": 1 << 30, "mb": 1 << 20, "kb": 1 << 10, "t": 1 << 40, "g": 1 << 30, "m": 1 << 20, "k": 1 << 10, "b": 1}
        for u, mult in units.items():
            if s.endswith(u):
                num = s[: -len(u)]
                try:
                    return int(float(num) * mult)
                except ValueError:
                    break
        raise ValueError(f"{what}: {value!r} is not a size (examples: 1073741824, 4GB, 512MB)")
    raise ValueError(f"{what}: {value!r} is not a size")


_SETUP_SIG = inspect.Signature(
    [
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
        for n, d in [
            ("local_hostname", inspect.Parameter.empty),
            ("metadata_server", inspect.Parameter.empty),
            ("global_segment_size", inspect.Parameter.empty),
            ("local_buffer_size", inspect.Parameter.empty),
            ("protocol", inspect.Parameter.empty),
            ("rdma_devices", inspect.Parameter.empty),
            ("master_server_addr", inspect.Parameter.empty),
            ("engine", None),
            ("enable_ssd_offload", False),
            ("ssd_offload_path", ""),
            ("tenant_id", "default"),
            ("enable_client_http_server", False),
            ("client_http_port", 9300),
        ]
    ]
)

# Keys of the dict form of ``setup`` (Mooncake's, plus the spellings LMCache's
# config forwards: ``master_server_address``, ``device_name``).
_DICT_KEYS = {
    "local_hostname": "local_hostname",
    "metadata_server": "metadata_server",
    "global_segment_size": "global_segment_size",
    "local_buffer_size": "local_buffer_size",
    "protocol": "protocol",
    "rdma_devices": "rdma_devices",
    "device_name": "rdma_devices",
    "master_server_addr": "master_server_addr",
    "master_server_address": "master_server_addr",
    "ipc_socket_path": None,
    "enable_ssd_offload": "enable_ssd_offload",
    "ssd_offload_path": "ssd_offload_path",
    "tenant_id": "tenant_id",
    "enable_client_http_server": "enable_client_http_server",
    "client_http_port": "client_http_port",
}


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


class MooncakeDistributedStore:
    """Mooncake's ``MooncakeDistributedStore`` on a MemCache cluster.

    Not thread-hostile: every call releases the GIL and may run from several
    threads at once (as LMCache's ``asyncio.to_thread`` calls do).
    """

    def __init__(self) -> None:
        self._store = _mmc.DistributedObjectStore()
        self._ready = False
        self._hostname = ""
        self._contributes = False
        self._registered: Dict[int, int] = {}
        self._lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------

    def setup(self, *args: Any, **kwargs: Any) -> int:
        """``setup(local_hostname, metadata_server, global_segment_size,
        local_buffer_size, protocol, rdma_devices, master_server_addr,
        engine=None, enable_ssd_offload=False, ssd_offload_path='',
        tenant_id='default', enable_client_http_server=False,
        client_http_port=9300)`` or ``setup(config: dict)``. Joins the
        MemCache cluster; 0, or a negative code (the reason is logged)."""
        if len(args) == 1 and not kwargs and isinstance(args[0], dict):
            params: Dict[str, Any] = {}
            for k, v in args[0].items():
                if k not in _DICT_KEYS:
                    _warn_once(f"setup-key-{k}", f"MooncakeDistributedStore.setup: unknown key {k!r} ignored")
                    continue
                if _DICT_KEYS[k] is not None and v is not None:
                    params[_DICT_KEYS[k]] = v
        else:
            # Binding raises TypeError for a missing or unknown argument, as pybind does.
            bound = _SETUP_SIG.bind(*args, **kwargs)
            params = dict(bound.arguments)
        try:
            return self._setup(params)
        except ValueError as e:
            _log.error("MooncakeDistributedStore.setup: %s", e)
            return INVALID_PARAMS

    def _setup(self, p: Dict[str, Any]) -> int:
        if self._ready:
            _log.error("MooncakeDistributedStore.setup: already set up")
            return INVALID_PARAMS
        tenant = str(p.get("tenant_id") or "default").strip() or "default"
        if tenant != "default":
            raise ValueError(
                f"tenant_id {tenant!r}: MemCache has one key space per cluster, so tenants cannot be isolated; "
                "run a cluster per tenant and leave tenant_id at 'default'"
            )
        if _truthy(p.get("enable_ssd_offload", False)) or p.get("ssd_offload_path"):
            _warn_once("ssd", "MooncakeDistributedStore.setup: no SSD tier here; enable_ssd_offload/ssd_offload_path ignored")
        if _truthy(p.get("enable_client_http_server", False)):
            _warn_once(
                "http",
                "MooncakeDistributedStore.setup: no client HTTP server; metrics are on the MetaService's HTTP endpoint",
            )
        protocol = str(p.get("protocol") or "tcp").strip().lower()
        if protocol != "tcp":
            _warn_once(
                f"protocol-{protocol}",
                f"MooncakeDistributedStore.setup: protocol {protocol!r} is not built in; "
                "using shared memory with same-host services and TCP to the others",
            )
        try:
            cfg = _mmc.LocalConfig.load()
        except ValueError as e:
            raise ValueError(f"$MMC_LOCAL_CONFIG_PATH: {e}") from None
        master = str(p.get("master_server_addr") or "").strip()
        if master.startswith("etcd://"):
            eps = [e for e in master[len("etcd://") :].replace(",", ";").split(";") if e]
            if not eps:
                raise ValueError(f"master_server_addr {master!r} names no etcd endpoint")
            cfg.etcd_endpoints = [e if "://" in e else f"http://{e}" for e in eps]
        elif master:
            if master.startswith("tcp://"):
                master = master[len("tcp://") :]
            if "://" in master or ":" not in master:
                raise ValueError(
                    f"master_server_addr {master!r}: expected host:port of the MetaService (or etcd://ep1;ep2)"
                )
            cfg.meta_addr = master
        size = _parse_size(p.get("global_segment_size", 0), "global_segment_size")
        _parse_size(p.get("local_buffer_size", 0), "local_buffer_size")
        if size:
            cfg.dram_size = size
        self._hostname = str(p.get("local_hostname") or "localhost")
        rc = self._store.setup(cfg)
        if rc != 0:
            _log.error("MooncakeDistributedStore.setup: invalid configuration (code %d)", rc)
            return _mc(rc)
        rc = self._store.init(0, init_bm=size > 0)
        if rc != 0:
            _log.error("MooncakeDistributedStore.setup: cannot join the MemCache cluster at %s (code %d)", master, rc)
            return _mc(rc)
        self._contributes = size > 0
        self._ready = True
        return OK

    def close(self) -> int:
        """Leaves the cluster (the last store of the process). 0."""
        with self._lock:
            self._ready = False
            self._registered.clear()
        return _mc(self._store.close())

    def health_check(self) -> int:
        """0 healthy, 1 not set up / closed, 2 MetaService unreachable."""
        if not self._ready:
            return 1
        return 0 if self._store.is_exist("__mmc_health_check__") >= 0 else 2

    def get_hostname(self) -> str:
        """The ``local_hostname`` given to ``setup`` (names this client's segment)."""
        return self._hostname

    # ---- buffers ---------------------------------------------------------

    def register_buffer(self, buffer_ptr: int, size: int) -> int:
        """No registration is needed here: checks the arguments and records the
        buffer for ``unregister_buffer``. 0 or INVALID_PARAMS."""
        rc = self._store.register_buffer(buffer_ptr, size)
        if rc == 0:
            with self._lock:
                self._registered[int(buffer_ptr)] = int(size)
        return _mc(rc)

    def unregister_buffer(self, buffer_ptr: int) -> int:
        """0, or INVALID_PARAMS when ``buffer_ptr`` was not registered."""
        with self._lock:
            size = self._registered.pop(int(buffer_ptr), None)
        if size is None:
            return INVALID_PARAMS
        return _mc(self._store.unregister_buffer(buffer_ptr, size))

    # ---- replica configuration -------------------------------------------

    def _opts(self, config: Optional[ReplicateConfig]) -> Optional[Any]:
        if config is None:
            return None
        if not isinstance(config, ReplicateConfig):
            raise TypeError(f"config must be a memcache_rs.mooncake.ReplicateConfig, not {type(config).__name__}")
        num = config.replica_num
        if not isinstance(num, int) or isinstance(num, bool):
            raise TypeError("ReplicateConfig.replica_num must be an int")
        if config.with_hard_pin or config.with_soft_pin:
            _warn_once("pin", "ReplicateConfig: pins have no effect here (objects are evicted by watermarks)")
        if config.group_ids:
            _warn_once(
                "groups",
                "ReplicateConfig.group_ids: object groups are not kept here; each object gets its own "
                "lifetime (leased, evicted and removed alone), as without group_ids",
            )
        segs = [s for s in [config.preferred_segment, *config.preferred_segments] if s]
        here = bool(config.prefer_alloc_in_same_node) or (segs and segs[0] == self._hostname)
        others = [s for s in segs if s != self._hostname]
        if others:
            _warn_once(
                "segments",
                f"ReplicateConfig: preferred segments {others} are not this client's; MemCache places "
                "replicas by service id, so they are ignored",
            )
        prefer: List[int] = []
        if here and self._contributes:
            sid = self._store.get_local_service_id()
            if sid >= 0:
                prefer = [sid]
        return _mmc.ReplicateConfig(replicaNum=num, preferredLocalServiceIDs=prefer)

    # ---- puts --------------------------------------------------------------

    def put(self, key: str, value: Any, config: Optional[ReplicateConfig] = None) -> int:
        """Stores a buffer-protocol object. 0 (also when the key exists) or negative."""
        return _mc(self._store.put(key, value, self._opts(config)))

    def put_batch(self, keys: Sequence[str], values: Sequence[Any], config: Optional[ReplicateConfig] = None) -> int:
        """Stores each value under its key. 0, or the first failure."""
        return _mc(self._store.put_batch(keys, values, self._opts(config)))

    def put_parts(self, key: str, *parts: Any, config: Optional[ReplicateConfig] = None) -> int:
        """Stores the concatenation of ``parts`` (buffer-protocol objects) as one object, without joining them first."""
        if not parts:
            return INVALID_PARAMS
        views = [memoryview(p) for p in parts]
        sizes = [v.nbytes for v in views]
        if any(s == 0 for s in sizes):
            views = [v for v, s in zip(views, sizes) if s]
            sizes = [s for s in sizes if s]
            if not views:
                return INVALID_PARAMS
        return _mc(self._store.put_from_layers(key, views, sizes, 3, self._opts(config)))

    def put_from(self, key: str, buffer_ptr: int, size: int, config: Optional[ReplicateConfig] = None) -> int:
        """Stores ``size`` bytes at ``buffer_ptr``. 0 or negative."""
        return _mc(self._store.put_from(key, buffer_ptr, size, 3, self._opts(config)))

    def batch_put_from(
        self,
        keys: Sequence[str],
        buffer_ptrs: Sequence[int],
        sizes: Sequence[int],
        config: Optional[ReplicateConfig] = None,
    ) -> List[int]:
        """``put_from`` per key, one control RPC. One code per key."""
        return [_mc(r) for r in self._store.batch_put_from(keys, buffer_ptrs, sizes, 3, self._opts(config))]

    def batch_put_from_multi_buffers(
        self,
        keys: Sequence[str],
        all_buffer_ptrs: Sequence[Sequence[int]],
        all_sizes: Sequence[Sequence[int]],
        config: Optional[ReplicateConfig] = None,
    ) -> List[int]:
        """Each key's buffers, concatenated, as one object. One code per key."""
        opts = self._opts(config)
        return [_mc(r) for r in self._store.batch_put_from_layers(keys, all_buffer_ptrs, all_sizes, 3, opts)]

    # ---- gets --------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """The value; ``b""`` when absent or on error."""
        return self._store.get(key)

    def get_batch(self, keys: Sequence[str]) -> List[bytes]:
        """The values; ``b""`` for each absent or failed key."""
        return self._store.get_batch(keys)

    def get_buffer(self, key: str) -> Optional[BufferHandle]:
        """The value as a ``BufferHandle``, None when absent."""
        return self.batch_get_buffer([key])[0]

    def batch_get_buffer(self, keys: Sequence[str]) -> List[Optional[BufferHandle]]:
        """``get_buffer`` per key, one lookup for the batch."""
        return [BufferHandle(v) if v else None for v in self._store.get_batch(keys)]

    def get_size(self, key: str) -> int:
        """The object's size in bytes, OBJECT_NOT_FOUND (-704) when absent."""
        info = self._store.get_key_info(key)
        n = info.size()
        return n if n > 0 else OBJECT_NOT_FOUND

    def _sizes_of(self, keys: List[str]) -> List[int]:
        try:
            return [i.size() for i in self._store.batch_get_key_info(keys)]
        except (TypeError, ValueError):
            return [0] * len(keys)

    def get_into(self, key: str, buffer_ptr: int, size: int) -> int:
        """Copies the object into ``size`` bytes at ``buffer_ptr`` (at least the
        object's size). Bytes read, or negative (-704 absent, -600 buffer too small)."""
        return self.batch_get_into([key], [buffer_ptr], [size])[0]

    def batch_get_into(self, keys: Sequence[str], buffer_ptrs: Sequence[int], sizes: Sequence[int]) -> List[int]:
        """``get_into`` per key: bytes read per key, or a negative code.

        One lookup RPC when each buffer has exactly the object's size (the
        usual case: page-sized objects); a buffer larger than its object costs
        one more lookup for those keys."""
        keys = list(keys)
        sizes = list(sizes)
        res = self._store.batch_get_into(keys, buffer_ptrs, sizes)
        if len(sizes) != len(keys) or len(buffer_ptrs) != len(keys):
            return [_mc(r) for r in res]
        out = [sizes[i] if r == 0 else _mc(r) for i, r in enumerate(res)]
        again = [i for i, r in enumerate(res) if r == _mmc.INVALID_PARAM]
        if again:
            actual = self._sizes_of([keys[i] for i in again])
            retry = [(i, n) for i, n in zip(again, actual) if 0 < n < sizes[i]]
            if retry:
                r2 = self._store.batch_get_into([keys[i] for i, _ in retry], [buffer_ptrs[i] for i, _ in retry], [n for _, n in retry])
                for (i, n), r in zip(retry, r2):
                    out[i] = n if r == 0 else _mc(r)
        return out

    def batch_get_into_multi_buffers(
        self,
        keys: Sequence[str],
        all_buffer_ptrs: Sequence[Sequence[int]],
        all_sizes: Sequence[Sequence[int]],
        prefer_alloc_in_same_node: bool = False,
    ) -> List[int]:
        """Scatters each object over its buffers, in order. Bytes read per key
        (buffers may hold more than the object: the tail is left untouched),
        or a negative code. ``prefer_alloc_in_same_node`` has no effect: the
        nearest replica is always read first."""
        keys = list(keys)
        res = self._store.batch_get_into_layers(keys, all_buffer_ptrs, all_sizes)
        if len(all_sizes) != len(keys) or len(all_buffer_ptrs) != len(keys):
            return [_mc(r) for r in res]
        totals = []
        for s in all_sizes:
            try:
                totals.append(sum(int(x) for x in s))
            except (TypeError, ValueError):
                totals.append(0)
        out = [totals[i] if r == 0 else _mc(r) for i, r in enumerate(res)]
        again = [i for i, r in enumerate(res) if r == _mmc.INVALID_PARAM]
        if again:
            actual = self._sizes_of([keys[i] for i in again])
            retry = []
            for i, n in zip(again, actual):
                if not 0 < n < totals[i] or len(all_buffer_ptrs[i]) != len(all_sizes[i]):
                    continue
                ptrs, cut, left = [], [], n
                for p, s in zip(all_buffer_ptrs[i], all_sizes[i]):
                    if left == 0:
                        break
                    take = min(int(s), left)
                    ptrs.append(p)
                    cut.append(take)
                    left -= take
                retry.append((i, n, ptrs, cut))
            if retry:
                r2 = self._store.batch_get_into_layers(
                    [keys[i] for i, *_ in retry], [p for _, _, p, _ in retry], [c for *_, c in retry]
                )
                for (i, n, _, _), r in zip(retry, r2):
                    out[i] = n if r == 0 else _mc(r)
        return out

    # ---- queries and removal -----------------------------------------------

    def is_exist(self, key: str) -> int:
        """1 present, 0 absent, -1 on error."""
        r = self._store.is_exist(key)
        return r if r in (0, 1) else -1

    def batch_is_exist(self, keys: Sequence[str]) -> List[int]:
        """``is_exist`` per key, one RPC: 1 / 0 / -1. Unlike Mooncake's, it
        grants no read lease on the keys it finds (an object found here may
        be evicted before it is read; the read then returns -704)."""
        return [r if r in (0, 1) else -1 for r in self._store.batch_is_exist(keys)]

    def get_replica_desc(self, key: str) -> List[ReplicaDescriptor]:
        """The replicas of ``key`` (empty when absent)."""
        return self.batch_get_replica_desc([key]).get(key, [])

    def batch_probe_key(self, keys: Sequence[str]) -> List[int]:
        """Existence per key without granting a read lease (Mooncake's
        ``BatchProbeKey``, newer than 0.3.13; vLLM's
        ``VLLM_MOONCAKE_STORE_SELECTIVE_LEASE`` probes with it): 1 / 0 / -1,
        one RPC. Here it is ``batch_is_exist``, which never leases either."""
        return self.batch_is_exist(keys)

    def batch_get_replica_desc(self, keys: Sequence[str]) -> Dict[str, List[ReplicaDescriptor]]:
        """Replicas per present key (absent keys are left out), one RPC."""
        keys = list(keys)
        out: Dict[str, List[ReplicaDescriptor]] = {}
        for key, info in zip(keys, self._store.batch_get_key_info(keys)):
            n = info.size()
            if n <= 0:
                continue
            gvas = info.gva_list()
            locs = info.loc_list()
            media = info.type_list()
            reps = []
            for j, sid in enumerate(locs):
                addr = gvas[j] if j < len(gvas) else 0
                d = Descriptor(buffer_address=addr, size=n, transport_endpoint=f"service-{sid}")
                reps.append(ReplicaDescriptor(MemoryDescriptor(d), media[j] if j < len(media) else 0))
            out[key] = reps
        return out

    def remove(self, key: str, force: bool = False) -> int:
        """0, or -704 when absent. ``force`` has no effect: a removed object
        that is being read stays readable to that reader until its lease ends."""
        return _mc(self._store.remove(key))

    def batch_remove(self, keys: Sequence[str], force: bool = False) -> List[int]:
        """``remove`` per key. One code per key."""
        return [_mc(r) for r in self._store.remove_batch(keys)]

    def remove_all(self, force: bool = False) -> int:
        """Removes every object of the cluster; the number removed, or negative."""
        count = getattr(self._store, "_remove_all_count", None)
        if count is not None:
            r = count()
            return r if r >= 0 else _mc(r)
        return _mc(self._store.remove_all())

    def __repr__(self) -> str:
        return f"<memcache_rs.mooncake.MooncakeDistributedStore hostname={self._hostname!r} ready={self._ready}>"


def install_as_mooncake() -> types.ModuleType:
    """Makes ``import mooncake.store`` (and ``from mooncake.store import
    MooncakeDistributedStore, ReplicateConfig``) give this module, so engine
    code written for Mooncake runs on MemCache unchanged. Call it before the
    engine imports ``mooncake.store``. Returns this module."""
    me = sys.modules[__name__]
    pkg = sys.modules.get("mooncake")
    if pkg is None:
        pkg = types.ModuleType("mooncake", "memcache_rs stand-in for the mooncake package (memcache_rs.mooncake)")
        pkg.__path__ = []  # a package, so `import mooncake.store` resolves through sys.modules
        sys.modules["mooncake"] = pkg
    pkg.store = me
    sys.modules["mooncake.store"] = me
    return me


if __name__ == "__main__":
    print(SHIM_PATH)
