"""Insights: the record of who ran which chunk of a map, and when.

``Pool(insights=True)`` and ``allcores.map`` / ``imap`` / ``imap_unordered`` with
``insights=True`` keep one ``ChunkRecord`` per chunk handed back; ``pool.insights()``
and ``allcores.insights()`` sum them up in an ``Insights`` (see ``allcores.timeline``).

This file checks that

- the records of each call cover every input item exactly once (map, imap,
  imap_unordered, starmap; serial, thread and process backends; adaptive and fixed
  chunk sizes; list, range and generator inputs; the module-level functions with
  ``backend="auto"``, whose sample is a chunk the caller ran), and that recording
  leaves the results as the builtin ``map`` gives them;
- the times tell a consistent story: each chunk was handed over, started, ended and
  received in that order, inside the summary's span, without overlapping another
  chunk of its worker; a worker's idle parts add up to the wall time it was not busy;
  utilisation never exceeds 1;
- the sums are right: exactly, on hand-made records; within generous tolerances, on
  sleep-based workloads whose utilisation follows from the sleeps (an unbalanced one,
  balanced ones on threads, on the caller and on warm worker processes);
- the text summary, the repr and the PNG timeline say what they should;
- recording is off unless asked for, ``insights`` must be a bool, ``reset=True``
  clears, calls are numbered, an imap stopped early records only what it handed back,
  a failing map records only complete chunks, a run lost with its dying worker is
  recorded apart from the chunk's rerun, and ``allcores.insights()`` is per thread;
- the Dask backend records too (worker addresses as labels; its times come through a
  clock conversion, so they get a few milliseconds of tolerance).

Synchronisation: no test sleeps to let something happen; the only sleeps are the
mapped functions' workloads. Waits on other threads have a timeout, and the conftest
watchdog is the backstop.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import threading
import time

import pytest
import _workloads as w
from _support import wait_until

import allcores
import allcores._default_pools
import allcores._memory
from allcores.planner import BACKEND_ENV
from allcores.timeline import ChunkRecord, Insights

BACKENDS = ["serial", "thread", "process"]
WORKERS = 2
N = 120
# Chunk-time checks that hold by causality on one clock are exact; idle-time sums are
# float sums of perf_counter differences, equal up to rounding.
SUM_TOL_S = 1e-9
# Dask worker times come through time.time() and are converted to the caller's clock.
DASK_CLOCK_TOL_S = 5e-3
THREAD_TIMEOUT_S = 30
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABEL_PATTERNS = {
    "serial": r"caller",
    "thread": r"allcores-thread_\d+",
    "process": r"process \d+",
}


# --- mapped functions (module level: the process backend pickles them by reference) -----


def square(x):
    return x * x


def add(a, b):
    return a + b


def identity(x):
    return x


def nap(seconds):
    """Sleep ``seconds``; return them."""
    time.sleep(seconds)
    return seconds


@allcores.nogil
def nap_without_gil(seconds):
    """``nap``, marked as releasing the GIL (``time.sleep`` does) for the planner."""
    time.sleep(seconds)
    return seconds


def pid_after_nap(seconds):
    time.sleep(seconds)
    return os.getpid()


def die_once_at(bad, marker, x):
    """The first process to reach item ``bad`` dies (``os._exit``) before returning it;
    ``marker`` (a file) makes the retry on another worker succeed."""
    if x == bad and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(3)
    time.sleep(0.002)
    return x * x


def die_once_at_then_meet(bad, marker, directory, x):
    """:func:`die_once_at`; every item after the dead one's chunk first waits until two
    workers have arrived (the survivor and the replacement), so that the replacement
    surely runs a chunk."""
    if x >= bad + 2:
        w.meet(directory, 2, x)
    return die_once_at(bad, marker, x)


def fail_at(bad, x):
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x * x


# --- checks -------------------------------------------------------------------------------


def records_by_call(summary: Insights) -> dict[int, list[ChunkRecord]]:
    calls: dict[int, list[ChunkRecord]] = {}
    for record in summary.records:
        calls.setdefault(record.call, []).append(record)
    return calls


def assert_covers(records, n: int) -> None:
    """The records' item ranges tile 0..n-1: contiguous, no overlap, no gap."""
    ordered = sorted(records, key=lambda r: r.first_item)
    assert all(r.items >= 1 for r in ordered), ordered
    assert sum(r.items for r in ordered) == n
    expected_first = 0
    for record in ordered:
        assert record.first_item == expected_first, (
            f"chunk at {record.first_item} follows items up to {expected_first - 1}")
        assert record.stop_item == record.first_item + record.items
        expected_first = record.stop_item
    assert expected_first == n


