"""The thread backend: chunks run on a thread pool in the caller's process.

Right for functions that release the GIL (the native kernels): no pickling, no process
start-up, shared memory for free. A running chunk cannot be interrupted from outside
(Python has no way to stop a thread, least of all one inside native code), so this
backend does not support ``timeout``. ``shutdown(wait=False)`` cancels every chunk not
yet running at once (callers see ``PoolClosedError``); chunks already running finish in
the background and settle their futures as usual.

Data flow: the caller's ``submit`` creates the chunk's Future and queues a run of it on
a ``ThreadPoolExecutor``. ``_unfinished`` (under ``_lock``) holds the Futures not yet
settled, so that shutdown can cancel the queued ones.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from allcores._execute import ChunkError, ItemError, run_items
from allcores._futures import ChunkFuture, settle
from allcores._lifecycle import Lifecycle
from allcores.backends import THREAD_NAME_PREFIX, running_chunks_of
from allcores.backends.base import Backend, Chunk
from allcores.errors import PoolClosedError, WorkerInitError


class ThreadBackend(Backend):
    name = "thread"
    runs_in_caller_process = True
    supports_timeout = False

    def __init__(self, workers: int, *, lifecycle: Lifecycle, initializer=None, initargs=()):
        self.workers = workers
        self._lifecycle = lifecycle
        self._initializer = initializer
        self._initargs = initargs
        self._initialized = threading.local()  # .done: this thread ran the initializer
        # Reentrant: cancelling under the lock runs the done callback (_forget) at once.
        self._lock = threading.RLock()
        self._stopped = False                             # under _lock: shutdown() ran
        self._unfinished: set[Future] = set()             # under _lock
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix=THREAD_NAME_PREFIX)

    def submit(self, prepared_fn, chunk: Chunk, star: bool) -> Future:
        future: ChunkFuture = ChunkFuture()
        with self._lock:
            self._lifecycle.check(new_call=False)
            if self._stopped:
                raise PoolClosedError("the pool's workers have stopped")
            self._unfinished.add(future)
            self._executor.submit(self._run, future, prepared_fn, chunk.items, star)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._unfinished.discard(future)

    def _run(self, future: Future, fn, items: list, star: bool) -> None:
        """Runs on a pool thread."""
        with self._lock:  # against shutdown cancelling it at this very moment
            if future.cancelled() or not future.set_running_or_notify_cancel():
                return  # cancelled while queued
        try:
            self._initialize_this_thread()
            with running_chunks_of(self):
                outcome = run_items(fn, items, star, worker=threading.current_thread().name)
        except ItemError as failure:
            where = f"in thread {threading.current_thread().name}"
            settle(future, error=ChunkError.from_item(failure, where))
        except BaseException as exc:  # WorkerInitError
            settle(future, error=exc)
        else:
            settle(future, result=outcome)

    def _initialize_this_thread(self) -> None:
        if self._initializer is None or getattr(self._initialized, "done", False):
            return
        try:
            self._initializer(*self._initargs)
        except BaseException as exc:
            error = WorkerInitError("the pool's initializer raised in a worker thread")
            error.__cause__ = exc
            self._lifecycle.break_with(error)
            raise error from exc
        self._initialized.done = True

    def shutdown(self, *, wait: bool) -> None:
        with self._lock:
            self._stopped = True
            unfinished = list(self._unfinished)
        if wait:
            self._executor.shutdown(wait=True)
            return
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for future in unfinished:
                # cancel() fails for a running chunk: that one cannot be stopped. A plain
                # cancel() does not wake concurrent.futures.wait(); the notify does.
                if future.cancel() and not future.cancelled_and_notified():
                    future.set_running_or_notify_cancel()
