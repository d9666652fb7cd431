"""The dispatcher: cuts the input into chunks, keeps a bounded window of them in flight
on a backend, and hands results back in input order or in completion order.

Bounds, in chunks and in bytes: at most ``backend.window()`` chunks are submitted and
not yet handed back (finished chunks waiting in the reorder buffer count, so a slow
chunk at the head holds the window instead of letting results pile up), and, once the
pickled size of items and results has been measured, no more than ``max_bytes`` of them
(at least one chunk is always in flight). A chunk holds at most ``MAX_CHUNK_ITEMS``
items and about ``CHUNK_BYTES`` of pickled items and results.

Results already computed are handed back before waiting on anything else. An input that
is an iterator (it may block: a socket, a queue, a slow generator) is read and its chunks
submitted on a thread of its own (:class:`_Feeder`): the window fills while the caller
consumes, a finished chunk never waits for the next input item, and when a read has
waited ``STALL_S`` for the rest of a chunk, the items it has leave as a chunk of their
own. A list, tuple or range (they never block) is cut and submitted in the caller's
thread, before results are handed back, so workers stay busy while the caller consumes.

When the input raises, every result of the items read before it is handed back (in
order for ``imap``), then the input's exception is raised, as the builtin ``map`` does.

Chunk sizes adapt to the work unless the caller fixes them (:class:`ChunkSizer`): each
finished chunk reports how long its items took where they ran and how many bytes they
and their results took pickled; later chunks are cut to last about ``TARGET_CHUNK_S``
within the byte and item caps; near the end of an input of known length they shrink so
that the workers finish together, but not below what is worth dispatching
(``WORTH_DISPATCH`` times the backend's ``chunk_overhead_s`` of work, at most a worker's
even share). The first chunks of a map probe the cost with single items, unless the same
function's last map on the same backend measured it: they then start from that cost,
growing at most ``MAX_GROWTH``-fold, so that a small map repeated on a warm pool costs a
round trip, not one per probe.

When the caller stops early (``break``, ``close()``, an exception), queued chunks are
cancelled; chunks already running finish in their worker and their results are dropped.
An input read by a thread that is blocked when the caller stops keeps that thread until
it yields (a daemon thread: it never holds up interpreter exit).

Given a recorder (``insights=True``), it notes for each chunk it hands back when the
chunk was handed to the backend and when its results were handed on; the backend's
``ChunkResult`` says where and when the chunk ran (see ``allcores.timeline``).
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from typing import Any, Callable, Iterable, Iterator

from allcores._execute import ChunkError, chunk_values
from allcores._memory import memory
from allcores.backends.base import Backend, Chunk
from allcores.errors import PoolClosedError
from allcores.timeline import CallRecorder

# How long a chunk should run. A chunk costs about 0.1 ms to dispatch to a process, so
# 20 ms keeps that under 1%; longer chunks would make progress jumpy and leave more work
# in the last chunks, where workers wait for each other.
TARGET_CHUNK_S = 0.020
# Before anything is measured, chunks hold this many items: a probe, not a ramp.
FIRST_CHUNKSIZE = 1
# A chunk is at most this many times bigger than the biggest one measured so far, so a
# cheap first item cannot size a chunk of expensive ones into minutes. From 1 item, four
# measured chunks reach 65,536 items: no slow doubling ramp.
MAX_GROWTH = 16
# Near the end of a known-length input, a chunk holds at most remaining/(this x workers)
# items (guided self-scheduling): chunks shrink as the input runs out, and the last
# ones are small enough for all workers to finish at about the same time.
TAIL_SHARE = 2
# A chunk is worth dispatching when its work takes at least this many times what
# dispatching it costs (the backend's ``chunk_overhead_s``): near the end of an input the
# tail rule shrinks chunks no further than that (dispatch stays under ~10%), except that a
# chunk never asks for more than a worker's even share of the whole input.
WORTH_DISPATCH = 10
# The most items a chunk holds, however cheap: each item is a Python object in the
# caller (an int alone takes 28 bytes and a list slot), and chunks of 500,000 made an
# imap of 10^7 ints grow the caller by 150 MB. At 65,536 items a chunk of the cheapest
# work still lasts a few ms, so dispatch stays under a few percent.
MAX_CHUNK_ITEMS = 65_536
# About how many bytes a chunk's items and results may take pickled, once measured: a
# few of them fit in any budget, and at these sizes pickling is bandwidth-bound anyway.
CHUNK_BYTES = 4 << 20
# When the input is read on a thread and a read has waited this long for the rest of a
# chunk, the items it already has are sent as a chunk of their own (if the window has
# room): an input that stalls holds back no item it has yielded.
STALL_S = TARGET_CHUNK_S
# The default bound on the pickled bytes of the chunks in flight (ALLCORES_MAX_BYTES
# overrides it; Pool(max_bytes=...) per pool). In the caller each such byte comes with
# its objects (items held for error notes, results being unpickled): count 2-3x that.
DEFAULT_MAX_BYTES = 64 << 20
MAX_BYTES_ENV = "ALLCORES_MAX_BYTES"


def default_max_bytes() -> int:
    """``ALLCORES_MAX_BYTES`` (bytes, a plain integer) if set, else DEFAULT_MAX_BYTES."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_BYTES_ENV}: expected a number of bytes >= 1, got: {text!r}")
    return value


