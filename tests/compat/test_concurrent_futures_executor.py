"""``allcores.Executor`` as a drop-in for ``concurrent.futures``: the executor cases.

Ported, in our own words, from CPython's ``Lib/test/test_concurrent_futures/``:
``executor.py`` (``ExecutorTest``: submit, keyword arguments, map, map raising, map with
a timeout, the shutdown race of issue 12456, stale references, results freed by the map
iterator, max_workers validation), ``test_process_pool.py`` (map's chunksize, the
saturation of the workers), ``test_thread_pool.py`` (map submitting without iteration,
the map timeout cancelling the queued calls), ``test_init.py`` (initializer, failing
initializer), plus ``cancel()`` on queued and running futures and asyncio's
``loop.run_in_executor``. Each case runs on processes and threads.

Where allcores deliberately differs (``allcores/executor.py``'s module docstring), the
test asserts allcores' documented behaviour and says why:

- ``map`` reads its input lazily: nothing is submitted before the iterator is read (the
  standard executors submit every item at the call), and an endless input works;
- ``chunksize=None`` lets allcores size the chunks (the standard default is 1), so the
  cases that count on one item per call pass ``chunksize=1``;
- a ``map`` created before ``shutdown()`` can still be read to its end afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import itertools
import os
import threading
import time
import weakref
from concurrent.futures import BrokenExecutor, CancelledError

import _workloads as w
from _compat import RESULT_TIMEOUT_S, open_gate, wait_until, worker_is_gone
import pytest

import allcores

# A map timeout long enough for two quick calls on a warm, loaded 2-core machine.
MAP_TIMEOUT_S = 3.0


# --- helpers: module level, so that worker processes import them by name ---------------


def mul(x, y):
    return x * y


class Witness:
    def method(self):
        return None


def make_witness(_):
    return Witness()


def log_then_wait(log: str, gate: str, ident: str):
    """Log ``ident started`` with who runs it, wait for ``gate``, log ``ident stopped``."""
    w.append_line(log, f"{ident} started {os.getpid()} {threading.get_ident()}")
    try:
        w.wait_for_path(gate)
    finally:
        w.append_line(log, f"{ident} stopped")
    return ident


def refuse_to_start():
    raise ValueError("error in initializer")


def blocked_calls(executor, gate, started, count=2, first=1000):
    """Occupy ``count`` workers with calls that wait for ``gate``; return their futures
    once each has started."""
    held = range(first, first + count)
    futures = [executor.submit(w.gated, gate, held, started, None, x) for x in held]
    wait_until(lambda: len(w.read_lines(started)) >= count, "the blocked calls to start")
    return futures


# --- submit -----------------------------------------------------------------------------


def test_submit(executor):
    future = executor.submit(pow, 2, 8)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=RESULT_TIMEOUT_S) == 256


def test_submit_keyword(executor):
    assert executor.submit(mul, 2, y=8).result(timeout=RESULT_TIMEOUT_S) == 16
    # Names that are submit's own parameters reach the function when given as keywords.
    future = executor.submit(w.describe_call, 1, self=2, fn=3)
    assert future.result(timeout=RESULT_TIMEOUT_S) == ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        executor.submit(fn=w.describe_call, arg=1)
    with pytest.raises(TypeError):
        executor.submit(arg=1)


# --- map --------------------------------------------------------------------------------


def test_map(executor):
    expected = list(map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10))) == expected
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == expected
    # ProcessPoolExecutor's test_map_chunksize: chunks bigger than the input, or equal.
    expected = list(map(pow, range(40), range(40)))
    for chunksize in (6, 50, 40):
        assert list(executor.map(pow, range(40), range(40), chunksize=chunksize)) == expected
    # allcores checks its arguments at the call, where the standard one raises too.
    for chunksize in (0, -1):
        with pytest.raises(ValueError):
            executor.map(pow, range(40), range(40), chunksize=chunksize)


def test_map_exception(executor):
    """One call per item (chunksize=1, the standard default): the results before the
    failing item come first. (With bigger chunks a failing item fails its chunk, as
    ProcessPoolExecutor's chunks do.)"""
    results = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5], chunksize=1)
    assert next(results) == (0, 1)
    assert next(results) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout(executor, gate):
    executor.submit(pow, 2, 2).result(timeout=RESULT_TIMEOUT_S)  # workers up and warm
    fn = functools.partial(w.gated, gate, (3,), None, None)  # item 3 waits for the gate
    results = []
    start = time.monotonic()
    with pytest.raises(TimeoutError):  # concurrent.futures.TimeoutError is TimeoutError
        for result in executor.map(fn, [1, 2, 3], timeout=MAP_TIMEOUT_S, chunksize=1):
            results.append(result)
    assert time.monotonic() - start >= MAP_TIMEOUT_S
    assert results == [1, 4]


