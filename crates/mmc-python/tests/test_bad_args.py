"""Bad arguments: INVALID_PARAM in the usual return shape, TypeError only for
wrong Python types, and never a crash."""

import numpy as np
import pytest

import memcache_rs as mc
from memcache_rs import INVALID_PARAM as INV
from memcache_rs import NOT_INITIALIZED, ReplicateConfig

LONG_KEY = "k" * 257
BAD_KEYS = ["", LONG_KEY, "\ud800"]  # empty, over 256 bytes, not encodable as UTF-8


@pytest.fixture
def buf():
    return np.arange(4096, dtype=np.uint8)


@pytest.mark.parametrize("key", BAD_KEYS, ids=["empty", "257-bytes", "surrogate"])
def test_bad_keys(store, buf, key):
    p = buf.ctypes.data
    assert store.put(key, b"v") == INV
    assert store.put_from(key, p, 4096) == INV
    assert store.get_into(key, p, 4096) == INV
    assert store.put_from_layers(key, [p], [4096]) == INV
    assert store.get_into_layers(key, [p], [4096]) == INV
    assert store.get(key) == b""
    assert store.is_exist(key) == INV
    assert store.remove(key) == INV
    assert store.get_key_info(key).size() == 0
    assert store.put_batch([key], [b"v"]) == INV


def test_bad_keys_in_batches_fail_alone(store, buf, kp):
    p = buf.ctypes.data
    keys = [kp + "a", "", kp + "b", LONG_KEY]
    assert store.batch_put_from(keys, [p] * 4, [16] * 4) == [0, INV, 0, INV]
    assert store.batch_is_exist(keys) == [1, INV, 1, INV]
    out = np.zeros(64, dtype=np.uint8)
    assert store.batch_get_into(keys, [out.ctypes.data + 16 * i for i in range(4)], [16] * 4) == [0, INV, 0, INV]
    assert store.get_batch(keys) == [buf[:16].tobytes(), b"", buf[:16].tobytes(), b""]
    assert [i.size() for i in store.batch_get_key_info(keys)] == [16, 0, 16, 0]
    assert store.remove_batch(keys) == [0, INV, 0, INV]
    assert store.batch_put_from_layers(keys, [[p]] * 4, [[8]] * 4) == [0, INV, 0, INV]
    assert store.batch_get_into_layers(keys, [[out.ctypes.data]] * 4, [[8]] * 4) == [0, INV, 0, INV]


def test_null_negative_and_mismatched_pointers_and_sizes(store, buf, kp):
    p = buf.ctypes.data
    assert store.put_from(kp + "x", 0, 16) == INV  # null pointer
    assert store.put_from(kp + "x", -1, 16) == INV  # negative pointer
    assert store.put_from(kp + "x", 2**70, 16) == INV  # not an address
    assert store.put_from(kp + "x", 4096, 16) == INV  # below 64 KiB: never mapped
    assert store.put_from(kp + "x", 2**62, 16) == INV  # above user space
    assert store.put_from(kp + "x", p, -16) == INV  # negative size
    assert store.put_from(kp + "x", p, 0) == INV  # empty value
    assert store.put_from(kp + "x", p, 2**64) == INV
    assert store.put_from(kp + "x", buf, 8192) == INV  # larger than the buffer given
    assert store.get_into(kp + "x", 0, 16) == INV
    assert store.get_into(kp + "x", p, -1) == INV
    assert store.put(kp + "x", b"") == INV  # empty value
    assert store.is_exist(kp + "x") == 0
    # per-key failures inside batches
    assert store.batch_put_from([kp + "a", kp + "b", kp + "c"], [p, 0, p], [16, 16, -1]) == [0, INV, INV]
    assert store.batch_get_into([kp + "a", kp + "b"], [0, p], [16, 16]) == [INV, -3007]
    # layers: a bad layer fails its key only
    assert store.put_from_layers(kp + "L", [p, 0], [16, 16]) == INV
    assert store.put_from_layers(kp + "L", [p, p], [16, -16]) == INV
    assert store.put_from_layers(kp + "L", [], []) == INV
    assert store.batch_put_from_layers([kp + "L1", kp + "L2"], [[p, p], [p, 0]], [[8, 8], [8, 8]]) == [0, INV]


def test_mismatched_list_lengths(store, buf, kp):
    p = buf.ctypes.data
    assert store.batch_put_from([kp + "a", kp + "b"], [p], [16, 16]) == [INV, INV]
    assert store.batch_put_from([kp + "a", kp + "b"], [p, p], [16]) == [INV, INV]
    assert store.batch_get_into([kp + "a", kp + "b"], [p, p, p], [16, 16]) == [INV, INV]
    assert store.put_batch([kp + "a", kp + "b"], [b"x"]) == INV
    assert store.put_from_layers(kp + "a", [p, p], [16]) == INV
    assert store.get_into_layers(kp + "a", [p], [16, 16]) == INV
    # outer lists of layered batches
    assert store.batch_put_from_layers([kp + "a", kp + "b"], [[p]], [[16], [16]]) == [INV, INV]
    assert store.batch_get_into_layers([kp + "a"], [[p]], [[16], [16]]) == [INV]
    # inner lists: only that key
    assert store.batch_put_from_layers([kp + "c", kp + "d"], [[p], [p, p]], [[16], [16]]) == [0, INV]
    assert store.batch_is_exist([kp + "a", kp + "b", kp + "c", kp + "d"]) == [0, 0, 1, 0]


