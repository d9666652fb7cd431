"""A map never hangs, never loses or shifts a result, and one failure never breaks the
pool for good: one test (or a few) per way this promise was once broken (issue
"Nothing lost, nothing hung", cases 1 to 8; 9 and 10 are in test_dask.py). The fault
matrix is in test_faults.py.

Every wait is bounded; scripts run in child Pythons with a timeout.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import pickle
import resource
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import _workloads as w
import pytest
from _support import kill_leftovers, pid_gone, run_in_thread, wait_pids_gone, wait_until

import allcores
from allcores import ChunkTimeoutError, PoolClosedError, WorkerCrashedError, WorkerInitError
from allcores._execute import ChunkResult, chunk_values

WORKERS = 2
BOUND_S = 30
START_METHODS = [m for m in ("forkserver", "spawn", "fork")
                 if m in multiprocessing.get_all_start_methods()]
TESTS_DIR = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="fork, signals and /proc are Linux's here")


def notes(error: BaseException) -> str:
    return "\n".join(getattr(error, "__notes__", []))


def run_script(code: str, *args: str, stdin: str | None = None, timeout: float = 60):
    """Run ``code`` in a child Python (from tests/, so that it finds _workloads)."""
    command = [sys.executable, "-c", code, *args] if stdin is None else [sys.executable, "-"]
    return subprocess.run(command, input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=TESTS_DIR)


@pytest.fixture
def pools():
    """Pools made by the test, terminated after it whatever happened."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("workers", WORKERS)
        pool = allcores.Pool(**kwargs)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.terminate()


# ======================================================================================
# 1. Silent data loss: StopIteration from fn, and a chunk that comes back short
# ======================================================================================


@pytest.mark.parametrize("backend", ["serial", "thread", "process"])
@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered", "submit"])
def test_stop_iteration_from_fn_is_a_runtime_error_not_the_end(pools, backend, method):
    pool = pools(backend=backend)
    fn = functools.partial(w.stop_iteration_on, 3)
    failing_item = 0 if method == "submit" else 3  # submit's one call is its item 0
    got = []
    if method == "submit":
        future = pool.submit(fn, 3)
        error = future.exception(timeout=BOUND_S)
    else:
        with pytest.raises(RuntimeError) as info:
            call = run_in_thread(
                lambda: got.extend(getattr(pool, method)(fn, range(8), chunksize=2)), BOUND_S)
            call()
        error = info.value
    assert type(error) is RuntimeError
    assert "StopIteration" in str(error)
    if backend == "process":  # the worker's traceback, which shows the original
        assert "StopIteration: from fn" in error.__cause__.text
    else:
        assert isinstance(error.__cause__, StopIteration)
    assert f"raised by item {failing_item} of the input" in notes(error)
    if method == "imap":
        assert got == [0, 1]  # everything before the failing chunk, nothing shifted
    assert pool.map(w.square, range(8), chunksize=2) == [x * x for x in range(8)]


def test_stop_iteration_in_the_planners_sample_and_in_a_serial_map():
    fn = functools.partial(w.stop_iteration_on, 2)
    for backend in ("auto", "serial"):
        with pytest.raises(RuntimeError) as info:
            allcores.map(fn, range(5), backend=backend)
        assert isinstance(info.value.__cause__, StopIteration)
        assert "raised by item 2 of the input" in notes(info.value)


def test_a_chunk_with_the_wrong_number_of_results_is_refused():
    assert chunk_values(ChunkResult([1, 2], 0.0), 2) == [1, 2]
    for values in ([1], [1, 2, 3]):
        with pytest.raises(RuntimeError, match="came back with"):
            chunk_values(ChunkResult(values, 0.0), 2)
        with pytest.raises(RuntimeError, match="came back with"):
            chunk_values(ChunkResult(None, 0.0, payload=pickle.dumps(values)), 2)


# ======================================================================================
# 2. What a result or a callback raises never kills the engine
# ======================================================================================


