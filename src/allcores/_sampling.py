"""The planner's measurements, taken on the call's own items (their results are kept).

- the sample: ``fn`` on the first items, in batches of 1, 2, 4, ..., in the caller or
  in a worker of the warm process pool;
- the cost of pickling an item and its result;
- the thread probe: the next items on two threads, against the serial cost;
- the speculation: while the sample's first item runs (and runs long), the pool's
  other workers take the next items.

Every item read is accounted for, in input order, as a :class:`Head`: its results, its
future in a pool, or the input's own exception where the input raised.
"""

from __future__ import annotations

import dataclasses
import itertools
from concurrent import futures
import os
import pickle
import statistics
import threading
import time
from typing import Any, Callable, Iterable

from allcores import _default_pools
from allcores._execute import ChunkError, ItemError, run_items
from allcores.backends.base import Chunk
from allcores.dispatch import chunk_outcome

# Sample until this much time or this many items: enough to time cheap items well (a
# few ms), little enough to be negligible next to work that pays.
SAMPLE_SECONDS = 0.005
SAMPLE_MAX_ITEMS = 1000
# Threads are timed (two against one) only for items at least this costly: cheaper
# ones cannot gain from threads past the dispatch cost anyway.
THREAD_PROBE_MIN_ITEM_S = 20e-6
# The thread probe runs about this long on each thread, in up to this many rounds, the
# second only when the first measured less parallel than THREAD_PROBE_GOOD.
THREAD_PROBE_S = 0.004
THREAD_PROBE_ROUNDS = 2
THREAD_PROBE_GOOD = 0.8
# A sample still running after this long has found expensive items: the other workers
# start on the next items (see _Speculation).
SPECULATE_AFTER_S = 0.020

IN_THE_CALLER = "in the caller"


@dataclasses.dataclass
class Head:
    """Input items ``first_item ..`` taken before the rest: computed by the sample
    (``results``), on their way in a pool (``future``, a chunk's future there), left for
    the caller to run (neither: a speculative submission that was refused), or where the
    input raised (``error``: nothing after it)."""

    first_item: int
    items: list
    results: list | None = None
    future: Any = None
    error: BaseException | None = None
    # Where and when the results were computed (a ChunkResult without its values), and
    # when the items were handed over: for allcores.insights.
    outcome: Any = None
    submitted: float = 0.0


class Input:
    """The input being planned, read by the sample and the speculation, under a lock:
    each read takes the next items and says where they start."""

    def __init__(self, iterable: Iterable):
        self.iterator = iter(iterable)
        # Reentrant: the sample and the speculation hold it around their own take().
        self.lock = threading.RLock()
        self.taken = 0          # items read so far
        self.exhausted = False
        self.error: Head | None = None  # the input raised: nothing more is read

    def take(self, count: int) -> tuple[int, list]:
        """(index of the first, up to ``count`` next items). The input's own exception
        is kept as ``error`` (read no further), not raised: the items before it are
        computed and handed back first."""
        with self.lock:
            first = self.taken
            if self.exhausted or self.error is not None:
                return first, []
            items: list = []
            try:
                for item in itertools.islice(self.iterator, count):
                    items.append(item)
            except Exception as exc:
                self.error = Head(first + len(items), [], error=exc)
            self.taken += len(items)
            if len(items) < count and self.error is None:
                self.exhausted = True
            return first, items


@dataclasses.dataclass
class Sample:
    heads: list[Head]
    batch_costs: list[float]   # seconds per item of each batch, in the order they ran
    where: str                 # "in the caller" or "in a worker process"
    speculated: bool = False   # other workers took items while it ran

    @property
    def items(self) -> list:
        return [item for head in self.heads if head.results is not None for item in head.items]

    @property
    def results(self) -> list:
        return [r for head in self.heads if head.results is not None for r in head.results]

    @property
    def seconds_per_item(self) -> float:
        # The two biggest batches (batches double: the last two hold 3/4 of the items),
        # the lesser of them: other work on the machine only ever slows a batch down,
        # and the first, small batches carry the timer's own cost.
        return min(self.batch_costs[-2:]) if self.batch_costs else 0.0


