"""Workloads for the pool tests: picklable, module-level, importable by worker processes.

Worker processes (forkserver, spawn, fork) find this module by name: pytest puts
``tests/`` on ``sys.path`` before any pool starts, and multiprocessing hands that path
to the workers it starts (spawn and forkserver send it along; fork inherits it). So
plain pickle and cloudpickle both pickle these functions by reference, and exceptions
and objects defined here keep one class identity in the caller and the workers.

Conventions:

- functions take their settings first and the item last, so ``functools.partial(fn,
  settings...)`` makes a one-argument function that pickles by reference;
- a worker that must wait for the test polls for a *file* (works across processes
  and threads alike) and never waits longer than ``WAIT_LIMIT_S``: a test that fails
  before opening a gate costs at most that much, never a hang;
- workers report what they did by appending one line per event to a log file (a
  small ``O_APPEND`` write is atomic, so concurrent writers do not interleave).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
import time

# How often a waiting worker looks for its gate file.
POLL_S = 0.005
# The longest a worker waits for a gate, a peer or a test: far below the conftest
# watchdog (120 s), far above any honest wait in these tests.
WAIT_LIMIT_S = 30.0


# --- waiting and logging ------------------------------------------------------------------


def wait_for_path(path: str, timeout: float = WAIT_LIMIT_S) -> None:
    """Return once ``path`` exists; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(POLL_S)


def append_line(path: str, text: str) -> None:
    with open(path, "a") as log:
        log.write(f"{text}\n")


def read_lines(path) -> list[str]:
    try:
        with open(path) as log:
            return log.read().splitlines()
    except FileNotFoundError:
        return []


def read_ints(path) -> list[int]:
    return [int(line) for line in read_lines(path)]


# --- plain functions ----------------------------------------------------------------------


def identity(x):
    return x


def square(x):
    return x * x


def add(a, b):
    return a + b


def describe_call(*args, **kwargs):
    return args, kwargs


def whoami(x):
    """The item with the process and thread that ran it."""
    return x, os.getpid(), threading.get_ident()


def getpid(_):
    return os.getpid()


def sleep_then_return(seconds, x):
    time.sleep(seconds)
    return x


def meet(directory: str, peers: int, _):
    """Return this worker's pid once ``peers`` distinct workers have arrived here.

    Mapped over ``peers`` items with ``chunksize=1``, each item is held by a
    different worker until all have arrived, so the pids returned are those of
    ``peers`` workers running at the same time."""
    me = f"{os.getpid()}-{threading.get_ident()}"
    open(os.path.join(directory, me), "w").close()
    deadline = time.monotonic() + WAIT_LIMIT_S
    while len(os.listdir(directory)) < peers:
        if time.monotonic() > deadline:
            arrived = len(os.listdir(directory))
            raise TimeoutError(f"only {arrived} of {peers} workers arrived")
        time.sleep(POLL_S)
    return os.getpid()


def gated(gate: str, held, started_log: str | None, done_log: str | None, x):
    """``x * x``; items in ``held`` first wait for the file ``gate``.

    Logs ``x`` to ``started_log`` on entry and to ``done_log`` on exit (if given)."""
    if started_log is not None:
        append_line(started_log, str(x))
    if x in held:
        wait_for_path(gate)
    if done_log is not None:
        append_line(done_log, str(x))
    return x * x


def report_pid_then_wait(pid_file: str, gate: str, x):
    """Write this worker's pid to ``pid_file``, wait for ``gate``, return the pid."""
    append_line(pid_file, str(os.getpid()))
    wait_for_path(gate)
    return os.getpid()


def report_pid_then_sleep(pid_file: str, bad, seconds, x):
    """Item ``bad`` writes its worker's pid and sleeps ``seconds``; others return x."""
    if x == bad:
        append_line(pid_file, str(os.getpid()))
        time.sleep(seconds)
    return x


# --- failures raised by the function ------------------------------------------------------


def fail_on(bad, x):
    if x == bad:
        raise ValueError(f"cannot handle {x!r}")
    return x * x


def fail_on_pair(bad, a, b):
    if a == bad:
        raise KeyError(f"pair starting with {a!r}")
    return a + b


class NeedsTwoArgsError(Exception):
    """Pickles, but cannot be unpickled: unpickling calls ``cls(message)``."""

    def __init__(self, code, detail):
        super().__init__(f"code {code}: {detail}")
        self.code = code


