"""Shared arrays when shared memory is short (``allcores._shm``).

A tmpfs such as ``/dev/shm`` (64 MB in a default Docker container) lets a segment larger
than its free space be created, then kills whoever touches the missing pages with SIGBUS.
These tests check that a shared array goes to a file in the temp directory when
``SHM_DIR`` has no room, that the real kernels give the native results through such files
on worker processes, that no file or segment survives success, an error in a block or a
dead worker, and that a MemoryError naming both places and the size comes when nothing
fits, including when the space vanishes between the check and the reservation.

No mounts are needed: the free-space probe (``_shm._free_bytes``) and the temp directory
(``_shm._file_dir``) are swapped for the test's, and a failed reservation is provoked by
swapping ``os.posix_fallocate``. One test uses a real small tmpfs, and runs only when
``ALLCORES_SMALL_TMPFS`` names a directory on one (``mount -t tmpfs -o size=8m tmpfs DIR``).

The block variants below run in worker processes, which import this module by name
(``tests/`` is on ``sys.path`` before any pool starts). They wait on files, never longer
than ``WAIT_LIMIT_S``.
"""

from __future__ import annotations

import errno
import functools
import os
import pickle
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory

import numpy as np
import pytest

import allcores
from allcores import _kernel_blocks, _shm, blocks, kernels

import _workloads as w
from _support import ctrl_c_once_started

pytestmark = pytest.mark.skipif(
    os.name != "posix", reason="the file fallback is taken only where SHM_DIR is set (Linux)")

WAIT_LIMIT_S = 30.0   # far below the conftest watchdog (120 s), far above any honest wait
PLENTY = 1 << 50      # what the probe reports for a place with room

MANDEL = {"width": 37, "height": 29, "max_iter": 60}
PRIME_VALUES = np.array([0, 1, 2, 3, 4, 97, 561, 2**31 - 1, 2**61 - 1, 2**64 - 59, 2**64 - 1]
                        + [2**40 + k for k in range(79)], dtype=np.uint64).reshape(9, 10)


@pytest.fixture(autouse=True)
def no_backend_from_environment(monkeypatch):
    monkeypatch.delenv("ALLCORES_BACKEND", raising=False)


@pytest.fixture
def fine_blocks(monkeypatch):
    """Blocks as small as the job allows, so that tiny jobs are really split."""
    monkeypatch.setattr(blocks, "MIN_BLOCK_S", dict.fromkeys(blocks.MIN_BLOCK_S, 1e-12))
    monkeypatch.setattr(kernels, "PRIME_MILLER_RABIN_MIN_BLOCK", 1)


def segment_exists(name: str) -> bool:
    if os.path.isdir("/dev/shm"):
        return os.path.exists(os.path.join("/dev/shm", name))
    try:
        segment = SharedMemory(name=name)
    except FileNotFoundError:
        return False
    segment.close()
    resource_tracker.unregister(segment._name, "shared_memory")
    return True


class Storage:
    """The places a shared array may go, as the test wants them, and what was made there.

    ``shm_free`` / ``file_free``: the bytes the probe reports for ``SHM_DIR`` and for the
    temp directory ``file_dir`` (a fresh folder of the test's)."""

    def __init__(self, monkeypatch, tmp_path):
        self.shm_free = PLENTY
        self.file_free = PLENTY
        self.file_dir = tmp_path / "tmpdir"
        self.file_dir.mkdir()
        self.segments: list[str] = []
        self.shm_dir = _shm.SHM_DIR or str(tmp_path / "no-shm-dir-here")
        monkeypatch.setattr(_shm, "SHM_DIR", self.shm_dir)
        monkeypatch.setattr(_shm, "_file_dir", lambda: str(self.file_dir))
        monkeypatch.setattr(_shm, "_free_bytes", self.probe)
        segments = self.segments

        class RecordingSharedMemory(SharedMemory):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if kwargs.get("create"):
                    segments.append(self.name)

        monkeypatch.setattr(_shm, "SharedMemory", RecordingSharedMemory)

    def probe(self, directory):
        if directory == self.shm_dir:
            return self.shm_free
        assert directory == str(self.file_dir), f"probed an unexpected place: {directory}"
        return self.file_free

    def files(self) -> list[str]:
        return sorted(os.listdir(self.file_dir))

    def assert_none_left(self):
        assert self.files() == [], f"files left behind: {self.files()}"
        left = [name for name in self.segments if segment_exists(name)]
        assert left == [], f"segments left behind: {left}"


