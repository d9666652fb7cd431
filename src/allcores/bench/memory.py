"""Section "memory": does ``imap`` stream in bounded memory, or does it hold the input
and the results?

Three workloads, each through three tools, each run in a fresh interpreter (so that no
run inherits another's peak or its freed-but-kept memory):

- **fast consumer**: 10^7 small ints from a generator, ``fn`` = identity, the consumer
  only checks each result;
- **slow consumer**: 2 x 10^6 small ints from a generator, the consumer spins 2 us per
  item (as a real consumer that writes results somewhere does): workers outrun it, so a
  tool that keeps every finished result until it is taken piles them up;
- **big items**: 20,000 generated ``bytes`` of 100 kB (100,000-100,100 bytes, so that
  each result says which item it came from), ``fn`` = ``len``: 2 GB pass through, a
  tool that reads its input ahead holds much of it.

Tools: ``multiprocessing.Pool.imap`` (chunksize 256 for ints, 16 for 100 kB items: what
a user who thought about it picks), joblib's generator output
(``Parallel(n_jobs=N, return_as="generator")(delayed(f)(x) for x in gen)``, its
defaults: automatic batches, ``pre_dispatch="2*n_jobs"``) and ``allcores.Pool.imap``
with its defaults (adaptive chunks; in flight at most ``max_bytes`` pickled bytes,
default ``allcores.dispatch.default_max_bytes()``).

Figures per run:

- the caller's **peak RSS growth**: ``VmHWM`` at the end minus ``VmRSS`` at the start of
  the timed ``imap``; the peak is reset (``/proc/self/clear_refs``) after a warm-up map
  that has started the workers, so imports and worker start-up do not count;
- the **workers' peak RSS**: the sum (and the largest) of their ``VmHWM`` from
  ``/proc/<pid>/status``, whole life, just before the pool closes. The workers are found
  by asking them: after the timed run, a map of :func:`worker_pid` (sleeps 5 ms,
  returns ``os.getpid()``) over 4 items per worker, one per chunk, through the same pool
  (joblib: the same reusable loky executor); every worker answers, since none can run
  all of them while another idles (a round that misses one is followed by one with
  longer sleeps, up to 3); the row says how many answered;
- the **time** of the timed ``imap``, first call to last result;
- the **answer**: every result in input order and the right count (identity: result
  ``i`` is ``i``; ``len``: result ``i`` is ``100,000 + i % 101``).

The notes state allcores' byte budget and whether each row's caller growth stayed
inside it, and, for the allcores rows, the goals of the issue "Bounded in bytes": caller
growth under 50 MB for 10^7 ints, under 300 MB for 20,000 items of 100 kB. ``--quick``
runs a tenth of those sizes: it reports the figure next to the goal but never claims the
goal, which is stated at full size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.util import find_spec

from allcores.bench.measure import Config, Progress, Section, Table

QUESTION = ("How much memory do the caller and the workers need to stream a long "
            "generator through imap: fast consumer, slow consumer, big items?")

TOOLS = [("multiprocessing", "multiprocessing.Pool.imap"),
         ("joblib", 'joblib Parallel(return_as="generator")'),
         ("allcores", "allcores.Pool.imap")]
WORKLOADS = [("fast", "small ints, fast consumer"),
             ("slow", "small ints, slow consumer"),
             ("big", "items of 100 kB, fn=len")]
LABELS = dict(TOOLS)
WORKLOAD_LABELS = dict(WORKLOADS)

# Items per workload at full size and with --quick (then times --scale, for tests), and
# the fewest a run gets however small the scale.
FULL_ITEMS = {"fast": 10**7, "slow": 2 * 10**6, "big": 20_000}
QUICK_ITEMS = {"fast": 10**6, "slow": 2 * 10**5, "big": 2_000}
MIN_ITEMS = {"fast": 10_000, "slow": 10_000, "big": 100}

BIG_ITEM_BYTES = 100_000
BIG_SIZE_SPREAD = 101      # item i has BIG_ITEM_BYTES + i % BIG_SIZE_SPREAD bytes
SLOW_CONSUMER_S = 2e-6     # the slow consumer's work per item
MP_CHUNKSIZE = {"fast": 256, "slow": 256, "big": 16}
# Finding the workers: worker_pid tasks, one per chunk, this many per worker, each
# sleeping this long: a worker cannot run them all while another idles, yet a round
# costs a few ms. A round that misses a worker is followed by one with longer sleeps.
PID_PROBE_S = 0.005
PID_PROBES_PER_WORKER = 4
PID_PROBE_ROUNDS = 3
PROBE_TIMEOUT_S = 900

MB = 10**6                 # the goals are in MB; figures are shown in MiB
MIB = 1 << 20
# The goals for the allcores rows: caller peak RSS growth under this many MB,
# at this many items.
GOALS = {"fast": (50, FULL_ITEMS["fast"]), "big": (300, FULL_ITEMS["big"])}


def items_for(workload: str, config: Config) -> int:
    base = (QUICK_ITEMS if config.quick else FULL_ITEMS)[workload]
    return max(MIN_ITEMS[workload], int(base * config.scale))


def steps(config: Config) -> int:
    return len(WORKLOADS) * len(TOOLS)


def available() -> bool:
    return os.path.exists("/proc/self/clear_refs")


def byte_budget() -> int:
    """The bound on pickled bytes in flight that ``allcores.Pool()`` gets by default."""
    from allcores.dispatch import default_max_bytes

    return default_max_bytes()


# --- what runs in the fresh interpreter ------------------------------------------------------


def worker_pid(seconds: float) -> int:
    """Runs in a worker: sleeps ``seconds`` (so that every worker gets some), says who ran."""
    time.sleep(seconds)
    return os.getpid()


def small_items(n: int):
    yield from range(n)


def big_items(n: int):
    for i in range(n):
        yield bytes([i % 251]) * (BIG_ITEM_BYTES + i % BIG_SIZE_SPREAD)


def _status_kib(field: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def _consume(results, workload: str) -> tuple[int, int]:
    """Takes every result; returns (results taken, results out of place or wrong)."""
    count = wrong = 0
    if workload == "big":
        for value in results:
            if value != BIG_ITEM_BYTES + count % BIG_SIZE_SPREAD:
                wrong += 1
            count += 1
    elif workload == "slow":
        clock = time.perf_counter
        for value in results:
            if value != count:
                wrong += 1
            count += 1
            spin_until = clock() + SLOW_CONSUMER_S
            while clock() < spin_until:
                pass
    else:
        for value in results:
            if value != count:
                wrong += 1
            count += 1
    return count, wrong


def _open_tool(tool: str, workload: str, workers: int):
    """Starts ``tool``'s workers (a warm-up map) and returns three callables: ``imap(fn,
    items)`` (the timed call), ``ask_pids(sleeps)`` (a map of :func:`worker_pid` over
    ``sleeps``, one per chunk) and ``close()``."""
    from allcores.bench import workloads

    warm_up = range(1000)
    if tool == "joblib":
        from joblib import Parallel, delayed

        def imap(fn, items):
            return Parallel(n_jobs=workers, return_as="generator")(
                delayed(fn)(x) for x in items)

        def ask_pids(probes):   # the same reusable loky executor: the same workers
            return Parallel(n_jobs=workers, batch_size=1)(
                delayed(worker_pid)(s) for s in probes)

        list(imap(workloads.identity, warm_up))
        return imap, ask_pids, lambda: None   # loky's executor ends with the process
    if tool == "allcores":
        import allcores

        pool = allcores.Pool(workers)
        chunksize = None   # allcores' defaults: adaptive chunks, the default byte budget
    else:
        import multiprocessing

        pool = multiprocessing.Pool(workers)
        chunksize = MP_CHUNKSIZE[workload]
    list(pool.imap(workloads.identity, warm_up, chunksize))
    return (lambda fn, items: pool.imap(fn, items, chunksize),
            lambda probes: pool.map(worker_pid, probes, chunksize=1), pool.terminate)


def find_workers(ask_pids, workers: int) -> list[int]:
    """The pids of the processes that ran :func:`worker_pid` tasks through the pool."""
    pids: set[int] = set()
    for round_index in range(PID_PROBE_ROUNDS):
        sleep_s = PID_PROBE_S * 4**round_index
        pids.update(ask_pids([sleep_s] * (PID_PROBES_PER_WORKER * workers)))
        if len(pids) >= workers:
            break
    return sorted(pids)


def probe(tool: str, workload: str, n: int, workers: int) -> dict:
    """One row, measured in this (fresh) interpreter."""
    import gc

    from allcores.bench import workloads

    fn = len if workload == "big" else workloads.identity
    items = big_items(n) if workload == "big" else small_items(n)
    imap, ask_pids, close = _open_tool(tool, workload, workers)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")   # the peak (VmHWM) starts again from the current RSS
    before_kib = _status_kib("VmRSS")
    start = time.perf_counter()
    count, wrong = _consume(imap(fn, items), workload)
    seconds = time.perf_counter() - start
    growth_kib = _status_kib("VmHWM") - before_kib
    pids = find_workers(ask_pids, workers)
    peaks_kib = [_status_kib("VmHWM", pid) for pid in pids]
    close()
    return {"ok": count == n and wrong == 0, "count": count, "wrong": wrong,
            "seconds": seconds, "growth_mib": growth_kib / 1024,
            "workers_found": len(pids), "workers_peak_mib": sum(peaks_kib) / 1024,
            "worker_peak_max_mib": max(peaks_kib, default=0) / 1024}


def probe_main(argv: list[str] | None = None) -> None:
    """``python -c "from allcores.bench.memory import probe_main; probe_main()" TOOL
    WORKLOAD N WORKERS``: prints the row's figures as one JSON line."""
    tool, workload, n, workers = argv if argv is not None else sys.argv[1:]
    print(json.dumps(probe(tool, workload, int(n), int(workers))), flush=True)


