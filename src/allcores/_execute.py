"""Running a chunk, and carrying a failure from wherever it ran back to the caller.

Every backend runs a chunk with :func:`run_items`. A failing item becomes a
:class:`ChunkError` on the chunk's future; the dispatcher turns it back into the
original exception with :meth:`ChunkError.for_caller`, adding a note that names the
input item, and (for a remote failure) chaining the worker's traceback.
"""

from __future__ import annotations

import itertools
import pickle
import traceback
from typing import Any, Callable

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


def run_items(fn: Callable[..., Any], items: list, star: bool) -> list:
    """``[fn(item) for item in items]`` (``fn(*item)`` when ``star``), raising
    :class:`ItemError` for the first item whose call raises an ``Exception``.

    Other ``BaseException``s (``SystemExit``, ``KeyboardInterrupt``) are not caught:
    in a worker process they end the process, which the pool reports as a crash.
    """
    results: list = []
    try:
        # extend() runs the loop in C and keeps what it appended before an exception,
        # so the failing item's position is len(results): no Python-level loop needed.
        results.extend(itertools.starmap(fn, items) if star else map(fn, items))
    except Exception as exc:
        raise ItemError(len(results), exc) from None
    return results


def pack_exception(exc: BaseException) -> RemoteException:
    """``exc`` in a form that always pickles: the exception itself if it survives a
    pickle round trip (some define ``__init__`` arguments that break unpickling)."""
    text = "".join(traceback.format_exception(exc))
    try:
        payload = pickle.dumps(exc, PICKLE_PROTOCOL)
        pickle.loads(payload)
    except Exception:
        payload = None
    return RemoteException(payload, type(exc).__qualname__, str(exc), text)


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
