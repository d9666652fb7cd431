"""Section "pool": what does the pool cost, what does it buy, and does it stream?

- dispatch: a trivial function over many items, allcores vs ``multiprocessing.Pool``
  (``map`` with its default chunks; ``imap`` with its default chunksize=1, the tutorial's
  recipe) — the cost of moving work, with nothing to compute;
- scaling: a 1 ms pure-Python function on processes, and a native kernel on threads,
  with 1 worker and with N: speedup and parallel efficiency;
- memory: peak RSS growth while consuming ``imap`` over a long generator, allcores vs
  ``multiprocessing.Pool.imap`` (which reads its whole input ahead), each in a fresh
  interpreter so that one does not inherit the other's peak.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import workloads
from common import median, print_table, summary, timed

import allcores


def _dispatch(quick: bool, repeats: int, workers: int) -> list[list[str]]:
    n_map = 10**5 if quick else 10**6
    n_imap = 2 * 10**4 if quick else 10**5
    items = list(range(n_map))
    imap_items = list(range(n_imap))
    rows = []
    with multiprocessing.Pool(workers) as mp_pool, allcores.Pool(workers) as pool:
        mp_map, mp_result = timed(lambda: mp_pool.map(workloads.identity, items), repeats)
        ac_map, ac_result = timed(lambda: pool.map(workloads.identity, items), repeats)
        ok = mp_result == items and ac_result == items
        rows.append([f"map, {n_map:,} items", summary(mp_map), summary(ac_map),
                     f"{median(mp_map) / median(ac_map):.2f}x" if ok else "WRONG"])
        mp_imap, mp_result = timed(lambda: list(mp_pool.imap(workloads.identity, imap_items)),
                                   repeats)
        ac_imap, ac_result = timed(lambda: list(pool.imap(workloads.identity, imap_items)),
                                   repeats)
        ok = mp_result == imap_items and ac_result == imap_items
        rows.append([f"imap, {n_imap:,} items", summary(mp_imap), summary(ac_imap),
                     f"{median(mp_imap) / median(ac_imap):.1f}x" if ok else "WRONG"])
    return rows


def _scaling(quick: bool, repeats: int, workers: int) -> list[list[str]]:
    rows = []
    costs = [0.001] * (200 if quick else 1000)
    expected = sum(costs)
    serial, result = timed(lambda: sum(map(workloads.busy, costs)), repeats, warmup=0)
    ok = abs(result - expected) < 1e-9
    with allcores.Pool(workers) as pool:
        parallel, result = timed(lambda: sum(pool.map(workloads.busy, costs)), repeats)
    ok = ok and abs(result - expected) < 1e-9
    speedup = median(serial) / median(parallel)
    rows.append([f"1 ms pure-Python items x{len(costs)}, processes", summary(serial),
                 summary(parallel), f"{speedup:.2f}x" if ok else "WRONG",
                 f"{speedup / workers:.0%}"])

    hi = 10**8 if quick else 10**9
    blocks = [(k * hi // 64, (k + 1) * hi // 64) for k in range(64)]
    expected = {10**8: 5761455, 10**9: 50847534}[hi]  # published pi(x)
    with allcores.Pool(1, backend="thread") as one, \
            allcores.Pool(workers, backend="thread") as many:
        serial, r1 = timed(lambda: sum(one.map(workloads.count_primes_block, blocks,
                                               chunksize=1)), repeats)
        parallel, rn = timed(lambda: sum(many.map(workloads.count_primes_block, blocks,
                                                  chunksize=1)), repeats)
    ok = r1 == expected and rn == expected
    speedup = median(serial) / median(parallel)
    rows.append([f"native count_primes below {hi:.0e}, threads", summary(serial),
                 summary(parallel), f"{speedup:.2f}x" if ok else "WRONG",
                 f"{speedup / workers:.0%}"])
    return rows


# Run in a fresh interpreter: prints the peak RSS growth (MiB) while consuming imap. The
# consumer is slower than the workers (a few microseconds per item), as a real consumer
# that writes results somewhere is: a pool that does not bound what it holds for the
# consumer then piles results up in memory.
MEMORY_PROBE = textwrap.dedent("""
    import json, sys, time
    import workloads
    tool, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def rss_mib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024

    if tool == "allcores":
        import allcores
        pool = allcores.Pool(workers)
    else:
        import multiprocessing
        pool = multiprocessing.Pool(workers)
    list(pool.imap(workloads.identity, range(1000)))  # warm up: workers started
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak (VmHWM) to the current RSS
    before = rss_mib("VmRSS")
    total = 0
    for value in pool.imap(workloads.identity, iter(range(n)), 256):
        total += value
        spin_until = time.perf_counter() + 2e-6
        while time.perf_counter() < spin_until:
            pass
    growth = rss_mib("VmHWM") - before
    print(json.dumps({"growth_mib": growth, "ok": total == n * (n - 1) // 2}))
    pool.terminate()
""")


def _memory(quick: bool, workers: int) -> list[list[str]]:
    n = 10**6 if quick else 10**7
    if not os.path.exists("/proc/self/clear_refs"):
        return [["memory", "skipped: the probe reads Linux's /proc/self/status"]]
    rows = []
    for tool in ("multiprocessing", "allcores"):
        proc = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, tool, str(n), str(workers)],
            capture_output=True, text=True, timeout=900,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        if proc.returncode != 0:
            rows.append([tool, f"failed: {proc.stderr.strip().splitlines()[-1:]}"])
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append([f"{tool} imap over a {n:,}-item generator",
                     f"{result['growth_mib']:.1f} MiB" if result["ok"] else "WRONG"])
    return rows


def run(*, quick: bool, repeats: int, workers: int) -> int:
    print(f"\n== pool: dispatch vs multiprocessing.Pool, {workers} workers "
          f"(seconds, median (min-max) of {repeats}) ==")
    dispatch = _dispatch(quick, repeats, workers)
    print_table(["trivial fn", "multiprocessing.Pool", "allcores.Pool", "allcores faster by"],
                dispatch)
    print(f"\n== pool: scaling, 1 worker vs {workers} ==")
    scaling = _scaling(quick, repeats, workers)
    print_table(["workload", "1 worker", f"{workers} workers", "speedup", "efficiency"],
                scaling)
    print("\n== pool: streaming memory (peak RSS growth of the caller while a slower consumer "
          "reads imap, chunksize 256) ==")
    memory = _memory(quick, workers)
    print_table(["run", "peak RSS growth"], memory)
    return sum(row.count("WRONG") for row in dispatch + scaling + memory)
