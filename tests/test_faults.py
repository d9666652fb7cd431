"""The fault matrix: what a user's object or function can do wrong, at every stage of a
chunk's trip, under every start method, through every API of the process backend.

Each case runs 6 items in chunks of 2 (``retries=0``) with the fault on item 3, in the
middle: its chunk holds items 2..3. It checks that

1. it ends within a bound: every blocking call runs on a helper thread with a timeout
   (the conftest watchdog is only the backstop);
2. the caller gets the specified error: the user's exception with its type and a note
   (``raised by item 3 of the input``, or ``failed <stage> for items 2..3``), or
   ``WorkerCrashedError`` naming the chunk and the exit status; ``imap`` first yields
   every result before the faulty chunk, ``imap_unordered`` never a wrong or a
   repeated one; for ``submit`` each call is an input of one item (item 0), and only
   the faulty call fails;
3. nothing is left behind: a worker the fault killed is reaped (not even a zombie),
   no ``/dev/shm`` entry appeared; a fault that does not kill (raise, base, sysexit,
   unpicklable, and callbacks) leaves the very same workers serving;
4. the pool serves the next call: all its workers are alive and take work, and
   ``pool.map(square, range(4), chunksize=1)`` is right.

A case reports every broken promise at once, not just the first. The cases of a start
method share one pool of 2 workers; a case that leaves it unable to serve fails, and
the pool is replaced for the next case.

Cases: 160 per start method (480 with fork, forkserver and spawn):
``map``, ``imap`` and ``imap_unordered`` 39 each, ``submit`` 43, from

=================== ======  ================================================
stage               where   faults
=================== ======  ================================================
unpickle_fn         worker  raise base sysexit os_exit sigkill sigsegv unpicklable
unpickle_items      worker  raise base sysexit os_exit sigkill sigsegv unpicklable
running             worker  raise base sysexit os_exit sigkill sigsegv
pickle_results      worker  raise base sysexit os_exit sigkill sigsegv unpicklable
unpickle_results    caller  raise base sysexit unpicklable
pickle_items        caller  raise base sysexit unpicklable
pickle_fn           caller  raise base sysexit unpicklable
callback            caller  raise base sysexit keyboard_interrupt   (submit only)
=================== ======  ================================================

Absent on purpose: the fatal faults (``os_exit``, ``sigkill``, ``sigsegv``) at the
caller's stages, where they would kill the test run itself; ``unpicklable`` at
``running`` (nothing is pickled there: an unpicklable result is ``pickle_results``)
and at ``callback`` (a callback is never pickled); ``callback`` for the map-like APIs
(they hand out no futures); ``keyboard_interrupt`` except in callbacks (elsewhere it is
the Ctrl-C of ``test_crashes.py``).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import pickle
import re
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import _faults as f
import _workloads as w
import pytest
from _support import kill_leftovers, pid_gone, run_in_thread, wait_until

import allcores
from allcores import WorkerCrashedError

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="signals, /proc and /dev/shm are Linux's"),
    pytest.mark.slow,
]

WORKERS = 2
ITEMS = 6
CHUNKSIZE = 2
FAULTY_ITEM = 3    # the second item of the middle chunk
# Bounds: together (plus the pool's replacement) well under the conftest watchdog's
# 120 s, so that a hanging case fails alone instead of ending the whole run. The faulty
# call never waits for a worker to start (the error is known first), and 6 items take
# milliseconds: beyond 10 s it hangs.
CALL_TIMEOUT_S = 10     # the faulty call, however it ends
CHECK_TIMEOUT_S = 20    # each call of the health check
REAP_TIMEOUT_S = 5      # for dead workers to be reaped, /dev/shm to be cleaned up
STOP_TIMEOUT_S = 10     # for a pool being replaced to terminate

START_METHODS = [m for m in ("fork", "forkserver", "spawn")
                 if m in multiprocessing.get_all_start_methods()]
APIS = ("map", "imap", "imap_unordered", "submit")


# Each stage as the notes name it: "failed <text> for items a..b" (the worker's stages
# first, then the caller's).
STAGE_TEXT = {
    "unpickle_fn": "unpickling the function",
    "unpickle_items": "unpickling the items",
    "running": "running",
    "pickle_results": "pickling the results",
    "unpickle_results": "unpickling the results",
    "pickle_items": "pickling the items",
    "pickle_fn": "pickling the function",
    "callback": "callback",
}
FUNCTION_STAGES = ("unpickle_fn", "pickle_fn")
PICKLING_STAGES = ("pickle_fn", "pickle_items", "pickle_results")
CALLER_PICKLING_STAGES = ("pickle_fn", "pickle_items")

NON_FATAL = ("raise", "base", "sysexit")
FATAL = tuple(f.EXIT_STATUS)  # os_exit, sigkill, sigsegv
FAULTS_AT = {
    "unpickle_fn": NON_FATAL + FATAL + ("unpicklable",),
    "unpickle_items": NON_FATAL + FATAL + ("unpicklable",),
    "running": NON_FATAL + FATAL,
    "pickle_results": NON_FATAL + FATAL + ("unpicklable",),
    "unpickle_results": NON_FATAL + ("unpicklable",),
    "pickle_items": NON_FATAL + ("unpicklable",),
    "pickle_fn": NON_FATAL + ("unpicklable",),
    "callback": NON_FATAL + ("keyboard_interrupt",),
}
# What a callback's fault is logged as.
CALLBACK_ERRORS = {"raise": ValueError, "base": f.Fault, "sysexit": SystemExit,
                   "keyboard_interrupt": KeyboardInterrupt}


def _cases():
    for method in START_METHODS:
        for api in APIS:
            for stage, faults in FAULTS_AT.items():
                if stage == "callback" and api != "submit":
                    continue
                for fault in faults:
                    yield pytest.param(method, api, stage, fault,
                                       id=f"{method}-{api}-{stage}-{fault}")


CASES = list(_cases())


# --- the pools ----------------------------------------------------------------------------


class PoolKeeper:
    """One ``retries=0`` process pool per start method, shared by that method's cases;
    :meth:`replace` drops one that a case left unable to serve."""

    def __init__(self):
        self._pools: dict[str, allcores.Pool] = {}

    def get(self, start_method: str) -> allcores.Pool:
        if start_method not in self._pools:
            self._pools[start_method] = allcores.Pool(
                WORKERS, backend="process", start_method=start_method, retries=0)
        return self._pools[start_method]

    def replace(self, start_method: str, known_pids) -> None:
        pool = self._pools.pop(start_method, None)
        if pool is not None:
            _stop(pool, known_pids)

    def close(self) -> None:
        for method in list(self._pools):
            self.replace(method, ())


def _stop(pool, known_pids) -> None:
    try:
        run_in_thread(pool.terminate, STOP_TIMEOUT_S)()
    except BaseException:  # noqa: BLE001 - a broken pool may fail to stop: kill below
        pass
    kill_leftovers(set(known_pids) - {os.getpid()})


class Lease:
    """A case's use of its start method's pool. ``healthy`` is set once the case has
    seen the pool serve; ``pids`` collects every worker pid the case saw."""

    def __init__(self, keeper: PoolKeeper, start_method: str):
        self.pool = keeper.get(start_method)
        self.healthy = False
        self.pids: set[int] = set()
        self._keeper = keeper
        self._start_method = start_method

    def give_up(self) -> None:
        """Terminate the pool (the next case gets a new one). Done by the case itself,
        before pytest formats its failure: a manager thread that died of a fault may
        still be formatting its traceback, and two threads formatting tracebacks at
        once can crash pytest on Python 3.11 (``SystemError: AST constructor recursion
        depth mismatch``); terminating joins that thread."""
        if not self.healthy:
            self._keeper.replace(self._start_method, self.pids)
            self.healthy = True  # nothing left to do at teardown


@pytest.fixture(scope="module")
def keeper():
    keeper = PoolKeeper()
    yield keeper
    keeper.close()


@pytest.fixture
def lease(keeper, start_method):
    lease = Lease(keeper, start_method)
    yield lease
    lease.give_up()


# --- what each case runs ------------------------------------------------------------------


class Plan(NamedTuple):
    """The faulty call: ``fn`` over ``items``; for ``submit``, ``fn_for(item)`` is the
    function of the call on that item."""

    fn: object
    items: list
    function_stage: bool

    def fn_for(self, item: int):
        # submit: only the faulty call gets a faulty function (every call of it fails
        # alike; more would only kill more workers)
        if self.function_stage and item != FAULTY_ITEM:
            return w.square
        return self.fn


def plan(stage: str, fault: str, log: str) -> Plan:
    items: list = list(range(ITEMS))
    fn = w.square
    if stage == "unpickle_fn":
        fn = functools.partial(f.square_with, f.FiresOnLoad(fault, log))
    elif stage == "pickle_fn":
        fn = functools.partial(f.square_with, f.FiresOnDump(fault, log))
    elif stage == "unpickle_items":
        items[FAULTY_ITEM] = f.FiresOnLoad(fault, log)
    elif stage == "pickle_items":
        items[FAULTY_ITEM] = f.FiresOnDump(fault, log)
    elif stage == "running":
        fn = functools.partial(f.fire_on, FAULTY_ITEM, fault, log)
    elif stage == "pickle_results":
        fn = functools.partial(f.return_on, FAULTY_ITEM, f.FiresOnDump, fault, log)
    elif stage == "unpickle_results":
        fn = functools.partial(f.return_on, FAULTY_ITEM, f.FiresOnLoad, fault, log)
    else:
        raise AssertionError(f"no plan for stage {stage!r}")
    return Plan(fn, items, stage in FUNCTION_STAGES)


class Outcome(NamedTuple):
    error: BaseException | None  # what the faulty call (or item, for submit) raised
    yielded: list                # imap*: every result yielded before it; map: its list
    others: dict                 # submit: item -> result, or error, of the other calls


def run_api(pool, api: str, p: Plan) -> Outcome:
    """Make the faulty call through ``api`` (on the helper thread that calls this);
    never raises."""
    if api == "submit":
        return _run_submit(pool, p)
    yielded: list = []
    try:
        if api == "map":
            yielded = pool.map(p.fn, p.items, chunksize=CHUNKSIZE)
        else:
            results = getattr(pool, api)(p.fn, p.items, chunksize=CHUNKSIZE)
            try:
                for result in results:
                    yielded.append(result)
            finally:
                results.close()
    except BaseException as error:  # noqa: BLE001 - what the case is about
        return Outcome(error, yielded, {})
    return Outcome(None, yielded, {})


def _run_submit(pool, p: Plan) -> Outcome:
    deadline = time.monotonic() + CALL_TIMEOUT_S - 1
    outcomes: dict = {}
    futures = {}
    for item, value in enumerate(p.items):
        try:
            futures[item] = pool.submit(p.fn_for(item), value)
        except BaseException as error:  # noqa: BLE001 - submit() may refuse the call
            outcomes[item] = error
    for item, future in futures.items():
        try:
            outcomes[item] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except BaseException as error:  # noqa: BLE001
            outcomes[item] = error
    error = outcomes.pop(FAULTY_ITEM)
    return Outcome(error if isinstance(error, BaseException) else None, [], outcomes)


# --- what each case must see --------------------------------------------------------------


def faulty_chunks(api: str, stage: str) -> list[tuple[int, int]]:
    """The (first_item, stop_item) of the chunks whose failure the caller may see."""
    if api == "submit":
        return [(0, 1)]  # a call is an input of one item
    if stage in FUNCTION_STAGES:  # every chunk fails: the first in order, or any
        chunks = [(a, min(a + CHUNKSIZE, ITEMS)) for a in range(0, ITEMS, CHUNKSIZE)]
        return chunks if api == "imap_unordered" else chunks[:1]
    first = FAULTY_ITEM - FAULTY_ITEM % CHUNKSIZE
    return [(first, first + CHUNKSIZE)]


def describe(value) -> str:
    """An outcome for a message: an exception's type, text and notes, else its repr."""
    if not isinstance(value, BaseException):
        return repr(value)
    try:
        text = str(value)
    except Exception:  # noqa: BLE001
        text = "<str() failed>"
    return (f"{type(value).__module__}.{type(value).__qualname__}({text!r}), "
            f"notes={getattr(value, '__notes__', None)}")


