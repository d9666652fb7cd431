"""``backend="auto"`` without a serial tax: what the planner remembers, how it measures,
where it samples, and that its workers are not idle while it does.

The speed goals themselves (4 items of 0.5 s within 1.15x of 1.0 s on 2 workers, a
10-item map in <= 50 us, sha256 of 1 MB blobs >= 1.5x serial) are measured by the
benchmark's ``overhead`` section; these tests check the mechanisms, with files and
deadlines as barriers, never timing.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import time
import weakref

import _workloads as w
import pytest
from _support import run_in_thread

import allcores
from allcores import _default_pools, _memory, planner
from allcores._memory import Measured
from allcores.planner import BACKEND_ENV, HYSTERESIS, MIN_PREDICTED_SPEEDUP

RESULT_TIMEOUT_S = 60
TWO_CORES = pytest.mark.skipif(allcores.cpu_count() < 2, reason="needs 2 usable CPUs")


@pytest.fixture(autouse=True)
def fresh_planner(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    _memory.memory.forget()
    yield
    _memory.memory.forget()


@pytest.fixture(scope="module", autouse=True)
def stop_default_pools():
    yield
    _default_pools.terminate_all()


spin = w.cpu_spin
spin_item = w.cpu_spin_then


def identity(x):
    return x


# --- what is remembered ----------------------------------------------------------------


def test_a_function_planned_before_is_not_sampled_again():
    first = allcores.plan(identity, range(10_000), workers=2)
    assert "measured on" in first.reason and len(first.sampled_results) > 1
    again = allcores.plan(identity, range(10_000), workers=2)
    # Only the first item runs: it checks that the remembered cost still holds.
    assert again.sampled_results == [0]
    assert "s ago, checked on the first item" in again.reason
    assert again.backend == first.backend == "serial"
    assert again.map() == list(range(10_000))


def test_items_that_cost_something_else_now_are_measured_anew():
    assert "measured on" in allcores.plan(spin, [0.0] * 2000, workers=2).reason
    # The same function on far dearer items: the first item disagrees, so it samples.
    costly = allcores.plan(spin, [0.002] * 20, workers=2)
    assert "measured on" in costly.reason, costly.reason
    assert costly.seconds_per_item > 0.001
    assert costly.map() == [0.002] * 20


def test_measurements_expire(monkeypatch):
    allcores.plan(identity, range(1000), workers=2)
    now = time.monotonic() + _memory.MEMORY_S + 1
    monkeypatch.setattr(_memory.time, "monotonic", lambda: now)
    assert "measured on" in allcores.plan(identity, range(1000), workers=2).reason


def test_memory_holds_functions_weakly():
    def local(x):
        return x + 1

    allcores.plan(local, range(100), workers=2)
    ref = weakref.ref(local)
    del local
    assert ref() is None


def test_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(_memory, "MEMORY_SIZE", 3)
    functions = [functools.partial(identity) for _ in range(5)]
    for fn in functions:
        _memory.memory.remember(fn, 2, Measured(1e-6, 1e-6, None, time.monotonic()), "serial")
    assert [_memory.memory.recall(fn, 2)[0] is not None for fn in functions] == [
        False, False, True, True, True]


# --- stable decisions ------------------------------------------------------------------


def test_a_remembered_decision_changes_only_past_the_hysteresis():
    def predictions(process_speedup):
        return [planner._Prediction("process", process_speedup, lambda: "")]

    just_above = MIN_PREDICTED_SPEEDUP * 1.05
    assert planner._decide(predictions(just_above), None).backend == "process"
    assert planner._decide(predictions(just_above), "serial") is None
    clearly = MIN_PREDICTED_SPEEDUP * (1 + HYSTERESIS) * 1.01
    assert planner._decide(predictions(clearly), "serial").backend == "process"
    just_below = MIN_PREDICTED_SPEEDUP * 0.95
    assert planner._decide(predictions(just_below), None) is None
    assert planner._decide(predictions(just_below), "process").backend == "process"
    assert planner._decide(predictions(MIN_PREDICTED_SPEEDUP / (1 + HYSTERESIS) * 0.99),
                           "process") is None


def test_eight_consecutive_plans_of_a_call_near_the_crossover_agree():
    fn = functools.partial(spin_item, 15e-6)  # near where processes start to pay
    backends = [allcores.plan(fn, range(20_000), workers=2).backend for _ in range(8)]
    assert len(set(backends)) == 1, backends


def test_map_runs_what_plan_said(monkeypatch):
    fn = functools.partial(spin_item, 15e-6)
    said = allcores.plan(fn, range(20_000), workers=2).backend
    allcores.map(fn, range(20_000), workers=2, insights=True)
    assert allcores.insights().backend == said


def test_plan_map_runs_on_the_plans_backend(monkeypatch):
    asked = []
    real = _default_pools.default_pool
    monkeypatch.setattr(_default_pools, "default_pool",
                        lambda backend="process", workers=None, **options: asked.append(
                            backend) or real(backend, workers, **options))
    chosen = allcores.plan(identity, iter(range(5000)), workers=2)
    assert chosen.backend == "serial"
    asked.clear()  # the sample may have run on a warm process pool
    assert list(chosen.imap()) == list(range(5000)) and set(asked) <= {"serial"}


# --- measuring threads -----------------------------------------------------------------


def nap(seconds):
    time.sleep(seconds)  # releases the GIL, like hashlib on big buffers: unmarked
    return seconds


@TWO_CORES
def test_threads_are_timed_for_unmarked_functions_that_release_the_gil():
    _default_pools.terminate_all()  # the sample runs in the caller, the probe after it
    chosen = allcores.plan(nap, [0.002] * 200, workers=2)
    assert "threads run" in chosen.reason and "(measured)" in chosen.reason, chosen.reason
    assert chosen.backend == "thread", chosen.reason
    assert chosen.map() == [0.002] * 200


@TWO_CORES
def test_threads_are_not_chosen_for_code_that_holds_the_gil():
    chosen = allcores.plan(spin, [0.0005] * 400, workers=2)
    assert chosen.backend != "thread", chosen.reason
    efficiency = _memory.memory.recall(spin, 2)[0].thread_efficiency
    assert efficiency is not None and efficiency < 0.8


def test_cheap_items_are_not_timed_on_threads():
    allcores.plan(identity, range(10_000), workers=2)
    assert _memory.memory.recall(identity, 2)[0].thread_efficiency is None


# --- the workers work while the sample runs --------------------------------------------


def wait_for_item_one(started_dir: str, x):
    """Item 0 waits (at most 20 s) for item 1 to start elsewhere; others mark their
    start. Returns whether item 1 started while item 0 was running."""
    if x == 0:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if os.path.exists(os.path.join(started_dir, "1")):
                return True
            time.sleep(0.005)
        return False
    open(os.path.join(started_dir, str(x)), "w").close()
    return True


@TWO_CORES
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm-process-pool"])
def test_other_workers_take_items_while_the_first_is_sampled(tmp_path, warm):
    _default_pools.terminate_all()
    if warm:
        _default_pools.default_pool("process", 2).map(identity, range(4))
    fn = functools.partial(wait_for_item_one, str(tmp_path))
    results = run_in_thread(lambda: allcores.map(fn, range(6), workers=2),
                            RESULT_TIMEOUT_S)()
    assert results == [True] * 6  # item 1 ran on a worker while item 0 was sampled


@TWO_CORES
def test_speculated_items_keep_their_place_and_errors_their_item(tmp_path):
    fn = functools.partial(w.gated, str(tmp_path / "gate"), (), None, None)
    slow_first = functools.partial(first_waits_then, str(tmp_path), fn)
    assert allcores.map(slow_first, range(30), workers=2) == [x * x for x in range(30)]
    failing = functools.partial(first_waits_then, str(tmp_path), functools.partial(w.fail_on, 2))
    with pytest.raises(ValueError) as info:
        allcores.map(failing, range(10), workers=2)
    assert any("item 2" in note for note in info.value.__notes__)


def first_waits_then(started_dir: str, fn, x):
    """Item 0 runs for 50 ms (long enough to set the other workers going), then fn."""
    if x == 0:
        spin(0.05)
    return fn(x)


# --- where the sample runs -------------------------------------------------------------


SEGFAULT_SCRIPT = textwrap.dedent("""
    import ctypes, faulthandler, sys
    import allcores
    from allcores import WorkerCrashedError

    def crash_on_first(x):
        if x == 0:
            ctypes.string_at(0)
        return x

    if __name__ == "__main__":
        faulthandler.dump_traceback_later(60, exit=True)
        if sys.argv[1] == "warm":
            allcores.map(abs, range(4), backend="process", workers=2)
        try:
            allcores.map(crash_on_first, range(100), workers=2)
        except WorkerCrashedError:
            print("the caller survived")