PROBE_COMMAND = "from allcores.bench.memory import probe_main; probe_main()"


# --- the section ------------------------------------------------------------------------------


def run(config: Config, progress: Progress) -> Section:
    started = time.perf_counter()
    budget = byte_budget()
    rows = []
    for workload, workload_label in WORKLOADS:
        n = items_for(workload, config)
        for tool, label in TOOLS:
            progress.step(f"memory: {label}, {n:,} {workload_label}")
            row = {"workload": workload, "workload_label": workload_label, "tool": tool,
                   "label": label, "items": n}
            if workload in GOALS and tool == "allcores":
                row["goal"] = goal_check(workload, n, None)
            if not available():
                row.update(correct=None, status="skipped: the probe reads Linux's /proc")
            elif tool == "joblib" and find_spec("joblib") is None:
                row.update(correct=None, status="not installed")
            else:
                row.update(measure_row(tool, workload, n, config.workers, budget))
            rows.append(row)
    section = Section(
        name="memory", question=QUESTION, rows=rows, tables=[table(rows, config, budget)],
        extra={"workers": config.workers, "max_bytes": budget,
               "items": {w: items_for(w, config) for w, _ in WORKLOADS},
               "goals_mb": {w: {"limit_mb": mb, "items": at} for w, (mb, at) in GOALS.items()},
               "within_budget": within_budget(rows)},
        seconds=time.perf_counter() - started)
    section.reading = reading(section)
    return section


