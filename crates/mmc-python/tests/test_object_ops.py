"""Every object operation, single and batch, against the real cluster."""

import ctypes
import os

import numpy as np
import pytest

import memcache_rs as mc
from memcache_rs import INVALID_PARAM, OBJECT_NOT_EXISTS, UNMATCHED_KEY, ReplicateConfig


def rand(n: int) -> bytes:
    return os.urandom(n)


# ---- put / get with buffer-protocol objects ---------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b,
        lambda b: bytearray(b),
        lambda b: memoryview(b),
        lambda b: np.frombuffer(b, dtype=np.uint8).copy(),
        lambda b: np.frombuffer(b, dtype=np.float32).copy(),
        lambda b: np.frombuffer(b, dtype=np.uint8).reshape(64, -1).copy(),
    ],
    ids=["bytes", "bytearray", "memoryview", "numpy-u8", "numpy-f32", "numpy-2d"],
)
def test_put_get_buffer_types(store, kp, make):
    data = rand(64 * 1024)
    assert store.put(kp + "v", make(data)) == 0
    assert store.get(kp + "v") == data
    assert store.is_exist(kp + "v") == 1


def test_get_absent_is_empty_bytes(store, kp):
    assert store.get(kp + "absent") == b""
    assert store.is_exist(kp + "absent") == 0


def test_duplicate_put_returns_zero_and_keeps_first_value(store, kp):
    assert store.put(kp + "d", b"first") == 0
    assert store.put(kp + "d", b"second value") == 0
    assert store.get(kp + "d") == b"first"
    buf = np.frombuffer(b"x" * 100, dtype=np.uint8).copy()
    assert store.put_from(kp + "d", buf.ctypes.data, 100) == 0
    assert store.batch_put_from([kp + "d"], [buf.ctypes.data], [100]) == [0]
    assert store.get(kp + "d") == b"first"


def test_bytes_keys_and_unicode_keys(store, kp):
    assert store.put((kp + "bk").encode(), b"v1") == 0
    assert store.get(kp + "bk") == b"v1"
    k = kp + "ключ-鍵-🔑"
    assert store.put(k, b"v2") == 0
    assert store.get(k) == b"v2"
    longest = (kp + "x" * 256)[:256]
    assert store.put(longest, b"v3") == 0
    assert store.get(longest) == b"v3"


def test_put_batch_and_get_batch(store, kp):
    keys = [f"{kp}{i}" for i in range(32)]
    vals = [rand(4096 + i) for i in range(32)]
    assert store.put_batch(keys, vals) == 0
    assert store.get_batch(keys) == vals
    got = store.get_batch([keys[0], kp + "missing", keys[5]])
    assert got == [vals[0], b"", vals[5]]
    # mixed buffer types in one batch
    mixed = [bytearray(b"a" * 10), memoryview(b"b" * 20), np.full(30, 7, dtype=np.uint8)]
    assert store.put_batch([kp + "m0", kp + "m1", kp + "m2"], mixed) == 0
    assert store.get_batch([kp + "m0", kp + "m1", kp + "m2"]) == [b"a" * 10, b"b" * 20, bytes([7] * 30)]


# ---- zero-copy pointer APIs --------------------------------------------------


def test_put_from_get_into_int_pointers(store, kp):
    src = np.random.randint(0, 256, size=1 << 20, dtype=np.uint8)
    assert store.put_from(kp + "p", src.ctypes.data, src.nbytes) == 0
    dst = np.zeros_like(src)
    assert store.get_into(kp + "p", dst.ctypes.data, dst.nbytes) == 0
    assert np.array_equal(src, dst)
    # ctypes buffers and addressof
    cbuf = (ctypes.c_char * src.nbytes)()
    assert store.get_into(kp + "p", ctypes.addressof(cbuf), src.nbytes, 2) == 0
    assert bytes(cbuf) == src.tobytes()
    # explicit direct values: 3 host->pool, 0 device->pool (host assumed), 9 auto
    assert store.put_from(kp + "p0", src.ctypes.data, 4096, 0) == 0
    assert store.put_from(kp + "p9", src.ctypes.data, 4096, direct=9) == 0
    out = np.zeros(4096, dtype=np.uint8)
    assert store.get_into(kp + "p0", out.ctypes.data, 4096, 1) == 0
    assert np.array_equal(out, src[:4096])
    assert store.get_into(kp + "p9", out.ctypes.data, 4096, direct=9) == 0


