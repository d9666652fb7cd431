"""Functions the benchmark runs in workers. They live in a module of their own, at module
level, so that every tool (``multiprocessing``, ``concurrent.futures``, joblib, allcores)
pickles them by reference, the way a user's own module-level functions travel.

- ``spin``: the calibrated pure-Python workload of the overhead section. It counts, it
  does not read a clock: a worker that is not scheduled makes no progress, so an
  oversubscribed pool cannot look faster than the cores it really got.
- ``*_block``: one block of a kernel's work through the chunk-level functions of
  ``allcores.native`` / ``allcores.pure``: what a user feeding a kernel to a pool of
  their choice maps over blocks.
- ``spin_reporting_pid``: ``spin`` that first records the worker's pid in a folder, so
  that the benchmark can ``kill -9`` a worker of any pool mid-run.
- ``mandelbrot_row``: one row of an image whose rows differ in cost up to 200x (the set
  sits in its lower half): the workload of the scheduling timelines (``allcores demo``,
  the benchmark's ``timeline`` section).
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

from allcores import native, pure

IMPLEMENTATIONS: dict[str, ModuleType] = {"native": native, "python": pure}


def identity(x):
    return x


def spin(iterations: int) -> int:
    """A pure-Python loop of ``iterations`` steps; returns ``iterations``."""
    count = 0
    for _ in range(iterations):
        count += 1
    return count


_pid_folders: set[str] = set()  # per process: the folders this worker wrote its pid to


def spin_reporting_pid(item: tuple[int, str]) -> int:
    """``spin(iterations)`` after writing this process's pid into ``folder`` (on the
    first item of that folder that this process runs)."""
    iterations, folder = item
    if folder not in _pid_folders:
        with open(os.path.join(folder, f"{os.getpid()}.pid"), "w"):
            pass
        _pid_folders.add(folder)
    return spin(iterations)


# The timelines' image: rows through the main cardioid cost up to 200 times as much as
# rows above it, and they are all in the lower half, so that splitting the rows in
# equal halves leaves one worker with most of the work.
TIMELINE_IMAGE = dict(width=2000, height=600, max_iter=5000, bounds=(-2.0, 0.6, -0.35, 1.25))


def mandelbrot_row(row: int, *, impl: str = "native", width: int, height: int,
                   max_iter: int, bounds: tuple) -> np.ndarray:
    """Row ``row`` of a ``width x height`` image (escape counts, uint32)."""
    out = np.zeros((1, width), dtype=np.uint32)
    IMPLEMENTATIONS[impl].mandelbrot_rows(out, row, height, max_iter, *bounds)
    return out[0]


# --- kernel blocks (argument: (impl, ...block...)) -----------------------------------------


def mandelbrot_block(block: tuple[str, int, int, int, int, int, tuple]) -> np.ndarray:
    """Rows ``first_row .. stop_row - 1`` of a ``width x height`` image, as a new array."""
    impl, first_row, stop_row, width, height, max_iter, bounds = block
    out = np.zeros((stop_row - first_row, width), dtype=np.uint32)
    IMPLEMENTATIONS[impl].mandelbrot_rows(out, first_row, height, max_iter, *bounds)
    return out


def count_primes_block(block: tuple[str, int, int]) -> int:
    impl, lo, hi = block
    return IMPLEMENTATIONS[impl].count_primes_range(lo, hi)


def is_prime_block(block: tuple[str, np.ndarray]) -> np.ndarray:
    impl, values = block
    out = np.zeros(len(values), dtype=bool)
    IMPLEMENTATIONS[impl].is_prime_array(values, out)
    return out


def fannkuch_block(block: tuple[str, int, int, int]) -> tuple[int, int]:
    impl, n, start, stop = block
    return IMPLEMENTATIONS[impl].fannkuch_block(n, start, stop)


def monte_carlo_block(block: tuple[str, int, int, int]) -> int:
    impl, seed, start, stop = block
    return IMPLEMENTATIONS[impl].monte_carlo_hits(seed, start, stop)
