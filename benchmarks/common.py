"""Shared measuring helpers for the benchmark sections: fixed seeds, perf_counter,
medians with min-max over repeats, and correctness checks before any timing counts."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np

SEED = 20261129  # fixed: every run times the same inputs


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return a == b


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` runs after ``warmup`` untimed ones, and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def median(times: list[float]) -> float:
    return statistics.median(times)


def summary(times: list[float], digits: int = 4) -> str:
    """``median (min-max)`` in seconds."""
    return f"{median(times):.{digits}f} ({min(times):.{digits}f}-{max(times):.{digits}f})"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(f"{str(c):<{w}}" for c, w in zip(row, widths)), flush=True)
