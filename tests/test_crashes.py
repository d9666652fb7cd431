"""The process backend when things go wrong: the crash matrix, timeouts, Ctrl-C, the
death of the caller, and interpreter exit.

Crash matrix: a worker dies (``os._exit``, SIGKILL, segfault) while running a chunk,
while unpickling its work, or while pickling its results; or the work fails to
pickle/unpickle without killing anyone. Each case must end in a clear exception in
the caller, never a hang, and leave the pool with all its workers, ready for more.

Ctrl-C, parent death and interpreter exit run a child Python (``CHILD_SCRIPT``) and
watch its worker processes from outside.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import _workloads as w
import pytest
from _support import (
    ignores_signal,
    kill_leftovers,
    pid_gone,
    run_in_thread,
    wait_pids_gone,
    wait_until,
)

import allcores
from allcores import (
    AllcoresError,
    ChunkTimeoutError,
    WorkerCrashedError,
    WorkerInitError,
)

WORKERS = 2
RESULT_TIMEOUT_S = 30
START_METHODS = [m for m in ("forkserver", "spawn", "fork")
                 if m in multiprocessing.get_all_start_methods()]
TESTS_DIR = Path(__file__).resolve().parent

# How each way of dying shows in the exit status: a code, or minus the signal.
DEATHS = {
    "exit": 3,                    # os._exit(3)
    "sigkill": -signal.SIGKILL,   # what the out-of-memory killer does
    "segfault": -signal.SIGSEGV,  # a crash in native code
    "abort": -signal.SIGABRT,     # a failed assertion in native code
}

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="signals, /proc and PR_SET_PDEATHSIG are Linux's")


def squares(items):
    return [x * x for x in items]


def has_note(error: BaseException, text: str) -> bool:
    return any(text in note for note in getattr(error, "__notes__", []))


@pytest.fixture
def make_pool():
    """Process pools that are terminated after the test, whatever happened."""
    pools = []

    def make(**kwargs):
        kwargs.setdefault("workers", WORKERS)
        pool = allcores.Pool(backend="process", **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.terminate()


def assert_all_workers_run(pool, directory: Path) -> set[int]:
    """All ``pool.workers`` workers are alive and take work: each of ``workers`` items
    waits until that many distinct workers hold one. Returns their pids."""
    directory.mkdir()
    pids = pool.map(functools.partial(w.meet, str(directory), pool.workers),
                    range(pool.workers), chunksize=1)
    assert len(set(pids)) == pool.workers
    assert pool.map(w.square, range(20), chunksize=1) == squares(range(20))
    return set(pids)


# ======================================================================================
# A worker dies while running a chunk
# ======================================================================================


@pytest.mark.parametrize("kind", DEATHS)
def test_worker_death_raises_worker_crashed_error(make_pool, kind, tmp_path):
    pool = make_pool(retries=0)
    with pytest.raises(WorkerCrashedError) as info:
        pool.map(functools.partial(w.die_on, kind, 5), range(10), chunksize=2)
    error = info.value
    assert isinstance(error, AllcoresError)
    assert (error.first_item, error.stop_item) == (4, 6)
    assert error.exitcode == DEATHS[kind]
    assert error.attempts == 1
    assert "4..5" in str(error)
    if DEATHS[kind] < 0:
        assert signal.Signals(-DEATHS[kind]).name in str(error)
    assert_all_workers_run(pool, tmp_path / "meeting")


@pytest.mark.parametrize("kind", DEATHS)
def test_imap_yields_results_before_the_dead_chunk(make_pool, kind):
    pool = make_pool(retries=0)
    got = []
    with pytest.raises(WorkerCrashedError) as info:
        for result in pool.imap(functools.partial(w.die_on, kind, 5), range(10), chunksize=1):
            got.append(result)
    assert got == squares(range(5))
    assert (info.value.first_item, info.value.stop_item) == (5, 6)


def test_imap_unordered_keeps_the_results_of_other_chunks(make_pool, tmp_path):
    pool = make_pool(retries=0)
    gate = tmp_path / "gate"
    # Item 0 holds its worker until the gate opens, then kills it.
    results = pool.imap_unordered(functools.partial(w.die_on_after_gate, str(gate), 0),
                                  range(8), chunksize=1)
    try:
        others = run_in_thread(lambda: [next(results) for _ in range(7)], RESULT_TIMEOUT_S)()
    finally:
        gate.touch()
    assert sorted(others) == squares(range(1, 8))
    with pytest.raises(WorkerCrashedError) as info:
        next(results)
    assert (info.value.first_item, info.value.stop_item, info.value.exitcode) == (0, 1, 3)


def test_worker_death_in_submit(make_pool, tmp_path):
    pool = make_pool(retries=0)
    future = pool.submit(w.die_on, "sigkill", 0, 0)
    error = future.exception(timeout=RESULT_TIMEOUT_S)
    assert isinstance(error, WorkerCrashedError)
    assert error.exitcode == -signal.SIGKILL
    assert pool.submit(w.square, 6).result(timeout=RESULT_TIMEOUT_S) == 36
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_every_worker_dies_at_once(make_pool, tmp_path):
    pool = make_pool(retries=0)
    with pytest.raises(WorkerCrashedError) as info:
        pool.map(functools.partial(w.die_on, "sigkill", range(10**9)), range(8), chunksize=1)
    assert (info.value.first_item, info.value.stop_item) == (0, 1)
    assert_all_workers_run(pool, tmp_path / "meeting")


@pytest.mark.parametrize("kind", DEATHS)
def test_a_chunk_whose_worker_died_once_is_run_again(make_pool, kind, tmp_path):
    pool = make_pool(retries=1)
    marker = tmp_path / "died-once"
    fn = functools.partial(w.die_once_on, str(marker), kind, 5)
    assert pool.map(fn, range(10), chunksize=2) == squares(range(10))
    assert marker.exists(), "the worker did not die: nothing was retried"
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_retries_default_to_one(make_pool, tmp_path):
    pool = make_pool()
    marker = tmp_path / "died-once"
    fn = functools.partial(w.die_once_on, str(marker), "exit", 3)
    assert sorted(pool.imap_unordered(fn, range(10), chunksize=1)) == squares(range(10))
    assert marker.exists()
    with pytest.raises(WorkerCrashedError) as info:
        pool.map(functools.partial(w.die_on, "exit", 3), range(10), chunksize=1)
    assert info.value.attempts == 2


@pytest.mark.parametrize("retries", [0, 2])
def test_attempts_count_every_run(make_pool, retries):
    pool = make_pool(retries=retries)
    with pytest.raises(WorkerCrashedError) as info:
        pool.map(functools.partial(w.die_on, "sigkill", 1), range(4), chunksize=1)
    assert info.value.attempts == retries + 1
    assert pool.map(w.square, range(4)) == squares(range(4))


def test_an_exception_is_not_retried(make_pool, tmp_path):
    # Retries are for workers that died; an exception is the function's answer.
    pool = make_pool(retries=3)
    marker = tmp_path / "raised"
    with pytest.raises(ValueError, match="failed the first time"):
        pool.map(functools.partial(w.raise_once, str(marker)), range(3), chunksize=3)
    assert pool.map(functools.partial(w.raise_once, str(marker)), range(3)) == [0, 1, 2]


def test_an_idle_worker_killed_from_outside_is_replaced(make_pool, tmp_path):
    pool = make_pool()
    before = assert_all_workers_run(pool, tmp_path / "meeting-1")
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_pids_gone([victim], 5)
    after = assert_all_workers_run(pool, tmp_path / "meeting-2")
    assert victim not in after


def test_a_replacement_worker_runs_the_initializer(make_pool, tmp_path):
    log = tmp_path / "init.log"
    pool = make_pool(retries=0, initializer=w.remember, initargs=("ready", str(log)))
    with pytest.raises(WorkerCrashedError):
        pool.map(functools.partial(w.die_on, "sigkill", 2), range(4), chunksize=1)
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    pool.map(functools.partial(w.meet, str(meeting), WORKERS), range(WORKERS), chunksize=1)
    got = pool.map(w.recall, range(10), chunksize=1)
    assert all(value == "ready" for _, value, _ in got)
    runners = w.read_lines(log)
    assert len(runners) == WORKERS + 1 == len(set(runners))  # two at start, one replacement


def test_worker_crashed_error_pickles():
    error = WorkerCrashedError(4, 6, -9, 2)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.first_item, copy.stop_item, copy.exitcode, copy.attempts) == (4, 6, -9, 2)
    assert str(copy) == str(error)


# ======================================================================================
# The work fails in transit: unpickling in the worker, pickling the results
# ======================================================================================


def test_item_that_fails_to_unpickle_in_the_worker(make_pool, tmp_path):
    pool = make_pool()
    items = [1, 2, w.RaisesWhenUnpickled(), 4]
    with pytest.raises(RuntimeError, match="this object cannot be unpickled") as info:
        pool.map(w.identity, items, chunksize=1)
    assert has_note(info.value, "unpickl"), getattr(info.value, "__notes__", None)
    assert has_note(info.value, "2")
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_item_that_kills_the_worker_while_unpickling(make_pool, tmp_path):
    pool = make_pool(retries=1)
    with pytest.raises(WorkerCrashedError) as info:
        pool.map(w.identity, [1, w.ExitsWhenUnpickled(), 3], chunksize=1)
    error = info.value
    assert (error.first_item, error.stop_item, error.exitcode, error.attempts) == (1, 2, 7, 2)
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_function_that_kills_the_worker_while_unpickling(make_pool, tmp_path):
    pool = make_pool(retries=1)
    with pytest.raises(WorkerCrashedError) as info:
        pool.map(w.ExitingFunction(), range(4), chunksize=4)
    error = info.value
    assert (error.first_item, error.stop_item, error.exitcode, error.attempts) == (0, 4, 8, 2)
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_function_that_fails_to_unpickle_in_the_worker(make_pool, tmp_path):
    pool = make_pool()
    for _ in range(2):  # the second time, the worker already knows it cannot load it
        with pytest.raises(RuntimeError, match="this function cannot be unpickled"):
            pool.map(w.UnloadableFunction(), range(4))
    assert_all_workers_run(pool, tmp_path / "meeting")


@pytest.mark.parametrize(
    "fn,error,pattern",
    [
        (w.return_lock, TypeError, "lock"),
        # cloudpickle takes the lambda; the lock it closes over is what cannot travel.
        (w.return_lambda_over_lock, (pickle.PicklingError, AttributeError, TypeError),
         "lock"),
    ],
    ids=["lock", "lambda-over-lock"],
)
def test_result_that_cannot_be_pickled(make_pool, fn, error, pattern, tmp_path):
    pool = make_pool()
    with pytest.raises(error, match=pattern) as info:
        pool.map(fn, range(3), chunksize=1)
    assert has_note(info.value, "pickl"), getattr(info.value, "__notes__", None)
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_result_that_kills_the_worker_while_pickled(make_pool, tmp_path):
    pool = make_pool(retries=0)
    with pytest.raises(WorkerCrashedError) as info:
        pool.map(functools.partial(w.return_exits_when_pickled, 2), range(5), chunksize=1)
    error = info.value
    assert (error.first_item, error.stop_item, error.exitcode) == (2, 3, 9)
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_result_that_fails_to_unpickle_in_the_caller(make_pool, tmp_path):
    pool = make_pool()
    with pytest.raises(RuntimeError, match="this object cannot be unpickled") as info:
        pool.map(functools.partial(w.return_raises_when_unpickled, 2), range(5), chunksize=1)
    assert has_note(info.value, "unpickl"), getattr(info.value, "__notes__", None)
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_item_that_cannot_be_pickled_in_the_caller(make_pool, tmp_path):
    pool = make_pool()
    with pytest.raises(TypeError, match="lock"):
        pool.map(w.identity, [1, threading.Lock(), 3])
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_function_that_cannot_be_pickled_in_the_caller(make_pool, tmp_path):
    pool = make_pool()
    lock = threading.Lock()
    with pytest.raises(TypeError, match="lock"):
        pool.map(lambda x: (lock, x), range(3))
    with pytest.raises(TypeError, match="lock"):
        pool.submit(lambda: lock).result(timeout=RESULT_TIMEOUT_S)
    assert_all_workers_run(pool, tmp_path / "meeting")


def test_initializer_that_kills_its_worker_fails_the_work(make_pool):
    pool = make_pool(initializer=os._exit, initargs=(4,))
    with pytest.raises(WorkerInitError, match="exit code 4"):
        pool.map(w.square, range(4))


# ======================================================================================
# Timeouts
# ======================================================================================


def test_chunk_overrunning_the_timeout_is_stopped(make_pool, tmp_path):
    pool = make_pool(timeout=0.5)
    pid_file = tmp_path / "sleeper.pid"
    began = time.monotonic()
    with pytest.raises(ChunkTimeoutError) as info:
        pool.map(functools.partial(w.report_pid_then_sleep, str(pid_file), 3, 30), range(6),
                 chunksize=1)
    assert time.monotonic() - began < 5
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, AllcoresError)
    sleeper = int(w.read_lines(pid_file)[0])
    wait_pids_gone([sleeper], 5)
    assert sleeper not in assert_all_workers_run(pool, tmp_path / "meeting")


def test_timeout_applies_to_each_chunk_not_to_the_whole_map(make_pool):
    pool = make_pool(timeout=1.0)
    began = time.monotonic()
    results = pool.map(functools.partial(w.sleep_then_return, 0.3), range(8), chunksize=1)
    assert results == list(range(8))
    # Each worker ran 4 chunks of 0.3 s: longer than the timeout, each within it.
    assert time.monotonic() - began > 1.0


def test_timeout_in_submit(make_pool):
    pool = make_pool(timeout=0.5)
    future = pool.submit(w.sleep_then_return, 30, "late")
    assert isinstance(future.exception(timeout=10), ChunkTimeoutError)
    assert pool.submit(w.square, 3).result(timeout=RESULT_TIMEOUT_S) == 9


@pytest.mark.parametrize("backend", ["thread", "serial"])
def test_backends_that_cannot_stop_a_chunk_refuse_a_timeout(backend):
    with pytest.raises(ValueError, match="timeout"):
        allcores.Pool(backend=backend, timeout=1)


# ======================================================================================
# SIGINT to a worker, Ctrl-C in the caller, death of the caller, interpreter exit
# ======================================================================================


def test_workers_ignore_sigint(make_pool, tmp_path):
    pool = make_pool(retries=0)
    pid_file, gate = tmp_path / "pids", tmp_path / "gate"
    fn = functools.partial(w.report_pid_then_wait, str(pid_file), str(gate))
    outcome = run_in_thread(lambda: pool.map(fn, range(WORKERS), chunksize=1), RESULT_TIMEOUT_S)
    try:
        pids = [int(p) for p in wait_until(lambda: len(w.read_lines(pid_file)) == WORKERS
                                           and w.read_lines(pid_file), 20,
                                           "both workers to start")]
        for pid in pids:
            assert ignores_signal(pid, signal.SIGINT)
            os.kill(pid, signal.SIGINT)
    finally:
        gate.touch()
    assert sorted(outcome()) == sorted(pids)
    assert not any(pid_gone(pid) for pid in pids)


CHILD_SCRIPT = textwrap.dedent('''
    """A caller whose pool is busy when it gets Ctrl-C or is killed.

    Prints its worker pids as JSON, then runs a map whose items all wait for a gate
    that never opens (``started.log`` gets one line per item that began).
    """
    import functools
    import json
    import os
    import sys
    import tempfile

    import _workloads as w

    import allcores

    KEEP = []


    def main(start_method, mode, tmp):
        meeting = os.path.join(tmp, "meeting")
        os.mkdir(meeting)
        meet = functools.partial(w.meet, meeting, 2)
        hold = functools.partial(w.gated, os.path.join(tmp, "never"), range(10**9),
                                 os.path.join(tmp, "started.log"), None)
        if mode == "module":
            pids = allcores.map(meet, range(2), workers=2, chunksize=1, backend="process")
            print(json.dumps(pids), flush=True)
            allcores.map(hold, range(100), workers=2, chunksize=1, backend="process")
            return
        if mode == "exit-module":
            # Something made a weakref.finalize before allcores started a process
            # (tempfile does, as do many libraries); then the program just ends.
            scratch = tempfile.TemporaryDirectory()
            pids = allcores.map(meet, range(2), workers=2, chunksize=1, backend="process")
            print(json.dumps(pids), flush=True)
            return
        if mode == "exit-unclosed":
            scratch = tempfile.TemporaryDirectory()
            pool = allcores.Pool(2, start_method=start_method)
            KEEP.append(pool)  # still referenced when the interpreter exits
            print(json.dumps(pool.map(meet, range(2), chunksize=1)), flush=True)
            return
        pool = allcores.Pool(2, start_method=start_method)
        print(json.dumps(pool.map(meet, range(2), chunksize=1)), flush=True)
        if mode == "exit-busy":
            # Work still running when the program ends: the pool's workers are stopped.
            KEEP.append(pool)
            KEEP.extend(pool.submit(hold, i) for i in range(4))
            w.wait_for_path(os.path.join(tmp, "started.log"))
            return
        if mode == "with":
            with pool:
                pool.map(hold, range(100), chunksize=1)
        elif mode == "imap_unordered":
            for _ in pool.imap_unordered(hold, range(100), chunksize=1):
                pass
        elif mode == "idle":
            w.wait_for_path(os.path.join(tmp, "never"), timeout=60)
        else:
            raise SystemExit(f"unknown mode {mode}")


    if __name__ == "__main__":
        main(*sys.argv[1:])
''')


class Child:
    """The child Python running ``CHILD_SCRIPT`` in its own session.

    Its stdout and stderr go to files, not pipes: its worker processes inherit them,
    and a pipe would not reach end-of-file while any of those still ran."""

    def __init__(self, tmp_path: Path, start_method: str, mode: str):
        script = tmp_path / "child.py"
        script.write_text(CHILD_SCRIPT)
        self.started_log = tmp_path / "started.log"
        self.stdout_path, self.stderr_path = tmp_path / "child.out", tmp_path / "child.err"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(TESTS_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(script), start_method, mode, str(tmp_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                env=env, cwd=tmp_path, start_new_session=True)
        self.worker_pids: list[int] = []

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def read_worker_pids(self, timeout: float = 60) -> list[int]:
        def first_line():
            text = self.stdout_path.read_text()
            if "\n" in text:
                return text.split("\n", 1)[0]
            if self.process.poll() is not None:
                raise AssertionError(f"the child exited ({self.process.returncode}) without "
                                     f"printing its worker pids; stderr:\n{self.stderr()}")
            return None

        self.worker_pids = json.loads(wait_until(first_line, timeout, "the child's worker pids"))
        assert len(set(self.worker_pids)) == 2
        return self.worker_pids

    def wait_until_busy(self) -> None:
        wait_until(lambda: len(w.read_lines(self.started_log)) >= 2, 20,
                   "both workers of the child to start a chunk")

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the child to exit; return its exit status and stderr."""
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"the child did not exit within {timeout} s; "
                                 f"its stderr:\n{self.stderr()}") from None
        return status, self.stderr()

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        kill_leftovers(self.worker_pids)


