#!/usr/bin/env python3
"""SGLang HiCache's backend loop over MemCache and over Mooncake, one run.

Both backends are built the way SGLang builds them (`StorageBackendFactory.create_backend`,
then `register_mem_pool_host`) on SGLang's own CPU host KV pool (`MHATokenToKVPoolHost`,
layout page_first, built from SGLang's `MHATokenToKVPool` allocated on the CPU):

  memcache  `--hicache-storage-backend dynamic` with
            memcache_rs.integrations.sglang.MemCacheStore (interface_v1)
  mooncake  `--hicache-storage-backend mooncake`: SGLang's own
            sglang.srt.mem_cache.storage.mooncake_store.MooncakeStore over the real
            Mooncake client (mooncake.store from mooncake-transfer-engine), TCP protocol

The loops are what SGLang's HiCacheController does per batch of STORAGE_BATCH_SIZE (128)
pages:

  get   batch_exists(keys) (prefetch hit query), then batch_get_v1(keys, host_indices)
        (zero-copy load into the host pool); the same 128 stored pages every iteration
  set   batch_set_v1(keys, host_indices) (backup) of 128 fresh pages; the pages are
        removed (clear(), untimed) after each iteration so every iteration writes

Beside them, the hardware baseline: the same bytes copied in this process (glibc
memmove through ctypes, from the set's host pages to the get's), one call per object
as the stores copy them by one thread and by one thread per CPU, and one call per
contiguous half (K, V) by one thread; it runs before each system and at the end, and
its rows are the medians over all those iterations.

Bytes are verified once before timing (a set, then a get into other host pages, compared
byte for byte) and once after the get loop.

Layouts (as in bench_vs_mooncake.py):
  local   this process holds the memory: MemCache init_bm=true with its own segment
          (which MemCache prefers for a writer's objects), Mooncake global_segment_size > 0
          with no other segment mounted
  remote  this process contributes nothing: MemCache init_bm=false (the `mmc local`
          daemons hold the memory), Mooncake global_segment_size 0 (a provider process,
          bench_vs_mooncake.py --mooncake-provider, holds it)

scripts/bench-sglang.sh starts both clusters in a private network namespace, runs this
for both layouts and stops every process by PID.
"""

import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

MiB = 1 << 20


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[min(max(math.ceil(p / 100 * len(s)), 1), len(s)) - 1]


def summary(lat, pages, nbytes):
    med = statistics.median(lat)
    return {
        "iters": len(lat),
        "median_ms": med * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "min_ms": min(lat) * 1e3,
        "max_ms": max(lat) * 1e3,
        "pages_per_s": pages / med,
        "gb_per_s": nbytes / med / 1e9,
        "all_ms": [round(x * 1e3, 3) for x in lat],
    }


# ---- SGLang objects -----------------------------------------------------------------


def host_pool(args):
    import torch
    from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool
    from sglang.srt.mem_cache.pool_host.mha import MHATokenToKVPoolHost

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    p = args.page_size
    # SGLang's device pool, on the CPU (small: only its geometry is used by the host pool).
    dev = MHATokenToKVPool(2 * p, p, dtype, args.heads, args.head_dim, args.layers, "cpu", False)
    info = dev.get_device_pool_infos()[0].buffer_info
    host = MHATokenToKVPoolHost(
        info,
        2.0,
        0,
        p,
        "page_first",
        pin_memory=False,
        device="cpu",
        device_capacity_tokens=dev.size,
        start_layer=dev.start_layer,
        end_layer=dev.end_layer,
        host_token_capacity=(2 * args.pages + 1) * p,
    )
    src = host.alloc(args.pages * p)  # pages written by set, the source of the baseline copy
    dst = host.alloc(args.pages * p)  # pages get loads into
    assert src is not None and dst is not None
    g = torch.Generator().manual_seed(17)
    flat = host.kv_buffer.view(-1).view(torch.uint8)
    flat.copy_(torch.randint(0, 256, (flat.numel(),), dtype=torch.uint8, generator=g))
    return host, src, dst


def page_range(host, idx):
    """The kv_buffer slice of a contiguous run of page_first host indices ([2, tokens, ...])."""
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    assert hi - lo == len(idx), "host indices are not one contiguous run"
    return host.kv_buffer[:, lo:hi]


