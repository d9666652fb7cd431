"""The process backend: chunks run in worker processes, which never hang the caller.

Data flow (who owns what)::

    caller thread(s)                 manager thread (one per backend)       worker processes
    ----------------                 --------------------------------       ----------------
    submit() --pickle items-->       _queue: deque[_Job] (under _lock)
              --append, wake--->     select(wakeup, pipes, sentinels, deadline)
                                     an idle, ready worker gets the  ====> recv RunChunk
                                       next job                              run fn on items
    future.result() <--set-------    ChunkDone / ChunkFailed          <==== send the reply
                                     sentinel fired: the worker died -> note the lost run;
                                        requeue its job (retries) or fail it
                                        with WorkerCrashedError; start a new worker
                                     deadline passed: kill the worker ->
                                        ChunkTimeoutError; start a new worker

- The manager thread alone touches workers, pipes and the results of futures. Callers
  only append to ``_queue`` and change ``_state``, under ``_lock``, and wake the manager
  through a pipe. The manager starts every worker itself and lives as long as the
  backend (on Linux a fork child's death signal follows the thread that forked it).
- A worker holds one chunk at a time. The manager thus knows which chunk a dead worker
  was running, never blocks sending to a busy worker, and never leaves a chunk queued
  behind a slow one while another worker idles. (Sending the next chunk ahead would
  save one round trip per chunk, about 5 us here: measured, it was not worth that.)
- Crashes are seen at once: the manager waits on every worker's process sentinel next
  to its pipe; it never polls with a timeout.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import itertools
import multiprocessing
import os
import pickle
import selectors
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import wait as wait_for_objects

import cloudpickle

from allcores import _messages as msg
from allcores._execute import (
    PICKLE_PROTOCOL,
    ChunkError,
    ChunkResult,
    dumps,
    unpack_exception,
)
from allcores._worker import FunctionCache, worker_main
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
# After a worker's pipe closes, how long to wait for its process to exit before killing it.
EXIT_GRACE_S = 2.0


class _State(enum.Enum):
    RUNNING = "running"
    CLOSING = "closing"          # finish the queued work, then stop
    TERMINATING = "terminating"  # stop now
    STOPPED = "stopped"


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
        self.future: Future = Future()
        self.attempts = 0          # times a worker started running it
        self.started = False       # future marked running (done once, when first sent)
        self.sent_at = 0.0         # perf_counter when last sent to a worker
        self.lost: tuple[LostAttempt, ...] = ()  # runs that ended with the worker's death


class _WorkerHandle:
    """The manager's view of one worker process."""

    __slots__ = ("process", "conn", "label", "ready", "job", "deadline", "functions", "doomed")

    def __init__(self, process, conn):
        self.process = process
        self.conn = conn
        self.label = f"process {process.pid}"  # where its chunks ran, for insights
        self.ready = False             # Ready received: it may be given work
        self.job: _Job | None = None   # the chunk it runs
        self.deadline: float | None = None  # when that chunk times out
        self.functions = FunctionCache()     # mirror of the worker's own function cache
        self.doomed = False            # killed on purpose (timeout): its death is no crash


class _PreparedFunction:
    __slots__ = ("fn_id", "payload")

    def __init__(self, fn):
        self.payload = cloudpickle.dumps(fn, protocol=PICKLE_PROTOCOL)
        self.fn_id = hashlib.blake2b(self.payload, digest_size=16).digest()


class _ReadyWatch:
    """Which pipes and process sentinels are ready to read. On POSIX one selector lives
    as long as the backend (registering everything anew each round would cost more than
    the round's work); on Windows, ``multiprocessing.connection.wait``."""

    def __init__(self):
        self._selector = selectors.DefaultSelector() if os.name == "posix" else None
        self._objects: set = set()

    def add(self, obj) -> None:
        self._objects.add(obj)
        if self._selector is not None:
            self._selector.register(obj, selectors.EVENT_READ)

    def remove(self, obj) -> None:
        self._objects.discard(obj)
        if self._selector is not None:
            self._selector.unregister(obj)

    def wait(self, timeout: float | None) -> set:
        if self._selector is None:
            return set(wait_for_objects(list(self._objects), timeout))
        return {key.fileobj for key, _ in self._selector.select(timeout)}

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()