def assert_each_call_covers(summary: Insights, lengths: list[int]) -> None:
    """One call per entry of ``lengths``, in call order, each covering its input."""
    calls = records_by_call(summary)
    assert len(calls) == len(lengths), sorted(calls)
    for call, n in zip(sorted(calls), lengths):
        assert_covers(calls[call], n)
    assert summary.items == sum(lengths)
    assert summary.chunks == len(summary.records)


def assert_causal_order(summary: Insights, tol: float = 0.0) -> None:
    """Each chunk was handed over, then queued, started, ended and received."""
    for r in summary.records:
        assert (r.submitted <= r.queued + tol and r.queued <= r.started + tol
                and r.started <= r.ended and r.ended <= r.received + tol), (
            f"out of order: queued {r.queued - r.submitted:+.6f}, started "
            f"{r.started - r.queued:+.6f}, ended {r.ended - r.started:+.6f}, received "
            f"{r.received - r.ended:+.6f} s after the step before, in {r}")


def assert_consistent_span(summary: Insights, tol: float = 0.0) -> None:
    """Every chunk runs inside the span, chunks of one worker never overlap, busy and
    idle time add up per worker, and utilisation is at most 1."""
    assert summary.wall_s == pytest.approx(summary.end - summary.start)
    if summary.records:
        assert summary.start == min(r.submitted for r in summary.records)
        assert summary.end == max(r.received for r in summary.records)
    for r in summary.records:
        assert summary.start - tol <= r.started <= r.ended <= summary.end + tol, r
        assert r.seconds == pytest.approx(r.ended - r.started)
    lanes = summary.lanes()
    assert [w.worker for w in summary.per_worker] == lanes
    runs = (*summary.records, *summary.lost)  # lost: runs that ended with their worker
    assert set(lanes) == {r.worker for r in runs}
    for lane in lanes:
        mine = sorted((r for r in runs if r.worker == lane), key=lambda r: r.started)
        for before, after in itertools.pairwise(mine):
            assert before.ended <= after.started + tol, f"{lane}: {before} overlaps {after}"
    for stats in summary.per_worker:
        assert stats.busy_s + stats.lost_s <= summary.wall_s + tol
        assert min(stats.before_s, stats.between_s, stats.after_s, stats.lost_s) >= 0
        assert math.isclose(stats.idle_s, summary.wall_s - stats.busy_s - stats.lost_s,
                            rel_tol=1e-9, abs_tol=SUM_TOL_S + 3 * tol), stats
        assert stats.utilisation <= 1 + 1e-9 + tol / max(summary.wall_s, 1e-9)
    assert sum(w.busy_s for w in summary.per_worker) == pytest.approx(summary.busy_s)
    assert sum(w.chunks for w in summary.per_worker) == summary.chunks
    assert sum(w.items for w in summary.per_worker) == summary.items
    assert 0 <= summary.utilisation <= 1 + 1e-9 + tol / max(summary.wall_s, 1e-9)


def assert_labels(summary: Insights, backend: str, workers: int) -> None:
    lanes = summary.lanes()
    assert 1 <= len(lanes) <= workers
    for lane in lanes:
        assert re.fullmatch(LABEL_PATTERNS[backend], lane), lane
    if backend == "process":
        assert all(int(lane.split()[1]) != os.getpid() for lane in lanes)


