"""Running a chunk, and carrying a failure from wherever it ran back to the caller.

Every backend runs a chunk's items with :func:`run_items`; the backends that run chunks
in other processes (process, Dask) run the whole worker side of the protocol with
:func:`run_chunk` (load the function from a cache, unpickle the items, run them, pickle
the results, and say at which stage and item anything failed).

A failure becomes a :class:`ChunkError` on the chunk's future, whichever backend ran it;
the dispatcher (and ``Pool.submit``) turn it into the caller's exception with
:meth:`ChunkError.for_caller`: the original exception, its remote traceback chained as
its cause, and a note naming the input item or the stage.

``BaseException`` is caught too (``SystemExit`` from ``sys.exit()``, a
``KeyboardInterrupt`` that ``fn`` raises, anything else a user object may raise): in a
worker it is the chunk's error, delivered like any other; the worker goes on.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import threading
import time
import traceback
import types
from typing import Any, Callable, Iterable, NamedTuple

from allcores._calls import call_each
from allcores._messages import ChunkDone, ChunkFailed, RemoteException, RunChunk
from allcores.errors import AllcoresError, RemoteTraceback

PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
# How many distinct functions a worker keeps unpickled. The process backend's manager
# mirrors this cache (same size, same order of use) to know when it must send a
# function again.
FUNCTION_CACHE_SIZE = 16


class RemoteError(AllcoresError):
    """An exception raised in a worker that could not be pickled back to the caller;
    its original type name and message are in the text."""


class ItemError(Exception):
    """Internal: ``fn`` raised ``error`` on the item at ``position`` of a chunk."""

    def __init__(self, position: int, error: BaseException):
        super().__init__(position, error)
        self.position = position
        self.error = error


class ChunkResult(NamedTuple):
    """What a chunk's future resolves to: one value per item, and how long the chunk
    ran where it ran (the dispatcher sizes later chunks from it). ``started`` (on the
    caller's ``time.perf_counter`` clock: each backend converts to it) and ``worker``
    say when and where it ran, for ``allcores.insights``; they travel with every chunk
    because one float and a short string cost nothing next to a chunk's items.

    A backend whose results arrive pickled leaves ``values`` None and hands the bytes
    on in ``payload``: the caller's thread unpickles them (:func:`chunk_values`), so
    that no engine thread runs a user object's unpickling code."""

    values: list | None
    seconds: float
    started: float = 0.0
    worker: str = "caller"
    lost: tuple = ()   # LostAttempts: earlier runs that ended with their worker's death
    payload: bytes | None = None
    sent_bytes: int = 0  # the pickled items' size, where they were pickled

    @property
    def nbytes(self) -> int:
        """Bytes the chunk took pickled, items and results (0 where nothing is pickled)."""
        return self.sent_bytes + (0 if self.payload is None else len(self.payload))


def run_items(fn: Callable[..., Any], items: Iterable, star: bool,
              into: list | None = None, worker: str = "caller") -> ChunkResult:
    """``[fn(item) for item in items]`` (``fn(*item)`` when ``star``), timed, raising
    :class:`ItemError` for the first item whose call raises (any ``BaseException``).
    With ``into``, the results are appended to that list (which is then the values);
    ``worker`` names where this runs.

    A ``StopIteration`` escaping ``fn`` becomes a ``RuntimeError`` (as in generators,
    PEP 479): left as it is, any loop over the results would take it for their end.
    """
    results: list = [] if into is None else into
    start = time.perf_counter()
    position, error = call_each(fn, items, results, star)
    if error is not None:
        if isinstance(error, StopIteration):
            escaped = RuntimeError(f"fn raised StopIteration: {error!r}")
            escaped.__cause__ = error
            error = escaped
        raise ItemError(position, error)
    return ChunkResult(results, time.perf_counter() - start, start, worker)


# --- pickling -----------------------------------------------------------------------------


def dumps(values: Any, *, main_by_value: bool = False) -> bytes:
    """Pickle data (items or results) for the trip between processes. Plain pickle is
    the fast path; cloudpickle takes what it refuses: lambdas, and instances of classes
    that travelled by value (defined in ``__main__`` or in a function).

    ``main_by_value``: the receiving process cannot import the caller's ``__main__``
    (no file: ``python -c``, a REPL, a notebook, standard input; or another machine),
    so what plain pickle wrote as a reference into ``__main__`` goes by value instead.
    Looking for the module's name in the bytes costs a memchr-speed scan; a false
    positive (an item containing that text) only costs cloudpickle's speed."""
    try:
        payload = pickle.dumps(values, PICKLE_PROTOCOL)
    except Exception:
        payload = None
    if payload is not None and not (main_by_value and b"__main__" in payload):
        return payload
    import cloudpickle

    return cloudpickle.dumps(values, protocol=PICKLE_PROTOCOL)


def main_is_importable() -> bool:
    """Whether a new Python process can import this one's ``__main__`` (multiprocessing's
    spawn and forkserver start methods re-import it in every worker): run as a module
    (``python -m``) or from a script file that exists."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return True
    path = getattr(main, "__file__", None)
    return isinstance(path, str) and os.path.isfile(path)


def defined_atop_main(fn) -> bool:
    """Whether ``fn`` is a function that the caller's ``__main__`` script defines
    unconditionally at its top level (not under ``if __name__ == "__main__":``, not
    rebound since): a worker that imports the script (spawn, forkserver) finds that
    very function by name there, as multiprocessing assumes of every function. It can
    then travel by reference, like the objects of the script's classes do, instead of
    by value (cloudpickle: slower, a copy of its globals, and classes that are not the
    worker's own)."""
    if (type(fn) is not types.FunctionType or fn.__module__ != "__main__"
            or fn.__qualname__ != fn.__name__):
        return False
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if (getattr(main, fn.__name__, None) is not fn or not isinstance(path, str)
            or fn.__code__.co_filename != path or not main_is_importable()):
        return False
    return (fn.__name__, fn.__code__.co_firstlineno) in _top_level_functions(path)


_main_functions: dict[str, tuple[float, frozenset]] = {}  # path -> (mtime, (name, line))


def _top_level_functions(path: str) -> frozenset:
    """``(name, first line)`` of each ``def`` directly in the script's top level (the
    first line: its first decorator's, as ``co_firstlineno`` counts)."""
    import ast

    try:
        mtime = os.stat(path).st_mtime
        cached = _main_functions.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        with open(path, "rb") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    found = frozenset(
        (node.name, min([node.lineno] + [d.lineno for d in node.decorator_list]))
        for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    _main_functions[path] = (mtime, found)
    return found


def pack_exception(exc: BaseException) -> RemoteException:
    """``exc`` in a form that always pickles: the exception itself if it survives a
    pickle round trip (some define ``__init__`` arguments that break unpickling)."""
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:  # a __str__ that raises breaks the formatting too
        text = f"{type(exc).__qualname__} (its traceback could not be formatted)\n"
    try:
        payload = _dump_exception(exc)
        pickle.loads(payload)
    except BaseException:
        payload = None
    return RemoteException(payload, type(exc).__qualname__, _safe_str(exc), text)


def _dump_exception(exc: BaseException) -> bytes:
    """The exception pickled its own way: a copyreg hook another library installed for
    every exception class (tblib's, which distributed installs, and which a fork worker
    inherits) must not decide how it travels. tblib's rebuilds a SystemExit without its
    exit code, say. (The traceback travels as text anyway.)"""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, PICKLE_PROTOCOL)
    pickler.dispatch_table = {}
    try:
        pickler.dump(exc)
    except Exception:  # e.g. a class defined in __main__ or in a function
        return dumps(exc)
    return buffer.getvalue()


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f"<{type(exc).__qualname__}: str() failed>"


def unpack_exception(remote: RemoteException) -> BaseException:
    """The exception a worker packed, its traceback text chained as its cause; a
    :class:`RemoteError` naming its type when it cannot be rebuilt here."""
    exc = None
    if remote.payload is not None:
        try:
            exc = pickle.loads(remote.payload)
        except BaseException:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"{remote.type_name}: {remote.message}")
    exc.__cause__ = RemoteTraceback(remote.traceback_text)
    return exc


# --- the worker side of the protocol ------------------------------------------------------


class FunctionCache:
    """A least-recently-used map from function id to function, bounded in size.

    The process backend's manager keeps a mirror of each worker's cache (same size, fed
    the same ids in the same order), so it knows which functions a worker still has.
    Thread-safe: a Dask worker runs tasks on several threads."""

    def __init__(self, size: int = FUNCTION_CACHE_SIZE):
        self.size = size
        self._entries: collections.OrderedDict[bytes, object] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, fn_id: bytes) -> bool:
        return fn_id in self._entries

    def use(self, fn_id: bytes, value: object = None) -> object:
        """Mark ``fn_id`` as just used, adding it with ``value`` if it is new."""
        with self._lock:
            if fn_id in self._entries:
                self._entries.move_to_end(fn_id)
                return self._entries[fn_id]
            self._entries[fn_id] = value
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return value


