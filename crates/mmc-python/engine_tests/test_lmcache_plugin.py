"""Tests of the LMCache remote storage plugin, ``memcache_rs.integrations.lmcache``.

Owns: the plugin loaded the way a user configures it — an LMCache 0.5.6 YAML
file (``remote_storage_plugins: [memcache]`` with its module path and class
name in ``extra_config``) read by ``LMCacheEngineConfig.from_file`` — through
LMCache's own code: ``CreateConnector("plugin://memcache", ...)`` (its
ConnectorManager and DynamicConnectorAdapter) and ``CreateStorageBackends``
(the RemoteBackend the storage manager uses, with its serializer), with
memory objects from LMCache's ``LocalCPUBackend``, against conftest.py's real
cluster. put / exists / get with bytes equal, the batched variants, partial
chunks, list, remove, ping, both chunk-metadata modes.
"""

import asyncio
import os
import threading
import uuid

import pytest

from conftest import require

torch = require("torch")
require("lmcache.v1.storage_backend.connector")

from lmcache.utils import CacheEngineKey  # noqa: E402
from lmcache.v1.config import LMCacheEngineConfig  # noqa: E402
from lmcache.v1.metadata import LMCacheMetadata  # noqa: E402
from lmcache.v1.storage_backend import CreateStorageBackends  # noqa: E402
from lmcache.v1.storage_backend.connector import CreateConnector  # noqa: E402
from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend  # noqa: E402

import memcache_rs  # noqa: E402
from memcache_rs.integrations.lmcache import MemCacheConnector, store_key  # noqa: E402

CHUNK = 16
MODEL = "org/test-model"


def _yaml(meta_addr: str, save_chunk_meta: bool = True) -> str:
    return f"""\
chunk_size: {CHUNK}
local_cpu: true
max_local_cpu_size: 0.05
remote_serde: naive
remote_storage_plugins: ["memcache"]
extra_config:
  remote_storage_plugin.memcache.module_path: memcache_rs.integrations.lmcache
  remote_storage_plugin.memcache.class_name: MemCacheConnector
  memcache.meta_addr: "{meta_addr}"
  memcache.dram_size: 0
  memcache.replicas: 1
  save_chunk_meta: {str(save_chunk_meta).lower()}
"""


class Env:
    """An LMCache worker's view: config from YAML, metadata, CPU backend, event loop thread."""

    def __init__(self, path, save_chunk_meta=True):
        self.config = LMCacheEngineConfig.from_file(str(path))
        self.metadata = LMCacheMetadata(
            model_name=MODEL,
            world_size=1,
            local_world_size=1,
            worker_id=0,
            local_worker_id=0,
            kv_dtype=torch.bfloat16,
            kv_shape=(2, 2, CHUNK, 2, 8),  # layers, k/v, chunk tokens, kv heads, head size
            chunk_size=CHUNK,
        )
        self.cpu = LocalCPUBackend(self.config, self.metadata)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def chunk(self, tokens=CHUNK):
        """A memory object of `tokens` tokens filled with random bytes."""
        obj = self.cpu.allocate(self.metadata.get_shapes(tokens), self.metadata.get_dtypes())
        assert obj is not None
        obj.raw_tensor[: obj.get_size()].copy_(torch.randint(0, 256, (obj.get_size(),), dtype=torch.uint8))
        return obj

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _bytes(obj) -> bytes:
    return bytes(obj.byte_array)


def _key(i=None) -> CacheEngineKey:
    return CacheEngineKey(MODEL, 1, 0, int(uuid.uuid4().hex[:15], 16), torch.bfloat16)


@pytest.fixture(params=[True, False], ids=["chunk-meta", "no-chunk-meta"])
def env(request, mmc_cluster, tmp_path):
    path = tmp_path / "lmcache.yaml"
    path.write_text(_yaml(mmc_cluster.meta_addr, request.param))
    e = Env(path, request.param)
    yield e
    e.close()


@pytest.fixture
def conn(env):
    c = CreateConnector("plugin://memcache", env.loop, env.cpu, env.config, env.metadata, plugin_name="memcache")
    yield c
    env.run(c.close())


def test_loaded_through_plugin_framework(conn, env):
    # CreateConnector wraps what the adapter built in LMCache's instrumentation
    inner = getattr(conn, "_connector", conn)
    assert isinstance(inner, MemCacheConnector)
    assert inner.save_chunk_meta == bool(env.config.extra_config["save_chunk_meta"])


