"""The dispatcher: cuts the input into chunks, keeps a bounded window of them in flight
on a backend, and hands results back in input order or in completion order.

It reads the input lazily: at most ``backend.window()`` chunks are submitted and not yet
handed back, counting finished chunks that wait in the reorder buffer, so a slow chunk at
the head holds the window instead of letting results pile up. New chunks are submitted
before results are handed back, so workers stay busy while the caller consumes.

Chunk sizes adapt to the work unless the caller fixes them (:class:`ChunkSizer`): each
finished chunk reports how long its items took where they ran, and later chunks are cut
to last about ``TARGET_CHUNK_S``; near the end of an input of known length they shrink
so that the workers finish together.

When the caller stops early (``break``, ``close()``, an exception), queued chunks are
cancelled; chunks already running finish in their worker and their results are dropped.

Given a recorder (``insights=True``), it notes for each chunk it hands back when the
chunk was handed to the backend and when its results were handed on; the backend's
``ChunkResult`` says where and when the chunk ran (see ``allcores.timeline``).
"""

from __future__ import annotations

import collections
import itertools
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from typing import Any, Callable, Iterable, Iterator

from allcores._execute import ChunkError, chunk_values
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
        An explicit chunk size: always honoured, nothing adapts.
    seconds_per_item : float, optional
        A cost already measured (e.g. by ``allcores.plan``): the first chunks are then
        sized from it instead of probing.
    """

    def __init__(self, workers: int, *, length: int | None = None, fixed: int | None = None,
                 seconds_per_item: float | None = None):
        self.workers = workers
        self.length = length
        self.fixed = fixed
        self.seconds_per_item = seconds_per_item
        self._largest_measured = None if seconds_per_item is None else float("inf")

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
        if self.length is not None:
            remaining = self.length - items_cut
            size = min(size, -(-remaining // (TAIL_SHARE * self.workers)))
        return max(1, int(size))

    def observe(self, items: int, seconds: float) -> None:
        """A chunk of ``items`` items took ``seconds`` to run."""
        if self.fixed is not None or items == 0:
            return
        cost = seconds / items
        # Smooth, so one odd chunk (a page fault, a busy machine) does not swing sizes.
        if self.seconds_per_item is None:
            self.seconds_per_item = cost
        else:
            self.seconds_per_item = 0.5 * self.seconds_per_item + 0.5 * cost
        self._largest_measured = max(self._largest_measured or 0, items)


# Inputs cut by slicing rather than by iterating: a slice is one C-level copy (a range
# slice is a range, which pickles in a few bytes whatever its length).
SLICEABLE = (list, tuple, range)


class ChunkSource:
    """Cuts an iterable into consecutive chunks, lazily, sized by a :class:`ChunkSizer`.

    ``first_item`` is the input position of the first item to cut: for a list, tuple
    or range the chunks are slices from there; any other iterable is read from its
    current position (so ``first_item`` only numbers the items, for error messages).
    """

    def __init__(self, iterable: Iterable, sizer: ChunkSizer, first_item: int = 0):
        self._sequence = iterable if type(iterable) in SLICEABLE else None
        self._iterator = None if self._sequence is not None else iter(iterable)
        self.sizer = sizer
        self._next_item = first_item
        self._cut = 0

    def __iter__(self) -> ChunkSource:
        return self

    def __next__(self) -> Chunk:
        size = self.sizer.size(self._cut)
        if self._sequence is not None:
            items = self._sequence[self._next_item:self._next_item + size]
        else:
            items = list(itertools.islice(self._iterator, size))
        if not items:
            raise StopIteration
        chunk = Chunk(self._next_item, items)
        self._next_item += len(items)
        self._cut += len(items)
        return chunk


def _outcome(chunk: Chunk, future: Future) -> tuple[Any, list]:
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


def run_chunks(
    backend: Backend,
    fn: Callable[..., Any],
    chunks: ChunkSource,
    *,
    ordered: bool,
    star: bool = False,
    recorder: CallRecorder | None = None,
) -> Iterator[tuple[Chunk, list]]:
    """Yield ``(chunk, results)`` for every chunk, running them on ``backend``. With a
    ``recorder``, each chunk handed back is recorded (see ``allcores.timeline``)."""
    prepared = backend.prepare(fn)
    window = max(1, backend.window())
    in_flight: collections.OrderedDict[Future, Chunk] = collections.OrderedDict()
    handed_over: dict[Future, tuple[float, float]] = {}  # when recording: submitted, queued

    def refill() -> None:
        while len(in_flight) < window:
            submitted = time.perf_counter() if recorder is not None else 0.0
            chunk = next(chunks, None)
            if chunk is None:
                return
            future = backend.submit(prepared, chunk, star)
            in_flight[future] = chunk
            if recorder is not None:
                handed_over[future] = (submitted, time.perf_counter())

    # A backend that runs chunks inside submit() (serial) gets the next chunk only when
    # the caller asks for more; others are refilled before a result is handed back, so
    # that workers stay busy while the caller consumes.
    submit_ahead = not backend.runs_chunks_in_submit
    try:
        refill()
        while in_flight:
            if ordered:
                done = [next(iter(in_flight))]
            else:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                chunk = in_flight.pop(future)
                outcome, values = _outcome(chunk, future)
                chunks.sizer.observe(len(chunk.items), outcome.seconds)
                if submit_ahead:
                    refill()
                if recorder is not None:
                    submitted, queued = handed_over.pop(future)
                    # A worker may start the chunk before submit() returns (or, serial,
                    # run it inside submit): it was queued by then.
                    recorder.add(chunk.first_item, len(chunk.items), outcome.worker,
                                 submitted, min(queued, outcome.started), outcome.started,
                                 outcome.started + outcome.seconds, time.perf_counter(),
                                 outcome.lost)
                yield chunk, values
            if not submit_ahead:
                refill()
    finally:
        for future in in_flight:
            future.cancel()