def warm_up(pool) -> None:
    """Until every worker process has run a chunk; then forget those chunks, so that
    the start-up of the workers is not part of what a test measures."""
    wait_until(
        lambda: len(set(pool.map(pid_after_nap, [0.05] * pool.workers, chunksize=1)))
        == pool.workers,
        THREAD_TIMEOUT_S, "every worker process to run a chunk")
    pool.insights(reset=True)


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def recording_pool(request):
    with allcores.Pool(WORKERS, backend=request.param, insights=True) as pool:
        yield pool


@pytest.fixture
def pool(recording_pool):
    """A recording pool shared by the module; each test starts with no records."""
    recording_pool.insights(reset=True)
    return recording_pool


@pytest.fixture
def no_backend_override(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)


@pytest.fixture(scope="module", autouse=True)
def stop_default_pools():
    """Leave no warm default pool (``allcores.map``'s) running after this module."""
    yield
    allcores._default_pools.terminate_all()


# ======================================================================================
# 1. The arithmetic of a summary, on hand-made records
# ======================================================================================

# Three chunks on two of three workers ("w-b" ran one chunk, a third worker none).
HAND_MADE = [  # times in binary fractions of a second: exact in floating point
    ChunkRecord(0, 0, 4, "w-a", 10.0, 10.125, 10.25, 11.25, 11.375),
    ChunkRecord(0, 4, 2, "w-b", 10.125, 10.25, 10.5, 11.0, 11.5),
    ChunkRecord(1, 0, 1, "w-a", 10.25, 10.375, 11.5, 12.0, 12.125),
]


def test_summary_figures_follow_from_the_records():
    summary = Insights(HAND_MADE, workers=3, backend="process")
    assert summary.records == tuple(HAND_MADE)
    assert (summary.workers, summary.backend) == (3, "process")
    assert (summary.chunks, summary.items) == (3, 7)
    assert (summary.start, summary.end, summary.wall_s) == (10.0, 12.125, 2.125)
    assert summary.busy_s == 1.0 + 0.5 + 0.5
    assert summary.dispatch_s == 3 * 0.125
    assert summary.utilisation == 2.0 / (3 * 2.125)
    assert summary.lanes() == ["w-a", "w-b"]
    assert summary.chunk_sizes() == (1, 2, 4)
    assert summary.slowest(1) == [HAND_MADE[0]]
    assert summary.slowest() == HAND_MADE  # ties (0.5 s) keep the order received
    # Medians of queued->started (0.125, 0.25, 1.125), ended->received (0.125, 0.5, 0.125).
    assert summary.latency() == (0.25, 0.125)
    a, b = summary.per_worker
    assert (a.worker, a.chunks, a.items) == ("w-a", 2, 5)
    assert (a.busy_s, a.before_s, a.between_s, a.after_s) == (1.5, 0.25, 0.25, 0.125)
    assert a.utilisation == 1.5 / 2.125
    assert (b.worker, b.chunks, b.items) == ("w-b", 1, 2)
    assert (b.busy_s, b.before_s, b.between_s, b.after_s) == (0.5, 0.5, 0.0, 1.125)
    assert b.utilisation == 0.5 / 2.125
    assert summary.tail_idle_s == 1.125  # w-b, idle from 11.0 to 12.125
    assert_causal_order(summary)
    assert_consistent_span(summary)
    assert HAND_MADE[0].stop_item == 4 and HAND_MADE[0].seconds == 1.0


def test_summary_text_of_hand_made_records():
    text = str(Insights(HAND_MADE, workers=3, backend="process"))
    assert "7 items in 3 chunks" in text
    assert "sizes 1/2/4" in text and "3 process workers" in text
    assert "utilisation 31%" in text  # 2.0 s busy of 3 x 2.125 s
    assert "(1 worker ran no chunk)" in text
    slowest = text.split("slowest chunks:\n", 1)[1].splitlines()
    assert slowest == ["  items 0..3 (4 items): 1.00 s on w-a",
                       "  items 4..5 (2 items): 500.0 ms on w-b",
                       "  items 0..0 (1 item, call 1): 500.0 ms on w-a"]
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("w-")}
    assert set(rows) == {"w-a", "w-b"}
    assert rows["w-a"].endswith("71%") and rows["w-b"].endswith("24%")  # of 2.125 s


