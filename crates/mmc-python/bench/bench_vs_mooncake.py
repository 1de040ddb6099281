#!/usr/bin/env python3
"""memcache_rs vs Mooncake Store's Python client: the same workload, one run.

Workloads (every put writes fresh keys; objects are immutable in both stores):
  small   32 x 4 KiB batches: batch_put_from / batch_get_into / batch_is_exist (keys/s),
          and the bytes API put_batch / get_batch
  1 MiB   put_from / get_into, one key per call (GB/s)
  8 MiB   put_from / get_into, one key per call (GB/s)
  block   a 122-buffer layered KV block, 61 x 128 KiB + 61 x 16 KiB (8.75 MiB, the K and V
          pages of one block in 61 layers, none adjacent in memory), with
          batch_put_from_multi_buffers / batch_get_into_multi_buffers, one block per call (GB/s)

Layouts:
  local   the benchmarking client contributes the memory (MemCache: init_bm=True;
          Mooncake: global_segment_size > 0), so replicas land in the caller's process
  remote  the client contributes nothing; the memory is in other processes on the
          same host (MemCache: `mmc local` daemons; Mooncake: a provider process
          started with --mooncake-provider)

scripts/bench-python.sh starts both clusters (in a private network namespace),
runs this for both layouts and stops everything.

--serve turns this into a client process of `mmc-bench` (crates/mmc-bench/src/worker.rs):
it connects to Mooncake (or MemCache with --system memcache) as a pure client, prints a ready
line, then reads one JSON command per line on stdin and answers one JSON result per line on
stdout, running the same loops as `mmc-bench bench-client` (see worker.rs for their semantics).
"""

import argparse
import json
import os
import signal
import statistics
import sys
import time

import numpy as np

KiB, MiB = 1 << 10, 1 << 20


# ---- adapters ----------------------------------------------------------------------


class MemCache:
    name = "memcache_rs"

    def __init__(self, meta, layout, segment):
        import memcache_rs

        self.mc = memcache_rs
        self.s = memcache_rs.DistributedObjectStore()
        cfg = memcache_rs.LocalConfig(meta_addr=meta, dram_size=segment if layout == "local" else 0, log_level="warn")
        assert self.s.setup(cfg) == 0
        rc = self.s.init(0, init_bm=layout == "local")
        if rc != 0:
            raise RuntimeError(f"memcache_rs init failed: {rc}")

    def register(self, arr):
        self.s.register_buffer(arr.ctypes.data, arr.nbytes)

    def unregister(self, arr):
        self.s.unregister_buffer(arr.ctypes.data, arr.nbytes)

    @staticmethod
    def get_ok(r, size):
        return r == 0

    def __getattr__(self, name):
        return getattr(self.s, name)

    def clear(self):
        self.s.remove_all()


class Mooncake:
    name = "mooncake"

    def __init__(self, master, metadata, layout, segment, host):
        from mooncake.store import MooncakeDistributedStore

        self.s = MooncakeDistributedStore()
        seg = segment if layout == "local" else 0
        rc = self.s.setup(host, metadata, seg, 512 * MiB, "tcp", "", master)
        if rc != 0:
            raise RuntimeError(f"mooncake setup failed: {rc}")

    def register(self, arr):
        rc = self.s.register_buffer(arr.ctypes.data, arr.nbytes)
        if rc != 0:
            raise RuntimeError(f"mooncake register_buffer failed: {rc}")

    def unregister(self, arr):
        self.s.unregister_buffer(arr.ctypes.data)

    @staticmethod
    def get_ok(r, size):
        return r >= 0  # bytes read

    def __getattr__(self, name):
        return getattr(self.s, name)

    def clear(self):
        try:
            self.s.remove_all(True)
        except TypeError:
            self.s.remove_all()


