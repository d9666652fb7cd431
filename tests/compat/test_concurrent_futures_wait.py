"""``concurrent.futures.wait`` and ``as_completed`` over ``allcores.Executor`` futures.

Ported, in our own words, from CPython's ``Lib/test/test_concurrent_futures/``
``test_wait.py`` (issue 20369's duplicate future, FIRST_COMPLETED, FIRST_EXCEPTION,
ALL_COMPLETED, a timeout, the pending-calls race of issue 14406) and
``test_as_completed.py`` (no timeout, a zero and a short timeout, duplicate futures, the
timeout's message, yielded futures not kept alive). Each case mixes the executor's
futures with futures already settled by hand, as the originals do, and runs on
processes and threads.

No deliberate difference of allcores shows here: its futures are plain
``concurrent.futures.Future`` objects that stay pending until a worker takes the call.
One case is ours: a queued call cancelled by ``cancel()`` must wake ``wait`` and
``as_completed`` (a worker that drops a cancelled call notifies them in the standard
executors; allcores' future does it itself).
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
import time
import weakref
from concurrent import futures
from concurrent.futures import Future

import _workloads as w
from _compat import RESULT_TIMEOUT_S, open_gate, wait_until
import pytest

import allcores



# --- helpers: module level, so that worker processes import them by name ---------------


def mul(x, y):
    return x * y


def wait_then_raise(gate: str):
    w.wait_for_path(gate)
    raise Exception("this is an exception")


# Futures in each state, settled through the public API (fresh ones per test).


def pending_future():
    return Future()


def running_future():
    future = Future()
    future.set_running_or_notify_cancel()
    return future


def cancelled_future():
    """Cancelled, but no executor has noticed: wait() still counts it as not done."""
    future = Future()
    future.cancel()
    return future


def cancelled_and_notified_future():
    future = cancelled_future()
    future.set_running_or_notify_cancel()
    return future


def failed_future():
    future = Future()
    future.set_exception(OSError())
    return future


def successful_future():
    future = Future()
    future.set_result(42)
    return future


def blocked_calls(executor, gate, started, count=2):
    """Occupy ``count`` workers with calls that wait for ``gate``; return their futures
    once each has started."""
    held = range(count)
    calls = [executor.submit(w.gated, gate, held, started, None, x) for x in held]
    wait_until(lambda: len(w.read_lines(started)) >= count, "the blocked calls to start")
    return calls


# --- wait ---------------------------------------------------------------------------------


def test_first_completed(executor, gate):
    cancelled = cancelled_future()
    quick = executor.submit(mul, 21, 2)
    blocked = executor.submit(w.wait_for_path, gate)
    done, not_done = futures.wait([cancelled, quick, blocked], timeout=RESULT_TIMEOUT_S,
                                  return_when=futures.FIRST_COMPLETED)
    assert done == {quick}
    assert not_done == {cancelled, blocked}
    # Some already completed: they are the first, the blocked call is not.
    settled = {cancelled_and_notified_future(), successful_future()}
    done, not_done = futures.wait(settled | {blocked}, timeout=RESULT_TIMEOUT_S,
                                  return_when=futures.FIRST_COMPLETED)
    assert done == settled and not_done == {blocked}
    open_gate(gate)
    assert blocked.result(timeout=RESULT_TIMEOUT_S) is None


def test_first_exception(executor, gate, tmp_path):
    """The failing call fails only once the first call is done (a thread opens its gate
    then); the third call, queued behind them, then blocks on another gate."""
    raise_gate = str(tmp_path / "raise-gate")
    quick = executor.submit(mul, 2, 21)
    failing = executor.submit(wait_then_raise, raise_gate)
    blocked = executor.submit(w.wait_for_path, gate)

    def open_once_quick_is_done():
        try:
            quick.result(timeout=RESULT_TIMEOUT_S)
        finally:
            open_gate(raise_gate)

    opener = threading.Thread(target=open_once_quick_is_done)
    opener.start()
    try:
        done, not_done = futures.wait([quick, failing, blocked], timeout=RESULT_TIMEOUT_S,
                                      return_when=futures.FIRST_EXCEPTION)
    finally:
        opener.join(RESULT_TIMEOUT_S)
    assert done == {quick, failing} and not_done == {blocked}
    with pytest.raises(Exception, match="this is an exception"):
        failing.result(timeout=0)
    open_gate(gate)
    blocked.result(timeout=RESULT_TIMEOUT_S)


def test_first_exception_some_already_complete(executor, gate):
    succeeded, cancelled, notified = (successful_future(), cancelled_future(),
                                      cancelled_and_notified_future())
    failing = executor.submit(divmod, 21, 0)
    blocked = executor.submit(w.wait_for_path, gate)
    done, not_done = futures.wait([succeeded, cancelled, notified, failing, blocked],
                                  timeout=RESULT_TIMEOUT_S,
                                  return_when=futures.FIRST_EXCEPTION)
    assert done == {succeeded, notified, failing}
    assert not_done == {cancelled, blocked}
    # One already failed: it alone is done.
    failed = failed_future()
    done, not_done = futures.wait([failed, blocked], timeout=RESULT_TIMEOUT_S,
                                  return_when=futures.FIRST_EXCEPTION)
    assert done == {failed} and not_done == {blocked}
    open_gate(gate)
    blocked.result(timeout=RESULT_TIMEOUT_S)


def test_all_completed(executor):
    settled = [successful_future(), cancelled_and_notified_future(), failed_future()]
    failing = executor.submit(divmod, 2, 0)
    quick = executor.submit(mul, 2, 21)
    done, not_done = futures.wait(settled + [failing, quick], timeout=RESULT_TIMEOUT_S,
                                  return_when=futures.ALL_COMPLETED)
    assert done == set(settled) | {failing, quick}
    assert not_done == set()
    assert quick.result() == 42
    # Issue 20369: one future given twice.
    future = executor.submit(mul, 1, 2)
    done, not_done = futures.wait([future, future], timeout=RESULT_TIMEOUT_S,
                                  return_when=futures.ALL_COMPLETED)
    assert done == {future} and not_done == set()


def test_wait_timeout(executor, gate):
    settled = {cancelled_and_notified_future(), failed_future(), successful_future()}
    blocked = executor.submit(w.wait_for_path, gate)
    start = time.monotonic()
    done, not_done = futures.wait(settled | {blocked}, timeout=0.05,
                                  return_when=futures.ALL_COMPLETED)
    assert time.monotonic() - start >= 0.04  # it did wait (clocks round a little)
    assert done == settled and not_done == {blocked}
    open_gate(gate)
    blocked.result(timeout=RESULT_TIMEOUT_S)


def test_pending_calls_race_issue14406(gate):
    """Many calls finishing at once while wait() registers its waiter (thread pool only,
    as in the original: the race is between threads of this process)."""
    old_interval = sys.getswitchinterval()
    with allcores.Executor(4, backend="thread") as executor:
        sys.setswitchinterval(1e-6)
        try:
            calls = {executor.submit(w.wait_for_path, gate) for _ in range(100)}
            open_gate(gate)
            done, not_done = futures.wait(calls, timeout=RESULT_TIMEOUT_S,
                                          return_when=futures.ALL_COMPLETED)
        finally:
            sys.setswitchinterval(old_interval)
            open_gate(gate)
    assert not_done == set() and done == calls


def test_cancelling_a_queued_call_wakes_wait_and_as_completed(executor, gate, tmp_path):
    started = str(tmp_path / "started")
    running = blocked_calls(executor, gate, started)
    queued = executor.submit(mul, 6, 7)
    woken = []

    def wait_for_it():
        woken.append(futures.wait([queued], timeout=RESULT_TIMEOUT_S,
                                  return_when=futures.FIRST_COMPLETED))
        woken.append(list(futures.as_completed([queued], timeout=RESULT_TIMEOUT_S)))

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    assert queued.cancel()
    waiter.join(RESULT_TIMEOUT_S)
    assert not waiter.is_alive(), "wait() or as_completed() was not woken"
    assert woken == [({queued}, set()), [queued]]
    open_gate(gate)
    for future in running:
        future.result(timeout=RESULT_TIMEOUT_S)


# --- as_completed -------------------------------------------------------------------------


def test_as_completed_without_timeout(executor):
    settled = {cancelled_and_notified_future(), failed_future(), successful_future()}
    calls = {executor.submit(mul, 2, 21), executor.submit(mul, 7, 6)}
    completed = set(futures.as_completed(settled | calls))
    assert completed == settled | calls
    assert {f.result() for f in calls} == {42}


def test_as_completed_times_out(executor, gate):
    """A zero and a short timeout: the settled futures come out, then TimeoutError; the
    blocked call's future never does."""
    settled = {cancelled_and_notified_future(), failed_future(), successful_future()}
    for timeout in (0, 0.1):
        blocked = executor.submit(w.wait_for_path, gate)
        completed = set()
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            for future in futures.as_completed(settled | {blocked}, timeout):
                completed.add(future)
        assert time.monotonic() - start >= timeout * 0.9
        assert completed == settled, f"timeout={timeout}"
    open_gate(gate)


