"""Who ran what, and when: a record of every chunk of a map, and its summary.

``Pool(insights=True)`` (or ``insights=True`` on ``allcores.map`` / ``imap`` /
``imap_unordered``) makes the dispatcher keep one :class:`ChunkRecord` per chunk it
hands back: the worker that ran it, when the caller handed it over, when it started and
ended on its worker, how many items it held, and when the caller received its results.
:class:`Insights` sums the records up (wall time, per-worker busy and idle time, chunk
sizes, dispatch vs the function, the slowest chunks) and draws them as a timeline
(:meth:`Insights.plot`). A run of a chunk that ended with its worker's death (the
process backend then runs the chunk again) is kept apart, as a :class:`LostRecord`.

One clock: every time is the caller's ``time.perf_counter()``. Workers in other
processes read the same clock: on Linux, macOS and Windows ``perf_counter`` is a
system-wide monotonic clock (``CLOCK_MONOTONIC``, ``mach_absolute_time``,
``QueryPerformanceCounter``). Dask workers may be other machines: they report wall-clock
time (``time.time()``), which the caller converts, so their bars are as exact as the
machines' clocks agree (NTP: about a millisecond).

Cost: each chunk carries its start time and worker whether recording or not (a float
and a short string next to the chunk's items); recording adds three clock reads and one
list append per chunk in the caller, about 1-2 us. The benchmark measures the difference
(``allcores bench --only timeline``).

Examples
--------
>>> import allcores
>>> with allcores.Pool(workers=2, backend="thread", insights=True) as pool:
...     _ = pool.map(abs, range(1000), chunksize=100)
...     summary = pool.insights()
>>> summary.chunks, summary.items, sorted({r.items for r in summary.records})
(10, 1000, [100])
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import threading
from typing import NamedTuple

__all__ = ["CallRecorder", "ChunkRecord", "Insights", "LostAttempt", "LostRecord", "Recorder",
           "WorkerStats"]

# How many of the slowest chunks a summary lists.
SLOWEST_SHOWN = 5


# Shared by ChunkRecord and LostRecord (a NamedTuple cannot take a mixin class).
_STOP_ITEM = property(lambda record: record.first_item + record.items,
                      doc="Input index one past the chunk's last item.")
_SECONDS = property(lambda record: record.ended - record.started,
                    doc="Seconds from its start to its end on its worker.")


class ChunkRecord(NamedTuple):
    """One chunk of a map, as the caller saw it.

    Times are ``time.perf_counter()`` seconds on the caller's clock. Made by the
    engine; read from :attr:`Insights.records`.

    Parameters
    ----------
    call : int
        Which recorded map call (0, 1, ...): items are numbered per call.
    first_item : int
        Input index of the chunk's first item.
    items : int
        How many items it held.
    worker : str
        Where it ran: ``"process 1234"``, ``"allcores-thread_0"``, ``"caller"``, ...
    submitted, queued : float
        When the caller started handing it to the backend, and was done (items cut,
        pickled, queued).
    started, ended : float
        When its worker started running the function on it, and finished.
    received : float
        When the caller got its results (a reorder buffer may hold them).

    Attributes
    ----------
    stop_item : int
        Input index one past the chunk's last item.
    seconds : float
        Time spent in the function: ``ended - started``.

    Examples
    --------
    >>> from allcores.timeline import ChunkRecord
    >>> record = ChunkRecord(0, 100, 50, "allcores-thread_0", 1.0, 1.0, 1.25, 2.0, 2.5)
    >>> record.stop_item, record.seconds
    (150, 0.75)
    """

    call: int          # which recorded map call (0, 1, ...): items are numbered per call
    first_item: int    # input index of the chunk's first item
    items: int         # how many items it held
    worker: str        # where it ran: "process 1234", "allcores-thread_0", "caller", ...
    submitted: float   # the caller started handing it to the backend
    queued: float      # ... and was done (items cut, pickled, queued)
    started: float     # its worker started running the function on it
    ended: float       # ... and finished
    received: float    # the caller got its results (a reorder buffer may hold them)

    stop_item = _STOP_ITEM
    seconds = _SECONDS   # time spent in the function


class LostAttempt(NamedTuple):
    """A run of a chunk that ended with its worker's death.

    The chunk then ran again elsewhere. A backend reports these with the chunk's
    result; :class:`Insights` shows them as :class:`LostRecord` entries.

    Parameters
    ----------
    worker : str
        The worker that died.
    started : float
        When the chunk was sent to that worker.
    ended : float
        When its death was seen.

    Examples
    --------
    >>> from allcores.timeline import LostAttempt
    >>> LostAttempt("process 1234", 1.0, 1.5).worker
    'process 1234'
    """

    worker: str
    started: float     # when the chunk was sent to that worker
    ended: float       # when its death was seen


class LostRecord(NamedTuple):
    """A :class:`LostAttempt` of a recorded chunk, with the chunk's items.

    Parameters
    ----------
    call, first_item, items
        As in :class:`ChunkRecord`.
    worker, started, ended
        As in :class:`LostAttempt`.

    Attributes
    ----------
    stop_item : int
        Input index one past the chunk's last item.
    seconds : float
        ``ended - started``: the work lost with the worker.

    Examples
    --------
    >>> from allcores.timeline import LostRecord
    >>> lost = LostRecord(0, 20, 10, "process 1234", 1.0, 1.5)
    >>> lost.stop_item, lost.seconds
    (30, 0.5)
    """

    call: int
    first_item: int
    items: int
    worker: str
    started: float
    ended: float

    stop_item = _STOP_ITEM
    seconds = _SECONDS


class Recorder:
    """Collects the records of one pool (or one module-level call), from any thread;
    ``workers`` and ``backend`` describe where its chunks run, for the summary."""

    def __init__(self, workers: int, backend: str) -> None:
        self.workers = workers
        self.backend = backend
        self._lock = threading.Lock()
        self._records: list[ChunkRecord] = []      # under _lock
        self._lost: list[LostRecord] = []          # under _lock
        self._calls = itertools.count()            # under _lock

    def start_call(self) -> CallRecorder:
        """Where one map call records its chunks: under a number of its own, so that
        its items are told from another call's."""
        with self._lock:
            return CallRecorder(self, next(self._calls))

    def add(self, record: ChunkRecord) -> None:
        with self._lock:
            self._records.append(record)

    def add_lost(self, record: LostRecord) -> None:
        with self._lock:
            self._lost.append(record)

    def summary(self, *, reset: bool = False) -> Insights:
        """The :class:`Insights` of the chunks recorded so far (then cleared if ``reset``)."""
        with self._lock:
            records, lost = list(self._records), list(self._lost)
            if reset:
                self._records.clear()
                self._lost.clear()
        return Insights(records, workers=self.workers, backend=self.backend, lost=lost)


