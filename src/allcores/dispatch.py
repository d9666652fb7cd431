"""The dispatcher: cuts the input into chunks, keeps a bounded window of them in flight
on a backend, and hands results back in input order or in completion order.

It reads the input lazily: at most ``backend.window()`` chunks are submitted and not yet
handed back, counting finished chunks that wait in the reorder buffer, so a slow chunk at
the head holds the window instead of letting results pile up. New chunks are submitted
before results are handed back, so workers stay busy while the caller consumes.

When the caller stops early (``break``, ``close()``, an exception), queued chunks are
cancelled; chunks already running finish in their worker and their results are dropped.
"""

from __future__ import annotations

import collections
import itertools
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from typing import Any, Callable, Iterable, Iterator

from allcores._execute import ChunkError
from allcores.backends.base import Backend, Chunk
from allcores.errors import PoolClosedError

# Without a length to split by, chunks of this many items: big enough to amortise a
# round trip to a worker process (tens of microseconds), small enough to stream.
STREAM_CHUNKSIZE = 256
# With a known length, aim for this many chunks per worker: fewer means less dispatch
# cost (about 80 us a chunk), more means better balance when items differ in cost and
# an earlier start (workers wait while the first chunk is pickled). multiprocessing
# uses 4; 16 measured faster even for a trivial function over 10**6 items.
CHUNKS_PER_WORKER = 16


def default_chunksize(length: int | None, workers: int) -> int:
    if length is None:
        return STREAM_CHUNKSIZE
    return max(1, -(-length // (workers * CHUNKS_PER_WORKER)))


def iter_chunks(iterable: Iterable, chunksize: int) -> Iterator[Chunk]:
    iterator = iter(iterable)
    first_item = 0
    while True:
        items = list(itertools.islice(iterator, chunksize))
        if not items:
            return
        yield Chunk(first_item, items)
        first_item += len(items)


def _outcome(chunk: Chunk, future: Future) -> list:
    """The chunk's results, or its failure raised as the caller should see it."""
    try:
        return future.result()
    except CancelledError:  # only the backend's shutdown cancels a chunk we still await
        raise PoolClosedError("the pool was terminated") from None
    except ChunkError as failure:
        raise failure.for_caller(chunk.first_item, chunk.stop_item) from failure.error.__cause__


def run_chunks(
    backend: Backend,
    fn: Callable[..., Any],
    chunks: Iterator[Chunk],
    *,
    ordered: bool,
    star: bool = False,
) -> Iterator[tuple[Chunk, list]]:
    """Yield ``(chunk, results)`` for every chunk, running them on ``backend``."""
    prepared = backend.prepare(fn)
    window = max(1, backend.window())
    in_flight: collections.OrderedDict[Future, Chunk] = collections.OrderedDict()

    def refill() -> None:
        for chunk in itertools.islice(chunks, window - len(in_flight)):
            in_flight[backend.submit(prepared, chunk, star)] = chunk

    try:
        refill()
        while in_flight:
            if ordered:
                done = [next(iter(in_flight))]
            else:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                chunk = in_flight.pop(future)
                results = _outcome(chunk, future)
                refill()
                yield chunk, results
    finally:
        for future in in_flight:
            future.cancel()
