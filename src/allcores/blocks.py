"""Your own kernel on every core: run a function over blocks of an index range.

Two calls, for the two shapes of result a compute kernel has::

    total = allcores.blocks.reduce(count_in, 0, n, args=(data,), combine="sum")
        # combine(count_in(a, b, data) for each block [a, b) of [0, n))

    image = allcores.blocks.fill(render_rows, (height, width), np.uint32, args=(zoom,))
        # render_rows(a, b, rows, zoom) writes rows a..b-1 of the result into `rows`

The range is cut into blocks (consecutive ``[a, b)``, at least ``min_block`` indexes
each); the blocks run on a pool, and their results combine exactly: a ``fill`` block
writes its own rows, ``reduce`` combines the blocks' values in block order (``"sum"``,
``"min"``, ``"max"`` or your function of the list of them). With integer values the
result is the same for every split, every backend and every number of workers; the
built-in kernels (``allcores.kernels``) run on this API.

Where a ``fill`` block writes depends on where it runs::

    serial, threads (the caller's process)   rows = a view of the result: written in place
    worker processes (this machine)          rows = a private array, copied into a shared
                                               memory segment of the result (made on first
                                               need, allcores._shm's safeguards), then into
                                               the result once the block is done
    Dask workers on other machines           rows = a private array, returned, put in
                                               place by the caller

so a block never writes outside its rows of the result. An input array that blocks read
by rows travels the same way when wrapped in :func:`sliced`: the block gets its rows
``[a, b)`` (a view in the caller's process, a copy read from shared memory elsewhere).

Choosing the blocks and the backend:

- ``cost`` (seconds per index, an estimate within a factor of two is enough) plans
  without running anything; without it, a first block run in the caller measures it
  (growing from ``min_block`` indexes until it takes ``PROBE_S``; its result counts).
- ``backend="auto"``: serially when the whole job is shorter than ``SERIAL_BELOW_S``;
  else on threads for a function marked :func:`allcores.nogil` (it releases the GIL);
  else, with ``cost`` given, on processes; without it, ``allcores.map``'s planner
  decides by measuring (it times two blocks on two threads against one: a function
  that releases the GIL runs on threads). An explicit backend, ``ALLCORES_BACKEND``,
  and a call from inside an allcores worker (serial) win, as for maps.
- Blocks: about ``BLOCKS_PER_WORKER`` per worker (the last ones to finish are short),
  none shorter than ``MIN_BLOCK_S`` of estimated work for its backend (dispatch stays a
  few percent), none under ``min_block`` indexes.

A block that raises fails the call with your exception, a note naming the block's
bounds; a worker process that dies in a block is replaced and the block run again
(``retries``), so the result stays exact. ``progress=`` and ``insights=`` work as for
``allcores.map``.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, NamedTuple

import numpy as np

from allcores import _checks as check
from allcores import shortcuts
from allcores._options import backend_option, check_callable, flag_option, workers_option
from allcores._block_task import SHARED, SharedLazily, Sliced, Task
from allcores._shm import read_rows
from allcores.cpu import cpu_count
from allcores.planner import backend_override, releases_gil, settled_backend

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["BlockPlan", "fill", "plan_blocks", "reduce", "sliced", "split"]

# Blocks per worker: when blocks differ in cost (mandelbrot rows near the set cost ~100x
# more than rows far from it), the last ones to finish are then short.
BLOCKS_PER_WORKER = 8
# No block shorter than this (estimated) on each backend, so that dispatch (~20 us a
# block on threads, ~100 us on processes) stays a few percent of the work.
MIN_BLOCK_S = {"serial": 0.002, "thread": 0.002, "process": 0.010, "dask": 0.010,
               "auto": 0.010}
# Under backend="auto", a job estimated shorter than this runs serially: two minimal
# blocks, the least that two workers can share (processes: dearer dispatch, and a pool
# to start on first use).
SERIAL_BELOW_S = {"thread": 0.004, "process": 0.020}
# Without cost=: the first block, run in the caller, grows until it takes this long.
PROBE_S = 0.002

Combine = Literal["sum", "min", "max"] | Callable[[list[Any]], Any]


class _Combiners:
    """The named reductions; each takes the list of the blocks' values, in block order."""

    sum = staticmethod(lambda values: functools.reduce(lambda a, b: a + b, values))
    min = staticmethod(min)
    max = staticmethod(max)


