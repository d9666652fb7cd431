"""``allcores.Pool``: map, imap, imap_unordered, starmap and submit on a worker pool.

The pool validates every argument before any worker starts, builds one backend (see
``allcores.backends``), and streams work through the dispatcher (``allcores.dispatch``).
Its lifecycle is one state, shared with its backend, behind one lock
(``allcores._lifecycle``): open -> closed (no new calls; calls already made finish, then
the workers stop), terminated (workers stopped at once) or broken (the workers cannot
run anything). It belongs to the process that created it: a copy inherited through
``os.fork()`` refuses work there and never touches the parent's workers.

Examples
--------
>>> import allcores
>>> with allcores.Pool(workers=2) as pool:
...     pool.map(abs, [-1, -2, 3])
[1, 2, 3]
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # before our atexit hook: see _terminate_live_pools
import os
import sys
import threading
import weakref
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Mapping, Self

from allcores import _checks as check
from allcores._execute import ChunkError, chunk_values
from allcores._options import (
    check_callable,
    check_map_arguments,
    flag_option,
    retries_option,
    timeout_option,
    workers_option,
)
from allcores._results import concatenate_results, flatten_results, progress_bar, started
from allcores._async import AsyncResult
from allcores._futures import CallbackSafeFuture, SubmitFuture, settle
from allcores._lifecycle import Lifecycle, State
from allcores._main_guard import refuse_work_while_main_is_imported
from allcores._types import BackendName, P, R, StartMethod, T
from allcores.backends import create_backend, running_in_worker, validate_backend_name
from allcores.backends.base import Chunk
from allcores.cpu import cpu_count
from allcores.dispatch import (
    ChunkSizer,
    ChunkSource,
    default_max_bytes,
    known_length,
    run_chunks,
)
from allcores.errors import AllcoresError, PoolClosedError
from allcores.timeline import CallRecorder, Insights, Recorder

_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def default_start_method() -> StartMethod:
    """The start method a process pool uses when none is given.

    ``"forkserver"`` where it exists (Linux; Python 3.14's own choice): ``"fork"`` is
    unsafe in a process with threads; ``"spawn"`` elsewhere (macOS, Windows).

    Returns
    -------
    str
        ``"forkserver"`` or ``"spawn"``.

    Examples
    --------
    >>> from allcores.pool import default_start_method
    >>> default_start_method() in ("forkserver", "spawn")
    True
    """
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"


class Pool:
    """A pool of ``workers`` workers that run functions over iterables in chunks.

    Parameters
    ----------
    workers : int, optional
        Number of workers; default :func:`allcores.cpu_count`, the CPUs this process
        may really use (affinity mask, cgroup quota, ``ALLCORES_WORKERS``).
        ``processes=`` is accepted for it, as ``multiprocessing.Pool`` calls it.
    backend : {"process", "thread", "serial", "dask"}
        Where chunks run: worker processes (any Python function, true parallelism),
        threads (functions that release the GIL, such as the native kernels), the
        caller itself, or a Dask cluster (the ``dask`` extra: ``pip install ".[dask]"``
        in a checkout).
    start_method : {"forkserver", "spawn", "fork"}, optional
        For processes: ``"forkserver"`` (default on Linux), ``"spawn"`` (default on
        macOS and Windows) or ``"fork"``. ``context=`` (a ``multiprocessing`` context,
        as ``multiprocessing.Pool`` takes) gives it too.
    initializer, initargs
        ``initializer(*initargs)`` runs once in each worker before any work.
    retries : int, optional
        How many times a chunk whose worker process died is run again (on a new
        worker) before :class:`WorkerCrashedError` is raised; default 1.
    timeout : float, optional
        Seconds a chunk may run (process backend): an overrunning chunk's worker is
        killed and replaced, and :class:`ChunkTimeoutError` (a ``TimeoutError``) is
        raised. Threads and Dask tasks cannot be stopped: those backends refuse it.
    maxtasksperchild : int, optional
        Process backend: a worker is replaced by a fresh one after running this many
        tasks, as in ``multiprocessing.Pool`` (a task is a chunk: one ``submit`` or
        ``apply`` call, or one chunk of a map). Default None: workers live as long as
        the pool.
    address, client : optional
        Dask only: a scheduler address (default ``ALLCORES_DASK_ADDRESS``) or an existing
        ``distributed.Client``; with neither, a local cluster of ``workers``
        single-threaded processes on 127.0.0.1 is started and closed with the pool.
    insights : bool
        Record which worker ran each chunk of every map (``map``, ``imap``,
        ``imap_unordered``, ``starmap``; not ``submit``), and when (off by default);
        :meth:`insights` sums it up and draws the timeline. See ``allcores.timeline``.
    max_bytes : int, optional
        A bound on the pickled bytes of the chunks in flight per map (items and
        results; at least one chunk is always in flight): default 64 MiB, or
        ``ALLCORES_MAX_BYTES``. Chunks also hold at most 65,536 items and about 4 MiB
        pickled. The caller's memory for a map is then about 2-3 times this bound
        (the objects behind the bytes), however long the input.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, before any worker starts (``workers=0``, an unknown
        ``backend``, ``timeout`` on a backend that cannot stop a chunk, ...).
    WorkerInitError
        Not here but from the pool's calls, when its workers could not start: the
        ``initializer`` raised, or a script run with the ``spawn`` or ``forkserver``
        start method makes the pool outside its ``if __name__ == "__main__":`` guard
        (the message shows the fix).

    See Also
    --------
    allcores.map : one call on a warm default pool, the backend chosen for you.
    allcores.Executor : the same engine as a ``concurrent.futures.Executor``.

    Notes
    -----
    Your function runs in the workers; everything else (reading the input, cutting
    it into chunks, pickling, putting results back in order) runs in the caller and
    the pool's engine threads. Functions and items travel by pickle, or by
    cloudpickle for what pickle cannot name (lambdas, closures, functions of
    ``__main__``).

    A worker process that dies (SIGKILL, segfault, ``os._exit``, out of memory) is
    seen at once and replaced; the chunk it ran is run again ``retries`` times, then
    fails with :class:`WorkerCrashedError`. Other chunks and calls go on. An exception
    raised by your function is not retried: it reaches the caller with its own type
    and a note naming the item.

    Leaving a ``with`` block closes the pool (submitted work finishes, then the workers
    stop); if the block is left by an exception, the pool is terminated: the workers
    are stopped at once. A ``KeyboardInterrupt`` (Ctrl-C) while waiting for a map's
    results terminates the pool too, so that no worker is left behind. A pool dropped
    without being closed stops its workers when it is garbage collected, and live
    pools are terminated when the interpreter exits.

    Examples
    --------
    >>> import allcores
    >>> with allcores.Pool(workers=2) as pool:
    ...     print(pool.map(abs, [-1, -2, 3]))
    ...     print(pool.map(lambda x: x * x, range(5)))  # lambdas work on processes
    ...     print(pool.submit(pow, 2, 10).result(timeout=60))
    [1, 2, 3]
    [0, 1, 4, 9, 16]
    1024

    Threads suit functions that release the GIL (native code):

    >>> import math
    >>> with allcores.Pool(workers=2, backend="thread") as pool:
    ...     pool.map(math.sqrt, [1, 4, 9])
    [1.0, 2.0, 3.0]
    """

    def __init__(
        self,
        workers: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        *,
        processes: int | None = None,
        backend: BackendName = "process",
        start_method: StartMethod | None = None,
        context: multiprocessing.context.BaseContext | None = None,
        retries: int = 1,
        timeout: float | None = None,
        maxtasksperchild: int | None = None,
        address: str | None = None,
        client: Any = None,
        insights: bool = False,
        max_bytes: int | None = None,
    ) -> None:
        refuse_work_while_main_is_imported()
        if processes is not None:  # multiprocessing.Pool's name for it
            if workers is not None:
                raise TypeError("workers and processes: the same thing, given twice")
            workers = processes
        backend_class = validate_backend_name(backend)
        workers = workers_option(workers) or cpu_count()
        retries = retries_option(retries)
        timeout = timeout_option(timeout, backend)
        if maxtasksperchild is not None:
            check.integer("maxtasksperchild", maxtasksperchild, min=1)
            if "max_tasks" not in backend_class.option_names:
                raise ValueError(f"maxtasksperchild: the {backend!r} backend does not "
                                 "replace its workers; use backend='process'")
        if context is not None:  # a multiprocessing context: its start method
            if not isinstance(context, multiprocessing.context.BaseContext):
                raise TypeError(f"context: expected a multiprocessing context, got: "
                                f"{type(context).__name__}")
            if start_method not in (None, context.get_start_method()):
                raise ValueError(f"start_method={start_method!r} and a "
                                 f"{context.get_start_method()!r} context: choose one")
            start_method = context.get_start_method()
        if start_method is None:
            start_method = default_start_method()
        elif start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method: expected one of {multiprocessing.get_all_start_methods()}, "
                f"got: {start_method!r}"
            )
        if initializer is not None:
            check_callable(initializer, "initializer")
        try:
            initargs = tuple(initargs)
        except TypeError:
            raise TypeError(
                f"initargs: expected an iterable of arguments, got: {type(initargs).__name__}"
            ) from None

        flag_option("insights", insights)
        self._max_bytes = (default_max_bytes() if max_bytes is None
                           else check.integer("max_bytes", max_bytes, min=1))
        if (address is not None or client is not None) and backend != "dask":
            raise ValueError("address and client: only for backend='dask', "
                             f"got backend={backend!r}")

        self._lifecycle = Lifecycle()
        # Set once the workers have stopped (close, the last open call's end, terminate).
        self._workers_stopped = threading.Event()
        # Options a backend has no use for (e.g. retries for threads) are not passed.
        wanted = set(backend_class.option_names)
        options = dict(start_method=start_method, initializer=initializer,
                       initargs=initargs or None, retries=retries, timeout=timeout,
                       max_tasks=maxtasksperchild, address=address, client=client)
        self._backend = create_backend(
            backend, workers, self._lifecycle,
            **{k: v for k, v in options.items() if k in wanted})
        self._recorder = Recorder(self.workers, self.backend) if insights else None
        # Dropping the last reference to a pool stops its workers.
        self._finalizer = weakref.finalize(self, _stop_now, self._backend, self._lifecycle)
        _live_pools.add(self)

    # --- properties -------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Number of workers (1 for the serial backend).

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=2, backend="thread") as pool:
        ...     pool.workers
        2
        """
        return self._backend.workers

    @property
    def backend(self) -> str:
        """Where chunks run: ``"process"``, ``"thread"``, ``"serial"`` or ``"dask"``.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=2, backend="thread") as pool:
        ...     pool.backend
        'thread'
        """
        return self._backend.name

    def insights(self, *, reset: bool = False) -> Insights:
        """A summary of every chunk the pool's maps handed back so far.

        It covers the chunks of ``map``, ``imap``, ``imap_unordered`` and ``starmap``
        (not ``submit`` or ``apply``) since the pool was made or since the last
        ``reset=True``. A map being consumed counts the chunks handed back until now.

        Parameters
        ----------
        reset : bool, optional
            Start a fresh recording after this summary.

        Returns
        -------
        Insights
            Wall time, per-worker busy and idle time, chunk sizes, dispatch vs the
            function, the slowest chunks; ``str()`` is a table, ``.plot(path)`` draws
            the timeline.

        Raises
        ------
        ValueError
            If the pool was made without ``insights=True``.

        See Also
        --------
        allcores.insights : the same for a module-level call.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=2, backend="thread", insights=True) as pool:
        ...     _ = pool.map(abs, range(100), chunksize=10)
        ...     summary = pool.insights(reset=True)
        ...     print(summary.chunks, summary.items, len(pool.insights().records))
        10 100 0
        >>> 0 < summary.utilisation <= 1
        True
        """
        if self._recorder is None:
            raise ValueError("this pool records nothing: create it with "
                             "Pool(..., insights=True)")
        return self._recorder.summary(reset=reset)

    def __repr__(self) -> str:
        state = self._lifecycle.state.value
        if not self._lifecycle.owned:
            state = f"inherited from process {self._lifecycle.owner_pid}"
        return f"<allcores.Pool backend={self.backend!r} workers={self.workers} {state}>"

    # --- work -------------------------------------------------------------------------

    def imap(self, fn: Callable[[T], R], iterable: Iterable[T],
             chunksize: int | None = None) -> Iterator[R]:
        """Lazily yield ``fn(item)`` for each item, in input order.

        Parameters
        ----------
        fn : callable
            Called as ``fn(item)`` in the workers. Lambdas, closures and functions of
            ``__main__`` work (cloudpickle).
        iterable : iterable
            The items: read as results are consumed, a bounded window of chunks in
            flight, so that an endless generator works.
        chunksize : int, optional
            Items per chunk. Default None: chunks adapt to the measured cost of the
            items, about 20 ms each, and shrink near the end of an input of known
            length so that the workers finish together.

        Returns
        -------
        iterator
            ``fn(item)`` for each item, in input order. A generator: ``close()`` it
            to stop early.

        Raises
        ------
        TypeError, ValueError
            At the call, for a bad argument (``fn`` not callable, ``chunksize=0``, a
            non-iterable).
        PoolClosedError
            If the pool is closed, terminated or broken, or was terminated while
            the map ran.
        Exception
            Whatever ``fn`` raised, with its own type and a note naming the item, once
            every result before it was yielded.
        WorkerCrashedError
            A worker process died running a chunk, ``retries`` re-runs included.
        ChunkTimeoutError
            A chunk ran longer than the pool's ``timeout``.

        Notes
        -----
        Arguments are checked at the call; nothing is read or run until the first
        result is asked for. At most ``2 x workers`` chunks (and ``max_bytes`` of
        pickled data) are in flight, the reorder buffer included, so memory stays
        bounded for a slow consumer. Closing the iterator, or breaking out of a loop
        over it and dropping it, cancels the chunks not yet started; the pool stays
        usable. An ``imap`` made before :meth:`close` can still be read to its end.

        Examples
        --------
        >>> import itertools, allcores
        >>> with allcores.Pool(workers=2, backend="thread") as pool:
        ...     results = pool.imap(abs, itertools.count(-3))  # endless input
        ...     print(list(itertools.islice(results, 5)))
        ...     results.close()
        [3, 2, 1, 0, 1]
        """
        return flatten_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True))

    def imap_unordered(self, fn: Callable[[T], R], iterable: Iterable[T],
                       chunksize: int | None = None) -> Iterator[R]:
        """Lazily yield ``fn(item)`` for each item, as their chunks finish.

        Like :meth:`imap`, but each chunk's results are yielded as soon as the chunk
        is done (in their order within the chunk): a slow item holds back only its own
        chunk.

        Parameters
        ----------
        fn : callable
            Called as ``fn(item)`` in the workers. Lambdas, closures and functions of
            ``__main__`` work (cloudpickle).
        iterable : iterable
            The items, read lazily as for :meth:`imap`.
        chunksize : int, optional
            Items per chunk. Default None: chunks adapt to the measured cost of the
            items, about 20 ms each, and shrink near the end of an input of known
            length so that the workers finish together.

        Returns
        -------
        iterator
            ``fn(item)`` for each item, in the order their chunks finished.

        Raises
        ------
        TypeError, ValueError
            At the call, for a bad argument (``fn`` not callable, ``chunksize=0``, a
            non-iterable).
        PoolClosedError
            If the pool is closed, terminated or broken, or was terminated while
            the map ran.
        Exception
            Whatever ``fn`` raised, with its own type and a note naming the item.
        WorkerCrashedError
            A worker process died running a chunk, ``retries`` re-runs included.
        ChunkTimeoutError
            A chunk ran longer than the pool's ``timeout``.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=2, backend="thread") as pool:
        ...     sorted(pool.imap_unordered(abs, [-3, 1, -2, 5]))
        [1, 2, 3, 5]
        """
        return flatten_results(
            self._chunk_results(fn, iterable, chunksize, ordered=False))

    def map(self, fn: Callable[[T], R], iterable: Iterable[T],
            chunksize: int | None = None) -> list[R]:
        """``list(map(fn, iterable))``, computed on the pool's workers.

        Parameters
        ----------
        fn : callable
            Called as ``fn(item)`` in the workers. Lambdas, closures and functions of
            ``__main__`` work (cloudpickle).
        iterable : iterable
            The items: read lazily, a bounded window of chunks ahead of the results (an
            input that raises stops being read).
        chunksize : int, optional
            Items per chunk. Default None: chunks adapt to the measured cost of the
            items, about 20 ms each, and shrink near the end of an input of known
            length so that the workers finish together.

        Returns
        -------
        list
            ``fn(item)`` for each item, in input order.

        Raises
        ------
        TypeError, ValueError
            At the call, for a bad argument (``fn`` not callable, ``chunksize=0``, a
            non-iterable).
        PoolClosedError
            If the pool is closed, terminated or broken, or was terminated while
            the map ran.
        Exception
            Whatever ``fn`` raised, with its own type and a note naming the item.
        WorkerCrashedError
            A worker process died running a chunk, ``retries`` re-runs included.
        ChunkTimeoutError
            A chunk ran longer than the pool's ``timeout``.

        See Also
        --------
        imap : the results one at a time; map_async : without waiting.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=2) as pool:
        ...     pool.map(abs, [-1, -2, 3])
        [1, 2, 3]
        """
        return concatenate_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True))

    def starmap(self, fn: Callable[..., R], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list[R]:
        """``[fn(*args) for args in iterable]``, computed on the pool's workers.

        Parameters
        ----------
        fn : callable
            Called as ``fn(*args)`` in the workers.
        iterable : iterable of iterables
            The argument tuples, read lazily as for :meth:`map`.
        chunksize : int, optional
            Tuples per chunk; default: adapted to their measured cost.

        Returns
        -------
        list
            ``fn(*args)`` for each tuple, in input order.

        Raises
        ------
        TypeError, ValueError
            At the call, for a bad argument (``fn`` not callable, ``chunksize=0``, a
            non-iterable).
        PoolClosedError
            If the pool is closed, terminated or broken, or was terminated while
            the map ran.
        Exception
            Whatever ``fn`` raised, with its own type and a note naming the item.
        WorkerCrashedError
            A worker process died running a chunk, ``retries`` re-runs included.
        ChunkTimeoutError
            A chunk ran longer than the pool's ``timeout``.

        Examples
        --------
        >>> import operator, allcores
        >>> with allcores.Pool(workers=2, backend="thread") as pool:
        ...     pool.starmap(operator.mul, [(1, 2), (3, 4), (5, 6)])
        [2, 12, 30]
        """
        return concatenate_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True, star=True))

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a future of its result.

        Parameters
        ----------
        fn : callable
            The function; positional-only, so that ``fn`` may itself be a keyword of
            the call.
        *args, **kwargs
            Its arguments.

        Returns
        -------
        concurrent.futures.Future
            Pending until a worker takes the call (``cancel()`` then succeeds and the
            call never runs), running while it runs, then done, with ``fn``'s result
            or its exception. It works with ``concurrent.futures.wait`` and
            ``as_completed``.

        Raises
        ------
        TypeError
            If ``fn`` is not callable.
        PoolClosedError
            If the pool is closed, terminated or broken.

        Notes
        -----
        A function or arguments that cannot be pickled fail the future, not the call
        to ``submit``; so do a worker's death (:class:`WorkerCrashedError`, after
        ``retries``) and a timeout (:class:`ChunkTimeoutError`). A submitted call is
        not recorded by ``insights``. On the Dask backend the future stays pending until
        done (Dask does not say when a task starts); cancelling it there drops the task
        from the cluster.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=2) as pool:
        ...     future = pool.submit(pow, 2, 10)
        ...     print(future.result(timeout=60))
        1024
        >>> with allcores.Pool(workers=1, backend="thread") as pool:
        ...     pool.submit(int, "ff", base=16).result(timeout=60)
        255
        """
        check_callable(fn)
        call = _BoundCall(fn, kwargs) if kwargs else fn
        self._lifecycle.check(new_call=True)
        backend = self._backend_for_this_thread()
        try:
            chunk_future = backend.submit(backend.prepare(call), Chunk(0, [args]), True)
        except AllcoresError:
            raise  # the pool's state (closed, broken): the submit itself fails
        except Exception as exc:
            # Pickling the function or the arguments failed here, in the caller: this
            # call's error, on its future, as concurrent.futures executors report it
            # (code that submits a batch handles failures per future).
            failed: Future[R] = CallbackSafeFuture()
            failed.set_exception(exc)
            return failed
        # Pending until a worker takes the chunk: cancel() works until then.
        result = SubmitFuture(chunk_future)
        chunk_future.follow_with(result)

        def forward(done: Future[Any]) -> None:
            # Runs where the chunk's future settles (an engine thread, maybe): whatever
            # unpickling the result raises is this call's error, nothing else's.
            value, error = None, None
            try:
                if done.cancelled():
                    if result.cancelling:
                        return  # the caller's cancel(): it cancels the result itself
                    error = PoolClosedError("the pool was terminated")
                elif (error := done.exception()) is None:
                    value = chunk_values(done.result(), 1)[0]
            except BaseException as exc:
                error = exc
            if isinstance(error, ChunkError):
                error = error.for_caller(0, 1)
            settle(result, result=value, error=error)

        chunk_future.add_done_callback(forward)
        return result

    # --- multiprocessing.Pool's asynchronous calls ----------------------------------

    def apply(self, fn: Callable[..., R], args: Iterable[Any] = (),
              kwds: Mapping[str, Any] | None = None) -> R:
        """``fn(*args, **kwds)`` on a worker, waiting for its result.

        As ``multiprocessing.Pool.apply``.

        Parameters
        ----------
        fn : callable
            The function.
        args : iterable, optional
            Its positional arguments.
        kwds : mapping, optional
            Its keyword arguments.

        Returns
        -------
        object
            What ``fn`` returned.

        Raises
        ------
        PoolClosedError
            If the pool is closed, terminated or broken.
        Exception
            Whatever ``fn`` raised, with its own type.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=1, backend="thread") as pool:
        ...     pool.apply(int, ("ff",), {"base": 16})
        255
        """
        return self.submit(fn, *args, **(kwds or {})).result()

    def apply_async(self, fn: Callable[..., R], args: Iterable[Any] = (),
                    kwds: Mapping[str, Any] | None = None,
                    callback: Callable[[R], object] | None = None,
                    error_callback: Callable[[BaseException], object] | None = None
                    ) -> AsyncResult[R]:
        """``fn(*args, **kwds)`` on a worker, without waiting.

        As ``multiprocessing.Pool.apply_async``.

        Parameters
        ----------
        fn : callable
            The function.
        args : iterable, optional
            Its positional arguments.
        kwds : mapping, optional
            Its keyword arguments.
        callback : callable, optional
            ``callback(result)``, called once in this process when ``fn`` returns.
        error_callback : callable, optional
            ``error_callback(exception)``, called once in this process when it fails.

        Returns
        -------
        AsyncResult
            ``get(timeout)``, ``wait(timeout)``, ``ready()``, ``successful()``.

        Raises
        ------
        TypeError
            If ``fn`` or a callback is not callable.
        PoolClosedError
            If the pool is closed, terminated or broken.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=1, backend="thread") as pool:
        ...     pool.apply_async(pow, (2, 10)).get(timeout=60)
        1024
        """
        _check_callbacks(callback, error_callback)
        return AsyncResult(self.submit(fn, *args, **(kwds or {})), callback, error_callback)

    def map_async(self, fn: Callable[[T], R], iterable: Iterable[T],
                  chunksize: int | None = None,
                  callback: Callable[[list[R]], object] | None = None,
                  error_callback: Callable[[BaseException], object] | None = None
                  ) -> AsyncResult[list[R]]:
        """:meth:`map` without waiting.

        As ``multiprocessing.Pool.map_async``: the call is made (and counted, so that
        :meth:`close` then :meth:`join` wait for it) at once, and its results are
        collected on a thread of its own.

        Parameters
        ----------
        fn, iterable, chunksize
            As for :meth:`map`.
        callback : callable, optional
            ``callback(results)``, called once in this process with the list of
            results.
        error_callback : callable, optional
            ``error_callback(exception)``, called once in this process if the map
            fails.

        Returns
        -------
        AsyncResult
            ``get()`` returns the list of results, or raises the map's exception.

        Raises
        ------
        TypeError, ValueError
            At the call, for a bad argument.
        PoolClosedError
            If the pool is closed, terminated or broken.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=2, backend="thread") as pool:
        ...     pending = pool.map_async(abs, [-1, -2, 3])
        ...     print(pending.get(timeout=60))
        [1, 2, 3]
        """
        return self._async(fn, iterable, chunksize, callback, error_callback, star=False)

    def starmap_async(self, fn: Callable[..., R], iterable: Iterable[Iterable[Any]],
                      chunksize: int | None = None,
                      callback: Callable[[list[R]], object] | None = None,
                      error_callback: Callable[[BaseException], object] | None = None
                      ) -> AsyncResult[list[R]]:
        """:meth:`starmap` without waiting; see :meth:`map_async`.

        Parameters
        ----------
        fn, iterable, chunksize
            As for :meth:`starmap`.
        callback, error_callback : callable, optional
            As for :meth:`map_async`.

        Returns
        -------
        AsyncResult
            ``get()`` returns the list of results, or raises the call's exception.

        Raises
        ------
        TypeError, ValueError
            At the call, for a bad argument.
        PoolClosedError
            If the pool is closed, terminated or broken.

        Examples
        --------
        >>> import operator, allcores
        >>> with allcores.Pool(workers=2, backend="thread") as pool:
        ...     pool.starmap_async(operator.mul, [(1, 2), (3, 4)]).get(timeout=60)
        [2, 12]
        """
        return self._async(fn, iterable, chunksize, callback, error_callback, star=True)

    def _async(self, fn, iterable, chunksize, callback, error_callback, *,
               star: bool) -> AsyncResult[Any]:
        _check_callbacks(callback, error_callback)
        results = self._chunk_results(fn, iterable, chunksize, ordered=True, star=star)
        future: Future[Any] = CallbackSafeFuture()
        future.set_running_or_notify_cancel()
        outcome = AsyncResult(future, callback, error_callback)

        def run() -> None:
            value, error = None, None
            try:
                value = concatenate_results(results)
            except BaseException as exc:  # the call's error, whatever it is
                error = exc
            settle(future, result=value, error=error)

        threading.Thread(target=run, name="allcores-map-async", daemon=True).start()
        return outcome

    def _submit_chunk(self, prepared_fn, chunk: Chunk):
        """One chunk outside any map (the planner's sample and its speculation): the
        backend's future of its ``ChunkResult``. ``prepared_fn``: from ``prepare``."""
        self._lifecycle.check(new_call=True)
        return self._backend.submit(prepared_fn, chunk, False)

    def _chunk_results(self, fn, iterable, chunksize, *, ordered: bool, star: bool = False,
                       progress: bool = False, seconds_per_item: float | None = None,
                       length: int | None = None, first_item: int = 0,
                       bar=None, recorder: CallRecorder | None = None,
                       deadline: float | None = None) -> Iterator[list]:
        """The results of each chunk, as a list per chunk. Arguments are checked now,
        at the call, not at the first ``next()``. ``chunksize=None`` adapts chunk sizes
        to the measured cost of items (``seconds_per_item`` seeds the measure);
        ``length`` and ``first_item`` describe an input that is the rest of another.
        Chunks are recorded into ``recorder``, else the pool's recorder (if it has one).
        ``deadline`` (``time.monotonic()``): ``TimeoutError`` when the next chunk is not
        finished by then (see ``dispatch.run_chunks``)."""
        check_map_arguments(fn, iterable, chunksize)
        if length is None:
            length = known_length(iterable)
        sizer = ChunkSizer(self.workers, length=length, fixed=chunksize,
                           seconds_per_item=seconds_per_item)
        chunks = ChunkSource(iterable, sizer, first_item)
        call = _OpenCall(self)  # counted from here: close() lets it finish
        backend = self._backend_for_this_thread()
        if progress and bar is None:
            bar = progress_bar(length)
        if recorder is None and self._recorder is not None:
            recorder = self._recorder.start_call()
        return started(self._run(backend, fn, chunks, ordered, star, bar, recorder, call,
                                 deadline))

    def _backend_for_this_thread(self):
        """The pool's backend; a serial one (sharing the lifecycle) on a thread of this
        very pool: a map or submit from inside one of its chunks runs in place, as
        module-level calls nested in a worker do (it would otherwise wait for threads
        that may all be waiting for it)."""
        if running_in_worker(self._backend):
            return create_backend("serial", 1, self._lifecycle)
        return self._backend

    def _run(self, backend, fn, chunks, ordered, star, bar, recorder,
             call, deadline) -> Iterator[list]:
        try:
            yield  # the priming yield: see allcores._results.started
            for chunk, results in run_chunks(backend, fn, chunks, ordered=ordered,
                                             star=star, recorder=recorder,
                                             max_bytes=self._max_bytes, deadline=deadline):
                if bar is not None:
                    bar.update(len(chunk.items))
                yield results
        except KeyboardInterrupt as interrupt:
            # Ctrl-C (or anything raising KeyboardInterrupt in this thread): stop every
            # worker now, leave nothing behind. One that fn raised in a worker is only
            # that call's error.
            if not getattr(interrupt, "_allcores_from_worker", False):
                self.terminate()
            raise
        finally:
            call.end()
            if bar is not None:
                bar.close()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the pool takes no new calls.

        That is after :meth:`close` or :meth:`terminate`, when it broke (its workers
        cannot run anything: the calls then raise, saying why), and in a child process
        that inherited it through ``os.fork()``.

        Examples
        --------
        >>> import allcores
        >>> pool = allcores.Pool(workers=2, backend="thread")
        >>> pool.closed
        False
        >>> pool.close()
        >>> pool.closed
        True
        """
        return self._lifecycle.state is not State.OPEN or not self._lifecycle.owned

    def close(self) -> None:
        """Take no new calls; let the calls already made finish, then stop the workers.

        An ``imap`` made before can still be read to its end, and a submitted future
        settles. ``close`` waits for that, unless a map is still open (being read,
        maybe by the very code that closes the pool): the workers then stop when the
        last one ends. Calling it again does nothing.

        See Also
        --------
        terminate : stop the workers at once.
        join : wait until the workers have stopped.

        Examples
        --------
        >>> import allcores
        >>> pool = allcores.Pool(workers=2, backend="thread")
        >>> future = pool.submit(abs, -1)
        >>> pool.close()
        >>> future.result(timeout=60), pool.join(timeout=60)
        (1, True)
        """
        self._close(wait=True)

    def _close(self, *, wait: bool) -> None:
        """close(); ``wait=False`` returns at once, the work already submitted finishing
        on a thread (not a daemon: the interpreter's exit waits for that work, as it
        does for a ``concurrent.futures`` executor shut down without waiting)."""
        if not self._lifecycle.owned:
            return  # the parent's pool: nothing here to stop
        if self._lifecycle.close():
            self._finalizer.detach()
            if wait:
                self._shutdown(wait=True)
            else:
                threading.Thread(target=self._shutdown, kwargs={"wait": True},
                                 name="allcores-close").start()

    def terminate(self) -> None:
        """Stop the workers now; unfinished work fails with :class:`PoolClosedError`.

        Worker processes are killed, whatever they are running; chunks not yet
        started are cancelled. A thread cannot be stopped: on the thread backend, the
        chunks already running finish in the background. Returns within a few seconds
        whatever the workers are doing.

        Examples
        --------
        >>> import allcores
        >>> pool = allcores.Pool(workers=2)
        >>> pool.terminate()
        >>> pool.join(timeout=60)
        True
        >>> pool.map(abs, [-1])
        Traceback (most recent call last):
        ...
        allcores.errors.PoolClosedError: the pool was terminated
        """
        self._finalizer.detach()
        try:
            _stop_now(self._backend, self._lifecycle)
        finally:
            self._workers_stopped.set()

    def _shutdown(self, *, wait: bool) -> None:
        try:
            self._backend.shutdown(wait=wait)
        finally:
            self._workers_stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the workers have stopped, after :meth:`close` or :meth:`terminate`.

        As ``multiprocessing.Pool.join``: after :meth:`close`, the calls already made
        finish first, ``*_async`` ones included.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; None: as long as it takes (an extension:
            ``multiprocessing`` has no timeout).

        Returns
        -------
        bool
            True once the workers have stopped; False if ``timeout`` seconds passed
            first.

        Raises
        ------
        ValueError
            While the pool is still open (or broken but not closed): call
            :meth:`close` or :meth:`terminate` first.

        Examples
        --------
        >>> import allcores
        >>> pool = allcores.Pool(workers=2, backend="thread")
        >>> pending = pool.map_async(abs, [-1, -2])
        >>> pool.close()
        >>> pool.join(timeout=60)
        True
        >>> pending.get(timeout=0)
        [1, 2]
        """
        if not self._lifecycle.owned:
            return True  # inherited through fork: the parent's workers are not ours
        if self._lifecycle.state in (State.OPEN, State.BROKEN):
            raise ValueError("Pool is still running: call close() or terminate() first")
        return self._workers_stopped.wait(timeout)

    def _end_call(self) -> None:
        """A map ended (see _OpenCall); the last one of a closed pool stops the workers,
        on a thread of its own: this may run in a finally or a garbage collection
        anywhere, even on one of the pool's own threads."""
        if self._lifecycle.owned and self._lifecycle.end_call():
            self._finalizer.detach()
            try:
                threading.Thread(target=self._shutdown, kwargs={"wait": True},
                                 name="allcores-close", daemon=True).start()
            except RuntimeError:  # no new threads at interpreter exit: stop them now
                self._shutdown(wait=False)

    def __enter__(self) -> Self:
        # A closed or terminated pool cannot be used again; a broken one enters, and
        # its calls then say why it broke.
        if self._lifecycle.state is not State.BROKEN:
            self._lifecycle.check(new_call=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def _check_callbacks(callback, error_callback) -> None:
    if callback is not None:
        check_callable(callback, "callback")
    if error_callback is not None:
        check_callable(error_callback, "error_callback")


def _stop_now(backend, lifecycle: Lifecycle) -> None:
    """Terminate: run once, by terminate() or when the pool is collected. A process
    that inherited the pool through fork() does nothing: the workers are the parent's."""
    if lifecycle.owned:
        lifecycle.terminate()
        backend.shutdown(wait=False)


class _OpenCall:
    """A map whose results are still to be read: counted as open in the pool's
    lifecycle until it ends, however it ends (read to its end, closed, failed, or
    collected without ever being started: a generator that never ran has no
    ``finally`` to run, hence ``__del__``)."""

    __slots__ = ("_pool", "_ended")

    def __init__(self, pool: Pool):
        self._ended = True  # until begun: a refused call has nothing to end
        pool._lifecycle.begin_call()
        self._pool = pool
        self._ended = False

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._pool._end_call()

    def __del__(self) -> None:
        try:
            self.end()
        except Exception:  # at interpreter exit: the exit hook terminates every pool
            pass


class _BoundCall:
    """``fn(*args, **kwargs)`` as a picklable callable taking the positional args."""

    def __init__(self, fn, kwargs):
        self.fn = fn
        self.kwargs = kwargs

    def __call__(self, *args):
        return self.fn(*args, **self.kwargs)


# atexit hooks run last-registered first. multiprocessing.util's hook joins every
# non-daemon child process, which would wait forever for our idle workers; importing it
# above registers it before this one, so our pools are stopped first.
@atexit.register
def _terminate_live_pools() -> None:
    for pool in list(_live_pools):
        pool.terminate()


def _forget_the_parents_pools() -> None:
    # In a fork child the parent's pools are not ours to stop at exit (see Lifecycle).
    _live_pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_pools)
