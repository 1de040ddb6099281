"""LMCache remote storage plugin on MemCache: ``memcache_rs.integrations.lmcache``.

This module owns ``MemCacheConnector``, an LMCache (0.5.6) ``RemoteConnector``
that LMCache's remote storage plugin framework loads from its configuration,
where LMCache runs inside the engine's workers (vLLM's ``LMCacheConnectorV1``).
SGLang's ``--enable-lmcache`` does not reach remote storage plugins: it talks
to LMCache's multiprocess server, whose storage is L2 adapters
(``memcache_rs.integrations.lmcache_l2``). LMCache configuration (YAML)::

    chunk_size: 256
    local_cpu: true
    max_local_cpu_size: 5
    remote_storage_plugins: ["memcache"]
    extra_config:
      remote_storage_plugin.memcache.module_path: memcache_rs.integrations.lmcache
      remote_storage_plugin.memcache.class_name: MemCacheConnector
      memcache.meta_addr: "127.0.0.1:5000"     # the MetaService
      memcache.dram_size: 0                    # bytes this process contributes (0: client only)

Settings (``extra_config`` keys):

- ``memcache.config_path``: a LocalService configuration file (TOML or the
  original's ``ock.mmc.*`` format) to start from; else
  ``$MMC_LOCAL_CONFIG_PATH``; else defaults.
- ``memcache.replicas``: replicas per chunk (1..=8, default 1).
- ``memcache.<attribute>``: any ``memcache_rs.LocalConfig`` attribute
  (``meta_addr``, ``meta_service_url``, ``dram_size``, ``protocol``,
  ``token_file``, ``etcd_endpoints``, ...).
- ``save_chunk_meta`` (LMCache's own, default true): each object is a
  ``RemoteMetadata`` header followed by the chunk's bytes, so chunks of any
  shape round-trip; false stores the bytes only and takes shapes from the
  engine's metadata (as LMCache's mooncakestore connector does).

Data moves without copies through LMCache's memory objects: puts read from
``MemoryObj.data_ptr`` (the header goes in the same object, as a second
buffer), gets scatter header and bytes straight into a freshly allocated
``MemoryObj``. Each batched call is one MemCache batch call; a get of a
partial (last) chunk, smaller than a full one, costs one more lookup and,
with chunk metadata, one copy. Keys are ``CacheEngineKey.to_string()``;
one longer than MemCache's 256-byte limit is stored as
``lmcache#<sha256 of the string>``.
"""

from __future__ import annotations

import asyncio
import ctypes
from typing import Any, Callable, Dict, List, Optional, Tuple

# First Party (LMCache): this module is loaded by LMCache, which is installed.
from lmcache.logging import init_logger
from lmcache.utils import CacheEngineKey
from lmcache.v1.memory_management import MemoryObj
from lmcache.v1.protocol import RemoteMetadata
from lmcache.v1.storage_backend.connector.base_connector import RemoteConnector

import memcache_rs as _mmc

from ._common import fit_key, local_config, parse_replicas

logger = init_logger(__name__)

__all__ = ["MemCacheConnector", "store_key", "local_config_from_extra"]

_PREFIX = "memcache."


def store_key(key: CacheEngineKey) -> str:
    """The MemCache key of an LMCache key: ``key.to_string()``, or
    ``lmcache#<sha256>`` when that is longer than 256 bytes."""
    return fit_key(key.to_string(), "lmcache#")


def local_config_from_extra(extra: Optional[Dict[str, Any]]) -> Tuple["_mmc.LocalConfig", int]:
    """The ``LocalConfig`` and replica count that ``extra_config`` describes
    (see the module docstring). Raises ValueError naming a bad key."""
    extra = dict(extra or {})
    replicas = 1
    settings = []
    for k, v in extra.items():
        if not k.startswith(_PREFIX):
            continue
        attr = k[len(_PREFIX) :]
        if attr == "config_path":
            continue
        if attr == "replicas":
            replicas = parse_replicas(v, k)
            continue
        settings.append((k, attr, v))
    cfg = local_config(extra.get(_PREFIX + "config_path"), _PREFIX + "config_path", settings, "extra_config memcache.*")
    return cfg, replicas