def run_in_caller(fn: Callable, first: int, items: list) -> tuple[list, Any]:
    try:
        outcome = run_items(fn, items, star=False)
    except ItemError as failure:
        error = ChunkError.from_item(failure, "in the caller")
    else:
        return outcome.values, outcome
    # Raised outside the except clause: the error's __context__ stays its own.
    raise error.for_caller(first, first + len(items))


def in_pool(pool) -> Callable[[Callable, int, list], tuple[list, Any]]:
    """Runs a batch on ``pool`` (its worker times it), waiting for it here."""
    prepared: list = []

    def run(fn: Callable, first: int, items: list) -> tuple[list, Any]:
        if not prepared:
            prepared.append(pool._backend.prepare(fn))
        chunk = Chunk(first, items)
        outcome, values = chunk_outcome(chunk, pool._submit_chunk(prepared[0], chunk))
        return values, outcome

    return run


def take_sample(fn: Callable, source: Input, run_batch, speculation: Speculation | None,
                 where: str, max_batches: int | None = None) -> Sample:
    """Run ``fn`` on the next items, in batches of 1, 2, 4, ..., until
    ``SAMPLE_SECONDS`` of work, ``SAMPLE_MAX_ITEMS`` items or ``max_batches``, or until
    the speculation started (the items are expensive: enough is known)."""
    heads: list[Head] = []
    costs: list[float] = []
    spent = 0.0
    batch = 1
    if speculation is not None:
        speculation.arm()
    try:
        while (spent < SAMPLE_SECONDS and source.taken < SAMPLE_MAX_ITEMS
               and (max_batches is None or len(costs) < max_batches)):
            with source.lock:  # decided together with the speculation: see Speculation
                if speculation is not None and speculation.started:
                    break
                first, items = source.take(min(batch, SAMPLE_MAX_ITEMS - source.taken))
            if not items:
                break
            submitted = time.perf_counter()
            results, outcome = run_batch(fn, first, items)
            if speculation is not None and not heads:
                # Only an expensive first item starts the speculation: a slow sample of
                # cheap items (big items moved to a worker, a slow input) does not.
                speculation.disarm()
            heads.append(Head(first, items, results, submitted=submitted,
                              outcome=outcome._replace(values=None, payload=None)))
            costs.append(outcome.seconds / len(items))
            # The budget is the caller's time: moving big items to a worker counts.
            spent += max(outcome.seconds, time.perf_counter() - submitted)
            batch *= 2  # batches, so that timing a 0.1 us item does not cost 1000 timer calls
    finally:
        if speculation is not None:
            speculation.disarm()
    return Sample(_merged_in_caller(heads), costs, where)


def _merged_in_caller(heads: list[Head]) -> list[Head]:
    """The sample's batches as one chunk when they all ran in the caller (one stretch
    of the caller's time: one record for allcores.insights), else as they are."""
    if len(heads) < 2 or any(h.outcome.worker != "caller" for h in heads):
        return heads
    first = heads[0]
    outcome = first.outcome._replace(seconds=sum(h.outcome.seconds for h in heads))
    return [Head(first.first_item, [item for h in heads for item in h.items],
                 [result for h in heads for result in h.results],
                 outcome=outcome, submitted=first.submitted)]


def transfer_seconds_per_item(items: list, results: list) -> float:
    """Seconds per item spent moving an item and its result through pickle, on each
    side: the caller pickles items and unpickles results, a worker the reverse, so both
    sides pay one dumps and one loads of each. The median of three timings: a first
    pickling can be several times slower than the next (caches, allocations)."""
    if not items:
        return 0.0
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        try:
            items_payload = pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
            results_payload = pickle.dumps(results, pickle.HIGHEST_PROTOCOL)
        except Exception:
            # Not plain-picklable (cloudpickle will cope, more slowly): assume 10 us.
            return 10e-6
        pickle.loads(items_payload)
        pickle.loads(results_payload)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) / len(items)


