"""SGLang's own `npu_memcache` HiCache backend, unchanged, on this project's memcache_hybrid.

`NpuMemcacheStore` (sglang/srt/mem_cache/storage/npu_memcache/) is created
through SGLang's `StorageBackendFactory` exactly as SGLang's cache controller
does (`create_backend("npu_memcache", ...)`, then `register_mem_pool_host`),
with SGLang's CPU host KV pools (sglang_pools.py), against a real cluster.
Nothing of the backend or of memcache_hybrid is mocked.

Layouts: the backend accepts page_first, page_first_direct, page_head and
page_first_kv_split. SGLang's MHA host pool has the first three
(page_first_kv_split is MLA-only: SGLang maps it to page_first_direct for MHA
pools); its MLA host pool has page_first, page_first_direct and
page_first_kv_split (no page_head). So the cases are MHA x {page_first,
page_first_direct, page_head} and MLA x {page_first, page_first_direct,
page_first_kv_split}; the last with the DSA indexer K and scale buffers, so
each page is four objects (k, v, index_k, scale).
"""

import pytest

from conftest import require

require("sglang.srt.mem_cache.storage.npu_memcache.npu_memcache_store")
import memcache_hybrid  # noqa: E402
import sglang_pools as sp  # noqa: E402
from sglang.srt.mem_cache.storage.backend_factory import StorageBackendFactory  # noqa: E402
from sglang.srt.mem_cache.storage.npu_memcache.npu_memcache_store import NpuMemcacheStore  # noqa: E402
from sglang.srt.observability.metrics_collector import StorageMetrics  # noqa: E402

CASES = [
    ("mha", "page_first"),
    ("mha", "page_first_direct"),
    ("mha", "page_head"),
    ("mla", "page_first"),
    ("mla", "page_first_direct"),
    ("mla", "page_first_kv_split"),
]

N_PAGES = 5


def make_backend(meta_url, model, layout, extra=None, **cfg):
    pool = sp.host_pool(model, layout)
    extra = extra if extra is not None else {"meta_service_url": meta_url, "dram_size": "64MB", "log_level": "warn"}
    config = sp.storage_config(model == "mla", layout, extra, **cfg)
    backend = StorageBackendFactory.create_backend("npu_memcache", config, pool)
    backend.register_mem_pool_host(pool)  # as HiCacheController.attach_storage_backend does
    return backend, pool


def round_trip(backend, pool, n=N_PAGES):
    """batch_set_v1 / batch_exists / batch_get_v1 of `n` pages; returns the keys."""
    keys = sp.page_keys(n)
    src = pool.alloc(n * pool.page_size)
    dst = pool.alloc(n * pool.page_size)
    assert backend.batch_exists(keys) == 0
    assert backend.batch_set_v1(keys, src) == [True] * n
    assert backend.batch_exists(keys) == n
    want = sp.pages_bytes(pool, src)
    assert sp.pages_bytes(pool, dst) != want  # the destination pages start out different
    assert backend.batch_get_v1(keys, dst) == [True] * n
    assert sp.pages_bytes(pool, dst) == want
    return keys


@pytest.mark.parametrize("model,layout", CASES)
def test_npu_memcache_round_trip(meta_url, model, layout):
    backend, pool = make_backend(meta_url, model, layout)
    try:
        assert isinstance(backend, NpuMemcacheStore)
        keys = round_trip(backend, pool)
        # batch_exists: the leading run of stored pages only
        gap = sp.page_keys(1)
        assert backend.batch_exists(keys[:2] + gap + keys[2:]) == 2
        # a second set of stored pages succeeds without rewriting them
        assert backend.batch_set_v1(keys, pool.alloc(len(keys) * pool.page_size)) == [True] * len(keys)
        stats = backend.get_stats()
        assert isinstance(stats, StorageMetrics)
        assert stats.prefetch_pgs == [len(keys)]
        assert stats.backup_pgs == [len(keys)]
        assert backend.get_stats().prefetch_pgs == []  # drained by the first call
    finally:
        backend.close()


def test_npu_memcache_readme_config(meta_url, monkeypatch):
    """The extra config of SGLang's npu_memcache README (protocol device_sdma, world_size,
    config_store_url, dram_size 1GB), pointed at the test cluster, with the warmup probe on."""
    monkeypatch.setenv("SGLANG_NPU_MEMCACHE_ENABLE_WARMUP", "true")
    extra = {
        "meta_service_url": meta_url,
        "config_store_url": "tcp://127.0.0.1:6000",
        "log_level": "info",
        "world_size": 256,
        "protocol": "device_sdma",
        "dram_size": "1GB",
    }
    backend, pool = make_backend(meta_url, "mla", "page_first_kv_split", extra=extra)
    try:
        assert backend.store.get_local_service_id() >= 0
        round_trip(backend, pool)
    finally:
        backend.close()


def test_npu_memcache_dram_size_as_int(meta_url):
    """The README gives dram_size as "string / integer": an int (bytes) works too."""
    extra = {"meta_service_url": meta_url, "dram_size": 64 << 20}
    backend, pool = make_backend(meta_url, "mha", "page_first", extra=extra)
    try:
        round_trip(backend, pool, n=2)
    finally:
        backend.close()


def test_npu_memcache_pure_client_and_flat_calls(meta_url):
    """init_bm false (a pure client: the pages live in the providers) and the
    backend's non-v1 calls (set / get / exists / batch_set / batch_get on raw
    addresses) on the same pool."""
    extra = {"meta_service_url": meta_url, "init_bm": False, "log_level": "warn"}
    backend, pool = make_backend(meta_url, "mha", "page_head", extra=extra)
    try:
        round_trip(backend, pool)
        idx = pool.alloc(2 * pool.page_size)
        ptrs, sizes = pool.get_page_buffer_meta(idx)
        key = sp.page_keys(1)[0]
        assert backend.set(key, target_location=ptrs[0], target_sizes=sizes[0])
        assert backend.exists(key)
        assert backend.get(key, target_location=ptrs[2], target_sizes=sizes[2])
        assert sp.page_bytes(pool, int(idx[0]))[: sizes[0]] == sp.page_bytes(pool, int(idx[pool.page_size]))[: sizes[0]]
        keys = sp.page_keys(2)
        assert backend.batch_set(keys, target_locations=[ptrs[0], ptrs[1]], target_sizes=sizes[:2])
        # batch_get counts whole pages (k and v objects): 2 objects = 1 page
        assert backend.batch_get(keys, [ptrs[2], ptrs[3]], sizes[2:4]) == 1
    finally:
        backend.close()


def test_npu_memcache_clear(meta_url):
    backend, pool = make_backend(meta_url, "mla", "page_first")
    try:
        keys = round_trip(backend, pool, n=2)
        backend.clear()  # remove_all: the whole cluster
        assert backend.batch_exists(keys) == 0
    finally:
        backend.close()
    assert backend.store is None  # close() released it


def test_memcache_hybrid_is_this_package():
    import memcache_rs

    assert memcache_hybrid.DistributedObjectStore is memcache_rs.DistributedObjectStore
