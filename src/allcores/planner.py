"""Deciding whether parallelism pays: ``backend="auto"`` and :func:`allcores.plan`.

The tutorial's lesson, made automatic: a pool pays only when each item costs more than
moving it. For each call the planner needs three figures about ``fn``, and measures them
on the call's own first items (their results are kept and handed back first, never
computed again):

``c``  seconds per item: batches of 1, 2, 4, ... items run until ``SAMPLE_SECONDS`` of
       the caller's time or ``SAMPLE_MAX_ITEMS`` items; the lesser per-item cost of
       the last two (the biggest: other work on the machine only slows a batch
       down). The sample runs in a worker of the warm process pool when there is one
       (a crash there is a ``WorkerCrashedError``, not the caller's death), else in
       the caller;
``t``  seconds to move an item and its result through pickle, on each side: the
       median of three timings of the sample's pickling;
``e``  how well two threads run it at once (1.0: twice as fast as one; 0.5: the GIL
       serialises them): timed on the next items when an item costs at least
       ``THREAD_PROBE_MIN_ITEM_S`` (for any function: many release the GIL without
       saying so), unless processes are already predicted within ``NEAR_IDEAL`` of
       the ideal speedup (GIL-bound code would make the timing a serial tax). For a
       native kernel or a function marked with :func:`nogil`, a shortfall can only be
       the machine's (other processes hold cores): it then weighs on processes as
       well (their first and last terms below divided by e); untimed, such a function
       is taken to scale (e = 1). An unmarked function is weighed for threads only
       with what was measured.

For ``n`` items left, ``w`` workers (``u = min(w, n)`` usable) and ``k`` cores, with
``s`` the start-up of a pool that is not running yet and ``d`` the dispatch cost of a
chunk (``chunks`` of the first chunk's size)::

    serial    n * c
    threads   s + chunks * d + n * c / (min(u, k) * e)
    processes s + chunks * d + max(n * (c + t) / u, n * t, n * (c + 2 t) / k)

(processes: the workers' share, the caller's pickling, and both on the cores there
are). The fastest prediction wins if it beats serial by ``MIN_PREDICTED_SPEEDUP``.

What was measured is remembered per function for ``MEMORY_S`` seconds: a later call of
the same function is checked on its first item instead of sampled (a 10-item map then
costs microseconds),
and for a call of about as many items (within 2x) as the last decision's, that decision
is changed only when the prediction crosses the bar by ``HYSTERESIS``, so that plans of
the same call near the crossover do not flip. A call whose items all together cost less
than handing one chunk to a thread is serial without weighing anything.

While the first item is sampled, the other workers are not idle: when that one item
has run for ``SPECULATE_AFTER_S`` (the items are expensive: parallel will pay unless
they are few), the next items go to the pool, one per other worker, until it ends.

``ALLCORES_BACKEND`` (``serial``, ``thread`` or ``process``) overrides the choice.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Callable, Generic, Iterable, Iterator

from allcores import _default_pools, _runner
from allcores._memory import Measured, memory
from allcores._options import AUTO, check_map_arguments, workers_option
from allcores._results import concatenate_results, flatten_results
from allcores._sampling import (  # noqa: F401  (SAMPLE_MAX_ITEMS: part of the model)
    SAMPLE_MAX_ITEMS,
    SPECULATE_AFTER_S,
    Head,
    Input,
    run_sample,
    thread_efficiency,
    transfer_seconds_per_item,
    worth_a_thread_probe,
)
from allcores._types import P, R, T
from allcores.backends import BACKENDS, running_in_worker
from allcores.cpu import cpu_count
from allcores.dispatch import SLICEABLE, ChunkSizer, known_length

BACKEND_ENV = "ALLCORES_BACKEND"
# Parallel must be predicted this much faster than serial: below it, the prediction's
# error is as big as the gain.
MIN_PREDICTED_SPEEDUP = 1.2
# A remembered decision changes only when the new prediction clears the bar by this
# fraction (above 1.2 * 1.15 to go parallel, below 1.2 / 1.15 to leave it).
HYSTERESIS = 0.15
# Dispatch cost per chunk (round trip through the pool's manager thread and a socket
# for processes; a queue and a thread wake-up for threads). Per-item transfer cost is
# measured on the sample instead.
PROCESS_CHUNK_COST_S = 100e-6
THREAD_CHUNK_COST_S = 20e-6
# Starting a pool; paid only when no warm pool of that size exists yet.
PROCESS_POOL_START_S = 0.25
THREAD_POOL_START_S = 0.001
# Parallel predictions for inputs of unknown length assume this many more items, so that
# the one-off start-up is weighed against a realistic stream, not an infinite one.
UNKNOWN_LENGTH_ITEMS = 10_000


# --- which functions release the GIL -----------------------------------------------------


def nogil(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark ``fn`` as releasing the GIL for most of its run.

    For a function that calls native code which releases the GIL (a Cython
    ``with nogil:`` block, numba's ``nogil=True``, most of numpy's heavy operations):
    ``backend="auto"`` then weighs threads for it even before timing them, and the
    block API (``allcores.blocks``) runs it on threads. Usable as a decorator. It
    changes nothing about how the function runs.

    Parameters
    ----------
    fn : callable
        The function to mark.

    Returns
    -------
    callable
        ``fn`` itself, marked; for a builtin, which takes no attributes, a marked
        wrapper with its signature.

    Notes
    -----
    A function marked wrongly (it holds the GIL) still gives the right results; only
    threads run it no faster than one. The native kernels of ``allcores.native`` need
    no mark.

    Examples
    --------
    >>> import zlib, allcores
    >>> @allcores.nogil
    ... def checksum(data):
    ...     return zlib.crc32(data)  # zlib releases the GIL on large buffers
    >>> checksum(b"allcores")
    1902608238
    >>> from allcores.planner import releases_gil
    >>> releases_gil(checksum), releases_gil(len)
    (True, False)
    """
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
    while True:
        if (getattr(fn, "__allcores_nogil__", False)
                or getattr(fn, "__module__", None) == "allcores.native"):
            return True
        if not isinstance(fn, functools.partial):
            return False
        fn = fn.func  # a partial marked itself, or of a marked function


