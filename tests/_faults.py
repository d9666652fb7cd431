"""Faults for the fault matrix (``test_faults.py``): user objects and functions that go
wrong in a chosen way at a chosen stage, and the checks each case ends with.

Like ``_workloads``, worker processes import this module by name: everything a worker
unpickles from here pickles by reference, and :class:`Fault` keeps one class identity
in the caller and in the workers.

A fault is one of these *kinds* (what the user's code does):

=====================  ===================================================
``raise``              ``raise ValueError("fault")``
``base``               ``raise Fault("fault")`` (a ``BaseException``)
``sysexit``            ``sys.exit(3)``
``keyboard_interrupt`` ``raise KeyboardInterrupt``
``os_exit``            ``os._exit(3)``
``sigkill``            ``os.kill(os.getpid(), SIGKILL)``
``sigsegv``            a segmentation fault (``ctypes.string_at(0)``)
``unpicklable``        pickling: the object holds a lock, which neither pickle nor
                       cloudpickle can take; unpickling: its reconstruction calls a
                       class without the argument it needs (``TypeError``)
=====================  ===================================================

How a fault is placed at a stage:

- :class:`FiresOnLoad` pickles harmlessly (its ``__reduce__`` names :func:`fire`) and
  fires when unpickled: as an item (the worker unpickles the items), bound into the
  function (the worker unpickles the function), or returned (the caller unpickles the
  results);
- :class:`FiresOnDump` fires when pickled: as an item (the caller pickles the items),
  bound into the function (the caller pickles the function), or returned (the worker
  pickles the results);
- :func:`fire_on` fires while running, on one item.

Each firing first appends the pid of the process it fires in to a log file (when given
one), so that a test knows which workers met the fault: after a fatal fault those must
be dead and reaped, after any other they must still serve.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import signal
import sys
import threading
from pathlib import Path

import _workloads as w
from _support import run_in_thread

# Faults that end the process they fire in, with the exit status each leaves behind
# (a code, or minus the signal), and the name ``_workloads._die`` knows them by.
EXIT_STATUS = {"os_exit": 3, "sigkill": -signal.SIGKILL, "sigsegv": -signal.SIGSEGV}
_DIE_AS = {"os_exit": "exit", "sigkill": "sigkill", "sigsegv": "segfault"}


class Fault(BaseException):
    """A user's ``BaseException`` that is neither ``SystemExit`` nor
    ``KeyboardInterrupt``: only ``except BaseException`` catches it."""


def fire(kind: str, log: str | None = None):
    """Do what fault ``kind`` does, here and now (after logging this pid to ``log``)."""
    if log is not None:
        w.append_line(log, str(os.getpid()))
    if kind == "raise":
        raise ValueError("fault")
    if kind == "base":
        raise Fault("fault")
    if kind == "sysexit":
        sys.exit(3)
    if kind == "keyboard_interrupt":
        raise KeyboardInterrupt
    if kind in _DIE_AS:
        w._die(_DIE_AS[kind])
    raise AssertionError(f"fire: unknown fault {kind!r}")


class NeedsAnArgument:
    """What an unreconstructable object unpickles as: ``NeedsAnArgument()``, which
    raises ``TypeError`` (a missing argument), like a class whose ``__init__`` changed
    since the object was pickled."""

    def __init__(self, value):
        self.value = value


class FiresOnLoad:
    """Pickles harmlessly; unpickling it fires ``kind`` (``unpicklable``: unpickling
    it fails with ``TypeError``)."""

    def __init__(self, kind: str, log: str | None = None):
        self.kind = kind
        self.log = log

    def __reduce__(self):
        if self.kind == "unpicklable":
            return NeedsAnArgument, ()
        return fire, (self.kind, self.log)


class FiresOnDump:
    """Pickling it fires ``kind`` (``unpicklable``: it holds a lock, so pickling it
    fails with ``TypeError``, under cloudpickle too)."""

    def __init__(self, kind: str, log: str | None = None):
        self.kind = kind
        self.log = log
        if kind == "unpicklable":
            self.lock = threading.Lock()

    def __reduce__(self):
        if self.kind == "unpicklable":
            return FiresOnDump, (self.kind, self.log), self.__dict__  # the lock refuses
        fire(self.kind, self.log)
        raise AssertionError(f"FiresOnDump({self.kind!r}) did not fire")


# --- the user's functions, one per stage (settings first, the item last) ------------------


def square_with(_bound, x):
    """``x * x``; ``_bound`` is whatever the function stages bind into the function."""
    return x * x


def fire_on(bad, kind: str, log: str | None, x):
    """``x * x``, but fire ``kind`` on item ``bad``."""
    if x == bad:
        fire(kind, log)
    return x * x


def return_on(bad, wrapper: type, kind: str, log: str | None, x):
    """``x * x``, but return ``wrapper(kind, log)`` (FiresOnLoad or FiresOnDump) for item
    ``bad``, so that the fault fires while the results travel."""
    return wrapper(kind, log) if x == bad else x * x


def fired_in_workers(log) -> set[int]:
    """The pids of the worker processes a fault fired in, from its log (left out: this
    process, where the caller's stages fire)."""
    return {int(pid) for pid in w.read_lines(log)} - {os.getpid()}


# --- checks the caller makes after a case -------------------------------------------------


def pid_reaped(pid: int) -> bool:
    """True when no process ``pid`` exists any more, *not even a zombie* (stricter than
    ``_support.pid_gone``): whoever started it has also waited for it."""
    try:
        os.kill(pid, 0)  # succeeds on a zombie
    except ProcessLookupError:
        return True
    except PermissionError:
        return True  # the pid now belongs to another user's process: ours was reaped
    return False


def process_state(pid: int) -> str:
    """The one-letter state of ``pid`` from /proc ("Z": zombie), or "gone"."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


SHM_DIR = "/dev/shm"
# What Python leaves in /dev/shm: SharedMemory segments and named semaphores.
SHM_PATTERNS = ("psm_*", "sem.*")


def shm_names() -> set[str]:
    """The entries of /dev/shm that Python's multiprocessing creates, owned by this user."""
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return set()
    mine = set()
    for name in names:
        if not any(fnmatch.fnmatch(name, pattern) for pattern in SHM_PATTERNS):
            continue
        try:
            if os.stat(os.path.join(SHM_DIR, name)).st_uid == os.getuid():
                mine.add(name)
        except FileNotFoundError:
            pass
    return mine


def shm_left_behind(before: set[str]) -> set[str]:
    """Entries of /dev/shm that appeared since ``before`` and that no process outside
    this process's own tree maps (those belong to someone else: another test run on the
    same machine)."""
    new = shm_names() - before
    if not new:
        return new
    return {name for name in new if not _mapped_by_a_stranger(name)}


def _mapped_by_a_stranger(name: str) -> bool:
    ours = _own_process_tree()
    path = os.path.join(SHM_DIR, name)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in ours:
            continue
        try:
            with open(f"/proc/{entry}/maps") as maps:
                if path in maps.read():
                    return True
        except OSError:
            continue
    return False


def _own_process_tree() -> set[int]:
    """This process and its descendants (workers, the fork server and its children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


def serving_pids(pool, directory: Path, timeout: float) -> set[int]:
    """The pids of all ``pool.workers`` workers, each holding one item until all have
    arrived (so they are alive at once and take work). Every wait is bounded."""
    directory.mkdir()
    meet = functools.partial(w.meet, str(directory), pool.workers)
    pids = run_in_thread(lambda: pool.map(meet, range(pool.workers), chunksize=1),
                         timeout)()
    assert len(set(pids)) == pool.workers, f"expected {pool.workers} workers, met {pids}"
    return set(pids)


def assert_pool_serves(pool, directory: Path, timeout: float) -> set[int]:
    """The pool's next calls work: all its workers are alive and take work, and
    ``pool.map(square, range(2 * workers), chunksize=1)`` is right. Returns the pids."""
    pids = serving_pids(pool, directory, timeout)
    items = range(2 * pool.workers)
    got = run_in_thread(lambda: pool.map(w.square, items, chunksize=1), timeout)()
    assert got == [x * x for x in items], f"pool.map(square, {items}) gave {got}"
    return pids
