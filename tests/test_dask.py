"""The dask backend: ``Pool(backend="dask")`` and ``allcores.map(..., backend="dask")`` on
a Dask cluster (``dask.distributed``), with the same behaviour as the other backends.

One ``LocalCluster`` (2 single-threaded worker processes, loopback only, no dashboard)
serves the whole module; most tests make a pool on it through ``client=``, which is
cheap. Tests that need a cluster of the pool's own (``retries``, worker deaths, Ctrl-C,
interpreter exit) start one through the pool itself. Every test leaves no allcores task
on the shared scheduler (checked by the ``pool`` fixture), and every worker process a
test starts is gone when it ends.

Synchronisation: workers wait on files (``_workloads.gated``), the test polls logs, the
scheduler's and the workers' state with a deadline (``_support.wait_until``); every
blocking call has a timeout, and the conftest watchdog is the backstop.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from concurrent.futures import Future
from pathlib import Path

import pytest

distributed = pytest.importorskip(
    "distributed",
    reason="the dask backend needs Dask's distributed scheduler: pip install 'allcores[dask]'")

import _workloads as w  # noqa: E402
import dask  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402  (a dependency of distributed)
from _support import (  # noqa: E402
    CountedSource,
    kill_leftovers,
    run_in_thread,
    wait_pids_gone,
    wait_until,
)

import allcores  # noqa: E402
import allcores._default_pools  # noqa: E402
from allcores import (  # noqa: E402
    AllcoresError,
    PoolClosedError,
    WorkerCrashedError,
    WorkerInitError,
    blocks,
    kernels,
    pure,
    shortcuts,
)
from allcores.backends.dask import CHUNKS_IN_FLIGHT_PER_WORKER  # noqa: E402

WORKERS = 2
# The longest any single result may take to arrive in these tests.
RESULT_TIMEOUT_S = 30
# How long Dask may take to forget tasks, stop processes, restart a worker.
SETTLE_S = 20
TESTS_DIR = Path(__file__).resolve().parent
ITEMS = list(range(-5, 40))


def squares(items):
    return [x * x for x in items]


def has_note(error: BaseException, pattern: str) -> bool:
    return any(re.search(pattern, note) for note in getattr(error, "__notes__", []))


def window_bound(pool, consumed_chunks: int, chunksize: int) -> int:
    """Most items a dask pool may have pulled from its input once the caller has taken
    results from ``consumed_chunks`` chunks."""
    return (consumed_chunks + CHUNKS_IN_FLIGHT_PER_WORKER * pool.workers) * chunksize


# --- what the scheduler and the workers hold (run there by Dask) ---------------------------


def _allcores_keys_on(dask_scheduler) -> list[str]:
    return sorted(str(key) for key in dask_scheduler.tasks if str(key).startswith("allcores-"))


def _allcores_plugins_on(dask_scheduler) -> list[str]:
    return sorted(name for name in dask_scheduler.worker_plugins
                  if name.startswith("allcores-"))


def _queued_on(dask_worker) -> int:
    """Tasks a worker holds that have not started."""
    return len(dask_worker.state.ready) + len(dask_worker.state.constrained)


def allcores_keys(client) -> list[str]:
    return client.run_on_scheduler(_allcores_keys_on)


def worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    pids: set[int] = set()
    try:
        with distributed.Client(cluster, set_as_default=False) as watcher:
            pids |= worker_pids(watcher)
        cluster.pids = pids  # the workers' pids, for the tests to check against
        yield cluster
        with distributed.Client(cluster, set_as_default=False) as watcher:
            pids |= worker_pids(watcher)  # restarted workers, if any
    finally:
        cluster.close(timeout=SETTLE_S)
        try:
            wait_pids_gone(pids, SETTLE_S)
        finally:
            kill_leftovers(pids)


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture
def pool(client):
    with allcores.Pool(backend="dask", client=client) as pool:
        yield pool
    assert client.status == "running", "the pool closed the caller's client"
    wait_until(lambda: not allcores_keys(client), SETTLE_S,
               "the scheduler to forget every task of the pool")


@pytest.fixture(scope="module", autouse=True)
def stop_default_pools():
    """Leave no warm default pool (``allcores.map``'s) running after this module."""
    yield
    allcores._default_pools.terminate_all()


def stop_dask_default_pools() -> None:
    allcores._default_pools.terminate_all("dask")


# ======================================================================================
# 1. Same results as the builtin map
# ======================================================================================

INPUTS = {
    "empty-list": lambda: [],
    "empty-generator": lambda: (x for x in ()),
    "one-item": lambda: [7],
    "list": lambda: list(ITEMS),
    "tuple": lambda: tuple(range(-3, 12)),
    "range": lambda: range(50),
    "generator": lambda: (x for x in range(50)),
    "numpy-array": lambda: np.arange(-4, 9),
}


@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered"])
@pytest.mark.parametrize("make_input", INPUTS.values(), ids=INPUTS.keys())
@pytest.mark.parametrize("chunksize", [None, 4])
def test_inputs_and_chunk_sizes_match_builtin_map(pool, method, make_input, chunksize):
    expected = list(map(w.square, make_input()))
    results = getattr(pool, method)(w.square, make_input(), chunksize)
    if method != "map":
        assert iter(results) is results
    got = list(results)
    if method == "imap_unordered":
        got, expected = sorted(got), sorted(expected)
    assert got == expected


def test_arbitrary_picklable_objects_round_trip(pool):
    items = [None, 1.5, "text", b"\x00bytes", (1, (2, 3)), {"key": [1, 2]}, 2**100,
             frozenset({1, 2}), float("inf"), -0.0, np.arange(3)]
    got = pool.map(w.identity, items, chunksize=3)
    assert got[:-1] == items[:-1] and np.array_equal(got[-1], items[-1])


@pytest.mark.parametrize("chunksize", [None, 1, 1000])
def test_starmap(pool, chunksize):
    pairs = [(i, 10 * i) for i in range(25)]
    assert pool.starmap(w.add, pairs, chunksize) == [a + b for a, b in pairs]
    assert pool.starmap(w.add, iter(pairs), chunksize) == [a + b for a, b in pairs]
    assert pool.starmap(w.add, [], chunksize) == []


def test_submit(pool):
    future = pool.submit(w.describe_call, 1, "two", key=3)
    assert isinstance(future, Future)
    assert future.result(timeout=RESULT_TIMEOUT_S) == ((1, "two"), {"key": 3})
    futures = [pool.submit(w.add, i, i) for i in range(20)]
    assert [f.result(timeout=RESULT_TIMEOUT_S) for f in futures] == [2 * i for i in range(20)]


def test_lambdas_closures_and_callable_objects(pool):
    offset = 17

    def shifted(x):
        return x + offset

    assert pool.map(lambda x: 3 * x + 1, range(20)) == [3 * x + 1 for x in range(20)]
    assert pool.map(shifted, range(5)) == [x + offset for x in range(5)]
    assert sorted(pool.imap_unordered(lambda x: -x, range(5))) == [-4, -3, -2, -1, 0]
    assert pool.starmap(lambda a, b: a * b, [(2, 3), (4, 5)]) == [6, 20]
    assert pool.map(functools.partial(w.add, 100), range(3)) == [100, 101, 102]
    calls = pool.map(w.identity, [lambda: 1, lambda: 2])  # lambdas as items travel too
    assert [call() for call in calls] == [1, 2]
    for k in (0, 39, 1):  # many distinct functions on one pool
        assert pool.map(lambda x, k=k: x * k, range(3)) == [0, k, 2 * k]


def test_chunks_run_whole_on_the_dask_workers(pool, cluster):
    results = pool.map(w.whoami, range(40), chunksize=5)
    assert [item for item, _, _ in results] == list(range(40))
    for start in range(0, 40, 5):
        runners = {(pid, thread) for _, pid, thread in results[start:start + 5]}
        assert len(runners) == 1, f"chunk {start}..{start + 4} ran on {runners}"
    pids = {pid for _, pid, _ in results}
    assert pids <= cluster.pids and os.getpid() not in pids


def test_workers_is_the_clusters_thread_count(pool):
    assert pool.workers == WORKERS
    assert pool.backend == "dask" and "dask" in repr(pool)


# ======================================================================================
# 2. Lazy, bounded, cancellable
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


def test_imap_unordered_does_not_wait_for_a_slow_head(pool, tmp_path):
    gate = tmp_path / "gate"
    fn = functools.partial(w.gated, str(gate), (0,), None, None)
    results = pool.imap_unordered(fn, range(12), chunksize=1)
    try:
        others = run_in_thread(lambda: [next(results) for _ in range(11)], RESULT_TIMEOUT_S)()
    finally:
        gate.touch()
    assert sorted(others) == squares(range(1, 12))
    assert list(results) == [0]


def test_closing_the_iterator_cancels_pending_chunks(pool, client, tmp_path):
    gate = tmp_path / "gate"
    started, done = tmp_path / "started.log", tmp_path / "done.log"
    # Item 0 runs at once; every other item waits for the gate.
    fn = functools.partial(w.gated, str(gate), range(1, 10**9), str(started), str(done))
    source = CountedSource()
    results = pool.imap(fn, source.items(), chunksize=1)
    try:
        assert next(results) == 0
        # Each worker now runs one held item; later items wait on the scheduler or
        # queued on a worker. Which items run is the scheduler's choice: a worker may
        # be handed items 1 and 2 while the other takes item 3.
        running = wait_until(lambda: _held_items_started(started), SETTLE_S,
                             "a held item to start on each of the two workers")
        results.close()  # what a `break` or a Ctrl-C in the caller's loop does
        wait_until(lambda: not allcores_keys(client), SETTLE_S,
                   "the scheduler to drop the cancelled chunks")
        wait_until(lambda: sum(client.run(_queued_on).values()) == 0, SETTLE_S,
                   "the workers to drop the chunks queued on them")
    finally:
        gate.touch()
    wait_until(lambda: sorted(w.read_ints(done)) == [0, *running], SETTLE_S,
               f"the running items {running} to finish")
    assert pool.map(w.square, range(10), chunksize=1) == squares(range(10))
    # Items pulled into the window but not running were cancelled: they never ran.
    assert sorted(w.read_ints(started)) == [0, *running]
    assert max(running) < source.pulled <= window_bound(pool, 1, 1)


def _held_items_started(log) -> list[int] | None:
    """The held items that started, once (at least) one per worker has (else None)."""
    held = sorted(w.read_ints(log))[1:]
    return held if len(held) >= WORKERS else None


def test_close_waits_for_submitted_work(client, tmp_path):
    gate = tmp_path / "gate"
    pool = allcores.Pool(backend="dask", client=client)
    futures = [pool.submit(w.gated, str(gate), (0, 1, 2), None, None, i) for i in range(4)]
    closing = run_in_thread(pool.close, RESULT_TIMEOUT_S)
    gate.touch()
    closing()
    assert [f.result(timeout=0) for f in futures] == squares(range(4))
    with pytest.raises(PoolClosedError):
        pool.map(w.square, range(3))


def test_terminate_fails_unfinished_work_and_keeps_the_callers_client(client, tmp_path):
    gate = tmp_path / "gate"
    started = tmp_path / "started.log"
    pool = allcores.Pool(backend="dask", client=client)
    try:
        futures = [pool.submit(w.gated, str(gate), range(10), str(started), None, i)
                   for i in range(6)]
        wait_until(lambda: len(w.read_lines(started)) == WORKERS, SETTLE_S,
                   "both workers to start a chunk")
        pool.terminate()
        for future in futures:
            assert isinstance(future.exception(timeout=RESULT_TIMEOUT_S), PoolClosedError)
        wait_until(lambda: not allcores_keys(client), SETTLE_S,
                   "the scheduler to drop the pool's tasks")
    finally:
        gate.touch()
    assert client.status == "running"
    assert client.submit(w.square, 5).result(timeout=RESULT_TIMEOUT_S) == 25
    with allcores.Pool(backend="dask", client=client) as again:
        assert again.map(w.square, range(5)) == squares(range(5))


# ======================================================================================
# 3. Errors raised by the function, and failures in transit
# ======================================================================================


@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered"])
def test_error_keeps_its_type_and_names_the_item_and_the_worker(pool, method):
    fn = functools.partial(w.fail_on, 7)
    with pytest.raises(ValueError, match="cannot handle 7") as info:
        list(getattr(pool, method)(fn, range(20), chunksize=3))
    error = info.value
    assert type(error) is ValueError  # not wrapped
    assert has_note(error, r"\bitem 7\b"), getattr(error, "__notes__", None)
    assert has_note(error, r"in dask worker tcp://127\.0\.0\.1:\d+"), error.__notes__
    # The worker's traceback is chained, and printing the error shows it.
    assert "fail_on" in str(error.__cause__) and "ValueError" in str(error.__cause__)
    assert "fail_on" in "".join(traceback.format_exception(error))
    assert pool.map(w.square, range(10)) == squares(range(10))


def test_imap_yields_every_result_before_the_failing_item(pool):
    got = []
    with pytest.raises(ValueError, match="cannot handle 7"):
        for result in pool.imap(functools.partial(w.fail_on, 7), range(20), chunksize=1):
            got.append(result)
    assert got == squares(range(7))


def test_error_in_starmap_and_submit(pool):
    pairs = [(i, i) for i in range(10)]
    with pytest.raises(KeyError, match="pair starting with 4") as info:
        pool.starmap(functools.partial(w.fail_on_pair, 4), pairs, chunksize=3)
    assert has_note(info.value, r"\bitem 4\b")
    error = pool.submit(w.fail_on, 3, 3).exception(timeout=RESULT_TIMEOUT_S)
    assert type(error) is ValueError and "cannot handle 3" in str(error)


@pytest.mark.parametrize(
    "fn,type_name",
    [
        (functools.partial(w.raise_needs_two_args, 3), "NeedsTwoArgsError"),
        (functools.partial(w.raise_holds_lock, 3), "HoldsLockError"),
    ],
    ids=["fails-to-unpickle", "fails-to-pickle"],
)
def test_unpicklable_exception_arrives_as_an_allcores_error(pool, fn, type_name):
    with pytest.raises(AllcoresError, match=type_name) as info:
        pool.map(fn, range(6), chunksize=1)
    assert has_note(info.value, r"\bitem 3\b"), getattr(info.value, "__notes__", None)
    assert "raise_" in str(info.value.__cause__)


def test_an_exception_whose_str_fails_still_reaches_the_caller(pool):
    with pytest.raises(w.BadStrError) as info:
        pool.map(functools.partial(w.raise_bad_str, 2), range(6), chunksize=1)
    assert has_note(info.value, r"\bitem 2\b")


@pytest.mark.parametrize(
    "fn,items,error,pattern,note",
    [
        (w.identity, [1, 2, w.RaisesWhenUnpickled(), 4], RuntimeError, "cannot be unpickled",
         "unpickling the items"),
        (w.return_lock, range(3), TypeError, "lock", "pickling the results"),
        (functools.partial(w.return_raises_when_unpickled, 2), range(5), RuntimeError,
         "cannot be unpickled", "unpickling the results"),
        (w.UnloadableFunction(), range(4), RuntimeError, "function cannot be unpickled",
         "unpickling the function"),
    ],
    ids=["item-fails-to-unpickle", "result-fails-to-pickle",
         "result-fails-to-unpickle-in-the-caller", "function-fails-to-unpickle"],
)
def test_failures_in_transit_say_what_failed(pool, fn, items, error, pattern, note):
    with pytest.raises(error, match=pattern) as info:
        pool.map(fn, items, chunksize=1)
    assert has_note(info.value, note), getattr(info.value, "__notes__", None)
    assert pool.map(w.square, range(5)) == squares(range(5))


def test_what_cannot_be_pickled_fails_in_the_caller(pool):
    lock = threading.Lock()
    with pytest.raises(TypeError, match="lock"):
        pool.map(w.identity, [1, lock, 3])
    with pytest.raises(TypeError, match="lock"):
        pool.map(lambda x: (lock, x), range(3))


# ======================================================================================
# 4. Native kernels and arrays
# ======================================================================================


def test_native_kernels_run_on_dask_workers(cluster, monkeypatch):
    # The kernels' blocks on Dask: the image's rows come back through shared memory or
    # by value, the sliced values of is_prime travel with each block.
    monkeypatch.setenv("ALLCORES_DASK_ADDRESS", cluster.scheduler_address)
    monkeypatch.setattr(blocks, "MIN_BLOCK_S", dict.fromkeys(blocks.MIN_BLOCK_S, 1e-12))
    width, height, max_iter = 64, 48, 50
    bounds = (-2.0, 1.0, -1.2, 1.2)
    values = np.arange(2**40, 2**40 + 500, dtype=np.uint64)
    try:
        image = kernels.mandelbrot(width, height, max_iter=max_iter, bounds=bounds,
                                   backend="dask", workers=WORKERS)
        primes = kernels.count_primes(0, 100_000, backend="dask", workers=WORKERS)
        flags = kernels.is_prime(values, backend="dask", workers=WORKERS)
    finally:
        stop_dask_default_pools()
    assert image.dtype == np.uint32 and image.shape == (height, width)
    expected = np.empty((height, width), np.uint32)
    pure.mandelbrot_rows(expected, 0, height, max_iter, *bounds)
    assert np.array_equal(image, expected)
    assert primes == 9592  # primes below 100,000
    assert np.array_equal(flags, kernels.is_prime(values, backend="serial"))


def test_blocks_carry_their_sliced_rows_to_dask(cluster, monkeypatch):
    monkeypatch.setenv("ALLCORES_DASK_ADDRESS", cluster.scheduler_address)
    monkeypatch.setattr(blocks, "MIN_BLOCK_S", dict.fromkeys(blocks.MIN_BLOCK_S, 1e-12))
    calls = []
    real_map = shortcuts.map

    def spy(fn, items, **options):
        calls.append(list(items))
        return real_map(fn, calls[-1], **options)

    monkeypatch.setattr(shortcuts, "map", spy)
    values = np.arange(300, dtype=np.float64)
    try:
        got = blocks.fill(_block_rows_doubled, 300, args=(blocks.sliced(values),),
                          cost=1e-3, backend="dask", workers=WORKERS)
    finally:
        stop_dask_default_pools()
    np.testing.assert_array_equal(got, 2 * values)
    (items,) = calls
    assert len(items) > 1 and all(len(item) == 3 for item in items)
    assert all(np.array_equal(item[2][0], values[item[0]:item[1]]) for item in items)


def _block_rows_doubled(a, b, rows, values):
    rows[:] = 2 * values


# ======================================================================================
# 5. Where the cluster comes from: client=, address=, ALLCORES_DASK_ADDRESS, our own
# ======================================================================================


def test_address_connects_to_a_running_scheduler(cluster, client):
    with allcores.Pool(backend="dask", address=cluster.scheduler_address) as pool:
        assert pool.workers == WORKERS
        pids = set(pool.map(w.getpid, range(8), chunksize=1))
        own_client = pool._backend._client
    assert pids <= cluster.pids
    assert own_client.status == "closed"  # the client the pool opened is closed ...
    assert client.submit(w.square, 3).result(timeout=RESULT_TIMEOUT_S) == 9  # not the cluster


def test_the_environment_names_the_default_scheduler(cluster, monkeypatch):
    monkeypatch.setenv("ALLCORES_DASK_ADDRESS", cluster.scheduler_address)
    with allcores.Pool(backend="dask") as pool:
        assert pool.workers == WORKERS
        assert set(pool.map(w.getpid, range(8), chunksize=1)) <= cluster.pids
    try:
        got = allcores.map(w.getpid, range(8), backend="dask", workers=WORKERS, chunksize=1)
        assert set(got) <= cluster.pids
        assert sorted(allcores.imap_unordered(w.square, range(9), backend="dask",
                                              workers=WORKERS)) == squares(range(9))
    finally:
        stop_dask_default_pools()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("how", ["address", "environment"])
def test_an_unreachable_scheduler_fails_with_its_address(how, monkeypatch):
    address = f"tcp://127.0.0.1:{_closed_port()}"
    kwargs = {"address": address} if how == "address" else {}
    if how == "environment":
        monkeypatch.setenv("ALLCORES_DASK_ADDRESS", address)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(OSError) as info:
            allcores.Pool(backend="dask", **kwargs)
    source = "address=" if how == "address" else "ALLCORES_DASK_ADDRESS"
    assert has_note(info.value, re.escape(address) + r".*" + re.escape(source)), \
        getattr(info.value, "__notes__", None)


@pytest.mark.parametrize(
    "kwargs,error,pattern",
    [
        (dict(address="tcp://127.0.0.1:1", client="set below"), ValueError, "one or the other"),
        (dict(client="not a client"), TypeError, "distributed.Client"),
        (dict(address=8786), ValueError, "address"),
        (dict(address=""), ValueError, "address"),
        (dict(timeout=5), ValueError, "timeout"),
    ],
    ids=["address-and-client", "not-a-client", "address-not-a-string", "empty-address",
         "timeout"],
)
def test_bad_options_fail_before_anything_starts(client, kwargs, error, pattern):
    if kwargs.get("client") == "set below":
        kwargs["client"] = client
    with pytest.raises(error, match=pattern):
        allcores.Pool(backend="dask", **kwargs)


def test_a_closed_client_is_refused(cluster):
    closed = distributed.Client(cluster, set_as_default=False)
    closed.close()
    with pytest.raises(ValueError, match="client"):
        allcores.Pool(backend="dask", client=closed)


@pytest.mark.slow
def test_without_address_or_client_a_loopback_cluster_is_started_and_stopped(tmp_path):
    with allcores.Pool(WORKERS, backend="dask") as pool:
        client = pool._backend._client  # the pool's own: no public handle on it
        pids = worker_pids(client)
        try:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            assert len(pids) == WORKERS and os.getpid() not in pids
            assert pool.workers == WORKERS
            assert all(address.startswith("tls://127.0.0.1:") for address in workers)
            assert all(info["nthreads"] == 1 for info in workers.values())
            assert client.scheduler.address.startswith("tls://127.0.0.1:")
            # Nothing this process or the workers listen on is reachable from outside.
            for process in [psutil.Process()] + [psutil.Process(pid) for pid in pids]:
                listening = [c.laddr for c in process.net_connections(kind="inet")
                             if c.status == psutil.CONN_LISTEN]
                assert all(address.ip == "127.0.0.1" for address in listening), listening
            assert pool.map(w.square, range(30)) == squares(range(30))
        except BaseException:
            kill_leftovers(pids)
            raise
    try:
        wait_pids_gone(pids, SETTLE_S)
    finally:
        kill_leftovers(pids)


# --- the pool's own cluster admits only the pool -----------------------------------------

# How long one attempt to reach a server of the pool's cluster may take (connecting, the
# TLS handshake, a reply): refused attempts fail at once, well within it.
ATTEMPT_TIMEOUT_S = 2


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def listening(process: psutil.Process) -> set[tuple[str, int]]:
    """The (ip, port) pairs a process listens on (TCP, IPv4 and IPv6)."""
    return {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


def http_reply(port: int) -> bytes:
    """The first bytes 127.0.0.1:``port`` answers to an HTTP request: b"" when it closes or
    resets the connection, or says nothing within ATTEMPT_TIMEOUT_S."""
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", port), ATTEMPT_TIMEOUT_S) as conn:
            conn.settimeout(ATTEMPT_TIMEOUT_S)
            conn.sendall(request)
            while len(reply) < 16:
                data = conn.recv(16 - len(reply))
                if not data:
                    break
                reply += data
    except OSError:  # reset or timed out: no (more) answer
        pass
    return reply


def _worker_pid(dask_worker) -> int:
    return os.getpid()


def _client_ids_on(dask_scheduler) -> list[str]:
    return sorted(str(c) for c in dask_scheduler.clients if c != "fire-and-forget")


@pytest.mark.slow
def test_the_pools_own_cluster_serves_no_http(cluster):
    # The probe tells HTTP apart: the module's cluster serves Dask's HTTP routes.
    assert http_reply(cluster.scheduler.http_server.port).startswith(b"HTTP/1.1 200")
    here = psutil.Process()
    before = listening(here)
    with allcores.Pool(WORKERS, backend="dask") as pool:
        client = pool._backend._client  # the pool's own: no public handle on it
        pids = worker_pids(client)
        try:
            # The scheduler and the nannies run in this process; each worker in its own.
            # What the cluster listens on: the ports this process opened (only new ones
            # count: another cluster here may close a port, and a port number be used
            # again), and every port of the workers.
            opened = listening(here) - before
            worker_pid_by_address = client.run(_worker_pid)
            assert set(worker_pid_by_address.values()) == pids
            for pid in worker_pid_by_address.values():
                opened |= listening(psutil.Process(pid))
            # None of them speaks HTTP ...
            for ip, port in opened:
                reply = http_reply(port)
                assert not reply.startswith(b"HTTP"), f"{ip}:{port} answers HTTP: {reply!r}"
            # ... for they are the cluster's comms and nothing else: the scheduler's, the
            # nannies' (here) and each worker's (in its process, alone).
            nannies = list(pool._backend._cluster.workers.values())
            comm_ports = {port_of(client.scheduler.address)} | {
                port_of(nanny.address) for nanny in nannies}
            assert len(comm_ports) == 1 + WORKERS
            assert {("127.0.0.1", port) for port in comm_ports} <= listening(here)
            for address, pid in worker_pid_by_address.items():
                assert listening(psutil.Process(pid)) == {("127.0.0.1", port_of(address))}
                comm_ports.add(port_of(address))
            assert opened <= {("127.0.0.1", port) for port in comm_ports}
            # And none is announced as a dashboard.
            info = client.scheduler_info()
            assert info["services"] == {}
            assert all(worker["services"] == {} for worker in info["workers"].values())
            assert pool.map(w.square, range(10)) == squares(range(10))
        except BaseException:
            kill_leftovers(pids)
            raise
    try:
        wait_pids_gone(pids, SETTLE_S)
    finally:
        kill_leftovers(pids)


def trusting_tls_context(certificate_file: Path | None = None) -> ssl.SSLContext:
    """A TLS client that accepts any server and shows ``certificate_file`` (a self-signed
    certificate and its key) or no certificate: what a stranger can do."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if certificate_file is not None:
        context.load_cert_chain(certificate_file)
    return context


async def identify(address: str, **connection_args) -> dict:
    """Connect to a Dask server and ask who it is (any Dask server answers)."""
    comm = await distributed.comm.connect(address, timeout=ATTEMPT_TIMEOUT_S,
                                          **connection_args)
    try:
        await comm.write({"op": "identity"})
        return await asyncio.wait_for(comm.read(), ATTEMPT_TIMEOUT_S)
    finally:
        comm.abort()


def open_client(address: str, **kwargs) -> str:
    with distributed.Client(address, timeout=ATTEMPT_TIMEOUT_S, set_as_default=False,
                            **kwargs):
        return "connected"


@pytest.mark.slow
def test_the_pools_own_cluster_admits_only_clients_with_its_credentials(tmp_path):
    stranger = distributed.security.Security.temporary()  # another cluster's credentials
    stranger_file = tmp_path / "stranger.pem"
    stranger_file.write_text(stranger.tls_client_cert + stranger.tls_client_key)
    attempts = {
        "another cluster's credentials": stranger.get_connection_args("client"),
        "a self-signed certificate": {"ssl_context": trusting_tls_context(stranger_file)},
        "no certificate": {"ssl_context": trusting_tls_context()},
    }
    with allcores.Pool(WORKERS, backend="dask") as pool:
        client = pool._backend._client  # the pool's own: no public handle on it
        pids = worker_pids(client)
        try:
            scheduler = client.scheduler.address
            servers = [scheduler, *client.run(_worker_pid),
                       *(nanny.address for nanny in pool._backend._cluster.workers.values())]
            assert len(servers) == 1 + 2 * WORKERS
            assert all(address.startswith("tls://127.0.0.1:") for address in servers)
            ours = client.security.get_connection_args("client")
            with dask.config.set({"distributed.comm.timeouts.connect":
                                  f"{ATTEMPT_TIMEOUT_S}s"}):
                # A plain Client, as anyone on this machine could make one.
                for address in (scheduler, scheduler.replace("tls://", "tcp://", 1)):
                    with pytest.raises((OSError, TypeError)):
                        run_in_thread(lambda: open_client(address), RESULT_TIMEOUT_S)()
                # Every server (scheduler, workers, nannies) answers the pool's
                # credentials, and refuses anyone else, over TLS or plain TCP.
                for address in servers:
                    reply = run_in_thread(lambda: asyncio.run(identify(address, **ours)),
                                          RESULT_TIMEOUT_S)()
                    assert "id" in reply, reply
                    for what, connection_args in attempts.items():
                        with pytest.raises(OSError):
                            run_in_thread(
                                lambda: asyncio.run(identify(address, **connection_args)),
                                RESULT_TIMEOUT_S)()
                    plain = address.replace("tls://", "tcp://", 1)
                    with pytest.raises(OSError):
                        run_in_thread(lambda: asyncio.run(identify(plain)), RESULT_TIMEOUT_S)()
            assert client.run_on_scheduler(_client_ids_on) == [client.id]
            assert pool.map(w.square, range(10)) == squares(range(10))
        except BaseException:
            kill_leftovers(pids)
            raise
    try:
        wait_pids_gone(pids, SETTLE_S)
    finally:
        kill_leftovers(pids)


def test_without_the_dask_extra_the_backend_says_how_to_install_it():
    script = textwrap.dedent("""
        import sys
        sys.modules["distributed"] = None  # as if dask[distributed] were not installed
        import allcores
        assert allcores.map(abs, [-1, 2], backend="thread", workers=2) == [1, 2]
        for call in (lambda: allcores.Pool(backend="dask"),
                     lambda: allcores.map(abs, [1], backend="dask")):
            try:
                call()
            except ImportError as error:
                print(error)
            else:
                print("no ImportError")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert all("pip install 'allcores[dask]'" in line for line in lines), lines


# ======================================================================================
# 6. Initializers
# ======================================================================================


def test_initializer_runs_once_in_each_dask_worker(client, cluster, tmp_path):
    log = tmp_path / "init.log"
    token = f"token-{tmp_path.name}"
    with allcores.Pool(backend="dask", client=client,
                       initializer=lambda: w.remember(token, str(log))) as pool:
        got = pool.map(w.recall, range(12), chunksize=1)
        assert client.run_on_scheduler(_allcores_plugins_on) != []
    assert all(value == token for _, value, _ in got)
    runners = w.read_lines(log)
    runner_pids = {int(runner.split("-")[0]) for runner in runners}
    assert len(runners) == WORKERS and runner_pids == cluster.pids
    # The plugin does not outlive the pool: later workers of this cluster will not run it.
    assert client.run_on_scheduler(_allcores_plugins_on) == []


def test_failing_initializer_raises_worker_init_error(client):
    with pytest.raises(WorkerInitError) as info:
        allcores.Pool(backend="dask", client=client, initializer=w.refuse_to_start)
    cause = info.value.__cause__
    assert isinstance(cause, ValueError) and "initializer refused to start" in str(cause)
    assert client.run_on_scheduler(_allcores_plugins_on) == []
    with allcores.Pool(backend="dask", client=client) as pool:
        assert pool.map(w.square, range(4)) == squares(range(4))


# ======================================================================================
# 7. Worker deaths (each on a cluster of the pool's own: `retries` sets its
#    allowed-failures)
# ======================================================================================


def hold_first_attempt(pid_file: str, bad, x):
    """``x * x``; item ``bad``, the first time only, writes its process's pid to
    ``pid_file`` and waits there (for the test to kill it)."""
    if x == bad and not os.path.exists(pid_file):
        with open(pid_file + ".tmp", "w") as out:
            out.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
        w.wait_for_path(pid_file + ".never")  # bounded: raises after WAIT_LIMIT_S
    return x * x


def kill_the_worker_running_the_first_chunk(pool, pid_file: Path):
    """Map over 20 items in chunks of one, SIGKILL the Dask worker process that runs the
    first (found among the worker pids Dask reports), and return the map's outcome.

    The first chunk, on a pool that ran nothing before: the worker that dies holds no
    finished chunk, so no result is lost with it, and no chunk before it in the map's order
    can die with it (Dask fails, or retries, every chunk queued on the dying worker too).
    A later chunk made the outcome a race (which chunks Dask placed there, and whether a
    finished chunk's result was being fetched from it: Dask then waits out its connect
    timeout, 30 s, before computing it again)."""
    bad = 0
    client = pool._backend._client  # the pool's own: no public handle on it
    pids = worker_pids(client)
    fn = functools.partial(hold_first_attempt, str(pid_file), bad)
    outcome = run_in_thread(lambda: pool.map(fn, range(20), chunksize=1), RESULT_TIMEOUT_S)
    try:
        victim = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), SETTLE_S,
                                f"item {bad} to start"))
        assert victim in pids, (victim, pids)
        os.kill(victim, signal.SIGKILL)
        return outcome, pids
    except BaseException:
        kill_leftovers(pids)
        raise