def thread_efficiency(fn: Callable, source: Input, cost: float,
                       workers: int) -> tuple[float | None, list[Head]]:
    """How well two threads of the warm thread pool run ``fn`` at once: a round runs
    ``m`` items on one thread alone (``THREAD_PROBE_S`` of work at the sampled ``cost``),
    then ``m`` more on each of two threads at once; the efficiency is the first time
    over the second (1.0: two threads did twice the work in the same time; 0.5: the
    GIL serialised them). Both halves of a round meet the machine in about the same
    state. A round that falls short of ``THREAD_PROBE_GOOD`` is run once more. Returns
    it (None when the input ran out first) with the items run: their results are
    kept."""
    per_thread = max(1, min(SAMPLE_MAX_ITEMS, int(THREAD_PROBE_S / cost)))
    pool = _default_pools.default_pool("thread", workers)
    prepared = pool._backend.prepare(fn)
    heads: list[Head] = []

    def timed(chunks: int) -> float | None:
        """Seconds for ``chunks`` chunks of per_thread items at once (None: too few)."""
        start = time.perf_counter()
        running = []
        for _ in range(chunks):
            first, items = source.take(per_thread)
            if items:
                future = pool._submit_chunk(prepared, Chunk(first, items))
                running.append(Head(first, items, future=future, submitted=start))
        heads.extend(running)
        for head in running:
            outcome, head.results = chunk_outcome(Chunk(head.first_item, head.items),
                                                  head.future)
            head.future, head.outcome = None, outcome._replace(values=None, payload=None)
        complete = len(running) == chunks and len(running[-1].items) == per_thread
        return time.perf_counter() - start if complete else None

    # Other work on the machine can only slow a run down: the fastest of each kind
    # (the sample's own timing counting as a run alone) is the least disturbed.
    alone_s, together_s = [per_thread * cost], []
    best = None
    for _ in range(THREAD_PROBE_ROUNDS):
        alone = timed(1)
        together = timed(2) if alone is not None else None
        if together is None or together <= 0:
            break  # the input ran out: nothing to compare
        alone_s.append(alone)
        together_s.append(together)
        best = min(1.0, min(alone_s) / min(together_s))
        if best >= THREAD_PROBE_GOOD:
            break
    return best, heads


def run_sample(fn: Callable, source: Input, workers: int, cores: int, gil_free: bool,
               length: int | None, *, max_batches: int | None = None,
               in_caller: bool = False) -> Sample:
    """The sample, in a worker of the warm process pool when there is one (and the
    function is not one for threads, and ``in_caller`` is not asked), else in the
    caller; with the speculation (where there are ``cores`` to run it)."""
    if (not in_caller and not gil_free
            and _default_pools.has_warm_pool("process", workers)):
        run_batch = in_pool(_default_pools.default_pool("process", workers))
        where = "in a worker process"
    else:
        run_batch, where = run_in_caller, IN_THE_CALLER
    speculation = None
    if workers >= 2 and cores >= 2 and (length is None or length >= 3):
        speculation = Speculation(fn, source, "thread" if gil_free else "process", workers)
    try:
        sample = take_sample(fn, source, run_batch, speculation, where, max_batches)
    except BaseException:
        if speculation is not None:
            for head in speculation.collected():
                if head.future is not None:
                    head.future.cancel()
        raise
    if speculation is not None:
        speculated = speculation.collected()
        sample.heads += speculated
        # Started by a first item that computed for less than SPECULATE_AFTER_S (its time
        # went into moving it to a worker, or into the worker's first import of fn): the
        # items are not that expensive after all. Once the few speculated items are done,
        # the planner may go on measuring (timing threads) undisturbed.
        first_item_s = sample.batch_costs[0] if sample.batch_costs else 0.0
        sample.speculated = speculation.started and first_item_s >= SPECULATE_AFTER_S
        if speculation.started and not sample.speculated:
            futures.wait([h.future for h in speculated if h.future is not None])
    return sample


