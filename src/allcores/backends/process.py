"""The process backend: chunks run in worker processes, which never hang the caller.

Data flow (who owns what)::

    caller thread(s)                 manager thread (one per backend)       worker processes
    ----------------                 --------------------------------       ----------------
    submit() --pickle items-->       _idle: workers with nothing to do,
      a worker idles: hand the         published under _lock
        job to it (under _lock) =========================================> recv RunChunk
      else: append to _queue -->     _queue: deque[_Job] (under _lock)        run fn on items
                                     select(wake-up pipe, sockets, exits, deadline)
                                     a worker that replies gets the  ====> recv RunChunk
                                       next job (bytes queued on its
                                       Channel, written as it drains)
    future.result() <--set-------    ChunkDone / ChunkFailed          <==== send the reply
      (results still pickled: the    (read as bytes arrive; a partial
      caller's thread unpickles)      message waits for the rest; settled
                                      once its worker has its next job)
                                     a worker exited (pidfd/sentinel) -> note the lost run;
                                        requeue its job (retries) or fail it
                                        with WorkerCrashedError; start a new worker
                                     deadline passed: kill the worker ->
                                        ChunkTimeoutError; start a new worker

- The manager thread owns the workers, reads their sockets and settles the futures.
  Callers touch, under ``_lock``, only ``_queue``, ``_stop_request``, ``_spoiled`` and
  the workers listed in ``_idle``: a worker there is ready, has no job and nothing
  unsent. A caller that takes one out of the list makes its job the worker's under the
  lock (``_commit``), then sends it (a channel's sending side has a lock of its own):
  one thread switch and one wake-up fewer than through the manager, which learns of
  the job from its reply. The manager publishes ``_idle`` in the same critical section
  in which it empties ``_queue``, and takes a worker out of it before acting on it (its
  exit, a closed socket): a job is either handed to an idle worker or queued while none
  idles, never both, never neither. A caller interrupted half-way through a hand-off
  (Ctrl-C) lists the worker in ``_spoiled``: the manager replaces it, since what it was
  sent and what the manager knows may differ. Callers wake the manager (a hand-off
  that left bytes unsent or set a deadline, a stop request) through a non-blocking
  pipe (a full pipe means a wake-up is pending already). The manager starts every
  worker itself and lives as long as the backend (on Linux a fork child's death signal
  follows the thread that forked it).
- The pool's state is its :class:`~allcores._lifecycle.Lifecycle`, shared with the
  pool: the manager reads TERMINATED from it and writes BROKEN (the first cause only).
  ``_stopped`` (under ``_lock``) only says that the manager has exited: a job queued
  after that is refused at once instead of waiting forever.
- The manager never blocks on one worker: sockets are non-blocking, with a buffer each
  way (``allcores._channel``); a worker stopped with SIGSTOP in the middle of a reply
  holds up nobody, and ``timeout=`` and ``terminate()`` still act on it. It runs no user
  code: results reach callers as bytes, unpickled in the caller's thread
  (``allcores._execute.chunk_values``); futures it settles run their callbacks
  guarded (``allcores._futures``).
- A worker holds one chunk at a time. The manager thus knows which chunk a dead worker
  was running, and never leaves a chunk queued behind a slow one while another worker
  idles; a queued chunk stays cancellable until a worker takes it. (Sending the next
  chunk ahead would save a round trip per chunk, but a chunk already in a worker's
  socket can neither be cancelled nor moved to a worker that idles.) When a reply
  arrives, the worker gets its next job before the reply's future is settled: a caller
  woken first would hold the GIL while the worker waits.
- Deaths are seen at once, however the worker died: the manager waits on a pidfd per
  worker where the kernel has them (Linux), which fires when the process exits even if
  a child it forked still holds its socket and its multiprocessing sentinel; elsewhere
  on the process sentinel. It never polls with a timeout.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import multiprocessing
import os
import pickle
import selectors
import signal
import socket
import sys
import threading
import time
import types
from concurrent.futures import Future

import cloudpickle

from allcores import _messages as msg
from allcores._channel import Channel
from allcores._execute import (
    PICKLE_PROTOCOL,
    ChunkError,
    ChunkResult,
    FunctionCache,
    defined_atop_main,
    dumps,
    main_is_importable,
    unpack_exception,
)
from allcores._futures import ChunkFuture, settle
from allcores._lifecycle import Lifecycle, State
from allcores._main_guard import (
    MAIN_GUARD_EXIT_CODE,
    missing_guard_error,
    skip_missing_main_file,
)
from allcores._worker import worker_main
from allcores.backends import WORKER_PROCESS_NAME
from allcores.backends.base import Backend, Chunk
from allcores.errors import (
    ChunkTimeoutError,
    PoolClosedError,
    WorkerCrashedError,
    WorkerInitError,
    describe_exit,
)
from allcores.timeline import LostAttempt

# A worker that dies before it is ready this many times in a row means workers cannot
# start at all (a broken environment): fail the work instead of respawning forever.
MAX_CONSECUTIVE_START_FAILURES = 3
# Starting a worker that the system refuses is tried this many times, with pauses of
# START_RETRY_S, 2 x START_RETRY_S, ... (the manager waits: this happens only when the
# system is short of something).
START_ATTEMPTS = 3
START_RETRY_S = 0.05
# How long workers asked to stop get to exit before they are killed; also the longest
# the manager waits for a dead worker's exit status (the fork server reports it).
EXIT_GRACE_S = 2.0
# terminate() waits this long for the manager thread; past it (the manager is stuck in
# a user's future callback), it kills the worker processes itself and returns.
TERMINATE_JOIN_S = 5.0
# Where the selector cannot watch sockets for room to write (Windows), how often the
# manager retries a send that did not fit.
WRITE_RETRY_S = 0.01


def _forget_the_parents_fork_server() -> None:
    """In a child made by ``os.fork()``: multiprocessing's fork server (one per process,
    started by the first forkserver pool) is the parent's. The child cannot use it (asking
    whether it still runs raises ``ChildProcessError``: it is not the child's child) and
    must not keep it alive: forget it, and the child's first pool starts its own."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_pid", None) is None:
        return
    alive_fd = server._forkserver_alive_fd
    server._forkserver_pid = server._forkserver_address = server._forkserver_alive_fd = None
    server._lock = threading.Lock()  # another thread may have held it at the fork
    if alive_fd is not None:
        try:
            os.close(alive_fd)
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_fork_server)


