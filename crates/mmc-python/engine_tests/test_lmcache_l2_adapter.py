"""Tests of the LMCache L2 adapter, ``memcache_rs.integrations.lmcache_l2``.

Owns: ``MemCacheL2Adapter`` built the way ``lmcache server`` builds it — its
``--l2-adapter '{"type": "plugin", ...}'`` argument parsed by LMCache 0.5.6's
own storage-manager argument parser (``lmcache.v1.distributed.config``), the
adapter created by LMCache's L2 adapter factory (``create_l2_adapter``, its
``plugin`` type loading the module, finding ``MemCacheL2AdapterConfig`` and
passing the parsed config) — against conftest.py's real cluster: stores,
lookups (with their leases) and loads through the non-blocking interface and
its event fds, bytes compared, batches with misses, a buffer of the wrong
size, unlock, delete with listeners and usage accounting, key listing,
status, close, configuration errors; end to end through LMCache's
``StorageManager`` (what the server runs): chunks written to L1 reach
MemCache through its store controller and come back through its prefetch
controller after L1 dropped them; LMCache's own ``lmcache bench l2`` with
its round-trip verification; and the server process (``python -m
lmcache.v1.multiprocess.server --l2-adapter ...``) starting and stopping
with the adapter.
"""

import ctypes
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import free_port, require

torch = require("torch")
require("lmcache.v1.distributed.l2_adapters")

from lmcache.v1.distributed.api import (  # noqa: E402
    GroupedObjectKeys,
    MemoryLayoutDesc,
    ObjectKey,
    PrefetchTaskSpec,
)
from lmcache.v1.distributed.config import parse_args  # noqa: E402
from lmcache.v1.distributed.internal_api import L2AdapterListener  # noqa: E402
from lmcache.v1.distributed.l2_adapters import create_l2_adapter  # noqa: E402
from lmcache.v1.memory_management import MemoryObjMetadata, TensorMemoryObj  # noqa: E402

import memcache_rs  # noqa: E402
from memcache_rs.integrations.lmcache_l2 import (  # noqa: E402
    MemCacheL2Adapter,
    MemCacheL2AdapterConfig,
    object_name,
    parse_object_name,
)

MODEL = "org/test-model"
SHAPE = torch.Size([2, 16, 64])  # k/v, tokens, hidden: 4 KiB of bf16
DTYPE = torch.bfloat16
CHUNK_BYTES = SHAPE.numel() * DTYPE.itemsize
TIMEOUT = 60.0


def _adapter_json(meta_addr: str, **params) -> str:
    return json.dumps(
        {
            "type": "plugin",
            "module_path": "memcache_rs.integrations.lmcache_l2",
            "class_name": "MemCacheL2Adapter",
            "adapter_params": {"meta_addr": meta_addr, "dram_size": 0, **params},
        }
    )


def _server_config(meta_addr: str, **params):
    """The StorageManagerConfig `lmcache server` parses from these arguments."""
    return parse_args(
        [
            "--l1-size-gb",
            "0.0625",
            "--no-l1-use-lazy",
            "--eviction-policy",
            "LRU",
            "--l2-adapter",
            _adapter_json(meta_addr, **params),
        ]
    )


def _make(meta_addr: str, **params) -> MemCacheL2Adapter:
    """An adapter from LMCache's argument parser and L2 adapter factory."""
    cfg = _server_config(meta_addr, **params)
    assert len(cfg.l2_adapter_config.adapters) == 1
    return create_l2_adapter(cfg.l2_adapter_config.adapters[0], None)


def _key(model: str = MODEL, salt: str = "", group: int = 0) -> ObjectKey:
    return ObjectKey(
        chunk_hash=uuid.uuid4().bytes, model_name=model, kv_rank=3, object_group_id=group, cache_salt=salt
    )