def error_problems(error: BaseException | None, api: str, stage: str,
                   fault: str) -> list[str]:
    """How ``error`` differs from what the caller must get; [] when it is right."""
    if error is None:
        return ["no error reached the caller"]
    chunks = faulty_chunks(api, stage)
    got = describe(error)
    if fault in f.EXIT_STATUS:
        if not isinstance(error, WorkerCrashedError):
            return [f"expected WorkerCrashedError, got {got}"]
        problems = []
        if error.exitcode != f.EXIT_STATUS[fault]:
            problems.append(f"exitcode {error.exitcode}, expected {f.EXIT_STATUS[fault]}")
        if (error.first_item, error.stop_item) not in chunks:
            problems.append(f"items {error.first_item}..{error.stop_item - 1}, expected "
                            f"the chunk(s) {chunks}")
        if error.attempts != 1:
            problems.append(f"attempts {error.attempts}, expected 1 (retries=0)")
        return problems

    if fault == "raise":
        right = type(error) is ValueError and str(error) == "fault"
        expected = "ValueError('fault')"
    elif fault == "base":
        right = type(error) is f.Fault
        expected = "_faults.Fault('fault')"
    elif fault == "sysexit":
        right = isinstance(error, SystemExit) and error.code == 3
        expected = "SystemExit(3)"
    elif stage in PICKLING_STAGES:  # unpicklable
        right = isinstance(error, (TypeError, pickle.PicklingError))
        expected = "TypeError or pickle.PicklingError"
    else:
        right = isinstance(error, TypeError) and "NeedsAnArgument" in str(error)
        expected = "the TypeError of NeedsAnArgument()"
    problems = [] if right else [f"expected {expected}, got {got}"]

    notes = [note for note in getattr(error, "__notes__", []) if isinstance(note, str)]
    if stage == "running":
        item = 0 if api == "submit" else FAULTY_ITEM
        wanted = f"raised by item {item} of the input"
        if not any(wanted in note for note in notes):
            problems.append(f"no note {wanted!r}: {got}")
        return problems
    wanted = f"failed {STAGE_TEXT[stage]}"
    matching = [note for note in notes if wanted in note]
    if not matching:
        problems.append(f"no note {wanted!r}: {got}")
    elif stage != "pickle_fn":  # the function is pickled before there is any chunk
        ranges = [rf"(?<!\d){a}\.\.{b - 1}(?!\d)" for a, b in chunks]
        if not any(re.search(r, note) for r in ranges for note in matching):
            problems.append(f"the note {wanted!r} names no item range of "
                            f"{[f'{a}..{b - 1}' for a, b in chunks]}: {matching}")
    return problems


