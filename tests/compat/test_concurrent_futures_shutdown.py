"""``allcores.Executor``'s shutdown and its process-pool specifics, against
``concurrent.futures``.

Ported, in our own words, from CPython's ``Lib/test/test_concurrent_futures/``
``test_shutdown.py`` (run after shutdown, the context manager, issue 12364's many calls,
cancel_futures, shutdown(wait=False), gh-94440's cancel before shutdown, an executor
dropped without shutdown, the interpreter's exit with a live executor, after
shutdown(wait=False) (gh-83386) and submitting from an atexit hook),
``test_process_pool.py`` (max_tasks_per_child, with a backlog (gh-115634) and an early
shutdown, a killed worker, the exit code in the error (gh-139462), one error per
future, the remote traceback, arguments freed in the worker) and ``test_deadlock.py``
(failures while pickling or unpickling a call or its result, a crash during shutdown).
Two cases are ours: a future kept by the caller must not keep its executor (and its
workers) alive, and gh-83386's exit with the functions defined in the script itself.

Where allcores deliberately differs (``allcores/executor.py``'s module docstring), the
test asserts allcores' documented behaviour and says why:

- a worker that dies fails only its own call, with ``WorkerCrashedError`` (a
  ``BrokenProcessPool``), after ``retries``; the executor goes on, where
  ``ProcessPoolExecutor`` breaks for good;
- every failure while pickling, unpickling or running a call is that call's error, with
  its own type (README, "Every failure is one call's error"), where the standard
  executor reports ``BrokenProcessPool`` because its worker or result thread died;
- an executor still open at the interpreter's exit is terminated (its running calls are
  stopped), where the standard one lets them finish.
"""

from __future__ import annotations

import functools
import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import traceback
import weakref
from collections import Counter
from concurrent.futures.process import BrokenProcessPool

import _workloads as w
from _compat import RESULT_TIMEOUT_S, open_gate, wait_until, worker_is_gone
import pytest

import allcores
from allcores import PoolClosedError, WorkerCrashedError
from allcores.errors import RemoteTraceback

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- helpers: module level, so that worker processes import them by name ---------------


def mul(x, y):
    return x * y


def report_then_wait(log: str, gate: str):
    """Log this worker as ``pid ident``, then wait for ``gate``."""
    w.append_line(log, f"{os.getpid()} {threading.get_ident()}")
    w.wait_for_path(gate)


def workers_seen(executor, log: str, gate: str) -> list[tuple[int, int]]:
    """(pid, thread ident) of each of the executor's 2 workers: two calls hold one each
    until both have reported, then the gate opens."""
    calls = [executor.submit(report_then_wait, log, gate) for _ in range(2)]
    wait_until(lambda: len(w.read_lines(log)) == 2, "both workers to report")
    open_gate(gate)
    for call in calls:
        call.result(timeout=RESULT_TIMEOUT_S)
    return [tuple(map(int, line.split())) for line in w.read_lines(log)]


def wait_for_workers_to_stop(backend, workers) -> None:
    wait_until(lambda: all(worker_is_gone(backend, *worker) for worker in workers),
               "the workers to stop")


def shutdown_within(executor, timeout=RESULT_TIMEOUT_S, **kwargs) -> None:
    closer = threading.Thread(target=executor.shutdown, kwargs=kwargs)
    closer.start()
    closer.join(timeout)
    assert not closer.is_alive(), "shutdown() hung"


def raise_runtime_error():
    raise RuntimeError(123)  # a comment the remote traceback shows


class DeletionWitness:
    """Creates the file ``path`` when a copy of it is freed in another process."""

    def __init__(self, path: str):
        self.path = path
        self.owner = os.getpid()

    def __del__(self):
        if os.getpid() != self.owner:
            open(self.path, "a").close()


def exit_one():
    sys.exit(1)


def return_instance(cls):
    return cls()


class ErrorWhenPickled:
    def __reduce__(self):
        raise pickle.PicklingError("error in pickle")


class ExitWhenUnpickled:
    def __reduce__(self):
        return exit_one, ()


# --- shutdown -------------------------------------------------------------------------------


def test_run_after_shutdown(executor):
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 5)
    with pytest.raises(RuntimeError):
        executor.map(pow, [2], [5])
    with pytest.raises(PoolClosedError):
        executor.submit(pow, 2, 5)
    executor.shutdown()  # idempotent, either way
    executor.shutdown(wait=False)