# ---- workloads ----------------------------------------------------------------------


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def bench_small(st, src, dst, rounds, tag):
    n, size = 32, 4 * KiB
    batches = [[f"{tag}s{r}_{i}" for i in range(n)] for r in range(rounds)]
    ptrs = [src.ctypes.data + i * size for i in range(n)]
    dptrs = [dst.ctypes.data + i * size for i in range(n)]
    sizes = [size] * n

    def put():
        for keys in batches:
            r = st.batch_put_from(keys, ptrs, sizes)
            check(all(x == 0 for x in r), f"batch_put_from {r[:4]}")

    def get():
        for keys in batches:
            r = st.batch_get_into(keys, dptrs, sizes)
            check(all(st.get_ok(x, size) for x in r), f"batch_get_into {r[:4]}")

    def exist():
        for keys in batches:
            r = st.batch_is_exist(keys)
            check(all(x == 1 for x in r), f"batch_is_exist {r[:4]}")

    vals = [src[i * size : (i + 1) * size].tobytes() for i in range(n)]
    bkeys = [[k + "b" for k in keys] for keys in batches]

    def put_bytes():
        for keys in bkeys:
            check(st.put_batch(keys, vals) == 0, "put_batch")

    def get_bytes():
        for keys in bkeys:
            got = st.get_batch(keys)
            check(len(got[0]) == size, "get_batch")

    out = {}
    out["put"] = n * rounds / timed(put)
    out["get"] = n * rounds / timed(get)
    check(np.array_equal(src[: n * size], dst[: n * size]), "small: data differs")
    out["exist"] = n * rounds / timed(exist)
    out["put_batch"] = n * rounds / timed(put_bytes)
    out["get_batch"] = n * rounds / timed(get_bytes)
    return out


def bench_large(st, src, dst, size, count, tag):
    keys = [f"{tag}L{size}_{i}" for i in range(count)]

    def put():
        for k in keys:
            r = st.put_from(k, src.ctypes.data, size)
            check(r == 0, f"put_from {r}")

    def get():
        for k in keys:
            r = st.get_into(k, dst.ctypes.data, size)
            check(st.get_ok(r, size), f"get_into {r}")

    out = {"put": size * count / timed(put) / 1e9, "get": size * count / timed(get) / 1e9}
    check(np.array_equal(src[:size], dst[:size]), f"{size}: data differs")
    return out


def bench_block(st, kbuf, vbuf, kout, vout, count, tag):
    """One KV block of a paged cache: its K page (128 KiB) and V page (16 KiB)
    in each of 61 layers. Like an engine's KV cache, each layer's pages sit
    in that layer's region, strided by the blocks per layer (here 4), so no
    two buffers of a block are adjacent in memory."""
    layers, blocks = 61, 4
    kpage, vpage = 128 * KiB, 16 * KiB

    def addrs(kb, vb, b):
        return [kb.ctypes.data + (l * blocks + b) * kpage for l in range(layers)] + [
            vb.ctypes.data + (l * blocks + b) * vpage for l in range(layers)
        ]

    sizes = [[kpage] * layers + [vpage] * layers]
    total = layers * (kpage + vpage)
    keys = [f"{tag}B{i}" for i in range(count)]

    def put():
        for i, k in enumerate(keys):
            r = st.batch_put_from_multi_buffers([k], [addrs(kbuf, vbuf, i % blocks)], sizes)
            check(r == [0], f"batch_put_from_multi_buffers {r}")

    def get():
        for i, k in enumerate(keys):
            r = st.batch_get_into_multi_buffers([k], [addrs(kout, vout, i % blocks)], sizes)
            check(all(st.get_ok(x, total) for x in r), f"batch_get_into_multi_buffers {r}")

    out = {"put": total * count / timed(put) / 1e9, "get": total * count / timed(get) / 1e9}
    check(np.array_equal(kbuf, kout) and np.array_equal(vbuf, vout), "block: data differs")
    return out