def known_length(iterable: Iterable) -> int | None:
    """``len(iterable)`` where it has one (a range too long for ``len()`` has none)."""
    try:
        return len(iterable)  # type: ignore[arg-type]
    except (TypeError, OverflowError):
        return None


class ChunkSizer:
    """Decides how many items the next chunk gets.

    Parameters
    ----------
    workers : int
        Workers that share the work (for the tail rule).
    length : int, optional
        Items in the input, when known (for the tail rule).
    fixed : int, optional
        An explicit chunk size: always honoured, nothing adapts (the window's byte
        bound still counts its measured bytes).
    seconds_per_item : float, optional
        A cost already measured (e.g. by ``allcores.plan``): the first chunks are then
        sized from it instead of probing.
    overhead_s : float, optional
        About what dispatching one chunk costs (the backend's ``chunk_overhead_s``; the
        dispatcher fills it in when None): tail chunks keep at least WORTH_DISPATCH
        times that much work. 0: the tail shrinks down to single items.
    """

    def __init__(self, workers: int, *, length: int | None = None, fixed: int | None = None,
                 seconds_per_item: float | None = None, overhead_s: float | None = None):
        self.workers = workers
        self.length = length
        self.fixed = fixed
        self.seconds_per_item = seconds_per_item
        self.overhead_s = overhead_s
        # Pickled bytes of an item and its result, once a chunk travelled (0 where
        # nothing is pickled: threads, serial).
        self.bytes_per_item: float | None = None
        self._largest_measured = None if seconds_per_item is None else float("inf")
        self._measured = False  # observe() measured this input's cost (not a hint's)

    def resume(self, seconds_per_item: float, bytes_per_item: float | None) -> None:
        """Start from a cost measured by an earlier call of the same function: its first
        chunks are sized from it instead of probing with single items, but grow at most
        MAX_GROWTH-fold (a hint about other inputs, not a measure of these)."""
        self.seconds_per_item = seconds_per_item
        self.bytes_per_item = bytes_per_item
        self._largest_measured = 1

    def measured(self) -> tuple[float, float | None] | None:
        """``(seconds_per_item, bytes_per_item)`` as measured on this input, if it was."""
        if not self._measured:
            return None
        return self.seconds_per_item, self.bytes_per_item

    def size(self, items_cut: int) -> int:
        """The next chunk's size, given how many items were cut into chunks so far."""
        if self.fixed is not None:
            return self.fixed
        if self.seconds_per_item is None:
            size = FIRST_CHUNKSIZE
        else:
            size = int(TARGET_CHUNK_S / max(self.seconds_per_item, 1e-9))
            if self._largest_measured is not None:
                size = min(size, self._largest_measured * MAX_GROWTH)
        if self.bytes_per_item:
            size = min(size, int(CHUNK_BYTES / self.bytes_per_item))
        if self.length is not None:
            remaining = self.length - items_cut
            share = -(-remaining // (TAIL_SHARE * self.workers))
            if self.overhead_s and self.seconds_per_item is not None:
                worth = WORTH_DISPATCH * self.overhead_s / max(self.seconds_per_item, 1e-9)
                even_share = -(-self.length // self.workers)
                share = max(share, min(int(worth) + 1, even_share))
            size = min(size, share)
        return max(1, min(MAX_CHUNK_ITEMS, int(size)))

    def observe(self, items: int, seconds: float, nbytes: int = 0) -> None:
        """A chunk of ``items`` items took ``seconds`` to run, and ``nbytes`` pickled."""
        if items == 0:
            return
        per_item = nbytes / items
        self.bytes_per_item = per_item if self.bytes_per_item is None else max(
            per_item, 0.5 * self.bytes_per_item + 0.5 * per_item)  # quick to grow
        if self.fixed is not None:
            return
        cost = seconds / items
        # Smooth, so one odd chunk (a page fault, a busy machine) does not swing sizes.
        if self.seconds_per_item is None:
            self.seconds_per_item = cost
        else:
            self.seconds_per_item = 0.5 * self.seconds_per_item + 0.5 * cost
        self._largest_measured = max(self._largest_measured or 0, items)
        self._measured = True

    def bytes_of(self, items: int) -> float:
        """The pickled bytes ``items`` items and their results are expected to take."""
        return items * (self.bytes_per_item or 0.0)


# Inputs cut by slicing rather than by iterating: a slice is one C-level copy (a range
# slice is a range, which pickles in a few bytes whatever its length).
SLICEABLE = (list, tuple, range)


class ChunkSource:
    """Cuts an iterable into consecutive chunks, lazily, sized by a :class:`ChunkSizer`.

    ``first_item`` is the input position of the first item to cut: for a list, tuple
    or range the chunks are slices from there; any other iterable is read from its
    current position (so ``first_item`` only numbers the items, for error messages).

    When the input raises, the items read before it still make a chunk; the input's
    exception is raised at the next call.
    """

    def __init__(self, iterable: Iterable, sizer: ChunkSizer, first_item: int = 0):
        self._sequence = iterable if type(iterable) in SLICEABLE else None
        self._iterator = None if self._sequence is not None else iter(iterable)
        self.sizer = sizer
        self._next_item = first_item
        self._cut = 0
        self._error: BaseException | None = None

    @property
    def may_block(self) -> bool:
        """Whether reading may wait on something (an iterator: a generator, a socket)."""
        return self._iterator is not None

    def __iter__(self) -> ChunkSource:
        return self

    @property
    def items_cut(self) -> int:
        return self._cut

    def read_into(self, buffer: collections.deque, size: int) -> None:
        """Append up to ``size`` items of an iterator input to ``buffer``, each as soon
        as the input yields it (another thread may take them meanwhile)."""
        buffer.extend(itertools.islice(self._iterator, size))

    def number(self, items: list) -> Chunk:
        """``items``, the next items of the input, as a chunk."""
        chunk = Chunk(self._next_item, items)
        self._next_item += len(items)
        self._cut += len(items)
        return chunk

    def __next__(self) -> Chunk:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        size = self.sizer.size(self._cut)
        if self._sequence is not None:
            items = self._sequence[self._next_item:self._next_item + size]
        else:
            items = []
            try:
                # extend() keeps what it appended before an exception: those items are
                # handed on, the exception raised next time.
                items.extend(itertools.islice(self._iterator, size))
            except BaseException as exc:
                if not items:
                    raise
                self._error = exc
        if not items:
            raise StopIteration
        chunk = Chunk(self._next_item, items)
        self._next_item += len(items)
        self._cut += len(items)
        return chunk


class _Feeder:
    """Reads chunks from the input and submits them while the window has room.

    In the caller's thread (:meth:`pump`) for an input that never blocks (a list, a
    tuple, a range) and for a backend that runs chunks inside ``submit`` (serial); on a
    daemon thread of its own for an iterator, which may block (a socket, a queue, a slow
    generator): then the window fills while the caller consumes, and the caller hands
    back every finished chunk whatever the input is doing.

    ``in_flight`` (submitted, not handed back, in submission order), ``done``, ``error``
    and ``changed`` are guarded by ``cond``'s lock. The input's exception (or one from
    submitting: pickling the items) ends the feeding; the dispatcher raises it once the
    chunks before it are handed back.
    """

    def __init__(self, backend: Backend, prepared, chunks: ChunkSource, star: bool,
                 window: int, budget: int, recorder: CallRecorder | None, threaded: bool):
        self._backend = backend
        self._prepared = prepared
        self._chunks = chunks
        self._star = star
        self._window = window
        self._budget = budget
        self._recorder = recorder
        self.cond = threading.Condition()
        self.in_flight: collections.OrderedDict[Future, Chunk] = collections.OrderedDict()
        # Items of the chunks in in_flight (the byte bound is items x measured bytes per
        # item: one number to keep, not a sum over the window at every check).
        self.items_in_flight = 0
        self.handed_over: dict[Future, tuple[float, float]] = {}  # recording: submitted, queued
        self.done = False
        self.error: BaseException | None = None
        # Set (threaded) when a chunk was submitted or the feeding ended; replaced by the
        # dispatcher once it has looked.
        self.changed: Future = Future()
        self._stopped = False
        # Threaded: the chunk being read, item by item, and since when (monotonic; None
        # between reads); how many of its items were taken by steal_stalled() meanwhile.
        self._buffer: collections.deque = collections.deque()
        self._reading_since: float | None = None
        self._stolen = 0
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._feed_forever, name="allcores-input",
                                            daemon=True)
            self._thread.start()

    @property
    def threaded(self) -> bool:
        return self._thread is not None

    def has_room(self) -> bool:
        """(Under the lock.) Room in the window, in chunks and in bytes."""
        in_flight = len(self.in_flight)
        if in_flight >= self._window:
            return False
        return not in_flight or (self._chunks.sizer.bytes_of(self.items_in_flight)
                                 < self._budget)

    def take(self, future: Future) -> tuple[Chunk, tuple[float, float] | None]:
        """(Under the lock.) Take a finished chunk out of the window: the chunk, and
        when it was handed over (recording) or None."""
        chunk = self.in_flight.pop(future)
        self.items_in_flight -= len(chunk.items)
        handed = self.handed_over.pop(future, None) if self._recorder is not None else None
        return chunk, handed

    def pump(self) -> None:
        """In the caller's thread, when there is no feeder thread (nothing else touches
        the feeder's state, so no lock is taken): read and submit while there is room."""
        while not self.done and self.has_room():
            self._feed_one()

    def _feed_forever(self) -> None:
        chunks = self._chunks
        while True:
            with self.cond:
                while not self._stopped and not self.done and not self.has_room():
                    self.cond.wait()
                if self._stopped or self.done:
                    return
                size = chunks.sizer.size(chunks.items_cut)
                self._reading_since, self._stolen = time.monotonic(), 0
            read_since = time.perf_counter() if self._recorder is not None else 0.0
            error = None
            try:
                chunks.read_into(self._buffer, size)
            except BaseException as exc:  # the input's: the caller's, after what it yielded
                error = exc
            with self.cond:
                self._reading_since = None
                exhausted = error is not None or len(self._buffer) + self._stolen < size
                items = list(self._buffer)
                self._buffer.clear()
                if items and not self._stopped:
                    self._submit(chunks.number(items), read_since)
                if exhausted:
                    self._end(error)
                if not self.changed.done():
                    self.changed.set_result(None)
                if self.done:
                    return

    def steal_stalled(self) -> None:
        """(The caller's thread.) If the feeder's read has waited STALL_S for the rest
        of its chunk, send the items it already has as a chunk now."""
        with self.cond:
            since = self._reading_since
            if (since is None or not self._buffer or self._stopped
                    or time.monotonic() - since < STALL_S or not self.has_room()):
                return
            items = [self._buffer.popleft() for _ in range(len(self._buffer))]
            self._stolen += len(items)
            self._submit(self._chunks.number(items), time.perf_counter())

    def stall_timeout(self) -> float | None:
        """How long the caller may wait before calling :meth:`steal_stalled`: None when
        no read can stall (the feeding ended, or the window is full); until the read in
        progress has waited STALL_S when it holds items; else STALL_S (a read may start
        or get its first item meanwhile, and nothing would wake the caller for that)."""
        with self.cond:
            if self.done or not self.has_room():
                return None
            since = self._reading_since
            if since is None or not self._buffer:  # nothing to send yet: look again later
                return STALL_S
        return max(0.0, since + STALL_S - time.monotonic())

    def _submit(self, chunk: Chunk, submitted: float) -> None:
        """(Under the lock, so that chunks enter ``in_flight`` in input order.)"""
        try:
            future = self._backend.submit(self._prepared, chunk, self._star)
        except KeyboardInterrupt:
            raise  # Ctrl-C (only the caller's thread gets it): at once, not in order
        except BaseException as exc:  # pickling the items: the caller's error, in order
            self._end(exc)
            return
        self.in_flight[future] = chunk
        self.items_in_flight += len(chunk.items)
        if self._recorder is not None:
            self.handed_over[future] = (submitted, time.perf_counter())

    def _feed_one(self) -> None:
        """(:meth:`pump`, the caller's thread, no feeder thread.) Read one chunk and
        submit it."""
        submitted = time.perf_counter() if self._recorder is not None else 0.0
        try:
            chunk = next(self._chunks, None)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the input's: the caller's, after what it yielded
            self._end(exc)
            return
        if chunk is None:
            self._end(None)
        else:
            self._submit(chunk, submitted)

    def _end(self, error: BaseException | None) -> None:
        """The feeding ended: the input ran out, or ``error`` (the first one is kept)."""
        with self.cond:
            self.done = True
            self.error = self.error or error

    def stop(self) -> None:
        """The caller stopped: submit nothing more (a read in progress finishes, its
        chunk is dropped)."""
        with self.cond:
            self._stopped = True
            self.done = True
            self.cond.notify_all()


def chunk_outcome(chunk: Chunk, future: Future) -> tuple[Any, list]:
    """The chunk's ChunkResult and its values (unpickled here when they came pickled:
    in the caller's thread, never an engine thread's), or its failure raised as the
    caller should see it: outside the ``except`` clause, so that the error's
    ``__context__`` stays its own."""
    try:
        outcome = future.result()
        return outcome, chunk_values(outcome, len(chunk.items))
    except CancelledError:  # only the backend's shutdown cancels a chunk we still await
        failure = None
    except ChunkError as error:
        failure = error
    if failure is None:
        raise PoolClosedError("the pool was terminated")
    raise failure.for_caller(chunk.first_item, chunk.stop_item)


def _wait_for(future: Future, deadline: float | None = None) -> None:
    """Until ``future`` is done, however it ends (its outcome is read afterwards);
    ``TimeoutError`` if ``deadline`` passes first."""
    try:
        future.exception(_time_left(deadline))
    except CancelledError:
        pass
    except TimeoutError:
        _time_left(deadline)  # raises, with the map's message
        raise


def _time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline``; ``TimeoutError`` once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the map's next result was not there within its timeout")
    return left


def run_chunks(
    backend: Backend,
    fn: Callable[..., Any],
    chunks: ChunkSource,
    *,
    ordered: bool,
    star: bool = False,
    recorder: CallRecorder | None = None,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> Iterator[tuple[Chunk, list]]:
    """Yield ``(chunk, results)`` for every chunk, running them on ``backend``. With a
    ``recorder``, each chunk handed back is recorded (see ``allcores.timeline``);
    ``max_bytes`` bounds the pickled bytes in flight (default: default_max_bytes()).
    ``deadline`` (``time.monotonic()``): ``TimeoutError`` when the next chunk is not
    finished by then (``Executor.map(timeout=)``); the chunks in flight are cancelled."""
    prepared = backend.prepare(fn)
    sizer = chunks.sizer
    if sizer.overhead_s is None:
        sizer.overhead_s = backend.chunk_overhead_s
    if sizer.fixed is None and sizer.seconds_per_item is None:
        # What the last map of fn on such a backend ended with: the first chunks start
        # from it instead of probing with single items (allcores._memory).
        cost = memory.chunk_cost(fn, backend.name)
        if cost is not None:
            sizer.resume(*cost)
    feeder = _Feeder(
        backend, prepared, chunks, star, window=max(1, backend.window()),
        budget=default_max_bytes() if max_bytes is None else max_bytes, recorder=recorder,
        threaded=chunks.may_block and not backend.runs_chunks_in_submit)
    try:
        if feeder.threaded:
            taken = _finished_chunks_threaded(feeder, ordered, deadline)
        else:
            taken = _finished_chunks_in_caller(feeder, ordered, deadline)
        for future, chunk, handed in taken:
            outcome, values = chunk_outcome(chunk, future)
            sizer.observe(len(chunk.items), outcome.seconds, outcome.nbytes)
            if recorder is not None and handed is not None:
                submitted, queued = handed
                # A worker may start the chunk before submit() returns (or, serial, run
                # it inside submit): it was queued by then.
                recorder.add(chunk.first_item, len(chunk.items), outcome.worker,
                             submitted, min(queued, outcome.started), outcome.started,
                             outcome.started + outcome.seconds, time.perf_counter(),
                             outcome.lost)
            yield chunk, values
    finally:
        feeder.stop()
        with feeder.cond:
            for future in feeder.in_flight:
                future.cancel()
        measured = sizer.measured()
        if measured is not None:
            memory.remember_chunk_cost(fn, backend.name, measured)
    if feeder.error is not None:
        raise feeder.error


def _finished_chunks_in_caller(feeder: _Feeder, ordered: bool, deadline: float | None):
    """Without a feeder thread (a list, tuple or range input; a backend that runs
    chunks in submit): fill the window, then take the next finished chunk (the head,
    ``ordered``), waiting for it only when none is finished. Yields ``(future, chunk,
    handed)`` out of the window; the caller's thread alone touches the feeder."""
    in_flight = feeder.in_flight
    while True:
        # A backend that runs chunks inside submit() (serial) gets here again only when
        # the caller asks for more: it computes a chunk only then.
        feeder.pump()
        if not in_flight:
            return  # pump() stops with room in the window only once the input ran out
        if ordered:
            finished = next(iter(in_flight))
            if not finished.done():
                _wait_for(finished, deadline)  # the head: much cheaper than wait() on a list
        else:  # one at a time: the window refills only as results are taken
            finished = next((f for f in in_flight if f.done()), None)
            if finished is None:
                wait(list(in_flight), _time_left(deadline), return_when=FIRST_COMPLETED)
                continue
        yield (finished, *feeder.take(finished))


def _finished_chunks_threaded(feeder: _Feeder, ordered: bool, deadline: float | None):
    """With a feeder thread (an iterator input): as above, but the window and the
    feeding's end are shared with the feeder under its lock; while nothing is finished,
    wait for a chunk, for the feeder to submit one, or for a read to stall."""
    while True:
        with feeder.cond:
            if feeder.changed.done():
                feeder.changed = Future()
            in_flight = feeder.in_flight
            if ordered:
                head = next(iter(in_flight), None)
                finished = head if head is not None and head.done() else None
            else:  # one at a time: the window refills only as results are taken
                finished = next((f for f in in_flight if f.done()), None)
            if finished is not None:
                taken = (finished, *feeder.take(finished))
                feeder.cond.notify_all()  # room again
            else:
                waiting = [head] if ordered and head is not None else list(in_flight)
                finished_input = feeder.done and not in_flight
                changed = feeder.changed
        if finished is not None:
            yield taken
            continue
        if finished_input:
            return
        timeout = feeder.stall_timeout()
        if deadline is not None:
            left = _time_left(deadline)
            timeout = left if timeout is None else min(timeout, left)
        wait(waiting + [changed], timeout, return_when=FIRST_COMPLETED)
        feeder.steal_stalled()
