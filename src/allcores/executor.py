"""``allcores.Executor``: a ``concurrent.futures.Executor`` on allcores' engine.

Switching from ``ProcessPoolExecutor`` or ``ThreadPoolExecutor`` is one changed import:
``submit``, ``map``, ``shutdown`` and the ``with`` block behave as theirs do, and the
futures work with ``concurrent.futures.wait``, ``as_completed`` and asyncio's
``loop.run_in_executor``. Under it is an :class:`allcores.Pool` (process workers by
default; ``backend="thread"`` or ``"dask"``), so a worker that dies fails only its own
call, ``map`` is chunked and streams through a bounded window, and ``timeout=`` can stop
a runaway call.

Where it deliberately differs from the standard executors:

- ``map`` reads its input lazily, a bounded window of chunks ahead of the results, where
  the standard one submits every item before returning (an endless input works; an
  error in the input is raised where the iteration reaches it). ``chunksize=None`` (the
  default) lets allcores size the chunks; the standard default is 1.
- A worker that dies raises :class:`allcores.WorkerCrashedError` (a
  ``BrokenProcessPool``) for its call only, after ``retries``; the executor goes on,
  where ``ProcessPoolExecutor`` breaks for good.
- ``shutdown(cancel_futures=True)`` cancels the submitted calls no worker has taken;
  the queued chunks of a ``map`` are cancelled when its iterator is closed or dropped.
  ``shutdown(wait=True)`` waits for the submitted calls and for the maps already read
  to their end; the workers stop once the last open ``map`` iterator ends.
- An executor still open when the interpreter exits is terminated with the other live
  pools: shut it down (or use a ``with`` block) for its calls to finish first.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing.context
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator

from allcores import _checks as check
from allcores._results import flatten_results
from allcores._types import BackendName, P, R
from allcores.pool import Pool


class Executor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` running calls on ``max_workers`` workers.

    Parameters
    ----------
    max_workers : int, optional
        Default :func:`allcores.cpu_count`, the CPUs this process may really use.
    mp_context : multiprocessing context, optional
        For processes: its start method (default forkserver on Linux, else spawn).
    initializer, initargs
        ``initializer(*initargs)`` runs once in each worker before any work.
    max_tasks_per_child : int, optional
        Process backend: a worker is replaced after running this many tasks (a
        ``submit`` call, or one chunk of a ``map``).
    backend : {"process", "thread", "dask", "serial"}
        Where calls run (see :class:`allcores.Pool`).
    retries, timeout, max_bytes, address, client
        As :class:`allcores.Pool` takes them.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: multiprocessing.context.BaseContext | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        *,
        max_tasks_per_child: int | None = None,
        backend: BackendName = "process",
        retries: int = 1,
        timeout: float | None = None,
        max_bytes: int | None = None,
        address: str | None = None,
        client: Any = None,
    ) -> None:
        if max_tasks_per_child is not None:
            check.integer("max_tasks_per_child", max_tasks_per_child, min=1)
        self._pool = Pool(max_workers, initializer, initargs, backend=backend,
                          context=mp_context, retries=retries, timeout=timeout,
                          maxtasksperchild=max_tasks_per_child, max_bytes=max_bytes,
                          address=address, client=client)
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()  # under _lock: not done
        # Dropped without shutdown(): the work already submitted still finishes (as
        # with the standard executors), then the workers stop. Not at the
        # interpreter's exit: live pools are terminated then (see allcores.pool).
        self._finalizer = weakref.finalize(self, self._pool._close, wait=False)
        self._finalizer.atexit = False

    @property
    def workers(self) -> int:
        return self._pool.workers

    @property
    def backend(self) -> str:
        return self._pool.backend

    def submit(self, fn: Callable[P, R], /, *args: P.args,
               **kwargs: P.kwargs) -> concurrent.futures.Future[R]:
        """Run ``fn(*args, **kwargs)`` on a worker. The future is pending until a worker
        takes the call (``cancel()`` works until then). ``RuntimeError``
        (:class:`allcores.PoolClosedError`) after :meth:`shutdown`."""
        future = self._pool.submit(fn, *args, **kwargs)
        with self._lock:
            self._pending.add(future)
        # Not a bound method: a future the caller keeps must not keep the executor (and
        # its workers) alive.
        future.add_done_callback(functools.partial(_forget, self._pending, self._lock))
        return future

    def map(self, fn: Callable[..., R], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int | None = None) -> Iterator[R]:
        """``fn(*args)`` for each tuple of ``zip(*iterables)``, in order, as an iterator.

        The input is read lazily, in chunks (``chunksize``; None: sized by allcores),
        a bounded window ahead of the results. ``timeout``: ``TimeoutError`` if a result
        is not there ``timeout`` seconds after this call; the queued chunks are then
        cancelled. Closing or dropping the iterator cancels them too."""
        deadline = None
        if timeout is not None:
            deadline = time.monotonic() + check.finite_real("timeout", timeout)
        return flatten_results(self._pool._chunk_results(
            fn, zip(*iterables), chunksize, ordered=True, star=True, deadline=deadline))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no new calls; ``cancel_futures``: cancel the submitted calls that no
        worker has taken. ``wait``: return once the calls already made have finished
        and the workers have stopped; otherwise at once (they finish in the
        background). Idempotent."""
        if cancel_futures:
            with self._lock:
                pending = list(self._pending)
            for future in pending:
                future.cancel()
        self._finalizer.detach()
        self._pool._close(wait=wait)

    def __repr__(self) -> str:
        return f"<allcores.Executor backend={self.backend!r} workers={self.workers}>"


def _forget(pending: set, lock: threading.Lock, future: concurrent.futures.Future) -> None:
    with lock:
        pending.discard(future)