class MemCacheConnector(RemoteConnector):
    """LMCache remote connector storing chunks in a MemCache cluster."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        local_cpu_backend: Any,
        config: Any = None,
        plugin_name: Optional[str] = None,
    ):
        if config is None:
            config = local_cpu_backend.config
        super().__init__(config, getattr(local_cpu_backend, "metadata", None))
        self.loop = loop
        self.local_cpu_backend = local_cpu_backend
        self.plugin_name = plugin_name
        cfg, replicas = local_config_from_extra(config.extra_config)
        self.store = _mmc.DistributedObjectStore()
        rc = self.store.setup(cfg)
        if rc != 0:
            raise ValueError(f"MemCacheConnector: invalid MemCache configuration (code {rc})")
        rc = self.store.init(0, init_bm=cfg.dram_size > 0)
        if rc != 0:
            raise ConnectionError(f"MemCacheConnector: cannot join the MemCache cluster at {cfg.meta_addr} (code {rc})")
        self._opts = _mmc.ReplicateConfig(replicaNum=replicas)
        self._closed = False
        logger.info(
            "MemCacheConnector: joined %s (segment %d bytes, %d replica(s), chunk metadata %s)",
            cfg.meta_addr,
            cfg.dram_size,
            replicas,
            "stored" if self.save_chunk_meta else "local",
        )

    # ---- existence -----------------------------------------------------------

    async def exists(self, key: CacheEngineKey) -> bool:
        return await asyncio.to_thread(self.exists_sync, key)

    def exists_sync(self, key: CacheEngineKey) -> bool:
        return self.store.is_exist(store_key(key)) == 1

    def support_batched_contains(self) -> bool:
        return True

    def batched_contains(self, keys: List[CacheEngineKey]) -> int:
        """How many leading keys exist (one RPC)."""
        if not keys:
            return 0
        n = 0
        for r in self.store.batch_is_exist([store_key(k) for k in keys]):
            if r != 1:
                break
            n += 1
        return n

    def support_batched_async_contains(self) -> bool:
        return True

    async def batched_async_contains(self, lookup_id: str, keys: List[CacheEngineKey], pin: bool = False) -> int:
        return await asyncio.to_thread(self.batched_contains, keys)

    # ---- puts ----------------------------------------------------------------

    def _put_pieces(self, obj: MemoryObj) -> Tuple[List[Any], List[int]]:
        size = obj.get_size()
        if not self.save_chunk_meta:
            return [obj.data_ptr], [size]
        header = RemoteMetadata(size, obj.get_shapes(), obj.get_dtypes(), obj.get_memory_format()).serialize()
        return [header, obj.data_ptr], [len(header), size]

    def _batched_put_sync(self, keys: List[CacheEngineKey], objs: List[MemoryObj]) -> List[int]:
        ptrs, sizes = [], []
        for obj in objs:
            p, s = self._put_pieces(obj)
            ptrs.append(p)
            sizes.append(s)
        return self.store.batch_put_from_layers([store_key(k) for k in keys], ptrs, sizes, 3, self._opts)

    async def put(self, key: CacheEngineKey, memory_obj: MemoryObj):
        await self.batched_put([key], [memory_obj])

    def support_batched_put(self) -> bool:
        return True

    async def batched_put(self, keys: List[CacheEngineKey], memory_objs: List[MemoryObj]):
        if not keys:
            return
        codes = await asyncio.to_thread(self._batched_put_sync, list(keys), list(memory_objs))
        failed = [(k, c) for k, c in zip(keys, codes) if c != 0]
        if failed:
            raise RuntimeError(
                f"MemCacheConnector: {len(failed)} of {len(keys)} puts failed "
                f"(first: {failed[0][0].to_string()} code {failed[0][1]})"
            )

    # ---- gets ----------------------------------------------------------------

    async def get(self, key: CacheEngineKey) -> Optional[MemoryObj]:
        return (await self.batched_get([key]))[0]

    def support_batched_get(self) -> bool:
        return True

    async def batched_get(self, keys: List[CacheEngineKey]) -> List[Optional[MemoryObj]]:
        if not keys:
            return []
        # Allocate on the event loop thread (as LMCache's connectors do), move bytes off it.
        objs = [self.local_cpu_backend.allocate(self.meta_shapes, self.meta_dtypes, self.meta_fmt) for _ in keys]
        try:
            return await asyncio.to_thread(self._fill, list(keys), objs)
        except BaseException:
            for o in objs:
                if o is not None:
                    o.ref_count_down()
            raise

    def _object_sizes(self, names: List[str]) -> List[int]:
        return [i.size() for i in self.store.batch_get_key_info(names)]

    def _read_chunks(
        self, names: List[str], caps: List[int], header: int, read: Callable[[List[int], List[int]], List[int]]
    ) -> List[Optional[int]]:
        """Bytes of chunk data read per name (None where it failed): one batch
        read at full chunk size; chunks smaller than that (the last chunk of a
        prompt: the full-size read answers INVALID_PARAM) are read again at
        their exact size after one lookup of their sizes. `read(js, lens)`
        reads the names of indexes `js` with `lens` chunk bytes each, after
        `header` bytes of metadata."""
        got: List[Optional[int]] = [None] * len(names)
        res = read(list(range(len(names))), caps)
        for j, r in enumerate(res):
            if r == 0:
                got[j] = caps[j]
        again = [j for j, r in enumerate(res) if r == _mmc.INVALID_PARAM]
        if again:
            sizes = self._object_sizes([names[j] for j in again])
            retry = [(j, n - header) for j, n in zip(again, sizes) if header < n < header + caps[j]]
            if retry:
                r2 = read([j for j, _ in retry], [n for _, n in retry])
                for (j, n), r in zip(retry, r2):
                    if r == 0:
                        got[j] = n
        return got

    def _fill(self, keys: List[CacheEngineKey], objs: List[Optional[MemoryObj]]) -> List[Optional[MemoryObj]]:
        """Reads each key into its allocated object; None (and the object released) where it fails."""
        out: List[Optional[MemoryObj]] = [None] * len(keys)
        idx = [i for i, o in enumerate(objs) if o is not None]
        if len(idx) < len(keys):
            logger.warning("MemCacheConnector: could not allocate %d of %d chunks", len(keys) - len(idx), len(keys))
        if not idx:
            return out
        names = [store_key(keys[i]) for i in idx]
        caps = [objs[i].get_size() for i in idx]  # type: ignore[union-attr]
        ptrs = [objs[i].data_ptr for i in idx]  # type: ignore[union-attr]
        if self.save_chunk_meta:
            H = self.remote_metadata_bytes
            heads = [bytearray(H) for _ in idx]

            def read(js: List[int], lens: List[int]) -> List[int]:
                return self.store.batch_get_into_layers(
                    [names[j] for j in js], [[heads[j], ptrs[j]] for j in js], [[H, n] for j, n in zip(js, lens)]
                )

            got = self._read_chunks(names, caps, H, read)
            for j, i in enumerate(idx):
                obj = objs[i]
                assert obj is not None
                if got[j] is None:
                    obj.ref_count_down()
                    continue
                out[i] = self._with_header(obj, heads[j], got[j])  # type: ignore[arg-type]
        else:

            def read(js: List[int], lens: List[int]) -> List[int]:
                return self.store.batch_get_into([names[j] for j in js], [ptrs[j] for j in js], lens)

            got = self._read_chunks(names, caps, 0, read)
            for j, i in enumerate(idx):
                obj = objs[i]
                assert obj is not None
                if got[j] is None:
                    obj.ref_count_down()
                    continue
                try:
                    part = self.reshape_partial_chunk(obj, got[j])  # type: ignore[arg-type]
                    if got[j] != caps[j] and part.meta.shapes is not None and len(part.meta.shapes) == 1:
                        part.meta.shapes = [part.meta.shape]  # LMCache's helper updates `shape` only
                    out[i] = part
                except ValueError as e:
                    logger.warning("MemCacheConnector: %s: %s", names[j], e)
                    obj.ref_count_down()
        return out

    def _with_header(self, obj: MemoryObj, head: bytearray, n: int) -> Optional[MemoryObj]:
        """The chunk described by ``head`` whose ``n`` bytes were read into ``obj``."""
        try:
            md = RemoteMetadata.deserialize(bytes(head))
        except Exception as e:  # a value not written by this connector
            logger.warning("MemCacheConnector: unreadable chunk header: %s", e)
            obj.ref_count_down()
            return None
        if md.length != n:
            logger.warning("MemCacheConnector: chunk header says %d bytes, object holds %d", md.length, n)
            obj.ref_count_down()
            return None
        if (
            n == obj.get_size()
            and list(md.shapes) == list(obj.get_shapes())
            and list(md.dtypes) == list(obj.get_dtypes())
            and md.fmt == obj.get_memory_format()
        ):
            return obj  # the usual case: a full chunk, read in place
        # Another shape (a partial chunk, another format): an object of that shape, one copy.
        new = self.local_cpu_backend.allocate(md.shapes, md.dtypes, md.fmt)
        if new is None or new.get_size() < n:
            logger.warning("MemCacheConnector: could not allocate a %d-byte chunk", n)
            if new is not None:
                new.ref_count_down()
            obj.ref_count_down()
            return None
        ctypes.memmove(new.data_ptr, obj.data_ptr, n)
        obj.ref_count_down()
        return new

    def support_batched_get_non_blocking(self) -> bool:
        return True

    async def batched_get_non_blocking(self, lookup_id: str, keys: List[CacheEngineKey]) -> List[MemoryObj]:
        """The leading chunks that were read; the rest are released."""
        objs = await self.batched_get(keys)
        prefix: List[MemoryObj] = []
        broken = False
        for o in objs:
            if o is None:
                broken = True
            elif broken:
                o.ref_count_down()
            else:
                prefix.append(o)
        return prefix

    # ---- the rest ----------------------------------------------------------------

    def remove_sync(self, key: CacheEngineKey) -> bool:
        return self.store.remove(store_key(key)) == 0

    async def list(self) -> List[str]:
        """Every key of the cluster (MemCache keys: ``CacheEngineKey.to_string()``
        spellings, and the ``lmcache#`` names of over-long ones)."""

        def scan() -> List[str]:
            keys: List[str] = []
            after = None
            while True:
                page, after = self.store._list_keys(after, 10000)
                keys.extend(page)
                if after is None:
                    return keys

        return await asyncio.to_thread(scan)

    def support_ping(self) -> bool:
        return True

    async def ping(self) -> int:
        r = await asyncio.to_thread(self.store.is_exist, "__lmcache_ping__")
        return 0 if r >= 0 else r

    async def close(self):
        if not self._closed:
            self._closed = True
            self.store.close()
            logger.info("MemCacheConnector: closed")

    def __repr__(self) -> str:
        return f"<MemCacheConnector plugin={self.plugin_name!r}>"