@pytest.mark.parametrize("method", ["map", "imap", "submit"])
def test_a_result_raising_system_exit_when_unpickled_fails_only_its_call(pools, method):
    pool = pools(backend="process")
    fn = functools.partial(w.return_exits_system_when_unpickled, 2)
    if method == "submit":
        error = pool.submit(fn, 2).exception(timeout=BOUND_S)
        assert isinstance(error, SystemExit)
    else:
        with pytest.raises(SystemExit) as info:
            run_in_thread(lambda: list(getattr(pool, method)(fn, range(5), chunksize=1)),
                          BOUND_S)()
        error = info.value
    assert error.code == 4
    assert "failed unpickling the results" in notes(error)
    for _ in range(3):  # the pool goes on, every call of it
        assert pool.map(w.square, range(6), chunksize=1) == [x * x for x in range(6)]


@pytest.mark.parametrize("raised", [SystemExit(2), KeyboardInterrupt(), ValueError("cb")])
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_raising_done_callback_runs_no_harm(pools, backend, raised, caplog):
    pool = pools(backend=backend)
    ran = []

    def bad_callback(future):
        ran.append("bad")
        raise raised

    def good_callback(future):
        ran.append(("good", future.result()))

    gate = threading.Event()
    future = pool.submit(w.sleep_then_return, 0.2, 7)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        future.add_done_callback(bad_callback)
        future.add_done_callback(good_callback)
        future.add_done_callback(lambda _: gate.set())
        assert future.result(timeout=BOUND_S) == 7
        assert gate.wait(BOUND_S)
    assert ran == ["bad", ("good", 7)]
    assert "exception calling callback" in caplog.text
    for _ in range(2):
        assert pool.submit(w.square, 5).result(timeout=BOUND_S) == 25
        assert pool.map(w.square, range(6), chunksize=1) == [x * x for x in range(6)]


def test_a_remote_keyboard_interrupt_is_the_calls_error_not_a_ctrl_c(pools):
    pool = pools(backend="process")
    with pytest.raises(KeyboardInterrupt) as info:
        pool.map(functools.partial(w.raise_base_exception, "KeyboardInterrupt", 1), range(3))
    assert "raised by item 1" in notes(info.value)
    assert not pool.closed
    assert pool.map(w.square, range(4)) == [0, 1, 4, 9]


# ======================================================================================
# 3. Forked children: fresh state, no hang
# ======================================================================================

FORK_CHILD_CHECKS = textwrap.dedent("""
    import json, os, sys, time
    import _workloads as w
    import allcores

    def child_checks(inherited):
        out = {}
        out["map"] = allcores.map(w.square, range(6), backend=sys.argv[1], workers=2)
        try:
            inherited.map(w.square, range(3))
        except allcores.PoolClosedError as error:
            out["inherited"] = str(error)
        with allcores.Pool(2, backend="process") as fresh:
            out["new_pool"] = fresh.map(w.square, range(4))
        out["inherited_closed"] = inherited.closed
        inherited.terminate()  # must not touch the parent's workers
        return out

    if __name__ == "__main__":
        backend = sys.argv[1]
        parent_pool = allcores.Pool(2, backend=backend)
        assert allcores.map(w.square, range(6), backend=backend, workers=2) == [0, 1, 4, 9, 16, 25]
        assert allcores.map(w.square, range(6), backend="process", workers=2)  # warm forkserver
        assert parent_pool.map(w.square, range(3)) == [0, 1, 4]
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            try:
                report = child_checks(parent_pool)
            except BaseException as error:
                report = {"error": repr(error)}
            os.write(write, json.dumps(report).encode())
            os._exit(0)
        os.close(write)
        deadline = time.monotonic() + 40
        while True:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(child, 9)
                print(json.dumps({"error": "the fork child hung"}))
                sys.exit(1)
            time.sleep(0.01)
        report = json.loads(os.read(read, 1 << 16).decode() or "{}")
        report["parent_after"] = parent_pool.map(w.square, range(3))
        report["parent_module_after"] = allcores.map(w.square, range(3), backend=backend,
                                                     workers=2)
        print(json.dumps(report))
""")


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_fork_child_of_a_warm_process_maps_and_makes_pools(backend):
    run = run_script(FORK_CHILD_CHECKS, backend)
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert "error" not in report, report
    assert report["map"] == [0, 1, 4, 9, 16, 25]
    assert report["new_pool"] == [0, 1, 4, 9]
    assert "inherited it through os.fork()" in report["inherited"]
    assert report["inherited_closed"] is True
    assert report["parent_after"] == [0, 1, 4]
    assert report["parent_module_after"] == [0, 1, 4]