def test_as_completed_with_duplicate_futures(executor, gate):
    """Issue 20367 (and 31641: any iterable): one future given three times comes out
    once. Its call waits for a gate that a thread opens while as_completed runs."""
    future = executor.submit(w.wait_for_path, gate)
    opener = threading.Thread(target=open_gate, args=(gate,))
    opener.start()
    try:
        completed = list(futures.as_completed(itertools.repeat(future, 3),
                                              timeout=RESULT_TIMEOUT_S))
    finally:
        opener.join(RESULT_TIMEOUT_S)
    assert completed == [future]


def test_as_completed_timeout_message(executor, gate, tmp_path):
    started = str(tmp_path / "started")
    running = blocked_calls(executor, gate, started)
    queued = executor.submit(mul, 6, 7)
    unsettled = [cancelled_and_notified_future(), queued, running[0], successful_future()]
    with pytest.raises(TimeoutError) as info:
        list(futures.as_completed(unsettled, timeout=0))
    assert str(info.value) == "2 (of 4) futures unfinished"
    open_gate(gate)
    assert queued.result(timeout=RESULT_TIMEOUT_S) == 42


def test_as_completed_keeps_no_yielded_future(executor):
    """Issue 14406: a future that as_completed yielded is not kept alive by it."""
    calls = [executor.submit(mul, n, 2) for n in range(8)]
    calls.append(cancelled_and_notified_future())
    calls.append(successful_future())
    for future in futures.as_completed(calls, timeout=RESULT_TIMEOUT_S):
        calls.remove(future)
        ref = weakref.ref(future)
        del future
        gc.collect()
        assert ref() is None, "as_completed kept a future it yielded"
    assert calls == []
