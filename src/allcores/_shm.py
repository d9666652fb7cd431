"""Shared-memory arrays for the process backend: one segment (or file) per array, owned by
the caller.

Who does what::

    caller (allcores.kernels)                      worker process (allcores._kernel_blocks)
    -------------------------                      ----------------------------------------
    with SharedArray(shape, dtype, data=...) as s:
        picks the storage, reserves its bytes,
        copies ``data`` in
        sends ``s.spec`` (storage, name, shape,==> read_rows(spec, a, b) / write_rows(spec, a, rows)
          dtype; small, pickled) in each block       attach by name or path, copy one slice
                                                     in or out, close; never unlink
        result = s.to_numpy()   (a private copy)
    leaving the block: close + unlink, always  <== a worker killed while attached: the kernel
      (success, an exception in a block,             drops its mapping; the name is the caller's
      WorkerCrashedError, KeyboardInterrupt)         to unlink, and it does

- The caller alone creates and unlinks. Workers attach, copy, close: a worker's view of the
  storage lives only inside one statement of this module, so ``close()`` never meets an
  exported buffer (``BufferError``), whatever the kernel does or raises.
- A block that a worker runs after the caller has given up (another block failed) finds
  the name gone and fails with ``FileNotFoundError``; nobody waits for that result.

Where the bytes live (``SharedArraySpec.storage``)::

    free space in SHM_DIR (statvfs) >= size?  -- no ----------------+
      | yes (or unknown: no SHM_DIR, e.g. Windows, macOS)           |
    SharedMemory(create=True), then posix_fallocate on its fd       |
      | reserved (or the call is unsupported)   | ENOSPC: unlink ---+
    storage "shm": a segment, by name                               v
                                               free space in the temp dir >= size?
                                                 | yes                      | no
                                               new file there (mkstemp),    |
                                               posix_fallocate, mmap        |
                                                 | reserved    | ENOSPC ----+
                                               storage "file": by path      v
                                                                MemoryError naming both
                                                                places and every size

A tmpfs such as ``/dev/shm`` allocates a page when it is first touched; a segment larger
than its free space is created without complaint and the first write past the end of the
free space is a SIGBUS, which kills the process (Docker's default ``/dev/shm`` is 64 MB).
The statvfs check sends large arrays elsewhere before anything is created; reserving with
``posix_fallocate`` closes the race with other processes filling the same filesystem
between the check and the writes: the reservation fails with ``ENOSPC``, an exception,
and every page is allocated before anybody touches it. A file in the temp directory
(``TMPDIR``) lives in the page cache and may be written back to disk (slower, never an
error), and is deleted like a segment. Unlike a segment, a file is not known to the
resource tracker: a caller killed by SIGKILL (or SIGTERM) leaves its
``allcores-<pid>-*.array`` files behind.

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

import errno
import mmap
import math
import os
import sys
import tempfile
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import NamedTuple

import numpy as np

# POSIX segments are registered with the resource tracker; Windows ones live as long as
# any process holds a handle, and need no tracker.
_USES_TRACKER = os.name == "posix"
_HAS_TRACK_FLAG = sys.version_info >= (3, 13)

# The filesystem that holds POSIX shared memory, whose free space is checked before a
# segment is created: a tmpfs on Linux. None where segments are not files in a directory
# one can ask (Windows, macOS): there every array is a segment, as before. Tests point it
# elsewhere.
SHM_DIR: str | None = "/dev/shm" if sys.platform.startswith("linux") else None

# SharedArraySpec.storage
SHM = "shm"     # a shared-memory segment, attached by name
FILE = "file"   # a file in the temp directory, mapped by path

# errno values of a reservation that does not fit (as opposed to one the filesystem
# cannot make, after which the storage is used unreserved, as it was before).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


class SharedArraySpec(NamedTuple):
    """Everything a worker needs to find a shared array; small, pickled into every block."""

    name: str                       # SHM: the segment's name, e.g. "psm_1a2b3c4d";
                                    # FILE: its path, e.g. "/tmp/allcores-4242-x1y2.array"
    shape: tuple[int, ...]          # e.g. (600, 800)
    dtype: str                      # e.g. "uint32"
    # (st_dev, st_ino) of the creator's resource-tracker pipe; None where that does
    # not matter (Windows, Python 3.13+, FILE).
    tracker: tuple[int, int] | None
    storage: str = SHM              # SHM or FILE

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def _free_bytes(directory: str) -> int | None:
    """Bytes an unprivileged process may still allocate on ``directory``'s filesystem;
    None if that cannot be told."""
    try:
        status = os.statvfs(directory)
    except (OSError, AttributeError):  # missing directory; no statvfs (Windows)
        return None
    return status.f_bavail * status.f_frsize


def _file_dir() -> str:
    """Where arrays go that do not fit in ``SHM_DIR`` (``TMPDIR`` steers it)."""
    return tempfile.gettempdir()


def _pages(nbytes: int) -> int:
    """``nbytes`` rounded up to whole pages: what a tmpfs charges for it."""
    return -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE


def _reserve(fd: int, nbytes: int) -> None:
    """Allocate every byte of the file behind ``fd`` now, so that touching its mapping
    later cannot SIGBUS. Raises OSError (ENOSPC...) when the bytes are not there; does
    nothing where the system or filesystem cannot reserve."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None or fd < 0:
        return
    try:
        fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise
        # EINVAL, EOPNOTSUPP, ENODEV...: unreserved, as segments always were.


