"""memcache_rs.integrations.sglang.MemCacheStore, SGLang's native HiCache backend here.

Created through SGLang's `StorageBackendFactory` as `--hicache-storage-backend
dynamic` does (extra config with backend_name / module_path / class_name /
interface_v1), then `register_mem_pool_host` with SGLang's own CPU host KV
pools (sglang_pools.py), against a real cluster; bytes are compared through
SGLang's page accessors.

Layouts: every one SGLang's host pools offer whose pages it can describe for
zero-copy storage (`get_page_buffer_meta`): MHA layer_first, page_first,
page_first_direct, page_head; MLA layer_first, page_first,
page_first_direct, page_first_kv_split (MLA has no page_head). page_unified
is refused with a clear error: SGLang gives no page buffer meta for it.
Also: the flat-page path SGLang takes without interface_v1, objects shared
by layouts of the same byte order, heads split across ranks
(tp_lcm_size), configuration errors, and SGLang's own Mooncake backend unit
tests (mooncake_store/test_mooncake_store.py, shipped in the wheel, CPU-only)
run against this class.
"""

import importlib

import pytest

from conftest import require

require("sglang.srt.mem_cache.storage.backend_factory")
import sglang_pools as sp  # noqa: E402
import torch  # noqa: E402
from memcache_rs.integrations.sglang import MemCacheStore  # noqa: E402
from sglang.srt.mem_cache.storage.backend_factory import StorageBackendFactory  # noqa: E402
from sglang.srt.observability.metrics_collector import StorageMetrics  # noqa: E402

DYNAMIC = {
    "backend_name": "memcache",
    "module_path": "memcache_rs.integrations.sglang",
    "class_name": "MemCacheStore",
    "interface_v1": 1,
}

CASES = [
    ("mha", "layer_first"),
    ("mha", "page_first"),
    ("mha", "page_first_direct"),
    ("mha", "page_head"),
    ("mla", "layer_first"),
    ("mla", "page_first"),
    ("mla", "page_first_direct"),
    ("mla", "page_first_kv_split"),
]

N_PAGES = 6


def extra_for(meta_url, **more):
    return {**DYNAMIC, "meta_service_url": meta_url, "dram_size": "64MB", "log_level": "warn", **more}


def make_backend(meta_url, model, layout, pool=None, extra=None, **cfg):
    pool = pool if pool is not None else sp.host_pool(model, layout)
    config = sp.storage_config(model == "mla", layout, extra if extra is not None else extra_for(meta_url), **cfg)
    backend = StorageBackendFactory.create_backend("dynamic", config, pool)
    backend.register_mem_pool_host(pool)  # as HiCacheController.attach_storage_backend does
    return backend, pool


@pytest.mark.parametrize("model,layout", CASES)
def test_round_trip(meta_url, model, layout):
    backend, pool = make_backend(meta_url, model, layout)
    try:
        assert isinstance(backend, MemCacheStore)
        n = N_PAGES
        keys = sp.page_keys(n)
        src = pool.alloc(n * pool.page_size)
        dst = pool.alloc(n * pool.page_size)
        assert backend.batch_exists(keys) == 0
        assert backend.batch_set_v1(keys, src) == [True] * n
        assert backend.batch_exists(keys) == n
        want = sp.pages_bytes(pool, src)
        assert sp.pages_bytes(pool, dst) != want
        assert backend.batch_get_v1(keys, dst) == [True] * n
        assert sp.pages_bytes(pool, dst) == want

        # batch_exists counts the leading run: a missing page in the middle stops it
        gap = sp.page_keys(1)
        assert backend.batch_exists(keys[:3] + gap + keys[3:]) == 3
        assert backend.batch_exists(gap + keys) == 0
        # a get of a batch with a missing page fails that page only
        dst2 = pool.alloc(3 * pool.page_size)
        assert backend.batch_get_v1([keys[0], gap[0], keys[1]], dst2) == [True, False, True]
        # setting stored pages again succeeds (and leaves them as they are)
        assert backend.batch_set_v1(keys[:2], dst2[: 2 * pool.page_size]) == [True, True]
        assert backend.batch_get_v1(keys[:2], dst2[: 2 * pool.page_size]) == [True, True]
        assert sp.pages_bytes(pool, dst2[: 2 * pool.page_size]) == want[:2]
        assert backend.exists(keys[0]) and not backend.exists(gap[0])

        stats = backend.get_stats()
        assert isinstance(stats, StorageMetrics)
        assert stats.backup_pgs == [n, 2] and stats.prefetch_pgs == [n, 3, 2]
        assert len(stats.backup_bandwidth) == 2 and all(b > 0 for b in stats.backup_bandwidth)
        assert backend.get_stats().backup_pgs == []
    finally:
        backend.close()


