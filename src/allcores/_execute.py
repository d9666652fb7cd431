"""Running a chunk, and carrying a failure from wherever it ran back to the caller.

Every backend runs a chunk with :func:`run_items`. A failing item becomes a
:class:`ChunkError` on the chunk's future; the dispatcher turns it back into the
original exception with :meth:`ChunkError.for_caller`, adding a note that names the
input item, and (for a remote failure) chaining the worker's traceback.
"""

from __future__ import annotations

import itertools
import pickle
import time
import traceback
from typing import Any, Callable, Iterable, NamedTuple

from allcores._messages import RemoteException
from allcores.errors import AllcoresError, RemoteTraceback

PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


class RemoteError(AllcoresError):
    """An exception raised in a worker that could not be pickled back to the caller;
    its original type name and message are in the text."""


class ItemError(Exception):
    """Internal: ``fn`` raised ``error`` on the item at ``position`` of a chunk."""

    def __init__(self, position: int, error: Exception):
        super().__init__(position, error)
        self.position = position
        self.error = error


class ChunkResult(NamedTuple):
    """What a chunk's future resolves to: one value per item, and how long the chunk
    ran where it ran (the dispatcher sizes later chunks from it). ``started`` (on the
    caller's ``time.perf_counter`` clock: each backend converts to it) and ``worker``
    say when and where it ran, for ``allcores.insights``; they travel with every chunk
    because one float and a short string cost nothing next to a chunk's items."""

    values: list
    seconds: float
    started: float = 0.0
    worker: str = "caller"
    lost: tuple = ()   # LostAttempts: earlier runs that ended with their worker's death


def run_items(fn: Callable[..., Any], items: Iterable, star: bool,
              into: list | None = None, worker: str = "caller") -> ChunkResult:
    """``[fn(item) for item in items]`` (``fn(*item)`` when ``star``), timed, raising
    :class:`ItemError` for the first item whose call raises an ``Exception``. With
    ``into``, the results are appended to that list (which is then the values);
    ``worker`` names where this runs.

    Other ``BaseException``s (``SystemExit``, ``KeyboardInterrupt``) are not caught:
    in a worker process they end the process, which the pool reports as a crash.
    """
    results: list = [] if into is None else into
    already = len(results)
    start = time.perf_counter()
    try:
        # extend() runs the loop in C and keeps what it appended before an exception,
        # so the failing item's position is known: no Python-level loop needed.
        results.extend(itertools.starmap(fn, items) if star else map(fn, items))
    except Exception as exc:
        raise ItemError(len(results) - already, exc) from None
    return ChunkResult(results, time.perf_counter() - start, start, worker)


def pack_exception(exc: BaseException) -> RemoteException:
    """``exc`` in a form that always pickles: the exception itself if it survives a
    pickle round trip (some define ``__init__`` arguments that break unpickling)."""
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:  # a __str__ that raises breaks the formatting too
        text = f"{type(exc).__qualname__} (its traceback could not be formatted)\n"
    try:
        payload = dumps(exc)
        pickle.loads(payload)
    except Exception:
        payload = None
    return RemoteException(payload, type(exc).__qualname__, _safe_str(exc), text)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__qualname__}: str() failed>"


def dumps(values: Any) -> bytes:
    """Pickle data (items or results) for the trip between processes. Plain pickle is
    the fast path; cloudpickle takes what it refuses: lambdas, and instances of classes
    that travelled by value (defined in ``__main__`` or in a function)."""
    try:
        return pickle.dumps(values, PICKLE_PROTOCOL)
    except Exception:
        import cloudpickle

        return cloudpickle.dumps(values, protocol=PICKLE_PROTOCOL)


def unpack_exception(remote: RemoteException) -> BaseException:
    if remote.payload is not None:
        try:
            exc = pickle.loads(remote.payload)
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            exc.__cause__ = RemoteTraceback(remote.traceback_text)
            return exc
    exc = RemoteError(f"{remote.type_name}: {remote.message}")
    exc.__cause__ = RemoteTraceback(remote.traceback_text)
    return exc


class ChunkError(Exception):
    """Internal: the failure of one chunk, as a backend reports it on the chunk's future.

    ``error`` is the exception to give the caller (already carrying any remote
    traceback as its cause); ``position`` is the failing item's index in the chunk,
    if one item is to blame; ``stage`` says what was being done.
    """

    def __init__(self, error: BaseException, position: int | None, stage: str, where: str):
        super().__init__(error, position, stage, where)
        self.error = error
        self.position = position
        self.stage = stage
        self.where = where

    def for_caller(self, first_item: int, stop_item: int) -> BaseException:
        if self.position is not None:
            note = f"allcores: raised by item {first_item + self.position} of the input"
        else:
            note = f"allcores: failed {self.stage} for items {first_item}..{stop_item - 1}"
        self.error.add_note(f"{note} ({self.where})")
        return self.error