def good_items(api: str, stage: str) -> list[int]:
    """The items whose results the caller may get next to the error."""
    if api == "submit":
        return [x for x in range(ITEMS) if x != FAULTY_ITEM]
    if stage in FUNCTION_STAGES:
        return []
    (first, stop), = faulty_chunks(api, stage)
    return [x for x in range(ITEMS) if not first <= x < stop]


def results_problems(outcome: Outcome, api: str, stage: str) -> list[str]:
    """What is wrong with the results handed back next to the error."""
    if api == "map":
        return []
    if api == "submit":
        wrong = {item: describe(got) for item, got in outcome.others.items()
                 if isinstance(got, BaseException) or got != item * item}
        return [f"the calls on the other items went wrong: {wrong}"] if wrong else []
    if api == "imap":
        before = [x * x for x in range(faulty_chunks(api, stage)[0][0])]
        got = outcome.yielded
        if stage in CALLER_PICKLING_STAGES:  # may fail at the first next()
            if got != before[:len(got)]:
                return [f"imap yielded {got}, expected a prefix of {before}"]
        elif got != before:
            return [f"imap yielded {got} before the error, expected {before}"]
        return []
    allowed = {x * x for x in good_items(api, stage)}
    problems = []
    if len(set(outcome.yielded)) != len(outcome.yielded):
        problems.append(f"imap_unordered yielded a result twice: {outcome.yielded}")
    if not set(outcome.yielded) <= allowed:
        problems.append(f"imap_unordered yielded {sorted(set(outcome.yielded) - allowed)}, "
                        f"results of no good item (allowed: {sorted(allowed)})")
    return problems


