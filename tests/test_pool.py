"""Behaviour of ``allcores.Pool`` and ``allcores.map`` / ``imap`` / ``imap_unordered``.

Each behaviour is written once and run on every backend it applies to ("serial",
"thread", "process"); behaviour that depends on how worker processes start (lambdas,
closures, initializers, functions defined in ``__main__``) also runs under every start
method. Worker deaths, Ctrl-C, parent death and timeouts live in ``test_crashes.py``.

Synchronisation: workers wait on files (``_workloads.gated``), the test polls logs with
a deadline (``_support.wait_until``); every blocking call has a timeout, and the
conftest watchdog is the backstop.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import math
import multiprocessing
import re
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from concurrent.futures import Future

import _workloads as w
import pytest
from _support import CountedSource, SizedSource, run_in_thread, wait_pids_gone, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy as np

import allcores
import allcores._default_pools
from allcores import (
    AllcoresError,
    PoolClosedError,
    WorkerInitError,
)
from allcores._default_pools import default_pool

BACKENDS = ["serial", "thread", "process"]
PARALLEL_BACKENDS = ["thread", "process"]
START_METHODS = [m for m in ("forkserver", "spawn", "fork")
                 if m in multiprocessing.get_all_start_methods()]
WORKERS = 2
# The longest any single result may take to arrive in these tests.
RESULT_TIMEOUT_S = 30
ITEMS = list(range(-5, 40))


def squares(items):
    return [x * x for x in items]


def window_bound(pool, consumed_chunks: int, chunksize: int) -> int:
    """Most items a pool may have pulled from its input once the caller has taken
    results from ``consumed_chunks`` chunks: those chunks plus a window of
    ``2 * workers`` chunks in flight."""
    return (consumed_chunks + 2 * pool.workers) * chunksize


def has_note(error: BaseException, pattern: str) -> bool:
    return any(re.search(pattern, note) for note in getattr(error, "__notes__", []))


def collect(pool, method: str, fn, iterable, chunksize=None) -> list:
    """Results of ``pool.<method>(fn, iterable, chunksize)`` as a list."""
    return list(getattr(pool, method)(fn, iterable, chunksize))


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def pool(backend):
    with allcores.Pool(WORKERS, backend=backend) as pool:
        yield pool


@pytest.fixture(params=PARALLEL_BACKENDS)
def parallel_pool(request):
    with allcores.Pool(WORKERS, backend=request.param) as pool:
        yield pool


@pytest.fixture(params=START_METHODS)
def start_method(request):
    return request.param


@pytest.fixture
def process_pool_by_start(start_method):
    with allcores.Pool(WORKERS, backend="process", start_method=start_method) as pool:
        yield pool


@pytest.fixture(scope="module", autouse=True)
def stop_default_pools():
    """Leave no warm default pool (``allcores.map``'s) running after this module: the
    pytest process must not depend on interpreter-exit clean-up, which
    ``test_crashes.py::test_interpreter_exits_while_a_pool_is_open`` tests on its own."""
    yield
    allcores._default_pools.terminate_all()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_pool(request):
    """One pool per backend for the whole module: for hypothesis, which calls a test
    many times and must not pay for starting workers each time."""
    with allcores.Pool(WORKERS, backend=request.param) as pool:
        yield pool


# ======================================================================================
# 1. Same results as the builtin map
# ======================================================================================


def test_map_matches_builtin_map(pool):
    assert pool.map(w.square, ITEMS) == list(map(w.square, ITEMS))


def test_imap_yields_in_input_order(pool):
    results = pool.imap(w.square, ITEMS)
    assert iter(results) is results
    assert list(results) == list(map(w.square, ITEMS))


def test_imap_unordered_yields_a_permutation(pool):
    results = pool.imap_unordered(w.square, ITEMS)
    assert iter(results) is results
    assert sorted(results) == sorted(map(w.square, ITEMS))


INPUTS = {
    "empty-list": lambda: [],
    "empty-generator": lambda: (x for x in ()),
    "one-item": lambda: [7],
    "tuple": lambda: tuple(range(-3, 12)),
    "range": lambda: range(50),
    "generator": lambda: (x for x in range(50)),
    "set": lambda: {5, 1, 9},
    "dict-keys": lambda: {3: "c", 1: "a"}.keys(),
    "numpy-array": lambda: np.arange(-4, 9),
}


@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered"])
@pytest.mark.parametrize("make_input", INPUTS.values(), ids=INPUTS.keys())
@pytest.mark.parametrize("chunksize", [None, 1, 4, 10_000])
def test_inputs_and_chunk_sizes(pool, method, make_input, chunksize):
    expected = list(map(w.square, make_input()))
    got = collect(pool, method, w.square, make_input(), chunksize)
    if method == "imap_unordered":
        got, expected = sorted(got), sorted(expected)
    assert got == expected


def test_arbitrary_picklable_objects_round_trip(pool):
    items = [None, 1.5, "text", b"\x00bytes", (1, (2, 3)), {"key": [1, 2]}, 2**100,
             frozenset({1, 2}), float("inf"), -0.0]
    assert pool.map(w.identity, items, chunksize=3) == items


def test_large_items_and_results(pool):
    size = 8 * 2**20
    blobs = pool.map(functools.partial(w.big_bytes, size), range(3), chunksize=1)
    assert [len(b) for b in blobs] == [size] * 3 and [b[0] for b in blobs] == [0, 1, 2]
    assert pool.map(w.byte_sum, blobs, chunksize=1) == [size, 16 + size, 32 + size]


def test_more_workers_than_items(backend):
    with allcores.Pool(5, backend=backend) as pool:
        assert pool.map(w.square, [1, 2, 3]) == [1, 4, 9]
        assert pool.map(w.square, [1, 2, 3], chunksize=1) == [1, 4, 9]
        assert sorted(pool.imap_unordered(w.square, [3, 1, 2], chunksize=1)) == [1, 4, 9]


@pytest.mark.parametrize("chunksize", [None, 1, 3, 1000])
def test_starmap(pool, chunksize):
    pairs = [(i, 10 * i) for i in range(25)]
    assert pool.starmap(w.add, pairs, chunksize) == [a + b for a, b in pairs]
    assert pool.starmap(w.add, iter(pairs), chunksize) == [a + b for a, b in pairs]
    assert pool.starmap(w.add, [["a", "b"], ["c", "d"]], chunksize) == ["ab", "cd"]
    assert pool.starmap(w.add, [], chunksize) == []


def test_submit_with_args_and_kwargs(pool):
    future = pool.submit(w.describe_call, 1, "two", key=3, other=None)
    assert isinstance(future, Future)
    assert future.result(timeout=RESULT_TIMEOUT_S) == ((1, "two"), {"key": 3, "other": None})
    assert pool.submit(w.square, 12).result(timeout=RESULT_TIMEOUT_S) == 144
    assert pool.submit(w.describe_call).result(timeout=RESULT_TIMEOUT_S) == ((), {})


def test_many_submits_all_complete(pool):
    futures = [pool.submit(w.add, i, i) for i in range(40)]
    assert [f.result(timeout=RESULT_TIMEOUT_S) for f in futures] == [2 * i for i in range(40)]


@settings(max_examples=15)
@given(items=st.lists(st.integers(-(10**12), 10**12), max_size=60),
       chunksize=st.none() | st.integers(1, 25))
def test_any_input_and_chunk_size_matches_builtin_map(shared_pool, items, chunksize):
    expected = list(map(w.square, items))
    assert shared_pool.map(w.square, items, chunksize) == expected
    assert list(shared_pool.imap(w.square, iter(items), chunksize)) == expected
    assert sorted(shared_pool.imap_unordered(w.square, items, chunksize)) == sorted(expected)
    pairs = list(zip(items, reversed(items)))
    assert shared_pool.starmap(w.add, pairs, chunksize) == [a + b for a, b in pairs]


def test_workers_property(backend):
    with allcores.Pool(3, backend=backend) as pool:
        assert pool.workers == (1 if backend == "serial" else 3)
        assert pool.closed is False


def test_context_manager_returns_the_pool(backend):
    pool = allcores.Pool(WORKERS, backend=backend)
    with pool as entered:
        assert entered is pool
    assert pool.closed


# ======================================================================================
# 2. Lazy and bounded
# ======================================================================================


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_endless_input_is_read_lazily(pool, method):
    source = CountedSource()
    chunksize = 3
    results = getattr(pool, method)(w.square, source.items(), chunksize=chunksize)
    first = list(itertools.islice(results, 10))
    if method == "imap":
        assert first == squares(range(10))
    else:
        assert len(set(first)) == 10
        assert all(math.isqrt(r) ** 2 == r and math.isqrt(r) < source.pulled for r in first)
    assert source.pulled <= window_bound(pool, math.ceil(10 / chunksize), chunksize)
    results.close()
    assert pool.map(w.square, range(6)) == squares(range(6))


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_itertools_count_with_the_default_chunk_size(pool, method):
    results = getattr(pool, method)(w.square, itertools.count())
    first = list(itertools.islice(results, 10))
    results.close()
    if method == "imap":
        assert first == squares(range(10))
    else:
        assert len(set(first)) == 10


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_a_huge_range_streams(pool, method):
    # range(10**20) is lazy, but too long for len(): it must stream like any iterable.
    results = getattr(pool, method)(w.square, range(10**20), chunksize=4)
    first = list(itertools.islice(results, 8))
    results.close()
    if method == "imap":
        assert first == squares(range(8))
    else:
        roots = [math.isqrt(r) for r in first]
        assert len(set(roots)) == 8 and all(root ** 2 in first for root in roots)
        assert max(roots) < window_bound(pool, 2, 4)


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_a_huge_sized_input_is_read_lazily_with_the_default_chunk_size(pool, method):
    # A lazily readable input that knows its length (like range(10**12)): taking its
    # first results must not read a big share of it first.
    source = SizedSource(10**12, limit=100_000)
    results = getattr(pool, method)(w.square, source)
    first = list(itertools.islice(results, 10))
    results.close()
    assert len(first) == 10 and source.pulled <= 100_000


def test_the_input_is_not_read_before_the_first_result_is_asked_for(pool):
    source = CountedSource()
    results = pool.imap(w.square, source.items(), chunksize=2)
    assert source.pulled <= window_bound(pool, 0, 2)
    assert next(results) == 0
    assert source.pulled <= window_bound(pool, 1, 2)
    results.close()


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_the_serial_backend_computes_a_chunk_only_when_asked(method):
    # It runs a chunk inside submit(): submitting the next one before handing this one
    # back would compute a chunk the caller may never ask for.
    source = CountedSource()
    with allcores.Pool(backend="serial") as pool:
        results = getattr(pool, method)(w.square, source.items(), chunksize=3)
        assert list(itertools.islice(results, 3)) == [0, 1, 4]
        assert source.pulled == 3
        assert next(results) == 9
        assert source.pulled == 6
        results.close()


def test_slow_head_chunk_holds_the_window(parallel_pool, tmp_path):
    """While the first chunk is held, the others in the window finish, but the pool
    reads no further: finished results wait for the head instead of piling up."""
    pool = parallel_pool
    gate, done_log = tmp_path / "gate", tmp_path / "done.log"
    fn = functools.partial(w.gated, str(gate), (0,), None, str(done_log))
    chunksize = 2
    window = 2 * pool.workers
    source = CountedSource()
    results = pool.imap(fn, source.items(), chunksize=chunksize)
    try:
        first = run_in_thread(lambda: next(results), timeout=RESULT_TIMEOUT_S)
        others_in_window = (window - 1) * chunksize
        wait_until(lambda: len(w.read_ints(done_log)) >= others_in_window, 20,
                   f"the {window - 1} chunks behind the held head to finish")
        assert source.pulled <= window_bound(pool, 1, chunksize)
        assert max(w.read_ints(done_log)) < window_bound(pool, 1, chunksize)
    finally:
        gate.touch()
    assert first() == 0
    assert list(itertools.islice(results, 30)) == squares(range(1, 31))
    results.close()


def test_closing_the_iterator_cancels_queued_chunks(parallel_pool, tmp_path):
    pool = parallel_pool
    gate = tmp_path / "gate"
    started, done = tmp_path / "started.log", tmp_path / "done.log"
    # Item 0 runs at once; every other item waits for the gate.
    fn = functools.partial(w.gated, str(gate), range(1, 10**9), str(started), str(done))
    source = CountedSource()
    results = pool.imap(fn, source.items(), chunksize=1)
    try:
        assert next(results) == 0
        # Both workers are now busy with items 1 and 2; later items wait in the queue.
        wait_until(lambda: sorted(w.read_ints(started)) == [0, 1, 2], 20,
                   "items 1 and 2 to start on the two workers")
        results.close()
    finally:
        gate.touch()
    wait_until(lambda: sorted(w.read_ints(done)) == [0, 1, 2], 20,
               "the running items 1 and 2 to finish")
    assert pool.map(w.square, range(10), chunksize=1) == squares(range(10))
    # Items pulled into the window but not yet running were cancelled: they never ran.
    assert sorted(w.read_ints(started)) == [0, 1, 2]
    assert source.pulled > 3
    assert source.pulled <= window_bound(pool, 1, 1)


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_breaking_out_of_a_loop_leaves_the_pool_usable(pool, method):
    source = CountedSource()
    chunksize = 4
    taken = 0
    for _ in getattr(pool, method)(w.square, source.items(), chunksize=chunksize):
        taken += 1
        if taken == 6:
            break
    assert source.pulled <= window_bound(pool, 2, chunksize)
    assert pool.map(w.square, range(20)) == squares(range(20))
    assert sorted(pool.imap_unordered(w.square, range(20))) == squares(range(20))


def test_imap_unordered_does_not_wait_for_a_slow_head(parallel_pool, tmp_path):
    gate = tmp_path / "gate"
    fn = functools.partial(w.gated, str(gate), (0,), None, None)
    results = parallel_pool.imap_unordered(fn, range(12), chunksize=1)
    try:
        others = run_in_thread(lambda: [next(results) for _ in range(11)], RESULT_TIMEOUT_S)()
    finally:
        gate.touch()
    assert sorted(others) == squares(range(1, 12))
    assert list(results) == [0]


# ======================================================================================
# 3. Chunks
# ======================================================================================


def test_a_chunk_runs_whole_on_one_worker(pool):
    results = pool.map(w.whoami, range(40), chunksize=5)
    assert [item for item, _, _ in results] == list(range(40))
    for start in range(0, 40, 5):
        runners = {(pid, thread) for _, pid, thread in results[start:start + 5]}
        assert len(runners) == 1, f"chunk {start}..{start + 4} ran on {runners}"


def test_chunks_are_consecutive_items_delivered_together(pool):
    order = [item for item, _, _ in pool.imap_unordered(w.whoami, range(40), chunksize=5)]
    assert sorted(order) == list(range(40))
    for start in range(0, 40, 5):
        chunk = order[start:start + 5]
        assert chunk == list(range(chunk[0], chunk[0] + 5)) and chunk[0] % 5 == 0, order


def test_process_backend_runs_on_other_processes():
    with allcores.Pool(WORKERS, backend="process") as pool:
        pids = {pid for _, pid, _ in pool.map(w.whoami, range(20), chunksize=1)}
    assert pids and multiprocessing.current_process().pid not in pids


# ======================================================================================
# 4. Errors raised by the function
# ======================================================================================


@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered"])
def test_error_reaches_the_caller_with_type_message_and_item(pool, backend, method):
    fn = functools.partial(w.fail_on, 7)
    with pytest.raises(ValueError, match="cannot handle 7") as info:
        collect(pool, method, fn, range(20), chunksize=3)
    error = info.value
    assert type(error) is ValueError  # not wrapped
    assert has_note(error, r"\bitem 7\b"), getattr(error, "__notes__", None)
    # Printing the error shows where it was raised: the function's own frame.
    assert "fail_on" in "".join(traceback.format_exception(error))
    if backend == "process":
        assert error.__cause__ is not None
        assert "fail_on" in str(error.__cause__)
        assert "ValueError" in str(error.__cause__)
    assert pool.map(w.square, range(10)) == squares(range(10))


def test_imap_yields_every_result_before_the_failing_item(pool):
    got = []
    with pytest.raises(ValueError, match="cannot handle 7"):
        for result in pool.imap(functools.partial(w.fail_on, 7), range(20), chunksize=1):
            got.append(result)
    assert got == squares(range(7))


def test_error_on_endless_input_stops_reading_it(pool):
    source = CountedSource()
    with pytest.raises(ValueError, match="cannot handle 7"):
        pool.map(functools.partial(w.fail_on, 7), source.items(), chunksize=2)
    assert source.pulled <= window_bound(pool, math.ceil(8 / 2), 2)
    assert pool.map(w.square, range(10)) == squares(range(10))


def test_error_in_starmap_names_the_item(pool):
    pairs = [(i, i) for i in range(10)]
    with pytest.raises(KeyError, match="pair starting with 4") as info:
        pool.starmap(functools.partial(w.fail_on_pair, 4), pairs, chunksize=3)
    assert has_note(info.value, r"\bitem 4\b")
    assert pool.starmap(w.add, pairs) == [2 * i for i in range(10)]


def test_error_in_submit_reaches_the_future(pool):
    future = pool.submit(w.fail_on, 3, 3)
    error = future.exception(timeout=RESULT_TIMEOUT_S)
    assert type(error) is ValueError and "cannot handle 3" in str(error)
    with pytest.raises(ValueError, match="cannot handle 3"):
        future.result(timeout=0)
    assert pool.submit(w.square, 4).result(timeout=RESULT_TIMEOUT_S) == 16


def test_an_exception_whose_str_fails_still_reaches_the_caller(pool):
    got = []
    with pytest.raises(w.BadStrError) as info:
        for result in pool.imap(functools.partial(w.raise_bad_str, 2), range(6), chunksize=1):
            got.append(result)
    assert got == [0, 1]
    assert has_note(info.value, r"\bitem 2\b"), getattr(info.value, "__notes__", None)
    assert pool.map(w.square, range(5)) == squares(range(5))


def test_error_raised_by_the_input_reaches_the_caller(pool):
    def broken_input():
        yield from range(5)
        raise LookupError("the input broke")

    with pytest.raises(LookupError, match="the input broke"):
        pool.map(w.square, broken_input(), chunksize=2)
    assert pool.map(w.square, range(10)) == squares(range(10))


@pytest.mark.parametrize(
    "fn,type_name",
    [
        (functools.partial(w.raise_needs_two_args, 3), "NeedsTwoArgsError"),
        (functools.partial(w.raise_holds_lock, 3), "HoldsLockError"),
    ],
    ids=["fails-to-unpickle", "fails-to-pickle"],
)
def test_unpicklable_exception_arrives_as_an_allcores_error(fn, type_name):
    with allcores.Pool(WORKERS, backend="process") as pool:
        with pytest.raises(AllcoresError, match=type_name) as info:
            pool.map(fn, range(6), chunksize=1)
        error = info.value
        assert has_note(error, r"\bitem 3\b"), getattr(error, "__notes__", None)
        assert "raise_" in str(error.__cause__)  # the remote traceback names the function
        assert pool.map(w.square, range(10)) == squares(range(10))


def test_unpicklable_exception_keeps_its_type_without_pickling():
    # Threads and the caller need no pickling: even an exception that cannot be
    # pickled arrives as itself.
    for backend in ("serial", "thread"):
        with allcores.Pool(WORKERS, backend=backend) as pool:
            with pytest.raises(w.NeedsTwoArgsError):
                pool.map(functools.partial(w.raise_needs_two_args, 2), range(5))


# ======================================================================================
# 8. Functions: lambdas, closures, __main__, initializers
# ======================================================================================


def test_lambda(process_pool_by_start):
    pool = process_pool_by_start
    assert pool.map(lambda x: 3 * x + 1, range(20)) == [3 * x + 1 for x in range(20)]
    assert sorted(pool.imap_unordered(lambda x: -x, range(5))) == [-4, -3, -2, -1, 0]
    assert pool.starmap(lambda a, b: a * b, [(2, 3), (4, 5)]) == [6, 20]


def test_closure(process_pool_by_start):
    pool = process_pool_by_start
    offset = 17
    table = {i: chr(ord("a") + i) for i in range(10)}

    def shift(x):
        return table[x], x + offset

    assert pool.map(shift, range(10), chunksize=3) == [(table[x], x + offset) for x in range(10)]
    assert pool.submit(lambda a, *, b: a - b - offset, 100, b=3).result(
        timeout=RESULT_TIMEOUT_S) == 80


def test_lambdas_as_items(process_pool_by_start):
    pool = process_pool_by_start
    functions = [lambda x: x + 1, lambda x: x * 2, functools.partial(w.add, 10)]
    assert pool.map(lambda f: f(3), functions) == [4, 6, 13]


def test_callable_objects_and_partials(process_pool_by_start):
    pool = process_pool_by_start
    assert pool.map(functools.partial(w.add, 5), range(4)) == [5, 6, 7, 8]
    assert pool.map(abs, [-1, 2, -3]) == [1, 2, 3]
    assert pool.map(str.upper, ["a", "b"]) == ["A", "B"]


def test_many_distinct_functions_on_one_pool(process_pool_by_start):
    # More functions than a worker keeps unpickled at once: each must still run.
    pool = process_pool_by_start
    for k in range(40):
        assert pool.map(lambda x, k=k: x + k, range(3), chunksize=1) == [k, k + 1, k + 2]
    for k in (0, 39, 1):
        assert pool.map(lambda x, k=k: x * k, range(3)) == [0, k, 2 * k]


def test_lambda_initializer_runs_once_in_each_worker(start_method, tmp_path):
    log = tmp_path / "init.log"
    token = f"token-{start_method}"
    with allcores.Pool(WORKERS, backend="process", start_method=start_method,
                       initializer=lambda: w.remember(token, str(log))) as pool:
        got = pool.map(w.recall, range(12), chunksize=1)
    assert [item for item, _, _ in got] == list(range(12))
    assert all(value == token for _, value, _ in got)
    runners = w.read_lines(log)
    assert len(runners) == WORKERS == len(set(runners))
    assert {who for _, _, who in got} <= set(runners)


def test_initializer_runs_once_per_worker(backend, tmp_path):
    log = tmp_path / "init.log"
    token = f"token-{backend}-{tmp_path.name}"
    with allcores.Pool(WORKERS, backend=backend, initializer=w.remember,
                       initargs=[token, str(log)]) as pool:
        got = pool.map(w.recall, range(12), chunksize=1)
        workers = pool.workers
    assert all(value == token for _, value, _ in got)
    runners = w.read_lines(log)
    assert len(runners) == len(set(runners)), "an initializer ran twice in one worker"
    assert {who for _, _, who in got} <= set(runners), "an item ran on an uninitialized worker"
    assert 1 <= len(runners) <= workers
    if backend == "process":
        assert len(runners) == workers  # every worker process starts at once


def test_failing_initializer_raises_worker_init_error(backend):
    with pytest.raises(WorkerInitError) as info:
        with allcores.Pool(WORKERS, backend=backend, initializer=w.refuse_to_start) as pool:
            pool.map(w.square, range(4))
    cause = info.value.__cause__
    assert isinstance(cause, ValueError), repr(cause)
    assert "initializer refused to start" in str(cause)


MAIN_SCRIPT = textwrap.dedent('''
    import json
    import os
    import sys

    import allcores

    OFFSET = 100


    def shifted(x):
        return x + OFFSET


    class Doubler:
        def __call__(self, x):
            return 2 * x


    def set_marker(value):
        os.environ["ALLCORES_TEST_MARKER"] = value


    def read_marker(_):
        return os.environ.get("ALLCORES_TEST_MARKER")


    def main(start_method):
        with allcores.Pool(2, start_method=start_method) as pool:
            results = {
                "function": pool.map(shifted, range(5)),
                "lambda": pool.map(lambda x: x - 1, range(5)),
                "callable_object": pool.map(Doubler(), range(5)),
                "imap_unordered": sorted(pool.imap_unordered(shifted, range(5))),
                "submit": pool.submit(shifted, 1).result(timeout=30),
            }
        with allcores.Pool(2, start_method=start_method, initializer=set_marker,
                           initargs=("set in __main__",)) as pool:
            results["initializer"] = pool.map(read_marker, range(3))
        results["module_map"] = allcores.map(shifted, range(3), workers=2, backend="process")
        print(json.dumps(results))


    if __name__ == "__main__":
        main(sys.argv[1])
''')


def test_functions_defined_in_main(start_method, tmp_path):
    script = tmp_path / "main_functions.py"
    script.write_text(MAIN_SCRIPT)
    run = subprocess.run([sys.executable, str(script), start_method], capture_output=True,
                         text=True, timeout=90, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {
        "function": [100, 101, 102, 103, 104],
        "lambda": [-1, 0, 1, 2, 3],
        "callable_object": [0, 2, 4, 6, 8],
        "imap_unordered": [100, 101, 102, 103, 104],
        "submit": 101,
        "initializer": ["set in __main__"] * 3,
        "module_map": [100, 101, 102],
    }


MAIN_CLASSES_SCRIPT = textwrap.dedent('''
    import dataclasses
    import json
    import sys

    import allcores


    @dataclasses.dataclass
    class Point:
        x: int
        y: int


    class OutOfRange(Exception):
        pass


    def manhattan(p):
        return abs(p.x) + abs(p.y)


    def doubled(p):
        return Point(2 * p.x, 2 * p.y)


    def checked(x):
        if x > 2:
            raise OutOfRange(f"{x} is out of range")
        return x


    def main(start_method):
        results = {}
        with allcores.Pool(2, start_method=start_method) as pool:
            points = [Point(1, -2), Point(3, 4)]
            results["class_items"] = pool.map(manhattan, points)
            results["class_results"] = [dataclasses.astuple(p)
                                        for p in pool.map(doubled, points)]
            results["lambda_class_results"] = [dataclasses.astuple(p) for p in
                                               pool.map(lambda i: Point(i, -i), range(2))]
            try:
                pool.map(checked, range(5))
            except OutOfRange as exc:
                results["own_exception"] = str(exc)
        print(json.dumps(results))


    if __name__ == "__main__":
        main(sys.argv[1])
''')


def test_classes_defined_in_main(start_method, tmp_path):
    """Instances and exceptions of classes defined in a script travel both ways."""
    script = tmp_path / "main_classes.py"
    script.write_text(MAIN_CLASSES_SCRIPT)
    run = subprocess.run([sys.executable, str(script), start_method], capture_output=True,
                         text=True, timeout=90, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {
        "class_items": [3, 7],
        "class_results": [[2, -4], [6, 8]],
        "lambda_class_results": [[0, 0], [1, -1]],
        "own_exception": "3 is out of range",
    }


# ======================================================================================
# 9. Bad input: rejected at the call, before any worker starts
# ======================================================================================

BAD_POOL_ARGUMENTS = [
    ({"workers": 0}, ValueError, "workers"),
    ({"workers": -1}, ValueError, "workers"),
    ({"workers": 1.5}, TypeError, "workers"),
    ({"workers": "2"}, TypeError, "workers"),
    ({"backend": "gpu"}, ValueError, "backend"),
    ({"backend": "Process"}, ValueError, "backend"),
    ({"start_method": "nope"}, ValueError, "start_method"),
    ({"retries": -1}, ValueError, "retries"),
    ({"retries": 0.5}, TypeError, "retries"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": -1.0}, ValueError, "timeout"),
    ({"timeout": float("nan")}, ValueError, "timeout"),
    ({"timeout": "1"}, TypeError, "timeout"),
    ({"timeout": 1, "backend": "thread"}, ValueError, "timeout"),
    ({"timeout": 1, "backend": "serial"}, ValueError, "timeout"),
    ({"initializer": 5}, TypeError, "initializer"),
    ({"initializer": w.remember, "initargs": 5}, TypeError, "initargs"),
]


def _allcores_threads() -> set:
    return {t for t in threading.enumerate() if t.name.startswith("allcores")}


@pytest.mark.parametrize("kwargs,error,name", BAD_POOL_ARGUMENTS,
                         ids=[repr(kw) for kw, _, _ in BAD_POOL_ARGUMENTS])
def test_bad_pool_arguments_fail_before_any_worker_starts(kwargs, error, name):
    children_before = set(multiprocessing.active_children())
    threads_before = _allcores_threads()
    with pytest.raises(error, match=name):
        allcores.Pool(**kwargs)
    assert _allcores_threads() <= threads_before
    assert set(multiprocessing.active_children()) <= children_before


BAD_MAP_ARGUMENTS = [
    (None, range(3), None, TypeError, "fn"),
    (5, range(3), None, TypeError, "fn"),
    (w.square, 5, None, TypeError, "iterable"),
    (w.square, None, None, TypeError, "iterable"),
    (w.square, range(3), 0, ValueError, "chunksize"),
    (w.square, range(3), -2, ValueError, "chunksize"),
    (w.square, range(3), 1.5, TypeError, "chunksize"),
    (w.square, range(3), "4", TypeError, "chunksize"),
]


@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered", "starmap"])
@pytest.mark.parametrize("fn,iterable,chunksize,error,name", BAD_MAP_ARGUMENTS)
def test_bad_map_arguments_fail_at_the_call(pool, method, fn, iterable, chunksize, error, name):
    # No iteration: imap and imap_unordered must refuse at the call, not at next().
    with pytest.raises(error, match=name):
        getattr(pool, method)(fn, iterable, chunksize)
    assert pool.map(w.square, range(3)) == [0, 1, 4]


def test_submit_refuses_a_non_callable(pool):
    with pytest.raises(TypeError, match="fn"):
        pool.submit(5)


@pytest.mark.parametrize("function", [allcores.map, allcores.imap, allcores.imap_unordered])
@pytest.mark.parametrize(
    "fn,iterable,kwargs,error,name",
    [
        (None, range(3), {}, TypeError, "fn"),
        (w.square, 5, {}, TypeError, "iterable"),
        (w.square, range(3), {"chunksize": 0}, ValueError, "chunksize"),
        (w.square, range(3), {"workers": 0}, ValueError, "workers"),
        (w.square, range(3), {"workers": 1.5}, TypeError, "workers"),
        (w.square, range(3), {"backend": "gpu"}, ValueError, "backend"),
    ],
)
def test_module_level_bad_arguments_fail_at_the_call(function, fn, iterable, kwargs, error,
                                                     name):
    threads_before = _allcores_threads()
    with pytest.raises(error, match=name):
        function(fn, iterable, **kwargs)
    assert _allcores_threads() <= threads_before


# ======================================================================================
# 10. CPU count
# ======================================================================================


def test_cpu_count_is_a_positive_int():
    count = allcores.cpu_count()
    assert isinstance(count, int) and count >= 1


@pytest.mark.parametrize("backend", PARALLEL_BACKENDS)
def test_allcores_workers_env_sizes_the_default_pool(monkeypatch, backend):
    monkeypatch.setenv("ALLCORES_WORKERS", "1")
    with allcores.Pool(backend=backend) as pool:
        assert pool.workers == 1
        assert pool.map(w.square, range(5)) == squares(range(5))


def test_default_pool_size_is_the_cpu_count():
    with allcores.Pool(backend="thread") as pool:
        assert pool.workers == allcores.cpu_count()


# ======================================================================================
# 11. Module-level functions
# ======================================================================================


def test_module_level_functions(backend):
    items = list(range(30))
    expected = squares(items)
    assert allcores.map(w.square, items, backend=backend, workers=WORKERS) == expected
    assert list(allcores.imap(w.square, iter(items), backend=backend, workers=WORKERS,
                              chunksize=4)) == expected
    assert sorted(allcores.imap_unordered(w.square, items, backend=backend,
                                          workers=WORKERS)) == sorted(expected)
    assert allcores.map(w.square, [], backend=backend, workers=WORKERS) == []


def test_module_level_functions_with_the_default_backend():
    items = list(range(-20, 30))
    expected = squares(items)
    assert allcores.map(w.square, items) == expected
    assert list(allcores.imap(w.square, iter(items))) == expected
    assert sorted(allcores.imap_unordered(w.square, items)) == sorted(expected)
    assert allcores.map(w.square, []) == []
    first = list(itertools.islice(allcores.imap(w.square, itertools.count()), 10))
    assert first == squares(range(10))
    with pytest.raises(ValueError, match="cannot handle 7") as info:
        allcores.map(functools.partial(w.fail_on, 7), range(20))
    assert has_note(info.value, r"\bitem 7\b")


def test_module_level_map_reuses_a_warm_pool(tmp_path):
    assert default_pool("process") is default_pool("process")
    pool = default_pool("process", WORKERS)
    assert pool is default_pool("process", WORKERS)
    pid_sets = []
    for call in range(2):
        meeting = tmp_path / f"meeting-{call}"
        meeting.mkdir()
        pids = allcores.map(functools.partial(w.meet, str(meeting), WORKERS), range(WORKERS),
                            workers=WORKERS, chunksize=1, backend="process")
        pid_sets.append(set(pids))
    assert len(pid_sets[0]) == WORKERS
    assert pid_sets[0] == pid_sets[1], "the second call started new workers"
    assert default_pool("process", WORKERS) is pool


def test_module_level_map_replaces_a_stopped_default_pool():
    stopped = default_pool("thread", WORKERS)
    stopped.terminate()
    assert allcores.map(w.square, range(5), backend="thread", workers=WORKERS) == squares(range(5))
    assert default_pool("thread", WORKERS) is not stopped


@pytest.mark.parametrize("function", ["map", "imap", "imap_unordered"])
def test_progress_bar_goes_to_stderr(capsys, backend, function):
    results = getattr(allcores, function)(w.square, range(20), backend=backend,
                                          workers=WORKERS, progress=True)
    assert sorted(results) == squares(range(20))
    captured = capsys.readouterr()
    assert "20/20" in captured.err, captured.err
    assert captured.out == ""


def test_progress_bar_counts_an_input_of_unknown_length(capsys):
    results = allcores.map(w.square, (x for x in range(20)), backend="thread",
                           workers=WORKERS, progress=True)
    assert results == squares(range(20))
    assert re.search(r"\b20 ?items?\b", capsys.readouterr().err)


# ======================================================================================
# 12. Closing and terminating
# ======================================================================================


def test_leaving_with_waits_for_submitted_work(backend):
    with allcores.Pool(WORKERS, backend=backend) as pool:
        futures = [pool.submit(w.sleep_then_return, 0.05, i) for i in range(6)]
    assert pool.closed
    assert all(f.done() for f in futures)
    assert [f.result(timeout=0) for f in futures] == list(range(6))


def test_close_stops_the_worker_processes(tmp_path):
    with allcores.Pool(WORKERS, backend="process") as pool:
        pids = pool.map(functools.partial(w.meet, str(tmp_path), WORKERS), range(WORKERS),
                        chunksize=1)
    wait_pids_gone(pids, 5)


def test_closed_pool_refuses_new_work(backend):
    pool = allcores.Pool(WORKERS, backend=backend)
    assert pool.map(w.square, range(3)) == [0, 1, 4]
    pool.close()
    assert pool.closed
    calls = {
        "map": lambda: pool.map(w.square, range(3)),
        "imap": lambda: pool.imap(w.square, range(3)),
        "imap_unordered": lambda: pool.imap_unordered(w.square, range(3)),
        "starmap": lambda: pool.starmap(w.add, [(1, 2)]),
        "submit": lambda: pool.submit(w.square, 3),
    }
    for name, call in calls.items():
        with pytest.raises(PoolClosedError):
            call()
    pool.close()  # idempotent
    pool.terminate()
    assert pool.closed


def test_terminated_pool_refuses_new_work(backend):
    pool = allcores.Pool(WORKERS, backend=backend)
    pool.terminate()
    assert pool.closed
    with pytest.raises(PoolClosedError):
        pool.map(w.square, range(3))
    with pytest.raises(PoolClosedError):
        pool.submit(w.square, 3)
    pool.terminate()
    pool.close()


@pytest.mark.parametrize("backend", PARALLEL_BACKENDS)
def test_terminate_while_a_chunk_runs(backend, tmp_path):
    gate, started = tmp_path / "gate", tmp_path / "started.log"
    hold_everything = functools.partial(w.gated, str(gate), range(10**9), str(started), None)
    pool = allcores.Pool(WORKERS, backend=backend)
    try:
        running = [pool.submit(hold_everything, i) for i in range(WORKERS)]
        queued = [pool.submit(w.square, i) for i in range(3)]
        wait_until(lambda: len(w.read_lines(started)) == WORKERS, 20, "both chunks to start")
        began = time.monotonic()
        pool.terminate()
        assert time.monotonic() - began < 2.0
        assert pool.closed
        for future in queued:
            assert isinstance(future.exception(timeout=2), PoolClosedError)
        if backend == "process":
            for future in running:
                assert isinstance(future.exception(timeout=2), PoolClosedError)
    finally:
        gate.touch()
    if backend == "thread":
        # A thread cannot be stopped: its running chunk finishes in the background.
        assert [f.result(timeout=RESULT_TIMEOUT_S) for f in running] == [0, 1]


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
@pytest.mark.parametrize("backend", PARALLEL_BACKENDS)
def test_terminate_fails_a_stream_in_progress_with_pool_closed(backend, method, tmp_path):
    gate, started = tmp_path / "gate", tmp_path / "started.log"
    hold_everything = functools.partial(w.gated, str(gate), range(10**9), str(started), None)
    pool = allcores.Pool(WORKERS, backend=backend)
    outcome = run_in_thread(lambda: collect(pool, method, hold_everything, range(4), 1),
                            timeout=RESULT_TIMEOUT_S)
    try:
        wait_until(lambda: len(w.read_lines(started)) == WORKERS, 20, "both items to start")
        pool.terminate()
    finally:
        gate.touch()
    with pytest.raises(PoolClosedError):
        outcome(timeout=10)


def test_leaving_with_by_an_exception_terminates(tmp_path):
    pid_file, gate = tmp_path / "pid", tmp_path / "gate"
    with pytest.raises(RuntimeError, match="leave the block"):
        with allcores.Pool(WORKERS, backend="process") as pool:
            future = pool.submit(w.report_pid_then_wait, str(pid_file), str(gate), 0)
            pid = int(wait_until(lambda: w.read_lines(pid_file), 20, "the chunk to start")[0])
            began = time.monotonic()
            raise RuntimeError("leave the block")
    assert time.monotonic() - began < 2.0
    assert pool.closed
    assert isinstance(future.exception(timeout=2), PoolClosedError)
    wait_pids_gone([pid], 2)


def test_dropping_the_last_reference_stops_the_workers(tmp_path):
    pool = allcores.Pool(WORKERS, backend="process")
    pids = pool.map(functools.partial(w.meet, str(tmp_path), WORKERS), range(WORKERS),
                    chunksize=1)
    del pool
    gc.collect()
    wait_pids_gone(pids, 5)


def test_many_threads_many_tiny_chunks(parallel_pool):
    pool = parallel_pool

    def hammer(offset):
        futures = [pool.submit(w.add, offset, i) for i in range(150)]
        mapped = pool.map(w.square, range(offset, offset + 150), chunksize=1)
        return [f.result(timeout=RESULT_TIMEOUT_S) for f in futures], mapped

    outcomes = [run_in_thread(functools.partial(hammer, 1000 * k), RESULT_TIMEOUT_S)
                for k in range(4)]
    for k, outcome in enumerate(outcomes):
        submitted, mapped = outcome()
        assert submitted == [1000 * k + i for i in range(150)]
        assert mapped == squares(range(1000 * k, 1000 * k + 150))


def test_module_level_map_from_many_threads_at_once():
    outcomes = [run_in_thread(lambda: allcores.map(w.square, range(50), backend="thread",
                                                   workers=3), RESULT_TIMEOUT_S)
                for _ in range(4)]
    assert all(outcome() == squares(range(50)) for outcome in outcomes)
    assert default_pool("thread", 3) is default_pool("thread", 3)


def test_two_threads_share_one_pool(parallel_pool):
    pool = parallel_pool
    first = run_in_thread(lambda: pool.map(w.square, range(300), chunksize=3), RESULT_TIMEOUT_S)
    second = run_in_thread(lambda: sorted(pool.imap_unordered(w.square, range(300, 500))),
                           RESULT_TIMEOUT_S)
    third = pool.starmap(w.add, [(i, i) for i in range(100)])
    assert first() == squares(range(300))
    assert second() == squares(range(300, 500))
    assert third == [2 * i for i in range(100)]


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_map_inside_a_worker_runs_serially_instead_of_deadlocking(backend):
    # Every thread of the default pool runs an outer item that itself maps: queued on
    # the same pool, the inner chunks would wait forever for a free thread.
    outer = allcores.map(functools.partial(w.nested_map_sum, backend), range(6),
                         backend=backend, workers=WORKERS, chunksize=1)
    assert outer == [sum(x * k for k in range(5)) for x in range(6)]