@pytest.fixture
def child_factory(tmp_path):
    children = []

    def start(start_method: str, mode: str) -> Child:
        child = Child(tmp_path, start_method, mode)
        children.append(child)
        return child

    yield start
    for child in children:
        child.cleanup()


CTRL_C_CASES = (
    [(method, "with", "caller") for method in START_METHODS]
    + [("forkserver", "imap_unordered", "caller"),
       ("forkserver", "module", "caller"),
       ("forkserver", "with", "process-group")]
)


@pytest.mark.parametrize("start_method,mode,target", CTRL_C_CASES)
def test_ctrl_c_stops_the_caller_and_every_worker(child_factory, start_method, mode, target):
    child = child_factory(start_method, mode)
    pids = child.read_worker_pids()
    child.wait_until_busy()
    began = time.monotonic()
    if target == "caller":
        os.kill(child.process.pid, signal.SIGINT)
    else:  # what a terminal does on Ctrl-C: the whole foreground process group
        os.killpg(child.process.pid, signal.SIGINT)
    status, err = child.finish(timeout=10)
    assert "KeyboardInterrupt" in err, err
    assert status == -signal.SIGINT, err
    assert time.monotonic() - began < 5
    wait_pids_gone(pids, 2)


@pytest.mark.parametrize(
    "start_method,mode,signum",
    [(method, "with", signal.SIGKILL) for method in START_METHODS]
    + [("forkserver", "idle", signal.SIGKILL), ("forkserver", "with", signal.SIGTERM)])