# --- inputs sliced by block, outputs written by block -------------------------------------


class sliced:  # noqa: N801  (a marker, used like a function)
    """Mark an array argument of :func:`fill` or :func:`reduce` to be read by rows.

    Each block ``[a, b)`` then gets only its rows ``array[a - start:b - start]``
    (``array[a:b]`` for :func:`fill`): a view where the block runs in the caller's
    process (serially, on threads), a copy of just those rows in a worker process
    (read from shared memory, where the array is copied once, on first need) or on a
    Dask worker (carried with the block).

    Parameters
    ----------
    array : array_like
        The input, at least one-dimensional, with one row per index of the range.

    Raises
    ------
    ValueError
        ``array`` is a scalar. (:func:`fill` and :func:`reduce` also refuse an array
        whose length is not the range's.)

    Examples
    --------
    >>> import numpy as np
    >>> from allcores import blocks
    >>> values = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    >>> def largest(a, b, rows):
    ...     return int(rows.max())
    >>> blocks.reduce(largest, 0, len(values), args=(blocks.sliced(values),),
    ...               combine="max", workers=2, backend="thread")
    9
    """

    __slots__ = ("array",)

    def __init__(self, array: npt.ArrayLike) -> None:
        self.array = np.asarray(array)
        if self.array.ndim == 0:
            raise ValueError("sliced: expected an array with at least one dimension, "
                             "got a scalar")


# --- planning -------------------------------------------------------------------------------


class BlockPlan(NamedTuple):
    """How a call of :func:`fill` or :func:`reduce` runs, as :func:`plan_blocks` tells.

    A named tuple; :func:`plan_blocks` makes them.

    Parameters
    ----------
    backend : str
        ``"serial"``, ``"thread"``, ``"process"`` or ``"dask"``, or ``"auto"`` when
        :func:`allcores.map`'s planner is to decide by measuring.
    workers : int
        The number of workers.
    blocks : list of (int, int)
        The blocks ``[a, b)`` still to run, in order.
    cost : float or None
        The seconds per index the plan went by (given or measured; None: unknown).

    Examples
    --------
    >>> from allcores import blocks
    >>> def count(a, b):
    ...     return b - a
    >>> plan = blocks.plan_blocks(count, 0, 100, cost=1e-4, workers=2, backend="thread")
    >>> plan
    BlockPlan(backend='thread', workers=2, blocks=[(0, 20), (20, 40), (40, 60),
    (60, 80), (80, 100)], cost=0.0001)
    >>> plan.backend, len(plan.blocks)
    ('thread', 5)
    """

    backend: str
    workers: int
    blocks: list[tuple[int, int]]
    cost: float | None


