"""``allcores.map`` / ``imap`` / ``imap_unordered``: one call, on a warm default pool.

Every call becomes a :class:`~allcores.planner.Plan` that ``allcores._runner`` runs on
the warm default pool of its backend (``allcores._default_pools``). With
``backend="auto"`` (the default) the planner measures the function first (see
``allcores.planner``); with any other backend the plan is just that backend. Nested in
a worker of an allcores pool, every call runs serially (see
``allcores.planner.settled_backend``).

``insights=True`` records the call's chunks (the planner's sample included, as a chunk
the caller ran); :func:`insights` sums up the latest such call from the same thread.

Examples
--------
>>> import allcores
>>> allcores.map(abs, [-1, -2, 3])
[1, 2, 3]
>>> [r for r in allcores.imap(abs, [-1, -2, 3])]
[1, 2, 3]
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator

from allcores import _runner
from allcores._main_guard import refuse_work_while_main_is_imported
from allcores._options import AUTO, MapCall, map_call
from allcores._results import concatenate_results, flatten_results
from allcores._types import BackendChoice, R, T
from allcores.cpu import cpu_count
from allcores.planner import fixed_plan, make_plan, settled_backend, settled_reason
from allcores.timeline import CallRecorder, Insights, Recorder

# This thread's latest call with insights=True: .recorder, its Recorder.
_latest = threading.local()


def insights() -> Insights:
    """The summary of this thread's latest call made with ``insights=True``.

    That call is the latest ``allcores.map`` / ``imap`` / ``imap_unordered`` from this
    thread with ``insights=True``: its chunks so far (an ``imap`` being read counts the
    chunks handed back until now), where and when each ran. With ``backend="auto"``,
    the items the planner ran in the caller to measure the function show as a chunk
    of the ``"caller"`` worker. A later call without ``insights=True`` keeps it.

    Returns
    -------
    Insights
        Wall time, per-worker busy and idle time, chunk sizes, the slowest chunks;
        ``str()`` is a table, ``.plot(path)`` draws the timeline.

    Raises
    ------
    ValueError
        If no call with ``insights=True`` was made from this thread.

    See Also
    --------
    allcores.Pool.insights : the same for the maps of one pool.
    allcores.Insights : what the summary holds.

    Examples
    --------
    >>> import allcores
    >>> allcores.map(abs, range(-50, 50), backend="thread", workers=2, chunksize=25,
    ...              insights=True)[:3]
    [50, 49, 48]
    >>> summary = allcores.insights()
    >>> summary.items, summary.chunks, summary.chunk_sizes()
    (100, 4, (25, 25, 25))
    >>> print(summary)
    allcores insights: 100 items in 4 chunks ...
    """
    recorder = getattr(_latest, "recorder", None)
    if recorder is None:
        raise ValueError("no call with insights=True was made from this thread: "
                         "e.g. allcores.map(fn, items, insights=True)")
    return recorder.summary()


def _start_recording(workers: int, backend: str) -> CallRecorder:
    _latest.recorder = Recorder(workers, backend)
    return _latest.recorder.start_call()


def _run_call(call: MapCall, *, eager: bool = False) -> Iterator[list[Any]]:
    """Plan the call (everything is checked by now), then run the plan."""
    refuse_work_while_main_is_imported()
    settled = settled_backend(call.backend)
    if settled is None and call.timeout is not None:
        settled = "process"  # the one backend that can stop a chunk that overruns
    recorder = None
    if settled is None:
        # Recording starts before the plan, so that a call failing in the planner's
        # sample still replaces the previous call's summary.
        if call.insights:
            recorder = _start_recording(call.workers or cpu_count(), AUTO)
        chosen = make_plan(call.fn, call.iterable, call.workers, call.chunksize)
        if recorder is not None:
            recorder.recorder.workers = chosen.workers
            recorder.recorder.backend = chosen.backend
    else:
        reason = (settled_reason(settled) if call.timeout is None or call.backend != AUTO
                  else "process: timeout= needs workers that can be stopped")
        chosen = fixed_plan(call.fn, call.iterable, settled, call.workers, call.chunksize,
                            reason)
        if call.insights:
            recorder = _start_recording(chosen.workers, settled)
    if chosen.backend != "serial":  # run on a pool made with the options asked for
        chosen._retries, chosen._timeout = call.retries, call.timeout
    return _runner.run(chosen, ordered=call.ordered, progress=call.progress, eager=eager,
                       recorder=recorder)


def imap(fn: Callable[[T], R], iterable: Iterable[T], *, workers: int | None = None,
         backend: BackendChoice = AUTO, chunksize: int | None = None,
         progress: bool = False, insights: bool = False, retries: int | None = None,
         timeout: float | None = None) -> Iterator[R]:
    """Lazily yield ``fn(item)`` for each item, in input order.

    Parameters
    ----------
    fn : callable
        Called as ``fn(item)``. Lambdas, closures, ``functools.partial`` objects and
        functions defined in ``__main__`` work on every backend (they travel by
        cloudpickle when pickle cannot name them).
    iterable : iterable
        The items. Read lazily, a bounded window of chunks ahead of the results, so
        that a generator or an endless ``itertools.count()`` works.
    workers : int, optional
        Workers of the parallel backends; default :func:`allcores.cpu_count` (the CPUs
        this process may really use).
    backend : {"auto", "process", "thread", "serial", "dask"}, optional
        Where the chunks run. ``"auto"`` (the default; ``ALLCORES_BACKEND`` overrides
        it) runs the first items in the caller (or a warm worker) to measure their
        cost, keeps their results (they are not computed again), and picks serial,
        threads or processes, whichever is predicted fastest: see
        :func:`allcores.plan`. ``"process"``: worker processes, for any Python
        function; ``"thread"``: threads, for functions that release the GIL (native
        code); ``"serial"``: here, one item after another; ``"dask"``: a Dask cluster
        (needs the ``dask`` extra).
    chunksize : int, optional
        Items per chunk. Default: adapted to the measured cost of the items, so that
        a chunk lasts about 20 ms (at most 65,536 items).
    progress : bool, optional
        Show a tqdm progress bar on stderr.
    insights : bool, optional
        Record where and when each chunk ran; :func:`allcores.insights` then returns
        the summary (and ``.plot(path)`` the timeline).
    retries : int, optional
        How many times a chunk whose worker process died is run again on a new
        worker before :class:`~allcores.WorkerCrashedError` is raised; default 1.
    timeout : float, optional
        Seconds a chunk may run: an overrunning chunk's worker is killed and
        :class:`~allcores.ChunkTimeoutError` raised. Only processes can stop a chunk:
        with ``backend="auto"`` the call then runs on processes; with ``"thread"``,
        ``"serial"`` or ``"dask"`` it is refused (``ValueError``).

    Returns
    -------
    iterator
        ``fn(item)`` for each item, in the order of the input. A generator:
        ``close()`` it to stop early.

    Raises
    ------
    TypeError, ValueError
        At the call, before anything runs, for a bad argument (``fn`` not callable,
        ``chunksize=0``, an unknown ``backend``, ...).
    Exception
        Whatever ``fn`` raised, with its own type and a note naming the item, once the
        results of every item before it were yielded.
        An exception raised by the input itself is raised after the results of every
        item before it.
    WorkerCrashedError
        A worker process died running a chunk, ``retries`` re-runs included.
    ChunkTimeoutError
        A chunk ran longer than ``timeout``.
    WorkerInitError
        The workers could not start; in particular, a script run with the
        ``spawn`` or ``forkserver`` start method that starts work outside its
        ``if __name__ == "__main__":`` guard (the message shows the fix).

    See Also
    --------
    imap_unordered : results as their chunks finish.
    map : all results at once, as a list.
    allcores.Pool.imap : the same on a pool of your own.

    Notes
    -----
    The call runs on a warm pool kept per backend and size (``allcores._default_pools``):
    only the first call pays for starting workers; they stop when the interpreter exits.
    Called from inside a worker of an allcores pool, it runs serially in that worker.
    Ctrl-C (``KeyboardInterrupt``) while waiting stops that pool's workers at once; the
    next call starts fresh ones.

    With ``backend="auto"`` the planner's sample runs at the call itself; the rest of
    the input is read only as results are asked for, a bounded window of chunks in
    flight. Closing the iterator (or breaking out of a ``for`` loop over it and
    dropping it) cancels the chunks not yet started.

    Examples
    --------
    >>> import itertools, math, allcores
    >>> results = allcores.imap(math.sqrt, [1, 4, 9], backend="thread", workers=2)
    >>> next(results)
    1.0
    >>> list(results)
    [2.0, 3.0]

    An endless input is read only as far as needed:

    >>> squares = allcores.imap(lambda n: n * n, itertools.count(), backend="process",
    ...                         workers=2)
    >>> list(itertools.islice(squares, 5))
    [0, 1, 4, 9, 16]
    >>> squares.close()  # cancels the chunks still queued
    """
    call = map_call(fn, iterable, workers=workers, backend=backend, chunksize=chunksize,
                    progress=progress, insights=insights, retries=retries, timeout=timeout)
    return flatten_results(_run_call(call))


def imap_unordered(fn: Callable[[T], R], iterable: Iterable[T], *,
                   workers: int | None = None, backend: BackendChoice = AUTO,
                   chunksize: int | None = None, progress: bool = False,
                   insights: bool = False, retries: int | None = None,
                   timeout: float | None = None) -> Iterator[R]:
    """Lazily yield ``fn(item)`` for each item, as their chunks finish.

    Like :func:`imap`, but a chunk's results are yielded as soon as it is done, not in
    input order (within a chunk, they keep their order): a slow item holds back only
    its own chunk.

    Parameters
    ----------
    fn : callable
        Called as ``fn(item)``. Lambdas, closures, ``functools.partial`` objects and
        functions defined in ``__main__`` work on every backend (they travel by
        cloudpickle when pickle cannot name them).
    iterable : iterable
        The items. Read lazily, a bounded window of chunks ahead of the results, so
        that a generator or an endless ``itertools.count()`` works.
    workers : int, optional
        Workers of the parallel backends; default :func:`allcores.cpu_count` (the CPUs
        this process may really use).
    backend : {"auto", "process", "thread", "serial", "dask"}, optional
        Where the chunks run. ``"auto"`` (the default; ``ALLCORES_BACKEND`` overrides
        it) runs the first items in the caller (or a warm worker) to measure their
        cost, keeps their results (they are not computed again), and picks serial,
        threads or processes, whichever is predicted fastest: see
        :func:`allcores.plan`. ``"process"``: worker processes, for any Python
        function; ``"thread"``: threads, for functions that release the GIL (native
        code); ``"serial"``: here, one item after another; ``"dask"``: a Dask cluster
        (needs the ``dask`` extra).
    chunksize : int, optional
        Items per chunk. Default: adapted to the measured cost of the items, so that
        a chunk lasts about 20 ms (at most 65,536 items).
    progress : bool, optional
        Show a tqdm progress bar on stderr.
    insights : bool, optional
        Record where and when each chunk ran; :func:`allcores.insights` then returns
        the summary (and ``.plot(path)`` the timeline).
    retries : int, optional
        How many times a chunk whose worker process died is run again on a new
        worker before :class:`~allcores.WorkerCrashedError` is raised; default 1.
    timeout : float, optional
        Seconds a chunk may run: an overrunning chunk's worker is killed and
        :class:`~allcores.ChunkTimeoutError` raised. Only processes can stop a chunk:
        with ``backend="auto"`` the call then runs on processes; with ``"thread"``,
        ``"serial"`` or ``"dask"`` it is refused (``ValueError``).

    Returns
    -------
    iterator
        ``fn(item)`` for each item, in the order their chunks finished. A generator:
        ``close()`` it to stop early.

    Raises
    ------
    TypeError, ValueError
        At the call, before anything runs, for a bad argument (``fn`` not callable,
        ``chunksize=0``, an unknown ``backend``, ...).
    Exception
        Whatever ``fn`` raised, with its own type and a note naming the item.
        An exception raised by the input itself is raised after the results of every
        item before it.
    WorkerCrashedError
        A worker process died running a chunk, ``retries`` re-runs included.
    ChunkTimeoutError
        A chunk ran longer than ``timeout``.
    WorkerInitError
        The workers could not start; in particular, a script run with the
        ``spawn`` or ``forkserver`` start method that starts work outside its
        ``if __name__ == "__main__":`` guard (the message shows the fix).

    See Also
    --------
    imap : results in input order.
    allcores.Pool.imap_unordered : the same on a pool of your own.

    Notes
    -----
    The call runs on a warm pool kept per backend and size (``allcores._default_pools``):
    only the first call pays for starting workers; they stop when the interpreter exits.
    Called from inside a worker of an allcores pool, it runs serially in that worker.
    Ctrl-C (``KeyboardInterrupt``) while waiting stops that pool's workers at once; the
    next call starts fresh ones.

    As for :func:`imap`, the input is read lazily and closing the iterator cancels
    the chunks not yet started.

    Examples
    --------
    >>> import allcores
    >>> sorted(allcores.imap_unordered(abs, [-3, 1, -2, 5], backend="thread", workers=2))
    [1, 2, 3, 5]
    """
    call = map_call(fn, iterable, workers=workers, backend=backend, chunksize=chunksize,
                    progress=progress, insights=insights, ordered=False, retries=retries,
                    timeout=timeout)
    return flatten_results(_run_call(call))


def map(fn: Callable[[T], R], iterable: Iterable[T], *, workers: int | None = None,
        backend: BackendChoice = AUTO, chunksize: int | None = None,
        progress: bool = False, insights: bool = False, retries: int | None = None,
        timeout: float | None = None) -> list[R]:
    """``list(map(fn, iterable))``, computed where it is fastest.

    Parameters
    ----------
    fn : callable
        Called as ``fn(item)``. Lambdas, closures, ``functools.partial`` objects and
        functions defined in ``__main__`` work on every backend (they travel by
        cloudpickle when pickle cannot name them).
    iterable : iterable
        The items. Read lazily, a bounded window of chunks ahead of the results: a
        long generator's items are never all in memory at once (its results are,
        in the list returned).
    workers : int, optional
        Workers of the parallel backends; default :func:`allcores.cpu_count` (the CPUs
        this process may really use).
    backend : {"auto", "process", "thread", "serial", "dask"}, optional
        Where the chunks run. ``"auto"`` (the default; ``ALLCORES_BACKEND`` overrides
        it) runs the first items in the caller (or a warm worker) to measure their
        cost, keeps their results (they are not computed again), and picks serial,
        threads or processes, whichever is predicted fastest: see
        :func:`allcores.plan`. ``"process"``: worker processes, for any Python
        function; ``"thread"``: threads, for functions that release the GIL (native
        code); ``"serial"``: here, one item after another; ``"dask"``: a Dask cluster
        (needs the ``dask`` extra).
    chunksize : int, optional
        Items per chunk. Default: adapted to the measured cost of the items, so that
        a chunk lasts about 20 ms (at most 65,536 items).
    progress : bool, optional
        Show a tqdm progress bar on stderr.
    insights : bool, optional
        Record where and when each chunk ran; :func:`allcores.insights` then returns
        the summary (and ``.plot(path)`` the timeline).
    retries : int, optional
        How many times a chunk whose worker process died is run again on a new
        worker before :class:`~allcores.WorkerCrashedError` is raised; default 1.
    timeout : float, optional
        Seconds a chunk may run: an overrunning chunk's worker is killed and
        :class:`~allcores.ChunkTimeoutError` raised. Only processes can stop a chunk:
        with ``backend="auto"`` the call then runs on processes; with ``"thread"``,
        ``"serial"`` or ``"dask"`` it is refused (``ValueError``).

    Returns
    -------
    list
        ``fn(item)`` for each item, in input order.

    Raises
    ------
    TypeError, ValueError
        At the call, before anything runs, for a bad argument (``fn`` not callable,
        ``chunksize=0``, an unknown ``backend``, ...).
    Exception
        Whatever ``fn`` raised, with its own type and a note naming the item.
        An exception raised by the input itself is raised after the results of every
        item before it.
    WorkerCrashedError
        A worker process died running a chunk, ``retries`` re-runs included.
    ChunkTimeoutError
        A chunk ran longer than ``timeout``.
    WorkerInitError
        The workers could not start; in particular, a script run with the
        ``spawn`` or ``forkserver`` start method that starts work outside its
        ``if __name__ == "__main__":`` guard (the message shows the fix).

    See Also
    --------
    imap : the results one at a time, as they come.
    plan : what ``backend="auto"`` would choose, and why.
    allcores.Pool.map : the same on a pool of your own.

    Notes
    -----
    The call runs on a warm pool kept per backend and size (``allcores._default_pools``):
    only the first call pays for starting workers; they stop when the interpreter exits.
    Called from inside a worker of an allcores pool, it runs serially in that worker.
    Ctrl-C (``KeyboardInterrupt``) while waiting stops that pool's workers at once; the
    next call starts fresh ones.

    Examples
    --------
    >>> import math, allcores
    >>> allcores.map(abs, [-1, -2, 3])
    [1, 2, 3]
    >>> allcores.map(math.sqrt, [4, 9, 16], backend="thread", workers=2)
    [2.0, 3.0, 4.0]

    Lambdas and closures work on worker processes too:

    >>> offset = 10
    >>> allcores.map(lambda x: x + offset, range(5), backend="process", workers=2)
    [10, 11, 12, 13, 14]

    Your function's exception reaches you as itself, with the item that raised it:

    >>> allcores.map(math.sqrt, [4, -1], backend="thread", workers=2)
    Traceback (most recent call last):
    ...
    ValueError: math domain error
    allcores: raised by item 1 of the input (in thread ...)
    """
    call = map_call(fn, iterable, workers=workers, backend=backend, chunksize=chunksize,
                    progress=progress, insights=insights, retries=retries, timeout=timeout)
    return concatenate_results(_run_call(call, eager=True))
