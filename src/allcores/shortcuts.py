"""``allcores.map`` / ``imap`` / ``imap_unordered``: one call, on a warm default pool.

With ``backend="auto"`` (the default) each call is planned first (``allcores.plan``):
the first items run in the caller to time them, and the call then continues serially,
on threads or on processes, whichever is predicted fastest. Each (backend, workers) pair
gets one pool, created on first use and kept for the next call, so only the first call
pays for starting workers. The pools are shut down at interpreter exit. A pool that can
no longer take work (stopped by Ctrl-C, broken because its workers could not start) is
replaced by a fresh one on the next call; so is every pool in a child made by
``os.fork()``, whose inherited pools belong to the parent.

``insights=True`` records the call's chunks (the planner's sample included, as a chunk
the caller ran); :func:`insights` sums up the latest such call from the same thread.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from allcores import _validate as check
from allcores._main_guard import refuse_work_while_main_is_imported
from allcores.backends import running_in_worker, validate_backend_name
from allcores.cpu import cpu_count
from allcores.planner import Plan, backend_override, plan
from allcores.pool import (
    Pool,
    check_map_arguments,
    concatenate_results,
    flatten_results,
    progress_bar,
)
from allcores.timeline import CallRecorder, Insights, Recorder

AUTO = "auto"

_lock = threading.Lock()
_default_pools: dict[tuple[str, int], Pool] = {}  # under _lock
# This thread's latest call with insights=True: .recorder, its Recorder.
_latest = threading.local()


def default_pool(backend: str = "process", workers: int | None = None) -> Pool:
    """The warm pool that the module-level functions use for this backend and size."""
    validate_backend_name(backend)
    workers = cpu_count() if workers is None else check.integer("workers", workers, min=1)
    with _lock:
        pool = _default_pools.get((backend, workers))
        if pool is None or pool.closed:
            pool = _default_pools[(backend, workers)] = Pool(workers, backend=backend)
        return pool


def _forget_the_parents_pools() -> None:
    # In a fork child: the parent's pools have no workers here, and the lock may have
    # been held by another thread at the fork.
    global _lock
    _lock = threading.Lock()
    _default_pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_pools)


def has_warm_pool(backend: str, workers: int) -> bool:
    """Whether a default pool for this backend and size is already running."""
    with _lock:
        pool = _default_pools.get((backend, workers))
        return pool is not None and not pool.closed


def insights() -> Insights:
    """The summary of this thread's latest ``map`` / ``imap`` / ``imap_unordered`` call
    made with ``insights=True``: its chunks so far, where and when each ran. See
    :meth:`allcores.Pool.insights`."""
    recorder = getattr(_latest, "recorder", None)
    if recorder is None:
        raise ValueError("no call with insights=True was made from this thread: "
                         "e.g. allcores.map(fn, items, insights=True)")
    return recorder.summary()


def _start_recording(workers: int, backend: str) -> CallRecorder:
    _latest.recorder = Recorder(workers, backend)
    return _latest.recorder.start_call()


def _record_sample(chosen: Plan, recorder: CallRecorder | None) -> None:
    if recorder is not None and chosen._sample_span is not None and chosen.sampled_results:
        recorder.add_in_caller(0, len(chosen.sampled_results), *chosen._sample_span)


def stream_with_plan(chosen: Plan, *, ordered: bool = True, progress: bool = False,
                     chunksize: int | None = None,
                     recorder: CallRecorder | None = None) -> Iterator[list]:
    """The chunk results of a planned call: the sampled results, then the rest."""
    bar = progress_bar(chosen._total) if progress else None
    if bar is not None:
        bar.update(len(chosen.sampled_results))
    pool = default_pool(chosen.backend, chosen.workers)
    _record_sample(chosen, recorder)
    rest = pool._chunk_results(
        chosen._fn, chosen._rest, chunksize, ordered=ordered,
        seconds_per_item=chosen.seconds_per_item, length=chosen._length,
        first_item=chosen._first_item, bar=bar, recorder=recorder)
    if chosen.sampled_results:
        yield list(chosen.sampled_results)  # a copy: consumers may extend what they get
    yield from rest


def _chunk_results(fn, iterable, workers, backend, chunksize, progress, ordered,
                   insights=False, eager=False):
    """Validate everything now (at the call), then stream chunk results. ``eager``: the
    caller wants every result at once (``map``), nothing is gained by streaming."""
    refuse_work_while_main_is_imported()
    check_map_arguments(fn, iterable, chunksize)
    if not isinstance(insights, bool):
        raise TypeError(f"insights: expected True or False, got: {insights!r}")
    if backend != AUTO:
        validate_backend_name(backend)
    if workers is not None:
        check.integer("workers", workers, min=1)
    if running_in_worker() and backend in (AUTO, "thread", "process", "dask"):
        backend = "serial"  # nested in a worker of ours: see running_in_worker()
    elif backend == AUTO:
        backend = backend_override() or AUTO
    if backend == AUTO:
        # Recording starts before the plan, so that a call failing in the planner's
        # sample still replaces the previous call's summary.
        recorder = _start_recording(workers or cpu_count(), AUTO) if insights else None
        chosen = plan(fn, iterable, workers=workers)
        if recorder is not None:
            recorder.recorder.workers = chosen.workers
            recorder.recorder.backend = chosen.backend
        if eager and chosen.backend == "serial" and not progress:
            return iter([_map_serially(chosen, recorder)])
        return stream_with_plan(chosen, ordered=ordered, progress=progress,
                                chunksize=chunksize, recorder=recorder)
    pool = default_pool(backend, workers)
    recorder = _start_recording(pool.workers, pool.backend) if insights else None
    return pool._chunk_results(fn, iterable, chunksize, ordered=ordered, progress=progress,
                               recorder=recorder)


def _map_serially(chosen: Plan, recorder: CallRecorder | None) -> list:
    if recorder is None:
        return chosen.map()
    _record_sample(chosen, recorder)
    started = time.perf_counter()
    results = chosen.map()
    rest = len(results) - len(chosen.sampled_results)
    if rest:
        recorder.add_in_caller(chosen._first_item, rest, started, time.perf_counter())
    return results


def imap(fn: Callable[[Any], Any], iterable: Iterable[Any], *, workers: int | None = None,
         backend: str = AUTO, chunksize: int | None = None,
         progress: bool = False, insights: bool = False) -> Iterator[Any]:
    """Lazily yield ``fn(item)`` for each item, in order.

    Parameters
    ----------
    fn, iterable
        As for the builtin ``map``; lambdas and closures work on every backend.
    workers : int, optional
        Default :func:`allcores.cpu_count`.
    backend : {"auto", "process", "thread", "serial", "dask"}
        ``"auto"`` times the first items in the caller (they are not computed again)
        and picks what is predicted fastest; see :func:`allcores.plan`.
    chunksize : int, optional
        Items per chunk; default: adapted to the measured cost of items.
    progress : bool
        Show a tqdm progress bar on stderr.
    insights : bool
        Record where and when each chunk ran; :func:`allcores.insights` then returns
        the summary (and ``.plot(path)`` the timeline). See ``allcores.timeline``.
    """
    return flatten_results(_chunk_results(fn, iterable, workers, backend, chunksize,
                                          progress, ordered=True, insights=insights))


def imap_unordered(fn: Callable[[Any], Any], iterable: Iterable[Any], *,
                   workers: int | None = None, backend: str = AUTO,
                   chunksize: int | None = None, progress: bool = False,
                   insights: bool = False) -> Iterator[Any]:
    """Like :func:`imap`, but yield results as their chunks finish."""
    return flatten_results(_chunk_results(fn, iterable, workers, backend, chunksize,
                                          progress, ordered=False, insights=insights))


def map(fn: Callable[[Any], Any], iterable: Iterable[Any], *, workers: int | None = None,
        backend: str = AUTO, chunksize: int | None = None,
        progress: bool = False, insights: bool = False) -> list:
    """``list(map(fn, iterable))``, computed where it is fastest. See :func:`imap`."""
    return concatenate_results(_chunk_results(fn, iterable, workers, backend, chunksize,
                                              progress, ordered=True, insights=insights,
                                              eager=True))
