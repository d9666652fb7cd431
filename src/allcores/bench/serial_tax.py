"""Section "overhead", part two: the evidence for issue #15, "Auto without a serial tax".

Does ``backend="auto"`` cost nothing where parallelism pays, and little where it does
not? Each part states
the issue's goal and whether this run met it (a goal stated for a size this run did not
measure, e.g. under ``--quick``, is shown next to the figure but never claimed):

- **4 equal items of 0.5 s on 2 workers** (``2 x workers`` items of a calibrated spin;
  0.1 s under ``--quick``): ``allcores.map`` with a function it has never planned (a new
  ``functools.partial(spin)`` each run, so the planner samples it) and with one it
  planned before (the remembered path), against serial and ``multiprocessing.Pool.map``.
  Goal: within 1.15x of the ideal, ``items x cost / workers``, taken from the measured
  serial run.
- **call latency for 10 cheap items** (identity): a list comprehension, ``allcores.map``
  (auto, a function planned before: the warm path), ``allcores.Pool.map`` (processes),
  ``multiprocessing.Pool.map`` and ``ProcessPoolExecutor.map`` (both under allcores'
  default start method), joblib; 200 calls per timing (fewer for a tool whose calls take
  long). Goals: ``allcores.map`` <= 50 us a call; ``allcores.Pool.map`` no slower than
  ``multiprocessing.Pool.map`` (ratio <= 1.0, with ``BEATS_MARGIN``'s 5% for noise).
- **spawn start-up to first result**: ``allcores.Pool(2, start_method="spawn")`` and a
  ``spawn`` ``multiprocessing.Pool(2)``, from construction to the first ``map(ident,
  [1])`` result, then closing; each run in a fresh interpreter (a script in a temporary
  folder, ``ident`` in a module of its own, and again defined in the script itself),
  timed inside it. Goal: allcores <= 1.5x multiprocessing.
- **sha256 of 400 blobs of 1 MB** (100 under ``--quick``; bytes from a seeded generator,
  made once), an unmarked module-level function, ``allcores.map`` with its defaults
  against the serial loop: the first call after the planner's memory is cleared, and a
  repeat; the plan and its reason are shown. Goal: >= 1.5x serial's speed, on 2 workers.
- **what auto decides**: ``allcores.plan(spin, items).backend`` at each cost of the
  crossover table (the auto row's items), next to the measured speedups and crossover of
  ``allcores.map(backend="process")``; and 8 consecutive plans of one call (20,000 items
  of 15 us) must all choose the same backend (also shown: 8 plans each after clearing
  the memory, which only the measurement's noise can make disagree).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import allcores
from allcores._memory import memory as planner_memory
from allcores.bench.measure import (
    SEED,
    Config,
    Progress,
    Section,
    Table,
    Timing,
    cost_text,
    interleaved,
    ratio_text,
    seconds_text,
    timing_text,
)
from allcores.bench.overhead import (
    BEATS_MARGIN,
    COSTS_S,
    _crossover_text,
    _optional,
    iterations_for,
)
from allcores.bench.workloads import identity, spin
from allcores.pool import default_start_method

# 4 equal items: EVEN_ITEMS_PER_WORKER per worker, each a spin of this many seconds.
EVEN_ITEM_S = 0.5
EVEN_ITEM_QUICK_S = 0.1
EVEN_ITEM_MIN_S = 0.005      # however small --scale (tests) makes it
EVEN_ITEMS_PER_WORKER = 2
EVEN_GOAL = 1.15             # allcores.map's time / the ideal
# Latency: calls of LATENCY_ITEMS items per timing; a tool whose calls are slow gets
# fewer (at least LATENCY_MIN_CALLS), so that one timing lasts about LATENCY_TIMING_S.
LATENCY_ITEMS = 10
LATENCY_CALLS = 200
LATENCY_MIN_CALLS = 10
LATENCY_TIMING_S = 0.5
LATENCY_GOAL_S = 50e-6       # per call of the default allcores.map
POOL_VS_MP_GOAL = 1.0        # allcores.Pool.map / multiprocessing.Pool.map, + BEATS_MARGIN
# Spawn start-up: each run is a fresh interpreter of about 0.3 s: cheap enough for more
# rounds than --repeat asks (at full scale), which a ratio near its goal needs.
SPAWN_GOAL = 1.5
SPAWN_MIN_ROUNDS = 5
SPAWN_TIMEOUT_S = 120
# sha256 over blobs of 1 MB: hashlib releases the GIL on inputs this big.
HASH_BLOBS = 400
HASH_BLOBS_QUICK = 100
HASH_MIN_BLOBS = 8
HASH_BLOB_BYTES = 1 << 20
HASH_GOAL = 1.5              # speedup over the serial loop ...
HASH_GOAL_WORKERS = 2        # ... stated for this many workers
# Plan stability: consecutive plans of one call.
STABILITY_PLANS = 8
STABILITY_COST_S = 15e-6
STABILITY_ITEMS = 20_000

EVEN_RUNS = [
    ("serial", "serial loop"),
    ("mp-map", "multiprocessing.Pool.map"),
    ("allcores-fresh", "allcores.map, auto, a function never planned"),
    ("allcores-known", "allcores.map, auto, the function planned before"),
]
LATENCY_TOOLS = [
    ("comprehension", "list comprehension"),
    ("allcores-auto", "allcores.map, defaults (auto)"),
    ("allcores-pool", "allcores.Pool.map (processes)"),
    ("mp-map", "multiprocessing.Pool.map"),
    ("futures", "ProcessPoolExecutor.map"),
    ("joblib", "joblib Parallel"),
]
SPAWN_TOOLS = [
    ("allcores", 'allcores.Pool({workers}, start_method="spawn")'),
    ("multiprocessing", 'multiprocessing.get_context("spawn").Pool({workers})'),
]
SPAWN_FUNCTIONS = [
    ("module", "ident in a module"),
    ("script", "ident in the script (__main__)"),
]
HASH_RUNS = [
    ("serial", "serial loop"),
    ("allcores-first", "allcores.map, first call (planner memory cleared)"),
    ("allcores-repeat", "allcores.map, the call repeated"),
]


def digest(blob: bytes) -> bytes:
    """sha256 of one blob: an unmarked function (hashlib releases the GIL on big inputs,
    nothing tells allcores so)."""
    return hashlib.sha256(blob).digest()


def even_item_s(config: Config) -> float:
    base = EVEN_ITEM_QUICK_S if config.quick else EVEN_ITEM_S
    return max(EVEN_ITEM_MIN_S, base * config.scale)


def hash_blobs(config: Config) -> int:
    base = HASH_BLOBS_QUICK if config.quick else HASH_BLOBS
    return max(HASH_MIN_BLOBS, round(base * config.scale))


def spawn_rounds(config: Config) -> int:
    return config.repeat if config.scale < 1 else max(config.repeat, SPAWN_MIN_ROUNDS)


def steps(config: Config) -> int:
    # warm-up + rounds for the even items, the latency and sha256; spawn rounds; the
    # decisions at each cost; the stability plans.
    return 3 * (1 + config.repeat) + spawn_rounds(config) + 2


def goal_check(value: float | None, limit: float, *, at_most: bool = True,
               margin: float = 1.0, tested: bool = True,
               text: Callable[[float], str] = ratio_text, stated_for: str = "") -> dict:
    """An issue #15 goal against a figure of this run. ``met`` is True or False only
    where ``tested`` (the run measured the goal's own case; otherwise ``within`` says
    how this run's figure compares); ``margin`` widens the bound for noise."""
    op = "<=" if at_most else ">="
    wanted = f"{op} {text(limit)}" + (f" (+{margin - 1:.0%} for noise)"
                                      if margin != 1 else "")
    goal = {"wanted": wanted, "limit": limit, "margin": margin, "at_most": at_most,
            "value": value, "within": None, "met": None}
    if value is None or (not at_most and value <= 0):
        goal["text"] = f"{wanted}: not measured"
        return goal
    bound = limit * margin if at_most else limit / margin
    within = value <= bound if at_most else value >= bound
    goal.update(within=within, met=within if tested else None)
    if not tested:
        goal["text"] = (f"{wanted}, stated for {stated_for}: not tested at this size "
                        f"({text(value)}, {'within' if within else 'outside'} it)")
    elif within:
        goal["text"] = f"{wanted}: met ({text(value)})"
    else:
        off = (value / limit if at_most else limit / value) - 1
        goal["text"] = f"{wanted}: MISSED by {off:.0%} ({text(value)})"
    return goal


def _rounds_progress(progress: Progress, first_key: Any, what: str,
                     repeat: int) -> Callable[[int, Any], None]:
    def on_run(round_index: int, key: Any) -> None:
        if key == first_key:
            progress.step(f"overhead: {what}, timed round {round_index + 1} of {repeat}")
    return on_run


def _warm_runs(runners: dict, right: Callable[[Any, Any], bool]) -> dict[str, tuple]:
    """One untimed run of each runner, in place of its warm-up: ``(timing None, whether
    the answer was right, the error it raised)``, as :func:`interleaved` reports; a
    runner that raised is dropped from ``runners`` (its row says why)."""
    warm = {}
    for key in list(runners):
        try:
            warm[key] = (None, bool(right(key, runners[key]())), None)
        except Exception as error:   # reported in the row, never fatal
            warm[key] = (None, False, f"failed: {type(error).__name__}: {error}")
            del runners[key]
    return warm


def _timed_row(part: str, key: str, label: str, measured: tuple, **extra) -> dict:
    timing, right, error = measured
    row = {"part": part, "run": key, "label": label, **extra}
    if error is not None:
        row.update(correct=False, status=error)
    else:
        row.update(correct=right, status="ok" if right else "WRONG", **timing.to_json())
    return row


def run(config: Config, progress: Progress, rate: float, rows: list[dict],
               crossovers: dict, mp_pool) -> tuple[list[dict], dict]:
    """The issue #15 parts (see the module docstring): their rows, and their sizes."""
    workers = config.workers
    out: list[dict] = []
    extra: dict[str, Any] = {}
    for part in (_even_items, _latency, _spawn_start_up, _hashlib):
        part_rows, part_extra = part(config, progress, rate, workers, mp_pool)
        out += part_rows
        extra.update(part_extra)
    progress.step("overhead: what auto decides at each cost")
    out += _decisions(rows, crossovers, workers)
    progress.step(f"overhead: {STABILITY_PLANS} consecutive plans of one call")
    stability_rows, stability_extra = _stability(rate, workers)
    out += stability_rows
    extra.update(stability_extra)
    planner_memory.forget()   # what the parts measured is no later section's business
    return out, extra


def _even_items(config: Config, progress: Progress, rate: float, workers: int,
                mp_pool) -> tuple[list[dict], dict]:
    item_s = even_item_s(config)
    calibrated = min(item_s, 0.01)   # iterations_for times a few runs of each cost
    iterations = max(1, round(iterations_for(calibrated, rate) * item_s / calibrated))
    n = EVEN_ITEMS_PER_WORKER * workers
    items = [iterations] * n
    known = functools.partial(spin)   # planned in the warm-up, remembered afterwards

    def auto(fn):
        results = allcores.map(fn, items, workers=workers)
        return results, _chosen(fn, workers)

    runners = {
        "serial": lambda: (list(map(spin, items)), None),
        "mp-map": lambda: (mp_pool.map(spin, items), None),
        # A new object each run: the planner has never seen it, and samples it.
        "allcores-fresh": lambda: auto(functools.partial(spin)),
        "allcores-known": lambda: auto(known),
    }
    what = f"{n} items of {seconds_text(item_s)}"
    progress.step(f"overhead: {what} (warm-up)")
    chosen: dict[str, list] = {key: [] for key in runners}
    warm = _warm_runs(runners, lambda key, result: result[0] == items)

    def check(key, result) -> bool:
        chosen[key].append(result[1])
        return result[0] == items

    measured = {**warm, **interleaved(
        runners, check, config.repeat,
        _rounds_progress(progress, next(iter(runners), None), what, config.repeat))}
    serial = measured["serial"]
    per_item = (serial[0].median / n if serial[0] is not None and serial[1] else None)
    # Equal items: the best any pool can do is ceil(n / workers) items one after another.
    ideal = per_item * -(-n // workers) if per_item else None
    out = []
    for key, label in EVEN_RUNS:
        row = _timed_row("even", key, label, measured[key], items=n, item_s=item_s,
                         iterations=iterations)
        if row["correct"] and not warm[key][1]:
            row.update(correct=False, status="WRONG")
        if row["correct"] and ideal:
            row["vs_ideal"] = row["median_s"] / ideal
            row["speedup"] = per_item * n / row["median_s"]
        if key.startswith("allcores"):
            row["chose"] = chosen[key]
            row["goal"] = goal_check(row.get("vs_ideal"), EVEN_GOAL,
                                     tested=item_s == EVEN_ITEM_S,
                                     stated_for=f"items of {seconds_text(EVEN_ITEM_S)}")
        out.append(row)
    return out, {"even": {"items": n, "item_s": item_s, "iterations": iterations,
                          "ideal_s": ideal, "nominal_ideal_s": item_s * -(-n // workers)}}


def _latency(config: Config, progress: Progress, rate: float, workers: int,
             mp_pool) -> tuple[list[dict], dict]:
    items = list(range(LATENCY_ITEMS))
    start_method = default_start_method()
    context = multiprocessing.get_context(start_method)
    joblib = _optional("joblib")
    progress.step(f"overhead: call latency, {LATENCY_ITEMS} items (starting the pools)")
    pool = allcores.Pool(workers, backend="process")
    mp = context.Pool(workers)
    executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
    parallel = joblib.Parallel(n_jobs=workers) if joblib is not None else None
    if parallel is not None:
        parallel.__enter__()
    calls: dict[str, Callable[[], list] | str] = {
        "comprehension": lambda: [identity(x) for x in items],
        "allcores-auto": lambda: allcores.map(identity, items),
        "allcores-pool": lambda: pool.map(identity, items),
        "mp-map": lambda: mp.map(identity, items),
        "futures": lambda: list(executor.map(identity, items)),
        "joblib": (lambda: parallel(joblib.delayed(identity)(x) for x in items))
        if parallel is not None else "not installed",
    }
    budget = LATENCY_TIMING_S * (0.5 if config.quick else 1.0) * config.scale
    most = max(LATENCY_MIN_CALLS, round(LATENCY_CALLS * config.scale))
    counts: dict[str, int] = {}
    runners: dict[str, Callable[[], list]] = {
        key: functools.partial(_repeat_call, call, 3)
        for key, call in calls.items() if not isinstance(call, str)}
    try:
        # The warm-up: 3 calls, then 5 more timed one by one to choose the calls per
        # timing (from the fastest: a passing disturbance should not cut the count).
        warm = _warm_runs(runners, lambda key, results: all(r == items for r in results))
        for key in runners:
            per_call = math.inf
            for _ in range(5):
                start = time.perf_counter()
                calls[key]()
                per_call = min(per_call, time.perf_counter() - start)
            counts[key] = max(LATENCY_MIN_CALLS, min(most, int(budget / per_call)))
            runners[key] = functools.partial(_repeat_call, calls[key], counts[key])
        measured = {**warm, **interleaved(
            runners, lambda key, results: (len(results) == counts[key]
                                           and all(r == items for r in results)),
            config.repeat, _rounds_progress(progress, next(iter(runners), None),
                                            "call latency", config.repeat))}
        auto_plan = allcores.plan(identity, items)   # remembered: what the calls did
    finally:
        if parallel is not None:
            parallel.__exit__(None, None, None)
        pool.terminate()
        mp.terminate()
        mp.join()
        executor.shutdown(wait=True, cancel_futures=True)
    out = []
    for key, label in LATENCY_TOOLS:
        if key not in measured:
            out.append({"part": "latency", "run": key, "label": label, "correct": None,
                        "status": calls[key]})
            continue
        row = _timed_row("latency", key, label, measured[key], calls=counts.get(key),
                         items=LATENCY_ITEMS)
        if row["correct"] and not warm[key][1]:
            row.update(correct=False, status="WRONG")
        if "median_s" in row:
            row.update(per_call_s=row["median_s"] / counts[key],
                       per_call_min_s=row["min_s"] / counts[key],
                       per_call_max_s=row["max_s"] / counts[key])
        out.append(row)
    by = {r["run"]: r for r in out if r.get("correct")}
    mp_call = by.get("mp-map", {}).get("per_call_s")
    for row in out:
        if mp_call and row.get("correct"):
            row["vs_mp_map"] = row["per_call_s"] / mp_call
        if row["run"] == "allcores-auto":
            row["chose"] = auto_plan.backend
            row["reason"] = auto_plan.reason
            row["goal"] = goal_check(row.get("per_call_s") if row["correct"] else None,
                                     LATENCY_GOAL_S, text=seconds_text)
        elif row["run"] == "allcores-pool":
            row["goal"] = goal_check(row.get("vs_mp_map"), POOL_VS_MP_GOAL,
                                     margin=BEATS_MARGIN)
    return out, {"latency": {"items": LATENCY_ITEMS, "calls": counts,
                             "start_method": start_method}}


def _chosen(fn, workers: int) -> str | None:
    """The backend the planner last chose for ``fn`` (read from its memory)."""
    decided = planner_memory.recall(fn, workers)[1]
    return decided[0] if decided is not None else None


def _repeat_call(call: Callable[[], list], count: int) -> list:
    return [call() for _ in range(count)]


STARTUP_FUNCTION_MODULE = '''\
def ident(x):
    return x
'''

# Run as a script in a temporary folder: a fresh interpreter per measurement, imports
# done before the clock starts, as a user's script would have them.
STARTUP_SCRIPT = '''\
"""One start-up measurement of the allcores benchmark's overhead section."""
import json
import sys
import time


def ident(x):
    return x


def main(tool, function, workers):
    if tool == "allcores":
        import allcores

        Pool = allcores.Pool

        def start():
            return Pool(workers, start_method="spawn")

        def close(pool):
            pool.close()
    else:
        import multiprocessing

        context = multiprocessing.get_context("spawn")

        def start():
            return context.Pool(workers)

        def close(pool):
            pool.close()
            pool.join()
    if function == "module":
        from startup_function import ident as fn
    else:
        fn = ident
    began = time.perf_counter()
    pool = start()
    result = pool.map(fn, [1])
    first = time.perf_counter()
    close(pool)
    closed = time.perf_counter()
    print(json.dumps({"ok": result == [1], "first_result_s": first - began,
                      "close_s": closed - first}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
'''


def _start_up_once(folder: str, tool: str, function: str, workers: int) -> dict:
    command = [sys.executable, "startup_probe.py", tool, function, str(workers)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=folder,
                              timeout=SPAWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"failed: no answer in {SPAWN_TIMEOUT_S} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"failed: exit status {done.returncode}: {last}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _spawn_start_up(config: Config, progress: Progress, rate: float, workers: int,
                    mp_pool) -> tuple[list[dict], dict]:
    rounds = spawn_rounds(config)
    figures: dict[tuple[str, str], dict] = {
        (function, tool): {"first": [], "close": [], "ok": True, "error": None}
        for function, _ in SPAWN_FUNCTIONS for tool, _ in SPAWN_TOOLS}
    with tempfile.TemporaryDirectory(prefix="allcores-startup-") as folder:
        with open(os.path.join(folder, "startup_probe.py"), "w") as script:
            script.write(STARTUP_SCRIPT)
        with open(os.path.join(folder, "startup_function.py"), "w") as module:
            module.write(STARTUP_FUNCTION_MODULE)
        for round_index in range(rounds):
            progress.step(f"overhead: spawn start-up, fresh interpreters, round "
                          f"{round_index + 1} of {rounds}")
            for (function, tool), figure in figures.items():
                if figure["error"]:
                    continue
                result = _start_up_once(folder, tool, function, workers)
                if "error" in result:
                    figure["error"] = result["error"]
                    continue
                figure["ok"] = figure["ok"] and result["ok"]
                figure["first"].append(result["first_result_s"])
                figure["close"].append(result["close_s"])
    labels = dict(SPAWN_TOOLS)
    out = []
    for (function, tool), figure in figures.items():
        row = {"part": "spawn", "run": tool, "function": function,
               "label": labels[tool].format(workers=workers), "workers": workers,
               "rounds": rounds}
        if figure["error"]:
            row.update(correct=False, status=figure["error"])
        else:
            first, close = Timing(figure["first"]), Timing(figure["close"])
            row.update(correct=figure["ok"], status="ok" if figure["ok"] else "WRONG",
                       first_result=first.to_json(), close=close.to_json(),
                       **first.to_json())
        out.append(row)
    for function, _ in SPAWN_FUNCTIONS:
        mine, theirs = (next(r for r in out if r["function"] == function and r["run"] == tool)
                        for tool in ("allcores", "multiprocessing"))
        ratio = (mine["median_s"] / theirs["median_s"]
                 if mine["correct"] and theirs["correct"] else None)
        mine["vs_multiprocessing"] = ratio
        mine["goal"] = goal_check(ratio, SPAWN_GOAL)
    return out, {"spawn": {"rounds": rounds, "workers": workers}}


def _hashlib(config: Config, progress: Progress, rate: float, workers: int,
             mp_pool) -> tuple[list[dict], dict]:
    n = hash_blobs(config)
    progress.step(f"overhead: sha256 of {n} blobs of 1 MB (making them, warm-up)")
    generator = random.Random(SEED)
    blobs = [generator.randbytes(HASH_BLOB_BYTES) for _ in range(n)]
    reference = [digest(blob) for blob in blobs]

    def auto():
        results = allcores.map(digest, blobs, workers=workers)
        return results, _chosen(digest, workers)

    def first_call():
        planner_memory.forget()
        return auto()

    runners = {"serial": lambda: ([digest(blob) for blob in blobs], None),
               "allcores-first": first_call, "allcores-repeat": auto}
    warm = _warm_runs(runners, lambda key, result: result[0] == reference)
    chosen: dict[str, list] = {key: [] for key in runners}

    def check(key, result) -> bool:
        chosen[key].append(result[1])
        return result[0] == reference

    measured = {**warm, **interleaved(
        runners, check, config.repeat,
        _rounds_progress(progress, next(iter(runners), None), "sha256", config.repeat))}
    plans = {}
    for when in ("fresh", "remembered"):
        if when == "fresh":
            planner_memory.forget()
        made = allcores.plan(digest, blobs, workers=workers)
        sampled = made.sampled_results
        # What the planner measured (its reason words only the best parallel backend).
        figures = planner_memory.recall(digest, workers)[0]
        plans[when] = {"backend": made.backend, "reason": made.reason,
                       "predicted_speedup": made.predicted_speedup,
                       "seconds_per_item": getattr(figures, "seconds_per_item", None),
                       "transfer_s": getattr(figures, "transfer_s", None),
                       "thread_efficiency": getattr(figures, "thread_efficiency", None),
                       "sampled_right": sampled == reference[:len(sampled)]}
    serial = measured["serial"]
    serial_s = serial[0].median if serial[0] is not None and serial[1] else None
    tested = n == HASH_BLOBS and workers == HASH_GOAL_WORKERS
    out = []
    for key, label in HASH_RUNS:
        row = _timed_row("hashlib", key, label, measured[key], blobs=n)
        if row["correct"] and not warm[key][1]:
            row.update(correct=False, status="WRONG")
        if serial_s and row["correct"]:
            row["speedup"] = serial_s / row["median_s"]
        if key != "serial":
            row["chose"] = chosen[key]
            row["goal"] = goal_check(
                row.get("speedup"), HASH_GOAL, at_most=False, tested=tested,
                stated_for=f"{HASH_BLOBS} blobs on {HASH_GOAL_WORKERS} workers")
        out.append(row)
    plan_row = {"part": "hashlib-plan", "label": "allcores.plan(digest, blobs)",
                "blobs": n, "plans": plans,
                "correct": all(p["sampled_right"] for p in plans.values())}
    plan_row["status"] = "ok" if plan_row["correct"] else "WRONG"
    out.append(plan_row)
    return out, {"hashlib": {"blobs": n, "blob_bytes": HASH_BLOB_BYTES, "seed": SEED,
                             "plans": plans}}


def _decisions(rows: list[dict], crossovers: dict, workers: int) -> list[dict]:
    """``allcores.plan`` at each cost of the crossover table (the auto row's items),
    fresh each time, against what the tools measured there."""
    by = {(r["tool"], r["cost_s"]): r for r in rows}
    out = []
    for cost in COSTS_S:
        auto = by.get(("allcores-auto", cost), {})
        if "items" not in auto:
            continue
        iterations, n = auto["iterations"], auto["items"]
        planner_memory.forget()
        made = allcores.plan(spin, [iterations] * n, workers=workers)
        sampled = made.sampled_results
        right = sampled == [iterations] * len(sampled)
        # Borne out, at this cost: a parallel decision where the backend it picked
        # measured no slower than serial; serial where processes did not beat serial by
        # BEATS_MARGIN. (Between the two, either decision is fine: a no-regret rule,
        # judged per cost, so that one noisy cost does not move the verdict of others
        # as it moves the crossover.)
        judge = {"serial": "allcores-process", "process": "allcores-process",
                 "thread": "allcores-thread"}.get(made.backend)
        measured = by.get((judge, cost), {}).get("speedup")
        borne_out = (None if measured is None else measured < BEATS_MARGIN
                     if made.backend == "serial" else measured >= 1.0)
        out.append({
            "part": "decision", "label": f"auto at {cost_text(cost)}", "cost_s": cost,
            "items": n, "backend": made.backend,
            "predicted_speedup": made.predicted_speedup, "reason": made.reason,
            "measured_auto_speedup": auto.get("speedup"),
            "measured_process_speedup": by.get(("allcores-process", cost), {}).get("speedup"),
            "process_beats_serial": (crossovers.get("allcores-process") is not None
                                     and cost >= crossovers["allcores-process"]),
            "judged_by": judge, "judged_speedup": measured, "agrees": borne_out,
            "correct": right, "status": "ok" if right else "WRONG"})
    return out


def stability_goal(backends: list[str]) -> dict:
    """The goal of consecutive plans of one call: they all choose the same backend."""
    agree = len(set(backends)) == 1
    return {"wanted": "all the same backend", "met": agree, "within": agree,
            "text": "all the same backend: " + (
                "met" if agree else f"MISSED ({len(set(backends))} different backends)")}


def _stability(rate: float, workers: int) -> tuple[list[dict], dict]:
    iterations = iterations_for(STABILITY_COST_S, rate)
    items = [iterations] * STABILITY_ITEMS
    out = []
    for mode in ("remembered", "fresh"):
        planner_memory.forget()
        plans, right = [], True
        for _ in range(STABILITY_PLANS):
            if mode == "fresh":
                planner_memory.forget()
            start = time.perf_counter()
            made = allcores.plan(spin, items, workers=workers)
            seconds = time.perf_counter() - start
            sampled = made.sampled_results
            right = right and sampled == [iterations] * len(sampled)
            plans.append({"backend": made.backend, "seconds": seconds,
                          "predicted_speedup": made.predicted_speedup,
                          "seconds_per_item": made.seconds_per_item})
        backends = [p["backend"] for p in plans]
        agree = len(set(backends)) == 1
        row = {"part": "stability", "run": mode, "label": (
            f"{STABILITY_PLANS} consecutive plans" if mode == "remembered" else
            f"{STABILITY_PLANS} plans, memory cleared before each"),
            "cost_s": STABILITY_COST_S, "items": STABILITY_ITEMS, "plans": plans,
            "backends": backends, "agree": agree, "correct": right,
            "status": "ok" if right else "WRONG"}
        if mode == "remembered":
            row["goal"] = stability_goal(backends)
        out.append(row)
    return out, {"stability": {"cost_s": STABILITY_COST_S, "iterations": iterations,
                               "items": STABILITY_ITEMS, "plans": STABILITY_PLANS}}


# --- issue #15: what a person reads ---------------------------------------------------------


def _answer(row: dict) -> str:
    return "ok" if row.get("correct") else row.get("status", "-")


# What the planner remembers as its decision when the sample ran every item.
NOTHING_LEFT = "none (the sample ran every item)"


def _chose_text(chose) -> str:
    """The backend(s) the planner chose, over the timed runs: "process", "serial x2,
    process x1"."""
    if not chose:
        return "-"
    if isinstance(chose, str):
        return chose
    chose = [NOTHING_LEFT if name is None else name for name in chose]
    counts = {name: chose.count(name) for name in dict.fromkeys(chose)}
    if len(counts) == 1:
        return str(next(iter(counts)))
    return ", ".join(f"{name} x{count}" for name, count in counts.items())


def _time_cell(row: dict, prefix: str = "") -> str:
    if f"{prefix}median_s" not in row:
        return row.get("status", "-")
    return timing_text(Timing(row[f"{prefix}times_s"]))


def tables(rows: list[dict], extra: dict, crossovers: dict,
                      workers: int) -> list[Table]:
    tables = []
    parts = {part: [r for r in rows if r.get("part") == part]
             for part in ("even", "latency", "spawn", "hashlib", "hashlib-plan",
                          "decision", "stability")}
    even = extra.get("even")
    if parts["even"] and even:
        ideal = even["ideal_s"]
        cells = [[r["label"], _time_cell(r),
                  ratio_text(r.get("vs_ideal")), ratio_text(r.get("speedup")),
                  _chose_text(r.get("chose")), _answer(r),
                  r["goal"]["text"] if "goal" in r else "-"] for r in parts["even"]]
        size = seconds_text(even["item_s"])
        tables.append(Table(
            f"overhead: {even['items']} equal items of {size} on {workers} workers "
            "(issue #15)",
            ["run", "time", f"vs ideal ({seconds_text(ideal) if ideal else '-'})",
             "vs serial", "auto chose", "answer", "goal"], cells,
            [f"A calibrated spin of {size} per item ({even['iterations']:,} iterations)"
             + ("" if even["item_s"] == EVEN_ITEM_S else
                f"; the goal is stated for {seconds_text(EVEN_ITEM_S)} items, this run "
                "used smaller ones (--quick)") + ".",
             "Ideal: the measured serial time per item x ceil(items / workers) (nominal "
             f"{seconds_text(even['nominal_ideal_s'])}). Warm pools; 'never planned': a "
             "new functools.partial(spin) each run, so the planner samples it; 'planned "
             "before': one partial, planned in the warm-up. multiprocessing.Pool: its "
             "default start method, chunksize of its map's default."]))
    latency = extra.get("latency")
    if parts["latency"] and latency:
        cells = []
        for r in parts["latency"]:
            if "per_call_s" not in r:
                cells.append([r["label"], r.get("status", "-"), "-", "-", _answer(r), "-"])
                continue
            per_call = (f"{seconds_text(r['per_call_s'])} ({seconds_text(r['per_call_min_s'])}"
                        f"-{seconds_text(r['per_call_max_s'])})")
            if r.get("chose"):
                per_call += f", ran {r['chose']}"
            cells.append([r["label"], per_call, str(r["calls"]),
                          ratio_text(r.get("vs_mp_map")), _answer(r),
                          r["goal"]["text"] if "goal" in r else "-"])
        tables.append(Table(
            f"overhead: call latency, {latency['items']} cheap items, {workers} workers",
            ["tool", "per call", "calls per timing", "vs multiprocessing.Pool.map",
             "answer", "goal"], cells,
            [f"fn = identity, {latency['items']} items per call; per call: the median "
             "timing / calls (min-max over the rounds). Warm pools, the function used "
             "before (allcores.map remembers it: the plan is not sampled again). "
             f"multiprocessing and ProcessPoolExecutor: {latency['start_method']}, "
             "allcores' default start method.",
             f"Goal for allcores.Pool.map: its time / multiprocessing.Pool.map's <= "
             f"{POOL_VS_MP_GOAL:.2f}x, with {BEATS_MARGIN - 1:.0%} allowed for noise "
             "(BEATS_MARGIN)."]))
    if parts["spawn"]:
        labels = dict(SPAWN_FUNCTIONS)
        cells = [[r["label"], labels[r["function"]], _time_cell(r),
                  (timing_text(Timing(r["close"]["times_s"])) if "close" in r else "-"),
                  ratio_text(r.get("vs_multiprocessing")) if r["run"] == "allcores"
                  else "1x", _answer(r), r["goal"]["text"] if "goal" in r else "-"]
                 for r in parts["spawn"]]
        rounds = parts["spawn"][0]["rounds"]
        tables.append(Table(
            "overhead: spawn start-up to first result", ["pool", "function",
                                                         "construction to first result",
                                                         "close", "vs multiprocessing",
                                                         "answer", "goal"], cells,
            [f"Each run a fresh interpreter ({rounds} per row, interleaved): a script in "
             "a temporary folder, imports done, then timed inside it (perf_counter) from "
             "constructing the pool to the result of map(ident, [1]); then close (and, "
             "for multiprocessing, join). The script's own ident travels by value with "
             "allcores (cloudpickle), by reference with multiprocessing."]))
    hashing = extra.get("hashlib")
    if parts["hashlib"] and hashing:
        cells = [[r["label"], _time_cell(r), ratio_text(r.get("speedup")),
                  _chose_text(r.get("chose")), _answer(r),
                  r["goal"]["text"] if "goal" in r else "-"] for r in parts["hashlib"]]
        notes = [f"digest(b) = hashlib.sha256(b).digest(), module-level and unmarked; "
                 f"{hashing['blobs']} blobs of {hashing['blob_bytes'] // 2**20} MB from "
                 f"random.Random({hashing['seed']}).randbytes, made once"
                 + ("" if hashing["blobs"] == HASH_BLOBS else
                    f" (the goal is stated for {HASH_BLOBS}: --quick uses fewer)")
                 + f"; allcores.map(digest, blobs, workers={workers}), backend auto. "
                 "First call: the planner's memory cleared just before it (it remembers "
                 "a function's costs for 60 s); repeat: right after it."]
        for row in parts["hashlib-plan"]:
            for when, made in row["plans"].items():
                efficiency = made.get("thread_efficiency")
                notes.append(
                    f"allcores.plan(digest, blobs), {when}: {made['backend']}; "
                    f"{made['reason']}" + ("" if efficiency is None else
                                           f" (two threads measured {efficiency:.0%} "
                                           "in parallel)"))
        tables.append(Table(
            f"overhead: sha256 of {hashing['blobs']} blobs of 1 MB, {workers} workers",
            ["run", "time", "vs serial", "auto chose", "answer", "goal"], cells, notes))
    if parts["decision"]:
        process = crossovers.get("allcores-process")
        cells = [[cost_text(r["cost_s"]), f"{r['items']:,}", r["backend"],
                  ratio_text(r["predicted_speedup"]),
                  ratio_text(r["measured_auto_speedup"]),
                  ratio_text(r["measured_process_speedup"]),
                  "yes" if r["process_beats_serial"] else "no",
                  {True: "yes", False: "NO", None: "-"}[r["agrees"]]
                  if r["correct"] else "WRONG"]
                 for r in parts["decision"]]
        tables.append(Table(
            'overhead: what backend="auto" decides at each cost, against the measured '
            "crossover",
            ["cost", "items", "auto decides", "predicted speedup", "measured: auto",
             "measured: process", "process beats serial", "decision borne out"], cells,
            [f"allcores.plan(spin, items, workers={workers}) after the timed rounds, "
             "the planner's memory cleared before each; items: those of the auto row. "
             "Measured speedups: the crossover table's medians.",
             "Process beats serial: at or above the measured crossover of allcores.map, "
             f"process ({_crossover_text(process)}). Borne out, at each cost: a parallel "
             "decision where allcores.map on that backend measured no slower than serial; "
             f"serial where allcores.map, process did not measure {BEATS_MARGIN - 1:.0%} "
             "faster than serial."]))
    if parts["stability"]:
        cells = []
        for r in parts["stability"]:
            speedups = [p["predicted_speedup"] for p in r["plans"]]
            seconds = [p["seconds"] for p in r["plans"]]
            cells.append([r["label"], ", ".join(r["backends"]),
                          f"{ratio_text(min(speedups))}-{ratio_text(max(speedups))}",
                          f"{seconds_text(seconds[0])} first, then "
                          f"{seconds_text(sorted(seconds[1:])[len(seconds[1:]) // 2])} "
                          "(median)" if len(seconds) > 1 else seconds_text(seconds[0]),
                          "yes" if r["agree"] else "NO", _answer(r),
                          r["goal"]["text"] if "goal" in r else "-"])
        first = parts["stability"][0]
        tables.append(Table(
            f"overhead: plans of one call, {first['items']:,} items of "
            f"{cost_text(first['cost_s'])}",
            ["plans", "backends", "predicted speedups", "planning time", "agree", "answer",
             "goal"], cells,
            ["allcores.plan(spin, items) again and again: consecutive plans use what "
             "the first one measured (checked on the first item) and change their "
             "decision only past a hysteresis; with the memory cleared, each plan "
             "samples anew (no goal: shown for the measurement's noise). Answer: the "
             "sampled items' results."]))
    return tables


def reading(section: Section) -> list[str]:
    """One sentence per issue #15 part: the figures and each goal's verdict."""
    rows = [r for r in section.rows if "part" in r]
    if not rows:
        return []
    workers = section.extra.get("workers", "?")
    by = {(r["part"], r.get("run"), r.get("function")): r for r in rows}
    out = []
    serial = by.get(("even", "serial", None), {})
    if serial.get("correct"):
        parts = []
        for key in ("allcores-fresh", "allcores-known"):
            row = by.get(("even", key, None))
            if row and "goal" in row and row.get("vs_ideal"):
                parts.append(f"{row['label'].split(', ', 2)[-1]}: "
                             f"{seconds_text(row['median_s'])}, {ratio_text(row['vs_ideal'])} the "
                             f"ideal (goal {row['goal']['text']})")
        mp = by.get(("even", "mp-map", None), {})
        out.append(
            f"{serial['items']} equal items of {seconds_text(serial['item_s'])} on "
            f"{workers} workers, allcores.map auto: " + "; ".join(parts)
            + f". Serial {seconds_text(serial['median_s'])}"
            + (f", multiprocessing.Pool.map {seconds_text(mp['median_s'])}"
               if mp.get("correct") else "") + ".")
    auto = by.get(("latency", "allcores-auto", None))
    pool = by.get(("latency", "allcores-pool", None))
    if auto and pool:
        text = (f"Call latency, {auto['items']} cheap items: allcores.map "
                + (f"{seconds_text(auto['per_call_s'])} a call"
                   if "per_call_s" in auto else auto["status"])
                + f" (goal {auto['goal']['text']}); allcores.Pool.map "
                + (f"{ratio_text(pool['vs_mp_map'])} multiprocessing.Pool.map's time"
                   if pool.get("vs_mp_map") else pool["status"])
                + f" (goal {pool['goal']['text']}).")
        out.append(text)
    spawn = [r for r in rows if r["part"] == "spawn" and r["run"] == "allcores"]
    if spawn:
        labels = dict(SPAWN_FUNCTIONS)
        out.append("Spawn start-up to the first result, allcores vs multiprocessing: "
                   + "; ".join(f"{labels[r['function']]} "
                               + (f"{seconds_text(r['median_s'])}, "
                                  if "median_s" in r else "")
                               + f"goal {r['goal']['text']}" for r in spawn) + ".")
    hashing = [r for r in rows if r["part"] == "hashlib" and r["run"] != "serial"]
    plan_row = next((r for r in rows if r["part"] == "hashlib-plan"), None)
    if hashing:
        text = (f"sha256 of {hashing[0]['blobs']} blobs of 1 MB (unmarked function): "
                + "; ".join(f"{r['label'].split(', ', 1)[-1]} "
                            + (f"{ratio_text(r['speedup'])} serial's speed, ran "
                               f"{_chose_text(r.get('chose'))}"
                               if r.get("speedup") else r["status"])
                            + f" (goal {r['goal']['text']})" for r in hashing))
        if plan_row:
            text += (f"; the plan with fresh memory: {plan_row['plans']['fresh']['backend']}"
                     f", remembered: {plan_row['plans']['remembered']['backend']}")
        out.append(text + ".")
    decisions = [r for r in rows if r["part"] == "decision" and r["agrees"] is not None]
    if decisions:
        wrong = [r for r in decisions if not r["agrees"]]
        crossover_s = section.extra.get("crossover_s", {}).get("allcores-process")
        decided = _chose_text([r["backend"] for r in decisions])
        text = (f'backend="auto" decides {decided} over the {len(decisions)} costs of the '
                "crossover table (the measured crossover of allcores.map, process: "
                f"{_crossover_text(crossover_s)}); the measured speedups bear the decision "
                f"out at {len(decisions) - len(wrong)} of {len(decisions)}")
        if wrong:
            text += ("; not at " + ", ".join(
                f"{cost_text(r['cost_s'])} ({r['backend']}; process measured "
                f"{ratio_text(r['measured_process_speedup'])})" for r in wrong))
        out.append(text + ".")
    for r in rows:
        if r["part"] == "stability" and "goal" in r:
            out.append(f"{len(r['backends'])} consecutive plans of {r['items']:,} items of "
                       f"{cost_text(r['cost_s'])}: {_chose_text(r['backends'])}; goal "
                       f"{r['goal']['text']}.")
    wrong = [r for r in rows if r.get("correct") is False]
    if wrong:
        out.append(f"{len(wrong)} issue #15 row(s) gave a wrong answer or failed: "
                   + ", ".join(r["label"] for r in wrong) + ".")
    return out