def test_workers_die_with_their_caller(child_factory, start_method, mode, signum):
    child = child_factory(start_method, mode)
    pids = child.read_worker_pids()
    if mode != "idle":
        child.wait_until_busy()  # busy workers: they will not notice a closed task pipe
    assert not any(pid_gone(pid) for pid in pids)
    os.kill(child.process.pid, signum)
    status, _ = child.finish(timeout=10)
    assert status == -signum
    wait_pids_gone(pids, 5)


@pytest.mark.parametrize("mode", ["exit-module", "exit-unclosed", "exit-busy"])
def test_interpreter_exits_while_a_pool_is_open(child_factory, mode):
    # The documented promise: default pools (and pools never closed) are shut down at
    # interpreter exit. The program must end, and leave no worker behind.
    child = child_factory("forkserver", mode)
    pids = child.read_worker_pids()
    status, err = child.finish(timeout=15)
    assert status == 0, err
    wait_pids_gone(pids, 5)


# ======================================================================================
# A failure inside the pool's own machinery
# ======================================================================================


def _wait_for_new_manager_threads_to_end(threads_before) -> None:
    def ended():
        return not [t for t in threading.enumerate()
                    if t not in threads_before and t.name.startswith("allcores-manager")]

    wait_until(ended, 10, "the pool's manager thread to give up")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failure_inside_the_manager_fails_the_work_and_the_pool_still_stops(monkeypatch):
    # Fault injection: starting a worker raises, as it does when the process runs out of
    # file descriptors. The work must fail with that error, not hang; stopping the pool
    # afterwards (close, terminate, leaving ``with`` either way) must neither raise anew
    # nor hide the error. Each pool waits for its manager thread to give up first, so
    # that the stopping really happens after the failure.
    from allcores.backends import process as process_backend

    def start_worker_fails(self):
        raise OSError(24, "Too many open files (injected)")

    monkeypatch.setattr(process_backend.ProcessBackend, "_start_worker", start_worker_fails)

    threads_before = set(threading.enumerate())
    with allcores.Pool(WORKERS) as pool:
        with pytest.raises(WorkerInitError, match="injected") as info:
            pool.map(w.square, range(4))
        assert isinstance(info.value.__cause__, OSError)
        _wait_for_new_manager_threads_to_end(threads_before)
    assert pool.closed  # left normally: close() ran, and did not raise
    pool.terminate()

    threads_before = set(threading.enumerate())
    with pytest.raises(WorkerInitError, match="injected"):
        with allcores.Pool(WORKERS) as pool:
            try:
                pool.map(w.square, range(4))
            finally:
                _wait_for_new_manager_threads_to_end(threads_before)
    assert pool.closed