def callback_problems(pool, fault: str, tmp_path: Path, caplog) -> list[str]:
    """A done-callback that raises ``fault``, then one that must still run."""
    gate = tmp_path / "gate"

    def scenario():
        # The call waits for the gate, so that both callbacks are registered before
        # the future finishes: they run where the pool completes it, not here.
        future = pool.submit(functools.partial(w.gated, str(gate), (FAULTY_ITEM,),
                                               None, None), FAULTY_ITEM)
        second_ran = threading.Event()
        future.add_done_callback(lambda _: f.fire(fault))
        future.add_done_callback(lambda _: second_ran.set())
        gate.touch()
        try:
            value = future.result(timeout=CALL_TIMEOUT_S - 2)
        except BaseException as error:  # noqa: BLE001
            value = error
        return value, second_ran.wait(2)

    def guarded():
        try:
            return scenario()
        except BaseException as error:  # noqa: BLE001 - never re-raised in this thread
            return error, False

    value, second_ran = run_in_thread(guarded, CALL_TIMEOUT_S)()
    problems = []
    if isinstance(value, BaseException) or value != FAULTY_ITEM ** 2:
        problems.append(f"future.result() gave {describe(value)}, "
                        f"expected {FAULTY_ITEM ** 2}")
    if not second_ran:
        problems.append("the callback registered after the raising one did not run")
    expected = CALLBACK_ERRORS[fault]
    logged = [r for r in caplog.records if r.name == "concurrent.futures"
              and r.levelno >= logging.ERROR and r.exc_info and r.exc_info[0] is expected]
    if not logged:
        problems.append(f"the callback's {expected.__name__} was not logged by the "
                        f"concurrent.futures logger")
    return problems