class _MappedFile:
    """A whole file mapped into memory: the FILE twin of ``SharedMemory`` (``buf``,
    ``close()``, and ``close()`` raises ``BufferError`` while a view of ``buf`` lives)."""

    def __init__(self, path: str, nbytes: int, fd: int | None = None):
        own_fd = fd is None
        if own_fd:
            fd = os.open(path, os.O_RDWR)
        try:
            self._mmap = mmap.mmap(fd, nbytes)  # keeps its own duplicate of fd
        finally:
            if own_fd:
                os.close(fd)
        self.buf: memoryview | None = memoryview(self._mmap)

    def close(self) -> None:
        if self.buf is not None:
            self.buf.release()
            self.buf = None
        self._mmap.close()


def _tracker_identity() -> tuple[int, int] | None:
    """Which resource tracker this process talks to: its pipe, as (device, inode)."""
    if not _USES_TRACKER or _HAS_TRACK_FLAG:
        return None
    try:
        status = os.fstat(resource_tracker.getfd())
    except (OSError, TypeError):
        return None
    return (status.st_dev, status.st_ino)


def _view(shm: SharedMemory | _MappedFile, spec: SharedArraySpec) -> np.ndarray:
    """The whole array over ``shm``. Use it within one expression only: a view still
    alive when the segment closes makes ``close()`` raise ``BufferError``."""
    return np.ndarray(spec.shape, dtype=spec.dtype, buffer=shm.buf)


def _free_text(directory: str | None) -> str:
    free = _free_bytes(directory) if directory else None
    return "free space unknown" if free is None else f"{free:,} bytes free now"


