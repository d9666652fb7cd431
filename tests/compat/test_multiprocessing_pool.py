"""``allcores.Pool`` as a drop-in for ``multiprocessing.Pool``: the cases of CPython's
``Lib/test/_test_multiprocessing.py`` (``_TestPool``) that a migrating user meets, in our
own words, run against allcores on processes and threads.

Where allcores deliberately differs, the test asserts allcores' documented behaviour and
says why.
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import _workloads as w
from _compat import RESULT_TIMEOUT_S, wait_until
import pytest

import allcores
from allcores import PoolClosedError, WorkerCrashedError

BACKENDS = ["process", "thread"]


@pytest.fixture(params=BACKENDS)
def pool(request):
    with allcores.Pool(processes=2, backend=request.param) as pool:
        yield pool


def sleep_then_square(seconds, x):
    time.sleep(seconds)
    return x * x


def test_processes_is_the_same_as_workers():
    with allcores.Pool(processes=3, backend="thread") as pool:
        assert pool.workers == 3
    with pytest.raises(TypeError, match="processes"):
        allcores.Pool(2, processes=3)


def test_initializer_and_initargs_positionally(tmp_path):
    log = str(tmp_path / "init")
    with allcores.Pool(2, w.append_line, (log, "ready"), backend="thread") as pool:
        assert pool.map(w.square, range(4)) == [0, 1, 4, 9]
    assert set(w.read_lines(log)) == {"ready"}


def test_apply(pool):
    assert pool.apply(w.square, (5,)) == 25
    assert pool.apply(w.describe_call, (1, 2), {"c": 3}) == w.describe_call(1, 2, c=3)


def test_apply_async_get_wait_ready_successful(pool):
    result = pool.apply_async(w.square, (7,))
    assert result.get(timeout=RESULT_TIMEOUT_S) == 49
    result.wait()
    assert result.ready() and result.successful()


def test_get_times_out_with_multiprocessings_timeout_error(pool):
    result = pool.apply_async(sleep_then_square, (1.0, 3))
    with pytest.raises(multiprocessing.TimeoutError):
        result.get(timeout=0.01)
    assert result.get(timeout=RESULT_TIMEOUT_S) == 9


def test_successful_before_ready_is_a_value_error(pool):
    result = pool.apply_async(sleep_then_square, (1.0, 3))
    if not result.ready():
        with pytest.raises(ValueError, match="not ready"):
            result.successful()
    result.wait(RESULT_TIMEOUT_S)


def test_an_error_reaches_get_and_error_callback(pool):
    errors = []
    result = pool.apply_async(w.fail_on, (3, 3), error_callback=errors.append)
    with pytest.raises(ValueError, match="cannot handle 3"):
        result.get(timeout=RESULT_TIMEOUT_S)
    assert not result.successful()
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_callbacks_run_before_get_returns(pool):
    seen = []
    result = pool.map_async(w.square, range(10), callback=seen.append)
    assert result.get(timeout=RESULT_TIMEOUT_S) == [x * x for x in range(10)]
    assert seen == [[x * x for x in range(10)]]  # already there: as multiprocessing


def test_map_async_and_starmap_async(pool):
    assert pool.map_async(w.square, range(20), chunksize=3).get(RESULT_TIMEOUT_S) == \
        [x * x for x in range(20)]
    assert pool.starmap_async(w.add, [(1, 2), (3, 4)]).get(RESULT_TIMEOUT_S) == [3, 7]
    failing = pool.map_async(functools.partial(w.fail_on, 5), range(10))
    with pytest.raises(ValueError, match="cannot handle 5"):
        failing.get(RESULT_TIMEOUT_S)


def test_imap_takes_chunksize_positionally(pool):
    assert list(pool.imap(w.square, range(10), 3)) == [x * x for x in range(10)]
    assert sorted(pool.imap_unordered(w.square, range(10), 3)) == \
        [x * x for x in range(10)]


def test_close_then_join_waits_for_async_work(pool):
    results = [pool.apply_async(sleep_then_square, (0.05, x)) for x in range(4)]
    mapped = pool.map_async(functools.partial(sleep_then_square, 0.05), range(6))
    pool.close()
    assert pool.join(RESULT_TIMEOUT_S)
    # join() returned: every call made before close() has finished.
    assert [r.get(timeout=0) for r in results] == [0, 1, 4, 9]
    assert mapped.get(timeout=0) == [x * x for x in range(6)]


def test_terminate_then_join(pool):
    pool.apply_async(sleep_then_square, (0.05, 1))
    pool.terminate()
    assert pool.join(RESULT_TIMEOUT_S)


def test_join_while_running_is_a_value_error(pool):
    with pytest.raises(ValueError, match="still running"):
        pool.join()


def test_a_closed_pool_refuses_work_like_multiprocessing(pool):
    pool.close()
    # multiprocessing raises ValueError("Pool not running"); ours is both.
    with pytest.raises(ValueError):
        pool.map(w.square, range(3))
    with pytest.raises(RuntimeError):
        pool.apply_async(w.square, (1,))
    assert issubclass(PoolClosedError, (ValueError, RuntimeError))


def test_a_crash_is_caught_by_broken_process_pool_and_the_pool_goes_on():
    # Deliberately different from ProcessPoolExecutor: the pool survives the death of
    # one worker; only the chunk that ran there fails (after its retries).
    with allcores.Pool(2, retries=0) as pool:
        with pytest.raises(BrokenProcessPool) as info:
            pool.map(functools.partial(w.die_on, "exit", 2), range(4), chunksize=1)
        assert isinstance(info.value, WorkerCrashedError)
        assert "goes on" in str(info.value)
        assert pool.map(w.square, range(4)) == [0, 1, 4, 9]


def test_callbacks_are_callables():
    with allcores.Pool(1, backend="thread") as pool:
        with pytest.raises(TypeError, match="callback"):
            pool.apply_async(w.square, (1,), callback=5)
        with pytest.raises(TypeError, match="error_callback"):
            pool.map_async(w.square, [1], error_callback="no")


def test_a_raising_callback_does_not_break_the_pool():
    with allcores.Pool(2, backend="thread") as pool:
        done = threading.Event()

        def bad_callback(_):
            done.set()
            raise RuntimeError("a callback that raises")

        result = pool.apply_async(w.square, (2,), callback=bad_callback)
        assert done.wait(RESULT_TIMEOUT_S)
        result.wait(RESULT_TIMEOUT_S)
        assert pool.apply(w.square, (3,)) == 9


@pytest.mark.parametrize("method", [m for m in ("spawn", "forkserver")
                                    if m in multiprocessing.get_all_start_methods()])
def test_a_multiprocessing_context_gives_the_start_method(method):
    with allcores.Pool(2, context=multiprocessing.get_context(method)) as pool:
        assert pool._backend._context.get_start_method() == method
        assert pool.map(w.square, range(4)) == [0, 1, 4, 9]


def test_context_and_start_method_must_agree():
    with pytest.raises(ValueError, match="choose one"):
        allcores.Pool(2, start_method="fork", context=multiprocessing.get_context("spawn"))
    with pytest.raises(TypeError, match="context"):
        allcores.Pool(2, context="spawn")


# --- module-level calls take the pool's retries= and timeout= ------------------------------


def test_module_level_calls_take_timeout_and_retries():
    from allcores import ChunkTimeoutError

    with pytest.raises(ChunkTimeoutError):
        allcores.map(functools.partial(sleep_then_square, 30), [1, 2], workers=2,
                     timeout=0.5, chunksize=1)
    # auto with a timeout runs on processes: the one backend that can stop a chunk
    assert allcores.map(w.square, range(5), timeout=30) == [0, 1, 4, 9, 16]
    assert list(allcores.imap(w.square, range(5), retries=0, backend="process")) == \
        [0, 1, 4, 9, 16]
    assert sorted(allcores.imap_unordered(w.square, range(5), retries=2,
                                          backend="thread")) == [0, 1, 4, 9, 16]


def test_module_level_timeout_and_retries_are_checked_like_the_pools():
    with pytest.raises(ValueError, match="cannot stop a running chunk"):
        allcores.map(w.square, [1], backend="thread", timeout=1)
    with pytest.raises(ValueError, match="timeout"):
        allcores.map(w.square, [1], timeout=0)
    with pytest.raises(ValueError, match="retries"):
        allcores.imap(w.square, [1], retries=-1)
    with pytest.raises(TypeError, match="retries"):
        allcores.imap_unordered(w.square, [1], retries=1.5)


# --- _TestPoolWorkerLifetime: maxtasksperchild ---------------------------------------------


def test_maxtasksperchild_replaces_workers_and_loses_nothing():
    # multiprocessing counts a task per apply and per chunk of a map: so does allcores.
    with allcores.Pool(3, maxtasksperchild=10) as pool:
        results = [pool.apply_async(w.whoami, (x,)) for x in range(100)]
        answers = [r.get(timeout=RESULT_TIMEOUT_S) for r in results]
    assert [x for x, _, _ in answers] == list(range(100))
    pids = [pid for _, pid, _ in answers]
    # 100 tasks, at most 10 per worker: at least 10 different workers ran them, and
    # none ran more than 10.
    assert len(set(pids)) >= 10
    assert max(pids.count(pid) for pid in set(pids)) <= 10


def test_maxtasksperchild_counts_chunks_of_a_map():
    with allcores.Pool(2, maxtasksperchild=1) as pool:
        pids = pool.map(w.getpid, range(6), chunksize=1)
    assert len(set(pids)) == 6  # one task (chunk) per worker: six workers in turn


def test_maxtasksperchild_early_close():
    # CPython's test_pool_worker_lifetime_early_close: workers that retire while the
    # pool closes still deliver every result.
    pool = allcores.Pool(1, maxtasksperchild=1)
    results = [pool.apply_async(sleep_then_square, (0.01, x)) for x in range(3)]
    pool.close()
    assert pool.join(RESULT_TIMEOUT_S)
    assert [r.get(timeout=0) for r in results] == [0, 1, 4]


def test_maxtasksperchild_is_checked():
    with pytest.raises(ValueError, match="maxtasksperchild"):
        allcores.Pool(1, maxtasksperchild=0)
    with pytest.raises(TypeError, match="maxtasksperchild"):
        allcores.Pool(1, maxtasksperchild=1.5)
    # Threads are never replaced: refused, not ignored.
    with pytest.raises(ValueError, match="maxtasksperchild"):
        allcores.Pool(1, backend="thread", maxtasksperchild=5)


# --- submit futures: pending until a worker takes the call ---------------------------------


def test_a_queued_submit_is_pending_and_cancellable(pool, tmp_path):
    gate, started = str(tmp_path / "gate"), str(tmp_path / "started")
    try:
        busy = [pool.submit(w.gated, gate, {x}, started, None, x) for x in (1, 2)]
        queued = pool.submit(w.square, 5)
        wait_until(lambda: len(w.read_lines(started)) == 2, "both workers to hold a call")
        assert all(f.running() for f in busy)
        assert not queued.running() and not queued.done()
        assert not busy[0].cancel()  # a running call cannot be cancelled
        assert queued.cancel() and queued.cancelled()
    finally:
        open(gate, "w").close()
    assert [f.result(timeout=RESULT_TIMEOUT_S) for f in busy] == [1, 4]
    assert pool.apply(w.square, (6,)) == 36  # the pool goes on


def test_map_with_two_iterables_says_to_use_starmap(pool):
    # multiprocessing reads the second iterable as the chunk size, as this does; the
    # error says what to write instead.
    with pytest.raises(TypeError, match=r"chunksize.*starmap\(fn, zip\(xs, ys\)\)"):
        pool.map(pow, [1, 2], [3, 4])
    assert pool.starmap(pow, zip([1, 2], [3, 4])) == [1, 16]