@pytest.mark.slow
def test_a_chunk_whose_worker_was_killed_runs_again(tmp_path):
    pids: set[int] = set()
    try:
        with allcores.Pool(WORKERS, backend="dask", retries=1) as pool:
            outcome, pids = kill_the_worker_running_the_first_chunk(pool, tmp_path / "pid")
            assert outcome() == squares(range(20))
            # Dask's nanny started a new worker in place of the killed one.
            client = pool._backend._client
            client.wait_for_workers(WORKERS, timeout=SETTLE_S)
            pids |= worker_pids(client)
            assert pool.map(w.square, range(10)) == squares(range(10))
        wait_pids_gone(pids, SETTLE_S)
    finally:
        kill_leftovers(pids)


@pytest.mark.slow
def test_a_chunk_that_exhausts_its_retries_raises_worker_crashed_error(tmp_path):
    pids: set[int] = set()
    try:
        with allcores.Pool(WORKERS, backend="dask", retries=0) as pool:
            outcome, pids = kill_the_worker_running_the_first_chunk(pool, tmp_path / "pid")
            with pytest.raises(WorkerCrashedError) as info:
                outcome()
            error = info.value
            assert (error.first_item, error.stop_item, error.attempts) == (0, 1, 1)
            assert has_note(error, "allowed-failures is 0"), error.__notes__
            assert isinstance(error.__cause__, distributed.KilledWorker)
            client = pool._backend._client
            client.wait_for_workers(WORKERS, timeout=SETTLE_S)
            pids |= worker_pids(client)
            assert pool.map(w.square, range(10)) == squares(range(10))
        wait_pids_gone(pids, SETTLE_S)
    finally:
        kill_leftovers(pids)


