"""Shared-memory arrays for the process backend: one segment per array, owned by the caller.

Who does what::

    caller (allcores.kernels)                      worker process (allcores._kernel_blocks)
    -------------------------                      ----------------------------------------
    with SharedArray(shape, dtype, data=...) as s:
        creates the segment, copies ``data`` in
        sends ``s.spec`` (name, shape, dtype)  ==> read_rows(spec, a, b) / write_rows(spec, a, rows)
          inside each block (small, pickled)         attach by name, copy one slice in or out,
                                                     close; never unlink
        result = s.to_numpy()   (a private copy)
    leaving the block: close + unlink, always  <== a worker killed while attached: the kernel
      (success, an exception in a block,             drops its mapping; the name is the caller's
      WorkerCrashedError, KeyboardInterrupt)         to unlink, and it does

- The caller alone creates and unlinks. Workers attach, copy, close: a worker's view of the
  segment lives only inside one statement of this module, so ``close()`` never meets an
  exported buffer (``BufferError``), whatever the kernel does or raises.
- A block that a worker runs after the caller has given up (another block failed) finds
  the name gone and fails with ``FileNotFoundError``; nobody waits for that result.

Resource tracker (POSIX, Python < 3.13, CPython gh-82300): attaching with
``SharedMemory(name=...)`` also *registers* the segment with the attaching process's
``multiprocessing`` resource tracker, as if that process had created it. A tracker unlinks
what is still registered when it shuts down, so a worker whose tracker is its own would
unlink the caller's segment when it exits; that worker must unregister right after
attaching. But workers started by ``multiprocessing`` (fork, spawn, forkserver) share the
*caller's* tracker, which keeps one entry per name: there the worker's registration is a
no-op, and unregistering would delete the caller's own entry (the caller's ``unlink()``
then makes the tracker print a ``KeyError`` traceback, and a caller killed by SIGKILL
would leave its segments behind). So the caller puts the identity of its tracker's pipe
in the spec, and a worker unregisters only when its tracker is another one. On 3.13+
workers attach with ``track=False`` and never register.
"""

from __future__ import annotations

import os
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import NamedTuple

import numpy as np

# POSIX segments are registered with the resource tracker; Windows ones live as long as
# any process holds a handle, and need no tracker.
_USES_TRACKER = os.name == "posix"
_HAS_TRACK_FLAG = sys.version_info >= (3, 13)


class SharedArraySpec(NamedTuple):
    """Everything a worker needs to find a shared array; small, pickled into every block."""

    name: str                       # the segment's name, e.g. "psm_1a2b3c4d"
    shape: tuple[int, ...]          # e.g. (600, 800)
    dtype: str                      # e.g. "uint32"
    # (st_dev, st_ino) of the creator's resource-tracker pipe; None where that does
    # not matter (Windows, Python 3.13+).
    tracker: tuple[int, int] | None


def _tracker_identity() -> tuple[int, int] | None:
    """Which resource tracker this process talks to: its pipe, as (device, inode)."""
    if not _USES_TRACKER or _HAS_TRACK_FLAG:
        return None
    try:
        status = os.fstat(resource_tracker.getfd())
    except (OSError, TypeError):
        return None
    return (status.st_dev, status.st_ino)


def _view(shm: SharedMemory, spec: SharedArraySpec) -> np.ndarray:
    """The whole array over ``shm``. Use it within one expression only: a view still
    alive when the segment closes makes ``close()`` raise ``BufferError``."""
    return np.ndarray(spec.shape, dtype=spec.dtype, buffer=shm.buf)


class SharedArray:
    """A numpy array in a new shared-memory segment; the caller's side.

    Use it as a context manager: leaving the block closes and unlinks the segment, however
    the block is left. ``spec`` is what workers get; ``to_numpy()`` copies the contents
    out into an ordinary array before the segment goes.
    """

    def __init__(self, shape: tuple[int, ...], dtype, *, data: np.ndarray | None = None):
        shape = tuple(int(n) for n in shape)
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes <= 0:
            raise ValueError(f"shape: expected a non-empty array, got: {shape}")
        self._shm: SharedMemory | None = SharedMemory(create=True, size=nbytes)
        try:
            self.spec = SharedArraySpec(self._shm.name, shape, dtype.name, _tracker_identity())
            if data is not None:
                _view(self._shm, self.spec)[...] = data
        except BaseException:
            self.release()
            raise

    def to_numpy(self) -> np.ndarray:
        """A copy of the contents, in ordinary (private) memory."""
        if self._shm is None:
            raise ValueError("the shared array was released")
        return _view(self._shm, self.spec).copy()

    def release(self) -> None:
        """Close and unlink the segment (idempotent)."""
        shm, self._shm = self._shm, None
        if shm is None:
            return
        try:
            shm.close()
        finally:
            shm.unlink()

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()


def _attach(spec: SharedArraySpec) -> SharedMemory:
    """Open the caller's segment in this (worker) process, leaving its tracking to the
    caller (see the module docstring)."""
    if _HAS_TRACK_FLAG:
        return SharedMemory(name=spec.name, track=False)
    shm = SharedMemory(name=spec.name)
    if _USES_TRACKER and _tracker_identity() != spec.tracker:
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    return shm


def read_rows(spec: SharedArraySpec, start: int, stop: int) -> np.ndarray:
    """A private copy of ``array[start:stop]`` (worker side)."""
    shm = _attach(spec)
    try:
        return _view(shm, spec)[start:stop].copy()
    finally:
        shm.close()


def write_rows(spec: SharedArraySpec, start: int, rows: np.ndarray) -> None:
    """``array[start:start + len(rows)] = rows`` (worker side)."""
    shm = _attach(spec)
    try:
        _view(shm, spec)[start:start + len(rows)] = rows
    finally:
        shm.close()