def test_an_empty_summary():
    summary = Insights([], workers=2, backend="thread")
    assert (summary.chunks, summary.items, summary.wall_s, summary.busy_s) == (0, 0, 0, 0)
    assert summary.utilisation == 0.0 and summary.per_worker == ()
    assert summary.chunk_sizes() == (0, 0, 0) and summary.latency() == (0.0, 0.0)
    assert summary.lanes() == [] and summary.slowest() == []
    assert "no chunks recorded" in str(summary)
    assert "0 chunks" in repr(summary)


# ======================================================================================
# 2. Every item is recorded exactly once, and the results do not change
# ======================================================================================

CASES = [(method, kind) for method in ("map", "imap", "imap_unordered")
         for kind in ("list", "range", "generator")]
CASES += [("starmap", "list"), ("starmap", "generator")]


def run_method(pool, method: str, kind: str, n: int, chunksize):
    """Run ``method`` over an ``n``-item input of ``kind``; return (got, expected)."""
    if method == "starmap":
        pairs = [(i, 3 * i) for i in range(n)]
        items = pairs if kind == "list" else (pair for pair in pairs)
        return pool.starmap(add, items, chunksize), [a + b for a, b in pairs]
    items = {"list": lambda: list(range(n)), "range": lambda: range(n),
             "generator": lambda: (x for x in range(n))}[kind]()
    got = list(getattr(pool, method)(square, items, chunksize))
    expected = list(map(square, range(n)))
    if method == "imap_unordered":
        got, expected = sorted(got), sorted(expected)
    return got, expected