@pytest.fixture
def storage(monkeypatch, tmp_path):
    return Storage(monkeypatch, tmp_path)


@pytest.fixture
def shm_full(storage):
    """No room in SHM_DIR: every shared array goes to a file."""
    storage.shm_free = 0
    return storage


def fail_reservations(monkeypatch, code, *, times=None):
    """Make ``os.posix_fallocate`` fail with ``code`` (the first ``times`` calls, or all);
    returns the list of the sizes asked for."""
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no os.posix_fallocate here")
    real, calls = os.posix_fallocate, []

    def fallocate(fd, offset, length):
        calls.append(length)
        if times is None or len(calls) <= times:
            raise OSError(code, os.strerror(code))
        return real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    return calls


# ======================================================================================
# The array itself
# ======================================================================================


def test_array_without_room_in_shm_goes_to_a_file(shm_full):
    data = np.arange(12, dtype=np.uint64).reshape(4, 3)
    with _shm.SharedArray(data.shape, np.uint64, data=data) as shared:
        spec = shared.spec
        assert spec.storage == _shm.FILE and spec.tracker is None
        assert os.path.dirname(spec.name) == str(shm_full.file_dir)
        assert shm_full.files() == [os.path.basename(spec.name)]
        assert os.path.getsize(spec.name) == data.nbytes
        assert pickle.loads(pickle.dumps(spec)) == spec
        np.testing.assert_array_equal(_shm.read_rows(spec, 1, 3), data[1:3])
        _shm.write_rows(spec, 2, np.array([[7, 8, 9]], np.uint64))
        result = shared.to_numpy()
    assert result.tolist() == [[0, 1, 2], [3, 4, 5], [7, 8, 9], [9, 10, 11]]
    assert shm_full.segments == []
    shm_full.assert_none_left()
    shared.release()  # idempotent
    with pytest.raises(FileNotFoundError):
        _shm.read_rows(spec, 0, 1)  # a late block finds the file gone


def test_array_with_room_stays_in_shared_memory(storage):
    with _shm.SharedArray((3,), np.uint32, data=np.array([1, 2, 3])) as shared:
        assert shared.spec.storage == _shm.SHM
        assert shared.spec.name == storage.segments[0]
        assert _shm.read_rows(shared.spec, 0, 3).tolist() == [1, 2, 3]
    assert storage.files() == []
    storage.assert_none_left()


def test_without_shm_dir_every_array_is_a_segment(storage, monkeypatch):
    # Windows and macOS: no directory to ask, so no check (the path of old).
    monkeypatch.setattr(_shm, "SHM_DIR", None)
    storage.shm_free = storage.file_free = 0
    with _shm.SharedArray((3,), np.uint8) as shared:
        assert shared.spec.storage == _shm.SHM
    storage.assert_none_left()


def test_file_is_removed_when_filling_it_fails(shm_full):
    with pytest.raises(ValueError, match="broadcast"):
        _shm.SharedArray((4,), np.uint64, data=np.arange(5, dtype=np.uint64))
    shm_full.assert_none_left()


def test_attaching_a_file_leaves_the_resource_tracker_alone(shm_full, monkeypatch):
    calls = []
    monkeypatch.setattr(resource_tracker, "unregister", lambda *args: calls.append(args))
    monkeypatch.setattr(resource_tracker, "register", lambda *args: calls.append(args))
    with _shm.SharedArray((2,), np.uint8) as shared:
        _shm.write_rows(shared.spec._replace(tracker=(-1, -1)), 0, np.array([5, 6]))
        assert shared.to_numpy().tolist() == [5, 6]
    assert calls == []
    shm_full.assert_none_left()


