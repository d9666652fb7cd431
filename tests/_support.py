"""Test-side helpers for the pool tests: bounded waits, process checks, counted inputs.

Every wait here polls with a deadline and fails with a message saying what it was
waiting for; none of them sleeps as a way to let something happen.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

POLL_S = 0.01


def wait_until(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError naming ``what`` if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_S)


def pid_gone(pid: int) -> bool:
    """True when no process ``pid`` runs any more (a zombie counts as gone: it is dead,
    only not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X", "x")


def wait_pids_gone(pids, timeout: float) -> None:
    pids = list(pids)
    wait_until(lambda: all(pid_gone(pid) for pid in pids), timeout,
               f"worker pids {pids} to exit (alive: {[p for p in pids if not pid_gone(p)]})")


def kill_leftovers(pids) -> None:
    """Clean-up after a failed test: SIGKILL the given pids (ours) that still run."""
    import signal

    for pid in pids:
        if not pid_gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def ignores_signal(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has ``signum`` set to SIG_IGN (from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    raise AssertionError(f"/proc/{pid}/status has no SigIgn line")


class CountedSource:
    """An input that records how many items the pool pulled from it.

    ``items()`` yields 0, 1, 2, ... (up to ``stop`` if given); ``pulled`` is how many
    it has handed out so far."""

    def __init__(self, stop: int | None = None):
        self.stop = stop
        self.pulled = 0

    def items(self):
        numbers = itertools.count() if self.stop is None else range(self.stop)
        for number in numbers:
            self.pulled = number + 1
            yield number


class SizedSource:
    """A sized, lazily read input: ``len()`` says ``length``; iterating yields 0, 1, 2,
    ... and raises once more than ``limit`` items were asked for, so that a pool that
    reads far too much fails at once instead of filling memory."""

    def __init__(self, length: int, limit: int):
        self.length = length
        self.limit = limit
        self.pulled = 0

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for number in range(self.length):
            if number >= self.limit:
                raise AssertionError(f"the pool read more than {self.limit} items of a "
                                     f"{self.length}-item input")
            self.pulled = number + 1
            yield number


def run_in_thread(call, timeout: float):
    """Start ``call()`` on a daemon thread; return ``result(timeout=...)``, a function
    that waits for its outcome: the return value, or the exception re-raised."""
    outcome: queue.Queue = queue.Queue(maxsize=1)

    def target():
        try:
            outcome.put(("ok", call()))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.put(("raised", exc))

    thread = threading.Thread(target=target, daemon=True, name="test-consumer")
    thread.start()

    def result(timeout: float = timeout):
        try:
            kind, value = outcome.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the call on the helper thread did not finish "
                                 f"within {timeout} s") from None
        if kind == "raised":
            raise value
        return value

    return result


@contextlib.contextmanager
def running_with(isa: str):
    """Run the native kernels' ``isa`` variants (mandelbrot, monte_carlo and fannkuch)
    inside the block."""
    from allcores import native

    before = native.mandelbrot_isa(), native.monte_carlo_isa(), native.fannkuch_isa()
    native.set_mandelbrot_isa(isa)
    native.set_monte_carlo_isa(isa)
    native.set_fannkuch_isa(isa)
    try:
        yield
    finally:
        native.set_mandelbrot_isa(before[0])
        native.set_monte_carlo_isa(before[1])
        native.set_fannkuch_isa(before[2])


def ctrl_c_once_started(started, call, timeout: float) -> None:
    """Run ``call()`` in this thread (the main one: SIGINT goes there) and press Ctrl-C
    (SIGINT) once the file ``started`` exists; ``call()`` must raise KeyboardInterrupt.
    Afterwards the file ``<started>.gate`` is created, so that a worker still waiting
    for it (see ``_workloads.wait_in_block``) goes on."""
    import signal

    main_thread = threading.main_thread()
    assert threading.current_thread() is main_thread, "SIGINT goes to the main thread"

    def press_ctrl_c():
        wait_until(started.exists, timeout, "a block to start in a worker")
        signal.pthread_kill(main_thread.ident, signal.SIGINT)

    helper = threading.Thread(target=press_ctrl_c, name="test-ctrl-c", daemon=True)
    helper.start()
    try:
        try:
            call()
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("the call ended without the KeyboardInterrupt of Ctrl-C")
    finally:
        open(f"{started}.gate", "w").close()  # should a worker still wait: let it go
        helper.join(timeout)
    assert not helper.is_alive()


# The C sources of the native kernels, for tests that compile their headers directly.
EXT_DIR = Path(__file__).resolve().parent.parent / "ext"


def compile_c(tmp_path, name: str, source: str, *flags: str, needs: str) -> Path:
    """Compile the C program ``source`` against ``ext/`` (``-shared`` among ``flags``
    makes a library) into ``tmp_path / name``; skip the test where there is no C
    compiler or no ``ext/needs`` (an installed package without its sources)."""
    import pytest

    compiler = os.environ.get("CC") or next(
        (found for found in map(shutil.which, ("cc", "gcc", "clang")) if found), None)
    if compiler is None or not (EXT_DIR / needs).is_file():
        pytest.skip(f"needs a C compiler and ext/{needs}")
    source_file = tmp_path / f"{name}.c"
    source_file.write_text(source)
    output = tmp_path / name
    result = subprocess.run([compiler, "-O2", *flags, f"-I{EXT_DIR}", str(source_file),
                             "-o", str(output), "-lm"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"compiling {name} failed:\n{result.stderr}"
    return output