def second_attempt_waits(marker: str, gate: str, x):
    """The pid of the process that runs it; the first call (of all) returns at once, later
    ones wait for the file ``gate``."""
    if os.path.exists(marker):
        w.wait_for_path(gate)  # bounded: raises after WAIT_LIMIT_S
    else:
        Path(marker).touch()
    return os.getpid()


@pytest.mark.slow
def test_a_finished_chunk_whose_result_was_lost_with_its_worker_is_computed_again(
        tmp_path, monkeypatch):
    """A chunk finished, but its worker died before the pool fetched its result: Dask
    computes it again, and the pool waits for that; no death counts against the chunk.

    Made deterministic by holding the fetch thread (``_resolve``) until the client has
    heard that the result was lost, and the chunk's second run until the fetch thread
    has looked at it (in a real run the fetch races the worker's death)."""
    from allcores.backends import dask as dask_backend

    resolve = dask_backend.DaskBackend._resolve
    held, release, looked = threading.Event(), threading.Event(), threading.Event()

    def resolve_once_the_result_is_lost(self, future, done, first_item, stop_item):
        if not release.is_set():
            held.set()
            release.wait(RESULT_TIMEOUT_S)
        try:
            return resolve(self, future, done, first_item, stop_item)
        finally:
            looked.set()

    monkeypatch.setattr(dask_backend.DaskBackend, "_resolve", resolve_once_the_result_is_lost)
    gate = tmp_path / "gate"
    pids: set[int] = set()
    try:
        with allcores.Pool(WORKERS, backend="dask", retries=0) as pool:
            client = pool._backend._client  # the pool's own: no public handle on it
            pids = worker_pids(client)
            fn = functools.partial(second_attempt_waits, str(tmp_path / "ran"), str(gate))
            outcome = run_in_thread(lambda: pool.map(fn, [0]), RESULT_TIMEOUT_S)
            try:
                wait_until(held.is_set, SETTLE_S, "the chunk to finish")
                [task] = pool._backend._in_flight.values()
                [holder] = client.who_has([task])[task.key]
                os.kill(client.run(_worker_pid)[holder], signal.SIGKILL)
                wait_until(lambda: task.status != "finished", SETTLE_S,
                           "the client to hear that the result was lost")
            finally:
                release.set()
            try:
                wait_until(looked.is_set, SETTLE_S, "the fetch thread to look at the chunk")
            finally:
                gate.touch()
            [ran_on] = outcome()
            client.wait_for_workers(WORKERS, timeout=SETTLE_S)
            pids |= worker_pids(client)
            assert ran_on in pids
        wait_pids_gone(pids, SETTLE_S)
    finally:
        gate.touch()
        kill_leftovers(pids)