def same_bytes(a, b):
    """Byte equality (random bytes include NaN patterns, so not torch.equal on the floats)."""
    import torch

    return torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def storage_config(args, extra):
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig

    return HiCacheStorageConfig(
        tp_rank=0,
        tp_size=1,
        pp_rank=0,
        pp_size=1,
        attn_cp_rank=0,
        attn_cp_size=1,
        is_mla_model=False,
        enable_storage_metrics=False,
        is_page_first_layout=True,
        model_name=args.model_name,
        extra_config=dict(extra),
    )


def make_backend(system, args, host):
    from sglang.srt.mem_cache.storage.backend_factory import StorageBackendFactory

    seg = args.segment if args.layout == "local" else 0
    if system == "memcache":
        extra = {
            "backend_name": "memcache",
            "module_path": "memcache_rs.integrations.sglang",
            "class_name": "MemCacheStore",
            "interface_v1": 1,
            "meta_service_url": f"tcp://{args.mmc_meta}",
            "dram_size": seg if seg else MiB,  # unused when init_bm is false
            "init_bm": args.layout == "local",
            "log_level": "warn",
        }
        name = "dynamic"
    else:
        extra = {
            "master_server_address": args.mooncake_master,
            "metadata_server": args.mooncake_metadata,
            "global_segment_size": seg,
            "protocol": "tcp",
            "device_name": "",
            "local_hostname": args.host,
        }
        name = "mooncake"
    backend = StorageBackendFactory.create_backend(name, storage_config(args, extra), host)
    backend.register_mem_pool_host(host)  # as HiCacheController.attach_storage_backend does
    return backend


def close_backend(system, backend):
    if system == "memcache":
        backend.close()
    else:
        backend.close()  # SGLang's MooncakeStore.close is a no-op; close the client itself
        backend.store.close()


def new_keys(n):
    # SGLang's page hashes are 64 hex characters (sha256)
    return [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(n)]


# ---- loops ----------------------------------------------------------------------------


def memcpy_loop(host, src, dst, iters, warmup, threads=1, whole=False):
    """glibc memmove (ctypes, the GIL released) of the batch's bytes from the set's host
    pages to the get's: one copy per object as the stores copy them (page_first: each
    page's K and V), or with `whole` one copy per contiguous run (page_first keeps a run
    of pages contiguous: the K half and the V half); with threads > 1 the copies are
    split among that many threads."""
    if whole:
        s, d = page_range(host, src), page_range(host, dst)
        assert all(s[i].is_contiguous() and d[i].is_contiguous() for i in range(2))
        jobs = [(d[i].data_ptr(), s[i].data_ptr(), s[i].numel() * s.element_size()) for i in range(2)]
    else:
        s_ptrs, sizes = host.get_page_buffer_meta(src)
        d_ptrs, _ = host.get_page_buffer_meta(dst)
        jobs = list(zip(d_ptrs, s_ptrs, sizes))

    def copy(part):
        for dp, sp, n in part:
            ctypes.memmove(dp, sp, n)

    parts = [jobs[i::threads] for i in range(threads)]
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    lat = []
    try:
        for i in range(warmup + iters):
            t = time.perf_counter()
            if pool:
                list(pool.map(copy, parts))
            else:
                copy(jobs)
            e = time.perf_counter() - t
            if i >= warmup:
                lat.append(e)
    finally:
        if pool:
            pool.shutdown()
    return lat


def verify(backend, host, src, dst, pages):
    keys = new_keys(pages)
    page_range(host, dst).zero_()
    assert backend.batch_exists(keys) == 0, "fresh keys reported present"
    ok = backend.batch_set_v1(keys, src)
    assert all(ok), f"batch_set_v1 failed for {ok.count(False)} pages"
    assert backend.batch_exists(keys) == pages, "batch_exists after set"
    ok = backend.batch_get_v1(keys, dst)
    assert all(ok), f"batch_get_v1 failed for {ok.count(False)} pages"
    assert same_bytes(page_range(host, src), page_range(host, dst)), "get returned other bytes than set wrote"
    return keys


