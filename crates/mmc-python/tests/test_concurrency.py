"""Several Python threads on one store: correct results, and the GIL is
released during blocking calls so the others keep running."""

import os
import signal
import socket
import threading
import time

import numpy as np

import memcache_rs as mc
from conftest import free_port


def test_threads_share_one_store(store, kp):
    n_threads, rounds, batch, size = 8, 20, 16, 16 * 1024
    errors = []

    def worker(t: int):
        try:
            rng = np.random.default_rng(t)
            for r in range(rounds):
                src = rng.integers(0, 256, size=batch * size, dtype=np.uint8)
                keys = [f"{kp}{t}-{r}-{i}" for i in range(batch)]
                ptrs = [src.ctypes.data + i * size for i in range(batch)]
                assert store.batch_put_from(keys, ptrs, [size] * batch) == [0] * batch
                assert store.batch_is_exist(keys) == [1] * batch
                dst = np.zeros_like(src)
                assert store.batch_get_into(keys, [dst.ctypes.data + i * size for i in range(batch)], [size] * batch) == [0] * batch
                assert np.array_equal(src, dst)
                assert store.get(keys[0]) == src[:size].tobytes()
                assert store.remove_batch(keys) == [0] * batch
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def max_gap_while(busy: threading.Thread, tick: float = 0.01) -> float:
    """Largest pause between ticks of this (main) thread while `busy` runs."""
    gaps = []
    last = time.monotonic()
    while busy.is_alive():
        time.sleep(tick)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    return max(gaps) if gaps else 0.0


def test_gil_released_while_init_waits_for_the_metaservice():
    # A "MetaService" that accepts connections and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        s = mc.DistributedObjectStore()
        cfg = mc.LocalConfig(meta_addr=f"127.0.0.1:{port}", dram_size=0, rpc_timeout_ms=1500, log_level="error")
        assert s.setup(cfg) == 0
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("rc", s.init(0)))
        start = time.monotonic()
        t.start()
        gap = max_gap_while(t)
        t.join()
        assert time.monotonic() - start >= 1.4  # init really blocked ~1.5 s
        assert result["rc"] == mc.TIMEOUT
        assert gap < 0.5, f"the main thread stalled {gap:.2f}s: GIL held during init"
    finally:
        silent.close()


def test_gil_released_during_a_blocked_transfer(cluster, kp):
    """A get whose data path hangs (the replica's owner is stopped) does not
    stall the other threads, and fails cleanly once the transfer times out."""
    proc, sid = cluster.start_local("16MB")
    s = mc.DistributedObjectStore()
    cfg = cluster.local_config(dram_size=0, protocol="tcp", transfer_timeout_ms=1500)
    assert s.setup(cfg) == 0
    assert s.init(0, False) == 0
    try:
        src = np.random.randint(0, 256, size=1 << 20, dtype=np.uint8)
        assert s.put_from(kp + "frozen", src.ctypes.data, src.nbytes, 3, mc.ReplicateConfig(1, [sid])) == 0
        assert s.get_key_info(kp + "frozen").loc_list() == [sid]
        dst = np.zeros_like(src)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            result = {}
            t = threading.Thread(target=lambda: result.setdefault("rc", s.get_into(kp + "frozen", dst, dst.nbytes)))
            start = time.monotonic()
            t.start()
            gap = max_gap_while(t)
            t.join()
            elapsed = time.monotonic() - start
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert elapsed >= 1.0, "the transfer did not block"
        assert result["rc"] < 0 and result["rc"] != mc.INVALID_PARAM
        assert gap < 0.5, f"the main thread stalled {gap:.2f}s: GIL held during get_into"
        # once the owner runs again, the object reads back
        assert s.get_into(kp + "frozen", dst, dst.nbytes) == 0
        assert np.array_equal(src, dst)
    finally:
        s.close()
        cluster.stop_local(proc)


def test_threads_progress_together(store, kp):
    """Threads doing 8 MiB copies overlap rather than run one after another."""
    size = 8 << 20
    src = np.random.randint(0, 256, size=size, dtype=np.uint8)
    assert store.put_from(kp + "big", src.ctypes.data, size) == 0
    bufs = [np.zeros(size, dtype=np.uint8) for _ in range(2)]
    counter = {"n": 0}
    stop = time.monotonic() + 0.5

    def copier(b):
        while time.monotonic() < stop:
            assert store.get_into(kp + "big", b.ctypes.data, size) == 0

    def python_work():
        while time.monotonic() < stop:
            counter["n"] += 1

    threads = [threading.Thread(target=copier, args=(b,)) for b in bufs] + [threading.Thread(target=python_work)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter["n"] > 1000  # pure-Python work kept running next to the copies
    assert all(np.array_equal(b, src) for b in bufs)