def _chunk(fill: bool = True, nbytes: int = CHUNK_BYTES) -> TensorMemoryObj:
    """A memory object of SHAPE (or `nbytes` raw bytes) over a CPU tensor."""
    raw = torch.randint(0, 256, (nbytes,), dtype=torch.uint8) if fill else torch.zeros(nbytes, dtype=torch.uint8)
    shape = SHAPE if nbytes == CHUNK_BYTES else torch.Size([nbytes // DTYPE.itemsize])
    meta = MemoryObjMetadata(
        shape=shape, dtype=DTYPE, address=0, phy_size=nbytes, ref_count=1, shapes=[shape], dtypes=[DTYPE]
    )
    return TensorMemoryObj(raw_data=raw, metadata=meta, parent_allocator=None)


def _bytes(obj) -> bytes:
    return bytes(obj.raw_data[: obj.get_size()].numpy())


def _wait_fd(fd: int) -> None:
    r, _, _ = select.select([fd], [], [], TIMEOUT)
    assert r, "the adapter did not signal its event fd"


def _store(a: MemCacheL2Adapter, keys, objs):
    tid = a.submit_store_task(keys, objs)
    deadline = time.monotonic() + TIMEOUT
    while True:
        _wait_fd(a.get_store_event_fd())
        done = a.pop_completed_store_tasks()
        if tid in done:
            return done[tid]
        assert time.monotonic() < deadline


def _poll(query, fd: int, tid: int):
    deadline = time.monotonic() + TIMEOUT
    while True:
        res = query(tid)
        if res is not None:
            return res
        _wait_fd(fd)
        assert time.monotonic() < deadline


def _lookup(a: MemCacheL2Adapter, keys) -> List[bool]:
    tid = a.submit_lookup_and_lock_task(keys, {0: MemoryLayoutDesc(shapes=[SHAPE], dtypes=[DTYPE])})
    bm = _poll(a.query_lookup_and_lock_result, a.get_lookup_and_lock_event_fd(), tid)
    assert a.query_lookup_and_lock_result(tid) is None  # a result is returned once
    return [bm.test(i) for i in range(len(keys))]


def _load(a: MemCacheL2Adapter, keys, objs) -> List[bool]:
    tid = a.submit_load_task(keys, objs)
    bm = _poll(a.query_load_result, a.get_load_event_fd(), tid)
    assert a.query_load_result(tid) is None
    return [bm.test(i) for i in range(len(keys))]


class Recorder(L2AdapterListener):
    def __init__(self):
        self.stored: Dict[ObjectKey, int] = {}
        self.accessed: List[ObjectKey] = []
        self.deleted: List[ObjectKey] = []

    def on_l2_keys_stored(self, keys, sizes):
        self.stored.update(zip(keys, sizes))

    def on_l2_keys_accessed(self, keys):
        self.accessed.extend(keys)

    def on_l2_keys_deleted(self, keys):
        self.deleted.extend(keys)


@pytest.fixture
def client(meta_addr):
    """A separate view of the cluster (same process: it shares the adapter's client)."""
    s = memcache_rs.DistributedObjectStore()
    s.setup(memcache_rs.LocalConfig(meta_addr=meta_addr, dram_size=0))
    assert s.init(0, init_bm=False) == 0
    yield s
    s.close()


@pytest.fixture
def adapter(meta_addr):
    a = _make(meta_addr)
    yield a
    a.close()


def test_built_by_lmcache_plugin_factory(adapter):
    assert type(adapter) is MemCacheL2Adapter
    assert isinstance(adapter._config, MemCacheL2AdapterConfig)  # found by LMCache's config-class convention
    fds = {adapter.get_store_event_fd(), adapter.get_lookup_and_lock_event_fd(), adapter.get_load_event_fd()}
    assert len(fds) == 3 and all(fd >= 0 for fd in fds)
    assert not adapter.supports_global_eviction  # max_capacity_gb 0: MemCache evicts by itself


def test_store_lookup_load_batches(adapter, client):
    keys = [_key() for _ in range(5)] + [_key(salt="user-7"), _key(group=2)]
    objs = [_chunk() for _ in keys]
    want = [_bytes(o) for o in objs]
    res = _store(adapter, keys, objs)
    assert res.is_successful() and res.bytes_transferred() == CHUNK_BYTES * len(keys)
    # one object per chunk, under the adapter's name, readable by any client
    names = [object_name(k) for k in keys]
    assert client.batch_is_exist(names) == [1] * len(keys)
    assert client.get_key_info(names[0]).size() == CHUNK_BYTES
    assert client.get(names[5]) == want[5]

    missing = [_key(), _key(salt="user-7")]
    order = [keys[0], missing[0], keys[1], keys[2], missing[1], keys[3], keys[4], keys[5], keys[6]]
    assert _lookup(adapter, order) == [True, False, True, True, False, True, True, True, True]
    adapter.submit_unlock([k for k in order if k not in missing])

    dst = [_chunk(fill=False) for _ in order]
    assert _load(adapter, order, dst) == [True, False, True, True, False, True, True, True, True]
    for k, d in zip(order, dst):
        if k in missing:
            assert _bytes(d) == bytes(CHUNK_BYTES)  # a miss leaves the buffer alone
        else:
            assert _bytes(d) == want[keys.index(k)]
    # storing present keys again succeeds and moves no bytes
    again = _store(adapter, keys[:2], objs[:2])
    assert again.is_successful() and again.bytes_transferred() == 0
    # empty batches complete too
    assert _store(adapter, [], []).is_successful()
    assert _lookup(adapter, []) == [] and _load(adapter, [], []) == []


def test_load_into_buffer_of_other_size_fails(adapter):
    k, obj = _key(), _chunk()
    assert _store(adapter, [k], [obj]).is_successful()
    small = _chunk(fill=False, nbytes=CHUNK_BYTES // 2)
    assert _load(adapter, [k], [small]) == [False]
    assert _bytes(small) == bytes(CHUNK_BYTES // 2)


def test_lookup_takes_leases_unlock_gives_them_back(adapter):
    k = _key()
    assert _store(adapter, [k], [_chunk()]).is_successful()
    assert _lookup(adapter, [k]) == [True]
    assert _lookup(adapter, [k]) == [True]  # a second lock on the same key: two leases
    adapter.submit_unlock([k])
    name = object_name(k)
    assert adapter._store.batch_remove_lease([name]) == 0  # one lease was left
    assert adapter._store.batch_remove_lease([name]) == memcache_rs.INVALID_PARAM  # none now
    adapter.submit_unlock([k])  # nothing to give back: no error
    adapter.submit_unlock([])


def test_delete_listeners_and_usage(adapter, client):
    rec = Recorder()
    adapter.register_listener(rec)
    keys = [_key(), _key(), _key(salt="tenant-a")]
    assert _store(adapter, keys, [_chunk() for _ in keys]).is_successful()
    assert rec.stored == {k: CHUNK_BYTES for k in keys}
    usage = adapter.get_usage()
    assert usage.total_bytes_used == 3 * CHUNK_BYTES and usage.usage_fraction == -1.0
    assert dict(usage.bytes_by_cache_salt) == {"": 2 * CHUNK_BYTES, "tenant-a": CHUNK_BYTES}

    assert _load(adapter, keys[:1], [_chunk(fill=False)]) == [True]
    assert rec.accessed == keys[:1]

    # keys[1] disappears behind the adapter's back (as when MemCache evicts it)
    assert client.remove(object_name(keys[1])) == 0
    adapter.delete([keys[0], keys[1], _key()])
    assert rec.deleted == [keys[0], keys[1]]
    assert client.batch_is_exist([object_name(k) for k in keys]) == [0, 0, 1]
    usage = adapter.get_usage()
    assert usage.total_bytes_used == CHUNK_BYTES and dict(usage.bytes_by_cache_salt) == {"tenant-a": CHUNK_BYTES}
    assert _lookup(adapter, keys) == [False, False, True]
    adapter.submit_unlock(keys[2:])
    adapter.delete([])


def test_list_l2_keys(adapter):
    model = f"org/list-{uuid.uuid4().hex[:8]}"
    keys = [_key(model=model) for _ in range(5)] + [_key(model=model, salt="s1", group=1)]
    assert _store(adapter, keys, [_chunk() for _ in keys]).is_successful()
    seen = {}
    cursor = None
    pages = 0
    while True:
        page = adapter.list_l2_keys(model_name=model, page_size=2, cursor=cursor)
        pages += 1
        for e in page.entries:
            seen[e.key.to_object_key()] = e.size_bytes
        cursor = page.next_page_token
        if cursor is None:
            break
        assert pages < 10
    assert seen == {k: CHUNK_BYTES for k in keys} and pages >= 3
    # unfiltered listing includes them; a cursor from elsewhere is refused
    everything = adapter.list_l2_keys(page_size=100_000)
    assert {k.to_encoded_object_key() for k in keys} <= {e.key for e in everything.entries}
    with pytest.raises(ValueError, match="cursor"):
        adapter.list_l2_keys(model_name=model, cursor="some-other-key")
    with pytest.raises(ValueError, match="page_size"):
        adapter.list_l2_keys(page_size=0)


def test_object_names_round_trip():
    for k in (_key(), _key(salt="u1", group=5), ObjectKey(b"\x00\x01", "m", 0)):
        assert parse_object_name(object_name(k)).to_object_key() == k
    long = _key(model="m" * 300)
    assert object_name(long).startswith("lmcache-l2#") and parse_object_name(object_name(long)) is None
    assert parse_object_name("org/model@1@0@abc@bfloat16") is None  # the remote plugin's names


def test_status_and_close(meta_addr):
    a = _make(meta_addr, replicas=1, lock_ms=5000, num_workers=1)
    st = a.report_status()
    assert st["is_healthy"] is True and st["type"] == "MemCacheL2Adapter" and st["lock_ms"] == 5000
    k = _key()
    assert _store(a, [k], [_chunk()]).is_successful()
    a.close()
    a.close()  # idempotent
    assert a.report_status()["is_healthy"] is False
    with pytest.raises(RuntimeError, match="closed"):
        a.submit_store_task([k], [_chunk()])
    with pytest.raises(RuntimeError, match="closed"):
        a.submit_lookup_and_lock_task([k], {})
    with pytest.raises(RuntimeError, match="closed"):
        a.submit_load_task([k], [_chunk()])


def test_failed_store_is_reported(meta_addr):
    """Three replicas on a cluster of two memory providers: the puts fail, the task says so."""
    a = _make(meta_addr, replicas=3)
    try:
        k = _key()
        res = _store(a, [k], [_chunk()])
        assert not res.is_successful() and res.bytes_transferred() == 0
        assert _lookup(a, [k]) == [False]
    finally:
        a.close()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"no_such_setting": 1}, "'no_such_setting'"),
        ({"replicas": 9}, "'replicas'"),
        ({"lock_ms": -1}, "'lock_ms'"),
        ({"num_workers": 0}, "'num_workers'"),
        ({"max_capacity_gb": "lots"}, "'max_capacity_gb'"),
        ({"dram_size": "lots"}, "'dram_size'"),
        ({"config_path": "/nonexistent/mmc.toml"}, "'config_path'"),
    ],
)
def test_bad_adapter_params_are_clear_errors(meta_addr, params, match):
    with pytest.raises(ValueError, match=match):
        _make(meta_addr, **params)