def test_error_when_nothing_has_room_names_both_places_and_the_size(storage):
    storage.shm_free, storage.file_free = 4096, 8192
    with pytest.raises(MemoryError) as caught:
        _shm.SharedArray((1000, 10), np.uint64)
    message = str(caught.value)
    for part in ["80,000 bytes", storage.shm_dir, "4,096", str(storage.file_dir), "8,192",
                 "TMPDIR"]:
        assert part in message
    storage.assert_none_left()


# ======================================================================================
# Reserving the space: the check is no race
# ======================================================================================


def test_reservation_failing_in_shm_falls_back_to_a_file(storage, monkeypatch):
    # The probe said yes, then another process filled SHM_DIR before the reservation.
    sizes = fail_reservations(monkeypatch, errno.ENOSPC, times=1)
    with _shm.SharedArray((100,), np.uint16, data=np.arange(100)) as shared:
        assert shared.spec.storage == _shm.FILE
        assert shared.to_numpy().tolist() == list(range(100))
    assert sizes == [200, 200]              # the segment (refused), then the file
    assert len(storage.segments) == 1       # tried, and unlinked at once
    storage.assert_none_left()


def test_reservation_failing_everywhere_is_a_memory_error(storage, monkeypatch):
    fail_reservations(monkeypatch, errno.ENOSPC)
    with pytest.raises(MemoryError) as caught:
        _shm.SharedArray((100,), np.uint16)
    message = str(caught.value)
    for part in ["200 bytes", storage.shm_dir, str(storage.file_dir),
                 os.strerror(errno.ENOSPC)]:
        assert part in message
    assert caught.value.__cause__.errno == errno.ENOSPC
    storage.assert_none_left()


def test_reservation_the_filesystem_cannot_make_is_skipped(storage, monkeypatch):
    fail_reservations(monkeypatch, errno.EOPNOTSUPP)
    with _shm.SharedArray((3,), np.uint8, data=np.array([1, 2, 3])) as shared:
        assert shared.spec.storage == _shm.SHM
        assert shared.to_numpy().tolist() == [1, 2, 3]
    storage.assert_none_left()


@pytest.mark.skipif(not os.environ.get("ALLCORES_SMALL_TMPFS"),
                    reason="ALLCORES_SMALL_TMPFS names no small tmpfs directory")