class CallRecorder:
    """Records the chunks of one map call into a :class:`Recorder`."""

    __slots__ = ("recorder", "call")

    def __init__(self, recorder: Recorder, call: int):
        self.recorder = recorder
        self.call = call

    def add(self, first_item: int, items: int, worker: str, submitted: float, queued: float,
            started: float, ended: float, received: float,
            lost: tuple[LostAttempt, ...] = ()) -> None:
        for attempt in lost:
            self.recorder.add_lost(LostRecord(self.call, first_item, items, *attempt))
        self.recorder.add(ChunkRecord(self.call, first_item, items, worker, submitted, queued,
                                      started, ended, received))

    def add_in_caller(self, first_item: int, items: int, started: float,
                      ended: float) -> None:
        """Items the caller ran itself, with nothing to hand over or receive."""
        self.add(first_item, items, "caller", started, started, started, ended, ended)


@dataclasses.dataclass(frozen=True)
class WorkerStats:
    """One worker's share of the recorded time span (:attr:`Insights.per_worker`).

    Parameters
    ----------
    worker : str
        The worker's name, as in :attr:`ChunkRecord.worker`.
    chunks, items : int
        The chunks it ran, and their items.
    busy_s : float
        Seconds in the function.
    before_s : float
        Idle from the span's start to its first chunk (start-up, dispatch).
    between_s : float
        Idle between its chunks (dispatch gaps, or nothing left to run).
    after_s : float
        Idle from its last chunk to the span's end (imbalance, stragglers, or the
        worker died).
    utilisation : float
        ``busy_s / wall_s``.
    lost_s : float, optional
        Seconds running chunks it died in (they ran again elsewhere).

    Attributes
    ----------
    idle_s : float
        ``before_s + between_s + after_s``.

    Examples
    --------
    >>> from allcores.timeline import ChunkRecord, Insights
    >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
    ...             ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
    ...            workers=2, backend="thread")
    >>> [(w.worker, w.busy_s, w.after_s, w.utilisation) for w in summary.per_worker]
    [('a', 1.0, 0.0, 1.0), ('b', 0.5, 0.5, 0.5)]
    >>> summary.per_worker[1].idle_s
    0.5
    """

    worker: str
    chunks: int
    items: int
    busy_s: float      # in the function
    before_s: float    # idle from the span's start to its first chunk (start-up, dispatch)
    between_s: float   # idle between its chunks (dispatch gaps, or nothing left to run)
    after_s: float     # idle from its last chunk to the span's end (imbalance, stragglers,
                       # or the worker died)
    utilisation: float  # busy / wall
    lost_s: float = 0.0  # running chunks it died in (they ran again elsewhere)

    @property
    def idle_s(self) -> float:
        """Idle seconds in all: ``before_s + between_s + after_s``."""
        return self.before_s + self.between_s + self.after_s