def test_map_timeout_cancels_the_queued_calls(backend, tmp_path):
    """ThreadPoolExecutor's test_executor_map_current_future_cancel: the only worker is
    busy, so the map times out at once; closing the iterator must cancel the map's
    calls, which no worker has taken: neither ever runs. allcores documents the same
    ("the queued chunks are then cancelled"); shutdown(wait=True) then stops the worker,
    so nothing can run after it."""
    log, gate = str(tmp_path / "log"), str(tmp_path / "gate")
    with allcores.Executor(1, backend=backend) as executor:
        first = executor.submit(log_then_wait, log, gate, "first")
        try:
            wait_until(lambda: w.read_lines(log), "the first call to start")
            fn = functools.partial(log_then_wait, log, gate)
            with contextlib.closing(executor.map(fn, ["second", "third"], timeout=0)) as gen:
                with pytest.raises(TimeoutError):
                    next(gen)
        finally:
            open_gate(gate)
        assert first.result(timeout=RESULT_TIMEOUT_S) == "first"
    _, _, pid, ident = w.read_lines(log)[0].split()
    wait_until(lambda: worker_is_gone(backend, int(pid), int(ident)), "the worker to stop")
    assert [line.split(" ")[:2] for line in w.read_lines(log)] == \
        [["first", "started"], ["first", "stopped"]]


def test_map_reads_its_input_lazily(executor, tmp_path):
    """Deliberately different (ThreadPoolExecutor's test_map_submits_without_iteration):
    the standard map submits every item before it returns, so shutdown(wait=True) runs
    them all; allcores reads the input only as the results are read. A map made before
    shutdown() is still read to its end afterwards, and an endless input works."""
    log = str(tmp_path / "log")
    consumed = []

    def items():
        for number in range(10):
            consumed.append(number)
            yield str(number)

    squares = executor.map(w.square, itertools.count())
    with contextlib.closing(squares):
        assert list(itertools.islice(squares, 5)) == [0, 1, 4, 9, 16]
    results = executor.map(functools.partial(w.append_line, log), items())
    executor.shutdown(wait=True)
    assert consumed == [] and w.read_lines(log) == []
    assert list(results) == [None] * 10
    assert sorted(w.read_ints(log)) == list(range(10))


def test_shutdown_race_issue12456(executor):
    """Shutting down with a map made and never read neither hangs nor loses it."""
    results = executor.map(str, [2] * (executor.workers + 1))
    closer = threading.Thread(target=executor.shutdown)
    closer.start()
    closer.join(RESULT_TIMEOUT_S)
    assert not closer.is_alive(), "shutdown() hung"
    assert list(results) == ["2"] * (executor.workers + 1)


# --- references ------------------------------------------------------------------------


def test_no_stale_references(executor):
    """Issue 16284: once a call has run, the executor holds nothing of it (the future
    was dropped at once)."""
    witness = Witness()
    collected = threading.Event()
    ref = weakref.ref(witness, lambda _: collected.set())
    executor.submit(witness.method)
    del witness
    assert collected.wait(RESULT_TIMEOUT_S), "the submitted call's object was kept"
    assert ref() is None


def test_map_iterator_frees_each_result(executor):
    """Issue 14406: the map's iterator keeps no reference to a result it yielded."""
    for obj in executor.map(make_witness, range(10)):
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None, "the map iterator still holds the result it yielded"


# --- arguments ---------------------------------------------------------------------------


def test_invalid_arguments(backend):
    for number in (0, -1):
        with pytest.raises(ValueError):
            allcores.Executor(max_workers=number, backend=backend)
    for number in (1.5, "2"):
        with pytest.raises(TypeError):
            allcores.Executor(max_workers=number, backend=backend)
    # max_tasks_per_child: at least 1; threads are never replaced, so they refuse it.
    with pytest.raises(ValueError):
        allcores.Executor(1, max_tasks_per_child=0, backend=backend)
    if backend == "thread":
        with pytest.raises(ValueError, match="backend"):
            allcores.Executor(1, max_tasks_per_child=3, backend=backend)