def run_system(system, args, host, src, dst, page_bytes):
    nbytes = args.pages * page_bytes
    t = time.perf_counter()
    backend = make_backend(system, args, host)
    log(f"== {system} ({args.layout}): backend {type(backend).__name__} ready in {time.perf_counter() - t:.1f} s")
    try:
        # set loop: fresh pages every iteration, removed (untimed) after each
        verify(backend, host, src, dst, args.pages)
        backend.clear()
        set_lat = []
        for i in range(args.warmup + args.set_iters):
            keys = new_keys(args.pages)
            t = time.perf_counter()
            ok = backend.batch_set_v1(keys, src)
            e = time.perf_counter() - t
            assert all(ok), f"{system} batch_set_v1 iteration {i}: {ok.count(False)} pages failed"
            backend.clear()
            if i >= args.warmup:
                set_lat.append(e)

        # get loop: the pages stored once (bytes verified), loaded again and again
        keys = verify(backend, host, src, dst, args.pages)
        ex_lat, get_lat, it_lat = [], [], []
        for i in range(args.warmup + args.get_iters):
            t0 = time.perf_counter()
            hit = backend.batch_exists(keys)
            t1 = time.perf_counter()
            ok = backend.batch_get_v1(keys[:hit], dst[: hit * args.page_size])
            t2 = time.perf_counter()
            assert hit == args.pages and all(ok), f"{system} get iteration {i}: hit {hit}, failed {ok.count(False)}"
            if i >= args.warmup:
                ex_lat.append(t1 - t0)
                get_lat.append(t2 - t1)
                it_lat.append(t2 - t0)
        assert same_bytes(page_range(host, src), page_range(host, dst)), "bytes differ after the get loop"
        backend.clear()
    finally:
        close_backend(system, backend)
    return {
        "set": summary(set_lat, args.pages, nbytes),
        "get_loop": summary(it_lat, args.pages, nbytes),
        "batch_exists": summary(ex_lat, args.pages, 0),
        "batch_get_v1": summary(get_lat, args.pages, nbytes),
    }


# ---- output -----------------------------------------------------------------------------

def name(sysname, op):
    if sysname == "memcpy":
        return f"memcpy, {op}"
    return {"memcache": "MemCache", "mooncake": "Mooncake"}[sysname]