# --- the test ------------------------------------------------------------------------------


@pytest.mark.parametrize("start_method,api,stage,fault", CASES)
def test_fault(lease, start_method, api, stage, fault, tmp_path, caplog):
    pool = lease.pool
    shm_before = f.shm_names()
    try:
        pids_before = f.serving_pids(pool, tmp_path / "before", CHECK_TIMEOUT_S)
    except BaseException as error:  # noqa: BLE001 - a KeyboardInterrupt must not escape
        lease.give_up()
        pytest.fail(f"the pool did not serve before the case: {describe(error)}")
    lease.pids |= pids_before
    log = str(tmp_path / "fired.log")

    # 1. and 2.: the call ends, with the right error and results
    if stage == "callback":
        problems = callback_problems(pool, fault, tmp_path, caplog)
    else:
        p = plan(stage, fault, log)
        try:
            outcome = run_in_thread(lambda: run_api(pool, api, p), CALL_TIMEOUT_S)()
        except AssertionError as hung:
            lease.pids |= f.fired_in_workers(log)
            lease.give_up()
            pytest.fail(f"{api} did not end: {hung}")
        problems = (error_problems(outcome.error, api, stage, fault)
                    + results_problems(outcome, api, stage))

    # 3.: nothing left behind
    dead = f.fired_in_workers(log)
    lease.pids |= dead
    if fault in f.EXIT_STATUS:
        if not dead:
            problems.append("the fatal fault fired in no worker")
        try:
            wait_until(lambda: all(f.pid_reaped(pid) for pid in dead), REAP_TIMEOUT_S,
                       "the dead workers to be reaped")
        except AssertionError:
            states = {pid: f.process_state(pid) for pid in dead if not f.pid_reaped(pid)}
            problems.append(f"dead workers not reaped (pid: state): {states}")
    try:
        wait_until(lambda: not f.shm_left_behind(shm_before), REAP_TIMEOUT_S,
                   "/dev/shm to be cleaned up")
    except AssertionError:
        problems.append(f"left in /dev/shm: {sorted(f.shm_left_behind(shm_before))}")

    # 4.: the pool serves the next call
    try:
        pids_after = f.assert_pool_serves(pool, tmp_path / "after", CHECK_TIMEOUT_S)
    except BaseException as error:  # noqa: BLE001 - reported with the rest
        problems.append(f"the pool does not serve the next call: {describe(error)}")
        lease.give_up()
    else:
        lease.healthy = True
        lease.pids |= pids_after
        if fault not in f.EXIT_STATUS and pids_after != pids_before:
            gone = sorted(pid for pid in pids_before - pids_after if pid_gone(pid))
            problems.append(f"a {fault} fault replaced workers: {sorted(pids_before)} "
                            f"before, {sorted(pids_after)} after (ended: {gone})")

    assert not problems, "\n".join(problems)
