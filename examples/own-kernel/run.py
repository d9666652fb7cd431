"""What do a compiled kernel and every core buy, for the rows of a distance matrix?

Times the pure-Python twin (serially, on the first ``--twin-rows`` rows: on all of them
it would take minutes), then the native kernel over the whole ``(n, n)`` matrix with
``allcores.blocks.fill`` serially, on threads and on processes; checks that every
result agrees with the others; prints medians (min/max) over ``--repeats`` runs after a
warm-up run (which starts the pools) and the speedups.

    python run.py [--points 3000] [--dims 8] [--repeats 5] [--workers N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import allcores
import numpy as np

from own_kernel import distance_rows, distance_rows_python, pairwise_distances


def timed(fn, repeats):
    """``fn()``'s result and its run times in seconds, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return result, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=3000, help="n, the number of points")
    parser.add_argument("--dims", type=int, default=8, help="d, coordinates per point")
    parser.add_argument("--twin-rows", type=int, default=100, help="rows the twin computes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="default: every core")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, d, m = args.points, args.dims, min(args.twin_rows, args.points)
    points = np.random.default_rng(args.seed).random((n, d))
    workers = args.workers or allcores.cpu_count()
    print(f"{n} points x {d} coordinates: a {n} x {n} matrix; {workers} workers; "
          f"allcores {allcores.__version__}")

    def twin():
        rows = np.zeros((m, n))
        distance_rows_python(0, m, rows, points)
        return rows

    twin_rows, twin_times = timed(twin, max(1, args.repeats // 2))
    runs = {"twin, serial": (twin_times, m)}
    results = {}
    for backend in ("serial", "thread", "process"):
        results[backend], times = timed(
            lambda: pairwise_distances(points, workers=workers, backend=backend),
            args.repeats)
        runs[f"native, {backend}"] = (times, n)

    # Same code on every backend: the same bits. Twin and kernel: the same up to rounding.
    for backend in ("thread", "process"):
        assert np.array_equal(results[backend], results["serial"]), backend
    assert np.allclose(twin_rows, results["serial"][:m], rtol=1e-12, atol=1e-12)
    assert allcores.planner.releases_gil(distance_rows)
    print("all results agree (twin to 1e-12, backends exactly)")

    per_row = {}
    print(f"{'':18}{'median':>10}{'min':>10}{'max':>10}{'per row':>11}")
    for name, (times, rows) in runs.items():
        per_row[name] = statistics.median(times) / rows
        print(f"{name:18}" + "".join(f"{t * 1e3:8.1f} ms" for t in
                                     (statistics.median(times), min(times), max(times)))
              + f"{per_row[name] * 1e6:8.1f} us")
    serial = per_row["native, serial"]
    print(f"native vs twin (serial, per row):    {per_row['twin, serial'] / serial:7.1f}x")
    print(f"threads vs serial ({workers} workers):     {serial / per_row['native, thread']:7.2f}x")
    print(f"processes vs serial ({workers} workers):   "
          f"{serial / per_row['native, process']:7.2f}x")
    print("reproduce:", " ".join(["python run.py", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    main()