# --- the resolver: what "auto" means before anything is measured -------------------------


def backend_override() -> str | None:
    """The backend named by ``ALLCORES_BACKEND``, or None when it is unset (or "auto").

    Read at each call, never at import: a bad value cannot break ``import allcores``;
    it is a ValueError (naming the variable and the values it takes) from the first
    call that would run on it, and a usage error from ``allcores bench`` / ``demo``.
    """
    name = os.environ.get(BACKEND_ENV, "").strip()
    if not name or name == AUTO:
        return None
    if name not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}: expected one of {', '.join(sorted(BACKENDS))} "
                         f"or auto, got: {name!r}")
    return name


def settled_backend(backend: str) -> str | None:
    """Where a call of the module-level API or a kernel runs, when that is settled
    without measuring anything; None when it is for the planner (maps) or the work
    estimate (kernels) to decide. In this order:

    - ``"serial"`` on a worker of an allcores pool, whatever was asked: the outer call
      already keeps every core busy, and a nested map on the same pool could wait for
      workers that are all waiting for it (see ``running_in_worker``);
    - ``backend`` itself when it is not ``"auto"``;
    - ``ALLCORES_BACKEND`` when it is set.
    """
    if running_in_worker():
        return "serial"
    if backend != AUTO:
        return backend
    return backend_override()


# --- the plan ------------------------------------------------------------------------------