def split(start: int, stop: int, count: int) -> list[tuple[int, int]]:
    """Cut ``[start, stop)`` into ``count`` consecutive pieces of (nearly) equal size.

    Parameters
    ----------
    start, stop : int
        The range, ``start <= stop``.
    count : int
        How many pieces, ``>= 1``.

    Returns
    -------
    list of (int, int)
        The pieces ``[a, b)`` in order; they cover the range exactly once, and their
        sizes differ by one at most.

    Examples
    --------
    >>> from allcores import blocks
    >>> blocks.split(0, 10, 3)
    [(0, 3), (3, 6), (6, 10)]
    """
    size = stop - start
    return [(start + size * i // count, start + size * (i + 1) // count)
            for i in range(count)]


def plan_blocks(fn: Callable[..., Any], start: int, stop: int, *, cost: float | None,
                workers: int, backend: str, min_block: int = 1,
                measured: bool = False) -> BlockPlan:
    """The backend and the blocks that :func:`fill` and :func:`reduce` would use.

    Nothing runs: this shows what a call would do, given its cost.

    Parameters
    ----------
    fn : callable
        The block function (only whether it is marked with :func:`allcores.nogil`
        matters here).
    start, stop : int
        The index range.
    cost : float or None
        Seconds per index; ``None``: unknown.
    workers : int
        The number of workers.
    backend : {"auto", "thread", "process", "serial", "dask"}
        As for :func:`reduce`.
    min_block : int, optional
        The fewest indexes a block may have; default 1.
    measured : bool, optional
        Whether ``cost`` was measured by running blocks rather than given; default
        False.

    Returns
    -------
    BlockPlan
        The backend (``"auto"``: left to :func:`allcores.map`'s measurement), the
        workers, the blocks and the cost.

    Notes
    -----
    About 8 blocks per worker, so that the last ones to finish are short; none with
    less estimated work than 2 ms on threads (10 ms on processes), so that dispatch
    stays a few percent; none under ``min_block`` indexes. Under ``backend="auto"``, a
    job estimated under 4 ms (20 ms for processes) runs serially, and so does a plan
    of one block. A function not marked as releasing the GIL runs on processes when
    ``cost`` was given, and on what :func:`allcores.map` decides (it measures whether
    threads pay) when the cost is unknown or was ``measured``. An explicit
    ``backend``, ``ALLCORES_BACKEND``, and a call from inside an allcores worker
    (serial) win.

    Examples
    --------
    >>> import allcores
    >>> from allcores import blocks
    >>> def count(a, b):
    ...     return b - a
    >>> plan = blocks.plan_blocks(count, 0, 10**9, cost=1e-8, workers=2, backend="auto")
    >>> plan.backend, len(plan.blocks), plan.blocks[0]
    ('process', 16, (0, 62500000))
    >>> @allcores.nogil
    ... def count_natively(a, b):
    ...     return b - a
    >>> blocks.plan_blocks(count_natively, 0, 10**9, cost=1e-8, workers=2,
    ...                    backend="auto").backend
    'thread'
    >>> blocks.plan_blocks(count, 0, 1_000, cost=1e-8, workers=2, backend="auto")
    BlockPlan(backend='serial', workers=2, blocks=[(0, 1000)], cost=1e-08)
    """
    settled = settled_backend(backend)
    chosen = settled
    if chosen is None:
        if releases_gil(fn):
            chosen = "thread"
        elif cost is not None and not measured:
            chosen = "process"
        else:
            chosen = "auto"
        if cost is not None:  # threads may run it ("auto" too): their bar is the lower
            bar = SERIAL_BELOW_S["process" if chosen == "process" else "thread"]
            if (stop - start) * cost < bar:
                chosen = "serial"
    if chosen == "serial" or workers == 1:
        count = 1
    else:
        most = workers * BLOCKS_PER_WORKER
        by_cost = most if cost is None else int((stop - start) * cost / MIN_BLOCK_S[chosen])
        count = max(1, min(most, by_cost, (stop - start) // min_block))
    if count == 1 and settled is None and backend_override() is None:
        chosen = "serial"  # one block: a pool would add its overhead and nothing else
    return BlockPlan(chosen, workers, split(start, stop, count), cost)


def _probe(task: Task, start: int, stop: int, min_block: int,
           budget_items: int) -> tuple[list, list[tuple[int, int]], float]:
    """Run first blocks in the caller, each twice the last, until one takes ``PROBE_S``
    or ``budget_items`` are done: their values, the blocks, and the cost per index of
    the last one (the least disturbed by the timer's own cost)."""
    values, probed, size, at = [], [], max(1, min_block), start
    while True:
        b = min(stop, at + size)
        began = time.perf_counter()
        values.append(task((at, b)))
        took = time.perf_counter() - began
        probed.append((at, b))
        at = b
        if at >= stop or took >= PROBE_S or at - start >= budget_items:
            return values, probed, took / (b - probed[-1][0])
        size *= 2


# --- the two calls ----------------------------------------------------------------------------


def reduce(fn: Callable[..., Any], start: int, stop: int, *, args: Iterable[Any] = (),
           combine: Combine = "sum", min_block: int = 1, cost: float | None = None,
           workers: int | None = None, backend: str = "auto", progress: bool = False,
           insights: bool = False) -> Any:
    """Run ``fn`` over blocks of ``[start, stop)`` on every core and combine their values.

    The result is ``combine([fn(a, b, *args) for each block [a, b)])``: the blocks are
    consecutive, cover the range once, and their values are combined in block order.

    Parameters
    ----------
    fn : callable
        ``fn(a, b, *args)``: the value of the block ``[a, b)``.
    start, stop : int
        The index range, ``start < stop`` (an empty range has nothing to combine).
    args : iterable, optional
        More arguments for ``fn``, the same for every block; an array wrapped in
        :class:`sliced` reaches each block as its rows ``array[a - start:b - start]``.
    combine : {"sum", "min", "max"} or callable, optional
        How the blocks' values become the result: ``"sum"`` (the default, with ``+``),
        ``"min"``, ``"max"``, or a function of the list of values, in block order.
    min_block : int, optional
        The fewest indexes a block may have (``>= 1``; default 1): for a function
        whose blocks must be at least this wide, or that is not worth calling on less.
    cost : float, optional
        Estimated seconds of work per index (``> 0``; within a factor of two is
        enough). Given, the blocks and the backend are planned before anything runs;
        default ``None``: the first blocks run in the caller, each twice as long as
        the last, until one takes about 2 ms (or they have done a block's share), and
        measure it (their results count).
    workers : int, optional
        The most workers to use (``>= 1``); default ``None``:
        :func:`allcores.cpu_count`, the CPUs this process may use.
    backend : {"auto", "thread", "process", "serial", "dask"}, optional
        Where the blocks run. ``"auto"`` (the default): serially in the caller when the
        whole job is estimated at a few milliseconds; else on threads for a function
        marked with :func:`allcores.nogil` (it releases the GIL); else on worker
        processes when ``cost`` was given, and, when the cost was measured, as
        :func:`allcores.map` decides by timing two blocks on two threads against one.
        ``ALLCORES_BACKEND``, when set, replaces ``"auto"``. ``"thread"``,
        ``"process"`` and ``"serial"`` force one; ``"dask"`` runs the blocks on a Dask
        cluster (the ``dask`` extra). Called from inside an allcores worker, every
        block runs serially.
    progress : bool, optional
        Show a progress bar on stderr, one step per block (as :func:`allcores.map`).
    insights : bool, optional
        Record where and when each block ran; :func:`allcores.insights` then returns
        the summary.

    Returns
    -------
    object
        What ``combine`` makes of the blocks' values.

    Raises
    ------
    TypeError
        ``fn`` is not callable; ``start``, ``stop``, ``min_block`` or ``workers`` is
        not an integer; ``args`` is not an iterable of arguments; ``cost`` is not a
        real number; ``progress`` or ``insights`` is not a bool; ``combine`` is neither
        a name nor callable.
    ValueError
        The range is empty (``stop <= start``); ``min_block``, ``workers`` or ``cost``
        is out of range; ``combine`` or ``backend`` is not one of its names; a
        :class:`sliced` array's length is not the range's.
    Exception
        Whatever ``fn`` or ``combine`` raises (from ``fn``, with a note naming the
        block).

    Notes
    -----
    Everything is checked before any block runs. With integer values (and
    ``"sum"``, ``"min"``, ``"max"`` or any exact ``combine``) the result is the same
    for every split, backend and number of workers; float sums may differ in the last
    bits, as any change of summation order does.

    On worker processes ``fn``, its ``args`` and its results are pickled: ``fn`` must
    be importable (a module-level function, or a :func:`functools.partial` of one); on
    threads and serially anything callable goes. A block that raises fails the call
    with that exception, a note naming the block's bounds; a worker process that dies in
    a block is replaced and the block run again (once), so the result stays exact, and
    :class:`allcores.WorkerCrashedError` is raised if it dies again.

    Examples
    --------
    >>> from allcores import blocks
    >>> def count_multiples(a, b, k):
    ...     return sum(1 for i in range(a, b) if i % k == 0)
    >>> blocks.reduce(count_multiples, 0, 1_000, args=(3,))
    334
    >>> blocks.reduce(count_multiples, 0, 100_000, args=(7,), workers=2,
    ...               backend="thread")
    14286

    A combine of your own, as the fannkuch kernel has (sums of one part, the largest of
    the other):

    >>> def squares(a, b):
    ...     return sum(i * i for i in range(a, b)), (b - 1) ** 2
    >>> def both(parts):
    ...     return sum(p[0] for p in parts), max(p[1] for p in parts)
    >>> blocks.reduce(squares, 0, 2_000, combine=both, workers=2, backend="thread")
    (2664667000, 3996001)
    """
    options = _Options.check(fn, start, stop, args, min_block, cost, workers, backend,
                             progress, insights)
    if isinstance(combine, str):
        if combine not in ("sum", "min", "max"):
            raise ValueError(f"combine: expected 'sum', 'min', 'max' or a function, "
                             f"got: {combine!r}")
        combiner = getattr(_Combiners, combine)
    else:
        check_callable(combine, "combine")
        combiner = combine
    if options.start == options.stop:
        raise ValueError(f"reduce: the range [{start}, {stop}) is empty: nothing to combine")
    _, values = _run(fn, options, out=None)
    return combiner(values)


def fill(fn: Callable[..., Any], shape: int | tuple[int, ...], dtype: Any = np.float64, *,
         args: Iterable[Any] = (), min_block: int = 1, cost: float | None = None,
         workers: int | None = None, backend: str = "auto", progress: bool = False,
         insights: bool = False) -> npt.NDArray[Any]:
    """Make an array whose rows are written by ``fn``, block by block, on every core.

    The result is a new array of ``shape`` and ``dtype``, zeros to start with; for each
    block ``[a, b)`` of its first dimension, ``fn(a, b, rows, *args)`` writes
    ``result[a:b]`` into ``rows``.

    Parameters
    ----------
    fn : callable
        ``fn(a, b, rows, *args)``: writes rows ``[a, b)`` of the result into ``rows``, a
        writable array of shape ``(b - a, *shape[1:])``; what it returns is ignored.
    shape : int or tuple of int
        The result's shape (at least one dimension, each ``>= 0``); blocks split
        ``range(shape[0])``.
    dtype : numpy dtype, optional
        The result's dtype (default ``float64``); not ``object``, which cannot be shared
        with worker processes.
    args : iterable, optional
        More arguments for ``fn``, the same for every block; an array wrapped in
        :class:`sliced` (of length ``shape[0]``) reaches each block as its rows
        ``array[a:b]``.
    min_block : int, optional
        The fewest indexes a block may have (``>= 1``; default 1): for a function
        whose blocks must be at least this wide, or that is not worth calling on less.
    cost : float, optional
        Estimated seconds of work per index (``> 0``; within a factor of two is
        enough). Given, the blocks and the backend are planned before anything runs;
        default ``None``: the first blocks run in the caller, each twice as long as
        the last, until one takes about 2 ms (or they have done a block's share), and
        measure it (their results count).
    workers : int, optional
        The most workers to use (``>= 1``); default ``None``:
        :func:`allcores.cpu_count`, the CPUs this process may use.
    backend : {"auto", "thread", "process", "serial", "dask"}, optional
        Where the blocks run. ``"auto"`` (the default): serially in the caller when the
        whole job is estimated at a few milliseconds; else on threads for a function
        marked with :func:`allcores.nogil` (it releases the GIL); else on worker
        processes when ``cost`` was given, and, when the cost was measured, as
        :func:`allcores.map` decides by timing two blocks on two threads against one.
        ``ALLCORES_BACKEND``, when set, replaces ``"auto"``. ``"thread"``,
        ``"process"`` and ``"serial"`` force one; ``"dask"`` runs the blocks on a Dask
        cluster (the ``dask`` extra). Called from inside an allcores worker, every
        block runs serially.
    progress : bool, optional
        Show a progress bar on stderr, one step per block (as :func:`allcores.map`).
    insights : bool, optional
        Record where and when each block ran; :func:`allcores.insights` then returns
        the summary.

    Returns
    -------
    numpy.ndarray
        The result, of ``shape`` and ``dtype``.

    Raises
    ------
    TypeError
        ``dtype`` is not a numpy dtype or holds Python objects; ``shape`` is
        not an integer or a tuple of them; ``min_block`` or ``workers`` is not an
        integer; ``fn`` is not callable;
        ``args`` is not an iterable of arguments; ``cost`` is not a real number;
        ``progress`` or ``insights`` is not a bool.
    ValueError
        ``shape`` has no dimension or a negative one; ``min_block``, ``workers`` or
        ``cost`` is out of range; ``backend`` is not one of its names; a
        :class:`sliced` array's length is not ``shape[0]``.
    Exception
        Whatever ``fn`` raises, with a note naming the block.

    Notes
    -----
    Everything is checked before any block runs. ``rows`` is a view of the result
    itself on threads and serially (written in place, nothing copied); on worker
    processes a private array, copied through shared memory into the result once the
    block is done; on Dask workers, returned and put in place by the caller. Either way
    a block never writes outside its rows, so the result is the same for every split,
    backend and number of workers.

    On worker processes ``fn``, its ``args`` and its results are pickled: ``fn`` must
    be importable (a module-level function, or a :func:`functools.partial` of one); on
    threads and serially anything callable goes. A block that raises fails the call
    with that exception, a note naming the block's bounds; a worker process that dies in
    a block is replaced and the block run again (once), so the result stays exact, and
    :class:`allcores.WorkerCrashedError` is raised if it dies again.

    Examples
    --------
    >>> import numpy as np
    >>> from allcores import blocks
    >>> def table_rows(a, b, rows, width):
    ...     rows[:] = np.arange(a * width, b * width).reshape(b - a, width)
    >>> blocks.fill(table_rows, (4, 3), np.int64, args=(3,))
    array([[ 0,  1,  2],
           [ 3,  4,  5],
           [ 6,  7,  8],
           [ 9, 10, 11]])

    An input read by rows, on two threads:

    >>> def doubled(a, b, rows, values):
    ...     np.multiply(values, 2, out=rows)
    >>> blocks.fill(doubled, 6, args=(blocks.sliced(np.arange(6.0)),), workers=2,
    ...             backend="thread")
    array([ 0.,  2.,  4.,  6.,  8., 10.])
    """
    if isinstance(shape, (tuple, list)):
        shape = tuple(check.integer("shape", n, min=0) for n in shape)
    else:
        shape = (check.integer("shape", shape, min=0),)
    if not shape:
        raise ValueError("shape: expected at least one dimension, got: ()")
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype: not a numpy dtype: {dtype!r}") from exc
    if dtype.hasobject:
        raise TypeError(f"dtype: {dtype} holds Python objects, which cannot be shared "
                        "with worker processes; use a numeric dtype")
    options = _Options.check(fn, 0, shape[0], args, min_block, cost, workers, backend,
                             progress, insights)
    result = np.zeros(shape, dtype=dtype)
    if result.size == 0:
        return result
    out = SharedLazily(result, copy_in=False)
    try:
        for (a, b), value in zip(*_run(fn, options, out=out)):
            if value is None:
                continue  # written in place
            if isinstance(value, str) and value == SHARED:
                result[a:b] = read_rows(out.shared.spec, a, b)
            else:
                result[a:b] = value
    finally:
        out.release()
    return result


class _Options(NamedTuple):
    start: int
    stop: int
    args: tuple
    min_block: int
    cost: float | None
    workers: int
    backend: str
    progress: bool
    insights: bool

    @classmethod
    def check(cls, fn, start, stop, args, min_block, cost, workers, backend, progress,
              insights) -> _Options:
        check_callable(fn)
        start = check.integer("start", start)
        stop = check.integer("stop", stop)
        if stop < start:
            raise ValueError(f"stop: expected stop >= start, got: [{start}, {stop})")
        if isinstance(args, (str, bytes)) or not hasattr(args, "__iter__"):
            raise TypeError(f"args: expected a tuple of arguments, got: "
                            f"{type(args).__name__}")
        args = tuple(args)
        for arg in args:
            if isinstance(arg, sliced) and len(arg.array) != stop - start:
                raise ValueError(f"sliced: the array has {len(arg.array)} rows, the range "
                                 f"[{start}, {stop}) {stop - start}")
        min_block = check.integer("min_block", min_block, min=1)
        if cost is not None:
            cost = check.finite_real("cost", cost)
            if cost <= 0:
                raise ValueError(f"cost: expected seconds per index > 0, got: {cost}")
        workers = workers_option(workers) or cpu_count()
        backend = backend_option(backend)
        return cls(start, stop, args, min_block, cost, workers, backend,
                   flag_option("progress", progress), flag_option("insights", insights))


def _run(fn, options: _Options,
         out: SharedLazily | None) -> tuple[list[tuple[int, int]], list]:
    """Every block ``[a, b)`` run, in order, and its value."""
    start, stop = options.start, options.stop
    inputs = [SharedLazily(arg.array, copy_in=True) if isinstance(arg, sliced) else arg
              for arg in options.args]
    nogil = releases_gil(fn)
    task = Task(fn, tuple(Sliced(arg, start) if isinstance(arg, SharedLazily) else arg
                          for arg in inputs), out, nogil=nogil)
    try:
        values: list = []
        ran: list[tuple[int, int]] = []
        cost = options.cost
        first = start
        if cost is None and settled_backend(options.backend) != "serial":
            # A first block in the caller, growing until it is long enough to time;
            # never more than a block's share of the work.
            share = max(options.min_block, (stop - start) //
                        (options.workers * BLOCKS_PER_WORKER))
            values, probed, cost = _probe(task, start, stop, options.min_block, share)
            ran.extend(probed)
            first = probed[-1][1]
        if first < stop:
            plan = plan_blocks(fn, first, stop, cost=cost, workers=options.workers,
                               backend=options.backend, min_block=options.min_block,
                               measured=options.cost is None)
            ran.extend(plan.blocks)
            items: list[tuple] = plan.blocks
            if plan.backend == "dask" and any(isinstance(a, SharedLazily) for a in inputs):
                # Dask's workers may be on other machines, out of reach of this one's
                # shared memory: each block carries its rows of the sliced inputs.
                task = Task(fn, tuple(Sliced(None, start) if isinstance(arg, SharedLazily)
                                      else arg for arg in inputs), out, nogil=nogil)
                items = [(a, b, tuple(arg.array[a - start:b - start] for arg in inputs
                                      if isinstance(arg, SharedLazily)))
                         for a, b in plan.blocks]
            if plan.backend == "serial" and not (options.progress or options.insights):
                values.extend(task(block) for block in items)
            else:
                values.extend(shortcuts.map(
                    task, items, workers=plan.workers, backend=plan.backend,
                    chunksize=1, progress=options.progress, insights=options.insights))
        return ran, values
    finally:
        for arg in inputs:
            if isinstance(arg, SharedLazily):
                arg.release()