def test_plain_dict_config(meta_addr):
    """Constructed with a raw adapter_params dict (LMCache's plugin raw-dict mode)."""
    a = MemCacheL2Adapter({"meta_addr": meta_addr, "dram_size": 0, "replicas": 2})
    try:
        k = _key()
        assert _store(a, [k], [_chunk()]).is_successful()
        assert len(a._store.get_key_info(object_name(k)).loc_list()) == 2
    finally:
        a.close()


def test_storage_manager_round_trip_through_l2(meta_addr, client):
    """LMCache's StorageManager (what `lmcache server` runs) with this adapter as its
    L2: writes to L1 are stored in MemCache by its store controller; once L1 dropped
    them, a prefetch loads them back from MemCache through its prefetch controller."""
    StorageManager = require("lmcache.v1.distributed.storage_manager").StorageManager  # imports OpenTelemetry
    sm = StorageManager(_server_config(meta_addr))
    try:
        [(desc, adapter)] = sm.l2_adapters()
        assert isinstance(adapter, MemCacheL2Adapter) and desc.type_name == "plugin"
        layout = MemoryLayoutDesc(shapes=[SHAPE], dtypes=[DTYPE])
        keys = [_key() for _ in range(6)]
        objs = sm.reserve_write(keys, layout)
        assert set(objs) == set(keys)
        want = {}
        for k, o in objs.items():
            src = torch.randint(0, 256, (CHUNK_BYTES,), dtype=torch.uint8)
            assert o.get_size() == CHUNK_BYTES
            ctypes.memmove(o.data_ptr, src.data_ptr(), CHUNK_BYTES)
            want[k] = bytes(src.numpy())
        sm.finish_write(keys)

        names = [object_name(k) for k in keys]
        deadline = time.monotonic() + TIMEOUT
        while client.batch_is_exist(names) != [1] * len(keys):
            assert time.monotonic() < deadline, "the store controller did not store the chunks in MemCache"
            time.sleep(0.05)
        for k in keys:
            assert client.get(object_name(k)) == want[k]

        # Drop them from L1 (a key stays read-locked until its store task has completed).
        deadline = time.monotonic() + TIMEOUT
        left = list(keys)
        while left:
            left = [k for k in left if sm.delete_l1_keys([k]) == (0, 1)]
            assert time.monotonic() < deadline, "L1 kept the chunks locked"
            time.sleep(0.05)

        missing = _key()
        asked = keys + [missing]
        handle = sm.submit_prefetch_task(PrefetchTaskSpec(key_groups=[GroupedObjectKeys(asked, 0, layout)]))
        assert sm.wait_prefetch_status(handle, TIMEOUT)
        res = sm.query_prefetch_status(handle)
        assert [res.l2_hit_cells[0].test(i) for i in range(len(asked))] == [True] * len(keys) + [False]
        assert res.l1_hit_count == 0 and res.l2_hit_count == len(keys)
        with sm.read_prefetched_results(keys, res.l1_owners) as got:
            assert got is not None
            assert [bytes(o.byte_array[: o.get_size()]) for o in got] == [want[k] for k in keys]
        sm.finish_read_prefetched(keys, l1_owners=res.l1_owners)
        assert adapter.get_usage().total_bytes_used == len(keys) * CHUNK_BYTES
    finally:
        sm.close()