def test_initializer(backend, tmp_path, monkeypatch):
    monkeypatch.setattr(w, "init_value", None)  # threads share this module's global
    log = str(tmp_path / "init")
    with allcores.Executor(2, initializer=w.remember, initargs=("initialized", log),
                           backend=backend) as executor:
        futures = [executor.submit(w.recall, n) for n in range(2)]
        values = [f.result(timeout=RESULT_TIMEOUT_S)[:2] for f in futures]
    assert values == [(0, "initialized"), (1, "initialized")]
    assert w.read_lines(log)  # it ran in the workers, once each


def test_failing_initializer_breaks_the_executor(backend):
    """test_init's FailingInitializer: the standard executors fail the call with
    BrokenExecutor (BrokenProcessPool, BrokenThreadPool) and refuse later ones with it,
    so migrating code catches BrokenExecutor."""
    with allcores.Executor(2, initializer=refuse_to_start, backend=backend) as executor:
        try:
            future = executor.submit(pow, 2, 3)
        except BrokenExecutor:
            pass  # broken already
        else:
            with pytest.raises(BrokenExecutor):
                future.result(timeout=RESULT_TIMEOUT_S)
        with pytest.raises(BrokenExecutor):
            executor.submit(pow, 2, 3).result(timeout=RESULT_TIMEOUT_S)


# --- futures' states and cancel() ----------------------------------------------------------


def test_calls_beyond_the_workers_stay_pending(executor, gate, tmp_path):
    """ProcessPoolExecutor's test_saturation, seen through the futures: with every
    worker busy, the other calls are pending (not running) until a worker takes them."""
    started = str(tmp_path / "started")
    futures = [executor.submit(w.gated, gate, range(30), started, None, x) for x in range(30)]
    wait_until(lambda: len(w.read_lines(started)) == 2, "both workers to be busy")
    assert sum(f.running() for f in futures) == 2
    assert sum(not f.running() and not f.done() for f in futures) == 28
    assert len(w.read_lines(started)) == 2
    open_gate(gate)
    assert [f.result(timeout=RESULT_TIMEOUT_S) for f in futures] == [x * x for x in range(30)]


def test_cancel_a_queued_call_succeeds_a_running_one_fails(executor, gate, tmp_path):
    started = str(tmp_path / "started")
    running = blocked_calls(executor, gate, started)
    queued = executor.submit(w.gated, gate, (), started, None, 99)
    assert not queued.running()
    assert queued.cancel() and queued.cancelled() and queued.done()
    with pytest.raises(CancelledError):
        queued.result(timeout=0)
    for future in running:
        assert future.running()
        assert not future.cancel()
        assert not future.cancelled() and future.running()
    open_gate(gate)
    assert [f.result(timeout=RESULT_TIMEOUT_S) for f in running] == [1000 ** 2, 1001 ** 2]
    assert not running[0].cancel()  # done: too late as well
    executor.shutdown(wait=True)  # every call submitted has run by then
    assert sorted(w.read_ints(started)) == [1000, 1001]  # never the cancelled one


# --- asyncio ------------------------------------------------------------------------------


def test_loop_run_in_executor(executor, gate, tmp_path):
    """Results and errors come through asyncio; cancelling the asyncio future of a
    queued call cancels the call (asyncio passes cancel() on), which then never runs."""
    started = str(tmp_path / "started")

    async def main():
        loop = asyncio.get_running_loop()
        powers = await asyncio.gather(
            *(loop.run_in_executor(executor, pow, 2, n) for n in range(6)))
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(executor, divmod, 1, 0)
        running = blocked_calls(executor, gate, started)
        queued = loop.run_in_executor(executor, w.gated, gate, (), started, None, 99)
        queued.cancel()
        await asyncio.sleep(0)  # one turn of the loop: asyncio passes the cancel on
        return powers, running, queued.cancelled()

    powers, running, cancelled = asyncio.run(main())
    assert powers == [1, 2, 4, 8, 16, 32] and cancelled
    open_gate(gate)
    assert [f.result(timeout=RESULT_TIMEOUT_S) for f in running] == [1000 ** 2, 1001 ** 2]
    executor.shutdown(wait=True)  # every call submitted has run by then
    assert sorted(w.read_ints(started)) == [1000, 1001]