# ======================================================================================
# 4. A broken pool is never handed out again; one state for pool and backend
# ======================================================================================

BROKEN_DEFAULT_POOL = textwrap.dedent("""
    import json, os, signal, socket
    import _workloads as w
    import allcores
    from allcores._default_pools import default_pool

    def out_of_descriptors(*args, **kwargs):
        raise OSError(24, "Too many open files (injected)")

    if __name__ == "__main__":
        assert allcores.map(w.square, range(4), backend="process", workers=2) == [0, 1, 4, 9]
        pool = default_pool("process", 2)
        victim = pool.map(w.getpid, range(2), chunksize=1)[0]
        real_socketpair = socket.socketpair
        socket.socketpair = out_of_descriptors  # no new worker can start
        os.kill(victim, signal.SIGKILL)
        report = {}
        try:
            for _ in range(50):  # until the replacement is needed, and fails
                allcores.map(w.square, range(40), backend="process", workers=2, chunksize=1)
        except allcores.WorkerInitError as error:
            report["error"] = f"{error} / {error.__cause__}"
        except Exception as error:
            report["other_error"] = repr(error)
        socket.socketpair = real_socketpair
        report["broken"] = repr(pool)
        report["closed"] = pool.closed
        report["next"] = allcores.map(w.square, range(4), backend="process", workers=2)
        report["replaced"] = default_pool("process", 2) is not pool
        print(json.dumps(report))
""")


def test_a_default_pool_that_broke_is_replaced():
    run = run_script(BROKEN_DEFAULT_POOL)
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert "could not start a worker process" in report.get("error", ""), report
    assert "injected" in report["error"]
    assert "broken" in report["broken"] and report["closed"] is True
    assert report["next"] == [0, 1, 4, 9]
    assert report["replaced"] is True


def test_a_broken_pool_says_why_on_every_call(pools):
    pool = pools(backend="process", initializer=w.refuse_to_start)
    for _ in range(2):
        with pytest.raises(WorkerInitError) as info:
            pool.map(w.square, range(4))
        assert "initializer refused to start" in str(info.value.__cause__)
    assert pool.closed
    assert "broken" in repr(pool)
    with pool:  # a broken pool may be entered; its calls say why it broke
        with pytest.raises(WorkerInitError):
            pool.submit(w.square, 2)


# ======================================================================================
# 5. Deaths seen at once, stopped workers, many descriptors, initializers, sys.exit
# ======================================================================================


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_worker_that_forked_a_child_then_died_is_seen_at_once(pools, start_method, tmp_path):
    pool = pools(backend="process", start_method=start_method, retries=0)
    pid_file = tmp_path / "grandchild.pid"
    grandchildren = []
    try:
        began = time.monotonic()
        with pytest.raises(WorkerCrashedError) as info:
            run_in_thread(lambda: pool.map(
                functools.partial(w.fork_then_exit, str(pid_file), 1), range(3),
                chunksize=1), BOUND_S)()
        assert time.monotonic() - began < 10  # the grandchild lives on for 30 s
        assert info.value.exitcode == 3
        grandchildren = w.read_ints(pid_file)
        assert grandchildren and not pid_gone(grandchildren[0])
        assert pool.map(w.square, range(4), chunksize=1) == [0, 1, 4, 9]
    finally:
        kill_leftovers(w.read_ints(pid_file))


