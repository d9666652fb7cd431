"""Section "pool": what does moving work cost, and what do N workers buy?

- dispatch: a trivial function over many items, allcores vs ``multiprocessing.Pool``
  (``map`` with its default chunks; ``imap`` with its default chunksize=1, the
  tutorial's recipe): the cost of moving work, with nothing to compute;
- scaling: a ~1 ms pure-Python function on processes, and a native kernel on threads,
  with 1 worker and with N: speedup and parallel efficiency.
"""

from __future__ import annotations

import multiprocessing
import time

import allcores
from allcores.bench import workloads
from allcores.bench.measure import (
    SUPERLINEAR_NOTE,
    Config,
    Progress,
    Section,
    Table,
    Timing,
    efficiency_text,
    ratio_text,
    superlinear,
    timed,
    timing_text,
)
from allcores.bench.overhead import calibrate
from allcores.bench.workloads import spin

QUESTION = ("What does a pool cost per item with nothing to compute, and how close to N "
            "times faster do N workers get on work that pays?")

PRIME_COUNTS = {10**7: 664579, 10**8: 5761455, 10**9: 50847534}


def steps(config: Config) -> int:
    return 4


def run(config: Config, progress: Progress) -> Section:
    started = time.perf_counter()
    workers = config.workers
    size = config.size
    rows = _dispatch(size, config.repeat, workers, progress)
    rows += _scaling(size, config.repeat, workers, progress)
    dispatch_rows = [r for r in rows if r["kind"] == "dispatch"]
    scaling_rows = [r for r in rows if r["kind"] == "scaling"]
    tables = [
        Table(f"pool: dispatch of a trivial function, {workers} workers",
              ["call", "multiprocessing.Pool", "allcores.Pool", "allcores faster by"],
              [[r["label"], timing_text(_t(r["multiprocessing"])),
                timing_text(_t(r["allcores"])),
                ratio_text(r["ratio"]) if r["correct"] else "WRONG"]
               for r in dispatch_rows],
              ["Both pools created once and warmed before timing; median (min-max)."]),
        Table(f"pool: scaling, 1 worker vs {workers}",
              ["workload", "1 worker", f"{workers} workers", "speedup", "efficiency"],
              [[r["label"], timing_text(_t(r["one"])), timing_text(_t(r["many"])),
                ratio_text(r["speedup"]) if r["correct"] else "WRONG",
                efficiency_text(r["efficiency"]) if r["correct"] else "-"]
               for r in scaling_rows],
              [SUPERLINEAR_NOTE] if any(r["correct"] and superlinear(r["efficiency"])
                                        for r in scaling_rows) else []),
    ]
    section = Section(name="pool", question=QUESTION, rows=rows, tables=tables,
                      extra={"workers": workers}, seconds=time.perf_counter() - started)
    section.reading = reading(section)
    return section


def _t(data: dict) -> Timing:
    return Timing(data["times_s"])


def _dispatch(size: float, repeat: int, workers: int, progress: Progress) -> list[dict]:
    n_map = max(1000, int(10**6 * size))
    n_imap = max(200, int(10**5 * size))
    rows = []
    with multiprocessing.Pool(workers) as mp_pool, allcores.Pool(workers) as pool:
        for call, n in (("map", n_map), ("imap", n_imap)):
            progress.step(f"pool: dispatch, {call} of {n:,} items")
            items = list(range(n))
            if call == "map":
                mp_fn = lambda: mp_pool.map(workloads.identity, items)  # noqa: E731
                ac_fn = lambda: pool.map(workloads.identity, items)  # noqa: E731
            else:
                mp_fn = lambda: list(mp_pool.imap(workloads.identity, items))  # noqa: E731
                ac_fn = lambda: list(pool.imap(workloads.identity, items))  # noqa: E731
            mp_times, mp_result = timed(mp_fn, repeat)
            ac_times, ac_result = timed(ac_fn, repeat)
            correct = mp_result == items and ac_result == items
            rows.append({"kind": "dispatch", "call": call, "items": n,
                         "label": f"{call}, {n:,} items", "correct": correct,
                         "status": "ok" if correct else "WRONG",
                         "multiprocessing": mp_times.to_json(),
                         "allcores": ac_times.to_json(),
                         "ratio": mp_times.median / ac_times.median})
    return rows


def _scaling(size: float, repeat: int, workers: int, progress: Progress) -> list[dict]:
    rows = []
    progress.step("pool: scaling, 1 ms pure-Python items on processes")
    iterations = max(1, round(1e-3 * calibrate()))
    items = [iterations] * max(4 * workers, int(1000 * size))
    with allcores.Pool(1) as one, allcores.Pool(workers) as many:
        one_t, r1 = timed(lambda: one.map(spin, items), repeat)
        many_t, rn = timed(lambda: many.map(spin, items), repeat)
    correct = r1 == items and rn == items
    rows.append(_scaling_row(f"~1 ms pure-Python items x{len(items)}, processes",
                             one_t, many_t, correct, workers))

    progress.step("pool: scaling, native count_primes on threads")
    hi = 10**9 if size >= 0.5 else 10**8 if size >= 0.05 else 10**7
    blocks = [(k * hi // 64, (k + 1) * hi // 64) for k in range(64)]
    expected = PRIME_COUNTS[hi]
    with allcores.Pool(1, backend="thread") as one, \
            allcores.Pool(workers, backend="thread") as many:
        one_t, r1 = timed(lambda: sum(one.map(workloads.count_primes_block,
                                              [("native", a, b) for a, b in blocks],
                                              chunksize=1)), repeat)
        many_t, rn = timed(lambda: sum(many.map(workloads.count_primes_block,
                                                [("native", a, b) for a, b in blocks],
                                                chunksize=1)), repeat)
    correct = r1 == expected and rn == expected
    rows.append(_scaling_row(f"native count_primes below {hi:.0e} in 64 blocks, threads",
                             one_t, many_t, correct, workers))
    return rows


def _scaling_row(label, one_t, many_t, correct, workers) -> dict:
    speedup = one_t.median / many_t.median
    return {"kind": "scaling", "label": label, "correct": correct,
            "status": "ok" if correct else "WRONG", "workers": workers,
            "one": one_t.to_json(), "many": many_t.to_json(), "speedup": speedup,
            "efficiency": speedup / workers}


def reading(section: Section) -> list[str]:
    out = []
    for row in section.rows:
        if not row.get("correct"):
            out.append(f"{row['label']}: WRONG answer.")
        elif row["kind"] == "dispatch":
            if 0.95 <= row["ratio"] <= 1.05:
                verdict = f"about as fast as multiprocessing.Pool ({ratio_text(row['ratio'])})"
            elif row["ratio"] > 1:
                verdict = f"{row['ratio']:.1f}x faster than multiprocessing.Pool"
            else:
                verdict = f"{1 / row['ratio']:.1f}x slower than multiprocessing.Pool"
            out.append(f"Dispatch, {row['label']}: allcores.Pool is {verdict}.")
        else:
            out.append(f"Scaling, {row['label']}: {ratio_text(row['speedup'])} on "
                       f"{row['workers']} workers ({efficiency_text(row['efficiency'])} efficiency"
                       + ("; above 100%: the serial run lost time to something else, "
                          "see the note under the table" if superlinear(row["efficiency"])
                          else "") + ").")
    return out