def test_put_exists_get(conn, env):
    k, obj = _key(), env.chunk()
    want = _bytes(obj)
    assert env.run(conn.exists(k)) is False
    assert conn.exists_sync(k) is False
    assert env.run(conn.get(k)) is None
    env.run(conn.put(k, obj))
    assert env.run(conn.exists(k)) is True
    assert conn.exists_sync(k) is True
    got = env.run(conn.get(k))
    assert got is not None and _bytes(got) == want
    assert got.get_shapes() == obj.get_shapes() and got.get_dtypes() == obj.get_dtypes()
    assert got.get_memory_format() == obj.get_memory_format()
    # the object is in the cluster under LMCache's key string, visible to any client
    other = memcache_rs.DistributedObjectStore()
    other.setup(memcache_rs.LocalConfig(meta_addr=env.config.extra_config["memcache.meta_addr"], dram_size=0))
    assert other.init(0, init_bm=False) == 0
    size = other.get_key_info(k.to_string()).size()
    meta_bytes = (2 + 5 * 1) * 4 if env.config.extra_config["save_chunk_meta"] else 0
    assert size == len(want) + meta_bytes
    assert other.close() == 0
    got.ref_count_down()
    obj.ref_count_down()


def test_batched_put_get_contains(conn, env):
    keys = [_key() for _ in range(6)]
    objs = [env.chunk() for _ in keys]
    want = [_bytes(o) for o in objs]
    assert conn.support_batched_put() and conn.support_batched_get() and conn.support_batched_contains()
    env.run(conn.batched_put(keys[:4], objs[:4]))
    assert conn.batched_contains(keys) == 4
    assert conn.batched_contains(keys[1:3]) == 2
    assert env.run(conn.batched_async_contains("lookup-1", keys)) == 4
    got = env.run(conn.batched_get(keys))
    assert [g is not None for g in got] == [True] * 4 + [False] * 2
    for g, w in zip(got[:4], want[:4]):
        assert _bytes(g) == w
        g.ref_count_down()
    # non-blocking variant: the leading hits only
    prefix = env.run(conn.batched_get_non_blocking("lookup-2", keys[:2] + [keys[5]] + keys[2:4]))
    assert [_bytes(p) for p in prefix] == want[:2]
    for p in prefix:
        p.ref_count_down()
    # putting present keys again is fine
    env.run(conn.batched_put(keys[:4], objs[:4]))
    for o in objs:
        o.ref_count_down()


def test_partial_chunk(conn, env):
    """The last chunk of a prompt is shorter than a full one."""
    k, obj = _key(), env.chunk(5)
    want = _bytes(obj)
    env.run(conn.put(k, obj))
    got = env.run(conn.batched_get([k, _key()]))
    assert got[1] is None
    assert got[0] is not None and _bytes(got[0]) == want
    assert got[0].get_shape()[2] == 5 and got[0].get_shapes()[0][2] == 5  # [kv, layers, tokens, hidden]
    got[0].ref_count_down()
    obj.ref_count_down()


def test_list_remove_ping(conn, env):
    keys = [_key() for _ in range(3)]
    objs = [env.chunk() for _ in keys]
    env.run(conn.batched_put(keys, objs))
    listed = set(env.run(conn.list()))
    assert {k.to_string() for k in keys} <= listed
    assert conn.remove_sync(keys[0]) is True
    assert conn.remove_sync(keys[0]) is False
    assert conn.exists_sync(keys[0]) is False
    assert keys[0].to_string() not in set(env.run(conn.list()))
    assert conn.support_ping() and env.run(conn.ping()) == 0
    for o in objs:
        o.ref_count_down()


def test_long_keys_are_hashed():
    k = CacheEngineKey("m" * 300, 1, 0, 7, torch.bfloat16)
    s = store_key(k)
    assert s.startswith("lmcache#") and len(s) == len("lmcache#") + 64
    short = _key()
    assert store_key(short) == short.to_string()


