"""memcache_rs: the Python API of MemCache, a distributed KV-cache store.

A drop-in replacement for the ``memcache_hybrid`` module of the original
MemCache: connectors written for it work after changing only the import::

    import memcache_rs as memcache_hybrid

    store = memcache_hybrid.DistributedObjectStore()
    assert store.init(0) == 0            # MetaService at 127.0.0.1:5000 by default
    store.put("key", b"value")
    assert store.get("key") == b"value"
    store.close()

The original's module name works too: ``import memcache_hybrid`` gives this
same API (the package ships alongside this one), and its configuration files
(``ock.mmc.<key> = value``, found through ``MMC_LOCAL_CONFIG_PATH`` /
``MMC_META_CONFIG_PATH``) are read as they are (docs/integrations.md).

Conventions: methods return 0 or a negative result code (see the constants
below), ``is_exist`` returns 1 / 0, ``get`` returns ``b""`` when absent, batch
calls return one int per key, and a put of an existing key returns 0 (objects
are immutable). Bad values return INVALID_PARAM (-3000) in the method's
usual shape; only arguments of the wrong Python type raise ``TypeError``.
Every blocking call releases the GIL. Buffers (bytes, bytearray, memoryview,
numpy arrays) are read and written in place; integer addresses
(``tensor.data_ptr()``, ``ctypes.addressof``) are used directly.
"""

import atexit as _atexit
import enum as _enum

from ._native import (
    DistributedObjectStore,
    KeyInfo,
    LocalConfig,
    MetaConfig,
    MetaService,
    ReplicateConfig,
    __version__,
)
from ._native import _close_all

# One client per process (see DistributedObjectStore.init / close): clients
# whose stores were collected without close() leave the cluster gracefully
# when the interpreter exits.
_atexit.register(_close_all)

# Result codes (docs/c-api.md lists them; the values memcache_hybrid clients test against).
OK = 0
ERROR = -1
INVALID_PARAM = -3000
NOT_STARTED = -3003
TIMEOUT = -3004
DUPLICATED_OBJECT = -3006
OBJECT_NOT_EXISTS = -3007
NOT_INITIALIZED = -3008
NOT_ENOUGH_MEMORY = -3016
NOT_CONNECTED_META = -3017
NOT_CONNECTED_LOCAL = -3018
NO_PROVIDER = -3019  # too few live memory providers for the replicas: retry
NOT_LEADER = -3020  # the MetaService reached is an HA standby or a deposed leader: retry
UNMATCHED_KEY = -3102
LEASE_EXPIRED = -3106


class MmcCopyDirect(_enum.IntEnum):
    """Values of the ``direct`` argument (copy direction).

    With no accelerator backend compiled in, device pointers are not
    supported and every address is taken as host memory, so the device
    directions behave like their host counterparts.
    """

    SMEMB_COPY_L2G = 0
    """device (local accelerator) memory to pool (puts)"""
    SMEMB_COPY_G2L = 1
    """pool to device memory (gets)"""
    SMEMB_COPY_G2H = 2
    """pool to host memory (gets; the default of get calls)"""
    SMEMB_COPY_H2G = 3
    """host memory to pool (puts; the default of put calls)"""
    SMEMB_COPY_AUTO = 9
    """either direction, decided by the call"""


__all__ = [
    "DistributedObjectStore",
    "KeyInfo",
    "LocalConfig",
    "MetaConfig",
    "MetaService",
    "MmcCopyDirect",
    "ReplicateConfig",
    "OK",
    "ERROR",
    "INVALID_PARAM",
    "NOT_STARTED",
    "TIMEOUT",
    "DUPLICATED_OBJECT",
    "OBJECT_NOT_EXISTS",
    "NOT_INITIALIZED",
    "NOT_ENOUGH_MEMORY",
    "NOT_CONNECTED_META",
    "NOT_CONNECTED_LOCAL",
    "UNMATCHED_KEY",
    "LEASE_EXPIRED",
    "NO_PROVIDER",
    "NOT_LEADER",
    "__version__",
]