def test_real_enospc_on_a_small_tmpfs_is_an_error_not_a_signal(storage):
    directory = os.environ["ALLCORES_SMALL_TMPFS"]
    status = os.statvfs(directory)
    size = status.f_blocks * status.f_frsize
    assert 0 < size <= 256 << 20, f"{directory} is no small filesystem ({size:,} bytes)"
    storage.file_dir = directory
    storage.shm_free = 0
    storage.file_free = PLENTY   # the probe is fooled: only the reservation can tell
    before = set(os.listdir(directory))
    filler = os.path.join(directory, f"filler-{os.getpid()}")
    try:
        with open(filler, "wb") as fill:   # half of it taken by someone else
            fill.write(b"\1" * (size // 2))
        with pytest.raises(MemoryError, match=directory) as caught:
            _shm.SharedArray((size * 3 // 4 // 8,), np.uint64, data=1)
        assert caught.value.__cause__.errno == errno.ENOSPC
        with _shm.SharedArray((size // 4 // 8,), np.uint64, data=1) as fits:
            assert fits.spec.storage == _shm.FILE and fits.to_numpy().sum() == size // 4 // 8
    finally:
        os.unlink(filler)
    assert set(os.listdir(directory)) == before


# ======================================================================================
# The kernels, end to end on worker processes, through files
# ======================================================================================


def run_mandelbrot(impl, **options):
    return kernels.mandelbrot(MANDEL["width"], MANDEL["height"], max_iter=MANDEL["max_iter"],
                              impl=impl, **options)


def run_is_prime(impl, **options):
    return kernels.is_prime(PRIME_VALUES, impl=impl, **options)


RUNS = {"mandelbrot": run_mandelbrot, "is_prime": run_is_prime}


def raise_in_block(a, b, rows, *args):
    """A block that computes its rows, then fails."""
    if len(args) == 1:  # is_prime: the values
        _kernel_blocks.is_prime_python(a, b, rows, *args)
    else:
        _kernel_blocks.mandelbrot_python(a, b, rows, *args)
    raise ArithmeticError("this block fails on purpose")


def exit_in_block(a, b, rows, *args):
    """A block whose worker process dies."""
    os._exit(7)


class FileWatch:
    """Which storage the caller created during a kernel call (kinds, in order)."""

    def __init__(self, monkeypatch):
        self.kinds: list[str] = []
        real = _shm.SharedArray._create

        def create(shared, *args):
            real(shared, *args)
            self.kinds.append(shared.spec.storage)

        monkeypatch.setattr(_shm.SharedArray, "_create", create)


@pytest.mark.parametrize("kernel", sorted(RUNS))
def test_kernels_on_processes_give_the_native_result_through_files(shm_full, fine_blocks,
                                                                    monkeypatch, kernel):
    watch = FileWatch(monkeypatch)
    got = RUNS[kernel]("python", workers=2, backend="process")
    expected = RUNS[kernel]("native", backend="serial")
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert watch.kinds == [_shm.FILE] * (2 if kernel == "is_prime" else 1)
    assert shm_full.segments == []
    shm_full.assert_none_left()


def test_is_prime_with_values_in_a_file_and_flags_in_a_segment(storage, fine_blocks,
                                                               monkeypatch):
    values = np.arange(2**32 - 10_000, 2**32, dtype=np.uint64)  # 80,000 bytes; flags 10,000
    storage.shm_free = 40_000
    watch = FileWatch(monkeypatch)
    got = kernels.is_prime(values, impl="python", workers=2, backend="process")
    np.testing.assert_array_equal(got, kernels.is_prime(values, backend="serial"))
    assert watch.kinds == [_shm.FILE, _shm.SHM]
    storage.assert_none_left()


def test_kernels_fail_with_a_memory_error_when_nothing_has_room(shm_full, fine_blocks):
    shm_full.file_free = 0
    for kernel, size in [("mandelbrot", MANDEL["width"] * MANDEL["height"] * 4),
                         ("is_prime", PRIME_VALUES.nbytes)]:
        with pytest.raises(MemoryError, match=f"{size:,} bytes"):
            RUNS[kernel]("python", workers=2, backend="process")
    shm_full.assert_none_left()


@pytest.mark.parametrize("kernel", sorted(RUNS))
def test_no_file_left_when_a_block_raises(shm_full, fine_blocks, monkeypatch, kernel):
    monkeypatch.setattr(_kernel_blocks, f"{kernel}_python", raise_in_block)
    with pytest.raises(ArithmeticError, match="on purpose") as caught:
        RUNS[kernel]("python", workers=2, backend="process")
    assert isinstance(caught.value.__cause__, allcores.errors.RemoteTraceback)
    shm_full.assert_none_left()


def test_no_file_left_when_a_worker_dies(shm_full, fine_blocks, monkeypatch):
    monkeypatch.setattr(_kernel_blocks, "mandelbrot_python", exit_in_block)
    with pytest.raises(allcores.WorkerCrashedError, match="exit code 7"):
        run_mandelbrot("python", workers=2, backend="process")
    shm_full.assert_none_left()


def test_no_file_left_after_ctrl_c(shm_full, monkeypatch, tmp_path):
    started = tmp_path / "started"
    with monkeypatch.context() as patch:
        patch.setattr(_kernel_blocks, "mandelbrot_python",
                      functools.partial(w.wait_in_block, str(started)))
        ctrl_c_once_started(
            started, lambda: run_mandelbrot("python", workers=2, backend="process"),
            WAIT_LIMIT_S)
    shm_full.assert_none_left()
