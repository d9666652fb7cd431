"""Deciding whether parallelism pays: ``backend="auto"`` and :func:`allcores.plan`.

The tutorial's lesson, made automatic: a pool pays only when each item costs more than
moving it. The planner times the first items *in the caller* (their results are kept
and handed back first, never computed again), estimates what moving an item and a chunk
costs, and predicts the run time serially and on ``workers`` workers:

- a function that releases the GIL (a native kernel, or one marked with
  :func:`nogil`) is weighed for threads: no pickling, no process start-up;
- any other function is weighed for processes: each item and result is pickled in the
  caller and unpickled in a worker (and back), and a pool that is not running yet
  costs its start-up;
- the backend with the better prediction wins, and parallel must beat serial by
  ``MIN_PREDICTED_SPEEDUP`` to be chosen.

``ALLCORES_BACKEND`` (``serial``, ``thread`` or ``process``) overrides the choice.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import pickle
import time
from typing import Any, Callable, Iterable, Iterator

from allcores import _validate as check
from allcores._execute import ChunkError, ItemError, run_items
from allcores.backends import BACKENDS
from allcores.cpu import cpu_count
from allcores.dispatch import SLICEABLE, ChunkSizer, known_length

BACKEND_ENV = "ALLCORES_BACKEND"
# Sample items in the caller until this much time or this many items: enough to time
# cheap items well (a few ms), little enough to be negligible next to work that pays.
SAMPLE_SECONDS = 0.005
SAMPLE_MAX_ITEMS = 1000
# Parallel must be predicted this much faster than serial: below it, the prediction's
# error is as big as the gain.
MIN_PREDICTED_SPEEDUP = 1.2
# Dispatch cost per chunk, measured on the benchmark machine (round trip through the
# pool's manager thread and a pipe for processes; a queue and a thread wake-up for
# threads). Per-item transfer cost is measured on the sample instead.
PROCESS_CHUNK_COST_S = 100e-6
THREAD_CHUNK_COST_S = 20e-6
# Starting a process pool (the forkserver, then each worker importing allcores); paid
# only when no warm pool of that size exists yet.
PROCESS_POOL_START_S = 0.25
THREAD_POOL_START_S = 0.001
# Parallel predictions for inputs of unknown length assume this many more items, so that
# the one-off start-up is weighed against a realistic stream, not an infinite one.
UNKNOWN_LENGTH_ITEMS = 10_000


def nogil(fn: Callable) -> Callable:
    """Mark ``fn`` as releasing the GIL for most of its run (it calls native code that
    does), so that ``backend="auto"`` runs it on threads. Returns ``fn`` itself."""
    try:
        fn.__allcores_nogil__ = True
    except (AttributeError, TypeError):  # builtins take no attributes: wrap them
        @functools.wraps(fn)
        def marked(*args, **kwargs):
            return fn(*args, **kwargs)

        marked.__allcores_nogil__ = True
        return marked
    return fn


def releases_gil(fn: Callable) -> bool:
    """Whether ``fn`` is known to run without the GIL: a native allcores kernel, a
    function marked with :func:`nogil`, or a ``functools.partial`` of one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return bool(getattr(fn, "__allcores_nogil__", False)
                or getattr(fn, "__module__", None) == "allcores.native")


def backend_override() -> str | None:
    """The backend named by ``ALLCORES_BACKEND``, or None when it is unset."""
    name = os.environ.get(BACKEND_ENV, "").strip()
    if not name or name == "auto":
        return None
    if name not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}: expected one of {sorted(BACKENDS)} or 'auto', "
                         f"got: {name!r}")
    return name


