"""How much faster is each native kernel than its pure-Python twin, on one core?

For every kernel in ``allcores.kernels`` this script runs the same workload with
``impl="python"`` (plain Python loops) and ``impl="native"`` (Cython, GIL released),
checks that both give the reference answer, and reports the median time with the
min-max over repeats and the speedup (median pure / median native). A wrong answer is
reported as WRONG and makes the script exit with status 1; it is never timed as a win.

Usage::

    python benchmarks/run.py            # full sizes (pure Python takes ~1 s per run)
    python benchmarks/run.py --quick    # small sizes, a few seconds in all
    python benchmarks/run.py --only mandelbrot,fannkuch --repeats 7
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import allcores
from allcores import kernels

SEED = 20261129  # fixed: every run times the same inputs


@dataclasses.dataclass(frozen=True)
class Case:
    """One kernel workload: ``run(impl)`` computes it; ``expected`` is its known answer
    (None where the pure twin's answer is the reference)."""

    kernel: str
    workload: str
    run: Callable[[str], Any]
    expected: Any = None


def make_cases(quick: bool) -> list[Case]:
    side = 160 if quick else 400
    prime_hi = 2 * 10**6 if quick else 2 * 10**7
    values = np.random.default_rng(SEED).integers(
        2**62, 2**63, size=20_000 if quick else 200_000, dtype=np.uint64
    )
    fannkuch_n = 9 if quick else 10
    samples = 200_000 if quick else 2_000_000
    return [
        Case(
            "mandelbrot",
            f"{side}x{side} px, max_iter=256",
            lambda impl: kernels.mandelbrot(side, side, max_iter=256, impl=impl),
        ),
        Case(
            "count_primes",
            f"primes below {prime_hi:.0e}",
            lambda impl: kernels.count_primes(0, prime_hi, impl=impl),
            {2 * 10**6: 148933, 2 * 10**7: 1270607}[prime_hi],  # published pi(x) values
        ),
        Case(
            "is_prime",
            f"{len(values):,} random 63-bit values",
            lambda impl: kernels.is_prime(values, impl=impl),
        ),
        Case(
            "fannkuch",
            f"n={fannkuch_n}",
            lambda impl: kernels.fannkuch(fannkuch_n, impl=impl),
            {9: (8629, 30), 10: (73196, 38)}[fannkuch_n],  # the Benchmarks Game's output
        ),
        Case(
            "monte_carlo_pi",
            f"{samples:,} samples",
            lambda impl: kernels.monte_carlo_pi(samples, seed=SEED, impl=impl),
        ),
    ]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return a == b


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` runs after one untimed warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def summary(times: list[float]) -> str:
    return f"{statistics.median(times):.4f} ({min(times):.4f}-{max(times):.4f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row")
    parser.add_argument("--only", default="", help="comma-separated kernel names")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be >= 1")

    cases = make_cases(args.quick)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {c.kernel for c in cases}
        if unknown:
            parser.error(f"unknown kernel(s): {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.kernel in wanted]

    print(f"allcores {allcores.__version__} on {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; one core, "
          f"median (min-max) of {repeats} runs in seconds")
    header = f"{'kernel':<15} {'workload':<30} {'pure Python':>26} {'native':>26} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    failures = 0
    for case in cases:
        pure_times, pure_result = timed(lambda: case.run("python"), repeats)
        native_times, native_result = timed(lambda: case.run("native"), repeats)
        reference = pure_result if case.expected is None else case.expected
        correct = same(native_result, reference) and same(pure_result, reference)
        speedup = statistics.median(pure_times) / statistics.median(native_times)
        verdict = f"{speedup:7.1f}x" if correct else "   WRONG"
        failures += not correct
        print(f"{case.kernel:<15} {case.workload:<30} {summary(pure_times):>26} "
              f"{summary(native_times):>26} {verdict:>8}", flush=True)
    print(f"\nreproduce: python {shlex.join(sys.argv)}")
    if failures:
        print(f"{failures} kernel(s) gave a wrong answer", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
