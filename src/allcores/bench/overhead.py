"""Section "overhead": from what cost per item on does going parallel pay, for each tool?

A calibrated pure-Python function (``workloads.spin``: it counts, it does not sleep nor
read a clock) runs at per-item costs from 1 us to 10 ms, serially and through
``multiprocessing.Pool`` (``imap`` with chunksize 1, the tutorial's recipe, and ``map``
with its default chunks), ``ProcessPoolExecutor.map``, joblib (``Parallel(n_jobs=N)``)
and ``allcores.map`` with ``backend="auto"``, ``"process"`` and ``"thread"``. For each
cost the number of items makes the serial run take a fixed time. Reported: time per
item, speedup over serial, and per tool the *crossover*: the cost from which on it beats
serial (at that cost and every larger one measured).

Every pool is created once for the whole section and warmed before anything is timed:
start-up is not part of these numbers (allcores ``auto`` then knows its process pool is
warm). A tool that would take far longer than serial at a cost (the tutorial's recipe
at 1 us per item takes ~50x serial) is timed on fewer items, so that the section ends;
the table says how many items each time covers.

The evidence for issue #15, "Auto without a serial tax", is the second half of this
section: see ``allcores.bench.serial_tax``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import math
import multiprocessing
import time
from typing import Any, Callable

import allcores
from allcores.bench.measure import (
    Config,
    Progress,
    Section,
    Table,
    cost_text,
    interleaved,
    ratio_text,
    seconds_text,
)
from allcores.bench.workloads import spin

QUESTION = ("From what cost per item on does a pool beat a plain serial loop, for each "
            "tool, and how much does each tool lose below that? Does backend=\"auto\" "
            "choose well, without a serial tax (issue #15)?")

COSTS_S = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
# A tool beats serial at a cost when its median time is at least this much below
# serial's (5%: above the run-to-run noise of a shared 2-core machine).
BEATS_MARGIN = 1.05
# A tool's timed run is cut to fewer items when it would last more than this many times
# the serial run's target time.
SLOW_TOOL_CAP = 2.0
# allcores auto is reported as having chosen badly where it measured more than this
# much slower than serial (its sample of the first items costs a little, and a shared
# machine's noise is a few percent).
AUTO_SLOWER_FLAG = 0.9

TOOLS = [
    ("serial", "serial (builtin map)"),
    ("mp-imap", "multiprocessing.Pool.imap, chunksize 1 (tutorial)"),
    ("mp-map", "multiprocessing.Pool.map, default chunks"),
    ("futures", "ProcessPoolExecutor.map"),
    ("joblib", "joblib Parallel"),
    ("allcores-auto", "allcores.map, auto"),
    ("allcores-process", "allcores.map, process"),
    ("allcores-thread", "allcores.map, thread"),
]
LABELS = dict(TOOLS)


def serial_target_s(config: Config) -> float:
    """How long the serial run at each cost takes: ~1 s full, ~0.2 s quick."""
    return (0.2 if config.quick else 1.0) * config.scale


def calibrate(repeats: int = 5) -> float:
    """Iterations of ``spin`` per second on this core (the best of a few runs)."""
    spin(10_000)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        spin(200_000)
        best = min(best, time.perf_counter() - start)
    return 200_000 / best


def iterations_for(cost: float, rate: float, rounds: int = 3) -> int:
    """Iterations of ``spin`` that take ``cost`` seconds per call, measured: small loops
    run faster per iteration than long ones (their counters stay small cached ints), so
    the first guess from ``rate`` is corrected on the real call a few times."""
    iterations = max(1, round(cost * rate))
    for _ in range(rounds):
        calls = max(1, int(0.01 / cost))
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(calls):
                spin(iterations)
            best = min(best, (time.perf_counter() - start) / calls)
        iterations = max(1, round(iterations * cost / max(best, 1e-9)))
    return iterations


def crossover(costs: list[float], speedups: list[float | None],
              margin: float = BEATS_MARGIN) -> float | None:
    """The smallest cost from which on ``speedups`` stay at or above ``margin``: the
    tool beats serial at that cost and at every larger one measured. None if it does
    not beat serial at the largest cost. ``costs`` ascend; a None speedup (a row that
    failed or was wrong) never beats serial."""
    found = None
    for cost, speedup in sorted(zip(costs, speedups), key=lambda pair: pair[0],
                                reverse=True):
        if speedup is None or speedup < margin:
            break
        found = cost
    return found


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def steps(config: Config) -> int:
    return len(COSTS_S) * (len(TOOLS) + config.repeat) + serial_tax.steps(config)


def run(config: Config, progress: Progress) -> Section:
    started = time.perf_counter()
    workers = config.workers
    target = serial_target_s(config)
    min_items = 4 * workers
    rate = calibrate()
    joblib = _optional("joblib")

    mp_pool = multiprocessing.Pool(workers)
    executor = concurrent.futures.ProcessPoolExecutor(workers)
    parallel = joblib.Parallel(n_jobs=workers) if joblib is not None else None
    if parallel is not None:
        parallel.__enter__()
    runners: dict[str, Callable[[list], list] | str] = {
        "serial": lambda items: list(map(spin, items)),
        "mp-imap": lambda items: list(mp_pool.imap(spin, items)),
        "mp-map": lambda items: mp_pool.map(spin, items),
        "futures": lambda items: list(executor.map(spin, items)),
        "joblib": (lambda items: parallel(joblib.delayed(spin)(x) for x in items))
        if parallel is not None else "not installed",
        "allcores-auto": lambda items: allcores.map(spin, items, workers=workers),
        "allcores-process": lambda items: allcores.map(spin, items, workers=workers,
                                                       backend="process"),
        "allcores-thread": lambda items: allcores.map(spin, items, workers=workers,
                                                      backend="thread"),
    }
    rows: list[dict] = []
    try:
        # Warm every pool: workers started, the function imported in each.
        warm = [1] * (8 * workers)
        for tool, runner in runners.items():
            if not isinstance(runner, str) and tool != "allcores-auto":
                runner(warm)
        timed_runners: dict[tuple[float, str], Callable[[], list]] = {}
        by_cost = {cost: _warm_up(cost, runners, rate, target, min_items, progress,
                                  timed_runners)
                   for cost in COSTS_S}

        def on_run(round_index: int, key: tuple[float, str]) -> None:
            if key[1] == "serial":
                progress.step(f"overhead: timed round {round_index + 1} of {config.repeat}, "
                              f"{cost_text(key[0])} per item")

        measured = interleaved(
            timed_runners,
            lambda key, result: result == [by_cost[key[0]][key[1]]["iterations"]]
            * by_cost[key[0]][key[1]]["items"],
            config.repeat, on_run)
        for cost, cost_rows in by_cost.items():
            _record(cost_rows, measured)
            rows += cost_rows.values()
        crossovers = {}
        for tool, _ in TOOLS[1:]:
            tool_rows = [r for r in rows if r["tool"] == tool]
            crossovers[tool] = crossover([r["cost_s"] for r in tool_rows],
                                         [r.get("speedup") for r in tool_rows])
        tax_rows, tax_extra = serial_tax.run(config, progress, rate, rows, crossovers,
                                             mp_pool)
    finally:
        if parallel is not None:
            parallel.__exit__(None, None, None)
        mp_pool.terminate()
        mp_pool.join()
        executor.shutdown(wait=True, cancel_futures=True)

    section = Section(
        name="overhead", question=QUESTION, rows=rows + tax_rows,
        tables=_tables(rows, crossovers, workers) + serial_tax.tables(tax_rows, tax_extra,
                                                                       crossovers, workers),
        extra={"workers": workers, "costs_s": COSTS_S, "serial_target_s": target,
               "spin_iterations_per_s": rate, "beats_margin": BEATS_MARGIN,
               "crossover_s": crossovers, "labels": LABELS, "serial_tax": tax_extra},
        seconds=time.perf_counter() - started)
    section.reading = reading(section)
    return section


def _warm_up(cost: float, runners: dict, rate: float, target: float, min_items: int,
             progress: Progress, timed_runners: dict) -> dict[str, dict]:
    """Every tool's row at one per-item cost, after a warm-up probe: adds the timed run
    of each tool to ``timed_runners`` (keyed by (cost, tool))."""
    iterations = iterations_for(cost, rate)
    n = max(min_items, int(target / cost))
    rows: dict[str, dict] = {}
    for tool, label in TOOLS:
        progress.step(f"overhead: {cost_text(cost)} per item, {label} (warm-up)")
        row: dict[str, Any] = {"tool": tool, "label": label, "cost_s": cost,
                               "iterations": iterations}
        rows[tool] = row
        runner = runners[tool]
        if isinstance(runner, str):
            row.update(correct=None, status=runner)
            continue
        try:
            # The warm-up runs a probe of the items; it also tells whether the full
            # count would take this tool far longer than serial.
            probe = max(min(n, min_items), min(n, n // 20))
            start = time.perf_counter()
            probe_ok = runner([iterations] * probe) == [iterations] * probe
            per_item = (time.perf_counter() - start) / probe
        except Exception as error:
            row.update(correct=False, status=f"failed: {type(error).__name__}: {error}")
            continue
        count = n
        if tool != "serial" and per_item * n > target * SLOW_TOOL_CAP:
            count = max(probe, int(target * SLOW_TOOL_CAP / per_item))
            row["capped"] = True
        row.update(items=count, probe_ok=probe_ok)
        timed_runners[(cost, tool)] = functools.partial(runner, [iterations] * count)
    return rows


def _record(rows: dict[str, dict], measured: dict) -> None:
    """Put each tool's timing, verdict and speedup over serial into its row."""
    serial_per_item = None
    for tool, row in rows.items():
        key = (row["cost_s"], tool)
        if key not in measured:
            continue
        timing, right, error = measured[key]
        if error is not None:
            row.update(correct=False, status=error)
            continue
        count = row["items"]
        correct = row.pop("probe_ok") and right
        row.update(correct=correct, status="ok" if correct else "WRONG",
                   **timing.to_json(), per_item_s=timing.median / count,
                   per_item_min_s=timing.low / count, per_item_max_s=timing.high / count)
        if tool == "serial":
            serial_per_item = row["per_item_s"] if correct else None
            row["measured_cost_s"] = row["per_item_s"]
        if serial_per_item and correct:
            row["speedup"] = serial_per_item / row["per_item_s"]