def test_context_manager_shutdown(backend, tmp_path):
    """Leaving the block waits for the work and stops the workers."""
    log, gate = str(tmp_path / "log"), str(tmp_path / "gate")
    with allcores.Executor(2, backend=backend) as executor:
        try:
            workers = workers_seen(executor, log, gate)
        finally:
            open_gate(gate)
        assert list(executor.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    wait_for_workers_to_stop(backend, workers)
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 5)


def test_shutdown_waits_for_every_call_issue12364(executor):
    calls = [executor.submit(w.sleep_then_return, 0.01, n) for n in range(50)]
    executor.shutdown()
    assert all(call.done() for call in calls)
    assert [call.result(timeout=0) for call in calls] == list(range(50))


def test_shutdown_cancel_futures(executor, gate, tmp_path):
    """The original counts "more than 20 of 50" cancelled; here the two workers are held
    until the cancelling is over, so exactly the 48 queued calls are cancelled and the
    two running ones finish. (A thread opens the gate once it sees them cancelled:
    shutdown(wait=True) waits for the running calls.)"""
    started = str(tmp_path / "started")
    running = [executor.submit(w.gated, gate, (0, 1), started, None, x) for x in (0, 1)]
    wait_until(lambda: len(w.read_lines(started)) == 2, "both workers to be busy")
    queued = [executor.submit(w.gated, gate, (), started, None, x) for x in range(2, 50)]

    def open_once_cancelled():
        try:
            wait_until(lambda: all(f.cancelled() for f in queued), "the cancelling")
        finally:
            open_gate(gate)

    opener = threading.Thread(target=open_once_cancelled)
    opener.start()
    try:
        executor.shutdown(cancel_futures=True)
    finally:
        opener.join(RESULT_TIMEOUT_S)
    assert all(f.cancelled() for f in queued)
    assert [f.result(timeout=0) for f in running] == [0, 1]
    assert sorted(w.read_ints(started)) == [0, 1]


def test_shutdown_without_waiting(backend, tmp_path):
    """shutdown(wait=False) returns while a call runs; that call, and a map made before,
    still finish; then the workers stop."""
    log, gate, started = (str(tmp_path / name) for name in ("log", "gate", "started"))
    executor = allcores.Executor(2, backend=backend)
    try:
        workers = workers_seen(executor, log, str(tmp_path / "first-gate"))
        call = executor.submit(w.gated, gate, (7,), started, None, 7)
        results = executor.map(abs, range(-5, 5))
        wait_until(lambda: w.read_lines(started), "the call to start")
        executor.shutdown(wait=False)
        assert not call.done()
        with pytest.raises(RuntimeError):
            executor.submit(pow, 2, 5)
    finally:
        open_gate(gate)
        executor.shutdown(wait=False)
    assert call.result(timeout=RESULT_TIMEOUT_S) == 49
    assert list(results) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    wait_for_workers_to_stop(backend, workers)


def test_cancel_then_shutdown_gh94440(backend):
    executor = allcores.Executor(1, backend=backend)
    assert executor.submit(int).result(timeout=RESULT_TIMEOUT_S) == 0
    executor.submit(int).cancel()
    shutdown_within(executor, wait=True)


def test_dropped_executor_finishes_its_work(backend, tmp_path):
    """Dropped without shutdown(): a map made before it can still be read to its end,
    then the workers stop, as the standard executors' test_del_shutdown wants."""
    log, gate = str(tmp_path / "log"), str(tmp_path / "gate")
    executor = allcores.Executor(2, backend=backend)
    try:
        workers = workers_seen(executor, log, gate)
    finally:
        open_gate(gate)
    results = executor.map(abs, range(-5, 5))
    ref = weakref.ref(executor)
    del executor
    gc.collect()
    assert ref() is None
    assert list(results) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    wait_for_workers_to_stop(backend, workers)


def test_a_kept_future_does_not_keep_its_executor(backend):
    """A future does not hold its executor: the standard executors' futures know nothing
    of them, so dropping the executor stops its workers even while the caller keeps the
    futures it got (the work already submitted finishing first)."""
    executor = allcores.Executor(1, backend=backend)
    future = executor.submit(pow, 2, 8)
    assert future.result(timeout=RESULT_TIMEOUT_S) == 256
    ref = weakref.ref(executor)
    del executor
    gc.collect()
    assert ref() is None, "the future keeps its executor (and its workers) alive"


