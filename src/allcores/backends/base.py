"""The interface every backend implements: run a chunk somewhere, return a Future.

Backends know nothing about ordering, windows or chunk sizes (the dispatcher owns
those). A chunk's future resolves to a ``ChunkResult`` (its results, one per item, or
their pickled bytes for the caller to unpickle, and how long they took to compute; see
``allcores._execute``), or fails with a ``ChunkError`` (an item raised, or a stage
failed; see ``allcores._execute``), a ``WorkerCrashedError``, a ``ChunkTimeoutError`` or
a ``PoolClosedError``.

A backend shares its pool's :class:`~allcores._lifecycle.Lifecycle` (the constructor's
``lifecycle`` keyword): ``submit`` refuses a chunk when it says so, and a backend whose
workers cannot run anything marks it BROKEN.
"""

from __future__ import annotations

import abc
import dataclasses
from concurrent.futures import Future
from typing import Any, Callable, ClassVar, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive input items ``first_item .. first_item + len(items) - 1``."""

    first_item: int
    items: Sequence  # a list, or a slice of a list, tuple or range input

    @property
    def stop_item(self) -> int:
        return self.first_item + len(self.items)


class Backend(abc.ABC):
    """Runs chunks on ``workers`` workers.

    Capability flags (class attributes) let the pool check options up front:
    ``runs_in_caller_process`` (no pickling: threads or the caller itself),
    ``supports_timeout`` (a running chunk can be stopped from outside) and
    ``runs_chunks_in_submit`` (``submit`` itself runs the chunk: the dispatcher then
    submits the next chunk only when the caller asks for more). ``chunk_overhead_s``
    says about what handing one chunk to a worker and its results back costs (0:
    nothing worth counting); the dispatcher keeps chunks well above it.
    """

    name: ClassVar[str]
    runs_in_caller_process: ClassVar[bool]
    supports_timeout: ClassVar[bool]
    runs_chunks_in_submit: ClassVar[bool] = False
    chunk_overhead_s: ClassVar[float] = 0.0
    # Keyword arguments the constructor takes besides ``workers`` (Pool passes these).
    option_names: ClassVar[tuple[str, ...]] = ("initializer", "initargs")

    workers: int

    def prepare(self, fn: Callable[..., Any]) -> Any:
        """Whatever ``submit`` needs to run ``fn`` many times (e.g. ``fn`` pickled once)."""
        return fn

    @abc.abstractmethod
    def submit(self, prepared_fn: Any, chunk: Chunk, star: bool) -> Future:
        """Queue the chunk; the future resolves to a ``ChunkResult`` whose values are
        ``[fn(item) for item in chunk.items]``."""

    @abc.abstractmethod
    def shutdown(self, *, wait: bool) -> None:
        """``wait=True``: finish queued work, then stop the workers. ``wait=False``: stop
        now; queued and running chunks fail with ``PoolClosedError``. Idempotent;
        ``wait=False`` returns within a bounded time."""

    def window(self) -> int:
        """Chunks the dispatcher may keep in flight: enough to keep every worker busy
        while the caller consumes results, few enough to bound memory."""
        return 2 * self.workers
