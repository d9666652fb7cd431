"""Section "kernels": how much faster is each native kernel than its pure-Python twin,
on one core? Same workload both ways; both answers checked against the reference."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
from common import SEED, median, print_table, same, summary, timed

from allcores import kernels


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


def run(*, quick: bool, repeats: int, workers: int) -> int:
    """Print the table; return the number of wrong answers."""
    print("\n== kernels: native vs pure Python, one core "
          f"(seconds, median (min-max) of {repeats}) ==")
    rows = []
    failures = 0
    for case in make_cases(quick):
        pure_times, pure_result = timed(lambda: case.run("python"), repeats)
        native_times, native_result = timed(lambda: case.run("native"), repeats)
        reference = pure_result if case.expected is None else case.expected
        correct = same(native_result, reference) and same(pure_result, reference)
        failures += not correct
        speedup = median(pure_times) / median(native_times)
        rows.append([case.kernel, case.workload, summary(pure_times), summary(native_times),
                     f"{speedup:.1f}x" if correct else "WRONG"])
    print_table(["kernel", "workload", "pure Python", "native", "native/pure"], rows)
    return failures
