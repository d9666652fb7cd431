"""Messages between the process backend's manager thread and its worker processes.

Small named classes, never positional tuples: each field says what it carries. They are
NamedTuples because those pickle about twice as fast as slotted dataclasses, and a
message crosses a pipe for every chunk. Payloads (items, results, exceptions) are pickled
bytes, so that a failure to pickle or unpickle them is caught by the side that can report
it, not by the pipe.
"""

from __future__ import annotations

from typing import NamedTuple


# --- parent -> worker ---------------------------------------------------------------------


class RunChunk(NamedTuple):
    """Run ``fn`` over the chunk's items and reply with ChunkDone or ChunkFailed."""

    chunk_id: int
    fn_id: bytes                 # content hash of the pickled function
    fn_payload: bytes | None     # the pickled function; None when the worker has it cached
    items_payload: bytes         # pickled list of items
    star: bool                   # call fn(*item) instead of fn(item)


class Stop(NamedTuple):
    """Finish: exit the worker loop cleanly."""


# --- worker -> parent ---------------------------------------------------------------------


class Ready(NamedTuple):
    """The worker started and its initializer (if any) succeeded."""

    pid: int


class InitFailed(NamedTuple):
    """The pool's initializer raised; the worker exits after sending this."""

    error: "RemoteException"


class ChunkDone(NamedTuple):
    chunk_id: int
    results_payload: bytes       # pickled list of results, one per item
    seconds: float               # how long running the items took
    started: float               # time.perf_counter() when they started: one clock for
                                 # every process on a machine (see allcores.insights)


class ChunkFailed(NamedTuple):
    chunk_id: int
    position: int | None         # index within the chunk of the item that raised, if any
    stage: str                   # "running", "unpickling the work", "pickling the results"
    error: "RemoteException"


class RemoteException(NamedTuple):
    """An exception raised in a worker, ready to travel: the pickled exception when it
    survives a pickle round trip, and always its type name, message and traceback text."""

    payload: bytes | None
    type_name: str
    message: str
    traceback_text: str