def _tables(rows: list[dict], crossovers: dict, workers: int) -> list[Table]:
    costs = sorted({r["cost_s"] for r in rows})
    header = ["tool"] + [cost_text(c) for c in costs] + ["beats serial from"]
    per_item, speedups = [], []
    for tool, label in TOOLS:
        by_cost = {r["cost_s"]: r for r in rows if r["tool"] == tool}
        times, gains = [label], [label]
        for cost in costs:
            row = by_cost.get(cost, {})
            if row.get("per_item_s") is None:
                times.append(row.get("status", "-"))
                gains.append(row.get("status", "-"))
                continue
            mark = "" if row["correct"] else " WRONG"
            capped = "~" if row.get("capped") else ""
            times.append(capped + seconds_text(row["per_item_s"]) + mark)
            gains.append(capped + (ratio_text(row.get("speedup")) if tool != "serial"
                                   else "1x") + mark)
        verdict = "-" if tool == "serial" else _crossover_text(crossovers.get(tool))
        per_item.append(times + [verdict])
        speedups.append(gains + [verdict])
    notes = [
        "Cost: the per-item cost the spin loop was calibrated to on this core; the serial "
        "row gives the measured one. Times: median over the timed rounds (each round runs "
        "every tool at every cost once).",
        "~: a tool that would have run far longer than serial was timed on fewer items "
        "(results.json has the counts; hollow markers in overhead.png). Speedups below 0.1 "
        "as a fraction: 1/20x, 20 times as long as serial.",
        f"Beats serial: median at least {BEATS_MARGIN - 1:.0%} faster than serial, at "
        "that cost and at every larger one. Pools created once and warmed before timing.",
    ]
    return [
        Table(f"overhead: time per item, {workers} workers", header, per_item, []),
        Table(f"overhead: speedup over serial, {workers} workers", header, speedups, notes),
    ]