def _subprocess_env() -> Dict[str, str]:
    """This process's environment, with the memcache_rs it imported first on the path."""
    env = dict(os.environ)
    env["LMCACHE_TRACK_USAGE"] = "false"  # the server would post usage telemetry to stats.lmcache.ai
    env["LMCACHE_DISABLE_BANNER"] = "1"
    here = str(Path(memcache_rs.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def test_lmcache_l2_bench_verifies_round_trip(meta_addr):
    """LMCache's own L2 adapter benchmark (`lmcache bench l2`) with round-trip
    verification: it builds the adapter from --l2-adapter, stores, looks up
    (half the keys were never stored) and loads batches, and compares bytes."""
    cmd = [
        sys.executable, "-m", "lmcache.cli.main", "bench", "l2",
        "--l2-adapter", _adapter_json(meta_addr),
        "--num-keys", "8", "--in-flight", "2", "--rounds", "2", "--data-size-kb", "64",
        "--lookup-max-hit-rate", "0.5", "--no-skip-verify",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_subprocess_env())
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "Adapter created successfully (MemCacheL2Adapter)" in out
    assert "All 16 keys data verified OK" in out
    assert "loaded=16/16" in out and "found=8/16" in out
    assert re.findall(r"Rounds timed out:\s+(\d+)", out) == ["0", "0", "0"]  # store, lookup, load


def test_lmcache_server_process_loads_adapter(meta_addr, tmp_path):
    """The LMCache cache server process SGLang connects to (`python -m
    lmcache.v1.multiprocess.server`, `lmcache server` without its HTTP frontend)
    with `--l2-adapter`: it joins the cluster at startup and closes the adapter
    on SIGTERM."""
    require("blake3")  # the server's token hasher
    require("httpx")
    log = tmp_path / "server.log"
    cmd = [
        sys.executable, "-m", "lmcache.v1.multiprocess.server",
        "--host", "127.0.0.1", "--port", str(free_port()),
        "--l1-size-gb", "0.0625", "--no-l1-use-lazy", "--eviction-policy", "LRU",
        "--disable-metrics", "--l2-adapter", _adapter_json(meta_addr),
    ]  # fmt: skip
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_subprocess_env())
    try:
        deadline = time.monotonic() + TIMEOUT
        while "cache server is running" not in log.read_text(errors="replace"):
            assert p.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(0.2)
        assert f"MemCacheL2Adapter: joined {meta_addr}" in log.read_text(errors="replace")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "MemCacheL2Adapter: closed" in log.read_text(errors="replace")