@pytest.mark.parametrize("model,layout", [("mha", "page_first"), ("mha", "layer_first"), ("mla", "page_first_direct")])
def test_flat_pages_without_interface_v1(meta_url, model, layout):
    """Without interface_v1 SGLang's controller passes flat pages (get_data_page) to
    batch_set / batch_get; they are the same objects the zero-copy calls use."""
    extra = extra_for(meta_url)
    extra.pop("interface_v1")
    backend, pool = make_backend(meta_url, model, layout, extra=extra)
    try:
        n = 3
        keys = sp.page_keys(n)
        src = pool.alloc(n * pool.page_size)
        pages = [pool.get_data_page(int(i), flat=True).contiguous() for i in src[:: pool.page_size]]
        assert backend.batch_set(keys, pages)
        assert backend.batch_exists(keys) == n
        # read back as flat pages
        out = [pool.get_dummy_flat_data_page() for _ in range(n + 1)]
        got = backend.batch_get(keys + sp.page_keys(1), out)
        assert got[-1] is None and all(g is out[i] for i, g in enumerate(got[:-1]))
        assert all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for a, b in zip(out, pages))
        # and zero-copy into the pool
        dst = pool.alloc(n * pool.page_size)
        assert backend.batch_get_v1(keys, dst) == [True] * n
        assert sp.pages_bytes(pool, dst) == sp.pages_bytes(pool, src)
        # single-page forms
        one = sp.page_keys(1)[0]
        assert backend.set(one, pages[0]) and backend.exists(one)
        assert backend.get(one, out[n]) is out[n] and torch.equal(out[n].view(torch.uint8), pages[0].view(torch.uint8))
    finally:
        backend.close()


def test_layouts_of_one_byte_order_share_objects(meta_url):
    """layer_first and page_first_direct store a page in the same (layer-major) order, so
    pages written through one are read through the other; page_first (token-major) does
    not see them."""
    lf_backend, lf = make_backend(meta_url, "mha", "layer_first")
    model_name = lf_backend.storage_config.model_name
    pfd_backend, pfd = make_backend(meta_url, "mha", "page_first_direct", model_name=model_name)
    pf_backend, pf = make_backend(meta_url, "mha", "page_first", model_name=model_name)
    try:
        keys = sp.page_keys(4)
        src = lf.alloc(4 * lf.page_size)
        assert lf_backend.batch_set_v1(keys, src) == [True] * 4
        assert pfd_backend.batch_exists(keys) == 4
        dst = pfd.alloc(4 * pfd.page_size)
        assert pfd_backend.batch_get_v1(keys, dst) == [True] * 4
        assert sp.pages_bytes(pfd, dst) == sp.pages_bytes(lf, src)
        assert pf_backend.batch_exists(keys) == 0
    finally:
        for b in (lf_backend, pfd_backend, pf_backend):
            b.close()


def test_split_heads_across_ranks(meta_url):
    """tp_lcm_size > tp_size with page_head: one k/v object pair per target rank,
    so that a deployment with more TP ranks can read its share."""
    backend, pool = make_backend(
        meta_url, "mha", "page_head", tp_size=1, tp_lcm_size=2, should_split_heads=True
    )
    try:
        keys = sp.page_keys(3)
        src = pool.alloc(3 * pool.page_size)
        dst = pool.alloc(3 * pool.page_size)
        assert backend.batch_set_v1(keys, src) == [True] * 3
        assert backend.batch_exists(keys) == 3
        assert backend.batch_get_v1(keys, dst) == [True] * 3
        assert sp.pages_bytes(pool, dst) == sp.pages_bytes(pool, src)
        names = backend._object_keys(keys[:1])
        assert [n.rsplit("_", 3)[1:] for n in names] == [["0", "hm", "k"], ["0", "hm", "v"], ["1", "hm", "k"], ["1", "hm", "v"]]
    finally:
        backend.close()


def test_tp_ranks_and_models_are_separate(meta_url):
    """MHA objects carry the TP rank, MLA ones do not; the model name prefixes both."""
    a, pool_a = make_backend(meta_url, "mha", "page_first", model_name="m/one", tp_rank=0, tp_size=2)
    b, _ = make_backend(meta_url, "mha", "page_first", model_name="m/one", tp_rank=1, tp_size=2)
    c, _ = make_backend(meta_url, "mha", "page_first", model_name="m/two", tp_rank=0, tp_size=2)
    m0, pool_m = make_backend(meta_url, "mla", "page_first", model_name="m/one", tp_rank=0, tp_size=2)
    m1, _ = make_backend(meta_url, "mla", "page_first", model_name="m/one", tp_rank=1, tp_size=2)
    try:
        keys = sp.page_keys(2)
        assert a.batch_set_v1(keys, pool_a.alloc(2 * pool_a.page_size)) == [True, True]
        assert a.batch_exists(keys) == 2 and b.batch_exists(keys) == 0 and c.batch_exists(keys) == 0
        assert m0.batch_set_v1(keys, pool_m.alloc(2 * pool_m.page_size)) == [True, True]
        assert m1.batch_exists(keys) == 2
    finally:
        for x in (a, b, c, m0, m1):
            x.close()