""")


@pytest.mark.parametrize("warm", [True, False], ids=["warm-process-pool", "no-pool"])
def test_a_crashing_first_item_kills_only_a_worker_when_a_warm_pool_exists(tmp_path, warm):
    script = tmp_path / "crash_first.py"
    script.write_text(SEGFAULT_SCRIPT)
    done = subprocess.run([sys.executable, str(script), "warm" if warm else "cold"],
                          capture_output=True, text=True, timeout=120)
    if warm:
        assert done.returncode == 0 and "the caller survived" in done.stdout, done.stderr
    else:  # documented: without a warm process pool the sample runs in the caller
        assert done.returncode != 0 and "the caller survived" not in done.stdout


# --- an input that fails during the sample ---------------------------------------------


def test_an_input_failing_in_the_sample_hands_back_the_results_before_it():
    results = allcores.imap(identity, w.failing_input(5), workers=2)
    assert [next(results) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(w.InputBroke):
        next(results)


# --- nested calls ----------------------------------------------------------------------


def map_on(pool, x):
    return sum(pool.map(w.square, range(x))) + pool.submit(w.square, x).result(timeout=30)


def test_a_thread_pools_methods_called_from_its_own_chunks_run_in_place():
    with allcores.Pool(2, backend="thread") as pool:
        fn = functools.partial(map_on, pool)
        got = run_in_thread(lambda: pool.map(fn, range(8), chunksize=1), RESULT_TIMEOUT_S)()
    assert got == [sum(k * k for k in range(x)) + x * x for x in range(8)]


# --- a serial plan whose first items still run in a pool -------------------------------------


def _plan_with_a_pending_head(fn, rest):
    from concurrent.futures import Future

    from allcores._sampling import Head

    pending: Future = Future()
    pending.set_running_or_notify_cancel()
    head = Head(0, ["in the pool"], future=pending)
    chosen = planner.Plan._with_input("serial", 1, 1, 1.0, "serial: test", None, fn, [head],
                                      rest, 1, len(rest) - 1, len(rest), None)
    return chosen, pending


def test_the_caller_runs_the_rest_while_the_speculated_items_finish(tmp_path):
    from allcores._execute import ChunkResult

    marker = tmp_path / "rest ran"
    fn = functools.partial(mark_then_square, str(marker))
    chosen, pending = _plan_with_a_pending_head(fn, [None, 2, 3])
    result = run_in_thread(chosen.map, RESULT_TIMEOUT_S)
    w.wait_for_path(str(marker))  # the rest ran while the head's item was still pending
    pending.set_result(ChunkResult(["from the pool"], 0.0))
    assert result() == ["from the pool", 4, 9]


def test_an_earlier_items_error_comes_before_the_rests(tmp_path):
    fn = functools.partial(w.fail_on, 3)
    chosen, pending = _plan_with_a_pending_head(fn, [None, 2, 3])
    pending.set_exception(KeyError("the pool's item failed first"))
    with pytest.raises(KeyError, match="first"):
        chosen.map()


def mark_then_square(marker: str, x):
    open(marker, "a").close()
    return x * x


def test_a_decision_for_a_small_call_does_not_hold_back_a_big_one(monkeypatch):
    previous_seen = []
    real = planner._decide
    monkeypatch.setattr(planner, "_decide", lambda predictions, previous: (
        previous_seen.append(previous) or real(predictions, previous)))
    fn = functools.partial(spin_item, 15e-6)
    allcores.plan(fn, range(2000), workers=2)
    allcores.plan(fn, range(2000), workers=2)     # the same call: its hysteresis holds
    allcores.plan(fn, range(200_000), workers=2)  # 100x the items: decided afresh
    assert previous_seen[0] is None and previous_seen[1] is not None
    assert previous_seen[2] is None