def measure_row(tool: str, workload: str, n: int, workers: int, budget: int) -> dict:
    command = [sys.executable, "-c", PROBE_COMMAND, tool, workload, str(n), str(workers)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"correct": False, "status": f"failed: no answer in {PROBE_TIMEOUT_S} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"correct": False, "status": f"failed: {last}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    row = {"correct": bool(result["ok"]), "status": "ok" if result["ok"] else "WRONG",
           "results": result["count"], "results_wrong": result["wrong"],
           "seconds": result["seconds"], "growth_mib": result["growth_mib"],
           "within_budget": result["growth_mib"] * MIB <= budget,
           "workers_found": result["workers_found"],
           "workers_peak_mib": result["workers_peak_mib"],
           "worker_peak_max_mib": result["worker_peak_max_mib"]}
    if result["workers_found"] != workers:
        row["workers_note"] = (f"{result['workers_found']} of {workers} workers answered: "
                               "the workers' figure covers those")
    if workload in GOALS and tool == "allcores":
        row["goal"] = goal_check(workload, n, result["growth_mib"])
    return row


def goal_check(workload: str, n: int, growth_mib: float | None) -> dict:
    """The issue's goal for an allcores row: ``met`` is True or False only at the goal's
    own size (and a measured figure); ``under_limit`` says how this run's figure compares."""
    limit_mb, at_items = GOALS[workload]
    goal = {"limit_mb": limit_mb, "items": at_items, "met": None, "under_limit": None}
    if growth_mib is not None:
        under = growth_mib * MIB < limit_mb * MB
        goal["growth_mb"] = growth_mib * MIB / MB
        goal["under_limit"] = under
        goal["over_by_mb"] = max(0.0, growth_mib * MIB / MB - limit_mb)
        if n == at_items:
            goal["met"] = under
    return goal


def within_budget(rows: list[dict]) -> dict:
    """Per tool: whether every measured row's caller growth stayed inside the budget."""
    out = {}
    for tool, _ in TOOLS:
        measured = [r for r in rows if r["tool"] == tool and "within_budget" in r]
        out[tool] = all(r["within_budget"] for r in measured) if measured else None
    return out


# --- what a person reads ----------------------------------------------------------------------


def _mib(value: float) -> str:
    return f"{value:.1f} MiB" if value < 100 else f"{value:.0f} MiB"


def goal_text(row: dict) -> str:
    goal = row.get("goal")
    if not goal:
        return "-"
    limit = f"< {goal['limit_mb']} MB"
    if goal["under_limit"] is None:
        return f"{limit}: not measured"
    if goal["met"] is True:
        return f"{limit}: met ({goal['growth_mb']:.1f} MB)"
    if goal["met"] is False:
        return f"{limit}: MISSED by {goal['over_by_mb']:.1f} MB"
    where = "under" if goal["under_limit"] else f"over by {goal['over_by_mb']:.1f} MB"
    return f"{limit} at {goal['items']:,}: {where} at this size"


def table(rows: list[dict], config: Config, budget: int) -> Table:
    env = os.environ.get("ALLCORES_MAX_BYTES", "").strip()
    env = f"= {env}" if env else "unset"
    cells = []
    for r in rows:
        measured = "growth_mib" in r
        cells.append([
            r["workload_label"], r["label"], f"{r['items']:,}",
            _mib(r["growth_mib"]) if measured else r["status"],
            ("yes" if r["within_budget"] else "NO") if measured else "-",
            (f"{_mib(r['workers_peak_mib'])} ({r['workers_found']} x <= "
             f"{_mib(r['worker_peak_max_mib'])})") if measured else "-",
            f"{r['seconds']:.2f} s" if measured else "-",
            "ok" if r.get("correct") else r["status"],
            goal_text(r)])
    notes = [
        f"{config.workers} workers; each row in a fresh interpreter; caller growth = peak "
        "RSS (VmHWM) minus RSS before the timed imap, after a warm-up; workers = sum of "
        "their whole-life VmHWM (the largest in brackets), read before the pool closes.",
        f"Byte budget: allcores bounds the pickled bytes in flight to {_mib(budget / MIB)} "
        f"(allcores.dispatch.default_max_bytes(); ALLCORES_MAX_BYTES {env}). "
        "'inside' = the caller's peak RSS growth was at most that. "
        + budget_sentence(rows, budget),
        "Goals (issue \"Bounded in bytes\"), allcores rows: caller growth < 50 MB "
        f"({50 * MB / MIB:.1f} MiB) for {GOALS['fast'][1]:,} small ints, < 300 MB "
        f"({300 * MB / MIB:.1f} MiB) for {GOALS['big'][1]:,} items of 100 kB. "
        + goals_sentence(rows),
        f"multiprocessing: chunksize {MP_CHUNKSIZE['fast']} for ints, {MP_CHUNKSIZE['big']} "
        f"for 100 kB items; joblib: its defaults; allcores: its defaults. The slow consumer "
        f"spins {SLOW_CONSUMER_S * 1e6:g} us per item.",
    ]
    notes += [f"{r['label']}, {r['workload_label']}: {r['workers_note']}"
              for r in rows if "workers_note" in r]
    return Table(
        "memory: caller and worker peak RSS, imap over a generator",
        ["workload", "tool", "items", "caller peak RSS growth", "<= byte budget",
         "workers' peak RSS", "time", "answer", "goal (allcores)"],
        cells, notes)


def budget_sentence(rows: list[dict], budget: int) -> str:
    measured = [r for r in rows if "within_budget" in r]
    mine = [r for r in measured if r["tool"] == "allcores"]
    if not mine:
        return "No allcores row was measured."
    outside = [r for r in mine if not r["within_budget"]]
    text = ("Every allcores row stayed inside it." if not outside else
            "allcores rows OUTSIDE it: " + "; ".join(
                f"{r['workload_label']} ({_mib(r['growth_mib'])}, "
                f"{r['growth_mib'] * MIB / budget - 1:.1%} over)" for r in outside) + ".")
    others = [r for r in measured if r["tool"] != "allcores" and not r["within_budget"]]
    if others:
        text += " Other tools' rows past it: " + "; ".join(
            f"{r['label']}, {r['workload_label']} ({_mib(r['growth_mib'])})"
            for r in others) + "."
    return text


def goals_sentence(rows: list[dict]) -> str:
    parts = []
    for r in rows:
        goal = r.get("goal")
        if not goal or goal["under_limit"] is None:
            continue
        figure = f"{r['items']:,} {r['workload_label']}: {_mib(r['growth_mib'])}"
        if goal["met"] is None:
            parts.append(f"{figure} (a smaller size than the goal's: "
                         f"{'under' if goal['under_limit'] else 'over'} the limit, "
                         "the goal itself is not tested)")
        else:
            parts.append(f"{figure}: goal {'met' if goal['met'] else 'MISSED'}")
    return ("This run: " + "; ".join(parts) + ".") if parts else \
        "No allcores row with a goal was measured."


def reading(section: Section) -> list[str]:
    sentences = []
    for workload, workload_label in WORKLOADS:
        by = {r["tool"]: r for r in section.rows if r.get("workload") == workload
              and r.get("correct") and "growth_mib" in r}
        if "allcores" not in by:
            continue
        mine = by["allcores"]
        text = (f"{mine['items']:,} {workload_label}: the caller grew by "
                + ", ".join(f"{_mib(by[tool]['growth_mib'])} in {by[tool]['seconds']:.1f} s "
                            f"with {LABELS[tool]}" for tool in ["allcores"] + [
                                t for t, _ in TOOLS if t != "allcores" and t in by])
                + ".")
        goal = mine.get("goal")
        if goal and goal.get("met") is not None:
            text += (f" Goal < {goal['limit_mb']} MB: "
                     + (f"met ({goal['growth_mb']:.1f} MB)." if goal["met"] else
                        f"MISSED by {goal['over_by_mb']:.1f} MB."))
        sentences.append(text)
    if not sentences:
        return ["The memory comparison did not complete (see the table)."]
    budget = section.extra.get("max_bytes")
    if budget:
        sentences.append(f"allcores' byte budget: {_mib(budget / MIB)} in flight. "
                         + budget_sentence(section.rows, budget))
    return sentences