def run_system(st, scale, repeat, run_tag):
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, size=8 * MiB, dtype=np.uint8)
    dst = np.zeros_like(src)
    kbuf = rng.integers(0, 256, size=61 * 4 * 128 * KiB, dtype=np.uint8)  # 61 layers x 4 blocks
    vbuf = rng.integers(0, 256, size=61 * 4 * 16 * KiB, dtype=np.uint8)
    kout, vout = np.zeros_like(kbuf), np.zeros_like(vbuf)
    for a in (src, dst, kbuf, vbuf, kout, vout):
        st.register(a)
    rounds = max(1, int(300 * scale))
    results = {}
    for rep in range(repeat + 1):  # the first pass warms up and is not counted
        tag = f"{run_tag}{rep}_"
        res = {
            "small 32x4KiB": bench_small(st, src, dst, rounds, tag),
            "1 MiB": bench_large(st, src, dst, MiB, max(1, int(200 * scale)), tag),
            "8 MiB": bench_large(st, src, dst, 8 * MiB, max(1, int(48 * scale)), tag),
            "block 122 buffers": bench_block(st, kbuf, vbuf, kout, vout, max(4, int(24 * scale)), tag),
        }
        st.clear()
        if rep == 0:
            continue
        for w, m in res.items():
            for k, v in m.items():
                results.setdefault(w, {}).setdefault(k, []).append(v)
    return {w: {k: statistics.median(v) for k, v in m.items()} for w, m in results.items()}


# ---- output ----------------------------------------------------------------------------

ROWS = [
    ("small 32x4KiB", "put", "keys/s", "batch_put_from"),
    ("small 32x4KiB", "get", "keys/s", "batch_get_into"),
    ("small 32x4KiB", "exist", "keys/s", "batch_is_exist"),
    ("small 32x4KiB", "put_batch", "keys/s", "put_batch (bytes)"),
    ("small 32x4KiB", "get_batch", "keys/s", "get_batch (bytes)"),
    ("1 MiB", "put", "GB/s", "put_from"),
    ("1 MiB", "get", "GB/s", "get_into"),
    ("8 MiB", "put", "GB/s", "put_from"),
    ("8 MiB", "get", "GB/s", "get_into"),
    ("block 122 buffers", "put", "GB/s", "batch_put_from_multi_buffers"),
    ("block 122 buffers", "get", "GB/s", "batch_get_into_multi_buffers"),
]


def fmt(v, unit):
    if v is None:
        return "-"
    return f"{v:,.0f}" if unit == "keys/s" else f"{v:.2f}"


