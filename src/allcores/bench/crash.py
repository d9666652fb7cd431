"""Section "crash": what happens to a running map when a worker is ``kill -9``ed?

A map of about a second of pure-Python work (items of ~10 ms) runs on each tool; each
worker writes its pid into a folder on its first item, and the benchmark process
SIGKILLs one of them a third of the way through. Measured: the time from the kill to
the map's end, and how it ended:

- allcores (``Pool(retries=1)``): sees the death at once, re-runs the lost chunk on a new
  worker, and completes; its results are checked against the reference;
- ``multiprocessing.Pool.imap`` (the tutorial's recipe): the killed worker's task is
  lost and the map never ends; reported as "hangs" once a bound passes, then the pool is
  terminated;
- ``concurrent.futures.ProcessPoolExecutor``: raises ``BrokenProcessPool``; the time to
  the exception is reported, and every result of the map is lost.

A row's answer is wrong only if a tool handed back results that are wrong or incomplete:
a hang or an exception hands back nothing and is reported as what it is.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import allcores
from allcores.bench.measure import Config, Progress, Section, Table
from allcores.bench.overhead import calibrate
from allcores.bench.workloads import identity, spin_reporting_pid

QUESTION = "When a worker is killed mid-map, does the map finish, fail, or hang, and when?"

TOOLS = [("allcores", "allcores.Pool(retries=1).map"),
         ("multiprocessing", "multiprocessing.Pool.imap (tutorial)"),
         ("futures", "ProcessPoolExecutor.map")]
ITEM_S = 0.010
# How long multiprocessing.Pool.terminate() may take before it counts as hung.
TERMINATE_TIMEOUT_S = 5.0
KILL_AT = 1 / 3   # of the undisturbed run time


def hang_bound_s(config: Config) -> float:
    """How long after the kill a map with no result counts as hung."""
    return max(1.0, (3.0 if config.quick else 10.0) * min(1.0, config.scale * 4))


def steps(config: Config) -> int:
    return len(TOOLS)


def run(config: Config, progress: Progress) -> Section:
    started = time.perf_counter()
    workers = config.workers
    duration = (0.5 if config.quick else 1.0) * min(1.0, max(config.scale, 0.25))
    iterations = max(1, round(ITEM_S * calibrate()))
    count = max(8 * workers, int(duration * workers / ITEM_S))
    bound = hang_bound_s(config)
    rows = []
    for tool, label in TOOLS:
        progress.step(f"crash: kill -9 a worker of {label}")
        with tempfile.TemporaryDirectory(prefix="allcores-bench-pids-") as folder:
            items = [(iterations, folder) for _ in range(count)]
            row = {"tool": tool, "label": label, "items": count, "item_s": ITEM_S,
                   "hang_bound_s": bound}
            try:
                row.update(_RUNNERS[tool](items, iterations, folder, workers, bound))
            except Exception as error:
                row.update(correct=False, outcome=f"failed: {type(error).__name__}: {error}")
            row.setdefault("status", "ok" if row.get("correct") else
                           "WRONG" if row.get("correct") is False else row["outcome"])
            rows.append(row)
    table = Table(
        f"crash: one of {workers} workers SIGKILLed a third of the way through a map",
        ["tool", "outcome", "after the kill", "whole map", "results"],
        [[r["label"], r["outcome"],
          f"{r['after_kill_s']:.2f} s" if r.get("after_kill_s") is not None else "-",
          f"{r['total_s']:.2f} s" if r.get("total_s") is not None else "-",
          r.get("results", "-")] for r in rows],
        [f"{count} items of ~{ITEM_S * 1e3:.0f} ms; a map with no result {bound:.0f} s after "
         "the kill is reported as hung, then its pool is terminated."])
    section = Section(name="crash", question=QUESTION, rows=rows, tables=[table],
                      extra={"workers": workers, "items": count, "hang_bound_s": bound},
                      seconds=time.perf_counter() - started)
    section.reading = reading(section)
    return section


class _Killer(threading.Thread):
    """SIGKILLs the first worker that wrote its pid, once ``after_s`` have passed."""

    def __init__(self, folder: str, after_s: float):
        super().__init__(name="allcores-bench-killer", daemon=True)
        self.folder = folder
        self.after_s = after_s
        self.started_at = time.perf_counter()
        self.killed_at: float | None = None
        self.pid: int | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.002):
            if time.perf_counter() - self.started_at < self.after_s:
                continue
            pids = sorted(int(name[:-4]) for name in os.listdir(self.folder)
                          if name.endswith(".pid") and name[:-4].isdigit())
            if pids:
                self.pid = pids[0]
                os.kill(self.pid, signal.SIGKILL)
                self.killed_at = time.perf_counter()
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _expected(items: list, iterations: int) -> list:
    return [iterations] * len(items)


def _allcores(items, iterations, folder, workers, bound) -> dict:
    # A first, undisturbed run (its own pid folder) gives the time to compare with.
    calm_folder = os.path.join(folder, "undisturbed")
    os.mkdir(calm_folder)
    calm_items = [(iterations, calm_folder)] * len(items)
    with allcores.Pool(workers, retries=1) as pool:
        pool.map(identity, range(8 * workers))      # warm: workers started
        start = time.perf_counter()
        undisturbed = pool.map(spin_reporting_pid, calm_items)
        normal_s = time.perf_counter() - start
        killer = _Killer(folder, KILL_AT * normal_s)
        killer.start()
        results = pool.map(spin_reporting_pid, items)
        end = time.perf_counter()
        killer.stop()
    return _finish(killer, end, results, items, iterations, "completed",
                   undisturbed_s=normal_s,
                   undisturbed_ok=undisturbed == _expected(items, iterations))


def _multiprocessing(items, iterations, folder, workers, bound) -> dict:
    pool = multiprocessing.Pool(workers)
    try:
        pool.map(identity, range(8 * workers))
        start = time.perf_counter()
        killer = _Killer(folder, KILL_AT * len(items) * ITEM_S / workers)
        killer.start()
        results = []
        outcome = "completed"
        iterator = pool.imap(spin_reporting_pid, items)
        while len(results) < len(items):
            now = time.perf_counter()
            wait = 1.0 if killer.killed_at is None else killer.killed_at + bound - now
            if killer.killed_at is None and now - start > 60:
                break
            try:
                results.append(iterator.next(timeout=max(0.0, wait)))
            except multiprocessing.TimeoutError:
                if killer.killed_at is not None and time.perf_counter() >= \
                        killer.killed_at + bound:
                    outcome = f"hangs (no result {bound:.0f} s after the kill)"
                    break
        end = time.perf_counter()
        killer.stop()
    finally:
        terminate_hung = not _terminate(pool)
    if terminate_hung:
        outcome += "; pool.terminate() hung too (its workers were killed)"
    if not outcome.startswith("completed"):
        return _finish(killer, None, None, items, iterations, outcome, total_s=None,
                       terminate_hung=terminate_hung)
    return _finish(killer, end, results, items, iterations, outcome,
                   terminate_hung=terminate_hung)


def _terminate(pool, timeout: float = TERMINATE_TIMEOUT_S) -> bool:
    """``pool.terminate()``, bounded: False if it hung. It can: a worker killed while it
    held the task queue's read lock leaves the lock taken, and terminate() waits for
    that lock forever. Then every worker is killed here, and the thread stuck in
    terminate() is left behind (a daemon: it does not keep the process alive; the pool's
    finalizer has run, so nothing calls terminate() again at exit)."""
    stopper = threading.Thread(target=pool.terminate, name="allcores-bench-terminate",
                               daemon=True)
    stopper.start()
    stopper.join(timeout)
    if not stopper.is_alive():
        pool.join()
        return True
    # The pool's worker handler may still be replacing a dead worker as this runs (it
    # stops once terminate() has marked it): kill until no live worker is left.
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in list(getattr(pool, "_pool", [])) if p.exitcode is None]
        if not alive or time.monotonic() > deadline:
            break
        for process in alive:
            process.kill()
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
    return False


def _futures(items, iterations, folder, workers, bound) -> dict:
    executor = concurrent.futures.ProcessPoolExecutor(workers)
    try:
        list(executor.map(identity, range(8 * workers)))
        killer = _Killer(folder, KILL_AT * len(items) * ITEM_S / workers)
        killer.start()
        try:
            results = list(executor.map(spin_reporting_pid, items))
            outcome = "completed"
        except BrokenProcessPool:
            results = None
            outcome = "BrokenProcessPool raised"
        end = time.perf_counter()
        killer.stop()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return _finish(killer, end, results, items, iterations, outcome)


def _finish(killer: _Killer, end: float | None, results, items, iterations, outcome,
            **extra) -> dict:
    row = dict(extra)
    if killer.killed_at is None:
        row.update(outcome="no worker was killed (the map ended first)", correct=None,
                   status="not measured")
        return row
    row["killed_pid"] = killer.pid
    row["outcome"] = outcome
    if end is not None:
        row["after_kill_s"] = end - killer.killed_at
        row.setdefault("total_s", end - killer.started_at)
    if results is None:
        row["results"] = "none returned"
        row["correct"] = True       # nothing wrong was handed back
    else:
        row["correct"] = results == _expected(items, iterations)
        row["results"] = "all correct" if row["correct"] else "WRONG"
    if row.get("undisturbed_ok") is False:
        row["correct"] = False
        row["results"] = "WRONG (undisturbed run)"
    return row


_RUNNERS = {"allcores": _allcores, "multiprocessing": _multiprocessing, "futures": _futures}


def reading(section: Section) -> list[str]:
    out = []
    for row in section.rows:
        if row.get("correct") is None and row.get("status") == "not measured":
            out.append(f"{row['label']}: {row['outcome']}.")
        elif row.get("after_kill_s") is not None:
            out.append(f"{row['label']}: {row['outcome']} {row['after_kill_s']:.2f} s after "
                       f"the kill; results: {row.get('results', '-')}.")
        else:
            out.append(f"{row['label']}: {row['outcome']}.")
    return out
