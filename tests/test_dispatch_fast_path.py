"""The fast paths for small calls (issue #15, point 2), and the promises they must keep.

- a list, tuple or range input is dispatched from the caller's thread, with no lock and
  a window whose byte count is kept, not summed at every check;
- chunks near the end of an input keep enough work to be worth dispatching, and a map
  repeated with the same function starts from the cost measured last time (no probing
  with single items), growing at most MAX_GROWTH-fold from there;
- the process backend hands a chunk for an idle worker to it from the caller's thread;
  a hand-off interrupted half-way (Ctrl-C) costs that worker, never a hang or a lost or
  shifted result;
- a function that travels by reference is pickled once, one pickled by value (a closure)
  anew for every map, so that what it captures is always current.

Every wait is bounded.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import socket
import struct
import threading
from concurrent.futures import Future

import _workloads as w
import cloudpickle
import pytest
from _support import pid_gone, run_in_thread, wait_until

import allcores
from allcores import _messages as msg
from allcores import dispatch
from allcores._memory import memory
from allcores._channel import Channel, frame
from allcores._execute import ChunkResult
from allcores.backends import process as process_backend
from allcores.backends.base import Backend

BOUND_S = 30


class _SizesBackend(Backend):
    """Runs chunks in submit (each item "takes" ``seconds_per_item``) and records the
    size of every chunk it was given."""

    name = "sizes"
    runs_in_caller_process = True
    supports_timeout = False
    chunk_overhead_s = 1e-4

    def __init__(self, workers: int = 2, seconds_per_item: float = 1e-6):
        self.workers = workers
        self.seconds_per_item = seconds_per_item
        self.sizes: list[int] = []

    def submit(self, prepared_fn, chunk, star):
        self.sizes.append(len(chunk.items))
        future: Future = Future()
        future.set_result(ChunkResult([prepared_fn(x) for x in chunk.items],
                                      self.seconds_per_item * len(chunk.items)))
        return future

    def shutdown(self, *, wait):
        pass


def run_map(backend, fn, items, chunksize=None, ordered=True) -> list:
    sizer = dispatch.ChunkSizer(backend.workers, length=dispatch.known_length(items),
                                fixed=chunksize)
    chunks = dispatch.ChunkSource(items, sizer)
    got = []
    for _, values in dispatch.run_chunks(backend, fn, chunks, ordered=ordered):
        got.extend(values)
    return got


def cut(sizer: dispatch.ChunkSizer, length: int) -> list[int]:
    sizes, done = [], 0
    while done < length:
        sizes.append(min(sizer.size(done), length - done))
        done += sizes[-1]
    return sizes


# ======================================================================================
# Chunk sizes: the tail's floor, and costs remembered from the last map
# ======================================================================================


def test_tail_chunks_keep_enough_work_to_be_worth_dispatching():
    sizer = dispatch.ChunkSizer(2, length=10_000, seconds_per_item=1e-6, overhead_s=1e-4)
    sizes = cut(sizer, 10_000)
    worth = dispatch.WORTH_DISPATCH * 1e-4 / 1e-6
    assert sum(sizes) == 10_000
    assert min(sizes[:-1]) >= worth, sizes  # the very last one is what is left
    # without an overhead to weigh, the tail shrinks to single items as before
    plain = cut(dispatch.ChunkSizer(2, length=10_000, seconds_per_item=1e-6), 10_000)
    assert plain[-1] == 1


def test_the_floor_never_asks_more_of_a_chunk_than_a_workers_share():
    sizer = dispatch.ChunkSizer(2, length=10, seconds_per_item=1e-6, overhead_s=1e-4)
    assert cut(sizer, 10) == [5, 5]  # cheap: one chunk per worker, every worker busy
    costly = dispatch.ChunkSizer(2, length=10, seconds_per_item=1.0, overhead_s=1e-4)
    assert cut(costly, 10) == [1] * 10  # costly: single items balance best


@pytest.fixture(autouse=True)
def nothing_remembered():
    memory.forget()
    yield
    memory.forget()


class _OtherSizesBackend(_SizesBackend):
    name = "other sizes"


def test_a_repeated_map_starts_from_the_cost_measured_last_time():
    backend = _SizesBackend()
    assert run_map(backend, w.square, list(range(10))) == [x * x for x in range(10)]
    assert backend.sizes[0] == 1  # the first map probes with a single item
    backend.sizes.clear()
    assert run_map(backend, w.square, list(range(10))) == [x * x for x in range(10)]
    assert backend.sizes == [5, 5]  # the second starts from the measured cost
    # another function is probed; so is the same one on another kind of backend
    backend.sizes.clear()
    run_map(backend, w.identity, range(10))
    assert backend.sizes[0] == 1
    other = _OtherSizesBackend()
    run_map(other, w.square, range(10))
    assert other.sizes[0] == 1
    # an explicit chunksize is honoured whatever was measured
    backend.sizes.clear()
    run_map(backend, w.square, range(10), chunksize=3)
    assert backend.sizes == [3, 3, 3, 1]


def test_a_remembered_cost_grows_chunks_at_most_max_growth_fold():
    backend = _SizesBackend(seconds_per_item=1e-9)  # measured very cheap
    run_map(backend, w.square, range(10))
    backend.sizes.clear()
    # the same function on a long input: sized from the hint, but carefully
    run_map(backend, w.square, iter(range(100_000)))
    assert backend.sizes[0] <= dispatch.MAX_GROWTH
    assert max(backend.sizes) > dispatch.MAX_GROWTH  # and it grows from there


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_small_map_repeated_on_a_warm_pool_takes_one_chunk_per_worker(backend):
    with allcores.Pool(2, backend=backend, insights=True) as pool:
        assert pool.map(w.square, range(10)) == [x * x for x in range(10)]
        first = [r.items for r in pool.insights(reset=True).records]
        assert first[0] == 1  # probed
        for _ in range(3):
            assert pool.map(w.square, range(10)) == [x * x for x in range(10)]
            sizes = sorted(r.items for r in pool.insights(reset=True).records)
            if backend == "process":  # a round trip is worth 1 ms of work: no more cuts
                assert sizes == [5, 5]
            else:  # threads cost next to nothing to dispatch: the usual tail rule
                assert sum(sizes) == 10 and len(sizes) <= 10


def test_functions_are_remembered_by_identity_whatever_they_are():
    backend = _SizesBackend()
    add_ten = (10).__add__  # takes no weak reference: held (the memory is bounded)
    unhashable = _Unhashable()  # never hashed: known by identity
    items = list(range(10))
    for fn, expected in [(add_ten, [x + 10 for x in items]), (unhashable, items)]:
        backend.sizes.clear()
        assert run_map(backend, fn, items) == expected
        assert backend.sizes[0] == 1
        backend.sizes.clear()
        assert run_map(backend, fn, items) == expected
        assert backend.sizes[0] > 1
    backend.sizes.clear()
    run_map(backend, (10).__add__, items)  # a new object: a new function to it
    assert backend.sizes[0] == 1


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, x):
        return x


@pytest.mark.parametrize("ordered", [True, False])
def test_the_in_caller_path_hands_back_every_result_once(ordered):
    backend = _SizesBackend()
    items = list(range(1000))
    got = run_map(backend, w.square, items, chunksize=7, ordered=ordered)
    assert (got if ordered else sorted(got)) == [x * x for x in items]
    assert sum(backend.sizes) == len(items)


# ======================================================================================
# The process backend: hand-off to an idle worker
# ======================================================================================


@pytest.fixture
def pool():
    pool = allcores.Pool(2, backend="process")
    try:
        yield pool
    finally:
        pool.terminate()


def idle_workers(pool) -> list:
    backend = pool._backend
    return wait_until(lambda: list(backend._idle) if len(backend._idle) == 2 else None,
                      BOUND_S, "both workers to be ready and idle")


def test_a_chunk_for_an_idle_worker_goes_to_it_without_the_manager(pool, monkeypatch):
    idle_workers(pool)
    backend = pool._backend
    wakes = []
    real_wake = backend._wake
    monkeypatch.setattr(backend, "_wake", lambda: (wakes.append(1), real_wake()))
    assert pool.submit(w.square, 3).result(timeout=BOUND_S) == 9
    assert wakes == [] and not backend._queue
    assert run_in_thread(lambda: pool.map(w.square, range(10)), BOUND_S)() == [
        x * x for x in range(10)]


@pytest.mark.parametrize("where", ["_commit", "_send"])
def test_an_interrupted_hand_off_costs_its_worker_not_the_pool(pool, monkeypatch, where):
    before = {h.process.pid for h in idle_workers(pool)}
    caller = threading.current_thread()
    real = getattr(process_backend.ProcessBackend, where)
    interrupted = []

    def interrupt_once(*args):
        result = real(*args)
        if threading.current_thread() is caller and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt  # Ctrl-C, half-way through the hand-off
        return result

    monkeypatch.setattr(process_backend.ProcessBackend, where, staticmethod(interrupt_once)
                        if where == "_send" else interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        pool.submit(w.square, 2)
    monkeypatch.undo()
    # Nothing hangs, nothing is lost or shifted, and the spoiled worker was replaced.
    for _ in range(3):
        assert run_in_thread(lambda: pool.map(w.square, range(40), chunksize=1),
                             BOUND_S)() == [x * x for x in range(40)]
    assert pool.submit(w.square, 5).result(timeout=BOUND_S) == 25
    backend = pool._backend
    wait_until(lambda: len(backend._handles) == 2
               and len(before - {h.process.pid for h in backend._handles}) == 1,
               BOUND_S, "the spoiled worker to be replaced (and only that one)")


def test_a_hand_off_to_a_worker_that_died_is_run_again(pool):
    pids = [h.process.pid for h in idle_workers(pool)]
    for pid in pids:  # both idle workers die; the manager may not have seen it yet
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: all(pid_gone(pid) for pid in pids), BOUND_S, "the workers to die")
    # Handed to a dead worker (or queued once its death was seen): run again elsewhere.
    assert run_in_thread(lambda: pool.map(w.square, range(6), chunksize=1), BOUND_S)() == [
        x * x for x in range(6)]


# ======================================================================================
# Pickling the function, and the channel's write state
# ======================================================================================


def test_a_function_that_travels_by_reference_is_pickled_once():
    first = process_backend.prepare_function(w.square)
    assert process_backend.prepare_function(w.square) is first
    assert first.payload == cloudpickle.dumps(w.square, protocol=5)
    assert process_backend.prepare_function(len).payload == cloudpickle.dumps(len, protocol=5)


def test_a_closure_is_pickled_anew_for_every_map(pool):
    factor = 2

    def scale(x):
        return x * factor

    assert (process_backend.prepare_function(scale)
            is not process_backend.prepare_function(scale))
    assert pool.map(scale, range(5)) == [0, 2, 4, 6, 8]
    factor = 3
    assert pool.map(scale, range(5)) == [0, 3, 6, 9, 12]  # what it captures now


def test_wants_to_write_says_what_the_last_send_left():
    ours, theirs = socket.socketpair()
    try:
        for sock in (ours, theirs):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        channel = Channel(ours)
        assert not channel.wants_to_write
        message = msg.RunChunk(1, b"f" * 16, None, os.urandom(1 << 20), False)
        channel.send(message)
        assert channel.wants_to_write  # 1 MiB does not fit in the socket's buffers
        theirs.settimeout(BOUND_S)
        received = bytearray()
        while channel.wants_to_write:
            received += theirs.recv(1 << 16)
            channel.flush()
        while len(received) < len(_frame(message)):
            received += theirs.recv(1 << 16)
        assert bytes(received) == _frame(message)
    finally:
        ours.close()
        theirs.close()


def _frame(message) -> bytes:
    return frame(message)


def test_concurrent_sends_never_interleave_a_frame():
    ours, theirs = socket.socketpair()
    try:
        channel = Channel(ours)
        messages = [msg.RunChunk(i, b"f" * 16, None, bytes([i]) * 50_000, False)
                    for i in range(8)]
        done = threading.Event()
        received = bytearray()

        def read():
            theirs.settimeout(BOUND_S)
            expected = sum(len(_frame(m)) for m in messages)
            while len(received) < expected:
                received.extend(theirs.recv(1 << 16))
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        senders = [threading.Thread(target=functools.partial(channel.send, m))
                   for m in messages]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(BOUND_S)
        wait_until(lambda: (channel.flush(), done.is_set())[1], BOUND_S,
                   "every frame to arrive")
        got, view = [], memoryview(received)
        while view:
            (length,) = struct.unpack("!Q", view[:8])
            got.append(pickle.loads(view[8:8 + length]))
            view = view[8 + length:]
        assert sorted(m.chunk_id for m in got) == list(range(8))
        assert all(m.items_payload == bytes([m.chunk_id]) * 50_000 for m in got)
    finally:
        ours.close()
        theirs.close()