def test_oversize_batches(store, buf):
    n = 16385
    keys = [f"over-{i}" for i in range(n)]
    p = buf.ctypes.data
    assert store.batch_is_exist(keys) == [INV] * n
    assert store.batch_put_from(keys, [p] * n, [1] * n) == [INV] * n
    assert store.batch_get_into(keys, [p] * n, [1] * n) == [INV] * n
    assert store.batch_put_from_layers(keys, [[p]] * n, [[1]] * n) == [INV] * n
    assert store.remove_batch(keys) == [INV] * n
    assert store.get_batch(keys) == [b""] * n
    assert [i.size() for i in store.batch_get_key_info(keys)] == [0] * n
    assert store.put_batch(keys, [b"x"] * n) == INV
    # the limit itself is fine
    assert store.batch_is_exist(keys[:16384]) == [0] * 16384


def test_empty_batches(store):
    assert store.batch_is_exist([]) == []
    assert store.batch_put_from([], [], []) == []
    assert store.batch_get_into([], [], []) == []
    assert store.get_batch([]) == []
    assert store.remove_batch([]) == []
    assert store.batch_get_key_info([]) == []
    assert store.put_batch([], []) == INV


def test_bad_direct(store, buf, kp):
    p = buf.ctypes.data
    assert store.put_from(kp + "x", p, 16, 2) == INV  # pool->host is not a put direction
    assert store.put_from(kp + "x", p, 16, 1) == INV
    assert store.put_from(kp + "x", p, 16, 7) == INV
    assert store.get_into(kp + "x", p, 16, 3) == INV
    assert store.get_into(kp + "x", p, 16, 0) == INV
    assert store.batch_put_from([kp + "x"], [p], [16], -1) == [INV]
    assert store.batch_get_into([kp + "x"], [p], [16], 5) == [INV]
    assert store.put_from_layers(kp + "x", [p], [16], 2) == INV
    assert store.get_into_layers(kp + "x", [p], [16], 3) == INV
    assert store.batch_put_from_layers([kp + "x"], [[p]], [[16]], 1) == [INV]
    assert store.batch_get_into_layers([kp + "x"], [[p]], [[16]], 0) == [INV]
    assert store.is_exist(kp + "x") == 0


def test_bad_replicate_config(store, kp):
    for rc in (
        ReplicateConfig(replicaNum=0),
        ReplicateConfig(replicaNum=9),
        ReplicateConfig(replicaNum=-1),
        ReplicateConfig(replicaNum=2, preferredLocalServiceIDs=[1, 1]),
        ReplicateConfig(replicaNum=1, preferredLocalServiceIDs=[1, 2]),
        ReplicateConfig(replicaNum=1, preferredLocalServiceIDs=[2**40]),
    ):
        assert store.put(kp + "x", b"v", rc) == INV, rc
        assert store.batch_put_from([kp + "x"], [b"vv"], [2], 3, rc) == [INV], rc
    assert store.is_exist(kp + "x") == 0
    # negative ids mean "unset" (memcache_hybrid pads the list with -1)
    assert store.put(kp + "y", b"v", ReplicateConfig(1, [-1, -1])) == 0


def test_unsuitable_buffers(store, kp):
    ro = b"read-only bytes"
    assert store.get_into(kp + "x", ro, len(ro)) == INV  # not writable
    strided = np.arange(100, dtype=np.uint8)[::2]
    assert store.put(kp + "x", strided) == INV  # not contiguous
    assert store.put_from(kp + "x", strided, 50) == INV
    assert store.put_batch([kp + "x"], [strided]) == INV
    fortran = np.asfortranarray(np.zeros((8, 8), dtype=np.uint8))
    assert store.put(kp + "f", fortran) == INV  # values are read as C-contiguous bytes
    assert store.put(kp + "f", np.ascontiguousarray(fortran)) == 0
    assert store.is_exist(kp + "x") == 0


