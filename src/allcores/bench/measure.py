"""How every benchmark section measures: fixed seeds, ``time.perf_counter``, warm-up runs,
medians with min-max over repeats, a correctness check before any time counts, and one
progress line on stderr.

A section returns a :class:`Section`: its rows (raw numbers, for ``results.json``), the
table a person reads (for the terminal and ``report.md``), footnotes, and the sentences
of its reading, computed from the rows.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

SEED = 20261129  # fixed: every run times the same inputs


@dataclasses.dataclass
class Config:
    """What one run of the benchmark was asked to do."""

    quick: bool = False
    scale: float = 1.0          # sizes multiplied by this (on top of --quick); for tests
    repeat: int = 3
    workers: int = 2
    sections: tuple[str, ...] = ()
    out: str = "bench-results"
    plots: bool = True
    c_reference: str | None = None   # path of benchmarks/c_reference.py, if any

    @property
    def size(self) -> float:
        """Work per row relative to the full run: 1.0 full, 0.2 quick, less with --scale."""
        return (0.2 if self.quick else 1.0) * self.scale


@dataclasses.dataclass
class Timing:
    """Wall times of the timed runs, in seconds."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def low(self) -> float:
        return min(self.times)

    @property
    def high(self) -> float:
        return max(self.times)

    def scaled(self, factor: float) -> Timing:
        return Timing([t * factor for t in self.times])

    def to_json(self) -> dict:
        return {"median_s": self.median, "min_s": self.low, "max_s": self.high,
                "times_s": self.times}


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> tuple[Timing, Any]:
    """Time ``repeat`` runs of ``fn`` after ``warmup`` untimed ones; return the last result.

    The result of *every* run is kept until the check: a caller compares the last one
    against the reference, and :func:`timed` itself checks that every run gave the same
    answer (a flaky result is never averaged into a time).
    """
    results = []
    for _ in range(warmup):
        results.append(fn())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        results.append(result)
    first = results[0]
    if not all(same(first, other) for other in results[1:]):
        return Timing(times), _Inconsistent(results)
    return Timing(times), results[-1]


def interleaved(runners: dict[Any, Callable[[], Any]], check: Callable[[Any, Any], bool],
                repeat: int, on_run: Callable[[int, Any], None] | None = None
                ) -> dict[Any, tuple[Timing | None, bool, str | None]]:
    """Time ``repeat`` rounds in which every runner runs once, in turn.

    Rounds go over a whole section, so a passing disturbance (another process on a
    shared machine) lands on one round of many rows rather than on every run of one
    row, and the median over the rounds drops it. Warm-ups are the caller's.
    ``check(key, result)`` says whether a result is right; results are not kept.
    ``on_run(round_index, key)`` is called before each run (for progress).
    Returns, per runner, ``(timing, every_result_right, error)``; ``error`` is set
    (and the timing None) if a run raised.
    """
    times: dict[Any, list[float]] = {key: [] for key in runners}
    right = dict.fromkeys(runners, True)
    errors: dict[Any, str] = {}
    for round_index in range(repeat):
        for key, fn in runners.items():
            if key in errors:
                continue
            if on_run is not None:
                on_run(round_index, key)
            start = time.perf_counter()
            try:
                result = fn()
            except Exception as error:  # reported in the row, never fatal
                errors[key] = f"failed: {type(error).__name__}: {error}"
                continue
            times[key].append(time.perf_counter() - start)
            if right[key] and not check(key, result):
                right[key] = False
            del result
    return {key: (None, False, errors[key]) if key in errors
            else (Timing(times[key]), right[key], None) for key in runners}


class _Inconsistent:
    """The runs of one row disagreed: equal to nothing, so the row's check fails."""

    def __init__(self, results: list):
        self.results = results

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self.results)} runs that disagree>"