def test_buffers_written_in_place(store, kp):
    src = np.arange(1 << 16, dtype=np.uint32)
    assert store.put_from(kp + "b", src, src.nbytes) == 0  # a numpy array as the pointer
    dst = np.zeros_like(src)
    assert store.get_into(kp + "b", dst, dst.nbytes) == 0  # written in place
    assert np.array_equal(src, dst)
    ba = bytearray(src.nbytes)
    assert store.get_into(kp + "b", ba, len(ba)) == 0
    assert bytes(ba) == src.tobytes()
    mv = memoryview(bytearray(src.nbytes))
    assert store.get_into(kp + "b", mv, len(mv)) == 0
    assert mv.tobytes() == src.tobytes()


def test_get_into_errors(store, kp):
    assert store.put(kp + "e", b"x" * 100) == 0
    buf = np.zeros(200, dtype=np.uint8)
    assert store.get_into(kp + "e", buf.ctypes.data, 200) == INVALID_PARAM  # size must equal
    assert store.get_into(kp + "e", buf.ctypes.data, 50) == INVALID_PARAM
    assert store.get_into(kp + "absent", buf.ctypes.data, 100) == OBJECT_NOT_EXISTS
    assert store.get_into(kp + "e", buf.ctypes.data, 100) == 0


def test_batch_put_from_batch_get_into(store, kp):
    n, size = 32, 4096
    src = np.random.randint(0, 256, size=n * size, dtype=np.uint8)
    keys = [f"{kp}{i}" for i in range(n)]
    ptrs = [src.ctypes.data + i * size for i in range(n)]
    assert store.batch_put_from(keys, ptrs, [size] * n) == [0] * n
    dst = np.zeros_like(src)
    dptrs = [dst.ctypes.data + i * size for i in range(n)]
    assert store.batch_get_into(keys, dptrs, [size] * n) == [0] * n
    assert np.array_equal(src, dst)
    # per-key failures keep the batch order
    res = store.batch_get_into([keys[0], kp + "absent", keys[2]], dptrs[:3], [size, size, size // 2])
    assert res == [0, OBJECT_NOT_EXISTS, INVALID_PARAM]
    # tuples work as well as lists
    assert store.batch_get_into(tuple(keys[:2]), tuple(dptrs[:2]), (size, size)) == [0, 0]


# ---- layers ------------------------------------------------------------------


def test_layers_with_numpy(store, kp):
    layers = [np.random.randint(0, 256, size=s, dtype=np.uint8) for s in (4096, 100, 65536, 1)]
    sizes = [a.nbytes for a in layers]
    assert store.put_from_layers(kp + "L", [a.ctypes.data for a in layers], sizes) == 0
    whole = np.concatenate(layers)
    assert store.get(kp + "L") == whole.tobytes()
    assert store.get_key_info(kp + "L").size() == whole.nbytes
    # scatter back into a different split of the same total
    split = [10, whole.nbytes - 20, 10]
    outs = [np.zeros(s, dtype=np.uint8) for s in split]
    assert store.get_into_layers(kp + "L", [o.ctypes.data for o in outs], split) == 0
    assert np.array_equal(np.concatenate(outs), whole)
    # numpy arrays as layer buffers (in place), and a size mismatch
    outs2 = [np.zeros(s, dtype=np.uint8) for s in sizes]
    assert store.get_into_layers(kp + "L", outs2, sizes) == 0
    assert all(np.array_equal(a, b) for a, b in zip(layers, outs2))
    assert store.get_into_layers(kp + "L", outs2, [s for s in sizes[:-1]] + [2]) == INVALID_PARAM


def test_layered_kv_block_122_buffers(store, kp):
    """The vLLM layout: per layer a K page (128 KiB) and a V page (16 KiB)."""
    k_cache = np.random.randint(0, 256, size=(61, 4, 128 * 1024), dtype=np.uint8)  # 4 blocks per layer
    v_cache = np.random.randint(0, 256, size=(61, 4, 16 * 1024), dtype=np.uint8)
    keys, ptrs, sizes = [], [], []
    for block in range(4):
        keys.append(f"{kp}block{block}")
        ptrs.append([k_cache[layer, block].ctypes.data for layer in range(61)] + [v_cache[layer, block].ctypes.data for layer in range(61)])
        sizes.append([128 * 1024] * 61 + [16 * 1024] * 61)
    assert store.batch_put_from_layers(keys, ptrs, sizes) == [0] * 4
    infos = store.batch_get_key_info(keys)
    assert [i.size() for i in infos] == [61 * (128 + 16) * 1024] * 4
    k2 = np.zeros_like(k_cache)
    v2 = np.zeros_like(v_cache)
    dptrs = [[k2[layer, b].ctypes.data for layer in range(61)] + [v2[layer, b].ctypes.data for layer in range(61)] for b in range(4)]
    assert store.batch_get_into_layers(keys, dptrs, sizes) == [0] * 4
    assert np.array_equal(k_cache, k2) and np.array_equal(v_cache, v2)
    # the Mooncake-style aliases behave the same
    k3 = np.zeros_like(k_cache)
    v3 = np.zeros_like(v_cache)
    dptrs3 = [[k3[layer, b].ctypes.data for layer in range(61)] + [v3[layer, b].ctypes.data for layer in range(61)] for b in range(4)]
    assert store.batch_get_into_multi_buffers(keys, dptrs3, sizes) == [0] * 4
    assert np.array_equal(k_cache, k3) and np.array_equal(v_cache, v3)
    alias_keys = [k + "-alias" for k in keys]
    assert store.batch_put_from_multi_buffers(alias_keys, ptrs, sizes) == [0] * 4
    assert store.batch_put_from_multi_buffers([kp + "a2"], ptrs[:1], sizes[:1], ReplicateConfig(replicaNum=2)) == [0]
    assert len(store.get_key_info(kp + "a2").loc_list()) == 2
    assert store.batch_put_from_multi_buffers([kp + "a3"], ptrs[:1], sizes[:1], 3) == [0]  # int: direct
    assert store.get(alias_keys[1]) == store.get(keys[1])


# ---- exist / remove / key info / replicas -------------------------------------


def test_exist_and_remove(store, kp):
    keys = [f"{kp}{i}" for i in range(5)]
    assert store.put_batch(keys, [b"v"] * 5) == 0
    assert store.batch_is_exist(keys + [kp + "no"]) == [1] * 5 + [0]
    assert store.remove(keys[0]) == 0
    assert store.is_exist(keys[0]) == 0
    assert store.remove(keys[0]) == UNMATCHED_KEY
    assert store.remove_batch(keys[1:3] + [kp + "no"]) == [0, 0, UNMATCHED_KEY]
    assert store.batch_is_exist(keys) == [0, 0, 0, 1, 1]
    assert store.get(keys[1]) == b""


def test_remove_all(store, kp):
    assert store.put_batch([kp + "a", kp + "b"], [b"1", b"2"]) == 0
    assert store.remove_all() == 0
    assert store.batch_is_exist([kp + "a", kp + "b"]) == [0, 0]


def test_key_info_and_replicas(store, cluster, kp):
    me = store.get_local_service_id()
    assert me > 0 and me not in cluster.local_ids
    assert store.put(kp + "r1", b"x" * 1000) == 0
    info = store.get_key_info(kp + "r1")
    assert info.size() == 1000
    assert info.loc_list() == [me]  # the writer's own segment first
    assert info.type_list() == [0]  # DRAM
    assert "size=1000" in str(info) and "dram" in str(info)

    assert store.put(kp + "r2", b"y" * 1000, ReplicateConfig(replicaNum=2)) == 0
    locs = store.get_key_info(kp + "r2").loc_list()
    assert len(locs) == 2 and len(set(locs)) == 2

    rc = ReplicateConfig()
    rc.replicaNum = 3
    assert store.put(kp + "r3", b"z" * 1000, replicateConfig=rc) == 0
    locs = store.get_key_info(kp + "r3").loc_list()
    assert sorted(locs) == sorted([me] + cluster.local_ids)

    target = cluster.local_ids[1]
    assert store.put(kp + "pref", b"p" * 10, ReplicateConfig(1, [target])) == 0
    assert store.get_key_info(kp + "pref").loc_list() == [target]
    assert store.get(kp + "pref") == b"p" * 10

    # more replicas than LocalServices with memory: an error, never a crash
    assert store.put(kp + "r4", b"w", ReplicateConfig(replicaNum=4)) < 0
    assert store.is_exist(kp + "r4") == 0

    infos = store.batch_get_key_info([kp + "r1", kp + "absent", kp + "r3"])
    assert [i.size() for i in infos] == [1000, 0, 1000]
    assert infos[1].loc_list() == [] and infos[1].type_list() == []
    assert [len(i.loc_list()) for i in infos] == [1, 0, 3]

    src = np.full(4096, 3, dtype=np.uint8)
    res = store.batch_put_from([kp + "b2"], [src.ctypes.data], [4096], 3, ReplicateConfig(replicaNum=2))
    assert res == [0]
    assert len(store.get_key_info(kp + "b2").loc_list()) == 2


def test_replicate_config_object():
    rc = ReplicateConfig()
    assert rc.replicaNum == 1 and rc.preferredLocalServiceIDs == []
    rc.preferredLocalServiceIDs = [3, 4]
    rc.replica_num = 2  # Mooncake spelling
    assert rc.replicaNum == 2
    assert "replicaNum=2" in repr(rc)
    rc2 = ReplicateConfig(replicaNum=3, preferredLocalServiceIDs=[1])
    assert (rc2.replicaNum, rc2.preferredLocalServiceIDs) == (3, [1])
    with pytest.raises(TypeError):
        rc.replicaNum = "two"


def test_register_buffer(store):
    buf = np.zeros(4096, dtype=np.uint8)
    assert store.register_buffer(buf.ctypes.data, 4096) == 0
    assert store.unregister_buffer(buf.ctypes.data, 4096) == 0
    assert store.register_buffer(0, 4096) == INVALID_PARAM
    assert store.register_buffer(buf.ctypes.data, -1) == INVALID_PARAM


def test_large_objects(store, kp):
    for mib in (1, 8):
        src = np.random.randint(0, 256, size=mib << 20, dtype=np.uint8)
        assert store.put_from(f"{kp}{mib}", src.ctypes.data, src.nbytes) == 0
        dst = np.zeros_like(src)
        assert store.get_into(f"{kp}{mib}", dst.ctypes.data, dst.nbytes) == 0
        assert np.array_equal(src, dst)
        assert store.remove(f"{kp}{mib}") == 0


def test_replica_on_other_process_read_back(store, cluster, kp):
    """Objects whose only replica is in another process (shm mapping of its segment)."""
    for sid in cluster.local_ids:
        src = np.random.randint(0, 256, size=300_000, dtype=np.uint8)
        assert store.put_from(f"{kp}{sid}", src, src.nbytes, 3, ReplicateConfig(1, [sid])) == 0
        assert store.get_key_info(f"{kp}{sid}").loc_list() == [sid]
        dst = np.zeros_like(src)
        assert store.get_into(f"{kp}{sid}", dst, dst.nbytes) == 0
        assert np.array_equal(src, dst)


def test_tcp_protocol_store(cluster, kp):
    """A pure client that forces TCP reaches replicas through the transfer servers."""
    s = mc.DistributedObjectStore()
    assert s.setup(cluster.local_config(protocol="tcp")) == 0
    assert s.init(0, init_bm=False) == 0
    try:
        src = np.random.randint(0, 256, size=3 << 20, dtype=np.uint8)
        for sid in cluster.local_ids:
            assert s.put_from(f"{kp}{sid}", src.ctypes.data, src.nbytes, 3, ReplicateConfig(1, [sid])) == 0
            dst = np.zeros_like(src)
            assert s.get_into(f"{kp}{sid}", dst.ctypes.data, dst.nbytes) == 0
            assert np.array_equal(src, dst)
    finally:
        assert s.close() == 0


def test_adjacent_layers_are_one_value(store, kp):
    """Layers that follow each other in memory (merged into one copy) read back the same."""
    src = np.random.randint(0, 256, size=1 << 20, dtype=np.uint8)
    cuts = [0, 1000, 4096, 300_000, 300_001, 1 << 20]
    ptrs = [src.ctypes.data + a for a in cuts[:-1]]
    sizes = [b - a for a, b in zip(cuts, cuts[1:])]
    assert store.put_from_layers(kp + "adj", ptrs, sizes) == 0
    assert store.get(kp + "adj") == src.tobytes()
    dst = np.zeros_like(src)
    # adjacent destinations, listed in order, and a gap in the middle
    assert store.get_into_layers(kp + "adj", [dst.ctypes.data + a for a in cuts[:-1]], sizes) == 0
    assert np.array_equal(src, dst)
    gap = np.zeros(2 << 20, dtype=np.uint8)
    half = 1 << 19
    assert store.get_into_layers(kp + "adj", [gap.ctypes.data, gap.ctypes.data + half + 4096], [half, half]) == 0
    assert np.array_equal(gap[:half], src[:half]) and np.array_equal(gap[half + 4096 : 2 * half + 4096], src[half:])
    assert not gap[half : half + 4096].any()
