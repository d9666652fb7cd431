"""What a block of ``allcores.blocks`` carries to wherever it runs, and runs there.

Kept apart from ``allcores.blocks`` (which plans, and imports the planner and the pool):
a worker process that unpickles a block's task imports this module only (numpy and
``allcores._shm``), as workers import little (``tests/test_worker_imports.py``).
"""

from __future__ import annotations

import functools
import socket
import threading
from typing import Any, Callable, NamedTuple

import numpy as np

from allcores._shm import SharedArray, read_rows, write_rows


@functools.cache
def host() -> str:
    """This machine, as far as shared memory goes (a segment's name means nothing on
    another one): its boot id where there is one, else its host name."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return boot.read().strip()
    except OSError:
        return socket.gethostname()


class SharedLazily:
    """An array that is itself in the caller's process, and crosses to another process
    as a shared-memory segment, made the first time a block is pickled for one (never
    for serial or thread runs). The caller releases it (:meth:`release`)."""

    def __init__(self, array: np.ndarray, *, copy_in: bool):
        self.array = array
        self._copy_in = copy_in        # an input: the segment starts with its contents
        self._lock = threading.Lock()
        self.shared: SharedArray | None = None

    def __reduce__(self):
        with self._lock:
            if self.shared is None:
                self.shared = SharedArray(self.array.shape, self.array.dtype,
                                          data=self.array if self._copy_in else None)
        return Remote, (self.shared.spec, host(), self.array.shape, self.array.dtype.str)

    def release(self) -> None:
        with self._lock:
            shared, self.shared = self.shared, None
        if shared is not None:
            shared.release()


class Remote(NamedTuple):
    """A :class:`SharedLazily` in another process: its segment, if on this machine."""

    spec: Any
    host: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def reachable(self) -> bool:
        return self.host == host()


class Sliced(NamedTuple):
    """A :func:`sliced` input on its way: its row 0 is index ``start`` of the range;
    ``rows`` is the array in the caller's process (a :class:`SharedLazily`), its
    segment in another process (a :class:`Remote`), or None where every block carries
    its own rows (Dask: its workers may be on other machines)."""

    rows: Any
    start: int


def rows_of(arg, a: int, b: int, carried: list):
    """A block's view of one argument: its rows of a sliced input (the next of
    ``carried`` if the block carries them), else the argument."""
    if not isinstance(arg, Sliced):
        return arg
    rows, a, b = arg.rows, a - arg.start, b - arg.start
    if rows is None:
        return carried.pop(0)
    if isinstance(rows, SharedLazily):
        return rows.array[a:b]
    if rows.reachable:
        return read_rows(rows.spec, a, b)
    raise RuntimeError("allcores.blocks: a sliced input's shared memory is on another "
                       "machine")


SHARED = "shared"  # what a block returns when it wrote its rows into the shared segment


class Task:
    """One call's block function, the same on every backend: called with a block
    ``(a, b)``, or ``(a, b, rows)`` where the block carries the rows of the sliced
    inputs itself (a tuple, one per sliced input, in order)."""

    def __init__(self, fn: Callable[..., Any], args: tuple, out: SharedLazily | None,
                 nogil: bool = False):
        self.fn = fn
        self.args = args
        self.out = out
        if nogil:  # the planner then weighs threads (see allcores.nogil)
            self.__allcores_nogil__ = True

    def __call__(self, block: tuple):
        a, b = block[0], block[1]
        try:
            return self._run(a, b, list(block[2]) if len(block) > 2 else [])
        except BaseException as exc:
            exc.add_note(f"allcores.blocks: in the block [{a}, {b})")
            raise

    def _run(self, a: int, b: int, carried: list):
        args = tuple(rows_of(arg, a, b, carried) for arg in self.args)
        out = self.out
        if out is None:  # reduce
            return self.fn(a, b, *args)
        if isinstance(out, SharedLazily):  # the caller's process: its own rows, in place
            self.fn(a, b, out.array[a:b], *args)
            return None
        rows = np.zeros((b - a, *out.shape[1:]), dtype=out.dtype)
        self.fn(a, b, rows, *args)
        if out.reachable:
            write_rows(out.spec, a, rows)
            return SHARED
        return rows  # another machine: the caller puts it in place