# --- the interpreter's exit (a script in a subprocess) ---------------------------------------


def start_script(tmp_path, body: str, *args: str) -> subprocess.Popen:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [TESTS_DIR] + os.environ.get("PYTHONPATH", "").split(os.pathsep)).rstrip(os.pathsep))
    return subprocess.Popen([sys.executable, str(script), *args], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = RESULT_TIMEOUT_S):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the script did not exit within {timeout} s:\n{err}") from None
    return process.returncode, out, err


SCRIPT_WITH_A_RUNNING_CALL = """
    import sys
    import _workloads as w
    import allcores

    if __name__ == "__main__":
        backend, started, done, gate, shutdown = sys.argv[1:]
        executor = allcores.Executor(2, backend=backend)
        executor.submit(w.gated, gate, (1,), started, done, 1)
        if shutdown == "no-wait":
            executor.shutdown(wait=False)
        w.wait_for_path(started)
        print("script ended", flush=True)
"""


def test_interpreter_exit_with_a_live_executor(backend, tmp_path):
    """Deliberately different: at the exit, an executor still open is terminated with
    the other live pools, so a running process call is stopped and the exit does not
    wait for it (the standard executor waits). A running thread cannot be stopped: the
    exit waits for it, as the standard one does."""
    started, done, gate = (str(tmp_path / name) for name in ("started", "done", "gate"))
    process = start_script(tmp_path, SCRIPT_WITH_A_RUNNING_CALL,
                           backend, started, done, gate, "no")
    try:
        assert process.stdout.readline() == "script ended\n"
        if backend == "thread":
            open_gate(gate)
        # A process call left waiting would give up after WAIT_LIMIT_S: exit well before.
        rc, out, err = finish(process, timeout=w.WAIT_LIMIT_S / 2)
    finally:
        open_gate(gate)
        process.kill()
        process.communicate()
    assert (rc, err) == (0, "")
    assert w.read_ints(done) == ([1] if backend == "thread" else [])


def test_interpreter_exit_after_shutdown_without_waiting_gh83386(backend, tmp_path):
    """shutdown(wait=False), then the end of the script: the exit waits for the running
    call (it is still blocked once the script has ended), then exits cleanly."""
    started, done, gate = (str(tmp_path / name) for name in ("started", "done", "gate"))
    process = start_script(tmp_path, SCRIPT_WITH_A_RUNNING_CALL,
                           backend, started, done, gate, "no-wait")
    try:
        assert process.stdout.readline() == "script ended\n"
        assert process.poll() is None, "the exit did not wait for the running call"
        open_gate(gate)
        rc, out, err = finish(process)
    finally:
        open_gate(gate)
        process.kill()
        process.communicate()
    assert (rc, err) == (0, "")
    assert w.read_ints(done) == [1]


SCRIPT_OWN_FUNCTIONS_AFTER_ITS_END = """
    import os, sys, threading, time
    import allcores

    def wait_for(path):
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.005)

    def first(gate):
        wait_for(gate)

    def second(done):
        open(done, "w").close()

    def report(future):
        if future.exception() is not None:
            print(repr(future.exception()), file=sys.stderr, flush=True)

    if __name__ == "__main__":
        gate, done = sys.argv[1:]
        main = sys.modules["__main__"]

        def open_gate_once_the_script_has_ended():
            # CPython deletes __main__.__file__ once the script's code has run.
            deadline = time.monotonic() + 30
            while "__file__" in vars(main) and time.monotonic() < deadline:
                time.sleep(0.005)
            open(gate, "w").close()

        executor = allcores.Executor(1, max_tasks_per_child=1)
        for future in (executor.submit(first, gate), executor.submit(second, done)):
            future.add_done_callback(report)
        executor.shutdown(wait=False)
        threading.Thread(target=open_gate_once_the_script_has_ended, daemon=True).start()
"""


def test_interpreter_exit_after_shutdown_without_waiting_runs_the_scripts_functions(
        tmp_path):
    """gh-83386 with the functions defined in the script itself, as users write them:
    the second call runs on a worker started after the script's code has ended (the
    first worker is replaced after one call); it must still find the script's function,
    and the exit wait for it."""
    gate, done = str(tmp_path / "gate"), str(tmp_path / "done")
    process = start_script(tmp_path, SCRIPT_OWN_FUNCTIONS_AFTER_ITS_END, gate, done)
    try:
        rc, out, err = finish(process)
    finally:
        open_gate(gate)
        process.kill()
        process.communicate()
    assert (rc, err) == (0, "")
    assert os.path.exists(done)