def test_remote_backend_from_storage_manager_path(mmc_cluster, tmp_path):
    """CreateStorageBackends builds RemoteBackend-memcache from the YAML, as LMCache's engine does;
    its put (with the naive serializer), contains and get reach the cluster."""
    path = tmp_path / "lmcache.yaml"
    path.write_text(_yaml(mmc_cluster.meta_addr))
    e = Env(path)
    try:
        backends = CreateStorageBackends(e.config, e.metadata, e.loop, dst_device="cpu")
        assert "RemoteBackend-memcache" in backends
        remote = backends["RemoteBackend-memcache"]
        cpu = backends["LocalCPUBackend"]
        keys = [_key() for _ in range(3)]
        objs = []
        for _ in keys:
            o = cpu.allocate(e.metadata.get_shapes(), e.metadata.get_dtypes())
            o.raw_tensor[: o.get_size()].copy_(torch.randint(0, 256, (o.get_size(),), dtype=torch.uint8))
            objs.append(o)
        want = [_bytes(o) for o in objs]
        done = threading.Event()
        finished = []

        def on_done(key):
            finished.append(key)
            if len(finished) == len(keys):
                done.set()

        remote.batched_submit_put_task(keys, objs, on_complete_callback=on_done)
        assert done.wait(60)
        assert remote.batched_contains(keys) == 3
        assert remote.contains(keys[1])
        got = remote.get_blocking(keys[2])
        assert got is not None and _bytes(got) == want[2]
        got.ref_count_down()
        for k, w in zip(keys, want):
            g = remote.get_blocking(k)
            assert _bytes(g) == w
            g.ref_count_down()
        assert remote.remove(keys[0]) is True
        assert not remote.contains(keys[0])
        for b in backends.values():
            close = getattr(b, "close", None)
            if close:
                close()
    finally:
        e.close()


def test_bad_extra_config_is_a_clear_error(mmc_cluster, tmp_path):
    path = tmp_path / "lmcache.yaml"
    path.write_text(_yaml(mmc_cluster.meta_addr).replace("memcache.replicas: 1", "memcache.no_such_setting: 1"))
    e = Env(path)
    try:
        with pytest.raises(ValueError, match="no_such_setting"):
            MemCacheConnector(e.loop, e.cpu, e.config)
    finally:
        e.close()


@pytest.mark.skipif(os.environ.get("MMC_SKIP_SLOW") == "1", reason="MMC_SKIP_SLOW")
def test_replicas_setting(mmc_cluster, tmp_path):
    path = tmp_path / "lmcache.yaml"
    path.write_text(_yaml(mmc_cluster.meta_addr).replace("memcache.replicas: 1", "memcache.replicas: 2"))
    e = Env(path)
    try:
        c = MemCacheConnector(e.loop, e.cpu, e.config)
        k, obj = _key(), e.chunk()
        e.run(c.put(k, obj))
        assert len(c.store.get_key_info(k.to_string()).loc_list()) == 2
        obj.ref_count_down()
        e.run(c.close())
    finally:
        e.close()


@pytest.mark.parametrize("save_chunk_meta", [True, False], ids=["chunk-meta", "no-chunk-meta"])
def test_lmcache_mooncakestore_connector_on_mooncake_compat_client(mmc_cluster, tmp_path, save_chunk_meta):
    """LMCache's own mooncakestore connector, unchanged, on memcache_rs.mooncake (its
    `from mooncake.store import ...` resolved by install_as_mooncake): dict-form setup,
    put_parts / batch_get_buffer with chunk metadata, batch_put_from / batch_get_into byte
    counts without."""
    from memcache_rs import mooncake as mc

    mc.install_as_mooncake()
    path = tmp_path / "lmcache-mooncake.yaml"
    path.write_text(
        f"""\
chunk_size: {CHUNK}
local_cpu: true
max_local_cpu_size: 0.05
remote_serde: naive
remote_storage_plugins: ["mooncakestore"]
extra_config:
  local_hostname: localhost
  metadata_server: P2PHANDSHAKE
  master_server_address: "{mmc_cluster.meta_addr}"
  global_segment_size: 0
  protocol: tcp
  transfer_timeout: 30
  save_chunk_meta: {str(save_chunk_meta).lower()}
"""
    )
    e = Env(path)
    try:
        c = CreateConnector("plugin://mooncakestore", e.loop, e.cpu, e.config, e.metadata, plugin_name="mooncakestore")
        inner = getattr(c, "_connector", c)
        assert isinstance(inner.store, mc.MooncakeDistributedStore)
        keys = [_key() for _ in range(3)]
        objs = [e.chunk(), e.chunk(), e.chunk(7)]
        want = [_bytes(o) for o in objs]
        e.run(c.batched_put(keys, objs))
        assert e.run(c.exists(keys[0])) and not e.run(c.exists(_key()))
        got = e.run(c.batched_get(keys + [_key()]))
        assert got[3] is None
        for g, w in zip(got[:3], want):
            assert g is not None and _bytes(g) == w
            g.ref_count_down()
        for o in objs:
            o.ref_count_down()
        e.run(c.close())
    finally:
        e.close()