class _Unloadable:
    """Cached in place of a function that failed to unpickle, so that every chunk that
    uses it fails the same way (the process backend will not send it again)."""

    def __init__(self, error: BaseException):
        self.error = error


def _load_function(task: RunChunk, functions: FunctionCache):
    if task.fn_payload is not None and task.fn_id not in functions:
        try:
            loaded = pickle.loads(task.fn_payload)  # outside any lock: may import slowly
        except BaseException as exc:
            loaded = _Unloadable(exc)
        functions.use(task.fn_id, loaded)
    fn = functions.use(task.fn_id)
    if isinstance(fn, _Unloadable):
        raise fn.error
    if fn is None:
        raise RuntimeError("allcores internal error: the worker lost the function to run")
    return fn


def run_chunk(task: RunChunk, functions: FunctionCache, *, lane: str,
              worker: str) -> ChunkDone | ChunkFailed:
    """The worker side of the protocol, for one chunk: never raises (anything that
    goes wrong is in the ChunkFailed reply, with its stage and the item's position).
    ``lane`` names where it ran for the timeline (``"process 1234"``), ``worker`` for
    an error message (``"worker process 1234"``)."""
    stage = "unpickling the function"
    position = None
    try:
        fn = _load_function(task, functions)
        stage = "unpickling the items"
        items = pickle.loads(task.items_payload)
        stage = "running"
        try:
            outcome = run_items(fn, items, task.star)
        except ItemError as failure:
            position, error = failure.position, failure.error
        else:
            stage = "pickling the results"
            return ChunkDone(task.chunk_id, dumps(outcome.values), outcome.seconds,
                             outcome.started, lane)
    except BaseException as exc:
        error = exc
    return ChunkFailed(task.chunk_id, position, stage, pack_exception(error), worker)


