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

Examples
--------
>>> import concurrent.futures, allcores
>>> with allcores.Executor(max_workers=2) as executor:
...     futures = [executor.submit(pow, 2, n) for n in range(4)]
...     done, _ = concurrent.futures.wait(futures, timeout=60)
...     print(sorted(f.result() for f in done))
[1, 2, 4, 8]
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
    retries : int, optional
        How many times a call (or a ``map`` chunk) whose worker process died is run
        again on a new worker before :class:`allcores.WorkerCrashedError` is raised;
        default 1.
    timeout : float, optional
        Seconds a call (or a ``map`` chunk) may run on the process backend; an
        overrunning one's worker is killed and
        :class:`allcores.ChunkTimeoutError` raised.
    max_bytes, address, client
        As :class:`allcores.Pool` takes them.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, before any worker starts.

    See Also
    --------
    allcores.Pool : the same engine, with ``multiprocessing.Pool``'s methods.

    Notes
    -----
    Unlike ``ProcessPoolExecutor``, a worker that dies fails only its own call (after
    ``retries``), and the executor goes on; ``map`` reads its input lazily, in chunks;
    and functions travel by cloudpickle when pickle cannot name them (lambdas,
    closures). Leaving a ``with`` block calls ``shutdown(wait=True)``: the calls
    already made finish, then the workers stop.

    Examples
    --------
    >>> import allcores
    >>> with allcores.Executor(max_workers=2) as executor:
    ...     print(executor.submit(pow, 2, 10).result(timeout=60))
    ...     print(list(executor.map(pow, [2, 3], [5, 2])))
    1024
    [32, 9]
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
        """Number of workers.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Executor(max_workers=2, backend="thread") as executor:
        ...     executor.workers
        2
        """
        return self._pool.workers

    @property
    def backend(self) -> str:
        """Where calls run: ``"process"``, ``"thread"``, ``"serial"`` or ``"dask"``.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Executor(max_workers=2, backend="thread") as executor:
        ...     executor.backend
        'thread'
        """
        return self._pool.backend

    def submit(self, fn: Callable[P, R], /, *args: P.args,
               **kwargs: P.kwargs) -> concurrent.futures.Future[R]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a future of its result.

        Parameters
        ----------
        fn : callable
            The function (positional-only).
        *args, **kwargs
            Its arguments.

        Returns
        -------
        concurrent.futures.Future
            Pending until a worker takes the call (``cancel()`` works until then),
            then running, then done with ``fn``'s result or exception.

        Raises
        ------
        RuntimeError
            (:class:`allcores.PoolClosedError`) after :meth:`shutdown`.
        TypeError
            If ``fn`` is not callable.

        Notes
        -----
        Pickling errors, a worker's death (:class:`allcores.WorkerCrashedError`, after
        ``retries``) and a timeout fail the future, not the call to ``submit``.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Executor(max_workers=1, backend="thread") as executor:
        ...     executor.submit(int, "ff", base=16).result(timeout=60)
        255
        """
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

        Parameters
        ----------
        fn : callable
            Called as ``fn(*args)`` in the workers.
        *iterables : iterable
            One per argument of ``fn``; the shortest ends the map.
        timeout : float, optional
            Seconds from this call within which each result must be there.
        chunksize : int, optional
            Calls per chunk; default None: sized by allcores from their measured cost
            (the standard executors' default is 1).

        Returns
        -------
        iterator
            ``fn(*args)`` for each tuple, in input order.

        Raises
        ------
        TimeoutError
            While iterating, if a result is not there ``timeout`` seconds after the
            call to ``map``; the queued chunks are then cancelled.
        PoolClosedError
            After :meth:`shutdown`.
        Exception
            Whatever ``fn`` raised, when the iteration reaches that item.

        Notes
        -----
        Unlike the standard executors, which submit every item before returning, the
        input is read lazily, in chunks, a bounded window ahead of the results: an
        endless input works, and an error raised by the input is raised where the
        iteration reaches it. Closing or dropping the iterator cancels the queued
        chunks.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Executor(max_workers=2) as executor:
        ...     list(executor.map(pow, [2, 3, 4], [2, 2, 2]))
        [4, 9, 16]
        """
        deadline = None
        if timeout is not None:
            deadline = time.monotonic() + check.finite_real("timeout", timeout)
        return flatten_results(self._pool._chunk_results(
            fn, zip(*iterables), chunksize, ordered=True, star=True, deadline=deadline))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no new calls, then stop the workers once the calls made have finished.

        Parameters
        ----------
        wait : bool, optional
            Return once the calls already made have finished and the workers have
            stopped (the default); otherwise return at once (they finish in the
            background).
        cancel_futures : bool, optional
            Cancel the submitted calls that no worker has taken yet.

        Notes
        -----
        Calling it again does nothing. The maps already being read finish too: the
        workers stop once the last open ``map`` iterator ends.

        Examples
        --------
        >>> import allcores
        >>> executor = allcores.Executor(max_workers=2, backend="thread")
        >>> future = executor.submit(abs, -3)
        >>> executor.shutdown(wait=True)
        >>> future.result(timeout=0)
        3
        >>> executor.submit(abs, -1)
        Traceback (most recent call last):
        ...
        allcores.errors.PoolClosedError: the pool is closed
        """
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