class Insights:
    """A summary of recorded chunks: what ``pool.insights()`` and
    ``allcores.insights()`` return.

    ``str()`` is a table (per-worker busy and idle time, the slowest chunks),
    :meth:`plot` draws the timeline; the figures are attributes.

    Parameters
    ----------
    records : list of ChunkRecord
        The recorded chunks.
    workers : int
        The pool's size.
    backend : str
        Where the chunks ran.
    lost : list of LostRecord, optional
        Runs of chunks lost with their worker.

    Attributes
    ----------
    records : tuple of ChunkRecord
        Every recorded chunk, in the order the caller received them.
    workers : int
        The pool's size (the span's capacity is ``workers x wall_s``).
    backend : str
    start, end : float
        The span: from the first chunk handed to the backend to the last one received
        (``time.perf_counter()`` seconds).
    wall_s : float
        ``end - start``.
    busy_s : float
        Time spent in the function, summed over chunks.
    dispatch_s : float
        Time the caller spent handing chunks over (cutting, pickling, queueing).
    utilisation : float
        ``busy_s / (workers x wall_s)``: 1.0 means no worker was ever idle.
    per_worker : tuple of WorkerStats
        One entry per worker that ran a chunk, in order of its first chunk.
    lost : tuple of LostRecord
        Runs of recorded chunks that ended with their worker's death (process backend:
        the chunk ran again on another worker, see ``Pool(retries=...)``).
    lost_s : float
        Their time, summed: work done twice.

    See Also
    --------
    allcores.Pool.insights, allcores.insights : where summaries come from.

    Examples
    --------
    >>> import allcores
    >>> with allcores.Pool(workers=2, backend="thread", insights=True) as pool:
    ...     _ = pool.map(abs, range(1000), chunksize=250)
    ...     summary = pool.insights()
    >>> summary.chunks, summary.items, summary.workers, summary.backend
    (4, 1000, 2, 'thread')
    >>> print(summary)  # doctest: +ELLIPSIS
    allcores insights: 1,000 items in 4 chunks (sizes 250/250/250 min/median/max) ...
    ...

    A summary of hand-made records shows the figures' meaning:

    >>> from allcores.timeline import ChunkRecord, Insights
    >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
    ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
    ...                    workers=2, backend="thread")
    >>> summary.wall_s, summary.busy_s, summary.utilisation
    (1.0, 1.5, 0.75)
    """

    def __init__(self, records: list[ChunkRecord], *, workers: int, backend: str,
                 lost: list[LostRecord] = ()):
        self.records = tuple(records)
        self.lost = tuple(lost)
        self.lost_s = sum(r.seconds for r in self.lost)
        self.workers = workers
        self.backend = backend
        if records:
            self.start = min(r.submitted for r in records)
            self.end = max(r.received for r in records)
        else:
            self.start = self.end = 0.0
        self.wall_s = self.end - self.start
        self.busy_s = sum(r.seconds for r in records)
        self.dispatch_s = sum(r.queued - r.submitted for r in records)
        capacity = workers * self.wall_s
        self.utilisation = self.busy_s / capacity if capacity > 0 else 0.0
        self.per_worker = tuple(self._worker_stats(lane) for lane in self.lanes())

    # --- derived figures --------------------------------------------------------------

    @property
    def chunks(self) -> int:
        """How many chunks were recorded.

        Examples
        --------
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
        ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
        ...                    workers=2, backend="thread")
        >>> summary.chunks
        2
        """
        return len(self.records)

    @property
    def items(self) -> int:
        """How many items the recorded chunks held.

        Examples
        --------
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
        ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
        ...                    workers=2, backend="thread")
        >>> summary.items
        20
        """
        return sum(r.items for r in self.records)

    def lanes(self) -> list[str]:
        """The workers that ran chunks (or died running one).

        Returns
        -------
        list of str
            Their names, in order of their first chunk's start.

        Examples
        --------
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
        ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
        ...                    workers=2, backend="thread")
        >>> summary.lanes()
        ['a', 'b']
        """
        first_start: dict[str, float] = {}
        for r in (*self.records, *self.lost):
            first_start[r.worker] = min(first_start.get(r.worker, r.started), r.started)
        return sorted(first_start, key=first_start.__getitem__)

    @property
    def tail_idle_s(self) -> float:
        """The longest any worker waited from its last chunk to the span's end.

        How much a straggler cost, in seconds.

        Examples
        --------
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
        ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
        ...                    workers=2, backend="thread")
        >>> summary.tail_idle_s
        0.5
        """
        return max((w.after_s for w in self.per_worker), default=0.0)

    def chunk_sizes(self) -> tuple[int, int, int]:
        """Smallest, median and largest chunk, in items.

        Returns
        -------
        tuple of int
            ``(smallest, median, largest)``; zeros when nothing was recorded.

        Examples
        --------
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
        ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
        ...                    workers=2, backend="thread")
        >>> summary.chunk_sizes()
        (10, 10, 10)
        """
        if not self.records:
            return (0, 0, 0)
        sizes = sorted(r.items for r in self.records)
        return sizes[0], int(statistics.median(sizes)), sizes[-1]

    def slowest(self, n: int = SLOWEST_SHOWN) -> list[ChunkRecord]:
        """The ``n`` chunks that spent longest in the function, slowest first.

        Parameters
        ----------
        n : int, optional
            How many; default 5.

        Returns
        -------
        list of ChunkRecord
            At most ``n`` records, slowest first.

        Examples
        --------
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
        ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
        ...                    workers=2, backend="thread")
        >>> [(r.worker, r.first_item, r.seconds) for r in summary.slowest(1)]
        [('a', 0, 1.0)]
        """
        return sorted(self.records, key=lambda r: r.seconds, reverse=True)[:n]

    def latency(self) -> tuple[float, float]:
        """Median seconds a chunk took to reach its worker, and to come back.

        Returns
        -------
        tuple of float
            ``(to_worker, to_caller)``: the median seconds from queued to started
            (waiting for a worker, transfer), and from ended to received (transfer
            back, waiting to be handed on in order); zeros when nothing was recorded.

        Examples
        --------
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.25, 1.0, 1.5)],
        ...                    workers=1, backend="process")
        >>> summary.latency()
        (0.25, 0.5)
        """
        if not self.records:
            return (0.0, 0.0)
        return (statistics.median(r.started - r.queued for r in self.records),
                statistics.median(r.received - r.ended for r in self.records))

    def _worker_stats(self, lane: str) -> WorkerStats:
        mine = [r for r in self.records if r.worker == lane]
        lost = [r for r in self.lost if r.worker == lane]
        # A worker runs one chunk at a time, so the gaps between its runs are idle time.
        runs = sorted((*mine, *lost), key=lambda r: r.started)
        busy = sum(r.seconds for r in mine)
        between = sum(max(0.0, b.started - a.ended) for a, b in itertools.pairwise(runs))
        return WorkerStats(
            worker=lane, chunks=len(mine), items=sum(r.items for r in mine), busy_s=busy,
            before_s=max(0.0, runs[0].started - self.start),
            between_s=between,
            after_s=max(0.0, self.end - max(r.ended for r in runs)),
            utilisation=busy / self.wall_s if self.wall_s > 0 else 0.0,
            lost_s=sum(r.seconds for r in lost))

    # --- output -----------------------------------------------------------------------

    def __str__(self) -> str:
        if not self.records:
            return "allcores insights: no chunks recorded"
        smallest, median, largest = self.chunk_sizes()
        to_worker, to_caller = self.latency()
        lines = [
            f"allcores insights: {self.items:,} items in {self.chunks:,} chunks "
            f"(sizes {smallest:,}/{median:,}/{largest:,} min/median/max) on "
            f"{self.workers} {self.backend} worker{'s' if self.workers != 1 else ''}",
            f"wall {_s(self.wall_s)}; utilisation {self.utilisation:.0%} "
            f"(in the function {_s(self.busy_s)} of {_s(self.workers * self.wall_s)} "
            "worker time)",
            f"dispatch: {_s(self.dispatch_s)} in the caller handing chunks over; median "
            f"{_s(to_worker)} from queued to started, {_s(to_caller)} from ended to received",
        ]
        width = max(len("worker"), *(len(w.worker) for w in self.per_worker))
        lines.append(f"{'worker':<{width}}  chunks      items       busy   idle before/"
                     "between/after  utilisation")
        for w in self.per_worker:
            idle = f"{_s(w.before_s)} / {_s(w.between_s)} / {_s(w.after_s)}"
            lines.append(f"{w.worker:<{width}}  {w.chunks:>6,}  {w.items:>9,}  "
                         f"{_s(w.busy_s):>9}   {idle:<26}  {w.utilisation:>10.0%}")
        if len(self.per_worker) < self.workers:
            idle_workers = self.workers - len(self.per_worker)
            lines.append(f"({idle_workers} worker{'s' if idle_workers != 1 else ''} "
                         "ran no chunk)")
        if self.lost:
            lines.append(f"lost with their worker (and run again): {len(self.lost)} "
                         f"run{'s' if len(self.lost) != 1 else ''}, {_s(self.lost_s)}")
            for r in self.lost:
                lines.append(f"  items {r.first_item:,}..{r.stop_item - 1:,}"
                             f"{f' (call {r.call})' if r.call else ''}: {r.worker} died "
                             f"after {_s(r.seconds)}")
        lines.append("slowest chunks:")
        for r in self.slowest():
            lines.append(f"  items {r.first_item:,}..{r.stop_item - 1:,} "
                         f"({r.items:,} item{'s' if r.items != 1 else ''}"
                         f"{f', call {r.call}' if r.call else ''}): {_s(r.seconds)} "
                         f"on {r.worker}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<allcores.Insights {self.chunks} chunks on {self.workers} {self.backend} "
                f"workers, wall {_s(self.wall_s)}, utilisation {self.utilisation:.0%}>")

    def plot(self, path: str, *, title: str | None = None) -> str:
        """Write a PNG timeline to ``path``.

        One lane per worker, one bar per chunk, idle gaps left blank, and the caller's
        receipt of each chunk marked on a lane of its own; runs lost with their worker
        hatched. Lanes: the caller first (where it ran chunks itself), then the workers
        in natural order of their names (``thread_2`` before ``thread_10``). A chunk's
        colour says when it was handed over (a colour bar, first to last); its tick on
        the caller's lane has the same colour. Needs matplotlib (the ``plot`` extra:
        ``pip install ".[plot]"`` in a checkout).

        Parameters
        ----------
        path : str
            Where to write the PNG; missing directories are made.
        title : str, optional
            A first title line, above the one made from the summary (chunks, items
            per chunk, workers, wall time, utilisation); default: that line alone.

        Returns
        -------
        str
            ``path``.

        Raises
        ------
        ValueError
            If nothing was recorded.
        ImportError
            If matplotlib is not installed.

        Examples
        --------
        >>> import os, tempfile
        >>> from allcores.timeline import ChunkRecord, Insights
        >>> summary = Insights([ChunkRecord(0, 0, 10, "a", 0.0, 0.0, 0.0, 1.0, 1.0),
        ...                     ChunkRecord(0, 10, 10, "b", 0.0, 0.0, 0.0, 0.5, 0.5)],
        ...                    workers=2, backend="thread")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = summary.plot(os.path.join(folder, "timeline.png"))
        ...     print(os.path.basename(path), os.path.getsize(path) > 0)
        timeline.png True
        """
        from allcores._timeline_plot import draw_timeline

        return draw_timeline(self, path, title=title)


def _s(seconds: float) -> str:
    """A duration with a unit a person reads at a glance."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"
