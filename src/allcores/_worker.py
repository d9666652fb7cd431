"""The main loop of a process-backend worker.

A worker owns one end of a duplex pipe to its pool's manager thread. It receives
``RunChunk`` messages one at a time, runs the chunk, and replies with ``ChunkDone`` or
``ChunkFailed`` before reading the next one. It never outlives its pool:

- it ignores SIGINT: Ctrl-C is the caller's to handle (the pool then kills its workers);
- a thread watches its *lifeline*, a pipe whose only writer is the caller: end-of-file
  there means the caller is gone (even by ``kill -9``), and the worker exits at once,
  in the middle of a chunk too. This is what works under forkserver, where the parent
  of a worker is the fork server, which itself lives as long as any worker does;
- on Linux it also asks the kernel for SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``): with the fork start method the lifeline is inherited by
  every later child, and the parent is the caller itself;
- end-of-file on its task pipe (the pool is gone) ends the loop.

This module is imported by the forkserver ahead of time, so it imports little.
"""

from __future__ import annotations

import collections
import os
import pickle
import select
import signal
import sys
import threading

from allcores import _messages as msg
from allcores._execute import ItemError, dumps, pack_exception, run_items

# How many distinct functions a worker keeps unpickled. The manager mirrors this cache
# (same size, same order of use) to know when it must send a function again.
FUNCTION_CACHE_SIZE = 16


class FunctionCache:
    """A least-recently-used map from function id to function, bounded in size.

    Both sides of the pipe keep one with the same size and feed it the same ids in
    the same order, so the manager knows exactly which functions a worker still has.
    """

    def __init__(self, size: int = FUNCTION_CACHE_SIZE):
        self.size = size
        self._entries: collections.OrderedDict[bytes, object] = collections.OrderedDict()

    def __contains__(self, fn_id: bytes) -> bool:
        return fn_id in self._entries

    def use(self, fn_id: bytes, value: object = None) -> object:
        """Mark ``fn_id`` as just used, adding it with ``value`` if it is new."""
        if fn_id in self._entries:
            self._entries.move_to_end(fn_id)
            return self._entries[fn_id]
        self._entries[fn_id] = value
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


class _Unloadable:
    """Cached in place of a function that failed to unpickle, so that every chunk that
    uses it fails the same way (the manager will not send it again)."""

    def __init__(self, error: Exception):
        self.error = error


def _load_function(task: msg.RunChunk, functions: FunctionCache):
    if task.fn_payload is not None:
        try:
            loaded = pickle.loads(task.fn_payload)
        except Exception as exc:
            loaded = _Unloadable(exc)
        functions.use(task.fn_id, loaded)
    fn = functions.use(task.fn_id)
    if isinstance(fn, _Unloadable):
        raise fn.error
    if fn is None:
        raise RuntimeError("allcores internal error: the worker lost the function to run")
    return fn


def _exit_when_caller_dies(lifeline, caller_pid: int) -> None:
    # Where the kernel offers a pidfd, watch the caller's process itself: the lifeline's
    # write end is inherited by any child the caller forks later (a multiprocessing.Pool
    # with the fork start method, say), and keeps the pipe open while such a child lives.
    caller = None
    if hasattr(os, "pidfd_open"):
        try:
            caller = os.pidfd_open(caller_pid)
        except ProcessLookupError:
            os._exit(1)  # the caller is already gone
        except OSError:
            caller = None  # an older kernel: the lifeline alone will do

    def watch() -> None:
        try:
            if caller is not None:
                select.select([lifeline, caller], [], [])  # readable: EOF, or exited
            else:
                lifeline.recv_bytes()  # nothing is ever sent: this returns only at EOF
        except (EOFError, OSError, ValueError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="allcores-lifeline", daemon=True).start()


def _run_chunk(task: msg.RunChunk, functions: FunctionCache):
    try:
        fn = _load_function(task, functions)
        items = pickle.loads(task.items_payload)
    except Exception as exc:
        return msg.ChunkFailed(task.chunk_id, None, "unpickling the work", pack_exception(exc))
    try:
        outcome = run_items(fn, items, task.star)
    except ItemError as failure:
        return msg.ChunkFailed(task.chunk_id, failure.position, "running",
                               pack_exception(failure.error))
    try:
        return msg.ChunkDone(task.chunk_id, dumps(outcome.values), outcome.seconds,
                             outcome.started)
    except Exception as exc:
        return msg.ChunkFailed(task.chunk_id, None, "pickling the results", pack_exception(exc))


def worker_main(conn, lifeline, caller_pid: int, init_payload: bytes | None) -> None:
    """Entry point of a worker process (the target of ``multiprocessing.Process``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_when_caller_dies(lifeline, caller_pid)
    _die_with_parent()
    if init_payload is not None:
        try:
            initializer, initargs = pickle.loads(init_payload)
            initializer(*initargs)
        except Exception as exc:
            conn.send(msg.InitFailed(pack_exception(exc)))
            return
    conn.send(msg.Ready(os.getpid()))
    functions = FunctionCache()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the pool is gone
        if isinstance(task, msg.Stop):
            return
        conn.send(_run_chunk(task, functions))
