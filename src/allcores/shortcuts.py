"""``allcores.map`` / ``imap`` / ``imap_unordered``: one call, on a warm default pool.

Every call becomes a :class:`~allcores.planner.Plan` that ``allcores._runner`` runs on
the warm default pool of its backend (``allcores._default_pools``). With
``backend="auto"`` (the default) the planner measures the function first (see
``allcores.planner``); with any other backend the plan is just that backend. Nested in
a worker of an allcores pool, every call runs serially (see
``allcores.planner.settled_backend``).

``insights=True`` records the call's chunks (the planner's sample included, as a chunk
the caller ran); :func:`insights` sums up the latest such call from the same thread.
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
    """Lazily yield ``fn(item)`` for each item, in order.

    Parameters
    ----------
    fn, iterable
        As for the builtin ``map``; lambdas and closures work on every backend.
    workers : int, optional
        Default :func:`allcores.cpu_count`.
    backend : {"auto", "process", "thread", "serial", "dask"}
        ``"auto"`` measures the first items (they are not computed again) and picks
        what is predicted fastest; see :func:`allcores.plan`.
    chunksize : int, optional
        Items per chunk; default: adapted to the measured cost of items.
    progress : bool
        Show a tqdm progress bar on stderr.
    insights : bool
        Record where and when each chunk ran; :func:`allcores.insights` then returns
        the summary (and ``.plot(path)`` the timeline). See ``allcores.timeline``.
    retries, timeout : optional
        As for :class:`allcores.Pool` (the call runs on a warm pool made with them).
        A chunk can be stopped only on processes: ``timeout`` with ``backend="auto"``
        runs on processes, with ``"thread"``, ``"serial"`` or ``"dask"`` it is refused.
    """
    call = map_call(fn, iterable, workers=workers, backend=backend, chunksize=chunksize,
                    progress=progress, insights=insights, retries=retries, timeout=timeout)
    return flatten_results(_run_call(call))


def imap_unordered(fn: Callable[[T], R], iterable: Iterable[T], *,
                   workers: int | None = None, backend: BackendChoice = AUTO,
                   chunksize: int | None = None, progress: bool = False,
                   insights: bool = False, retries: int | None = None,
                   timeout: float | None = None) -> Iterator[R]:
    """Like :func:`imap`, but yield results as their chunks finish."""
    call = map_call(fn, iterable, workers=workers, backend=backend, chunksize=chunksize,
                    progress=progress, insights=insights, ordered=False, retries=retries,
                    timeout=timeout)
    return flatten_results(_run_call(call))


def map(fn: Callable[[T], R], iterable: Iterable[T], *, workers: int | None = None,
        backend: BackendChoice = AUTO, chunksize: int | None = None,
        progress: bool = False, insights: bool = False, retries: int | None = None,
        timeout: float | None = None) -> list[R]:
    """``list(map(fn, iterable))``, computed where it is fastest. See :func:`imap`."""
    call = map_call(fn, iterable, workers=workers, backend=backend, chunksize=chunksize,
                    progress=progress, insights=insights, retries=retries, timeout=timeout)
    return concatenate_results(_run_call(call, eager=True))