@pytest.mark.parametrize("stop", ["timeout", "terminate"])
def test_a_killed_worker_takes_the_processes_it_started_with_it(pools, stop, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    pool = pools(backend="process", timeout=2.0 if stop == "timeout" else None, retries=0)
    try:
        future = pool.submit(w.fork_then_sleep, str(pid_file), 0)
        grandchild = int(wait_until(lambda: w.read_lines(pid_file), BOUND_S,
                                    "the chunk to start its subprocess")[0])
        if stop == "timeout":
            assert isinstance(future.exception(timeout=BOUND_S), ChunkTimeoutError)
        else:
            pool.terminate()
            assert isinstance(future.exception(timeout=BOUND_S), PoolClosedError)
        wait_pids_gone([grandchild], 5)
    finally:
        kill_leftovers(w.read_ints(pid_file))


def test_a_dying_idle_worker_is_not_taken_for_an_idle_one(pools, monkeypatch):
    # Its socket closed (the manager saw end-of-file) before its exit was seen: the
    # manager must wait for that exit, not spin on "an idle worker and queued work".
    from allcores.backends import process as process_backend

    monkeypatch.setattr(process_backend._WorkerHandle, "kill", lambda self, children=None: None)
    pool = pools(backend="process", workers=1)
    pid = pool.submit(w.getpid, 0).result(timeout=BOUND_S)
    assert pool.submit(w.hang_up_soon_then_exit, 1).result(timeout=BOUND_S) == 1
    # Its exit comes 1 s after its socket closes: the manager sees the end-of-file first.
    wait_until(lambda: any(h.hung_up for h in list(pool._backend._handles)), BOUND_S,
               "the manager to see the socket close")
    assert pool.submit(w.getpid, 2).result(timeout=BOUND_S) != pid  # on its replacement


def test_a_worker_stopped_in_the_middle_of_a_reply_blocks_nothing(pools):
    pool = pools(backend="process", timeout=1.0, retries=0)
    began = time.monotonic()
    with pytest.raises(ChunkTimeoutError):
        run_in_thread(lambda: pool.map(w.send_half_a_reply_then_stop, [0]), BOUND_S)()
    assert time.monotonic() - began < 10
    assert pool.map(w.square, range(4), chunksize=1) == [0, 1, 4, 9]

    stopped = pools(backend="process")
    future = stopped.submit(w.send_half_a_reply_then_stop, 1)
    other = stopped.submit(w.square, 3)
    assert other.result(timeout=BOUND_S) == 9  # the manager still serves the other worker
    began = time.monotonic()
    stopped.terminate()
    assert time.monotonic() - began < 5
    assert isinstance(future.exception(timeout=BOUND_S), PoolClosedError)


def test_fork_workers_of_a_caller_with_over_1024_descriptors(pools, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1400
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    opened = []
    try:
        while len(os.listdir("/proc/self/fd")) < 1100:
            opened.append(os.open(os.devnull, os.O_RDONLY))
        pool = pools(backend="process", start_method="fork")
        assert pool.map(w.square, range(20), chunksize=1) == [x * x for x in range(20)]
        meet = functools.partial(w.meet, str(tmp_path), WORKERS)
        pids = set(pool.map(meet, range(WORKERS), chunksize=1))  # both workers at once
        assert pool.map(w.square, range(20), chunksize=1) == [x * x for x in range(20)]
        assert len(pids) == WORKERS and not any(pid_gone(pid) for pid in pids)
    finally:
        for fd in opened:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_ctrl_c_inside_the_wake_up_write_loses_no_wake_up(pools, monkeypatch):
    from allcores.backends import process as process_backend

    pool = pools(backend="process")
    assert pool.map(w.square, range(4)) == [0, 1, 4, 9]
    backend = pool._backend
    real_write = os.write
    interrupted = []

    def write(fd, data):
        if fd == backend._wakeup_writer and not interrupted:
            interrupted.append(fd)
            raise KeyboardInterrupt  # as if Ctrl-C landed right there
        return real_write(fd, data)

    monkeypatch.setattr(process_backend.os, "write", write)
    with pytest.raises(KeyboardInterrupt):
        backend._wake()
    assert interrupted
    assert pool.map(w.square, range(4)) == [0, 1, 4, 9]  # later wake-ups still work
    began = time.monotonic()
    pool.terminate()
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_failing_initializer_is_reported_as_itself_with_many_workers(pools, start_method):
    pool = pools(backend="process", workers=4, start_method=start_method,
                 initializer=w.refuse_to_start)
    with pytest.raises(WorkerInitError) as info:
        run_in_thread(lambda: pool.map(w.square, range(8)), BOUND_S)()
    assert "initializer" in str(info.value)
    assert "exit code" not in str(info.value)
    assert "initializer refused to start" in str(info.value.__cause__)


def test_sys_exit_in_fn_reaches_the_caller_and_the_worker_lives_on(pools, tmp_path):
    pool = pools(backend="process", retries=0)

    def worker_pids(name):  # both workers, each holding an item until the other has one
        (tmp_path / name).mkdir()
        meet = functools.partial(w.meet, str(tmp_path / name), WORKERS)
        return set(pool.map(meet, range(WORKERS), chunksize=1))

    pids = worker_pids("before")
    with pytest.raises(SystemExit) as info:
        pool.map(functools.partial(w.sys_exit_on, 3, 2), range(4), chunksize=1)
    assert info.value.code == 3
    assert "raised by item 2 of the input" in notes(info.value)
    assert worker_pids("after") == pids  # nobody died of it


# ======================================================================================
# 6. The missing if __name__ == "__main__": guard
# ======================================================================================

GUARDLESS_SCRIPTS = {
    # the module-level functions use the default start method (forkserver on Linux)
    "module-map-default": """
        import allcores
        print("body")
        print(allcores.map(abs, range(-3, 3), backend="process", workers=2))
    """,
    "pool-spawn": """
        import allcores
        print("body")
        with allcores.Pool(2, start_method="spawn") as pool:
            print(pool.map(abs, range(-3, 3)))
    """,
    "pool-forkserver": """
        import allcores
        print("body")
        with allcores.Pool(2, start_method="forkserver") as pool:
            print(pool.map(abs, range(-3, 3)))
    """,
}


@pytest.mark.parametrize("script", GUARDLESS_SCRIPTS)
def test_a_script_without_the_main_guard_fails_once_fast_and_says_why(tmp_path, script):
    path = tmp_path / "guardless.py"
    path.write_text(textwrap.dedent(GUARDLESS_SCRIPTS[script]))
    began = time.monotonic()
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert time.monotonic() - began < 20
    assert run.returncode != 0
    assert run.stderr.count('if __name__ == "__main__":') == 1, run.stderr
    assert run.stderr.count("WorkerInitError") == 1, run.stderr
    assert len(run.stderr.splitlines()) < 40, run.stderr
    # What the script prints before it starts work, a worker prints too as it imports
    # the script (multiprocessing's way); none of them goes on past that point.
    assert 1 <= run.stdout.count("body") <= 1 + WORKERS, run.stdout
    assert "[3, 2, 1, 0, 1, 2]" not in run.stdout


def test_a_guarded_script_still_runs_normally(tmp_path):
    path = tmp_path / "guarded.py"
    path.write_text(textwrap.dedent("""
        import allcores

        def main():
            with allcores.Pool(2, start_method="spawn") as pool:
                print(pool.map(abs, range(-3, 3)))

        if __name__ == "__main__":
            main()
    """))
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[3, 2, 1, 0, 1, 2]"


# ======================================================================================
# 7. __main__ objects as items, however __main__ was given
# ======================================================================================

MAIN_OBJECTS = textwrap.dedent("""
    import dataclasses, json, sys
    import allcores

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    def norm1(p):
        return Point(abs(p.x), abs(p.y))

    if __name__ == "__main__":
        method = sys.argv[1] if len(sys.argv) > 1 else "{method}"
        with allcores.Pool(2, start_method=method) as pool:
            got = pool.map(norm1, [Point(-i, i) for i in range(6)], chunksize=2)
            also = pool.submit(norm1, Point(-9, 9)).result(timeout=30)
        print(json.dumps({{
            "values": [[p.x, p.y] for p in got] + [[also.x, also.y]],
            "same_class": all(type(p) is Point for p in got + [also]),
        }}))
""")


@pytest.mark.parametrize("start_method", [m for m in ("spawn", "forkserver")
                                          if m in START_METHODS])
@pytest.mark.parametrize("given_as", ["-c", "stdin"])
def test_main_objects_travel_whatever_main_is(start_method, given_as):
    script = MAIN_OBJECTS.format(method=start_method)
    if given_as == "-c":
        run = run_script(script, start_method)
    else:
        run = run_script("", stdin=script)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["values"] == [[i, i] for i in range(6)] + [[9, 9]]
    assert report["same_class"] is True


# ======================================================================================
# 8. Lifecycle: close lets calls already made finish; a closed pool cannot be entered
# ======================================================================================


@pytest.mark.parametrize("backend", ["serial", "thread", "process"])
@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_an_imap_made_before_close_is_read_after_it(pools, backend, method):
    pool = pools(backend=backend)
    stream = getattr(pool, method)(w.square, range(50), chunksize=3)
    pool.close()
    assert pool.closed
    with pytest.raises(PoolClosedError):
        pool.map(w.square, range(3))
    assert sorted(run_in_thread(lambda: list(stream), BOUND_S)()) == [x * x for x in range(50)]


def test_the_workers_stop_when_the_last_open_call_after_close_ends(pools, tmp_path):
    pool = pools(backend="process")
    pids = pool.map(functools.partial(w.meet, str(tmp_path), WORKERS), range(WORKERS),
                    chunksize=1)
    first = pool.imap(w.square, range(30), chunksize=1)
    second = pool.imap(w.square, range(30), chunksize=1)
    assert next(first) == 0
    pool.close()
    assert list(first) == [x * x for x in range(1, 30)]
    assert not any(pid_gone(pid) for pid in pids)  # the second call is still open
    second.close()  # ended without being read
    wait_pids_gone(pids, BOUND_S)


def test_an_unstarted_imap_dropped_after_close_lets_the_workers_stop(pools, tmp_path):
    pool = pools(backend="process")
    pids = pool.map(functools.partial(w.meet, str(tmp_path), WORKERS), range(WORKERS),
                    chunksize=1)
    stream = pool.imap(w.square, range(10))
    pool.close()
    del stream  # never started: collected, it ends its call
    wait_pids_gone(pids, BOUND_S)


@pytest.mark.parametrize("backend", ["serial", "thread", "process"])
@pytest.mark.parametrize("stop", ["close", "terminate"])
def test_entering_with_on_a_stopped_pool_raises(pools, backend, stop):
    pool = pools(backend=backend)
    getattr(pool, stop)()
    with pytest.raises(PoolClosedError):
        with pool:
            pass


def test_an_exception_travels_its_own_way_whatever_copyreg_hooks_are_installed(pools):
    # distributed installs tblib's copyreg hook for every exception class, and fork
    # workers inherit it; it rebuilt SystemExit(3) without its code.
    import copyreg

    tblib_pickling = pytest.importorskip("tblib.pickling_support")
    saved = dict(copyreg.dispatch_table)
    try:
        tblib_pickling.install()
        pool = pools(backend="process", start_method="fork", retries=0)
        with pytest.raises(SystemExit) as info:
            pool.map(functools.partial(w.sys_exit_on, 3, 1), range(3), chunksize=1)
        assert info.value.code == 3
    finally:
        copyreg.dispatch_table.clear()
        copyreg.dispatch_table.update(saved)