@dataclasses.dataclass
class Plan:
    """How ``allcores.map(fn, iterable)`` would run, and why.

    Attributes
    ----------
    backend : str
        ``"serial"``, ``"thread"`` or ``"process"``.
    workers : int
        Workers the parallel backends would use (1 for serial).
    chunksize : int
        Items per chunk to start with (chunks then adapt to measured cost).
    predicted_speedup : float
        Predicted serial time / time with this plan's backend (1.0 for serial).
    reason : str
        A sentence a person can read: the measured cost and the prediction.
    seconds_per_item : float | None
        The measured cost of one item in the caller; None if nothing was sampled.

    The items that were sampled to make the plan, and their results, stay with the plan:
    :meth:`map` and :meth:`imap` hand those results back first, then run the rest. For a
    one-shot iterator (a generator), run the plan with them rather than iterating the
    input again: the sampled items have already been read from it.
    """

    backend: str
    workers: int
    chunksize: int
    predicted_speedup: float
    reason: str
    seconds_per_item: float | None = None
    sampled_results: list = dataclasses.field(default_factory=list, repr=False)
    _rest: Iterable = dataclasses.field(default=(), repr=False)
    _length: int | None = dataclasses.field(default=None, repr=False)  # items in _rest
    _fn: Callable | None = dataclasses.field(default=None, repr=False)
    _first_item: int = dataclasses.field(default=0, repr=False)  # input index of _rest[0]
    _total: int | None = dataclasses.field(default=None, repr=False)  # items in the input
    # When the sample ran in the caller (perf_counter start, end), for allcores.insights.
    _sample_span: tuple[float, float] | None = dataclasses.field(default=None, repr=False)

    def imap(self, *, ordered: bool = True, progress: bool = False) -> Iterator[Any]:
        """Run the plan lazily: the sampled results first, then the rest of the input."""
        from allcores.pool import flatten_results
        from allcores.shortcuts import stream_with_plan

        return flatten_results(stream_with_plan(self, ordered=ordered, progress=progress))

    def map(self, *, progress: bool = False) -> list:
        """Run the plan: ``list(map(fn, iterable))``."""
        from allcores.pool import concatenate_results
        from allcores.shortcuts import stream_with_plan

        if self.backend == "serial" and not progress:
            return self._map_serially()
        return concatenate_results(stream_with_plan(self, progress=progress))

    def _map_serially(self) -> list:
        """The rest in one C-level loop in the caller, appended to the sampled results:
        when nothing is to be streamed or shown, chunks would only add copies."""
        rest = self._rest
        if type(rest) in SLICEABLE:
            rest = itertools.islice(rest, self._first_item, None)
        try:
            return run_items(self._fn, rest, star=False, into=list(self.sampled_results)).values
        except ItemError as failure:
            error = ChunkError.from_item(failure, "in the caller")
        # Raised outside the except clause: the error's __context__ stays its own.
        raise error.for_caller(self._first_item, self._first_item + error.position + 1)


@dataclasses.dataclass
class _Sample:
    items: list
    results: list
    seconds: float
    exhausted: bool  # the sample read the whole input
    span: tuple[float, float] | None = None  # perf_counter when it started and ended

    @property
    def seconds_per_item(self) -> float:
        return self.seconds / max(1, len(self.items))


def _take_sample(fn: Callable, iterator: Iterator) -> _Sample:
    """Run ``fn`` on the first items in the caller until ``SAMPLE_SECONDS`` pass."""
    items: list = []
    results: list = []
    spent = 0.0
    batch = 1
    started = time.perf_counter()
    while spent < SAMPLE_SECONDS and len(items) < SAMPLE_MAX_ITEMS:
        batch_items = list(itertools.islice(iterator, min(batch, SAMPLE_MAX_ITEMS - len(items))))
        if not batch_items:
            return _Sample(items, results, spent, True, (started, time.perf_counter()))
        try:
            outcome = run_items(fn, batch_items, star=False)
        except ItemError as failure:
            error = ChunkError.from_item(failure, "in the caller")
        else:
            error = None
        if error is not None:  # raised outside the except clause: see _map_serially
            raise error.for_caller(len(items), len(items) + len(batch_items))
        items += batch_items
        results += outcome.values
        spent += outcome.seconds
        batch *= 2  # batches, so that timing a 0.1 us item does not cost 1000 timer calls
    return _Sample(items, results, spent, False, (started, time.perf_counter()))


def _transfer_seconds_per_item(sample: _Sample) -> float:
    """Seconds per item spent moving an item and its result through pickle, on each side:
    the caller pickles items and unpickles results, a worker the reverse, so both sides
    pay one dumps and one loads of each."""
    if not sample.items:
        return 0.0
    start = time.perf_counter()
    try:
        items_payload = pickle.dumps(sample.items, pickle.HIGHEST_PROTOCOL)
        results_payload = pickle.dumps(sample.results, pickle.HIGHEST_PROTOCOL)
    except Exception:
        # Not plain-picklable (cloudpickle will cope, more slowly): assume 10 us.
        return 10e-6
    dumped = time.perf_counter()
    pickle.loads(items_payload)
    pickle.loads(results_payload)
    loaded = time.perf_counter() - dumped
    return ((dumped - start) + loaded) / len(sample.items)


