"""The layer-wise, direct-address calls vllm-ascend's MemCache backend makes:
batch_alloc / batch_copy / batch_write_finish in a writer process,
batch_get_key_info / batch_add_lease / batch_copy / batch_remove_lease in a
reader process; leases that run out report LEASE_EXPIRED; a writer killed
between alloc and finish is reclaimed by the put timeout; bad arguments.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

import memcache_rs
from conftest import Cluster, stop

LEASE_EXPIRED = -3106
INVALID_PARAM = -3000
OBJECT_NOT_EXISTS = -3007
DUPLICATED_OBJECT = -3006
REMOTE_TAG = 1 << 62
SIZE = 256 * 1024

COPY_L2G, COPY_G2L = 0, 1


def pattern(key: str, n: int) -> bytes:
    seed = sum(key.encode()) % 251
    return bytes((seed + i * 7) % 256 for i in range(n))


WRITER = r"""
import ctypes, sys, time, memcache_rs
meta, protocol, mode, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
SIZE = int(sys.argv[5])
def pattern(key, n):
    seed = sum(key.encode()) % 251
    return bytes((seed + i * 7) % 256 for i in range(n))
s = memcache_rs.DistributedObjectStore()
assert s.setup(memcache_rs.LocalConfig(meta_addr=meta, protocol=protocol, log_level="warn")) == 0
assert s.init(0, init_bm=False) == 0
gvas = s.batch_alloc(keys, [SIZE] * len(keys))
assert all(g > 0 for g in gvas), gvas
n = SIZE // 2 if mode == "die" else SIZE
for i, (k, g) in enumerate(zip(keys, gvas)):
    v = pattern(k, SIZE)
    if i == 0 and not g & (1 << 62):
        ctypes.memmove(g, v, n)  # same host: the address is mapped here
    else:
        buf = ctypes.create_string_buffer(v, SIZE)
        half = n // 2
        a = ctypes.addressof(buf)
        assert s.batch_copy([g, g + half], [a, a + half], [half, n - half], 0) == 0
if mode == "die":
    print("ALLOCATED", flush=True)
    time.sleep(3600)
assert s.batch_write_finish(keys, [0] * len(keys)) == [0] * len(keys)
print("DONE", flush=True)
"""


def run_writer(cluster, protocol, mode, keys):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, cluster.meta_addr, protocol, mode, ",".join(keys), str(SIZE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_line(proc, want):
    for line in proc.stdout:
        if want in line:
            return
    raise AssertionError(f"writer ended without {want!r}: {proc.stderr.read()}")


def read(store, gva, n):
    buf = ctypes.create_string_buffer(n)
    rc = store.batch_copy([gva], [ctypes.addressof(buf)], [n], COPY_G2L)
    return rc, buf.raw


@pytest.mark.parametrize("protocol", ["auto", "tcp"])
def test_writer_and_reader_processes(cluster, kp, protocol):
    keys = [f"{kp}{i}" for i in range(3)]
    w = run_writer(cluster, protocol, "write", keys)
    try:
        wait_line(w, "DONE")
        assert w.wait(timeout=60) == 0
    finally:
        stop(w)
    r = memcache_rs.DistributedObjectStore()
    assert r.setup(cluster.local_config(protocol=protocol, dram_size=0)) == 0
    assert r.init(0, init_bm=False) == 0
    infos = r.batch_get_key_info(keys)
    gvas = [ki.gva_list()[0] for ki in infos]
    assert all(ki.size() == SIZE for ki in infos)
    assert all(g > 0 for g in gvas)
    assert all(bool(g & REMOTE_TAG) == (protocol == "tcp") for g in gvas)
    assert r.batch_add_lease(keys, 60_000) == [0, 0, 0]
    for k, g in zip(keys, gvas):
        rc, data = read(r, g, SIZE)
        assert rc == 0 and data == pattern(k, SIZE)
        # A piece through an offset address, as vllm-ascend reads layers.
        rc, data = read(r, g + 1000, 5000)
        assert rc == 0 and data == pattern(k, SIZE)[1000:6000]
        if not g & REMOTE_TAG:
            # Same host: the address is mapped here and readable directly.
            assert ctypes.string_at(g, 64) == pattern(k, SIZE)[:64]
    assert read(r, gvas[0], SIZE + 1)[0] == INVALID_PARAM
    assert r.batch_remove_lease(keys) == 0
    # Without a lease nothing is read.
    assert read(r, gvas[0], SIZE)[0] == INVALID_PARAM
    assert r.batch_remove_lease(keys[:1]) == INVALID_PARAM


def test_a_lease_that_runs_out_reports_lease_expired(store, kp):
    k = kp + "exp"
    assert store.put(k, pattern(k, SIZE)) == 0
    gva = store.batch_get_key_info([k])[0].gva_list()[0]
    assert store.batch_add_lease([k], 1) == [0]
    deadline = time.monotonic() + 20
    while True:
        rc, data = read(store, gva, SIZE)
        if rc == LEASE_EXPIRED:
            break
        assert rc == 0 and data == pattern(k, SIZE)
        assert time.monotonic() < deadline, "the lease never ran out"
    assert store.batch_remove_lease([k]) == LEASE_EXPIRED


def used_bytes(cluster) -> int:
    """DRAM bytes in use, from the MetaService's HTTP endpoint."""
    url = f"http://{cluster.http_addr}/api/v1/capacity/usage"
    with urllib.request.urlopen(url, timeout=10) as r:
        return int(json.load(r)["dram"]["used"])