def test_config_file_from_env(mmc_cluster, monkeypatch, tmp_path):
    """Without connection keys the LocalService config comes from $MMC_LOCAL_CONFIG_PATH
    (here the original's ock.mmc format); extra_backend_tag and replica_num apply."""
    conf = tmp_path / "mmc-local.conf"
    conf.write_text(
        f"ock.mmc.meta_service_url = tcp://{mmc_cluster.meta_addr}\n"
        "ock.mmc.local_service.dram.size = 32MB\nock.mmc.log_level = warn\n"
    )
    monkeypatch.setenv("MMC_LOCAL_CONFIG_PATH", str(conf))
    backend, pool = make_backend(None, "mla", "page_first", extra={**DYNAMIC, "extra_backend_tag": "tenant-a", "replica_num": 2})
    try:
        keys = sp.page_keys(2)
        assert backend.batch_set_v1(keys, pool.alloc(2 * pool.page_size)) == [True, True]
        name = backend._object_keys(keys[:1])[0]
        assert name.startswith("tenant-a_test-model-")
        assert backend.store.get_key_info(name).replica_num() == 2
    finally:
        backend.close()


def test_bad_configuration_is_reported(meta_url):
    with pytest.raises(ValueError, match="unknown extra-config key 'meta_service_ulr'"):
        make_backend(meta_url, "mha", "page_first", extra={**DYNAMIC, "meta_service_ulr": meta_url})
    with pytest.raises(ValueError, match="replica_num"):
        make_backend(meta_url, "mha", "page_first", extra=extra_for(meta_url, replica_num=0))
    with pytest.raises(ValueError, match="dram_size"):
        make_backend(meta_url, "mha", "page_first", extra=extra_for(meta_url, dram_size="lots"))
    with pytest.raises(ValueError, match="page_unified"):
        make_backend(meta_url, "mha", "page_unified")
    # a MetaService nobody runs: init fails with a clear message
    with pytest.raises(RuntimeError, match="joining the MemCache cluster"):
        make_backend(
            meta_url,
            "mha",
            "page_first",
            extra={**DYNAMIC, "meta_addr": "127.0.0.1:1", "client_retry_milliseconds": 0, "dram_size": 0},
        )


def test_keys_and_indices_must_agree(meta_url):
    backend, pool = make_backend(meta_url, "mha", "page_first")
    try:
        with pytest.raises(ValueError, match="host indices"):
            backend.batch_set_v1(sp.page_keys(2), pool.alloc(pool.page_size))
    finally:
        backend.close()


def test_clear_removes_pages(meta_url):
    backend, pool = make_backend(meta_url, "mla", "layer_first")
    try:
        keys = sp.page_keys(2)
        assert backend.batch_set_v1(keys, pool.alloc(2 * pool.page_size)) == [True, True]
        backend.clear()
        assert backend.batch_exists(keys) == 0
    finally:
        backend.close()


def test_sglang_mooncake_unit_tests_against_this_class(mmc_cluster, monkeypatch, tmp_path):
    """SGLang ships unit tests for its Mooncake backend (mooncake_store/test_mooncake_store.py:
    a single set/get/exists, and batch_set_v1 / batch_exists / batch_get_v1 for MHA and MLA
    at several TP ranks, on its own mock host pool). They run here unchanged against
    MemCacheStore, which takes the place of MooncakeStore in that module; the connection
    comes from $MMC_LOCAL_CONFIG_PATH since those tests pass no extra config."""
    conf = tmp_path / "local.toml"
    conf.write_text(f'[local]\nmeta_addr = "{mmc_cluster.meta_addr}"\ndram_size = "64MB"\nlog_level = "warn"\n')
    monkeypatch.setenv("MMC_LOCAL_CONFIG_PATH", str(conf))
    mod = importlib.import_module("sglang.srt.mem_cache.storage.mooncake_store.test_mooncake_store")
    monkeypatch.setattr(mod, "MooncakeStore", MemCacheStore)
    mod.test_single_operation()
    for mla, rank, size in [(False, 0, 1), (True, 0, 1), (False, 1, 4), (True, 3, 8)]:
        mod.test_batch_operation(mod.make_hicache_storage_config(is_mla_model=mla, tp_rank=rank, tp_size=size))
