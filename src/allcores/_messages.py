"""The worker protocol: what the caller sends to run a chunk elsewhere, and what comes back.

One protocol for every backend that runs chunks in other processes (the process
backend's workers and Dask's): a :class:`RunChunk` goes out; a :class:`ChunkDone` or a
:class:`ChunkFailed` comes back (see ``allcores._execute.run_chunk``, which both run).
The process backend adds its own small control messages (``Ready``, ``InitFailed``,
``Stop``).

Small named classes, never positional tuples: each field says what it carries. They are
NamedTuples because those pickle about twice as fast as slotted dataclasses, and a
message crosses a pipe for every chunk. Payloads (the function, items, results,
exceptions) are pickled bytes, so that a failure to pickle or unpickle them is caught by
the side that can report it, with the stage it happened in, not by the transport.
"""

from __future__ import annotations

from typing import NamedTuple

# --- caller -> worker ---------------------------------------------------------------------


class RunChunk(NamedTuple):
    """Run ``fn`` over the chunk's items and reply with ChunkDone or ChunkFailed."""

    chunk_id: int
    fn_id: bytes                 # content hash of the pickled function
    fn_payload: bytes | None     # the pickled function; None when the worker has it cached
    items_payload: bytes         # pickled list of items
    star: bool                   # call fn(*item) instead of fn(item)


class Stop(NamedTuple):
    """Finish: exit the worker loop cleanly."""


# --- worker -> caller ---------------------------------------------------------------------


class Ready(NamedTuple):
    """The worker started and its initializer (if any) succeeded."""

    pid: int


class InitFailed(NamedTuple):
    """The pool's initializer raised; the worker exits after sending this."""

    error: RemoteException


class ChunkDone(NamedTuple):
    chunk_id: int
    results_payload: bytes       # pickled list of results, one per item (the caller checks)
    seconds: float               # how long running the items took
    started: float               # when they started: time.perf_counter() for the process
                                 # backend (one clock for every process on a machine),
                                 # time.time() from Dask workers (see allcores.timeline)
    worker: str                  # where it ran, e.g. "process 1234"


class ChunkFailed(NamedTuple):
    chunk_id: int
    position: int | None         # index within the chunk of the item that raised, if any
    stage: str                   # see STAGES
    error: RemoteException
    worker: str                  # where it failed, e.g. "worker process 1234"


# What a chunk's failure may be blamed on, in the order a chunk goes through them.
STAGES = (
    "pickling the function",     # in the caller
    "pickling the items",        # in the caller
    "unpickling the function",   # in the worker
    "unpickling the items",      # in the worker
    "running",                   # fn raised on the item at ``position``
    "pickling the results",      # in the worker
    "unpickling the results",    # in the caller
)


class RemoteException(NamedTuple):
    """An exception raised in a worker, ready to travel: the pickled exception when it
    survives a pickle round trip, and always its type name, message and traceback text."""

    payload: bytes | None
    type_name: str
    message: str
    traceback_text: str
