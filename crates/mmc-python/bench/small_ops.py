"""The Python client of ``mmc-bench small-ops``.

crates/mmc-bench/src/small_ops.rs owns the loop; this is its copy on
``memcache_rs``, called as an engine calls it (its own process, the
MetaService in another): a pure client configured by
``$MMC_LOCAL_CONFIG_PATH`` puts 256 keys of 4 KiB, times ``is_exist`` of one
key, ``get_into`` of 4 KiB, ``batch_is_exist`` of 32 keys and
``batch_get_into`` of 32 x 4 KiB (median of --rounds rounds of at least
--round-s seconds after one warm-up round), checks the bytes of the last batch
read, removes its keys and prints one JSON line.

Usage: python small_ops.py [--round-s S] [--rounds N]
"""

import argparse
import ctypes
import json
import os
import sys
import time

from memcache_rs import DistributedObjectStore

KEYS = 256
VALUE = 4096
BATCH = 32


def value_of(j: int) -> bytes:
    return j.to_bytes(8, "little") + bytes([j & 0xFF]) * (VALUE - 8)


def page_aligned(size: int):
    """A ctypes buffer and the first page-aligned address in it with
    ``size`` bytes after it (keep the buffer alive while the address is used)."""
    raw = ctypes.create_string_buffer(size + 4096)
    return raw, (ctypes.addressof(raw) + 4095) & ~4095


def timed(op, round_s: float, rounds: int) -> float:
    """Median over the timed rounds of microseconds per call of ``op(i)``."""
    per_call = []
    i = 0
    clock = time.perf_counter
    for rnd in range(rounds + 1):
        start = clock()
        calls = 0
        while True:
            for _ in range(16):
                op(i)
                i += 1
            calls += 16
            elapsed = clock() - start
            if elapsed >= round_s:
                break
        if rnd > 0:
            per_call.append(elapsed * 1e6 / calls)
    per_call.sort()
    return per_call[len(per_call) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--round-s", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    if not a.round_s > 0 or a.rounds < 1:
        ap.error("--round-s must be > 0 and --rounds at least 1")

    store = DistributedObjectStore()
    rc = store.init(0, False)
    if rc != 0:
        print(f"small_ops.py: init failed: {rc}", file=sys.stderr)
        return 1
    keys = [f"small-ops-python-{os.getpid()}-{j}" for j in range(KEYS)]
    for j in range(0, KEYS, BATCH):
        rc = store.put_batch(keys[j : j + BATCH], [value_of(k) for k in range(j, j + BATCH)])
        if rc != 0:
            print(f"small_ops.py: put_batch failed: {rc}", file=sys.stderr)
            return 1
    # Page-aligned buffers, as an engine's KV pool (a torch tensor) is and
    # as the Rust and C loops use: ctypes alone gives memory 16 bytes past
    # a page, which makes every 4 KiB copy out of a segment slower.
    one, one_ptr = page_aligned(VALUE)
    batch, base = page_aligned(BATCH * VALUE)
    ptrs = [base + k * VALUE for k in range(BATCH)]
    sizes = [VALUE] * BATCH
    windows = [keys[w : w + BATCH] for w in range(0, KEYS, BATCH)]
    nwin = len(windows)
    last = [0]

    def exist1(i):
        if store.is_exist(keys[i % KEYS]) != 1:
            raise RuntimeError(f"is_exist {keys[i % KEYS]}: not 1")

    def get1(i):
        rc = store.get_into(keys[i % KEYS], one_ptr, VALUE)
        if rc != 0:
            raise RuntimeError(f"get_into {keys[i % KEYS]}: {rc}")

    # Results are checked with list.count (C speed), so that the loop
    # measures the binding rather than Python iterating over 32 results.
    def exist32(i):
        if store.batch_is_exist(windows[i % nwin]).count(1) != BATCH:
            raise RuntimeError("batch_is_exist: a key is absent")

    def get32(i):
        last[0] = i % nwin
        if store.batch_get_into(windows[last[0]], ptrs, sizes).count(0) != BATCH:
            raise RuntimeError("batch_get_into: a key failed")

    figures = {
        "client": "python",
        "exist1_us": timed(exist1, a.round_s, a.rounds),
        "get1_us": timed(get1, a.round_s, a.rounds),
        "exist32_us": timed(exist32, a.round_s, a.rounds),
        "get32_us": timed(get32, a.round_s, a.rounds),
    }
    got = ctypes.string_at(base, BATCH * VALUE)
    first = last[0] * BATCH
    for k in range(BATCH):
        if got[k * VALUE : (k + 1) * VALUE] != value_of(first + k):
            print(f"small_ops.py: {keys[first + k]} returned other bytes than were put", file=sys.stderr)
            return 1
    store.remove_batch(keys)
    store.close()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