def table(results, layout):
    mm, mk = results.get("memcache_rs"), results.get("mooncake")
    lines = [
        f"| layout `{layout}` | call | unit | memcache_rs | Mooncake | ratio |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for w, m, unit, call in ROWS:
        a = mm[w][m] if mm else None
        b = mk[w][m] if mk else None
        ratio = f"{a / b:.2f}x" if a and b else "-"
        lines.append(f"| {w} {m} | `{call}` | {unit} | {fmt(a, unit)} | {fmt(b, unit)} | {ratio} |")
    return "\n".join(lines)


# ---- `mmc bench` client protocol (--serve) ----------------------------------------------

LAYERS, KPAGE, VPAGE, BLOCKS = 61, 128 * KiB, 16 * KiB, 4
BLOCK_BYTES = LAYERS * (KPAGE + VPAGE)
MIN_OPS = 20


def pattern(n, seed):
    """Byte i is (31 i + seed) mod 256, as in worker.rs (period 256, so tiled)."""
    period = ((np.arange(256, dtype=np.uint32) * 31 + seed) & 0xFF).astype(np.uint8)
    return np.resize(period, n)


class ServeBufs:
    """The src / dst memory of a command, registered with the store; for layered
    values two paged KV caches (K pages of every layer, then V pages) of BLOCKS
    blocks, laid out exactly as in worker.rs."""

    def __init__(self, st, layers, size, batch=1):
        self.layers, self.size = layers, size
        n = BLOCK_BYTES * BLOCKS if layers else size * max(1, batch)
        self.src = pattern(n, 5)
        self.dst = pattern(n, 6)
        self.st = st
        st.register(self.src)
        st.register(self.dst)

    def close(self):
        for a in (self.src, self.dst):
            self.st.unregister(a)

    @staticmethod
    def layout(b):
        kregion = LAYERS * BLOCKS * KPAGE
        return [((l * BLOCKS + b) * KPAGE, KPAGE) for l in range(LAYERS)] + [
            (kregion + (l * BLOCKS + b) * VPAGE, VPAGE) for l in range(LAYERS)
        ]

    def value_len(self):
        return BLOCK_BYTES if self.layers else self.size

    def ptrs(self, arr, i):
        if self.layers:
            return [arr.ctypes.data + o for o, _ in self.layout(i % BLOCKS)], [l for _, l in self.layout(i % BLOCKS)]
        return [arr.ctypes.data], [self.size]

    def stamp(self, i, n):
        o = self.layout(i % BLOCKS)[0][0] if self.layers else 0
        k = min(8, self.value_len())
        self.src[o : o + k] = np.frombuffer(int(n).to_bytes(8, "little")[:k], dtype=np.uint8)

    def check(self, i, n):
        self.stamp(i, n)
        if self.layers:
            return all(np.array_equal(self.src[o : o + l], self.dst[o : o + l]) for o, l in self.layout(i % BLOCKS))
        return np.array_equal(self.src[: self.size], self.dst[: self.size])


class Timer:
    def __init__(self, cmd):
        st = cmd.get("start_at")
        if st:
            d = st - time.time()
            if 0 < d < 30:
                time.sleep(d)
        self.seconds = cmd.get("seconds") or 0.0
        self.iters = cmd.get("iters")
        self.min_ops = cmd.get("min_ops") or MIN_OPS
        self.lat = []
        self.busy = 0.0
        self.t0 = time.time()
        self.start = time.perf_counter()

    def more(self):
        n = len(self.lat)
        if self.iters is not None:
            return n < self.iters
        return n < self.min_ops or time.perf_counter() - self.start < self.seconds

    def time(self, fn, *a):
        t = time.perf_counter()
        r = fn(*a)
        d = time.perf_counter() - t
        self.lat.append(d)
        self.busy += d
        return r

    def result(self, keys, size):
        wall = time.perf_counter() - self.start
        lat = sorted(self.lat)

        def pct(p):
            if not lat:
                return None
            i = min(max(int(-(-p * len(lat) // 1)), 1), len(lat)) - 1
            return lat[i] * 1e6

        return {"ok": True, "ops": len(lat), "keys_per_op": keys, "bytes_per_key": size, "busy_s": self.busy,
                "wall_s": wall, "t0": self.t0, "t1": time.time(), "p50_us": pct(0.5), "p99_us": pct(0.99)}


class Server:
    def __init__(self, st):
        self.st = st
        self.filled, self.filled_layers, self.filled_size = [], False, 0
        self.bufs = None

    def ok(self, r, what):
        if isinstance(r, list):
            bad = [x for x in r if x < 0]
            if bad:
                raise RuntimeError(f"{what}: {bad[0]}")
        elif r < 0:
            raise RuntimeError(f"{what}: {r}")

    def remove(self, keys):
        for i in range(0, len(keys), 1024):
            chunk = keys[i : i + 1024]
            r = self.st.batch_remove(chunk, True) if hasattr(self.st, "batch_remove") else [self.st.remove(k) for k in chunk]
            self.ok(r, "remove")

    def put_one(self, bufs, j, key):
        ptrs, sizes = bufs.ptrs(bufs.src, j)
        if bufs.layers:
            self.ok(self.st.batch_put_from_multi_buffers([key], [ptrs], [sizes]), "batch_put_from_multi_buffers")
        else:
            self.ok(self.st.put_from(key, ptrs[0], sizes[0]), "put_from")

    def get_one(self, bufs, j, key):
        ptrs, sizes = bufs.ptrs(bufs.dst, j)
        if bufs.layers:
            r = self.st.batch_get_into_multi_buffers([key], [ptrs], [sizes])
        else:
            r = self.st.get_into(key, ptrs[0], sizes[0])
        self.ok(r, "get_into")

    def exec(self, c):
        op, size, layers = c["op"], c.get("size", 0), c.get("layers", False)
        slots, batch, prefix = max(1, c.get("slots", 0)), max(1, c.get("batch", 0)), c.get("prefix", "")
        vlen = BLOCK_BYTES if layers else size
        if op == "put":
            bufs = ServeBufs(self.st, layers, size)
            tm = Timer(c)
            rnd = 0
            while tm.more():
                keys = [f"{prefix}-{rnd}-{j}" for j in range(slots)]
                done = 0
                for j, k in enumerate(keys):
                    if not tm.more():
                        break
                    tm.time(self.put_one, bufs, j, k)
                    done += 1
                self.remove(keys[:done])
                rnd += 1
            bufs.close()
            return tm.result(1, vlen)
        if op == "fill":
            if self.bufs:
                self.bufs.close()
            self.bufs = ServeBufs(self.st, layers, size)
            keys = [f"{prefix}-{j}" for j in range(slots)]
            for j, k in enumerate(keys):
                self.bufs.stamp(j, j)
                self.put_one(self.bufs, j, k)
            self.filled, self.filled_layers, self.filled_size = keys, layers, size
            self.bufs.src[:] = pattern(self.bufs.src.size, 5)
            return {"ok": True}
        if op == "clear":
            self.remove(self.filled)
            self.filled = []
            return {"ok": True}
        if not self.filled or self.filled_layers != layers or (not layers and self.filled_size != size):
            raise RuntimeError(f"{op}: no matching fill before it")
        keys = self.filled
        if op == "get":
            bufs = self.bufs
            tm = Timer(c)
            i = 0
            while tm.more():
                j = i % len(keys)
                tm.time(self.get_one, bufs, j, keys[j])
                i += 1
            res = tm.result(1, vlen)
            for j in (0, len(keys) // 2, len(keys) - 1):
                self.get_one(bufs, j, keys[j])
                if not bufs.check(j, j):
                    raise RuntimeError(f"get {keys[j]}: different bytes than were put")
            bufs.src[:] = pattern(bufs.src.size, 5)
            return res
        groups = [(g * batch, keys[g * batch : (g + 1) * batch]) for g in range(len(keys) // batch)]
        if not groups:
            raise RuntimeError(f"{op}: fewer than {batch} keys filled")
        if op in ("get_batch", "exist_batch"):
            tm = Timer(c)
            i = 0
            if op == "get_batch":
                dst = pattern(size * batch, 7)
                self.st.register(dst)
                ptrs = [dst.ctypes.data + k * size for k in range(batch)]
                sizes = [size] * batch
                while tm.more():
                    _, g = groups[i % len(groups)]
                    self.ok(tm.time(self.st.batch_get_into, g, ptrs, sizes), "batch_get_into")
                    i += 1
                slot0 = groups[(len(tm.lat) - 1) % len(groups)][0]
                base = pattern(size, 5)
                for k in range(batch):
                    want = base.copy()
                    want[: min(8, size)] = np.frombuffer((slot0 + k).to_bytes(8, "little")[: min(8, size)], dtype=np.uint8)
                    if not np.array_equal(dst[k * size : (k + 1) * size], want):
                        raise RuntimeError("batch_get_into: different bytes than were put")
                self.st.unregister(dst)
                return tm.result(batch, size)
            while tm.more():
                _, g = groups[i % len(groups)]
                r = tm.time(self.st.batch_is_exist, g)
                if any(x != 1 for x in r):
                    raise RuntimeError(f"batch_is_exist: {r[:4]}")
                i += 1
            return tm.result(batch, 0)
        raise RuntimeError(f"unknown op {op}")

    def exec_put_batch(self, c):
        size, batch, prefix = c["size"], max(1, c.get("batch", 0)), c.get("prefix", "")
        per_round = max(1, c.get("slots", 0) // batch) * batch
        src = pattern(size, 5)
        self.st.register(src)
        ptrs, sizes = [src.ctypes.data] * batch, [size] * batch
        tm = Timer(c)
        rnd = 0
        while tm.more():
            keys = [f"{prefix}-{rnd}-{j}" for j in range(per_round)]
            done = 0
            for g in range(0, per_round, batch):
                if not tm.more():
                    break
                self.ok(tm.time(self.st.batch_put_from, keys[g : g + batch], ptrs, sizes), "batch_put_from")
                done += batch
            self.remove(keys[:done])
            rnd += 1
        self.st.unregister(src)
        return tm.result(batch, size)


def serve(args):
    if args.system == "memcache":
        st = MemCache(args.mmc_meta, "remote", 0)
    else:
        st = Mooncake(args.mooncake_master, args.mooncake_metadata, "remote", 0, args.host)
    out = sys.stdout
    print(json.dumps({"ok": True, "info": f"ready pid {os.getpid()} {st.name}"}), file=out, flush=True)
    srv = Server(st)
    for line in sys.stdin:
        try:
            c = json.loads(line)
        except ValueError as e:
            print(json.dumps({"ok": False, "error": f"bad command: {e}"}), file=out, flush=True)
            continue
        if c.get("op") == "quit":
            print(json.dumps({"ok": True}), file=out, flush=True)
            break
        try:
            r = srv.exec_put_batch(c) if c.get("op") == "put_batch" else srv.exec(c)
        except Exception as e:  # answered, not raised: the bench reports it
            r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(r), file=out, flush=True)
    try:
        st.close()
    except Exception:
        pass
    return 0


def provider(args):
    """Mooncake memory provider for the `remote` layout: mounts a segment, waits."""
    from mooncake.store import MooncakeDistributedStore

    s = MooncakeDistributedStore()
    rc = s.setup(args.host, args.mooncake_metadata, args.segment, 64 * MiB, "tcp", "", args.mooncake_master)
    if rc != 0:
        print(f"provider setup failed: {rc}", flush=True)
        return 1
    print(json.dumps({"ok": True, "info": "provider ready"}), flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    s.close()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="memcache,mooncake")
    ap.add_argument("--layout", choices=["local", "remote"], default="local")
    ap.add_argument("--mmc-meta", default="127.0.0.1:5000", help="MemCache MetaService address")
    ap.add_argument("--mooncake-master", default="127.0.0.1:50051", help="mooncake_master RPC address")
    ap.add_argument("--mooncake-metadata", default="http://127.0.0.1:8080/metadata", help="Mooncake metadata URL")
    ap.add_argument("--host", default="127.0.0.1", help="local hostname given to Mooncake")
    ap.add_argument("--segment", type=int, default=2 << 30, help="bytes the client contributes (layout local)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the operation counts")
    ap.add_argument("--repeat", type=int, default=3, help="measured passes (median reported)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--mooncake-provider", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help="be a client process of `mmc bench` (JSON lines)")
    ap.add_argument("--system", choices=["mooncake", "memcache"], default="mooncake", help="store of --serve")
    args = ap.parse_args()
    if args.mooncake_provider:
        return provider(args)
    if args.serve:
        return serve(args)

    results = {}
    for system in args.systems.split(","):
        if system == "memcache":
            st = MemCache(args.mmc_meta, args.layout, args.segment)
        elif system == "mooncake":
            st = Mooncake(args.mooncake_master, args.mooncake_metadata, args.layout, args.segment, args.host)
        else:
            raise SystemExit(f"unknown system {system}")
        print(f"== {st.name} ({args.layout})", file=sys.stderr, flush=True)
        results[st.name] = run_system(st, args.scale, args.repeat, f"{system}-{os.getpid()}-")
        st.close()
        print(json.dumps(results[st.name]), file=sys.stderr, flush=True)
    print(table(results, args.layout))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"layout": args.layout, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
