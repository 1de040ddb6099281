#!/usr/bin/env python3
"""Compares two builds from `mmc-bench --json` files of interleaved runs.

Each figure is normalised by a baseline measured in the same run (memcpy
bandwidth, raw TCP stream bandwidth, raw TCP ping-pong), so runs taken while
the machine's load drifts stay comparable; higher is better for every figure
(latencies appear as baseline/latency). For each figure: the mean over the
runs of each build, their spread (min..max), and new/old of the means.

Usage:
  scripts/bench-compare.py --old a1.json a2.json ... --new b1.json b2.json ...

Typical runs (alternate the builds, same flags):
  OLD/mmc-bench --workload shm,batch,cross --sizes 1MB,4MB --cross-sizes 1MB,4MB \\
      --clients 1 --seconds 1 --no-redis --no-mooncake --json old-1/r.json
"""

import argparse
import json
import math
import sys


def fmt_size(n):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def figures(doc):
    """{(group, name): value} of one run, each a same-run ratio."""
    s = doc.get("summary") or {}
    out = {}
    lat = {row["id"]: row.get("p50_us") for row in s.get("latency") or []}

    def put(group, name, num, den):
        if num and den:
            out[(group, name)] = num / den

    for r in s.get("sweep") or []:
        sz = fmt_size(r["size"])
        put("same host", f"put_from {sz} / memcpy into working set", r.get("put_gbps"), r.get("memcpy_write_gbps"))
        put("same host", f"get_into {sz} / memcpy out of working set", r.get("get_gbps"), r.get("memcpy_read_gbps"))
    rtt = lat.get("batch.rtt")
    for r in s.get("batches") or []:
        if rtt:
            put(
                "batches",
                f"{r['op']} 32 x {fmt_size(r['value'])}: keys per raw TCP round trip",
                r.get("memcache_kps"),
                1e6 / rtt,
            )
    for key, what in (
        ("batch.exist1.4KiB", "exist x1"),
        ("batch.put1.4KiB", "put_from 4 KiB x1"),
        ("batch.get1.4KiB", "get_into 4 KiB x1"),
    ):
        put("control path", f"{what}: raw RTT / p50", rtt, lat.get(key))
    crtt = lat.get("cross.rtt")
    put("cross host", "exist x1: raw RTT / p50", crtt, lat.get("cross.exist1"))
    put("cross host", "get_into 4 KiB x1: raw RTT / p50", crtt, lat.get("cross.get1.4KiB"))
    for r in s.get("cross") or []:
        put("cross host", f"put_from {r['what']} / raw TCP stream", r.get("put_gbps"), r.get("raw_send_gbps"))
        put("cross host", f"get_into {r['what']} / raw TCP stream", r.get("get_gbps"), r.get("raw_recv_gbps"))
    for r in s.get("cross_batch") or []:
        put("cross host", f"batch put {r['what']} / raw TCP stream", r.get("put_gbps"), r.get("raw_send_gbps"))
        put("cross host", f"batch get {r['what']} / raw TCP stream", r.get("get_gbps"), r.get("raw_recv_gbps"))
    return out


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(figures(json.load(f)))
    return runs


def geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", nargs="+", required=True)
    ap.add_argument("--new", nargs="+", required=True)
    a = ap.parse_args()
    old, new = load(a.old), load(a.new)
    keys = [k for k in old[0] if all(k in r for r in old + new)]
    if not keys:
        sys.exit("no figure is present in every run")
    print(f"old: {len(old)} runs, new: {len(new)} runs; each figure a same-run ratio, higher is better\n")
    print("| group | figure | old mean (min..max) | new mean (min..max) | new / old |")
    print("| --- | --- | --- | --- | --- |")
    by_group = {}
    for k in keys:
        o = [r[k] for r in old]
        n = [r[k] for r in new]
        om, nm = sum(o) / len(o), sum(n) / len(n)
        by_group.setdefault(k[0], []).append(nm / om)
        print(
            f"| {k[0]} | {k[1]} | {om:.3f} ({min(o):.3f}..{max(o):.3f}) | "
            f"{nm:.3f} ({min(n):.3f}..{max(n):.3f}) | {nm / om:.3f} |"
        )
    print()
    for g, rs in by_group.items():
        print(f"- {g}: geometric mean of new/old {geomean(rs):.3f} over {len(rs)} figures")


if __name__ == "__main__":
    main()