class Plan(Generic[R]):
    """How ``allcores.map(fn, iterable)`` runs, and why.

    What :func:`allcores.plan` returns: a value that :meth:`map` and :meth:`imap`
    execute exactly as it says. The items the planner ran to measure the function stay
    with it, with their results: :meth:`map` and :meth:`imap` hand those back first,
    then run the rest of the input. Made by :func:`allcores.plan`; one made by hand
    has no input to run.

    Parameters
    ----------
    backend : str
        ``"serial"``, ``"thread"`` or ``"process"`` (any backend when forced).
    workers : int
        Workers the parallel backends use (1 for serial).
    chunksize : int
        Items in the first chunk, or the ``chunksize`` asked for.
    predicted_speedup : float
        Predicted serial time over the time with this plan's backend.
    reason : str
        Why this backend: the measured costs and the prediction, in words.
    seconds_per_item : float, optional
        The measured cost of one item.

    Attributes
    ----------
    backend : str
        ``"serial"``, ``"thread"`` or ``"process"`` (any backend when forced).
    workers : int
        Workers the parallel backends use (1 for serial).
    chunksize : int
        Items in the first chunk (chunks then adapt to measured cost), or the
        ``chunksize`` asked for.
    predicted_speedup : float
        Predicted serial time / time with this plan's backend (1.0 for serial).
    reason : str
        A sentence a person can read: the measured costs and the prediction.
    seconds_per_item : float or None
        The measured (or remembered) cost of one item; None if nothing was measured.
    sampled_results : list
        The results of the items the planner ran itself, in input order.

    See Also
    --------
    plan : makes a Plan.

    Notes
    -----
    For a one-shot iterator (a generator), run the plan rather than iterating the input
    again: the sampled items have already been read from it.

    Examples
    --------
    With one worker, nothing can beat serial:

    >>> import allcores
    >>> chosen = allcores.plan(abs, range(-1000, 1000), workers=1)
    >>> chosen.backend
    'serial'
    >>> chosen.reason
    'serial: ... us per item (...), ... items left; ...'
    >>> chosen.map()[:3]
    [1000, 999, 998]
    """

    #: ``"serial"``, ``"thread"`` or ``"process"`` (any backend when forced).
    backend: str
    #: Workers the parallel backends use (1 for serial).
    workers: int
    #: Items in the first chunk, or the ``chunksize`` asked for.
    chunksize: int
    #: Predicted serial time / time with this plan's backend (1.0 for serial).
    predicted_speedup: float
    #: The measured (or remembered) cost of one item; None if nothing was measured.
    seconds_per_item: float | None

    def __init__(self, backend: str, workers: int, chunksize: int,
                 predicted_speedup: float, reason: str,
                 seconds_per_item: float | None = None) -> None:
        self.backend = backend
        self.workers = workers
        self.chunksize = chunksize
        self.predicted_speedup = predicted_speedup
        # The reason, or a function that words it: formatting floats costs microseconds,
        # which a 10-item map should not pay for a sentence nobody reads.
        self._reason: str | Callable[[], str] = reason
        self.seconds_per_item = seconds_per_item
        # What running the plan needs, set by the planner (_with_input): not part of the
        # constructor's signature, which shows what a reader of a plan meets.
        self._fn: Callable | None = None
        self._head: list[Head] = []
        self._rest: Iterable = ()
        self._first_item = 0                        # input index of _rest[0]
        self._rest_length: int | None = None
        self._total: int | None = None              # items in the input
        self._fixed_chunksize: int | None = None
        # retries= and timeout= of the pool the rest runs on, when asked for (None: default)
        self._retries: int | None = None
        self._timeout: float | None = None

    @classmethod
    def _with_input(cls, backend: str, workers: int, chunksize: int,
                    predicted_speedup: float, reason: str | Callable[[], str],
                    seconds_per_item: float | None, fn: Callable, head: list[Head],
                    rest: Iterable, first_item: int, rest_length: int | None,
                    total: int | None, fixed_chunksize: int | None) -> Plan:
        """A plan that runs ``fn``: the sampled ``head``, then ``rest`` (items
        ``first_item ..``, ``rest_length`` of them if known, out of ``total``)."""
        made = cls(backend, workers, chunksize, predicted_speedup, reason, seconds_per_item)
        made._fn, made._head, made._rest = fn, head, rest
        made._first_item, made._rest_length, made._total = first_item, rest_length, total
        made._fixed_chunksize = fixed_chunksize
        return made

    @property
    def reason(self) -> str:
        """Why this backend: the measured costs and the prediction, in words."""
        if callable(self._reason):
            self._reason = self._reason()
        return self._reason

    def __repr__(self) -> str:
        return (f"Plan(backend={self.backend!r}, workers={self.workers}, "
                f"chunksize={self.chunksize}, predicted_speedup={self.predicted_speedup:.3g}, "
                f"reason={self.reason!r})")

    @property
    def sampled_results(self) -> list[R]:
        """The results of the items the planner ran itself, in input order.

        Examples
        --------
        >>> import allcores
        >>> chosen = allcores.plan(abs, [-3, -2, -1, 0, 1, 2, 3])
        >>> done = chosen.sampled_results
        >>> done == [3, 2, 1, 0, 1, 2, 3][:len(done)]
        True
        >>> chosen.map()  # the sampled items are not run again
        [3, 2, 1, 0, 1, 2, 3]
        """
        return [r for head in self._head if head.results is not None for r in head.results]

    def imap(self, *, ordered: bool = True, progress: bool = False) -> Iterator[R]:
        """Run the plan lazily: the sampled results first, then the rest of the input.

        Parameters
        ----------
        ordered : bool, optional
            Yield the rest's results in input order (True, as :func:`allcores.imap`),
            or as their chunks finish (False, as :func:`allcores.imap_unordered`).
        progress : bool, optional
            Show a tqdm progress bar on stderr.

        Returns
        -------
        iterator
            ``fn(item)`` for each item of the input.

        Raises
        ------
        Exception
            Whatever ``fn`` or the input raised, as :func:`allcores.imap` raises it.

        Examples
        --------
        >>> import allcores
        >>> chosen = allcores.plan(abs, [-3, -2, -1, 0, 1])
        >>> list(chosen.imap())
        [3, 2, 1, 0, 1]
        """
        return flatten_results(_runner.run(self, ordered=ordered, progress=progress))

    def map(self, *, progress: bool = False) -> list[R]:
        """Run the plan: ``list(map(fn, iterable))``.

        Parameters
        ----------
        progress : bool, optional
            Show a tqdm progress bar on stderr.

        Returns
        -------
        list
            ``fn(item)`` for each item of the input, in input order (the sampled
            results included, not computed again).

        Raises
        ------
        Exception
            Whatever ``fn`` or the input raised, as :func:`allcores.map` raises it.

        Examples
        --------
        >>> import allcores
        >>> allcores.plan(abs, [-3, -2, -1, 0, 1]).map()
        [3, 2, 1, 0, 1]
        """
        return concatenate_results(_runner.run(self, progress=progress, eager=True))