WRONG_TYPES = [
    ("put key int", lambda s, p: s.put(123, b"v")),
    ("put key None", lambda s, p: s.put(None, b"v")),
    ("put value int", lambda s, p: s.put("k", 123)),
    ("put value str", lambda s, p: s.put("k", "text")),
    ("put config", lambda s, p: s.put("k", b"v", 5)),
    ("put config dict", lambda s, p: s.put("k", b"v", {"replicaNum": 2})),
    ("put_from ptr str", lambda s, p: s.put_from("k", "0x1000", 16)),
    ("put_from ptr float", lambda s, p: s.put_from("k", 1.5, 16)),
    ("put_from ptr None", lambda s, p: s.put_from("k", None, 16)),
    ("put_from size float", lambda s, p: s.put_from("k", p, 16.0)),
    ("put_from size str", lambda s, p: s.put_from("k", p, "16")),
    ("put_from direct str", lambda s, p: s.put_from("k", p, 16, "3")),
    ("get_into ptr list", lambda s, p: s.get_into("k", [p], 16)),
    ("batch keys str", lambda s, p: s.batch_is_exist("abc")),
    ("batch keys int", lambda s, p: s.batch_is_exist(5)),
    ("batch keys items", lambda s, p: s.batch_is_exist(["a", 5])),
    ("batch ptrs int", lambda s, p: s.batch_put_from(["a"], p, [16])),
    ("batch ptr item", lambda s, p: s.batch_put_from(["a"], ["x"], [16])),
    ("batch sizes item", lambda s, p: s.batch_get_into(["a"], [p], [None])),
    ("layers not nested", lambda s, p: s.batch_put_from_layers(["a"], [p], [16])),
    ("layers sizes not nested", lambda s, p: s.batch_get_into_layers(["a"], [[p]], [16])),
    ("put_batch values", lambda s, p: s.put_batch(["a"], [1])),
    ("get key float", lambda s, p: s.get(1.0)),
    ("get_batch keys", lambda s, p: s.get_batch(None)),
    ("remove key", lambda s, p: s.remove(7)),
    ("key info key", lambda s, p: s.get_key_info(["a"])),
    ("init device", lambda s, p: s.init("0")),
    ("setup config", lambda s, p: s.setup({"meta_addr": "x"})),
    ("register ptr", lambda s, p: s.register_buffer("p", 16)),
]


@pytest.mark.parametrize("call", [c for _, c in WRONG_TYPES], ids=[n for n, _ in WRONG_TYPES])
def test_wrong_types_raise_type_error(store, buf, call):
    with pytest.raises(TypeError):
        call(store, buf.ctypes.data)


def test_not_initialized():
    s = mc.DistributedObjectStore()
    buf = np.zeros(16, dtype=np.uint8)
    p = buf.ctypes.data
    assert s.put("k", b"v") == NOT_INITIALIZED
    assert s.put_batch(["k"], [b"v"]) == NOT_INITIALIZED
    assert s.get("k") == b""
    assert s.get_batch(["k", "j"]) == [b"", b""]
    assert s.put_from("k", p, 16) == NOT_INITIALIZED
    assert s.get_into("k", p, 16) == NOT_INITIALIZED
    assert s.batch_put_from(["k"], [p], [16]) == [NOT_INITIALIZED]
    assert s.batch_get_into(["k"], [p], [16]) == [NOT_INITIALIZED]
    assert s.put_from_layers("k", [p], [16]) == NOT_INITIALIZED
    assert s.batch_get_into_layers(["k"], [[p]], [[16]]) == [NOT_INITIALIZED]
    assert s.is_exist("k") == NOT_INITIALIZED
    assert s.batch_is_exist(["k", "j"]) == [NOT_INITIALIZED] * 2
    assert s.remove("k") == NOT_INITIALIZED
    assert s.remove_batch(["k"]) == [NOT_INITIALIZED]
    assert s.remove_all() == NOT_INITIALIZED
    assert s.get_key_info("k").size() == 0
    assert s.get_local_service_id() == NOT_INITIALIZED
    assert s.close() == 0
    assert "not initialized" in repr(s)


def test_garbage_never_crashes_the_interpreter(cluster):
    """Random argument combinations in a child interpreter: it must exit normally."""
    from conftest import run_python

    code = f"""
import random, numpy as np, memcache_rs as mc
s = mc.DistributedObjectStore()
assert s.setup(mc.LocalConfig(meta_addr={cluster.meta_addr!r}, dram_size=0, log_level="error")) == 0
assert s.init(0, False) == 0
buf = np.zeros(1 << 16, dtype=np.uint8)
vals = [None, 0, -1, 1, 2**63, 2**64 + 5, -2**70, 1.5, "", "k", "k" * 300, b"", b"abc", bytearray(4),
        memoryview(b"xy"), buf, buf[::3], [], [0], ["a"], [[]], [[buf.ctypes.data]], [[-1]], (1, 2),
        buf.ctypes.data, 16, 4096, 60000, object(), {{}}, mc.ReplicateConfig(), mc.ReplicateConfig(99)]
names = [n for n in dir(s) if not n.startswith("_") and n not in ("close", "init", "setup", "remove_all")]
rng = random.Random(7)
calls = errors = 0
for _ in range(6000):
    f = getattr(s, rng.choice(names))
    args = [rng.choice(vals) for _ in range(rng.randint(0, 5))]
    try:
        f(*args)
        calls += 1
    except (TypeError, OverflowError):
        errors += 1
s.close()
print("ok", calls, errors)
"""
    r = run_python(code, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok")