class HoldsLockError(Exception):
    """Cannot even be pickled: it carries a lock."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


class BadStrError(Exception):
    """Pickles and unpickles fine, but ``str()`` of it raises."""

    def __str__(self):
        raise RuntimeError("BadStrError.__str__ is broken")


def raise_bad_str(bad, x):
    if x == bad:
        raise BadStrError(x)
    return x * x


def raise_needs_two_args(bad, x):
    if x == bad:
        raise NeedsTwoArgsError(42, "the answer")
    return x


def raise_holds_lock(bad, x):
    if x == bad:
        raise HoldsLockError("an exception with a lock inside")
    return x


def cpu_spin(seconds):
    """Busy for ``seconds`` of this thread's CPU time, then ``seconds``: CPU-heavy
    Python that holds the GIL. (A loop on a wall clock would finish on time on two
    threads at once, as if the GIL were released.)"""
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass
    return seconds


def cpu_spin_then(seconds, x):
    """:func:`cpu_spin` for ``seconds``, then ``x``."""
    cpu_spin(seconds)
    return x


# --- worker deaths ------------------------------------------------------------------------


def _die(kind: str) -> None:
    if kind == "exit":
        os._exit(3)
    elif kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "segfault":
        ctypes.string_at(0)
    elif kind == "abort":
        os.abort()
    else:
        raise AssertionError(f"unknown way to die: {kind}")
    # A signal sent to oneself is delivered before kill() returns; never get here.
    time.sleep(WAIT_LIMIT_S)
    raise AssertionError(f"{kind} did not end the worker")


def _is_bad(bad, x) -> bool:
    """``bad`` is one item or a collection of items (a tuple or a range)."""
    return x in bad if isinstance(bad, (tuple, range, frozenset)) else x == bad


def die_on(kind: str, bad, x):
    """End the worker in the way ``kind`` says on item(s) ``bad``."""
    if _is_bad(bad, x):
        _die(kind)
    return x * x


def die_once_on(marker: str, kind: str, bad, x):
    """Die on item ``bad`` the first time only: ``marker`` remembers it happened."""
    if x == bad and not os.path.exists(marker):
        open(marker, "w").close()
        _die(kind)
    return x * x


def die_on_after_gate(gate: str, bad, x):
    """Item ``bad`` waits for ``gate`` then ends its worker with exit code 3."""
    if x == bad:
        wait_for_path(gate)
        os._exit(3)
    return x * x


# --- objects that fail in transit ---------------------------------------------------------


def refuse_to_load(message):
    raise RuntimeError(message)


class RaisesWhenUnpickled:
    """Pickles fine; unpickling raises RuntimeError."""

    def __reduce__(self):
        return refuse_to_load, ("this object cannot be unpickled",)


class ExitsWhenUnpickled:
    """Pickles fine; unpickling ends the process with exit code 7."""

    def __reduce__(self):
        return os._exit, (7,)


class ExitsWhenPickled:
    """Pickling it ends the process with exit code 9."""

    def __reduce__(self):
        os._exit(9)


class UnloadableFunction:
    """A callable that pickles fine but cannot be unpickled in the worker."""

    def __call__(self, x):
        return x

    def __reduce__(self):
        return refuse_to_load, ("this function cannot be unpickled",)


class ExitingFunction:
    """A callable whose unpickling ends the worker with exit code 8."""

    def __call__(self, x):
        return x

    def __reduce__(self):
        return os._exit, (8,)


def raise_once(marker: str, x):
    """Raise on the first call only: ``marker`` remembers it happened."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError("failed the first time")
    return x


def big_bytes(size, x):
    return bytes([x % 256]) * size


def byte_sum(data):
    return sum(data[:16]) + len(data)


def return_lock(_):
    return threading.Lock()


def return_lambda_over_lock(_):
    lock = threading.Lock()
    return lambda: lock


def return_exits_when_pickled(bad, x):
    return ExitsWhenPickled() if x == bad else x


def return_raises_when_unpickled(bad, x):
    return RaisesWhenUnpickled() if x == bad else x


# --- initializers -------------------------------------------------------------------------

init_value = None


def remember(value, log_path: str):
    """Initializer: store ``value`` in this worker and log who ran it."""
    global init_value
    init_value = value
    append_line(log_path, f"{os.getpid()}-{threading.get_ident()}")