def plan(fn: Callable[[Any], Any], iterable: Iterable[Any], *,
         workers: int | None = None) -> Plan:
    """Decide how to run ``fn`` over ``iterable``, without running all of it.

    Times the first items in the caller (``fn`` sees them there; their results are
    kept in the plan and reused), measures what pickling an item costs, and predicts
    serial, thread and process run times. See the module docstring for the model.

    Parameters
    ----------
    fn, iterable
        As for :func:`allcores.map`.
    workers : int, optional
        Workers for the parallel backends; default :func:`allcores.cpu_count`.

    Returns
    -------
    Plan
        ``plan.backend``, ``plan.workers``, ``plan.chunksize``,
        ``plan.predicted_speedup`` and ``plan.reason``; ``plan.map()`` runs it.
    """
    from allcores._main_guard import refuse_work_while_main_is_imported
    from allcores.pool import check_map_arguments
    from allcores.shortcuts import has_warm_pool

    refuse_work_while_main_is_imported()
    check_map_arguments(fn, iterable, None)
    workers = cpu_count() if workers is None else check.integer("workers", workers, min=1)
    length = known_length(iterable)
    iterator = iter(iterable)
    override = backend_override()
    gil_free = releases_gil(fn)
    sample = _Sample([], [], 0.0, False) if override is not None else _take_sample(fn, iterator)
    if sample.exhausted:
        rest_known = 0
    else:
        rest_known = None if length is None else length - len(sample.items)
    # The rest of the input: a sliceable input is handed on whole (chunks are then cut
    # as slices from _first_item on), anything else as the iterator the sample read.
    rest = iterable if type(iterable) in SLICEABLE else iterator
    common = dict(sampled_results=sample.results, _rest=rest, _length=rest_known, _fn=fn,
                  _first_item=len(sample.items), _total=length, _sample_span=sample.span)

    if override is not None:
        return Plan(override, 1 if override == "serial" else workers, 1, 1.0,
                    f"{override}: {BACKEND_ENV}={override} overrides the automatic choice",
                    None, **common)

    cost = sample.seconds_per_item
    n = UNKNOWN_LENGTH_ITEMS if rest_known is None else rest_known
    n_text = "an unknown number of" if rest_known is None else f"{rest_known:,}"
    serial_s = n * cost
    # The first chunk the dispatcher will cut, seeded with the measured cost.
    chunk = ChunkSizer(workers, length=n, seconds_per_item=cost).size(0)
    chunks = -(-n // chunk) if n else 0
    usable = min(workers, max(n, 1))
    if gil_free:
        backend, chunk_cost = "thread", THREAD_CHUNK_COST_S
        start = 0.0 if has_warm_pool("thread", workers) else THREAD_POOL_START_S
        caller_s, worker_s = 0.0, n * cost
        moving = f"dispatch costs {chunk_cost * 1e6:.0f} us per chunk"
    else:
        backend, chunk_cost = "process", PROCESS_CHUNK_COST_S
        start = 0.0 if has_warm_pool("process", workers) else PROCESS_POOL_START_S
        transfer = _transfer_seconds_per_item(sample)
        caller_s, worker_s = n * transfer, n * (cost + transfer)
        moving = (f"moving an item and its result costs {transfer * 1e6:.2g} us in "
                  f"the caller and {transfer * 1e6:.2g} us in a worker, dispatch "
                  f"{chunk_cost * 1e6:.0f} us per chunk of {chunk:,}")
    cores = max(1, cpu_count())
    # Workers and the caller share the cores: the busiest of them bounds the run.
    parallel_s = start + chunks * chunk_cost + max(
        worker_s / usable, caller_s, (worker_s + caller_s) / cores)
    speedup = serial_s / parallel_s if parallel_s > 0 else 1.0
    start_text = f", start-up {start:.2g} s" if start else ""
    if n == 0 or speedup < MIN_PREDICTED_SPEEDUP:
        reason = (f"serial: {cost * 1e6:.3g} us per item, {n_text} items left; {moving}"
                  f"{start_text}; {usable} {backend} workers would be {speedup:.2g}x as fast")
        return Plan("serial", 1, chunk, 1.0, reason, cost, **common)
    reason = (f"{backend}: {cost * 1e6:.3g} us per item, {n_text} items left; {moving}"
              f"{start_text}; {usable} workers predicted {speedup:.2g}x as fast as serial")
    return Plan(backend, workers, chunk, speedup, reason, cost, **common)