class _Job:
    """One chunk on its way through the backend (owned by the manager once queued)."""

    __slots__ = ("chunk_id", "fn_id", "fn_payload", "items_payload", "star",
                 "first_item", "stop_item", "future", "attempts", "started", "sent_at", "lost")

    def __init__(self, chunk_id, fn_id, fn_payload, items_payload, star, chunk: Chunk):
        self.chunk_id = chunk_id
        self.fn_id = fn_id
        self.fn_payload = fn_payload
        self.items_payload = items_payload
        self.star = star
        self.first_item = chunk.first_item
        self.stop_item = chunk.stop_item
        self.future: ChunkFuture = ChunkFuture()
        self.attempts = 0          # times a worker started running it
        self.started = False       # future marked running (done once, when first sent)
        self.sent_at = 0.0         # perf_counter when last sent to a worker
        self.lost: tuple[LostAttempt, ...] = ()  # runs that ended with the worker's death


class _WorkerHandle:
    """The manager's view of one worker process."""

    __slots__ = ("process", "channel", "pidfd", "exit_watch", "label", "ready", "job",
                 "deadline", "functions", "doomed", "hung_up", "tasks", "retired")

    def __init__(self, process, channel: Channel, pidfd: int | None):
        self.process = process
        self.channel = channel
        self.pidfd = pidfd             # Linux: readable once the process has exited
        self.exit_watch = pidfd if pidfd is not None else process.sentinel
        self.label = f"process {process.pid}"  # where its chunks ran, for insights
        self.ready = False             # Ready received: it may be given work
        self.job: _Job | None = None   # the chunk it runs
        self.deadline: float | None = None  # when that chunk times out
        self.functions = FunctionCache()     # mirror of the worker's own function cache
        self.doomed = False            # killed on purpose (timeout): its death is no crash
        self.hung_up = False           # its socket closed: it is dying
        self.tasks = 0                 # chunks it ran to a reply
        self.retired = False           # asked to stop after max_tasks: already replaced

    @property
    def can_take_work(self) -> bool:
        """Ready, idle, and neither killed on purpose, retired nor dying (its socket
        closed)."""
        return (self.ready and self.job is None and not self.doomed and not self.hung_up
                and not self.retired)

    def kill(self, children: dict[int, list[int]] | None = None) -> None:
        """SIGKILL the worker, through the pidfd where there is one (it cannot hit a
        recycled pid), and every process it started that still runs (as loky's
        kill_process_tree does: a subprocess of a timed-out or terminated chunk must
        not live on). ``children``: a :func:`_children_by_parent` already read."""
        if children is None:
            children = _children_by_parent()
        descendants = _descendants(self.process.pid, children)
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                self.process.kill()
        except (OSError, ValueError):
            pass  # gone already
        for pid in descendants:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from /proc (Linux; elsewhere nothing is known)."""
    children: dict[int, list[int]] = {}
    if not sys.platform.startswith("linux"):
        return children
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    return children


def _descendants(pid: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


# Socket buffers for a worker's socket pair: a chunk of a few MB then crosses in a few
# writes, each a round of the manager's loop, instead of dozens (the default is ~200 kB).
SOCKET_BUFFER_BYTES = 4 << 20


def _widen(sock: socket.socket) -> None:
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        except OSError:
            pass  # the system's limit (net.core.wmem_max) applies: a smaller buffer


def _open_pidfd(pid: int) -> int | None:
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:  # an old kernel, or a sandbox that refuses the call
        return None


class _PreparedFunction:
    __slots__ = ("fn_id", "payload")

    def __init__(self, fn, payload: bytes | None = None):
        try:
            self.payload = payload or cloudpickle.dumps(fn, protocol=PICKLE_PROTOCOL)
        except BaseException as exc:
            exc.add_note("allcores: failed pickling the function (in the caller)")
            raise
        self.fn_id = hashlib.blake2b(self.payload, digest_size=16).digest()


# Functions that travel by reference (a function of an importable module, a builtin: the
# pickle only names it) are prepared once: cloudpickle takes ~20 us for a function even
# when all it writes is its name. Keyed by that name as plain pickle writes it; only
# where cloudpickle wrote exactly the same bytes. A function pickled by value (one from
# __main__, a closure, a lambda) is pickled anew for every map: what it captures (its
# globals, its cells) may have changed since.
_BY_REFERENCE_TYPES = (types.FunctionType, types.BuiltinFunctionType)
_BY_REFERENCE_MAX_BYTES = 512
_BY_REFERENCE_CACHE_SIZE = 256
_prepared_by_reference: dict[bytes, _PreparedFunction] = {}


def prepare_function(fn, workers_import_main: bool = False) -> _PreparedFunction:
    """``fn`` pickled for the workers (see _PreparedFunction), once if it travels by
    reference. A function of the caller's script travels by reference too where the
    workers import the script (spawn, forkserver: ``workers_import_main``) and find it
    there (``_execute.defined_atop_main``). Forked workers do not: they hold the script
    as it was when they were forked, maybe before the function was defined."""
    if workers_import_main and defined_atop_main(fn):
        return _PreparedFunction(fn, pickle.dumps(fn, PICKLE_PROTOCOL))
    name = None
    if type(fn) in _BY_REFERENCE_TYPES and getattr(fn, "__module__", None) not in (
            None, "__main__") and not _pickled_by_value(fn.__module__):
        try:  # a plain function pickles by name: no user code runs
            name = pickle.dumps(fn, PICKLE_PROTOCOL)
        except Exception:
            name = None
        if name is not None and len(name) <= _BY_REFERENCE_MAX_BYTES:
            prepared = _prepared_by_reference.get(name)
            if prepared is not None:
                return prepared
    prepared = _PreparedFunction(fn)
    if name is not None and prepared.payload == name:
        if len(_prepared_by_reference) >= _BY_REFERENCE_CACHE_SIZE:
            _prepared_by_reference.clear()
        _prepared_by_reference[name] = prepared
    return prepared


def _pickled_by_value(module: str) -> bool:
    """Whether cloudpickle was told to pickle ``module`` (or a package above it) by
    value (``cloudpickle.register_pickle_by_value``)."""
    registered = cloudpickle.list_registry_pickle_by_value()
    if not registered:
        return False
    parts = module.split(".")
    return any(".".join(parts[:i]) in registered for i in range(1, len(parts) + 1))


class _ReadyWatch:
    """Which sockets, exit watches and pipes are ready. On POSIX one selector lives as
    long as the backend (registering everything anew each round would cost more than
    the round's work); on Windows, ``multiprocessing.connection.wait`` (reads only)."""

    def __init__(self):
        self._selector = selectors.DefaultSelector() if os.name == "posix" else None
        self._objects: dict = {}   # object -> selector events

    @property
    def watches_writes(self) -> bool:
        return self._selector is not None

    def set(self, obj, *, read: bool = True, write: bool = False) -> None:
        events = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        old = self._objects.get(obj)
        if old == events:
            return
        if not events:
            self.remove(obj)
            return
        self._objects[obj] = events
        if self._selector is not None:
            if old is None:
                self._selector.register(obj, events)
            else:
                self._selector.modify(obj, events)

    def remove(self, obj) -> None:
        if self._objects.pop(obj, None) is not None and self._selector is not None:
            self._selector.unregister(obj)

    def wait(self, timeout: float | None) -> tuple[set, set]:
        """(ready to read, ready to write)."""
        if self._selector is None:
            from multiprocessing.connection import wait as wait_for_objects

            readable = [o for o, events in self._objects.items() if events & selectors.EVENT_READ]
            return set(wait_for_objects(readable, timeout)), set()
        readable, writable = set(), set()
        for key, events in self._selector.select(timeout):
            if events & selectors.EVENT_READ:
                readable.add(key.fileobj)
            if events & selectors.EVENT_WRITE:
                writable.add(key.fileobj)
        return readable, writable

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()


class ProcessBackend(Backend):
    name = "process"
    runs_in_caller_process = False
    supports_timeout = True
    # A round trip to a worker: pickling, two socket hops, the manager's and the
    # caller's wake-ups (0.1-0.3 ms measured on a 2-core machine).
    chunk_overhead_s = 1e-4
    option_names = ("start_method", "initializer", "initargs", "retries", "timeout",
                    "max_tasks")

    def __init__(self, workers: int, *, lifecycle: Lifecycle, start_method: str,
                 initializer=None, initargs=(), retries: int = 1,
                 timeout: float | None = None, max_tasks: int | None = None):
        self.workers = workers
        self.retries = retries
        self.timeout = timeout
        # A worker is replaced after running this many chunks (multiprocessing's
        # maxtasksperchild: a chunk is what it counts as a task); None: never.
        self.max_tasks = max_tasks
        self._lifecycle = lifecycle
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # Workers then fork from a server that has already imported allcores.
            self._context.set_forkserver_preload(["allcores._worker"])
        if start_method != "fork":
            skip_missing_main_file()
        # Workers that cannot import the caller's __main__ (no file: python -c, a REPL,
        # standard input) get objects of its classes by value (see _execute.dumps).
        self._main_by_value = start_method != "fork" and not main_is_importable()
        self._workers_import_main = start_method != "fork" and not self._main_by_value
        # The script's path, for workers started after the script's code has ended: the
        # interpreter then deletes __main__.__file__, multiprocessing no longer has them
        # import the script, and its functions (sent by reference) would be missing
        # there. Such a worker imports it itself (see _worker.worker_main).
        self._main_path = (getattr(sys.modules.get("__main__"), "__file__", None)
                           if self._workers_import_main else None)
        self._init_payload = (
            None if initializer is None
            else cloudpickle.dumps((initializer, tuple(initargs)), protocol=PICKLE_PROTOCOL)
        )
        self._chunk_ids = itertools.count()

        self._lock = threading.Lock()
        self._queue: collections.deque[_Job] = collections.deque()  # under _lock
        # None, "drain" (finish the queued work, then stop) or "now".
        self._stop_request: str | None = None                        # under _lock
        self._stopped = False                                        # under _lock
        # Ready workers with no job and nothing unsent, e.g. [<_WorkerHandle>]: a caller
        # may take one out and hand it a job itself. Empty while _queue is not.
        self._idle: list[_WorkerHandle] = []                         # under _lock
        # Workers whose hand-off a caller left half-done (Ctrl-C): replaced by the manager.
        self._spoiled: list[_WorkerHandle] = []                      # under _lock
        self._wakeup_reader, self._wakeup_writer = os.pipe()
        os.set_blocking(self._wakeup_reader, False)
        os.set_blocking(self._wakeup_writer, False)
        # Every worker gets the read end; only this process holds the write end, so its
        # death (however abrupt) closes the pipe and every worker exits (see _worker).
        self._lifeline_reader, self._lifeline_writer = self._context.Pipe(duplex=False)

        # Manager thread only:
        self._handles: list[_WorkerHandle] = []
        # Outcomes read this round, settled once the workers that sent them have their
        # next chunk (callers woken first would hold the GIL while the workers idle):
        # (future, ChunkResult or None, error or None).
        self._replied: list[tuple[Future, ChunkResult | None, BaseException | None]] = []
        self._watch = _ReadyWatch()
        self._start_failures = 0
        self._thread = threading.Thread(target=self._manage, name="allcores-manager",
                                        daemon=True)
        self._thread.start()

    # --- called by callers --------------------------------------------------------------

    def prepare(self, fn) -> _PreparedFunction:
        return prepare_function(fn, self._workers_import_main)

    def submit(self, prepared_fn: _PreparedFunction, chunk: Chunk, star: bool) -> Future:
        self._lifecycle.check(new_call=False)
        try:
            items_payload = dumps(chunk.items, main_by_value=self._main_by_value)
        except BaseException as exc:
            exc.add_note(f"allcores: failed pickling the items for items "
                         f"{chunk.first_item}..{chunk.stop_item - 1} (in the caller)")
            raise
        job = _Job(next(self._chunk_ids), prepared_fn.fn_id, prepared_fn.payload,
                   items_payload, star, chunk)
        handle = None
        try:
            with self._lock:
                if self._stopped:
                    raise (self._lifecycle.refusal(new_call=False)
                           or PoolClosedError("the pool's workers have stopped"))
                if not self._idle:  # every worker busy (or starting): the next free one
                    self._queue.append(job)
                    return job.future
                handle = self._idle.pop()
                job.started = job.future.set_running_or_notify_cancel()  # new: not cancelled
                task = self._commit(handle, job)
            # A worker idles: hand it the job from here, not through the manager.
            sent = self._send(handle, task)
            if not sent or handle.channel.wants_to_write or self.timeout is not None:
                self._wake()  # a broken socket, bytes left to write, a deadline to watch
        except BaseException:
            if handle is not None:  # interrupted half-way (Ctrl-C): see _spoil
                self._spoil(handle)
            raise
        return job.future

    def _spoil(self, handle: _WorkerHandle) -> None:
        """A caller was interrupted handing ``handle`` a job: the worker may have got a
        frame the manager does not know of, or none for the job the manager thinks it
        runs. The manager replaces it (see _replace_spoiled)."""
        with self._lock:
            handle.doomed = True
            self._spoiled.append(handle)
        self._wake()

    def shutdown(self, *, wait: bool) -> None:
        with self._lock:
            if self._stop_request != "now":
                self._stop_request = "drain" if wait else "now"
            self._wake()
        if threading.current_thread() is self._thread:
            return  # called from a callback the manager runs: it stops after this round
        if wait:
            self._thread.join()
            return
        self._thread.join(TERMINATE_JOIN_S)
        if self._thread.is_alive():  # stuck in a user's callback: stop the workers anyway
            children = _children_by_parent()
            for handle in list(self._handles):
                handle.kill(children)

    def _wake(self) -> None:
        """Wake the manager. Never blocks: a full pipe already holds a wake-up."""
        try:
            os.write(self._wakeup_writer, b"\0")
        except (BlockingIOError, OSError):
            pass

    # --- the manager thread -------------------------------------------------------------

    def _manage(self) -> None:
        try:
            self._watch.set(self._wakeup_reader)
            for _ in range(self.workers):
                self._add_worker()
            while self._step():
                pass
        except BaseException as exc:  # a bug here must fail the work, never hang it
            self._break(exc)
            raise
        finally:
            self._settle_replied()
            with self._lock:
                self._idle = []  # no caller hands anything to a worker from now on
                gently = self._stop_request == "drain"
            self._stop_workers(gently=gently and self._lifecycle.state is not State.BROKEN)
            with self._lock:  # from now on submit() refuses instead of queueing
                self._stopped = True
                leftover = list(self._queue)
                self._queue.clear()
            refusal = (self._lifecycle.refusal(new_call=False)
                       or PoolClosedError("the pool's workers have stopped"))
            self._fail(leftover, refusal)
            self._watch.close()
            os.close(self._wakeup_reader)
            os.close(self._wakeup_writer)
            self._lifeline_reader.close()
            self._lifeline_writer.close()

    def _step(self) -> bool:
        """One round of the manager loop; False once the backend is to stop."""
        state = self._lifecycle.state
        with self._lock:
            stop = self._stop_request
            ending = stop == "now" or state is State.TERMINATED or state is State.BROKEN
            if not ending:
                spoiled, self._spoiled = self._spoiled, []
                # Assigned and published together, so that a job submitted from now on
                # is either handed to a worker listed idle or queued while none is.
                assigned = self._assign_jobs()
                finished = stop == "drain" and not self._queue and all(
                    h.job is None for h in self._handles)
                if finished:
                    self._idle = []  # the workers stop: nothing more is handed to them
                unflushed = [h for h in self._handles
                             if not h.hung_up and h.channel.wants_to_write]
        if ending:
            self._fail_everything(self._lifecycle.refusal(new_call=False)
                                  or PoolClosedError("the pool was terminated"))
            return False
        self._send_assigned(assigned)
        for handle in spoiled:
            self._replace_spoiled(handle)
        for handle in unflushed:  # a caller's hand-off left bytes: write when there is room
            self._watch.set(handle.channel, write=True)
        if finished:
            return False

        readable, writable = self._watch.wait(self._seconds_to_wait())
        if self._wakeup_reader in readable:
            try:
                while os.read(self._wakeup_reader, 4096):
                    pass
            except BlockingIOError:
                pass
        for handle in list(self._handles):
            if handle.exit_watch in readable:
                self._on_exit(handle)
                continue
            if handle.channel in readable:
                self._receive(handle)
            if handle in self._handles and (handle.channel in writable
                                            or not self._watch.watches_writes):
                self._write(handle)
        if self._replied:
            try:
                with self._lock:  # the workers that replied get their next job first
                    assigned = self._assign_jobs()
                self._send_assigned(assigned)
            finally:
                self._settle_replied()
        if self.timeout is not None:
            self._enforce_deadlines()
        return True

    def _settle_replied(self) -> None:
        replied, self._replied = self._replied, []
        for future, result, error in replied:
            settle(future, result=result, error=error)

    def _add_worker(self) -> None:
        """Start one worker. A refusal may pass (a fork server that is restarting, a
        moment without free processes): try START_ATTEMPTS times. If the system still
        refuses (out of file descriptors, say), the pool is broken with a
        ``WorkerInitError`` (the cause chained): its work fails with it, and a default
        pool is replaced on the next call."""
        for attempt in range(START_ATTEMPTS):
            try:
                self._start_worker()
                return
            except Exception as exc:
                refusal = exc
            if attempt + 1 < START_ATTEMPTS:
                time.sleep(START_RETRY_S * 2 ** attempt)
        error = WorkerInitError(f"could not start a worker process: {refusal}")
        error.__cause__ = refusal
        self._break(error)

    def _start_worker(self) -> None:
        parent_end, child_end = socket.socketpair()
        _widen(parent_end)
        _widen(child_end)
        try:
            process = self._context.Process(
                target=worker_main,
                args=(child_end, self._lifeline_reader, os.getpid(), self._init_payload,
                      self._main_path),
                name=WORKER_PROCESS_NAME, daemon=False,
            )
            process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        handle = _WorkerHandle(process, Channel(parent_end), _open_pidfd(process.pid))
        self._handles.append(handle)
        self._watch.set(handle.channel)
        self._watch.set(handle.exit_watch)

    def _next_job(self) -> _Job | None:
        """(Under ``_lock``.) The next queued job not cancelled, marked running."""
        while self._queue:
            job = self._queue.popleft()
            if job.started or job.future.set_running_or_notify_cancel():
                job.started = True
                return job
            # cancelled while queued: drop it
        return None

    def _assign_jobs(self) -> list[tuple[_WorkerHandle, msg.RunChunk]]:
        """(Under ``_lock``.) Give queued jobs to the workers that can take one, and list
        the ones left idle in ``_idle``. Returns what to send to whom: call
        :meth:`_send_assigned` once the lock is released."""
        idle, assigned = [], []
        for handle in self._handles:
            if not handle.can_take_work:
                continue
            job = self._next_job()
            if job is None:
                idle.append(handle)
            else:
                assigned.append((handle, self._commit(handle, job)))
        self._idle = idle
        return assigned

    def _send_assigned(self, assigned: list[tuple[_WorkerHandle, msg.RunChunk]]) -> None:
        for handle, task in assigned:
            if self._send(handle, task):
                self._watch.set(handle.channel, write=handle.channel.wants_to_write)
            else:
                self._hang_up(handle)  # its exit, seen next, accounts for its job

    def _commit(self, handle: _WorkerHandle, job: _Job) -> msg.RunChunk:
        """(Under ``_lock``, ``handle`` idle and out of ``_idle``: the manager, or a caller
        handing off.) Make ``job`` the worker's; return the message that sends it. From
        here only the thread that committed it sends to the worker, until it is sent."""
        send_function = job.fn_id not in handle.functions
        handle.functions.use(job.fn_id)
        job.attempts += 1
        job.sent_at = time.perf_counter()
        if self.timeout is not None:
            handle.deadline = time.monotonic() + self.timeout
        handle.job = job
        return msg.RunChunk(job.chunk_id, job.fn_id, job.fn_payload if send_function else None,
                            job.items_payload, job.star)

    @staticmethod
    def _send(handle: _WorkerHandle, task: msg.RunChunk) -> bool:
        """Send ``task`` as far as the worker's socket takes it now; False if the socket
        broke (the worker is dying: its exit accounts for its job)."""
        try:
            handle.channel.send(task)
        except OSError:
            return False
        return True

    def _replace_spoiled(self, handle: _WorkerHandle) -> None:
        """A caller was interrupted handing ``handle`` a job: kill the worker (its exit,
        a death on purpose, starts a replacement) and fail the job, which nobody awaits:
        the interrupted submit() never returned its future."""
        job, handle.job, handle.deadline = handle.job, None, None
        handle.kill()
        if job is not None:
            settle(job.future, error=PoolClosedError("interrupted while being submitted"))

    def _write(self, handle: _WorkerHandle) -> None:
        """Write what is still queued for ``handle`` as far as the socket takes it;
        watch the socket for room if some is left."""
        if handle.hung_up:
            return
        try:
            handle.channel.flush()
        except OSError:
            self._hang_up(handle)  # its exit, seen next, accounts for its job
            return
        self._watch.set(handle.channel, write=handle.channel.wants_to_write)

    def _receive(self, handle: _WorkerHandle) -> None:
        replies, closed = handle.channel.receive()
        for reply in replies:
            self._handle_reply(handle, reply)
        if closed:
            self._hang_up(handle)

    def _hang_up(self, handle: _WorkerHandle) -> None:
        """Its socket closed or broke: a live worker never does that, so it is dying.
        Make sure it dies; its exit (watched) then accounts for its job."""
        if not handle.hung_up:
            with self._lock:
                handle.hung_up = True
                if handle in self._idle:
                    self._idle.remove(handle)
            self._watch.remove(handle.channel)
            handle.kill()

    def _handle_reply(self, handle: _WorkerHandle, reply) -> None:
        if isinstance(reply, msg.Ready):
            handle.ready = True
            self._start_failures = 0
        elif isinstance(reply, msg.InitFailed):
            error = WorkerInitError("the pool's initializer raised in a worker")
            error.__cause__ = unpack_exception(reply.error)
            self._break(error)
        elif isinstance(reply, (msg.ChunkDone, msg.ChunkFailed)):
            job = handle.job
            if job is None or job.chunk_id != reply.chunk_id:
                return  # a late reply for a chunk that already failed (timed out)
            handle.job, handle.deadline = None, None
            if job.future.done():
                return
            if isinstance(reply, msg.ChunkDone):
                self._replied.append((job.future, ChunkResult(
                    None, reply.seconds, reply.started, handle.label, job.lost,
                    reply.results_payload, len(job.items_payload)), None))
            else:
                self._replied.append((job.future, None, ChunkError.from_reply(reply)))
            handle.tasks += 1
            if self.max_tasks is not None and handle.tasks >= self.max_tasks:
                self._retire(handle)

    def _retire(self, handle: _WorkerHandle) -> None:
        """``handle`` ran ``max_tasks`` chunks: ask it to stop (its exit is no crash) and
        start its replacement now, not once it has exited: the pool keeps its size."""
        handle.retired = True
        try:
            handle.channel.send(msg.Stop())
        except OSError:
            self._hang_up(handle)
        else:
            self._watch.set(handle.channel, write=handle.channel.wants_to_write)
        if self._wants_replacements():
            self._add_worker()

    def _wants_replacements(self) -> bool:
        """Whether a worker that goes is replaced: not once the pool is stopping, unless
        queued work still needs one (a close() that lets queued work finish)."""
        with self._lock:
            replace = self._stop_request is None or (
                self._stop_request == "drain" and bool(self._queue))
        return replace and self._lifecycle.state in (State.OPEN, State.CLOSED)

    def _on_exit(self, handle: _WorkerHandle) -> None:
        """The worker's process ended: account for its chunk, and replace it."""
        with self._lock:  # from now on no caller hands it anything
            if handle in self._idle:
                self._idle.remove(handle)
        if not handle.hung_up and not handle.doomed:
            self._receive(handle)  # replies it sent just before dying still count
        exitcode = handle.process.exitcode
        if exitcode is None:  # the fork server reports exits a moment later
            handle.process.join(EXIT_GRACE_S)
            exitcode = handle.process.exitcode
        self._forget(handle)

        job = handle.job
        if job is not None and not job.future.done():
            job.lost += (LostAttempt(handle.label, job.sent_at, time.perf_counter()),)
            if job.attempts <= self.retries:
                with self._lock:
                    self._queue.appendleft(job)  # run it again, before anything else
            else:
                settle(job.future, error=WorkerCrashedError(
                    job.first_item, job.stop_item, exitcode, job.attempts))
        if not handle.ready and not handle.doomed:
            self._start_failures += 1
            if exitcode == MAIN_GUARD_EXIT_CODE:
                self._break(missing_guard_error())
            elif self._start_failures >= MAX_CONSECUTIVE_START_FAILURES:
                self._break(WorkerInitError(
                    f"worker processes die while starting ({describe_exit(exitcode)}, "
                    f"{self._start_failures} times in a row)"))
        if not handle.retired and self._wants_replacements():
            self._add_worker()  # (a retired worker was replaced when it retired)

    def _forget(self, handle: _WorkerHandle) -> None:
        """Reap the process and close everything of it (it has exited or is killed)."""
        self._watch.remove(handle.channel)  # no-op once hung up
        self._watch.remove(handle.exit_watch)
        handle.channel.close()
        if handle.pidfd is not None:
            os.close(handle.pidfd)
        if handle.process.exitcode is not None:
            handle.process.close()
        self._handles.remove(handle)

    def _seconds_to_wait(self) -> float | None:
        wait = None
        if self.timeout is not None:
            deadlines = [h.deadline for h in self._handles if h.deadline is not None]
            wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        if not self._watch.watches_writes and any(h.channel.wants_to_write
                                                  for h in self._handles):
            wait = WRITE_RETRY_S if wait is None else min(wait, WRITE_RETRY_S)
        return wait

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for handle in self._handles:
            if handle.deadline is None or handle.deadline > now or handle.job is None:
                continue
            job, handle.job, handle.deadline = handle.job, None, None
            handle.doomed = True
            handle.kill()  # its exit is seen next round; a new worker replaces it
            settle(job.future, error=ChunkTimeoutError(
                f"items {job.first_item}..{job.stop_item - 1} ran longer than the pool's "
                f"timeout of {self.timeout} s; their worker was killed and replaced"))

    def _break(self, error: BaseException) -> None:
        """Workers cannot run anything: the pool is BROKEN (the first cause is kept),
        all work fails with that cause, and the manager stops."""
        self._lifecycle.break_with(error)
        self._fail_everything(self._lifecycle.error or error)

    def _fail_everything(self, error: BaseException) -> None:
        with self._lock:
            jobs = list(self._queue)
            self._queue.clear()
            self._idle = []  # no caller hands anything to a worker from now on
        for handle in self._handles:
            if handle.job is not None:
                jobs.append(handle.job)
            handle.job = None
            handle.deadline = None
        self._fail(jobs, error)

    @staticmethod
    def _fail(jobs, error: BaseException) -> None:
        for job in jobs:
            if not job.started:
                job.started = job.future.set_running_or_notify_cancel()
            if job.started:
                settle(job.future, error=error)

    def _stop_workers(self, *, gently: bool) -> None:
        """Kill the workers, or (``gently``) ask idle ones to stop and give them
        EXIT_GRACE_S to exit before killing them; reap them all: nothing is left
        behind."""
        children = _children_by_parent()
        for handle in self._handles:
            # One still starting reads the Stop after its initializer and its Ready.
            if gently and handle.job is None and not handle.hung_up:
                try:
                    handle.channel.send(msg.Stop())
                except OSError:
                    handle.kill(children)
            else:
                handle.kill(children)
        deadline = time.monotonic() + EXIT_GRACE_S
        for handle in list(self._handles):
            handle.process.join(max(0.0, deadline - time.monotonic()))
            if handle.process.exitcode is None:
                handle.kill()
                handle.process.join()
            self._forget(handle)
