"""Running a :class:`~allcores.planner.Plan`: the one path every module-level map takes.

A plan holds the items the planner already took (its *head*: computed by the sample,
on their way in a pool, or to be run here) and the rest of the input. The runner hands
back the head's results in input order, then the rest's, run on the warm default pool
of the plan's backend (``allcores._default_pools``) or, for a serial ``map``, in one
C-level loop here. The rest's map is made before the head is waited for (its arguments
checked, its call counted as open on the pool); its chunks go out once the head is
handed back. A serial ``map`` computes the rest while head items still run in a pool.
"""

from __future__ import annotations

import itertools
import time
from typing import Iterator

from allcores import _default_pools
from allcores._execute import ChunkError, ItemError, run_items
from allcores._results import progress_bar, started
from allcores.backends.base import Chunk
from allcores.dispatch import SLICEABLE, chunk_outcome
from allcores.timeline import CallRecorder


def run(plan, *, ordered: bool = True, progress: bool = False, eager: bool = False,
        recorder: CallRecorder | None = None) -> Iterator[list]:
    """The results of ``plan``, a list per chunk. ``eager``: the caller wants all of
    them at once (``map``): a serial plan then runs in one loop, nothing streamed
    (unless chunks were asked for: they are then recorded one by one)."""
    bar = progress_bar(plan._total) if progress else None
    if eager and bar is None and plan.backend == "serial" and plan._fixed_chunksize is None:
        return iter([_serially(plan, recorder)])
    rest = None
    if plan._rest_length != 0:  # created now: the call counts as open from here
        pool = _default_pools.default_pool(plan.backend, plan.workers,
                                           retries=plan._retries, timeout=plan._timeout)
        rest = pool._chunk_results(
            plan._fn, plan._rest, plan._fixed_chunksize, ordered=ordered,
            seconds_per_item=plan.seconds_per_item, length=plan._rest_length,
            first_item=plan._first_item, bar=bar, recorder=recorder)
    return started(_stream(plan, rest, bar, recorder))


def _stream(plan, rest, bar, recorder) -> Iterator[list]:
    heads = list(plan._head)
    try:
        yield  # the priming yield: see allcores._results.started
        while heads:
            results = _head_results(plan._fn, heads[0], recorder)
            heads.pop(0)
            if bar is not None:
                bar.update(len(results))
            yield results
        if rest is not None:
            yield from rest
    finally:
        for head in heads:  # stopped early: what the pool has not started is dropped
            if head.future is not None:
                head.future.cancel()
        if rest is not None:
            rest.close()  # closes the bar too
        elif bar is not None:
            bar.close()


def _head_results(fn, head, recorder: CallRecorder | None) -> list:
    if head.error is not None:
        raise head.error  # the input raised here: every result before it was handed back
    chunk = Chunk(head.first_item, head.items)
    if head.results is not None:
        results, outcome = list(head.results), head.outcome  # a copy: see _results
    elif head.future is not None:
        outcome, results = chunk_outcome(chunk, head.future)
    else:
        outcome = _run_here(fn, chunk, [])
        results = outcome.values
    if recorder is not None and outcome is not None:
        _record(recorder, head, outcome)
    return results


def _record(recorder: CallRecorder, head, outcome) -> None:
    ended = outcome.started + outcome.seconds
    if outcome.worker == "caller":
        recorder.add_in_caller(head.first_item, len(head.items), outcome.started, ended)
    else:
        recorder.add(head.first_item, len(head.items), outcome.worker, head.submitted,
                     min(head.submitted, outcome.started), outcome.started, ended,
                     time.perf_counter(), outcome.lost)


def _run_here(fn, chunk: Chunk, into: list):
    """The chunk's ChunkResult, its values appended to ``into``."""
    try:
        return run_items(fn, chunk.items, star=False, into=into)
    except ItemError as failure:
        error = ChunkError.from_item(failure, "in the caller")
    # Raised outside the except clause: the error's __context__ stays its own.
    raise error.for_caller(chunk.first_item, chunk.first_item + error.position + 1)


def _serially(plan, recorder: CallRecorder | None) -> list:
    """The head's results, then the rest's, computed in one loop here, into one list.
    While head items still run in a pool (the speculation's), the rest is computed
    first, so that the caller works instead of waiting for them; an error in the rest
    is raised only after the head's results (an earlier item's error comes first)."""
    in_flight = any(head.future is not None for head in plan._head)
    rest_results: list = []
    rest_error = None
    if in_flight and plan._rest_length != 0:
        try:
            _run_rest(plan, recorder, rest_results)
        except Exception as exc:  # Ctrl-C and the like go at once (the finally below)
            rest_error = exc
        except BaseException:
            _cancel(plan._head)
            raise
    results: list = []
    try:
        for head in plan._head:
            results.extend(_head_results(plan._fn, head, recorder))
    finally:
        _cancel(plan._head)  # after a failure: nothing more is wanted
    if rest_error is not None:
        raise rest_error
    if in_flight:
        results += rest_results
    elif plan._rest_length != 0:
        _run_rest(plan, recorder, results)
    return results


def _run_rest(plan, recorder: CallRecorder | None, into: list) -> None:
    rest = plan._rest
    if type(rest) in SLICEABLE:
        rest = itertools.islice(rest, plan._first_item, None)
    done = len(into)
    outcome = _run_here(plan._fn, Chunk(plan._first_item, rest), into)
    if recorder is not None and len(into) > done:
        recorder.add_in_caller(plan._first_item, len(into) - done, outcome.started,
                               outcome.started + outcome.seconds)


def _cancel(heads) -> None:
    for head in heads:
        if head.future is not None:
            head.future.cancel()