def count_results(values: list, items: int) -> list:
    """``values``, checked to hold exactly one result per item: a chunk that came back
    short or long would shift every later result onto the wrong item."""
    if len(values) != items:
        raise RuntimeError(f"allcores internal error: a chunk of {items} items came back "
                           f"with {len(values)} results")
    return values


# --- the caller side ----------------------------------------------------------------------


class ChunkError(Exception):
    """Internal: the failure of one chunk, as a backend reports it on the chunk's future.

    ``error`` is the exception to give the caller (already carrying any remote
    traceback as its cause); ``position`` is the failing item's index in the chunk,
    if one item is to blame; ``stage`` says what was being done (one of
    ``allcores._messages.STAGES``), ``where`` where.
    """

    def __init__(self, error: BaseException | RemoteException, position: int | None,
                 stage: str, where: str):
        super().__init__(position, stage, where)
        self._error = error
        self.position = position
        self.stage = stage
        self.where = where

    @property
    def error(self) -> BaseException:
        """The exception; one a worker packed is unpacked on first use, in the thread
        that hands it to the caller: unpickling it runs the exception class's code,
        which must never run (or hang, or raise) on an engine thread."""
        if isinstance(self._error, RemoteException):
            self._error = unpack_exception(self._error)
        return self._error

    @classmethod
    def from_item(cls, failure: ItemError, where: str) -> ChunkError:
        """``fn`` raised on an item, ``where`` (e.g. ``"in the caller"``)."""
        return cls(failure.error, failure.position, "running", where)

    @classmethod
    def from_reply(cls, reply: ChunkFailed) -> ChunkError:
        """The failure a worker reported (its exception still packed)."""
        return cls(reply.error, reply.position, reply.stage, f"in {reply.worker}")

    def for_caller(self, first_item: int, stop_item: int) -> BaseException:
        """The exception the caller sees, with a note naming the item or the stage.
        Raise it outside any ``except`` clause: its ``__context__`` is its own."""
        if self.position is not None:
            note = f"allcores: raised by item {first_item + self.position} of the input"
        else:
            note = f"allcores: failed {self.stage} for items {first_item}..{stop_item - 1}"
        error = self.error
        error.add_note(f"{note} ({self.where})")
        if self.where != "in the caller":
            # A KeyboardInterrupt that fn raised in a worker is that call's error, not a
            # Ctrl-C: the pool must not stop its workers for it (see Pool._run).
            error._allcores_from_worker = True
        return error


def chunk_values(outcome: ChunkResult, items: int) -> list:
    """The chunk's results, unpickled here (in the thread that asked for them) when
    they arrived pickled, and checked to hold one per item. A failure to unpickle is
    raised as a :class:`ChunkError`; a ``KeyboardInterrupt`` is let through (in the
    caller's thread it means Ctrl-C)."""
    if outcome.payload is None:
        return count_results(outcome.values, items)
    try:
        values = pickle.loads(outcome.payload)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        failure = ChunkError(exc, None, "unpickling the results", "in the caller")
    else:
        return count_results(values, items)
    raise failure