def worth_a_thread_probe(sample: Sample, source: Input, workers: int, cores: int,
                          length: int | None) -> bool:
    """Time threads when the items are costly enough to gain from them, there are
    items left to time them on, and the sample did not already send items elsewhere."""
    if sample.speculated or source.exhausted or source.error is not None:
        return False
    if length is not None and length - source.taken < 2:
        return False
    return (workers >= 2 and cores >= 2
            and sample.seconds_per_item >= THREAD_PROBE_MIN_ITEM_S)


class Speculation:
    """The next items, run by the pool's other workers while the sample's first item
    is running.

    Armed when the sample starts. If the first item is still running
    ``SPECULATE_AFTER_S`` later, the planner's thread (one per process, idle otherwise)
    reads the next items and submits them one at a time, keeping ``workers - 1`` in
    flight (the sample occupies a core or a worker), until that item ends: the items
    are expensive, so a parallel backend will almost surely be chosen, and if not,
    their results are used anyway. The sample reads no more items once this started
    (both read under the input's lock), so items keep their order: sample, then
    speculation, then the rest. A submission the pool refuses leaves its item for the
    caller to run."""

    def __init__(self, fn: Callable, source: Input, backend: str, workers: int):
        self.fn, self.source, self.backend, self.workers = fn, source, backend, workers
        self.cond = threading.Condition()
        self.heads: list[Head] = []   # under cond
        self.started = False          # under source.lock
        self.ended = False            # under cond: the sample ended
        self.deadline = 0.0

    def arm(self) -> None:
        self.deadline = time.monotonic() + SPECULATE_AFTER_S
        _planner_thread.arm(self)

    def disarm(self) -> None:
        _planner_thread.disarm(self)
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def run(self) -> None:
        """On the planner's thread, once the deadline passed."""
        try:
            pool = _default_pools.default_pool(self.backend, self.workers)
            prepared = pool._backend.prepare(self.fn)
        except BaseException:  # the real map will meet (and report) the same trouble
            return
        in_flight: set = set()

        def finished(future) -> None:
            with self.cond:
                in_flight.discard(future)
                self.cond.notify_all()

        while True:
            # Under cond from the check to the append: once disarm() set `ended`, no
            # item is taken, and every item taken is in `heads` when it returns.
            with self.cond:
                while len(in_flight) >= self.workers - 1 and not self.ended:
                    self.cond.wait()
                if self.ended:
                    return
                with self.source.lock:
                    self.started = True
                    first, items = self.source.take(1)
                if not items:
                    return
                head = Head(first, items, submitted=time.perf_counter())
                try:
                    head.future = pool._submit_chunk(prepared, Chunk(first, items))
                except BaseException:
                    head.future = None  # refused: the caller runs it (see _runner)
                self.heads.append(head)
                if head.future is None:
                    return
                in_flight.add(head.future)
            head.future.add_done_callback(finished)

    def collected(self) -> list[Head]:
        """The items it took, in order (call after disarm())."""
        with self.cond:
            return list(self.heads)


class _PlannerThread:
    """One daemon thread per process that starts speculations whose deadline passed.
    Arming and disarming cost a lock and a notify; the thread runs user code only to
    read the input items it submits (as a sample would in the caller)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: Speculation | None = None   # under _cond
        self._thread: threading.Thread | None = None

    def arm(self, speculation: Speculation) -> None:
        with self._cond:
            self._armed = speculation
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="allcores-planner",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self, speculation: Speculation) -> None:
        with self._cond:
            if self._armed is speculation:
                self._armed = None
                self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                speculation = self._armed
                if speculation is None:
                    self._cond.wait()
                    continue
                remaining = speculation.deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._armed = None
            speculation.run()


_planner_thread = _PlannerThread()


def _new_planner_thread() -> None:
    global _planner_thread
    _planner_thread = _PlannerThread()  # in a fork child: the parent's thread is not here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_planner_thread)