def _no_room(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _NO_ROOM


# Why a place had no room, for the MemoryError: a sentence, and the OSError if there was one.
_NoRoom = list[tuple[str, "OSError | None"]]


def _new_segment(nbytes: int, no_room: _NoRoom) -> SharedMemory | None:
    """A new segment of ``nbytes``, reserved; None (and the reason in ``no_room``) if
    ``SHM_DIR`` has no room for it."""
    place = f"{SHM_DIR} (POSIX shared memory)" if SHM_DIR else "POSIX shared memory"
    free = _free_bytes(SHM_DIR) if SHM_DIR is not None else None
    if free is not None and free < _pages(nbytes):
        no_room.append((f"{place} has {free:,} bytes free", None))
        return None
    try:
        segment = SharedMemory(create=True, size=nbytes)
    except OSError as exc:
        if not _no_room(exc):
            raise
        no_room.append((f"{place} could not make them ({exc.strerror})", exc))
        return None
    try:
        _reserve(getattr(segment, "_fd", -1), nbytes)
    except BaseException as exc:
        try:
            segment.close()
        finally:
            segment.unlink()
        if not _no_room(exc):
            raise
        no_room.append((f"{place} could not reserve them ({exc.strerror}; "
                        f"{_free_text(SHM_DIR)})", exc))
        return None
    return segment


def _new_file(nbytes: int, no_room: _NoRoom) -> tuple[_MappedFile, str] | None:
    """A new file of ``nbytes`` in the temp directory, reserved and mapped, and its path;
    None (and the reason in ``no_room``) if the directory has no room for it."""
    directory = _file_dir()
    free = _free_bytes(directory)
    if free is not None and free < _pages(nbytes):
        no_room.append((f"{directory} (temporary files) has {free:,} bytes free", None))
        return None
    fd, path = tempfile.mkstemp(prefix=f"allcores-{os.getpid()}-", suffix=".array",
                                dir=directory)
    try:
        try:
            os.ftruncate(fd, nbytes)
            _reserve(fd, nbytes)
        except OSError as exc:
            if not _no_room(exc):
                raise
            no_room.append((f"{directory} (temporary files) could not reserve them "
                            f"({exc.strerror}; {_free_text(directory)})", exc))
            os.unlink(path)
            return None
        mapped = _MappedFile(path, nbytes, fd)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
    return mapped, path


class SharedArray:
    """A numpy array in new shared memory; the caller's side.

    The array lives in a shared-memory segment when ``SHM_DIR`` has room for it, else in
    a file in the temp directory (see the module docstring); ``spec.storage`` says which.
    Raises MemoryError, naming both places and their free space, when neither has room.

    Use it as a context manager: leaving the block closes and unlinks the storage, however
    the block is left. ``spec`` is what workers get; ``to_numpy()`` copies the contents
    out into an ordinary array before the storage goes.
    """

    def __init__(self, shape: tuple[int, ...], dtype, *, data: np.ndarray | None = None):
        shape = tuple(int(n) for n in shape)
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes <= 0:
            raise ValueError(f"shape: expected a non-empty array, got: {shape}")
        self._shm: SharedMemory | _MappedFile | None = None
        self._path: str | None = None   # FILE: the file to unlink
        self._create(nbytes, shape, dtype)
        try:
            if data is not None:
                _view(self._shm, self.spec)[...] = data
        except BaseException:
            self.release()
            raise

    def _create(self, nbytes: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Set ``_shm`` (and ``_path``) and ``spec``: a reserved segment if one fits, else
        a reserved file; MemoryError if neither does. Leaves nothing behind on failure."""
        no_room: _NoRoom = []
        segment = _new_segment(nbytes, no_room)
        if segment is not None:
            self._shm = segment
            self.spec = SharedArraySpec(segment.name, shape, dtype.name, _tracker_identity(),
                                        SHM)
            return
        file = _new_file(nbytes, no_room)
        if file is None:
            more_shm = (f"give {SHM_DIR} more room (docker run --shm-size=...), "
                        if SHM_DIR else "")
            raise MemoryError(
                f"no room for a shared array of {nbytes:,} bytes (shape {shape}, "
                f"{dtype.name}) for the worker processes: "
                f"{'; '.join(reason for reason, _ in no_room)}. To fix: {more_shm}point "
                f"TMPDIR at a directory with room, or use backend=\"thread\", which "
                f"shares the caller's memory"
            ) from next((error for _, error in reversed(no_room) if error is not None), None)
        self._shm, self._path = file
        self.spec = SharedArraySpec(self._path, shape, dtype.name, None, FILE)

    def to_numpy(self) -> np.ndarray:
        """A copy of the contents, in ordinary (private) memory."""
        if self._shm is None:
            raise ValueError("the shared array was released")
        return _view(self._shm, self.spec).copy()

    def release(self) -> None:
        """Close and unlink the storage (idempotent)."""
        shm, self._shm = self._shm, None
        path, self._path = self._path, None
        if shm is None:
            return
        try:
            shm.close()
        finally:
            if path is not None:
                os.unlink(path)
            else:
                shm.unlink()

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()


def _attach(spec: SharedArraySpec) -> SharedMemory | _MappedFile:
    """Open the caller's storage in this (worker) process, leaving the tracking of a
    segment to the caller (see the module docstring)."""
    if spec.storage == FILE:
        return _MappedFile(spec.name, spec.nbytes)
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