def recall(x):
    return x, init_value, f"{os.getpid()}-{threading.get_ident()}"


def refuse_to_start():
    raise ValueError("initializer refused to start")


def nested_map_sum(backend: str, x):
    """An item that maps again from inside a worker (see test_pool's nesting test)."""
    import allcores

    return sum(allcores.map(functools.partial(_times, x), range(5), backend=backend))


def _times(x, k):
    return x * k


# --- the promises of test_promises.py ------------------------------------------------------


def stop_iteration_on(bad, x):
    """Raise StopIteration on item ``bad``: a plain loop over results would end there."""
    if x == bad:
        raise StopIteration("from fn")
    return x * x


def sys_exit_on(code: int, bad, x):
    if x == bad:
        sys.exit(code)
    return os.getpid()


class SystemExitWhenUnpickled:
    """Pickles fine; unpickling raises SystemExit(4)."""

    def __reduce__(self):
        return sys.exit, (4,)


def return_exits_system_when_unpickled(bad, x):
    return SystemExitWhenUnpickled() if x == bad else x


def fork_then_exit(pid_file: str, bad, x):
    """On item ``bad``: fork a grandchild that lives on (holding every descriptor the
    worker had: its socket, its multiprocessing sentinel) for up to WAIT_LIMIT_S, record
    its pid, then end the worker with exit code 3."""
    if x != bad:
        return x * x
    child = os.fork()
    if child == 0:
        time.sleep(WAIT_LIMIT_S)
        os._exit(0)
    append_line(pid_file, str(child))
    os._exit(3)


def send_half_a_reply_then_stop(x):
    """Write the first bytes of a reply frame on the worker's own socket, then stop the
    worker with SIGSTOP: the manager sees a message that never completes."""
    import struct

    frame = sys._getframe()
    while frame is not None and frame.f_code.co_name != "worker_main":
        frame = frame.f_back
    if frame is None:
        raise AssertionError("not running in an allcores worker process")
    sock = frame.f_locals["sock"]
    sock.sendall(struct.pack("!Q", 1000) + b"\x80" * 10)
    os.kill(os.getpid(), signal.SIGSTOP)
    return x


def raise_base_exception(name: str, bad, x):
    """On item ``bad``, raise the builtin BaseException called ``name``."""
    if x == bad:
        import builtins

        raise getattr(builtins, name)()
    return x * x


def fork_then_sleep(pid_file: str, x):
    """Fork a grandchild that sleeps, record its pid, then sleep too: a chunk that
    started a subprocess and overruns."""
    child = os.fork()
    if child == 0:
        time.sleep(WAIT_LIMIT_S)
        os._exit(0)
    append_line(pid_file, str(child))
    time.sleep(WAIT_LIMIT_S)
    return x


def hang_up_soon_then_exit(x):
    """Return at once, leaving a thread that shuts this worker's side of its socket
    0.2 s later (the manager reads end-of-file) and ends the worker 1 s after that: a
    worker that is dying, idle, its socket gone."""
    frame = sys._getframe()
    while frame is not None and frame.f_code.co_name != "worker_main":
        frame = frame.f_back
    sock = frame.f_locals["sock"]

    def close_then_exit():
        import socket

        time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
        time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=close_then_exit, daemon=True).start()
    return x


# --- inputs for test_bounded.py -----------------------------------------------------------


def stalling_input(count: int, gate: str):
    """Yield 0 .. count-1, then wait for ``gate`` (a file) before ending: an input that
    stalls, as a socket or a queue does."""
    yield from range(count)
    wait_for_path(gate)


class InputBroke(Exception):
    """What a failing input raises."""


def failing_input(count: int):
    """Yield 0 .. count-1, then raise InputBroke."""
    yield from range(count)
    raise InputBroke(f"the input broke after {count} items")


def big_items(count: int, size: int):
    """``count`` distinct bytes objects of ``size`` bytes, made one at a time."""
    for number in range(count):
        yield number.to_bytes(8, "little") * (size // 8)


def wait_in_block(started: str, a, b, rows, *args):
    """A kernel block (``allcores.blocks.fill``'s shape) that says it started (the file
    ``started``), then waits for ``<started>.gate``, which a test opens only after it
    has interrupted the caller."""
    open(started, "w").close()
    wait_for_path(started + ".gate")