def fixed_plan(fn: Callable, iterable: Iterable, backend: str, workers: int | None,
               chunksize: int | None, reason: str) -> Plan:
    """The plan of a call whose backend is settled (nothing is sampled)."""
    if workers is None:
        workers = cpu_count()
    length = known_length(iterable)
    return Plan._with_input(backend, 1 if backend == "serial" else workers, chunksize or 1,
                            1.0, reason, None, fn, [], iterable, 0, length, length, chunksize)


# --- the cost model --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Prediction:
    backend: str
    speedup: float
    text: Callable[[], str]  # words what moving the work costs there


def _predict(measured: Measured, n: int, workers: int, cores: int, chunk: int,
             gil_free: bool) -> list[_Prediction]:
    """The parallel backends worth weighing for ``n`` items in chunks of ``chunk``, with
    their predicted speedups."""
    c = measured.seconds_per_item
    serial_s = n * c
    chunks = -(-n // chunk) if n else 0
    usable = min(workers, max(n, 1))
    predictions = []
    e = measured.thread_efficiency
    # For a function known to release the GIL, threads that fell short of running fully
    # in parallel say that the machine is busy (other processes hold cores), which
    # slows worker processes just as much: the shortfall weighs on both.
    busy = e if gil_free and e is not None else 1.0
    if gil_free and e is None:
        e = 1.0  # not timed (items too cheap, or too few): taken at its word
    if e is not None and e > 0:
        start = 0.0 if _default_pools.has_warm_pool("thread", workers) else THREAD_POOL_START_S
        parallel_s = start + chunks * THREAD_CHUNK_COST_S + serial_s / (min(usable, cores) * e)
        how = ("measured" if measured.thread_efficiency is not None else "assumed")
        predictions.append(_Prediction(
            "thread", serial_s / parallel_s if parallel_s > 0 else 1.0,
            lambda: f"threads run {e:.0%} in parallel ({how}), dispatch "
                    f"{THREAD_CHUNK_COST_S * 1e6:.0f} us per chunk"))
    t = measured.transfer_s if measured.transfer_s is not None else 10e-6
    process_start = (0.0 if _default_pools.has_warm_pool("process", workers)
                     else PROCESS_POOL_START_S)
    caller_s, worker_s = n * t, n * (c + t)
    # Workers and the caller share the cores: the busiest of them bounds the run.
    parallel_s = process_start + chunks * PROCESS_CHUNK_COST_S + max(
        worker_s / (usable * busy), caller_s, (worker_s + caller_s) / (cores * busy))
    predictions.append(_Prediction(
        "process", serial_s / parallel_s if parallel_s > 0 else 1.0,
        lambda: f"moving an item and its result costs {t * 1e6:.2g} us on each side, "
                f"dispatch {PROCESS_CHUNK_COST_S * 1e6:.0f} us per chunk of {chunk:,}"
                + (f", start-up {process_start:.2g} s" if process_start else "")
                + (f", the machine busy ({busy:.0%} free)" if busy < 1 else "")))
    return predictions


def _decide(predictions: list[_Prediction], previous: str | None) -> _Prediction | None:
    """The parallel prediction to follow, or None for serial. A previous decision for
    the same function is kept unless the new figures clear the bar by HYSTERESIS."""
    best = max(predictions, key=lambda p: p.speedup)
    bar = MIN_PREDICTED_SPEEDUP
    if previous == "serial":
        bar *= 1 + HYSTERESIS
    elif previous is not None:
        kept = next((p for p in predictions if p.backend == previous), None)
        if kept is not None and kept.speedup >= bar / (1 + HYSTERESIS):
            return kept if best.speedup < kept.speedup * (1 + HYSTERESIS) else best
    return best if best.speedup >= bar else None


# --- plan() ------------------------------------------------------------------------------------


def plan(fn: Callable[[T], R], iterable: Iterable[T], *,
         workers: int | None = None) -> Plan[R]:
    """Decide how to run ``fn`` over ``iterable``, without running all of it.

    What ``backend="auto"`` does before each ``allcores.map``, made visible: it times
    the first items (their results are kept in the plan and reused), measures what
    pickling an item costs and, for costly items, how two threads fare, and predicts
    serial, thread and process run times (see ``allcores.planner`` for the model).
    Parallel is chosen only when predicted at least 1.2x as fast as serial.

    Parameters
    ----------
    fn : callable
        As for :func:`allcores.map`.
    iterable : iterable
        As for :func:`allcores.map`. The sampled items are read from it now.
    workers : int, optional
        Workers for the parallel backends; default :func:`allcores.cpu_count`.

    Returns
    -------
    Plan
        ``plan.backend``, ``plan.workers``, ``plan.chunksize``,
        ``plan.predicted_speedup`` and ``plan.reason``; ``plan.map()`` runs it.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, before anything runs.
    Exception
        Whatever ``fn`` raised on a sampled item (the sample may run in a worker of
        the warm process pool: a crash there is a ``WorkerCrashedError``).

    Notes
    -----
    The sample runs in the caller, or in a worker of the warm process pool when there
    is one; it lasts a few milliseconds at most, unless one item costs more. While a
    costly first item runs, the next items start on the other workers. What was
    measured is remembered for about a minute: a later plan of the same function
    checks the first item against it instead of sampling again, and keeps the earlier
    decision unless the new prediction clears the bar by a margin. Inside a worker of
    an allcores pool, and when ``ALLCORES_BACKEND`` is set, nothing is measured: the
    plan says so.

    Examples
    --------
    >>> import allcores
    >>> chosen = allcores.plan(abs, range(-1000, 1000), workers=1)
    >>> chosen
    Plan(backend='serial', workers=1, chunksize=..., predicted_speedup=1, reason='serial: ...')
    >>> chosen.seconds_per_item < 0.01  # measured on the first items
    True
    >>> chosen.map()[:3]
    [1000, 999, 998]
    """
    from allcores._main_guard import refuse_work_while_main_is_imported

    refuse_work_while_main_is_imported()
    check_map_arguments(fn, iterable, None)
    workers = workers_option(workers)
    settled = settled_backend(AUTO)
    if settled is not None:
        return fixed_plan(fn, iterable, settled, workers, None, settled_reason(settled))
    return make_plan(fn, iterable, workers, None)


def settled_reason(backend: str) -> str:
    if running_in_worker():
        return f"{backend}: inside a worker of an allcores pool"
    if backend_override() == backend:
        return f"{backend}: {BACKEND_ENV}={backend} overrides the automatic choice"
    return f"{backend}: asked for"


def make_plan(fn: Callable, iterable: Iterable, workers: int | None,
              chunksize: int | None) -> Plan:
    """:func:`plan` for "auto" (``settled_backend`` said None), arguments already
    checked; ``chunksize`` fixed or None."""
    cores = cpu_count()
    if workers is None:
        workers = cores
    length = known_length(iterable)
    if length is not None and length <= 1:
        return fixed_plan(fn, iterable, "serial", workers, chunksize,
                          f"serial: {length} item{'s' if length != 1 else ''}, "
                          "nothing to share")
    gil_free = releases_gil(fn)
    remembered, decided = memory.recall(fn, workers)
    previous, previous_n = decided if decided is not None else (None, 0)
    source = Input(iterable)
    measured, heads, how, same_costs = _measure(
        fn, source, workers, cores, gil_free, length, remembered, previous)

    if source.error is not None or source.exhausted:
        rest_known: int | None = 0
    else:
        rest_known = None if length is None else length - source.taken
    # The rest of the input: a sliceable input is handed on whole (chunks are then cut
    # as slices from _first_item on), anything else as the iterator the sample read.
    rest = iterable if type(iterable) in SLICEABLE else source.iterator
    n = UNKNOWN_LENGTH_ITEMS if rest_known is None else rest_known
    n_text = "an unknown number of" if rest_known is None else f"{rest_known:,}"
    cost = measured.seconds_per_item
    chunk = chunksize or ChunkSizer(workers, length=n, seconds_per_item=cost).size(0)
    usable = min(workers, max(n, 1))
    if n * cost <= THREAD_CHUNK_COST_S:
        # All of it costs less than handing one chunk to a thread: serial, whatever the
        # model would add (worked out only if the reason is read).
        chosen = None
        predictions = _Lazy(lambda: _predict(measured, n, workers, cores, chunk, gil_free))
        if remembered is None or measured is not remembered:
            memory.remember(fn, workers, measured, None)
    else:
        predicted = _predict(measured, n, workers, cores, chunk, gil_free)
        predictions = _Lazy(lambda: predicted)
        # The hysteresis holds for the same call: one of about as many items, of about
        # what they cost when the decision was made.
        size = source.taken + n
        if not same_costs or not previous_n / 2 <= size <= previous_n * 2:
            previous = None
        chosen = _decide(predicted, previous)
        # A decision about fewer items than workers says little about the function
        # (the last items of a short call): then only the measurement is kept.
        decision = None if n < workers else "serial" if chosen is None else chosen.backend
        memory.remember(fn, workers, measured, decision, size)

    def reason() -> str:
        figures = (f"{cost * 1e6:.3g} us per item ({how}), {n_text} "
                   f"{_plural(rest_known, 'item')} left")
        if chosen is None:
            best = max(predictions(), key=lambda p: p.speedup)
            return (f"serial: {figures}; {best.backend}: {best.text()}; {usable} "
                    f"{best.backend} {_plural(usable, 'worker')} would be "
                    f"{best.speedup:.2g}x as fast")
        return (f"{chosen.backend}: {figures}; {chosen.text()}; {usable} "
                f"{_plural(usable, 'worker')} predicted "
                f"{chosen.speedup:.2g}x as fast as serial")

    if chosen is None:
        backend, plan_workers, speedup = "serial", 1, 1.0
    else:
        backend, plan_workers, speedup = chosen.backend, workers, chosen.speedup
    return Plan._with_input(backend, plan_workers, chunk, speedup, reason, cost, fn, heads,
                            rest, source.taken, rest_known, length, chunksize)


# Processes predicted this close to the ideal speedup leave nothing for threads to win:
# an unmarked function is then not timed on threads.
NEAR_IDEAL = 0.9
# A remembered cost is trusted while the call's first item costs within this factor of
# it (costs below CHECK_FLOOR_S count as that: a single cheap item's timing is noise).
CHECK_FACTOR = 2.0
CHECK_FLOOR_S = 2e-6


def _measure(fn, source: Input, workers: int, cores: int, gil_free: bool,
             length: int | None, remembered: Measured | None, previous: str | None):
    """The function's costs for this call: ``(measured, heads, how they were found,
    whether they agree with what was remembered)``.

    A remembered measurement is checked on the first item (run in the caller when the
    rest was to run there too, like the sample otherwise): when the item costs about
    what was remembered, the remembered figures are used as they are (so that plans of
    the same call agree), else the function is sampled anew, from the next item on. A
    new sample that agrees with the memory after all (the first item was slowed down:
    a busy machine) keeps the remembered decision's hysteresis."""
    heads: list[Head] = []
    checked = None
    if remembered is not None:
        # A first item that costs what was remembered cannot run long enough to
        # speculate on, unless the remembered items were expensive already.
        speculate = remembered.seconds_per_item * CHECK_FACTOR >= SPECULATE_AFTER_S
        checked = run_sample(fn, source, workers, cores if speculate else 1, gil_free,
                             length, max_batches=1, in_caller=previous in (None, "serial"))
        heads = list(checked.heads)
        if not checked.batch_costs or _agrees(checked.seconds_per_item,
                                              remembered.seconds_per_item):
            age = time.monotonic() - remembered.at
            _end_of_input(source, heads)
            return (remembered, heads,
                    f"measured {age:.0f} s ago, checked on the first item", True)
        if checked.speculated:  # one item took long enough to tell: no more sampling
            measured = Measured(checked.seconds_per_item,
                                transfer_seconds_per_item(checked.items, checked.results),
                                remembered.thread_efficiency, time.monotonic())
            _end_of_input(source, heads)
            return measured, heads, f"measured on 1 item {checked.where}", False
    sample = run_sample(fn, source, workers, cores, gil_free, length)
    sample.heads = heads + sample.heads
    if checked is not None:
        sample.batch_costs = checked.batch_costs + sample.batch_costs
    heads = sample.heads
    measured = Measured(sample.seconds_per_item,
                        transfer_seconds_per_item(sample.items, sample.results),
                        None, time.monotonic())
    how = f"measured on {len(sample.items)} {_plural(len(sample.items), 'item')} {sample.where}"
    if (worth_a_thread_probe(sample, source, workers, cores, length)
            and (gil_free or not _processes_near_ideal(measured, source, length, workers,
                                                       cores))):
        efficiency, probed = thread_efficiency(fn, source, measured.seconds_per_item,
                                                workers)
        heads += probed
        measured = dataclasses.replace(measured, thread_efficiency=efficiency)
    _end_of_input(source, heads)
    agrees = remembered is not None and _agrees(measured.seconds_per_item,
                                                remembered.seconds_per_item)
    return measured, heads, how, agrees


class _Lazy:
    """A value worked out on first call (and kept): ``_Lazy(make)()``."""

    def __init__(self, make: Callable):
        self._make, self._value = make, None

    def __call__(self):
        if self._make is not None:
            self._value, self._make = self._make(), None
        return self._value


def _plural(count: int | None, word: str) -> str:
    return word if count == 1 else word + "s"


def _processes_near_ideal(measured: Measured, source: Input, length: int | None,
                          workers: int, cores: int) -> bool:
    """Whether processes are predicted within ``NEAR_IDEAL`` of the most any backend
    could give: then threads cannot do meaningfully better, and timing them (GIL-bound
    code runs one thread at a time) would be a serial tax for nothing."""
    n = UNKNOWN_LENGTH_ITEMS if length is None else max(0, length - source.taken)
    if n == 0:
        return True
    chunk = ChunkSizer(workers, length=n, seconds_per_item=measured.seconds_per_item).size(0)
    process = _predict(measured, n, workers, cores, chunk, False)[-1]
    return process.speedup >= NEAR_IDEAL * min(workers, n, cores)


def _end_of_input(source: Input, heads: list[Head]) -> None:
    if source.error is not None:
        heads.append(source.error)  # raised once the results before it are handed back


def _agrees(cost: float, remembered: float) -> bool:
    cost, remembered = max(cost, CHECK_FLOOR_S), max(remembered, CHECK_FLOOR_S)
    return remembered / CHECK_FACTOR <= cost <= remembered * CHECK_FACTOR