# ======================================================================================
# 8. Ctrl-C and interpreter exit, in a child process: nothing is left behind
# ======================================================================================

CHILD_SCRIPT = textwrap.dedent("""
    import functools
    import json
    import os
    import sys

    import _workloads as w

    import allcores


    def worker_pids(pool):
        return sorted(pool._backend._client.run(os.getpid).values())


    def main(mode, tmp):
        pool = allcores.Pool(2, backend="dask")
        if mode == "ctrl-c":
            print(json.dumps(worker_pids(pool)), flush=True)
            fn = functools.partial(w.gated, os.path.join(tmp, "gate"), range(10**9),
                                   os.path.join(tmp, "started.log"), None)
            with pool:
                for _ in pool.imap(fn, range(100), chunksize=1):
                    pass
        else:  # exit with the pool open, its workers idle, and a warm default pool
            assert pool.map(lambda x: x + 1, range(10)) == list(range(1, 11))
            assert allcores.map(w.square, range(5), backend="dask", workers=2) == [
                0, 1, 4, 9, 16]
            default = allcores._default_pools.default_pool("dask", 2)
            print(json.dumps(worker_pids(pool) + worker_pids(default)), flush=True)


    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2])
""")


def start_child(tmp_path: Path, mode: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("ALLCORES_DASK_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(tmp_path)], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=(tmp_path / "stderr").open("w"), text=True, env=env,
        cwd=tmp_path, start_new_session=True)


def read_child_pids(child: subprocess.Popen, tmp_path: Path, count: int) -> list[int]:
    line = run_in_thread(child.stdout.readline, 60)()
    if not line:
        raise AssertionError(f"the child printed no worker pids; stderr:\n"
                             f"{(tmp_path / 'stderr').read_text()}")
    pids = json.loads(line)
    assert len(set(pids)) == count, pids
    return pids


def finish_child(child: subprocess.Popen, tmp_path: Path, timeout: float) -> tuple[int, str]:
    try:
        status = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=10)
        raise AssertionError(f"the child did not exit within {timeout} s; its stderr:\n"
                             f"{(tmp_path / 'stderr').read_text()}") from None
    return status, (tmp_path / "stderr").read_text()


@pytest.mark.slow
def test_ctrl_c_stops_the_caller_and_every_dask_worker(tmp_path):
    child = start_child(tmp_path, "ctrl-c")
    pids: list[int] = []
    try:
        pids = read_child_pids(child, tmp_path, WORKERS)
        wait_until(lambda: len(w.read_lines(tmp_path / "started.log")) >= WORKERS, SETTLE_S,
                   "both workers of the child to start a chunk")
        began = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        status, err = finish_child(child, tmp_path, timeout=15)
        assert "KeyboardInterrupt" in err, err
        assert status == -signal.SIGINT, err
        assert time.monotonic() - began < 8, err
        wait_pids_gone(pids, 5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()
        kill_leftovers(pids)


@pytest.mark.slow
def test_interpreter_exit_with_a_dask_pool_open(tmp_path):
    child = start_child(tmp_path, "exit")
    pids: list[int] = []
    try:
        pids = read_child_pids(child, tmp_path, 2 * WORKERS)  # the pool's, the default's
        status, err = finish_child(child, tmp_path, timeout=30)
        assert status == 0, err
        wait_pids_gone(pids, 5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()
        kill_leftovers(pids)