def test_a_writer_killed_between_alloc_and_finish_is_reclaimed(workdir, kp):
    (workdir / "killed").mkdir(exist_ok=True)
    c = Cluster(workdir / "killed")
    c.config.write_text('[meta]\nlog_level = "warn"\nput_timeout_ms = 1500\n[local]\nlog_level = "warn"\n')
    try:
        c.start_meta(http=True)
        c.start_local(size="16MB")
        s = memcache_rs.DistributedObjectStore()
        assert s.setup(c.local_config(dram_size=0)) == 0
        assert s.init(0, init_bm=False) == 0
        k = kp + "killed"
        base = used_bytes(c)
        w = run_writer(c, "auto", "die", [k])
        try:
            wait_line(w, "ALLOCATED")
            assert used_bytes(c) >= base + SIZE
            assert s.is_exist(k) == 0
            os.kill(w.pid, signal.SIGKILL)
            w.wait(timeout=10)
        finally:
            stop(w)
        # Never readable; its space comes back after the put timeout.
        deadline = time.monotonic() + 30
        while used_bytes(c) != base:
            assert s.is_exist(k) == 0
            assert time.monotonic() < deadline, "space never reclaimed"
            time.sleep(0.1)
        assert s.is_exist(k) == 0
        assert s.batch_add_lease([k]) == [OBJECT_NOT_EXISTS]
        assert s.get(k) == b""
        s.close()
    finally:
        c.stop_all()


def test_bad_arguments(store, kp):
    a, b = kp + "a", kp + "b"
    # Mismatched lengths, zero sizes, bad keys.
    assert store.batch_alloc([a, b], [10]) == [INVALID_PARAM, INVALID_PARAM]
    assert store.batch_alloc([a, "", b], [0, 10, -1]) == [INVALID_PARAM] * 3
    assert store.batch_write_finish([a], [0, 0]) == [INVALID_PARAM]
    assert store.batch_copy([1, 2], [3], [4, 5], COPY_L2G) == INVALID_PARAM
    assert store.batch_copy([1], [0x10000], [4], 7) == INVALID_PARAM
    # Unknown keys.
    assert store.batch_write_finish([a], [0]) == [OBJECT_NOT_EXISTS]
    assert store.batch_add_lease([a]) == [OBJECT_NOT_EXISTS]
    assert store.batch_remove_lease([a]) == INVALID_PARAM
    assert store.batch_get_key_info([a])[0].gva_list() == []
    # An address nobody handed out.
    buf = ctypes.create_string_buffer(16)
    assert store.batch_copy([12345], [ctypes.addressof(buf)], [16], COPY_L2G) == INVALID_PARAM
    # Existing keys; a write is not readable before its finish.
    assert store.put(b, b"x") == 0
    assert store.batch_alloc([b], [10]) == [DUPLICATED_OBJECT]
    g = store.batch_alloc([a], [10])[0]
    assert g > 0
    assert read(store, g, 10)[0] == INVALID_PARAM
    assert store.batch_copy([g], [ctypes.addressof(buf)], [11], COPY_L2G) == INVALID_PARAM
    assert store.batch_copy([g], [b"0123456789"], [10], COPY_L2G) == 0
    assert store.batch_write_finish([a], [0]) == [0]
    assert store.get(a) == b"0123456789"
    with pytest.raises(TypeError):
        store.batch_alloc("not-a-list-of-keys", "nope")
