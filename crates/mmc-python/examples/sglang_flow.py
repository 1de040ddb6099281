#!/usr/bin/env python3
"""The SGLang HiCache storage flow on memcache_rs.

SGLang's hierarchical cache keeps KV pages in a host memory pool (one numpy
array of pages here) and backs them with a storage layer. For each request
prefix it asks which pages the store already has (`batch_is_exist`; the
hit count is the number of leading keys present), writes the missing pages
straight from the pool (`batch_put_from`, zero-copy), and later loads pages
back into free pool slots (`batch_get_into`). Keys follow the
`{page_hash}_{tp_rank}_k` / `_v` layout connectors use.

Needs numpy (`pip install numpy`) besides memcache_rs.

Run against a cluster:   python sglang_flow.py --meta 127.0.0.1:5000
Or self-contained:       python sglang_flow.py
(starts a MetaService in this process through the Python API, and the
store contributes the memory).
"""

import argparse
import hashlib
import socket
import sys
import threading
import time

import numpy as np

import memcache_rs as memcache_hybrid  # a drop-in for `import memcache_hybrid`

PAGE_TOKENS = 64
LAYERS = 4
HEADS, HEAD_DIM = 8, 64
# bytes of one page of K (or V) for all layers: tokens x layers x heads x dim x fp16
PAGE_BYTES = PAGE_TOKENS * LAYERS * HEADS * HEAD_DIM * 2


def page_hashes(tokens, prior=""):
    """Chained hashes of full pages, as SGLang computes them."""
    out = []
    for i in range(0, len(tokens) - len(tokens) % PAGE_TOKENS, PAGE_TOKENS):
        h = hashlib.sha256((prior + ",".join(map(str, tokens[i : i + PAGE_TOKENS]))).encode()).hexdigest()
        out.append(h)
        prior = h
    return out


def keys_of(hashes, rank=0):
    """Two keys per page: K and V."""
    return [f"{h}_{rank}_{kv}" for h in hashes for kv in ("k", "v")]


class HostPool:
    """The host KV pool: K and V pages in one contiguous numpy array."""

    def __init__(self, pages: int):
        self.data = np.zeros((pages, 2, PAGE_BYTES), dtype=np.uint8)
        self.free = list(range(pages))

    def alloc(self, n):
        got, self.free = self.free[:n], self.free[n:]
        return got

    def ptrs(self, slots):
        base, stride = self.data.ctypes.data, 2 * PAGE_BYTES
        return [base + s * stride + kv * PAGE_BYTES for s in slots for kv in (0, 1)]


def batch_exists(store, keys):
    """SGLang's `batch_exists`: how many leading keys are stored."""
    hit = 0
    for present in store.batch_is_exist(keys):
        if present != 1:
            break
        hit += 1
    return hit


def backup(store, pool, hashes, slots):
    """Write-through: store the pages the store does not have yet."""
    keys = keys_of(hashes)
    exist = store.batch_is_exist(keys)
    ptrs = pool.ptrs(slots)
    missing = [i for i, e in enumerate(exist) if e != 1]
    if not missing:
        return 0
    res = store.batch_put_from([keys[i] for i in missing], [ptrs[i] for i in missing], [PAGE_BYTES] * len(missing))
    failed = [r for r in res if r != 0]
    if failed:
        raise RuntimeError(f"batch_put_from failed: {sorted(set(failed))}")
    return len(missing)


def prefetch(store, pool, hashes):
    """Load the leading stored pages of a prefix into fresh pool slots."""
    keys = keys_of(hashes)
    hit_pages = batch_exists(store, keys) // 2
    if hit_pages == 0:
        return [], 0
    slots = pool.alloc(hit_pages)
    res = store.batch_get_into(keys[: 2 * hit_pages], pool.ptrs(slots), [PAGE_BYTES] * (2 * hit_pages))
    ok_pages = 0
    for i in range(hit_pages):
        if res[2 * i] != 0 or res[2 * i + 1] != 0:
            break  # a page evicted between exist and get: stop at the first gap
        ok_pages += 1
    return slots[:ok_pages], ok_pages


def start_local_metaservice():
    """A MetaService in this process (background thread) on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = memcache_hybrid.MetaConfig(listen=f"127.0.0.1:{port}", http_listen="", log_level="warn")
    assert memcache_hybrid.MetaService.setup(cfg) == 0
    t = threading.Thread(target=memcache_hybrid.MetaService.main, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"127.0.0.1:{port}", t
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meta", help="MetaService address (default: start one in this process)")
    ap.add_argument("--dram-size", default="256MB", help="memory this process contributes (0: pure client)")
    args = ap.parse_args()

    meta_thread = None
    meta = args.meta
    if meta is None:
        meta, meta_thread = start_local_metaservice()

    store = memcache_hybrid.DistributedObjectStore()
    cfg = memcache_hybrid.LocalConfig(meta_addr=meta, dram_size=args.dram_size, log_level="warn")
    assert store.setup(cfg) == 0
    rc = store.init(0, init_bm=cfg.dram_size > 0)
    if rc != 0:
        print(f"init failed: {rc}", file=sys.stderr)
        return 1

    rng = np.random.default_rng(0)
    pool = HostPool(pages=64)

    # Request 1: a 10-page prompt is computed on the GPU, its pages land in
    # the host pool, and the storage backup writes the ones not stored yet.
    prompt = list(rng.integers(0, 32000, size=10 * PAGE_TOKENS))
    hashes = page_hashes(prompt)
    slots = pool.alloc(len(hashes))
    pool.data[slots] = rng.integers(0, 256, size=(len(slots), 2, PAGE_BYTES), dtype=np.uint8)
    written = backup(store, pool, hashes, slots)
    print(f"request 1: {len(hashes)} pages, wrote {written} keys")
    again = backup(store, pool, hashes, slots)  # a second backup finds everything stored
    print(f"request 1 again: wrote {again} keys (all present)")

    # Request 2 shares the first 6 pages, then diverges.
    prompt2 = prompt[: 6 * PAGE_TOKENS] + list(rng.integers(0, 32000, size=4 * PAGE_TOKENS))
    hashes2 = page_hashes(prompt2)
    got_slots, hit = prefetch(store, pool, hashes2)
    print(f"request 2: {hit} of {len(hashes2)} pages loaded from the store")
    assert hit == 6
    assert np.array_equal(pool.data[got_slots], pool.data[slots[:6]]), "loaded pages differ"

    # Pages of request 2 beyond the hit are computed and backed up too.
    new_slots = pool.alloc(len(hashes2) - hit)
    pool.data[new_slots] = rng.integers(0, 256, size=(len(new_slots), 2, PAGE_BYTES), dtype=np.uint8)
    print(f"request 2: wrote {backup(store, pool, hashes2[hit:], new_slots)} keys")
    assert batch_exists(store, keys_of(hashes2)) == 2 * len(hashes2)

    info = store.get_key_info(keys_of(hashes[:1])[0])
    print(f"first page K: {info}")
    store.remove_batch(keys_of(hashes) + keys_of(hashes2))
    store.close()
    if meta_thread is not None:
        memcache_hybrid.MetaService.stop()
        meta_thread.join(timeout=10)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