@pytest.mark.parametrize("chunksize", [None, 7], ids=["adaptive", "fixed"])
@pytest.mark.parametrize(("method", "kind"), CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_chunks_cover_every_item_once(pool, method, kind, chunksize):
    got, expected = run_method(pool, method, kind, N, chunksize)
    assert got == expected
    summary = pool.insights()
    assert_each_call_covers(summary, [N])
    assert (summary.backend, summary.workers) == (pool.backend, pool.workers)
    assert_labels(summary, pool.backend, pool.workers)
    if chunksize is not None:  # every chunk is full but the one that ends the input
        assert all(r.items == chunksize for r in summary.records if r.stop_item != N)
        assert summary.chunks == -(-N // chunksize)


def test_an_empty_input_records_nothing(pool):
    assert pool.map(square, []) == []
    assert pool.insights().chunks == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["range", "generator"])
def test_module_level_calls_on_a_named_backend(backend, kind):
    items = range(N) if kind == "range" else (x for x in range(N))
    assert allcores.map(square, items, backend=backend, workers=WORKERS,
                        insights=True) == list(map(square, range(N)))
    summary = allcores.insights()
    assert_each_call_covers(summary, [N])
    assert summary.backend == backend
    assert_labels(summary, backend, summary.workers)
    assert_consistent_span(summary)


@pytest.mark.usefixtures("no_backend_override")
@pytest.mark.parametrize("warm", [False, True], ids=["no-warm-pool", "warm-process-pool"])
@pytest.mark.parametrize("kind", ["range", "generator"])
@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered"])
def test_auto_choosing_serial_records_the_sample_and_the_rest(method, kind, warm):
    # Without a warm process pool the sample runs in the caller; with one, in a worker.
    allcores._default_pools.terminate_all()
    allcores._memory.memory.forget()
    if warm:
        allcores._default_pools.default_pool("process", 2).map(abs, range(4))
    n = 10**5  # abs costs far less than moving an item to a worker: auto stays serial
    items = range(n) if kind == "range" else (x for x in range(n))
    got = list(getattr(allcores, method)(abs, items, workers=2, insights=True))
    assert sorted(got) == list(range(n))
    summary = allcores.insights()
    assert summary.backend == "serial"
    assert_each_call_covers(summary, [n])
    records = sorted(summary.records, key=lambda r: r.first_item)
    # The planner's sample first (its batches, when they ran in a worker), then the rest
    # in the caller.
    sample = (list(itertools.takewhile(lambda r: r.worker != "caller", records)) if warm
              else records[:1])
    rest = records[len(sample):]
    assert sample and sample[0].first_item == 0 and rest
    assert all(r.worker == "caller" for r in rest)
    if warm:
        assert all(re.fullmatch(LABEL_PATTERNS["process"], r.worker) for r in sample)
    else:
        assert summary.lanes() == ["caller"]
        if method == "map":  # the sample, then the rest in one loop in the caller
            assert summary.chunks == 2
    assert_consistent_span(summary)


@pytest.mark.usefixtures("no_backend_override")
@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered"])
def test_auto_choosing_threads_records_the_sample_and_the_rest(method):
    if allcores.cpu_count() < 2:
        pytest.skip("the planner predicts no gain from threads with one CPU")
    # 5 ms sleeps that release the GIL, 2 workers: the planner predicts about 2x.
    items = [0.005] * 40
    got = list(getattr(allcores, method)(nap_without_gil, items, workers=2, insights=True))
    assert got == items
    summary = allcores.insights()
    assert (summary.backend, summary.workers) == ("thread", 2)
    assert_each_call_covers(summary, [len(items)])
    sample = min(summary.records, key=lambda r: r.first_item)
    assert (sample.first_item, sample.worker) == (0, "caller")
    assert [r.worker for r in summary.records].count("caller") == 1
    others = {r.worker for r in summary.records} - {"caller"}
    assert others and all(re.fullmatch(LABEL_PATTERNS["thread"], lane) for lane in others)
    assert summary.lanes()[0] == "caller"  # the sample ran before anything else
    assert_causal_order(summary)
    assert_consistent_span(summary)


def test_the_backend_variable_skips_the_sample(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "thread")
    assert allcores.map(square, range(N), workers=WORKERS, insights=True) == [
        x * x for x in range(N)]
    summary = allcores.insights()
    assert summary.backend == "thread"
    assert_labels(summary, "thread", WORKERS)  # no "caller" chunk: nothing was sampled
    assert_each_call_covers(summary, [N])


# ======================================================================================
# 3. The times tell a consistent story
# ======================================================================================


def run_every_method(pool):
    """map, imap, imap_unordered and starmap, on cheap items and on short sleeps."""
    pool.map(square, range(300))
    list(pool.imap(square, range(300), chunksize=11))
    list(pool.imap_unordered(nap, [0.002] * 16, chunksize=2))
    pool.starmap(add, [(i, i) for i in range(50)])


def test_each_chunk_is_handed_over_then_run_then_received(pool):
    run_every_method(pool)
    summary = pool.insights()
    assert_each_call_covers(summary, [300, 300, 16, 50])
    assert_causal_order(summary)


@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered", "starmap"])
def test_chunks_stay_in_the_span_and_idle_time_adds_up(pool, method):
    if method == "starmap":
        pool.starmap(nap, [(0.005,)] * 24)
    else:
        list(getattr(pool, method)(nap, [0.005] * 24))
    summary = pool.insights()
    assert_each_call_covers(summary, [24])
    assert_consistent_span(summary)
    assert summary.busy_s >= 24 * 0.005  # a sleep never returns early
    assert summary.dispatch_s >= 0


# ======================================================================================
# 4. Known workloads give the utilisation they should
# ======================================================================================


def test_an_unbalanced_workload_shows_the_idle_worker():
    long, short = 0.4, 0.1
    with allcores.Pool(2, backend="thread", insights=True) as pool:
        assert pool.map(nap, [long, short], chunksize=1) == [long, short]
        summary = pool.insights()
    assert_each_call_covers(summary, [2])
    assert_causal_order(summary)
    assert_consistent_span(summary)
    # The span lasts as long as the long item; one worker is busy all of it, the other
    # a quarter of it.
    assert summary.wall_s >= long
    assert summary.utilisation == pytest.approx((long + short) / (2 * long), abs=0.1)
    by_busy = sorted(summary.per_worker, key=lambda w: w.busy_s)
    assert [w.busy_s for w in by_busy] == pytest.approx([short, long], abs=0.05)
    assert by_busy[0].after_s == pytest.approx(long - short, abs=0.05)
    assert by_busy[1].idle_s == pytest.approx(0, abs=0.05)


@pytest.mark.parametrize(("backend", "items", "seconds", "at_least"), [
    ("serial", 6, 0.05, 0.85),
    ("thread", 8, 0.05, 0.85),
    ("process", 8, 0.1, 0.8),
])
def test_a_balanced_workload_keeps_every_worker_busy(backend, items, seconds, at_least):
    with allcores.Pool(2, backend=backend, insights=True) as pool:
        if backend == "process":
            warm_up(pool)
        assert pool.map(nap, [seconds] * items, chunksize=1) == [seconds] * items
        summary = pool.insights()
    assert_each_call_covers(summary, [items])
    assert_consistent_span(summary)
    ideal_wall = items * seconds / pool.workers
    assert summary.wall_s >= ideal_wall
    assert summary.busy_s == pytest.approx(items * seconds, rel=0.5)
    assert summary.utilisation >= at_least, str(summary)
    assert len(summary.per_worker) == pool.workers


# ======================================================================================
# 5. Text, repr and the PNG timeline
# ======================================================================================


def test_the_text_names_workers_and_the_slowest_chunk_first(pool):
    costs = [0.01, 0.01, 0.15, 0.01, 0.01]
    pool.map(nap, costs, chunksize=1)
    summary = pool.insights()
    text = str(summary)
    assert "utilisation" in text
    assert f"{len(costs)} items in {len(costs)} chunks" in text
    for lane in summary.lanes():
        assert lane in text
    slowest = text.split("slowest chunks:\n", 1)[1].splitlines()
    assert len(slowest) == min(5, summary.chunks)
    assert re.match(r"  items 2\.\.2 \(1 item(, call \d+)?\): ", slowest[0]), text
    assert summary.slowest(1)[0].first_item == 2


def test_the_repr_is_one_short_line(pool):
    pool.map(square, range(N), chunksize=10)
    text = repr(pool.insights())
    assert "\n" not in text and len(text) < 120
    assert text.startswith("<allcores.Insights 12 chunks") and pool.backend in text


@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


def assert_png(path, minimum_bytes: int = 5_000) -> None:
    with open(path, "rb") as png:
        data = png.read()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > minimum_bytes


@pytest.mark.usefixtures("matplotlib")
def test_plot_writes_a_png_into_a_new_directory(tmp_path):
    with allcores.Pool(2, backend="thread", insights=True) as pool:
        pool.map(nap, [0.005] * 12, chunksize=1)
        summary = pool.insights()
    path = str(tmp_path / "not" / "yet" / "timeline.png")
    assert summary.plot(path, title="twelve naps") == path
    assert_png(path)


@pytest.mark.usefixtures("matplotlib")
def test_plot_of_many_chunks(tmp_path):
    with allcores.Pool(backend="serial", insights=True) as pool:
        pool.map(square, range(450), chunksize=1)
        summary = pool.insights()
    assert summary.chunks == 450  # more than the bars that get an edge
    path = str(tmp_path / "many.png")
    assert summary.plot(path) == path
    assert_png(path)


@pytest.mark.usefixtures("matplotlib")
def test_plot_of_nothing_is_an_error(tmp_path):
    path = tmp_path / "empty.png"
    with pytest.raises(ValueError, match="no chunks"):
        Insights([], workers=2, backend="thread").plot(str(path))
    assert not path.exists()


# ======================================================================================
# 6. Off by default, reset, call numbers
# ======================================================================================


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pool_records_nothing_unless_asked(backend):
    with allcores.Pool(WORKERS, backend=backend) as pool:
        pool.map(square, range(10))
        with pytest.raises(ValueError, match=re.escape("insights=True")):
            pool.insights()


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_insights_must_be_a_bool(value):
    with pytest.raises(TypeError, match="insights"):
        allcores.Pool(WORKERS, backend="thread", insights=value)
    for function in (allcores.map, allcores.imap, allcores.imap_unordered):
        with pytest.raises(TypeError, match="insights"):
            function(square, [1, 2], backend="serial", insights=value)


def test_a_module_level_call_without_insights_keeps_the_latest_summary():
    allcores.map(square, range(30), backend="serial", insights=True)
    allcores.map(square, range(5), backend="serial")
    assert allcores.insights().items == 30


def test_reset_starts_a_fresh_recording(pool):
    pool.map(square, range(N))
    first = pool.insights(reset=True)
    assert first.items == N
    empty = pool.insights()
    assert empty.chunks == 0 and "no chunks recorded" in str(empty)
    pool.map(square, range(9))
    again = pool.insights()
    assert_each_call_covers(again, [9])
    assert {r.call for r in again.records}.isdisjoint({r.call for r in first.records})


def test_calls_are_numbered_and_items_counted_per_call(pool):
    lengths = [30, 17, 5]
    pool.map(square, range(lengths[0]))
    pool.starmap(add, [(i, i) for i in range(lengths[1])])
    list(pool.imap(square, range(lengths[2])))
    summary = pool.insights()
    assert_each_call_covers(summary, lengths)
    in_received_order = [r.call for r in summary.records]
    assert len(set(in_received_order)) == 3
    assert in_received_order == sorted(in_received_order)  # one call after the other


# ======================================================================================
# 7. Stopping early, failing items, threads
# ======================================================================================


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_an_imap_stopped_early_records_only_chunks_handed_back(pool, method):
    chunksize, taken = 2, 5
    results = getattr(pool, method)(identity, range(100), chunksize)
    yielded = list(itertools.islice(results, taken))
    results.close()
    call = pool.insights().records[0].call
    pool.map(square, range(10))  # runs after whatever the stopped call left running
    records = records_by_call(pool.insights())[call]
    # Three chunks were handed back (the third one's second item was not asked for).
    assert len(records) == -(-taken // chunksize)
    recorded = [x for r in records for x in range(r.first_item, r.stop_item)]
    assert len(recorded) == len(set(recorded)) == len(records) * chunksize
    assert set(yielded) <= set(recorded)
    if method == "imap":
        assert sorted(recorded) == list(range(len(records) * chunksize))
    for r in records:
        assert r.submitted <= r.started <= r.ended <= r.received, r


def test_a_failing_item_leaves_only_complete_chunks(pool):
    with pytest.raises(ValueError, match="item 7 is bad"):
        pool.map(functools.partial(fail_at, 7), range(20), chunksize=2)
    summary = pool.insights()
    # In order: chunks 0-1, 2-3 and 4-5 were handed back before chunk 6-7 failed.
    assert_each_call_covers(summary, [6])
    assert_consistent_span(summary)


def test_a_run_lost_with_its_worker_is_recorded_apart(tmp_path):
    marker, meeting = str(tmp_path / "died"), tmp_path / "meeting"
    meeting.mkdir()
    fn = functools.partial(die_once_at_then_meet, 23, marker, str(meeting))
    with allcores.Pool(WORKERS, backend="process", retries=1, insights=True) as pool:
        warm_up(pool)
        assert pool.map(fn, range(60), chunksize=5) == [x * x for x in range(60)]
        summary = pool.insights()
    # The results' chunks still tile the input once; the lost run is apart.
    assert_each_call_covers(summary, [60])
    assert_causal_order(summary)
    assert_consistent_span(summary)
    assert len(summary.lost) == 1
    lost = summary.lost[0]
    assert (lost.first_item, lost.items) == (20, 5)
    assert 0 <= lost.seconds and summary.lost_s == lost.seconds
    rerun = next(r for r in summary.records if r.first_item == 20)
    assert rerun.worker != lost.worker and lost.ended <= rerun.started
    dead = next(w for w in summary.per_worker if w.worker == lost.worker)
    assert dead.lost_s == lost.seconds
    assert len(summary.lanes()) == WORKERS + 1  # the replacement worker has a lane too
    assert f"{lost.worker} died after" in str(summary)
    png = tmp_path / "crash.png"
    summary.plot(str(png))
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_a_chunk_that_never_completes_is_not_recorded(tmp_path):
    fn = functools.partial(die_once_at, 23, str(tmp_path / "died"))
    with allcores.Pool(WORKERS, backend="process", retries=0, insights=True) as pool:
        with pytest.raises(allcores.WorkerCrashedError):
            pool.map(fn, range(60), chunksize=5)
        summary = pool.insights()
    assert all(not r.first_item <= 23 < r.stop_item for r in summary.records)
    assert summary.lost == ()
    assert_consistent_span(summary)


@pytest.mark.parametrize("backend", ["serial", "thread"])
def test_module_level_failing_item_leaves_only_complete_chunks(backend):
    with pytest.raises(ValueError, match="item 7 is bad"):
        allcores.map(functools.partial(fail_at, 7), range(20), backend=backend,
                     workers=WORKERS, chunksize=2, insights=True)
    assert_each_call_covers(allcores.insights(), [6])


@pytest.mark.usefixtures("no_backend_override")
@pytest.mark.parametrize("backend", ["serial", "auto"])
def test_a_call_failing_at_once_replaces_the_latest_summary(backend):
    """``allcores.insights()`` sums up the latest call made with insights=True, even
    one whose first item failed (with "auto", while the planner sampled it): none of
    its chunks completed, and an earlier call's chunks are not this call's."""
    allcores.map(square, range(100), backend="serial", insights=True)
    assert allcores.insights().items == 100
    with pytest.raises(ValueError, match="item 0 is bad"):
        allcores.map(functools.partial(fail_at, 0), range(50), backend=backend,
                     insights=True)
    assert allcores.insights().chunks == 0


def test_the_latest_summary_is_per_thread():
    allcores.map(square, range(30), backend="serial", insights=True)
    seen = {}

    def other_thread():
        try:
            allcores.insights()
        except ValueError as error:
            seen["before"] = error
        allcores.map(square, range(7), backend="serial", insights=True)
        seen["after"] = allcores.insights().items

    thread = threading.Thread(target=other_thread, name="test-insights-other", daemon=True)
    thread.start()
    thread.join(timeout=THREAD_TIMEOUT_S)
    assert not thread.is_alive(), f"the other thread did not finish in {THREAD_TIMEOUT_S} s"
    # No call from that thread yet: nothing to sum up there, whatever this thread did.
    assert "insights=True" in str(seen["before"])
    assert seen["after"] == 7
    assert allcores.insights().items == 30  # the other thread's call did not replace it


# ======================================================================================
# 8. Dask
# ======================================================================================


@pytest.fixture(scope="module")
def dask_pool():
    pytest.importorskip(
        "distributed",
        reason="the dask backend needs Dask's distributed scheduler: "
               "pip install 'allcores[dask]'")
    with allcores.Pool(WORKERS, backend="dask", insights=True) as pool:
        yield pool


@pytest.mark.parametrize("method", ["map", "imap_unordered", "starmap"])
def test_dask_chunks_are_recorded(dask_pool, method):
    dask_pool.insights(reset=True)
    items = [0.01] * 16
    if method == "starmap":
        got = dask_pool.starmap(nap, [(x,) for x in items], chunksize=2)
    else:
        got = list(getattr(dask_pool, method)(nap, items, chunksize=2))
    assert got == items
    summary = dask_pool.insights()
    assert (summary.backend, summary.workers) == ("dask", WORKERS)
    assert_each_call_covers(summary, [len(items)])
    assert all(r.items == 2 for r in summary.records)
    assert 1 <= len(summary.lanes()) <= WORKERS
    assert all(lane.startswith(("tcp://", "tls://")) for lane in summary.lanes())
    assert_causal_order(summary, tol=DASK_CLOCK_TOL_S)
    assert_consistent_span(summary, tol=DASK_CLOCK_TOL_S)
    assert summary.busy_s >= len(items) * 0.01 - DASK_CLOCK_TOL_S


@pytest.mark.usefixtures("matplotlib")
def test_dask_timeline_plots(dask_pool, tmp_path):
    dask_pool.insights(reset=True)
    dask_pool.map(nap, [0.005] * 8, chunksize=1)
    path = str(tmp_path / "dask.png")
    assert dask_pool.insights().plot(path) == path
    assert_png(path)
