"""Section "timeline": how do scheduling strategies spread uneven work over the workers,
and what does recording the timeline cost?

- strategies: the rows of a mandelbrot image, whose costs differ up to 200x (the
  costly ones all in one half: ``workloads.mandelbrot_row``), mapped on a warm thread
  pool with ``insights=True`` by four chunking strategies: chunksize=1 (the tutorial's
  ``Pool.imap`` recipe), ``multiprocessing.Pool.map``'s default, ``ceil(n / (4 x
  workers))``, a static split with one chunk per worker, ``ceil(n / workers)``, and
  allcores' adaptive chunks (``chunksize=None``). Per strategy: the wall time, speedup
  over a serial loop, and, from the recorded timeline of its median run, the
  utilisation, the chunks, the idle time at the tail and the slowest chunk; its
  timeline is drawn as ``timeline_<strategy>.png``.
- recording: the same maps with ``insights=False`` and ``insights=True`` (a trivial
  function with default chunks, and the image's rows one per chunk), on processes and
  on threads: the ratio of their times and the cost per recorded chunk.

Every run of every strategy builds the whole image, which must equal the serial loop's
image. Runs are interleaved in rounds (``measure.interleaved``), so that a passing
disturbance hits every strategy (or both sides of a recording pair) alike, and every
other round runs in reverse order, so that no runner always runs right after the same
other one (the second of two back-to-back runs measured about 1% slower here). Each
run's recording is read and reset between runs, outside the timing. The recording pairs
differ by a few percent at most, less than a round's noise: they get twice the rounds.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from typing import Any

import numpy as np

import allcores
from allcores.bench.measure import (
    Config,
    Progress,
    Section,
    Table,
    Timing,
    interleaved,
    ratio_text,
    same,
    seconds_text,
    timing_text,
)
from allcores.bench.workloads import TIMELINE_IMAGE, identity, mandelbrot_row

QUESTION = ("How do scheduling strategies spread mandelbrot's uneven rows over the "
            "workers, and what does recording the timeline cost?")

STRATEGIES = [
    ("chunksize-1", "chunksize=1 (the tutorial's Pool.imap)"),
    ("mp-default", "multiprocessing.Pool.map's default, ceil(n / (4 x workers))"),
    ("static", "static split, ceil(n / workers)"),
    ("adaptive", "allcores adaptive (chunksize=None)"),
]
LABELS = dict(STRATEGIES)
SHORT_NAMES = {"chunksize-1": "chunksize=1", "mp-default": "Pool.map's default chunks",
               "static": "the static split", "adaptive": "allcores' adaptive chunks"}
# Below this width a row costs too little for its chunk to measure anything but dispatch.
MIN_WIDTH = 64
# The recording comparison's trivial map, at full size (fewer items at quick sizes).
IDENTITY_ITEMS = 10**6
RECORDING_BACKENDS = ("process", "thread")
RECORDING_WORKLOADS = ("identity", "mandelbrot")


def image_of(config: Config) -> dict:
    """The image's parameters: only the width shrinks with the run's size, so the rows,
    their number and their uneven costs (hence every strategy's chunks) stay the same."""
    width = max(MIN_WIDTH, round(TIMELINE_IMAGE["width"] * config.size))
    return {**TIMELINE_IMAGE, "width": width}


def chunksize_for(strategy: str, items: int, workers: int) -> int | None:
    """The chunk size each strategy passes to ``Pool.map``."""
    if strategy == "chunksize-1":
        return 1
    if strategy == "mp-default":
        return -(-items // (4 * workers))   # multiprocessing.Pool._map_async's rule
    if strategy == "static":
        return -(-items // workers)
    if strategy == "adaptive":
        return None
    raise ValueError(f"strategy: expected one of {list(LABELS)}, got: {strategy!r}")


def recording_rounds(config: Config) -> int:
    """As many rounds with recording first as with it second: ``repeat`` of each."""
    return 2 * config.repeat


def steps(config: Config) -> int:
    # The serial reference and a warm-up per strategy, then a step per round; the
    # recording pairs: one step to start and warm their pools, then a step per round.
    return (1 + len(STRATEGIES)) + config.repeat + 1 + recording_rounds(config)


def run(config: Config, progress: Progress) -> Section:
    started = time.perf_counter()
    image = image_of(config)
    progress.step("timeline: the serial loop's image, the reference (warm-up)")
    reference = np.vstack([mandelbrot_row(row, **image) for row in range(image["height"])])
    rows, timelines = _strategies(config, image, reference, progress)
    rows += _recording(config, image, reference, progress)
    section = Section(name="timeline", question=QUESTION, rows=rows,
                      tables=_tables(rows, config, image),
                      extra={"workers": config.workers, "image": image},
                      seconds=time.perf_counter() - started)
    # The median run of each strategy, drawn by plots.draw as timeline_<strategy>.png.
    section.artifacts["timelines"] = timelines
    section.reading = reading(section)
    return section


class _Recordings:
    """Each run's insights, read (and the recording reset) before the next run starts,
    so that neither the summary nor the reset is in a timed run.

    ``pools`` maps a runner's key to the recording pool it runs on; runners not in it
    record nothing.
    """

    def __init__(self, pools: dict[Any, allcores.Pool]):
        self.pools = pools
        self.runs: dict[Any, list] = {key: [] for key in pools}
        self._last: Any = None

    def before(self, key: Any) -> None:
        self.collect()
        self._last = key

    def collect(self) -> None:
        if self._last in self.pools:
            self.runs[self._last].append(self.pools[self._last].insights(reset=True))
        self._last = None


def alternating_rounds(runners: dict, check, rounds: int, before_round, before_run
                       ) -> dict[Any, tuple[Timing | None, bool, str | None]]:
    """``measure.interleaved``, one round at a time, in reverse order every other round.

    ``before_round(round_index)`` runs before each round, ``before_run(key)`` before each
    run (both outside the timing). Returns what ``interleaved`` returns, over all rounds:
    per runner, ``(timing, every_result_right, error)``; a runner that raised is not run
    again.
    """
    times: dict[Any, list[float]] = {key: [] for key in runners}
    right = dict.fromkeys(runners, True)
    errors: dict[Any, str] = {}
    for round_index in range(rounds):
        keys = [key for key in runners if key not in errors]
        if round_index % 2:
            keys.reverse()
        before_round(round_index)
        measured = interleaved({key: runners[key] for key in keys}, check, 1,
                               lambda _, key: before_run(key))
        for key, (timing, ok, error) in measured.items():
            if error is not None:
                errors[key] = error
            else:
                times[key] += timing.times
                right[key] = right[key] and ok
    return {key: (None, False, errors[key]) if key in errors
            else (Timing(times[key]), right[key], None) for key in runners}


def _median_index(times: list[float]) -> int:
    """The run with the median time (the lower middle one for an even count)."""
    order = sorted(range(len(times)), key=times.__getitem__)
    return order[(len(times) - 1) // 2]


# --- strategies ---------------------------------------------------------------------------


def _strategies(config: Config, image: dict, reference: np.ndarray, progress: Progress
                ) -> tuple[list[dict], dict[str, tuple]]:
    workers = config.workers
    fn = functools.partial(mandelbrot_row, **image)
    items = range(image["height"])
    runners = {"serial": lambda: np.vstack([fn(row) for row in items])}
    with allcores.Pool(workers, backend="thread", insights=True) as pool:
        pool.map(identity, range(4 * workers), chunksize=1)   # every worker started
        for strategy, label in STRATEGIES:
            size = chunksize_for(strategy, len(items), workers)
            runners[strategy] = functools.partial(_map_image, pool, fn, items, size)
            progress.step(f"timeline: {label} (warm-up)")
            runners[strategy]()
        pool.insights(reset=True)   # start-up and warm-ups are not in any timeline
        recordings = _Recordings({strategy: pool for strategy, _ in STRATEGIES})
        measured = alternating_rounds(
            runners, lambda key, result: same(result, reference), config.repeat,
            lambda round_index: progress.step(
                f"timeline: timed round {round_index + 1} of {config.repeat}, serial and "
                f"{len(STRATEGIES)} strategies"),
            recordings.before)
        recordings.collect()

    serial_timing, serial_right, serial_error = measured["serial"]
    rows = [{"kind": "serial", "strategy": "serial", "label": "serial loop",
             "correct": serial_right,
             "status": serial_error or ("ok" if serial_right else "WRONG"),
             **({"time": serial_timing.to_json()} if serial_timing else {})}]
    timelines = {}
    for strategy, label in STRATEGIES:
        timing, right, error = measured[strategy]
        row: dict[str, Any] = {
            "kind": "strategy", "strategy": strategy, "label": label,
            "chunksize": chunksize_for(strategy, len(items), workers), "workers": workers,
            "correct": right, "status": error or ("ok" if right else "WRONG")}
        runs = recordings.runs[strategy]
        if timing is not None and len(runs) == len(timing.times):
            median_run = runs[_median_index(timing.times)]
            row["time"] = timing.to_json()
            row["speedup"] = (serial_timing.median / timing.median
                              if serial_timing is not None else None)
            row["utilisation_each_run"] = [run.utilisation for run in runs]
            row.update(_summary(median_run))
            timelines[strategy] = (
                median_run, f"{label}: mandelbrot rows {image['width']}x{image['height']}, "
                            f"median of {len(runs)} runs")
        rows.append(row)
    return rows, timelines


def _map_image(pool: allcores.Pool, fn, items: range, chunksize: int | None) -> np.ndarray:
    return np.vstack(pool.map(fn, items, chunksize=chunksize))


def _summary(insights) -> dict:
    """The figures of one run's timeline that the table and the reading use."""
    smallest, median, largest = insights.chunk_sizes()
    slowest = insights.slowest(1)[0]
    return {
        "wall_recorded_s": insights.wall_s,
        "busy_s": insights.busy_s,
        "dispatch_s": insights.dispatch_s,
        "utilisation": insights.utilisation,
        "chunks": insights.chunks,
        "chunk_sizes": [smallest, median, largest],
        # A worker's idle time from its last chunk's end to the map's end: imbalance.
        "tail_idle_max_s": insights.tail_idle_s,
        "workers_that_ran_chunks": len(insights.per_worker),
        "slowest_chunk": {"seconds": slowest.seconds, "first_item": slowest.first_item,
                          "last_item": slowest.stop_item - 1, "items": slowest.items,
                          "worker": slowest.worker},
    }


# --- the cost of recording ----------------------------------------------------------------


def _recording(config: Config, image: dict, reference: np.ndarray,
               progress: Progress) -> list[dict]:
    workers = config.workers
    n = max(10_000, int(IDENTITY_ITEMS * config.size))
    numbers = range(n)
    expected_numbers = list(numbers)
    fn = functools.partial(mandelbrot_row, **image)
    rows_of_image = range(image["height"])

    progress.step("timeline: recording cost, starting and warming the pools")
    rounds = recording_rounds(config)
    runners: dict[tuple[str, str, bool], Any] = {}
    recording_pools = {}
    with contextlib.ExitStack() as stack:
        pools = {(backend, recording): stack.enter_context(
                    allcores.Pool(workers, backend=backend, insights=recording))
                 for backend in RECORDING_BACKENDS for recording in (False, True)}
        # Off and on side by side, so that each pair runs back to back in every round.
        for backend in RECORDING_BACKENDS:
            for workload in RECORDING_WORKLOADS:
                for recording in (False, True):
                    pool = pools[(backend, recording)]
                    key = (backend, workload, recording)
                    if workload == "identity":
                        runners[key] = functools.partial(pool.map, identity, numbers)
                    else:   # one chunk per row: the most records per second of work
                        runners[key] = functools.partial(_map_image, pool, fn,
                                                         rows_of_image, 1)
                    runners[key]()   # warm-up: also starts every worker
                    if recording:
                        recording_pools[key] = pool
        for (_, recording), pool in pools.items():
            if recording:
                pool.insights(reset=True)
        recordings = _Recordings(recording_pools)

        def check(key: tuple[str, str, bool], result) -> bool:
            if key[1] == "identity":
                return result == expected_numbers
            return same(result, reference)

        measured = alternating_rounds(
            runners, check, rounds,
            lambda round_index: progress.step(
                f"timeline: recording cost, timed round {round_index + 1} of {rounds}"),
            recordings.before)
        recordings.collect()

    rows = []
    for backend in RECORDING_BACKENDS:
        for workload in RECORDING_WORKLOADS:
            off_timing, off_right, off_error = measured[(backend, workload, False)]
            on_timing, on_right, on_error = measured[(backend, workload, True)]
            runs = recordings.runs[(backend, workload, True)]
            label = (f"map(identity, range({n:,}))" if workload == "identity"
                     else f"mandelbrot, {image['height']} rows, chunksize=1")
            row: dict[str, Any] = {
                "kind": "recording", "backend": backend, "workload": workload,
                "label": label, "workers": workers,
                "items": n if workload == "identity" else image["height"],
                "correct": off_right and on_right,
                "status": off_error or on_error or
                ("ok" if off_right and on_right else "WRONG")}
            if off_timing is not None and on_timing is not None and \
                    len(runs) == len(on_timing.times):
                row.update(_recording_figures(off_timing, on_timing,
                                              [run.chunks for run in runs]))
            rows.append(row)
    return rows


def _recording_figures(off: Timing, on: Timing, chunks: list[int]) -> dict:
    """Paired by round: each round ran both sides back to back, so their ratio cancels
    what the round had in common (a busy moment of the machine)."""
    ratios = [t_on / t_off for t_on, t_off in zip(on.times, off.times)]
    per_chunk = [(t_on - t_off) / max(1, c) for t_on, t_off, c in zip(on.times, off.times,
                                                                       chunks)]
    return {"off": off.to_json(), "on": on.to_json(), "chunks": int(statistics.median(chunks)),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "per_chunk_s": statistics.median(per_chunk)}


# --- tables and reading -------------------------------------------------------------------


def _tables(rows: list[dict], config: Config, image: dict) -> list[Table]:
    workers = config.workers
    serial = next(r for r in rows if r["kind"] == "serial")
    strategy_rows = [[serial["label"], "-",
                      timing_text(Timing(serial["time"]["times_s"])) if "time" in serial
                      else serial["status"], "1.00x" if serial["correct"] else "WRONG",
                      "-", "-", "-", "-", "-"]]
    for r in (r for r in rows if r["kind"] == "strategy"):
        if "time" not in r or not r["correct"]:
            strategy_rows.append([r["label"], _chunksize_text(r["chunksize"]),
                                  r["status"], "WRONG" if r["correct"] is False else "-",
                                  "-", "-", "-", "-", "-"])
            continue
        slowest = r["slowest_chunk"]
        strategy_rows.append([
            r["label"], _chunksize_text(r["chunksize"]), timing_text(Timing(r["time"]["times_s"])),
            ratio_text(r["speedup"]), f"{r['utilisation']:.0%}", f"{r['chunks']:,}",
            "/".join(f"{s:,}" for s in r["chunk_sizes"]), seconds_text(r["tail_idle_max_s"]),
            f"{seconds_text(slowest['seconds'])}, {_rows_text(slowest)}"])
    recording_rows = []
    for r in (r for r in rows if r["kind"] == "recording"):
        if "ratio_median" not in r or not r["correct"]:
            recording_rows.append([r["backend"], r["label"], "-", r["status"], "-", "-", "-"])
            continue
        recording_rows.append([
            r["backend"], r["label"], f"{r['chunks']:,}", timing_text(Timing(r["off"]["times_s"])),
            timing_text(Timing(r["on"]["times_s"])),
            f"{r['ratio_median']:.3f}x ({r['ratio_min']:.3f}-{r['ratio_max']:.3f}x)",
            _signed_seconds(r["per_chunk_s"])])
    return [
        Table(f"timeline: mandelbrot rows ({image['width']}x{image['height']}, max_iter "
              f"{image['max_iter']}) on {workers} thread workers, by chunking strategy",
              ["strategy", "chunksize", "time", "vs serial", "utilisation", "chunks",
               "chunk sizes min/median/max", "tail idle (max)", "slowest chunk"],
              strategy_rows,
              ["Time: median (min-max) of the timed runs. Utilisation, chunks, tail idle "
               "and the slowest chunk: from the recorded timeline of the median run "
               "(drawn as timeline_<strategy>.png). Tail idle: the longest any worker "
               "waited from its last chunk's end to the map's end.",
               "Every strategy runs on the same warm allcores thread pool; only the chunk "
               "size differs. Every run's image was checked against the serial loop's."]),
        Table(f"timeline: the cost of recording (insights=True vs False), {workers} workers",
              ["backend", "map", "chunks", "insights off", "insights on",
               "on/off per round: median (min-max)", "per chunk"],
              recording_rows,
              ["Off and on run back to back in each round (on second in half the rounds, "
               "first in the others), on warm pools of their own; on/off and per chunk "
               "((on - off) / chunks) are paired by round, median over rounds."]),
    ]


def _rows_text(chunk: dict) -> str:
    if chunk["first_item"] == chunk["last_item"]:
        return f"row {chunk['first_item']:,}"
    return f"rows {chunk['first_item']:,}-{chunk['last_item']:,}"


def _chunksize_text(chunksize: int | None) -> str:
    return "None" if chunksize is None else f"{chunksize:,}"


def _signed_seconds(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + seconds_text(abs(seconds))


def reading(section: Section) -> list[str]:
    """Sentences computed from the section's rows."""
    out = []
    serial = next((r for r in section.rows if r["kind"] == "serial"), None)
    done = {r["strategy"]: r for r in section.rows
            if r["kind"] == "strategy" and r.get("correct") and "time" in r}
    for r in section.rows:
        if r["kind"] in ("serial", "strategy") and not r.get("correct"):
            out.append(f"{r['label']}: {r['status']}.")
    if done:
        ranked = sorted(done.values(), key=lambda r: r["time"]["median_s"])
        first = ranked[0]
        vs_serial = (f", {ratio_text(first['speedup'])} the serial loop's speed"
                     if first.get("speedup") else "")
        others = ", ".join(
            f"{SHORT_NAMES[r['strategy']]} {_ratio(r, first):.2f}x" for r in ranked[1:])
        out.append(f"On {first['workers']} threads, {SHORT_NAMES[first['strategy']]} "
                   f"finished first: {seconds_text(first['time']['median_s'])}{vs_serial}, "
                   f"utilisation {first['utilisation']:.0%}"
                   + (f"; as long as that took: {others}." if others else "."))
    static = done.get("static")
    if static:
        slowest = static["slowest_chunk"]
        wall = static["wall_recorded_s"]
        share = static["tail_idle_max_s"] / wall if wall > 0 else 0.0
        best = min(done.values(), key=lambda r: r["time"]["median_s"])
        cost = (f"; the map took {_ratio(static, best):.2f}x as long as with "
                f"{SHORT_NAMES[best['strategy']]}" if best is not static else "")
        out.append(f"The static split's straggler: the chunk of {_rows_text(slowest)} ran "
                   f"{seconds_text(slowest['seconds'])} while a worker sat idle for "
                   f"{seconds_text(static['tail_idle_max_s'])} at the tail ({share:.0%} of "
                   f"the map's wall time); utilisation {static['utilisation']:.0%}{cost}.")
    one, adaptive = done.get("chunksize-1"), done.get("adaptive")
    if one and adaptive:
        low, _, high = adaptive["chunk_sizes"]
        out.append(f"chunksize=1 handed over {one['chunks']:,} chunks and took "
                   f"{_ratio(one, adaptive):.2f}x as long as the adaptive chunks "
                   f"({adaptive['chunks']:,} chunks of {low:,} to {high:,} rows); utilisation "
                   f"{one['utilisation']:.0%} vs {adaptive['utilisation']:.0%}.")
    if serial is not None and serial.get("correct") is False:
        out.append("The serial loop's images disagreed between runs: no strategy was "
                   "checked against a trusted reference.")
    out += _recording_reading(section.rows)
    return out


def _ratio(row: dict, other: dict) -> float:
    return row["time"]["median_s"] / other["time"]["median_s"]


def _recording_reading(rows: list[dict]) -> list[str]:
    measured = [r for r in rows if r["kind"] == "recording" and r.get("correct")
                and "ratio_median" in r]
    failed = [r for r in rows if r["kind"] == "recording" and not r.get("correct")]
    out = [f"Recording cost, {r['backend']}, {r['label']}: {r['status']}." for r in failed]
    if not measured:
        return out
    ratios = ", ".join(f"{r['backend']} {r['workload']} {r['ratio_median']:.3f}x "
                       f"({_signed_seconds(r['per_chunk_s'])} per chunk)" for r in measured)
    # A pair whose rounds fall on both sides of 1.00x shows no cost the noise does not hide.
    slower = [r for r in measured if r["ratio_min"] > 1.0]
    faster = [r for r in measured if r["ratio_max"] < 1.0]
    noisy = [r for r in measured if r not in slower and r not in faster]
    if not slower and not faster:
        verdict = ("every pair had rounds on both sides of 1.00x (within the noise; "
                   f"rounds from {min(r['ratio_min'] for r in measured):.2f}x to "
                   f"{max(r['ratio_max'] for r in measured):.2f}x)")
    else:
        verdict = "; ".join(filter(None, [
            ", ".join(f"{r['backend']} {r['workload']} slower in every round "
                      f"(+{r['ratio_median'] - 1:.1%})" for r in slower),
            ", ".join(f"{r['backend']} {r['workload']} faster in every round "
                      f"({r['ratio_median'] - 1:.1%}: noise)" for r in faster),
            f"{len(noisy)} pair{'s' if len(noisy) != 1 else ''} within the noise"
            if noisy else ""]))
    out.append("Recording the timeline (insights=True vs False), median on/off ratio over "
               f"{len(measured[0]['on']['times_s'])} rounds: {ratios}; {verdict}.")
    return out