def same(a: Any, b: Any) -> bool:
    """Exact equality, numpy arrays included (shape, dtype kind and every element)."""
    if isinstance(a, _Inconsistent) or isinstance(b, _Inconsistent):
        return False
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.shape == b.shape and bool(np.array_equal(a, b)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


# --- what a section hands back ------------------------------------------------------------


@dataclasses.dataclass
class Table:
    """A table a person reads: a title, a header and rows of formatted cells."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Section:
    """One section's results.

    ``rows`` hold the raw numbers, one dict per measured row; each has ``"correct"``:
    True, False (the row's answer was wrong: the run exits with status 1), or None
    (the row did not run, e.g. a peer that is not installed; ``"status"`` says why).
    """

    name: str
    question: str
    rows: list[dict]
    tables: list[Table]
    reading: list[str] = dataclasses.field(default_factory=list)
    extra: dict = dataclasses.field(default_factory=dict)   # more figures for results.json
    seconds: float = 0.0
    artifacts: dict = dataclasses.field(default_factory=dict, repr=False)  # for plots only

    @property
    def wrong(self) -> int:
        return sum(row.get("correct") is False for row in self.rows)

    def to_json(self) -> dict:
        return {"question": self.question, "seconds": self.seconds, "rows": self.rows,
                "reading": self.reading, **self.extra}


# --- formatting ---------------------------------------------------------------------------


def seconds_text(seconds: float) -> str:
    """A duration with a unit that keeps 3 significant digits: 1.23 s, 45.6 ms, 7.89 us."""
    if seconds >= 1:
        return f"{seconds:.3g} s" if seconds < 100 else f"{seconds:.0f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} us"
    return f"{seconds * 1e9:.3g} ns"


def timing_text(timing: Timing) -> str:
    """``median (min-max)``, each with its unit."""
    return (f"{seconds_text(timing.median)} "
            f"({seconds_text(timing.low)}-{seconds_text(timing.high)})")


# Below this a ratio is written as a fraction: 0.004 in two decimals would read "0.00x".
FRACTION_BELOW = 0.1


def ratio_text(value: float | None) -> str:
    """A ratio (a speedup, one time over another) with about 3 significant digits:
    ``250x``, ``12.5x``, ``1.23x``, ``0.57x``; below 0.1 as a fraction, ``1/250x``
    (250 times slower), so that a small ratio never prints as ``0.00x``."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    if value >= FRACTION_BELOW or value <= 0:
        return f"{value:.2f}x"
    inverse = 1 / value
    return f"1/{inverse:.0f}x" if inverse >= 10 else f"1/{inverse:.1f}x"


# Marks an efficiency above 100% (and a speedup above the worker count); the note says why.
SUPERLINEAR_MARK = "^"
SUPERLINEAR_NOTE = (
    f"{SUPERLINEAR_MARK} above 100% efficiency: N workers measured more than N times as "
    "fast as one. No run had more cores than N: the serial run lost more time to "
    "something else, such as other processes on a shared machine (the longer run "
    "shares its core longer), timing noise over a few runs, or one core's cache against "
    "N cores' caches (each worker's blocks stay in its own core's cache). Read it as "
    "about N times faster, not more.")


def efficiency_text(efficiency: float | None) -> str:
    """``87%``, or ``112%^`` above 100% (see SUPERLINEAR_NOTE), or ``-``."""
    if efficiency is None:
        return "-"
    return f"{efficiency:.0%}" + (SUPERLINEAR_MARK if superlinear(efficiency) else "")


def superlinear(efficiency: float | None) -> bool:
    """Above 100% as printed (100.4% prints as 100%: no mark)."""
    return efficiency is not None and round(efficiency * 100) > 100


def cost_text(seconds: float) -> str:
    """A per-item cost on the benchmark's grid: 1 us, 300 us, 10 ms."""
    if seconds >= 1e-3:
        return f"{seconds * 1e3:g} ms"
    return f"{seconds * 1e6:g} us"


def format_table(table: Table) -> str:
    """The table as aligned plain text, with its title and notes."""
    widths = [max(len(str(cell)) for cell in column)
              for column in zip(table.header, *table.rows)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(table.header, widths))
    out = [f"== {table.title} ==", line, "-" * len(line)]
    out += ["  ".join(f"{str(c):<{w}}" for c, w in zip(row, widths)) for row in table.rows]
    out += [f"  {note}" for note in table.notes]
    return "\n".join(out)


def markdown_table(table: Table) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in table.header) + " |",
           "| " + " | ".join("---" for _ in table.header) + " |"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(out)


# --- progress -----------------------------------------------------------------------------


class Progress:
    """``[3/45] kernels: mandelbrot native, allcores threads...`` on stderr.

    On a terminal the line is rewritten in place; anywhere else (a log, CI) each step
    gets its own line, so the log shows where a slow or stuck run was.
    """

    def __init__(self, total: int, stream=None):
        self.total = max(1, total)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0

    def step(self, text: str) -> None:
        self.done += 1
        line = f"[{min(self.done, self.total)}/{self.total}] {text}..."
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Before printing a table: end the rewritten line."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