SCRIPT_SUBMITTING_AT_EXIT = """
    import atexit

    @atexit.register
    def run_last():  # registered before allcores': runs after it
        try:
            executor.submit(id, None)
        except RuntimeError:
            print("runtime-error", flush=True)
            raise

    import sys
    import allcores

    if __name__ == "__main__":
        executor = allcores.Executor(2, backend=sys.argv[1])
        executor.submit(id, 42).result()
"""


def test_submit_after_interpreter_shutdown(tmp_path):
    rc, out, err = finish(start_script(tmp_path, SCRIPT_SUBMITTING_AT_EXIT, "process"))
    assert out.strip() == "runtime-error"
    assert "PoolClosedError" in err  # a RuntimeError, raised from the atexit hook


# --- process-pool specifics -------------------------------------------------------------------


def test_max_tasks_per_child():
    with allcores.Executor(1, max_tasks_per_child=3) as executor:
        pids = [executor.submit(os.getpid).result(timeout=RESULT_TIMEOUT_S) for _ in range(4)]
        assert pids[0] == pids[1] == pids[2]  # the same worker, for three tasks
        assert pids[3] != pids[0]  # then a new one
        # One chunk of a map is one task, counted with the calls: the second worker
        # runs two more, then a third one takes over.
        mapped = list(executor.map(w.getpid, range(5), chunksize=1))
    assert mapped[:2] == [pids[3]] * 2
    assert mapped[2:] == [mapped[2]] * 3 and mapped[2] not in (pids[0], pids[3])


@pytest.mark.parametrize("max_workers, max_tasks, calls", [(1, 2, 6), (2, 2, 8)])
def test_max_tasks_per_child_with_a_backlog_gh115634(max_workers, max_tasks, calls):
    """More calls queued than workers, while workers reach their limit: each is replaced
    and every call runs, no worker running more than its share."""
    with allcores.Executor(max_workers, max_tasks_per_child=max_tasks) as executor:
        futures = [executor.submit(w.whoami, n) for n in range(calls)]
        results = [f.result(timeout=RESULT_TIMEOUT_S) for f in futures]
    assert [x for x, _, _ in results] == list(range(calls))
    per_worker = Counter(pid for _, pid, _ in results)
    assert max(per_worker.values()) <= max_tasks
    assert len(per_worker) >= calls // max_tasks


def test_max_tasks_per_child_early_shutdown():
    executor = allcores.Executor(3, max_tasks_per_child=1)
    futures = [executor.submit(mul, n, n) for n in range(6)]
    executor.shutdown()
    assert [f.result(timeout=0) for f in futures] == [n * n for n in range(6)]


def test_a_killed_worker_fails_its_call_only(tmp_path, gate):
    """Deliberately different (test_killed_child): ProcessPoolExecutor breaks for good
    when a worker is killed (BrokenProcessPool for every call, then for submit);
    allcores fails the call that ran there (retries=0: at once) with WorkerCrashedError,
    a BrokenProcessPool, and goes on: another call in flight and later calls succeed."""
    pid_file, started = str(tmp_path / "pid"), str(tmp_path / "started")
    with allcores.Executor(2, retries=0) as executor:
        try:
            victim = executor.submit(w.report_pid_then_wait, pid_file, gate, 0)
            other = executor.submit(w.gated, gate, (5,), started, None, 5)
            wait_until(lambda: w.read_lines(pid_file) and w.read_lines(started),
                       "both calls to start")
            os.kill(w.read_ints(pid_file)[0], signal.SIGKILL)
            with pytest.raises(BrokenProcessPool) as info:
                victim.result(timeout=RESULT_TIMEOUT_S)
            assert isinstance(info.value, WorkerCrashedError)
            assert info.value.exitcode == -signal.SIGKILL
            assert not other.done()
        finally:
            open_gate(gate)
        assert other.result(timeout=RESULT_TIMEOUT_S) == 25
        assert executor.submit(pow, 2, 8).result(timeout=RESULT_TIMEOUT_S) == 256


