"""Tests of the Mooncake-compatible client, ``memcache_rs.mooncake``.

Owns: SGLang 0.5.23's own ``mooncake_store`` HiCache backend (unchanged; its
``from mooncake.store import ...`` resolved to ours by ``install_as_mooncake``)
driven with a real CPU host pool (``MHATokenToKVPoolHost``), the test functions
SGLang ships next to that backend (``test_mooncake_store.py``), and the return
conventions of every ``MooncakeDistributedStore`` method, all against a real
cluster of ``mmc`` processes (conftest.py's session cluster; remove_all on one
of its own). Bytes read back are compared with the bytes written.
"""

import ctypes
import importlib.util
import os
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import require  # noqa: E402

torch = require("torch")
require("sglang.srt.mem_cache.storage.mooncake_store.mooncake_store")

from memcache_rs import mooncake as mc  # noqa: E402

HERE = Path(__file__).resolve().parent
MB = 1 << 20


def _load_cluster_class():
    """The cluster harness of the package tests (tests/conftest.py), reused rather than copied."""
    spec = importlib.util.spec_from_file_location("_mmc_pytest_conftest", HERE.parent / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Cluster


@pytest.fixture(scope="module")
def mc_cluster(mmc_cluster):
    """The session cluster of conftest.py (MetaService + two providers)."""
    return mmc_cluster


@pytest.fixture
def own_cluster():
    """A cluster of this test's own, for calls that act on every key (remove_all)."""
    Cluster = _load_cluster_class()
    with tempfile.TemporaryDirectory(prefix="mmc-mooncake-") as d:
        c = Cluster(Path(d))
        try:
            c.start_meta()
            c.start_local()
            yield c
        finally:
            c.stop_all()


def _setup(cluster, segment=16 * MB, hostname="localhost"):
    s = mc.MooncakeDistributedStore()
    rc = s.setup(hostname, "P2PHANDSHAKE", segment, 16 * MB, "tcp", "", cluster.meta_addr)
    assert rc == 0
    return s


@pytest.fixture(scope="module")
def ms(mc_cluster):
    s = _setup(mc_cluster)
    yield s
    assert s.close() == 0


@pytest.fixture
def kp():
    return f"mc-{uuid.uuid4().hex[:10]}-"


def _buf(data: bytes, size=None):
    b = ctypes.create_string_buffer(size if size is not None else len(data))
    ctypes.memmove(b, data, len(data))
    return b


def _addr(b) -> int:
    return ctypes.addressof(b)


# ---------------------------------------------------------------------------
# SGLang's mooncake_store backend, unchanged, on MemCache
# ---------------------------------------------------------------------------


def _mha_host_pool(layers=2, heads=2, head_dim=8, page=4, device_tokens=64):
    """SGLang's real CPU host KV pool (page_first layout), over a CPU stand-in for the device pool."""
    from sglang.srt.mem_cache.device_pool_info import KVBufferLayout, KVBuffers, MHABufferInfo
    from sglang.srt.mem_cache.pool_host.mha import MHATokenToKVPoolHost

    k = tuple(torch.zeros(device_tokens + page, heads, head_dim) for _ in range(layers))
    v = tuple(torch.zeros(device_tokens + page, heads, head_dim) for _ in range(layers))
    info = MHABufferInfo(
        buffers=KVBuffers(
            k=k,
            v=v,
            k_data_ptrs=torch.tensor([t.data_ptr() for t in k], dtype=torch.uint64),
            v_data_ptrs=torch.tensor([t.data_ptr() for t in v], dtype=torch.uint64),
            layout=KVBufferLayout.NHD,
        ),
        page_size=page,
        head_num=heads,
        head_dim=head_dim,
        v_head_dim=head_dim,
        dtype=torch.float32,
        device=torch.device("cpu"),
    )
    return MHATokenToKVPoolHost(
        info,
        2.0,
        0,
        page,
        "page_first",
        pin_memory=False,
        device="cpu",
        device_capacity_tokens=device_tokens,
        start_layer=0,
        end_layer=layers,
    )


def _storage_config(cluster, tp_rank=0, tp_size=1, extra=None):
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig

    return HiCacheStorageConfig(
        tp_rank=tp_rank,
        tp_size=tp_size,
        pp_rank=0,
        pp_size=1,
        attn_cp_rank=0,
        attn_cp_size=1,
        is_mla_model=False,
        enable_storage_metrics=False,
        is_page_first_layout=True,
        model_name=None,
        extra_config={
            "master_server_address": cluster.meta_addr,
            "global_segment_size": 16 * MB,
            "protocol": "tcp",
            "device_name": "",
            **(extra or {}),
        },
    )


def _page_bytes(host, page_index):
    """The K and V bytes of one host page (page_first: [2, token, layer, head, dim])."""
    p = host.page_size
    kv = host.kv_buffer[:, page_index * p : (page_index + 1) * p]
    return kv[0].contiguous().numpy().tobytes(), kv[1].contiguous().numpy().tobytes()


def test_sglang_mooncake_backend_set_exists_get(mc_cluster):
    mc.install_as_mooncake()
    from sglang.srt.mem_cache.storage.mooncake_store.mooncake_store import MooncakeStore

    host = _mha_host_pool()
    store = MooncakeStore(_storage_config(mc_cluster))  # setup() + warmup put/exists/get inside
    assert isinstance(store.store, mc.MooncakeDistributedStore)
    store.register_mem_pool_host(host)

    page = host.page_size
    n = 5
    torch.manual_seed(7)
    host.kv_buffer.copy_(torch.randn_like(host.kv_buffer))
    keys = [f"sgl-{uuid.uuid4().hex}" for _ in range(n)]
    src = torch.arange(page, page * (n + 1))  # pages 1..n
    dst = torch.arange(page * (n + 1), page * (2 * n + 1))  # pages n+1..2n
    written = [_page_bytes(host, 1 + i) for i in range(n)]

    assert store.batch_exists(keys) == 0
    assert store.batch_set_v1(keys, src) == [True] * n
    assert store.batch_exists(keys) == n
    assert store.batch_exists(keys[:2] + [f"absent-{uuid.uuid4().hex}"] + keys[2:]) == 2
    assert store.exists(f"{keys[0]}_0_k") and store.exists(f"{keys[0]}_0_v")
    # a second set of present keys skips them (batch_is_exist first) and succeeds
    assert store.batch_set_v1(keys, src) == [True] * n

    assert store.batch_get_v1(keys, dst) == [True] * n
    for i in range(n):
        assert _page_bytes(host, n + 1 + i) == written[i]

    # the objects are there for any MemCache client too, under SGLang's key layout
    assert store.store.get(f"{keys[3]}_0_v") == written[3][1]
    assert store.store.get_size(f"{keys[3]}_0_k") == len(written[3][0])

    # a missing page fails only its own slot
    missing = [keys[0], f"absent-{uuid.uuid4().hex}"]
    assert store.batch_get_v1(missing, torch.arange(page, 3 * page)) == [True, False]


def test_sglang_shipped_mooncake_store_tests(mc_cluster, monkeypatch):
    """The tests SGLang ships beside its backend (single and batch operations, MHA and MLA,
    several TP ranks), with Mooncake's environment variables pointing at MemCache."""
    mc.install_as_mooncake()
    monkeypatch.setenv("MOONCAKE_MASTER", mc_cluster.meta_addr)
    monkeypatch.setenv("MOONCAKE_PROTOCOL", "tcp")
    monkeypatch.setenv("MOONCAKE_GLOBAL_SEGMENT_SIZE", "0")  # clients only: memory from the providers
    shipped = pytest.importorskip("sglang.srt.mem_cache.storage.mooncake_store.test_mooncake_store")
    cfg = shipped.make_hicache_storage_config
    shipped.test_single_operation()
    shipped.test_batch_operation(cfg(is_mla_model=False, tp_rank=0, tp_size=1))
    shipped.test_batch_operation(cfg(is_mla_model=True, tp_rank=0, tp_size=1))
    shipped.test_batch_operation(cfg(is_mla_model=False, tp_rank=1, tp_size=4))
    shipped.test_batch_operation(cfg(is_mla_model=True, tp_rank=3, tp_size=8))


def test_install_as_mooncake_gives_this_module():
    mod = mc.install_as_mooncake()
    import mooncake.store
    from mooncake.store import MooncakeDistributedStore, ReplicateConfig

    assert mooncake.store is mod is mc
    assert MooncakeDistributedStore is mc.MooncakeDistributedStore
    assert ReplicateConfig is mc.ReplicateConfig


# ---------------------------------------------------------------------------
# Return conventions, method by method
# ---------------------------------------------------------------------------


def test_put_get_exist_size(ms, kp):
    assert ms.put(kp + "a", b"hello") == 0
    assert ms.put(kp + "a", b"other") == 0  # existing key: success, value unchanged
    assert ms.get(kp + "a") == b"hello"
    assert ms.get(kp + "absent") == b""
    assert ms.is_exist(kp + "a") == 1
    assert ms.is_exist(kp + "absent") == 0
    assert ms.batch_is_exist([kp + "a", kp + "absent"]) == [1, 0]
    assert ms.get_size(kp + "a") == 5
    assert ms.get_size(kp + "absent") == mc.OBJECT_NOT_FOUND == -704
    assert ms.put_batch([kp + "b1", kp + "b2"], [b"one", bytearray(b"two")]) == 0
    assert ms.get_batch([kp + "b1", kp + "absent", kp + "b2"]) == [b"one", b"", b"two"]
    assert ms.put(kp + "empty", b"") == mc.INVALID_PARAMS == -600
    assert ms.put("", b"x") == -600
    with pytest.raises(TypeError):
        ms.put(kp + "t", 12345)


def test_get_buffer(ms, kp):
    assert ms.put(kp + "g", b"buffered") == 0
    h = ms.get_buffer(kp + "g")
    assert isinstance(h, mc.BufferHandle) and h.size() == 8 and bytes(h) == b"buffered"
    assert ctypes.string_at(h.ptr(), h.size()) == b"buffered"
    assert bytes(memoryview(h)) == b"buffered"
    assert ms.get_buffer(kp + "absent") is None
    hs = ms.batch_get_buffer([kp + "g", kp + "absent"])
    assert bytes(hs[0]) == b"buffered" and hs[1] is None


def test_put_from_get_into_byte_counts(ms, kp):
    data = os.urandom(3000)
    src = _buf(data)
    assert ms.register_buffer(_addr(src), len(data)) == 0
    assert ms.put_from(kp + "p", _addr(src), len(data)) == 0

    exact = _buf(b"", 3000)
    assert ms.get_into(kp + "p", _addr(exact), 3000) == 3000
    assert exact.raw == data

    bigger = _buf(b"\xee" * 4096)  # Mooncake reads into a larger buffer and says how much
    assert ms.get_into(kp + "p", _addr(bigger), 4096) == 3000
    assert bigger.raw[:3000] == data and bigger.raw[3000:] == b"\xee" * 1096

    small = _buf(b"", 100)
    assert ms.get_into(kp + "p", _addr(small), 100) == -600
    assert ms.get_into(kp + "absent", _addr(exact), 3000) == -704
    assert ms.unregister_buffer(_addr(src)) == 0
    assert ms.unregister_buffer(_addr(src)) == -600  # not registered (any more)


def test_batch_put_from_get_into(ms, kp):
    vals = [os.urandom(n) for n in (512, 1024, 700)]
    keys = [kp + f"k{i}" for i in range(3)]
    srcs = [_buf(v) for v in vals]
    assert ms.batch_put_from(keys, [_addr(b) for b in srcs], [len(v) for v in vals]) == [0, 0, 0]
    dsts = [_buf(b"", 1024) for _ in range(4)]
    got = ms.batch_get_into(keys + [kp + "absent"], [_addr(b) for b in dsts], [1024] * 4)
    assert got == [512, 1024, 700, -704]
    for v, d in zip(vals, dsts):
        assert d.raw[: len(v)] == v
    # mismatched list lengths: every key fails with INVALID_PARAMS
    assert ms.batch_get_into(keys, [_addr(dsts[0])], [1024]) == [-600, -600, -600]
    rc = mc.ReplicateConfig()
    rc.replica_num = 2
    assert ms.batch_put_from([kp + "r"], [_addr(srcs[0])], [512], rc) == [0]
    assert len(ms.get_replica_desc(kp + "r")) == 2


def test_multi_buffers(ms, kp):
    parts = [os.urandom(n) for n in (100, 200, 300)]
    srcs = [_buf(p) for p in parts]
    whole = b"".join(parts)
    assert ms.batch_put_from_multi_buffers(
        [kp + "m"], [[_addr(b) for b in srcs]], [[len(p) for p in parts]], mc.ReplicateConfig()
    ) == [0]
    assert ms.get(kp + "m") == whole
    # read back split differently
    a, b = _buf(b"", 250), _buf(b"", 350)
    assert ms.batch_get_into_multi_buffers([kp + "m"], [[_addr(a), _addr(b)]], [[250, 350]]) == [600]
    assert a.raw + b.raw == whole
    # buffers larger than the object: filled in order, the rest untouched
    c, d = _buf(b"", 500), _buf(b"\x11" * 500)
    assert ms.batch_get_into_multi_buffers([kp + "m", kp + "absent"], [[_addr(c), _addr(d)], [_addr(c)]], [[500, 500], [500]]) == [
        600,
        -704,
    ]
    assert c.raw + d.raw[:100] == whole and d.raw[100:] == b"\x11" * 400
    # too small
    e = _buf(b"", 300)
    assert ms.batch_get_into_multi_buffers([kp + "m"], [[_addr(e)]], [[300]]) == [-600]


def test_put_parts(ms, kp):
    assert ms.put_parts(kp + "pp", b"meta:", bytearray(b"payload"), memoryview(b"!")) == 0
    assert ms.get(kp + "pp") == b"meta:payload!"
    assert ms.put_parts(kp + "pp2") == -600


def test_remove(ms, kp):
    for k in ("x", "y"):
        assert ms.put(kp + k, b"v") == 0
    assert ms.remove(kp + "x") == 0
    assert ms.remove(kp + "x") == -704
    assert ms.is_exist(kp + "x") == 0
    assert ms.batch_remove([kp + "y", kp + "absent"]) == [0, -704]
    assert ms.remove(kp + "absent", force=True) == -704


def test_replicate_config_and_replica_desc(ms, mc_cluster, kp):
    rc = mc.ReplicateConfig()
    assert rc.replica_num == 1 and rc.with_soft_pin is False and rc.preferred_segment == ""
    rc.replica_num = 2
    rc.with_soft_pin = True  # accepted, no effect
    rc.preferred_segments = ["elsewhere:1234"]  # not ours: ignored with a warning
    with pytest.raises(AttributeError):
        rc.no_such_field = 1
    assert ms.put(kp + "r2", b"x" * 64, rc) == 0
    descs = ms.batch_get_replica_desc([kp + "r2", kp + "absent"])
    assert list(descs) == [kp + "r2"]
    reps = descs[kp + "r2"]
    assert len(reps) == 2
    ends = set()
    for r in reps:
        assert r.is_memory_replica() and not r.is_disk_replica()
        assert r.status == mc.ReplicaStatus.COMPLETE
        d = r.get_memory_descriptor().buffer_descriptor
        assert d.size == 64
        ends.add(d.transport_endpoint)
    assert len(ends) == 2
    assert ms.get_replica_desc(kp + "absent") == []

    # preferred_segment = this client's hostname: the replica lands in this client's segment
    here = mc.ReplicateConfig()
    here.preferred_segment = ms.get_hostname()
    providers = {f"service-{i}" for i in mc_cluster.local_ids}
    for i in range(4):
        assert ms.put(kp + f"h{i}", b"y" * 32, here) == 0
        (rep,) = ms.get_replica_desc(kp + f"h{i}")
        assert rep.get_memory_descriptor().buffer_descriptor.transport_endpoint not in providers

    bad = mc.ReplicateConfig()
    bad.replica_num = 0
    assert ms.put(kp + "bad", b"z", bad) == -600
    with pytest.raises(TypeError):
        ms.put(kp + "bad", b"z", "not a config")


def test_setup_forms_and_errors(mc_cluster):
    # dict form, string sizes, LMCache's key spellings, rdma (falls back, warns once)
    s = mc.MooncakeDistributedStore()
    assert s.health_check() == 1
    assert s.is_exist("k") == -1  # not set up
    assert s.setup(
        {
            "local_hostname": "node-a",
            "metadata_server": "P2PHANDSHAKE",
            "global_segment_size": "0",
            "local_buffer_size": "16777216",
            "protocol": "rdma",
            "device_name": "mlx5_0",
            "master_server_address": mc_cluster.meta_addr,
        }
    ) == 0
    assert s.get_hostname() == "node-a"
    assert s.health_check() == 0
    assert s.put("dict-form-key", b"v") == 0 and s.get("dict-form-key") == b"v"
    assert s.close() == 0
    assert s.health_check() == 1

    t = mc.MooncakeDistributedStore()
    with pytest.raises(TypeError):
        t.setup("localhost", "P2PHANDSHAKE", 0)  # too few positional arguments
    with pytest.raises(TypeError):
        t.setup("localhost", "P2PHANDSHAKE", 0, 0, "tcp", "", mc_cluster.meta_addr, no_such_kwarg=1)
    assert t.setup("localhost", "P2PHANDSHAKE", 0, 0, "tcp", "", "not-an-address") == -600
    assert t.setup("localhost", "P2PHANDSHAKE", "lots", 0, "tcp", "", mc_cluster.meta_addr) == -600
    assert t.setup("localhost", "P2PHANDSHAKE", 0, 0, "tcp", "", mc_cluster.meta_addr, tenant_id="team-b") == -600
    # keyword arguments SGLang and vLLM pass
    assert (
        t.setup(
            "localhost", "P2PHANDSHAKE", 0, 0, "tcp", "", f"tcp://{mc_cluster.meta_addr}", None, enable_ssd_offload=False
        )
        == 0
    )
    assert t.setup("localhost", "P2PHANDSHAKE", 0, 0, "tcp", "", mc_cluster.meta_addr) == -600  # already set up
    assert t.close() == 0


def test_remove_all_returns_count(own_cluster, kp):
    s = _setup(own_cluster, segment=0)
    for i in range(3):
        assert s.put(kp + f"ra{i}", b"v") == 0
    n = s.remove_all()
    assert n >= 3
    assert s.batch_is_exist([kp + f"ra{i}" for i in range(3)]) == [0, 0, 0]
    assert s.remove_all() >= 0
    assert s.close() == 0


def test_shim_path_serves_spawned_processes(mc_cluster):
    """With SHIM_PATH on PYTHONPATH, a fresh interpreter (as an engine's spawned worker is)
    imports ``mooncake.store`` as this client, unchanged Mooncake code and all."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "memcache_rs.mooncake"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == mc.SHIM_PATH
    code = f"""
from mooncake.store import MooncakeDistributedStore, ReplicateConfig
import memcache_rs.mooncake
assert MooncakeDistributedStore is memcache_rs.mooncake.MooncakeDistributedStore
s = MooncakeDistributedStore()
assert s.setup("localhost", "P2PHANDSHAKE", 0, 0, "tcp", "", "{mc_cluster.meta_addr}") == 0
cfg = ReplicateConfig(); cfg.replica_num = 1
assert s.put("shim-key-{uuid.uuid4().hex}", b"from a spawned worker", cfg) == 0
assert s.close() == 0
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([mc.SHIM_PATH, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