class ProcessBackend(Backend):
    name = "process"
    runs_in_caller_process = False
    supports_timeout = True
    option_names = ("start_method", "initializer", "initargs", "retries", "timeout")

    def __init__(self, workers: int, *, start_method: str, initializer=None, initargs=(),
                 retries: int = 1, timeout: float | None = None):
        self.workers = workers
        self.retries = retries
        self.timeout = timeout
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # Workers then fork from a server that has already imported allcores.
            self._context.set_forkserver_preload(["allcores._worker"])
        self._init_payload = (
            None if initializer is None
            else cloudpickle.dumps((initializer, tuple(initargs)), protocol=PICKLE_PROTOCOL)
        )
        self._chunk_ids = itertools.count()

        self._lock = threading.Lock()
        self._queue: collections.deque[_Job] = collections.deque()  # under _lock
        self._state = _State.RUNNING                                 # under _lock
        self._broken: BaseException | None = None                    # under _lock
        # Whether a queued job could start at once (some ready worker has nothing to do);
        # if not, the manager will look at the queue anyway when the next reply arrives,
        # and callers need not wake it.
        self._worker_idle = False                                    # under _lock
        self._wake_pending = False                                   # under _lock
        self._wakeup_reader, self._wakeup_writer = multiprocessing.Pipe(duplex=False)
        # Every worker gets the read end; only this process holds the write end, so its
        # death (however abrupt) closes the pipe and every worker exits (see _worker).
        self._lifeline_reader, self._lifeline_writer = self._context.Pipe(duplex=False)

        # Manager thread only:
        self._handles: list[_WorkerHandle] = []
        self._watch = _ReadyWatch()
        self._start_failures = 0
        self._thread = threading.Thread(target=self._manage, name="allcores-manager",
                                        daemon=True)
        self._thread.start()

    # --- called by callers --------------------------------------------------------------

    def prepare(self, fn) -> _PreparedFunction:
        return _PreparedFunction(fn)

    def submit(self, prepared_fn: _PreparedFunction, chunk: Chunk, star: bool) -> Future:
        items_payload = dumps(chunk.items)
        job = _Job(next(self._chunk_ids), prepared_fn.fn_id, prepared_fn.payload,
                   items_payload, star, chunk)
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._state is not _State.RUNNING:
                raise PoolClosedError("the pool is closed")
            self._queue.append(job)
            if self._worker_idle:
                self._wake()
        return job.future

    def shutdown(self, *, wait: bool) -> None:
        with self._lock:
            if self._state is _State.RUNNING or (not wait and self._state is _State.CLOSING):
                self._state = _State.CLOSING if wait else _State.TERMINATING
                self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _wake(self) -> None:
        """Wake the manager (call with _lock held). At most one byte sits in the pipe,
        so this never blocks on a full pipe."""
        if not self._wake_pending:
            self._wake_pending = True
            self._wakeup_writer.send_bytes(b"")

    # --- the manager thread -------------------------------------------------------------

    def _manage(self) -> None:
        try:
            self._watch.add(self._wakeup_reader)
            for _ in range(self.workers):
                self._start_worker()
            while self._step():
                pass
        except BaseException as exc:  # a bug here must fail the work, never hang it
            self._break(exc)
            raise
        finally:
            self._stop_workers(kill=True)
            with self._lock:  # no caller is inside _wake(), and none will enter it again
                self._state = _State.STOPPED
                self._wakeup_writer.close()
            self._watch.close()
            self._wakeup_reader.close()
            self._lifeline_reader.close()
            self._lifeline_writer.close()

    def _step(self) -> bool:
        """One round of the manager loop; False once the backend has stopped."""
        with self._lock:
            state = self._state
        if state is _State.TERMINATING:
            self._fail_everything(PoolClosedError("the pool was terminated"))
            return self._finish(kill=True)
        self._assign_jobs()
        with self._lock:
            # Published together with the queue check, so that a job appended from now on
            # either sees an idle worker and wakes us, or finds every worker busy.
            self._worker_idle = any(h.ready and h.job is None and not h.doomed
                                    for h in self._handles)
            more_to_assign = self._worker_idle and bool(self._queue)
            finished = state is _State.CLOSING and not self._queue and all(
                h.job is None for h in self._handles)
        if finished:
            return self._finish(kill=False)
        if more_to_assign:
            return True

        ready = self._watch.wait(self._seconds_to_next_deadline())
        if self._wakeup_reader in ready:
            with self._lock:
                self._wake_pending = False
                while self._wakeup_reader.poll():
                    self._wakeup_reader.recv_bytes()
        for handle in list(self._handles):
            if handle.process.sentinel in ready:
                self._on_exit(handle)
            elif handle.conn in ready:
                self._receive(handle)
        self._enforce_deadlines()
        return True

    def _finish(self, *, kill: bool) -> bool:
        self._stop_workers(kill=kill)
        with self._lock:
            self._state = _State.STOPPED
        return False

    def _start_worker(self) -> None:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(child_conn, self._lifeline_reader, os.getpid(), self._init_payload),
            name=WORKER_PROCESS_NAME, daemon=False,
        )
        process.start()
        child_conn.close()
        handle = _WorkerHandle(process, parent_conn)
        self._handles.append(handle)
        self._watch.add(handle.conn)
        self._watch.add(handle.process.sentinel)

    def _next_job(self) -> _Job | None:
        with self._lock:
            while self._queue:
                job = self._queue.popleft()
                if job.started or job.future.set_running_or_notify_cancel():
                    job.started = True
                    return job
                # cancelled while queued: drop it
        return None

    def _assign_jobs(self) -> None:
        for handle in self._handles:
            if not handle.ready or handle.job is not None or handle.doomed:
                continue
            job = self._next_job()
            if job is None:
                return
            send_function = job.fn_id not in handle.functions
            task = msg.RunChunk(job.chunk_id, job.fn_id,
                                job.fn_payload if send_function else None,
                                job.items_payload, job.star)
            try:
                handle.conn.send(task)
            except OSError:
                # The worker died after its Ready; its sentinel will tell.
                with self._lock:
                    self._queue.appendleft(job)
                handle.doomed = True
                continue
            handle.functions.use(job.fn_id)
            handle.job = job
            job.attempts += 1
            job.sent_at = time.perf_counter()
            if self.timeout is not None:
                handle.deadline = time.monotonic() + self.timeout

    def _receive(self, handle: _WorkerHandle) -> None:
        try:
            reply = handle.conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            self._on_exit(handle)  # the worker is dying: its pipe broke
        else:
            self._handle_reply(handle, reply)

    def _handle_reply(self, handle: _WorkerHandle, reply) -> None:
        if isinstance(reply, msg.Ready):
            handle.ready = True
            self._start_failures = 0
        elif isinstance(reply, msg.InitFailed):
            error = WorkerInitError("the pool's initializer raised in a worker")
            error.__cause__ = unpack_exception(reply.error)
            self._break(error)
        elif isinstance(reply, (msg.ChunkDone, msg.ChunkFailed)):
            job, handle.job, handle.deadline = handle.job, None, None
            if job is None or job.chunk_id != reply.chunk_id or job.future.done():
                return  # a late reply for a chunk that already failed (timed out)
            if isinstance(reply, msg.ChunkDone):
                try:
                    values = pickle.loads(reply.results_payload)
                    job.future.set_result(ChunkResult(values, reply.seconds, reply.started,
                                                      handle.label, job.lost))
                except Exception as exc:
                    job.future.set_exception(
                        ChunkError(exc, None, "unpickling the results", "in the caller"))
            else:
                where = f"in worker process {handle.process.pid}"
                job.future.set_exception(ChunkError(
                    unpack_exception(reply.error), reply.position, reply.stage, where))

    def _on_exit(self, handle: _WorkerHandle) -> None:
        """The worker's process ended (or its pipe broke): account for its chunk."""
        while not handle.doomed:  # replies it sent just before dying still count
            try:
                if not handle.conn.poll():
                    break
                reply = handle.conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            self._handle_reply(handle, reply)
        handle.process.join(EXIT_GRACE_S)
        if handle.process.is_alive():
            handle.process.kill()
            handle.process.join()
        exitcode = handle.process.exitcode
        self._watch.remove(handle.conn)
        self._watch.remove(handle.process.sentinel)
        handle.conn.close()
        handle.process.close()
        self._handles.remove(handle)

        job = handle.job
        if job is not None and not job.future.done():
            job.lost += (LostAttempt(handle.label, job.sent_at, time.perf_counter()),)
            if job.attempts <= self.retries:
                with self._lock:
                    self._queue.appendleft(job)  # run it again, before anything else
            else:
                job.future.set_exception(WorkerCrashedError(
                    job.first_item, job.stop_item, exitcode, job.attempts))
        if not handle.ready and not handle.doomed:
            self._start_failures += 1
            if self._start_failures >= MAX_CONSECUTIVE_START_FAILURES:
                self._break(WorkerInitError(
                    f"worker processes die while starting ({describe_exit(exitcode)}, "
                    f"{self._start_failures} times in a row)"))
        with self._lock:
            replace = self._state in (_State.RUNNING, _State.CLOSING) and self._broken is None
        if replace:
            self._start_worker()

    def _seconds_to_next_deadline(self) -> float | None:
        deadlines = [h.deadline for h in self._handles if h.deadline is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for handle in self._handles:
            if handle.deadline is None or handle.deadline > now or handle.job is None:
                continue
            job, handle.job, handle.deadline = handle.job, None, None
            handle.doomed = True
            handle.process.kill()  # its sentinel fires next round; a new worker replaces it
            job.future.set_exception(ChunkTimeoutError(
                f"items {job.first_item}..{job.stop_item - 1} ran longer than the pool's "
                f"timeout of {self.timeout} s; their worker was killed and replaced"))

    def _break(self, error: BaseException) -> None:
        """Workers cannot run anything: fail all work now and refuse new work."""
        with self._lock:
            self._broken = error
        self._fail_everything(error)

    def _fail_everything(self, error: BaseException) -> None:
        with self._lock:
            jobs = list(self._queue)
            self._queue.clear()
        for handle in self._handles:
            if handle.job is not None:
                jobs.append(handle.job)
            handle.job = None
            handle.deadline = None
        for job in jobs:
            if not job.started:
                job.started = job.future.set_running_or_notify_cancel()
            if job.started and not job.future.done():
                job.future.set_exception(error)

    def _stop_workers(self, *, kill: bool) -> None:
        for handle in self._handles:
            if kill:
                handle.process.kill()
            else:
                try:
                    handle.conn.send(msg.Stop())
                except OSError:
                    handle.process.kill()
        deadline = time.monotonic() + EXIT_GRACE_S
        for handle in self._handles:
            handle.process.join(max(0.0, deadline - time.monotonic()))
            if handle.process.is_alive():
                handle.process.kill()
                handle.process.join()
            self._watch.remove(handle.conn)
            self._watch.remove(handle.process.sentinel)
            handle.conn.close()
            handle.process.close()
        self._handles.clear()