def test_a_call_that_kills_every_worker_gh139462():
    """A call whose worker dies every time fails after its retry (default retries=1) with
    WorkerCrashedError naming the exit code (the standard error says "terminated
    abruptly with exit code 99"); the executor goes on (deliberately different)."""
    with allcores.Executor(1) as executor:
        with pytest.raises(BrokenProcessPool) as info:
            executor.submit(os._exit, 99).result(timeout=RESULT_TIMEOUT_S)
        error = info.value
        assert isinstance(error, WorkerCrashedError)
        assert (error.exitcode, error.attempts) == (99, 2)
        assert "exit code 99" in str(error)
        assert executor.submit(pow, 2, 8).result(timeout=RESULT_TIMEOUT_S) == 256
        # In a map, the error is raised where the iteration reaches the item.
        results = executor.map(functools.partial(w.die_on, "exit", 3), range(6), chunksize=1)
        assert [next(results) for _ in range(3)] == [0, 1, 4]
        with pytest.raises(WorkerCrashedError):
            next(results)
        assert list(executor.map(mul, range(4), range(4))) == [0, 1, 4, 9]


def test_each_failed_future_has_its_own_error():
    """test_broken_process_pool_traceback: each future raises an exception of its own,
    not one shared object that gathers a traceback frame per result() call."""
    errors = []
    with allcores.Executor(2, retries=0) as executor:
        futures = [executor.submit(w.die_on, "exit", n, n) for n in range(3)]
        for future in futures:
            try:
                future.result(timeout=RESULT_TIMEOUT_S)
            except BrokenProcessPool as error:
                frames = traceback.extract_tb(error.__traceback__)
                assert sum(frame.filename == __file__ for frame in frames) == 1
                errors.append(error)
    assert len(errors) == 3 and len({id(error) for error in errors}) == 3


def test_the_workers_traceback_is_the_cause(capsys):
    with allcores.Executor(1) as executor:
        with pytest.raises(RuntimeError) as info:
            executor.submit(raise_runtime_error).result(timeout=RESULT_TIMEOUT_S)
    error = info.value
    assert type(error) is RuntimeError and error.args == (123,)
    assert isinstance(error.__cause__, RemoteTraceback)
    assert "raise RuntimeError(123)  # a comment the remote traceback shows" in \
        error.__cause__.text
    sys.excepthook(type(error), error, error.__traceback__)
    assert "# a comment the remote traceback shows" in capsys.readouterr().err


def test_the_arguments_are_freed_in_the_worker(tmp_path):
    """A call's arguments do not outlive the call in the worker."""
    freed = str(tmp_path / "freed")
    witness = DeletionWitness(freed)
    with allcores.Executor(1) as executor:
        assert executor.submit(id, witness).result(timeout=RESULT_TIMEOUT_S)
        wait_until(lambda: os.path.exists(freed), "the worker to free the argument")


FAILURES = {
    # name: (fn, args, what the call raises)
    "error pickling the argument": (id, (ErrorWhenPickled(),), pickle.PicklingError),
    "exit unpickling the argument": (id, (ExitWhenUnpickled(),), SystemExit),
    "error pickling the result": (return_instance, (ErrorWhenPickled,), pickle.PicklingError),
    "exit unpickling the result": (return_instance, (ExitWhenUnpickled,), SystemExit),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failure_in_transit_is_the_calls_error(failure):
    """test_deadlock's cases: no hang, and the error on the call's future: submit() itself
    does not raise, as with the standard executor. Where its worker or result thread dies
    (an exit while unpickling), ProcessPoolExecutor raises BrokenProcessPool and breaks;
    allcores gives the call its own error and goes on (deliberately different)."""
    fn, args, expected = FAILURES[failure]
    with allcores.Executor(2, retries=0) as executor:
        future = executor.submit(fn, *args)
        with pytest.raises(expected):
            future.result(timeout=RESULT_TIMEOUT_S)
        assert executor.submit(pow, 2, 8).result(timeout=RESULT_TIMEOUT_S) == 256


def test_a_crash_during_shutdown(gate):
    """test_shutdown_deadlock: a worker that dies while shutdown(wait=True) waits for it
    neither hangs the shutdown nor leaves its future unsettled."""
    executor = allcores.Executor(2, retries=0)
    try:
        future = executor.submit(w.die_on_after_gate, gate, 0, 0)
        opener = threading.Thread(target=open_gate, args=(gate,))
        opener.start()
        shutdown_within(executor, wait=True)
        opener.join(RESULT_TIMEOUT_S)
    finally:
        open_gate(gate)
        executor.shutdown()
    with pytest.raises(BrokenProcessPool):
        future.result(timeout=0)
