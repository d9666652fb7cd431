"""Functions the benchmarks run in workers. They live in a module of their own so that
every tool (multiprocessing, concurrent.futures, joblib, allcores) can pickle them by
reference, the way a user's own module-level functions travel."""

from __future__ import annotations

import time

from allcores import native


def identity(x):
    return x


def busy(seconds: float) -> float:
    """Spin (not sleep) for ``seconds`` of CPU time: a calibrated pure-Python workload."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass
    return seconds


def count_primes_block(bounds: tuple[int, int]) -> int:
    """A native kernel call on one block; it releases the GIL for its whole loop."""
    return native.count_primes_range(*bounds)
