"""The main loop of a process-backend worker.

A worker owns one end of a socket pair to its pool's manager thread (framed messages:
``allcores._channel``). It receives ``RunChunk`` messages one at a time, runs the chunk
(``allcores._execute.run_chunk``: anything the function or a user object raises,
``SystemExit`` included, becomes the reply) and replies with ``ChunkDone`` or
``ChunkFailed`` before reading the next one. It never outlives its pool:

- it ignores SIGINT: Ctrl-C is the caller's to handle (the pool then kills its workers);
- a thread watches its *lifeline*, a pipe whose only writer is the caller: end-of-file
  there means the caller is gone (even by ``kill -9``), and the worker exits at once,
  in the middle of a chunk too. This is what works under forkserver, where the parent
  of a worker is the fork server, which itself lives as long as any worker does. Where
  the kernel offers pidfds, the thread watches the caller's process itself as well;
- on Linux it also asks the kernel for SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``): with the fork start method the lifeline is inherited by
  every later child, and the parent is the caller itself;
- end-of-file on its socket (the pool is gone) ends the loop.

This module is imported by the forkserver ahead of time, and by every spawned worker
before its first chunk, so it imports little: the package's ``__init__`` loads its public
names on first use, and a worker loads numpy or the compiled kernels only when a task's
function needs them (``tests/test_worker_imports.py``).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading

from allcores import _channel
from allcores import _messages as msg
from allcores._execute import FunctionCache, pack_exception, run_chunk


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
            # poll(), not select(): select() refuses descriptors past FD_SETSIZE (1024),
            # which a worker forked from a caller with many open files inherits.
            watched = select.poll()
            watched.register(lifeline.fileno(), select.POLLIN)
            if caller is not None:
                watched.register(caller, select.POLLIN)
            while not watched.poll():  # readable: EOF, or the caller exited
                pass
        except (OSError, ValueError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="allcores-lifeline", daemon=True).start()


def _import_the_callers_script(main_path: str) -> None:
    """Import the caller's script as ``__main__``, as multiprocessing does for a worker
    started while the script runs. A worker started after the script's code has ended
    (the interpreter then drops ``__main__.__file__``, and multiprocessing no longer
    passes the path on) would otherwise miss the script's functions, which travel by
    reference."""
    import multiprocessing
    from multiprocessing import spawn

    me = multiprocessing.current_process()
    me._inheriting = True  # as multiprocessing marks it: a script's allcores calls refuse
    try:
        spawn._fixup_main_from_path(main_path)
    finally:
        del me._inheriting


def worker_main(sock, lifeline, caller_pid: int, init_payload: bytes | None,
                main_path: str | None = None) -> None:
    """Entry point of a worker process (the target of ``multiprocessing.Process``).
    ``main_path``: the caller's script, for its functions (see
    _import_the_callers_script)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_when_caller_dies(lifeline, caller_pid)
    _die_with_parent()
    if main_path is not None and getattr(sys.modules.get("__main__"), "__file__",
                                         None) is None:
        _import_the_callers_script(main_path)
    if init_payload is not None:
        import pickle

        try:
            initializer, initargs = pickle.loads(init_payload)
            initializer(*initargs)
        except BaseException as exc:
            _channel.send(sock, msg.InitFailed(pack_exception(exc)))
            return
    _channel.send(sock, msg.Ready(os.getpid()))
    functions = FunctionCache()
    lane, where = f"process {os.getpid()}", f"worker process {os.getpid()}"
    while True:
        try:
            task = _channel.receive(sock)
        except (EOFError, OSError):
            return  # the pool is gone
        if isinstance(task, msg.Stop):
            return
        _channel.send(sock, run_chunk(task, functions, lane=lane, worker=where))
