"""What the binding's argument parsing costs, with no RPC at all.

On a store that is not initialized, ``batch_is_exist`` / ``batch_get_into`` /
``is_exist`` parse and check every argument (keys, addresses, sizes), build
their result list and return NOT_INITIALIZED without reaching a MetaService:
timing them measures the per-call cost of the binding itself, free of the
network and of the machine's scheduling noise that the round trip carries.
The NOT_INITIALIZED codes are large negative ints, so each result list
allocates a Python int per key, which real calls (small cached ints) do
not: the figures are an upper bound on the parsing.
Best of 5 rounds of 200,000 calls, microseconds per call.

Usage: python arg_cost.py      (with memcache_rs installed)
"""

import time

from memcache_rs import DistributedObjectStore


def main() -> None:
    s = DistributedObjectStore()
    keys = [f"small-ops-python-12345-{j}" for j in range(32)]
    ptrs = [0x7F0000000000 + j * 4096 for j in range(32)]
    sizes = [4096] * 32
    calls = [
        ("batch_is_exist, 32 keys", lambda: s.batch_is_exist(keys)),
        ("batch_get_into, 32 keys", lambda: s.batch_get_into(keys, ptrs, sizes)),
        ("is_exist, 1 key", lambda: s.is_exist(keys[0])),
    ]
    for name, f in calls:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            n = 0
            while n < 200_000:
                f()
                f()
                f()
                f()
                n += 4
            best = min(best, (time.perf_counter() - t) * 1e6 / n)
        print(f"{name}: {best:.3f} us")


if __name__ == "__main__":
    main()