def _crossover_text(cost: float | None) -> str:
    return "never (up to 10 ms)" if cost is None else cost_text(cost)


def crossover_rows(rows: list[dict]) -> list[dict]:
    """The rows of the crossover tables (the issue #15 rows carry a ``"part"``)."""
    return [r for r in rows if "part" not in r]


def reading(section: Section) -> list[str]:
    """Sentences computed from the rows and crossovers, then the issue #15 goals."""
    return _crossover_reading(section) + serial_tax.reading(section)


def _crossover_reading(section: Section) -> list[str]:
    rows = crossover_rows(section.rows)
    crossovers = section.extra.get("crossover_s", {})
    costs = sorted({r["cost_s"] for r in rows})
    if not costs:
        return []
    largest = cost_text(costs[-1])
    out = []
    parts = []
    for tool, cost in sorted(crossovers.items(),
                             key=lambda kv: (kv[1] is None, kv[1] or 0, kv[0])):
        label = LABELS.get(tool, tool)
        if cost is None:
            parts.append(f"{label} never (up to {largest})")
        elif cost == costs[0]:
            parts.append(f"{label} at every cost measured, from {cost_text(cost)}")
        else:
            parts.append(f"{label} at {cost_text(cost)}")
    if parts:
        out.append("First beats serial (and keeps beating it at every larger cost): "
                   + "; ".join(parts) + ".")
    smallest = [r for r in rows if r["cost_s"] == costs[0] and r.get("speedup")]
    slow = sorted((r for r in smallest if r["tool"] != "serial"),
                  key=lambda r: r["speedup"])
    if slow and slow[0]["speedup"] < 1:
        worst = slow[0]
        out.append(f"At {cost_text(costs[0])} per item the slowest tool, {worst['label']}, "
                   f"takes {seconds_text(worst['per_item_s'])} per item: "
                   f"{1 / worst['speedup']:.0f}x as long as serial.")
    biggest = [r for r in rows if r["cost_s"] == costs[-1] and r.get("speedup")
               and r["tool"] != "serial"]
    if biggest:
        best = max(biggest, key=lambda r: r["speedup"])
        out.append(f"At {largest} per item the best speedup is {ratio_text(best['speedup'])} "
                   f"({best['label']}) on {section.extra.get('workers', '?')} workers.")
    auto = [r for r in rows if r["tool"] == "allcores-auto" and r.get("speedup")]
    if auto:
        worst = min(auto, key=lambda r: r["speedup"])
        if worst["speedup"] < AUTO_SLOWER_FLAG:
            out.append(f"allcores auto measured slower than serial at "
                       f"{cost_text(worst['cost_s'])} per item ({ratio_text(worst['speedup'])}): "
                       "its choice did not pay there.")
        elif worst["speedup"] >= 1:
            out.append(f"allcores auto was never slower than serial (its smallest speedup: "
                       f"{ratio_text(worst['speedup'])}, at {cost_text(worst['cost_s'])} "
                       "per item).")
        else:
            out.append(f"allcores auto was never more than {1 - AUTO_SLOWER_FLAG:.0%} "
                       f"slower than serial (worst: {ratio_text(worst['speedup'])} at "
                       f"{cost_text(worst['cost_s'])} per item).")
    wrong = [r for r in rows if r.get("correct") is False]
    if wrong:
        out.append(f"{len(wrong)} row(s) gave a wrong answer or failed: "
                   + ", ".join(f"{r['label']} at {cost_text(r['cost_s'])}" for r in wrong)
                   + ".")
    return out


# Imported last: the second half of the section uses this module's helpers.
from allcores.bench import serial_tax  # noqa: E402