def table(res, args, page_bytes):
    mk = res["systems"].get("mooncake")
    batch = args.pages * page_bytes
    lines = [
        f"| layout `{args.layout}`: {args.pages} pages x {page_bytes / MiB:g} MiB ({batch / MiB:g} MiB) | system "
        "| median ms | p99 ms | pages/s | GB/s | MemCache / Mooncake |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups = [
        ("baseline: the same bytes copied in-process", [("memcpy", th) for th in res["memcpy"]]),
        ("get loop: `batch_exists` + `batch_get_v1`", [("memcache", "get_loop"), ("mooncake", "get_loop")]),
        ("of which `batch_exists`", [("memcache", "batch_exists"), ("mooncake", "batch_exists")]),
        ("of which `batch_get_v1`", [("memcache", "batch_get_v1"), ("mooncake", "batch_get_v1")]),
        ("set: `batch_set_v1` of fresh pages", [("memcache", "set"), ("mooncake", "set")]),
    ]
    for label, members in groups:
        first = True
        for sysname, op in members:
            r = res["memcpy"][op] if sysname == "memcpy" else res["systems"].get(sysname, {}).get(op)
            if r is None:
                continue
            ratio = ""
            if sysname == "memcache" and mk:
                ratio = f"{mk[op]['median_ms'] / r['median_ms']:.2f}x"
            gbs = f"{r['gb_per_s']:.2f}" if r["gb_per_s"] else "-"
            lines.append(
                f"| {label if first else ''} | {name(sysname, op)} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} "
                f"| {r['pages_per_s']:,.0f} | {gbs} | {ratio} |"
            )
            first = False
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="memcache,mooncake")
    ap.add_argument("--layout", choices=["local", "remote"], default="remote")
    ap.add_argument("--mmc-meta", default="127.0.0.1:5000", help="MemCache MetaService host:port")
    ap.add_argument("--mooncake-master", default="127.0.0.1:50051")
    ap.add_argument("--mooncake-metadata", default="http://127.0.0.1:8080/metadata")
    ap.add_argument("--host", default="127.0.0.1", help="local_hostname given to Mooncake")
    ap.add_argument("--segment", type=int, default=1 << 30, help="bytes this process contributes (layout local)")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8, help="KV heads")
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--page-size", type=int, default=64, help="tokens per page")
    ap.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    ap.add_argument("--pages", type=int, default=128, help="pages per batch (SGLang's STORAGE_BATCH_SIZE)")
    ap.add_argument("--get-iters", type=int, default=30)
    ap.add_argument("--set-iters", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2, help="iterations run first and not counted")
    ap.add_argument("--model-name", default="bench/llama-shape")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    for v in ("MOONCAKE_LOCAL_HOSTNAME", "LOCAL_HOSTNAME", "SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", "MMC_LOCAL_CONFIG_PATH"):
        os.environ.pop(v, None)

    t = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from sglang.srt.mem_cache.hicache_storage import STORAGE_BATCH_SIZE

    log(f"== imports {time.perf_counter() - t:.1f} s; SGLang STORAGE_BATCH_SIZE = {STORAGE_BATCH_SIZE}")
    host, src, dst = host_pool(args)
    ptrs, sizes = host.get_page_buffer_meta(src[: args.page_size])
    page_bytes = sum(sizes)
    log(
        f"== host pool {tuple(host.kv_buffer.shape)} {host.kv_buffer.dtype}, {host.kv_buffer.numel() * host.kv_buffer.element_size() / MiB:.0f} MiB; "
        f"page = {len(sizes)} objects x {sizes[0]} B"
    )
    nbytes = args.pages * page_bytes
    res = {
        "layout": args.layout,
        "shape": {
            "layers": args.layers,
            "kv_heads": args.heads,
            "head_dim": args.head_dim,
            "page_tokens": args.page_size,
            "dtype": args.dtype,
            "page_bytes": page_bytes,
            "pages_per_batch": args.pages,
            "host_layout": "page_first",
        },
        "loadavg_start": os.getloadavg(),
        "systems": {},
        "memcpy_runs": [],
    }
    ncpu = os.cpu_count() or 1

    obj_mib = page_bytes // len(sizes) / MiB
    variants = {f"1 thread, {2 * args.pages} x {obj_mib:g} MiB": (1, False)}
    if ncpu > 1:
        variants[f"{ncpu} threads, {2 * args.pages} x {obj_mib:g} MiB"] = (ncpu, False)
    variants[f"1 thread, 2 x {args.pages * page_bytes / 2 / MiB:g} MiB"] = (1, True)

    def baseline():
        for v, (th, whole) in variants.items():
            lat = memcpy_loop(host, src, dst, args.get_iters, args.warmup, th, whole)
            res["memcpy_runs"].append(dict(summary(lat, args.pages, nbytes), variant=v))

    for system in args.systems.split(","):
        baseline()
        res["systems"][system] = run_system(system, args, host, src, dst, page_bytes)
        r = res["systems"][system]
        log(
            f"   {system}: get loop {r['get_loop']['median_ms']:.2f} ms ({r['get_loop']['gb_per_s']:.2f} GB/s), "
            f"set {r['set']['median_ms']:.2f} ms ({r['set']['gb_per_s']:.2f} GB/s); memcpy before it "
            f"{res['memcpy_runs'][-len(variants)]['median_ms']:.2f} ms ({res['memcpy_runs'][-len(variants)]['variant']})"
        )
    baseline()
    # the baseline rows: all memcpy iterations of this run (before each system and at the end)
    res["memcpy"] = {}
    for v in variants:
        all_lat = [x / 1e3 for r in res["memcpy_runs"] if r["variant"] == v for x in r["all_ms"]]
        res["memcpy"][v] = summary(all_lat, args.pages, nbytes)
    res["loadavg_end"] = os.getloadavg()
    print(table(res, args, page_bytes))
    print()
    print(
        f"load average at start {', '.join(f'{x:.2f}' for x in res['loadavg_start'])}; "
        f"at end {', '.join(f'{x:.2f}' for x in res['loadavg_end'])}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
