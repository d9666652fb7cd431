"""The parallel kernels: ``allcores.kernels.*`` with ``workers`` and ``backend``.

- Invariance: every kernel, both implementations, on every backend and 1, 2 or 3 workers,
  equals one serial call of its chunk function over the whole job (exactly), with blocks
  forced small (``fine_blocks``) so that the split really happens.
- The choice of backend (``allcores.blocks`` from the kernels' cost model,
  ``ALLCORES_BACKEND``) and of blocks.
- Shared memory: no segment survives a call, whether it succeeds, a block raises, a
  worker dies, or Ctrl-C arrives while the caller waits.
- Bad ``workers`` / ``backend`` fail at the call, before any pool starts.

The block variants below (``raise_in_block`` and friends) run in worker processes, which
import this module by name (pytest puts ``tests/`` on ``sys.path`` before any pool
starts; multiprocessing hands that path to its workers). Tests swap them in for the real
block functions of ``allcores._kernel_blocks`` in the caller, where ``allcores.kernels``
looks them up at each call. They wait on files, never longer than ``WAIT_LIMIT_S``.
"""

from __future__ import annotations

import functools
import math
import os
import pickle
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory

import numpy as np
import pytest

import allcores
import cloudpickle

from allcores import _block_task, _kernel_blocks, _shm, blocks, kernels, native, pure, shortcuts

import _workloads as w
from _support import ctrl_c_once_started, run_in_thread

IMPLS = ["native", "python"]
BACKENDS = ["serial", "thread", "process"]
WORKERS = [1, 2, 3]
# Far below the conftest watchdog (120 s), far above any honest wait here.
WAIT_LIMIT_S = 30.0
SHM_DIR = "/dev/shm"
needs_dev_shm = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="no /dev/shm here")


def module_of(impl):
    return native if impl == "native" else pure


# ======================================================================================
# Jobs: the public call and the single chunk-function call it must equal
# ======================================================================================

MANDEL = {"width": 37, "height": 29, "max_iter": 60, "bounds": (-2.0, 1.0, -1.5, 1.5)}
PRIMES_LOW = (0, 30_011)                 # includes 2, the one even prime
PRIMES_HIGH = (2**40 - 2_000, 2**40 + 1_000)  # survivors need Miller-Rabin
IS_PRIME_VALUES = np.array(
    [0, 1, 2, 3, 4, 97, 2**31 - 1, 2**32 - 5, 2**61 - 1, 2**64 - 59, 2**64 - 1, 561]
    + [2**40 + k for k in range(79)], dtype=np.uint64).reshape(7, 13)
FANNKUCH_N = 7
MONTE_CARLO = {"samples": 5_003, "seed": 12_345}


def job_mandelbrot(impl, **options):
    return kernels.mandelbrot(MANDEL["width"], MANDEL["height"], max_iter=MANDEL["max_iter"],
                              bounds=MANDEL["bounds"], impl=impl, **options)


def expect_mandelbrot(impl):
    out = np.zeros((MANDEL["height"], MANDEL["width"]), dtype=np.uint32)
    module_of(impl).mandelbrot_rows(out, 0, MANDEL["height"], MANDEL["max_iter"],
                                    *MANDEL["bounds"])
    return out


def job_primes_low(impl, **options):
    return kernels.count_primes(*PRIMES_LOW, impl=impl, **options)


def expect_primes_low(impl):
    return module_of(impl).count_primes_range(*PRIMES_LOW)


def job_primes_high(impl, **options):
    return kernels.count_primes(*PRIMES_HIGH, impl=impl, **options)


def expect_primes_high(impl):
    return module_of(impl).count_primes_range(*PRIMES_HIGH)


def job_is_prime(impl, **options):
    return kernels.is_prime(IS_PRIME_VALUES, impl=impl, **options)


def expect_is_prime(impl):
    out = np.empty(IS_PRIME_VALUES.size, dtype=bool)
    module_of(impl).is_prime_array(IS_PRIME_VALUES.reshape(-1), out)
    return out.reshape(IS_PRIME_VALUES.shape)


def job_fannkuch(impl, **options):
    return kernels.fannkuch(FANNKUCH_N, impl=impl, **options)


def expect_fannkuch(impl):
    return module_of(impl).fannkuch_block(FANNKUCH_N, 0, math.factorial(FANNKUCH_N))


def job_monte_carlo(impl, **options):
    return kernels.monte_carlo_pi(MONTE_CARLO["samples"], seed=MONTE_CARLO["seed"], impl=impl,
                                  **options)


def expect_monte_carlo(impl):
    hits = module_of(impl).monte_carlo_hits(MONTE_CARLO["seed"], 0, MONTE_CARLO["samples"])
    return 4 * hits / MONTE_CARLO["samples"]


JOBS = {
    "mandelbrot": (job_mandelbrot, expect_mandelbrot),
    "count_primes_low": (job_primes_low, expect_primes_low),
    "count_primes_high": (job_primes_high, expect_primes_high),
    "is_prime": (job_is_prime, expect_is_prime),
    "fannkuch": (job_fannkuch, expect_fannkuch),
    "monte_carlo_pi": (job_monte_carlo, expect_monte_carlo),
}


def assert_same(got, expected):
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    else:
        assert type(got) is type(expected) and got == expected


# ======================================================================================
# Fixtures
# ======================================================================================


@pytest.fixture
def fine_blocks(monkeypatch):
    """Blocks as small as the job allows (one row, one value...), so that tiny jobs are
    really split: at most ``workers * BLOCKS_PER_WORKER`` of them."""
    monkeypatch.setattr(blocks, "MIN_BLOCK_S", dict.fromkeys(blocks.MIN_BLOCK_S, 1e-12))
    monkeypatch.setattr(kernels, "PRIME_MILLER_RABIN_MIN_BLOCK", 1)


class MapCalls:
    """What ``allcores.kernels`` handed to the engine, call by call."""

    def __init__(self):
        self.calls: list[dict] = []

    @property
    def backends(self):
        return [call["backend"] for call in self.calls]


@pytest.fixture
def map_calls(monkeypatch):
    """Record every ``shortcuts.map`` call (then make it as usual)."""
    record = MapCalls()
    real_map = shortcuts.map

    def spy(fn, iterable, **options):
        call = {"fn": fn, "blocks": list(iterable), **options}
        record.calls.append(call)
        call["results"] = real_map(fn, call["blocks"], **options)
        return call["results"]

    monkeypatch.setattr(shortcuts, "map", spy)
    return record


@pytest.fixture(autouse=True)
def no_backend_from_environment(monkeypatch):
    monkeypatch.delenv("ALLCORES_BACKEND", raising=False)


def shm_names() -> set[str]:
    """The POSIX shared-memory segments on this machine that Python created."""
    return {name for name in os.listdir(SHM_DIR) if name.startswith(("psm_", "wnsm_"))}


class SegmentWatch:
    """Segments that this process creates while the watch runs.

    Other processes on the machine (other test runs) may create and remove segments of
    their own meanwhile, so the before/after comparison counts only ours."""

    def __init__(self):
        self.before = shm_names()
        self.created: set[str] = set()

    def assert_none_left(self):
        assert self.created, "the call created no shared memory: nothing was checked"
        left = (shm_names() - self.before) & self.created
        assert not left, f"shared-memory segments left behind: {sorted(left)}"


@pytest.fixture
def segments(monkeypatch):
    if not os.path.isdir(SHM_DIR):
        pytest.skip("no /dev/shm here")
    watch = SegmentWatch()

    class RecordingSharedMemory(SharedMemory):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if kwargs.get("create"):
                watch.created.add(self.name)

    monkeypatch.setattr(_shm, "SharedMemory", RecordingSharedMemory)
    return watch


# ======================================================================================
# Same result for every backend, worker count and block split
# ======================================================================================


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("job", sorted(JOBS))
def test_same_result_as_one_serial_call(fine_blocks, job, impl, backend, workers):
    run, expect = JOBS[job]
    assert_same(run(impl, workers=workers, backend=backend), expect(impl))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("job", sorted(JOBS))
def test_same_result_with_auto_and_default_workers(job, impl):
    run, expect = JOBS[job]
    assert_same(run(impl), expect(impl))


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_jobs_are_really_split(fine_blocks, map_calls, backend):
    job_mandelbrot("native", workers=3, backend=backend)
    job_primes_low("native", workers=3, backend=backend)
    assert [len(call["blocks"]) for call in map_calls.calls] == [
        3 * blocks.BLOCKS_PER_WORKER] * 2
    assert all(call["chunksize"] == 1 and call["workers"] == 3 for call in map_calls.calls)


def test_thread_blocks_write_into_the_result_itself(fine_blocks, map_calls):
    image = job_mandelbrot("native", workers=2, backend="thread")
    (call,) = map_calls.calls
    # Every block wrote its rows into one array, in place: nothing came back, nothing
    # was shared. (The result is that array, unless a block returned its rows.)
    assert call["results"] == [None] * len(call["blocks"])
    assert call["fn"].out.shared is None
    assert np.array_equal(image, expect_mandelbrot("native"))


@pytest.mark.parametrize("run", [job_mandelbrot, job_is_prime])
def test_process_blocks_send_back_no_arrays(fine_blocks, map_calls, run):
    run("python", workers=2, backend="process")
    (call,) = map_calls.calls
    assert call["results"] == [_block_task.SHARED] * len(call["blocks"])
    # What a process pool pickles per map (the task) and per block is small: shared
    # memory specs, never the arrays.
    assert max(len(pickle.dumps(block)) for block in call["blocks"]) < 100
    assert len(cloudpickle.dumps(call["fn"])) < 2000


@pytest.mark.parametrize("impl", IMPLS)
def test_array_results_by_value(impl):
    # What a block gets on a worker out of reach of this machine's shared memory (a
    # Dask worker elsewhere): it computes its rows privately and returns them.
    elsewhere = _block_task.Remote(None, "another machine", (MANDEL["height"],
                                                              MANDEL["width"]), "<u4")
    task = _block_task.Task(kernels._task("mandelbrot", impl),
                            (MANDEL["height"], MANDEL["max_iter"], *MANDEL["bounds"]),
                            elsewhere)
    rows = task((3, 9))
    assert rows.dtype == np.uint32
    np.testing.assert_array_equal(rows, expect_mandelbrot(impl)[3:9])
    flat = IS_PRIME_VALUES.reshape(-1)
    flags_elsewhere = _block_task.Remote(None, "another machine", flat.shape, "|b1")
    task = _block_task.Task(kernels._task("is_prime", impl),
                            (_block_task.Sliced(None, 0),), flags_elsewhere)
    flags = task((10, 40, (flat[10:40],)))  # a block that carries its values
    np.testing.assert_array_equal(flags, expect_is_prime(impl).reshape(-1)[10:40])


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_empty_and_one_item_jobs(workers):
    for backend in BACKENDS:
        options = {"workers": workers, "backend": backend}
        assert kernels.mandelbrot(0, 5, **options).shape == (5, 0)
        assert kernels.mandelbrot(5, 0, **options).shape == (0, 5)
        one_pixel = kernels.mandelbrot(1, 1, max_iter=3, bounds=(-0.5, 0.5, -0.5, 0.5),
                                       impl="python", **options)
        assert one_pixel.tolist() == [[3]]  # c = -0.5 - 0.5i stays bounded
        assert kernels.count_primes(7, 7, **options) == 0
        assert kernels.count_primes(7, 8, impl="python", **options) == 1
        assert kernels.is_prime([], **options).shape == (0,)
        assert kernels.is_prime(np.zeros((2, 0), np.uint64), **options).shape == (2, 0)
        got = kernels.is_prime(7, impl="python", **options)
        assert got.shape == () and bool(got) is True
        assert kernels.fannkuch(1, **options) == (0, 0)
        assert kernels.monte_carlo_pi(1, seed=5, **options) == expect_one_sample(5)


def expect_one_sample(seed):
    return 4 * native.monte_carlo_hits(seed, 0, 1) / 1


def test_uneven_split_is_exact():
    assert blocks.split(0, 10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert blocks.split(2**64 - 5, 2**64, 5) == [(2**64 - 5 + i, 2**64 - 4 + i)
                                                 for i in range(5)]
    for size in range(0, 40):
        for count in range(1, max(size, 1) + 1):
            pieces = blocks.split(7, 7 + size, count)
            assert len(pieces) == count and pieces[0][0] == 7 and pieces[-1][1] == 7 + size
            assert all(a < b or size == 0 for a, b in pieces)
            assert all(b == c for (_, b), (c, _) in zip(pieces, pieces[1:]))


# ======================================================================================
# Choosing the backend and the blocks
# ======================================================================================


def planned(kernel, impl, work, backend="auto", workers=2, min_block=1):
    """What the block API plans for ``work`` units of ``kernel`` (one unit an index)."""
    return blocks.plan_blocks(kernels._task(kernel, impl), 0, work,
                              cost=kernels.seconds_per(kernel, impl), workers=workers,
                              backend=backend, min_block=min_block)


def serial_below(kernel, impl):
    """The least work (in the kernel's unit) that auto runs in parallel."""
    parallel = "thread" if impl == "native" else "process"
    return math.ceil(blocks.SERIAL_BELOW_S[parallel] / kernels.seconds_per(kernel, impl))


@pytest.mark.parametrize("kernel", sorted(kernels.KERNEL_COSTS))
def test_auto_picks_threads_for_native_processes_for_python(kernel):
    for impl, parallel in [("native", "thread"), ("python", "process")]:
        big = serial_below(kernel, impl)
        assert planned(kernel, impl, 2 * big).backend == parallel
        assert planned(kernel, impl, 10**12).backend == parallel
        assert planned(kernel, impl, big - 1).backend == "serial"
        assert planned(kernel, impl, 1).backend == "serial"


def test_serial_thresholds_are_a_few_milliseconds():
    for kernel in kernels.KERNEL_COSTS:
        native_s = serial_below(kernel, "native") * kernels.seconds_per(kernel, "native")
        python_s = serial_below(kernel, "python") * kernels.seconds_per(kernel, "python")
        assert 0.5e-3 <= native_s <= 5e-3 and 5e-3 <= python_s <= 50e-3, kernel
    # The example: counting primes below 2 * 10**5 numbers is serial.
    assert planned("count_primes", "python", 2 * 10**5).backend == "serial"
    assert planned("count_primes", "native", 2 * 10**5).backend == "serial"


def test_explicit_backend_is_honoured():
    for backend in BACKENDS:
        assert planned("mandelbrot", "native", 1, backend).backend == backend
        assert planned("fannkuch", "python", 10**12, backend).backend == backend


def test_environment_overrides_auto_only(monkeypatch):
    monkeypatch.setenv("ALLCORES_BACKEND", "serial")
    assert planned("mandelbrot", "native", 10**12).backend == "serial"
    assert planned("mandelbrot", "python", 10**12).backend == "serial"
    assert planned("mandelbrot", "native", 10**12, "thread").backend == "thread"
    monkeypatch.setenv("ALLCORES_BACKEND", "process")
    assert planned("is_prime", "native", 1).backend == "process"
    monkeypatch.setenv("ALLCORES_BACKEND", "auto")
    assert planned("is_prime", "native", 10**12).backend == "thread"
    monkeypatch.setenv("ALLCORES_BACKEND", "")
    assert planned("is_prime", "python", 10**12).backend == "process"


def test_environment_serial_runs_a_big_job_without_any_pool(monkeypatch, map_calls):
    monkeypatch.setenv("ALLCORES_BACKEND", "serial")
    assert kernels.count_primes(0, 10**7) == 664_579
    assert map_calls.calls == []
    assert kernels.count_primes(0, 10**6, workers=2, backend="thread") == 78_498
    assert map_calls.backends == ["thread"]


def test_bad_backend_in_environment_fails_at_the_call(monkeypatch, map_calls):
    monkeypatch.setenv("ALLCORES_BACKEND", "gpu")
    with pytest.raises(ValueError, match="ALLCORES_BACKEND.*'gpu'"):
        kernels.count_primes(0, 10**7)
    assert kernels.count_primes(0, 10**6, backend="serial") == 78_498  # not consulted
    assert map_calls.calls == []


def test_tiny_python_job_starts_no_pool(map_calls):
    assert kernels.count_primes(0, 100, impl="python") == 25
    assert kernels.mandelbrot(8, 8, impl="python").shape == (8, 8)
    assert kernels.is_prime([2, 4], impl="python").tolist() == [True, False]
    assert kernels.fannkuch(6, impl="python") == native.fannkuch_block(6, 0, 720)
    assert 2.0 < kernels.monte_carlo_pi(100, impl="python") < 4.0
    assert map_calls.calls == []


def test_auto_runs_big_jobs_on_threads_or_processes(map_calls):
    assert kernels.count_primes(0, 5 * 10**7, workers=2) == 3_001_134
    assert kernels.count_primes(0, 10**6, impl="python", workers=2) == 78_498
    assert map_calls.backends == ["thread", "process"]
    for call in map_calls.calls:
        assert 2 <= len(call["blocks"]) <= 2 * blocks.BLOCKS_PER_WORKER


def test_auto_runs_a_one_block_job_serially(map_calls, monkeypatch):
    assert kernels.count_primes(0, 10**7, workers=1) == 664_579
    # 2**48 .. 2**48 + 2 * 10**7: too big to be serial, but a block narrower than
    # sqrt(2**48) = 2**24 would lose its sieve's reach (see the next tests).
    lo, hi = 2**48, 2**48 + 20_000_000
    work, min_width = kernels._prime_work(lo, hi)
    assert work > serial_below("count_primes", "native") and 2 * min_width > hi - lo
    assert kernels.count_primes(lo, hi, workers=2) == native.count_primes_range(lo, hi)
    assert map_calls.calls == []
    # Unless the environment asks for a backend: then it gets it.
    monkeypatch.setenv("ALLCORES_BACKEND", "thread")
    assert kernels.count_primes(0, 10**7, workers=1) == 664_579
    assert map_calls.backends == ["thread"]


def test_block_counts():
    def blocks_for(kernel, impl, work, workers, backend="thread", **kw):
        return len(planned(kernel, impl, work, backend, workers, **kw).blocks)

    big = 10**12
    per_worker = blocks.BLOCKS_PER_WORKER
    assert blocks_for("mandelbrot", "native", big, 2) == 2 * per_worker
    assert blocks_for("mandelbrot", "native", big, 3) == 3 * per_worker
    assert blocks_for("mandelbrot", "native", big, 1) == 1         # nothing to balance
    assert blocks_for("mandelbrot", "native", big, 4, "serial") == 1
    # Never below the minimum block: 3.5 blocks' worth of work -> 3 blocks.
    minimum = math.ceil(blocks.MIN_BLOCK_S["process"] / kernels.seconds_per("fannkuch",
                                                                            "python"))
    assert blocks_for("fannkuch", "python", 3 * minimum + minimum // 2, 4, "process") == 3
    assert blocks_for("fannkuch", "python", minimum - 1, 4, "process") == 1
    # Never more blocks than indexes (rows): one row each at most.
    assert len(blocks.plan_blocks(kernels._task("mandelbrot", "native"), 0, 5, cost=1.0,
                                  workers=3, backend="thread").blocks) == 5


def test_prime_blocks_keep_the_sieve_deciding_alone():
    # Up to 2**40 + 3 * 10**7, sieving primes up to 2**20 decide alone; a block narrower
    # than 2**20 would sieve less far and send its survivors to Miller-Rabin (~40x the
    # cost). (3 * 10**7 numbers: long enough to be worth threads.)
    lo, hi = 2**40, 2**40 + 3 * 10**7
    work, min_width = kernels._prime_work(lo, hi)
    assert work == hi - lo and min_width > 2**20
    plan = blocks.plan_blocks(kernels._task("count_primes", "native"), lo, hi,
                              cost=kernels.seconds_per("count_primes", "native"), workers=4,
                              backend="thread", min_block=min_width)
    assert 1 < len(plan.blocks) <= (hi - lo) // 2**20
    assert all(b - a >= min_width for a, b in plan.blocks)
    # Below 2**32 the minimal sieve (pure.MIN_BASE) always reaches: no constraint.
    assert kernels._prime_work(0, 10**9) == (10**9, 1)
    # Far beyond the sieve's reach: Miller-Rabin decides anyway; weighted work.
    work, min_width = kernels._prime_work(10**18, 10**18 + 10**6)
    assert work == 10**6 * kernels.PRIME_MILLER_RABIN_WEIGHT
    assert min_width == kernels.PRIME_MILLER_RABIN_MIN_BLOCK


def test_kernel_called_inside_an_allcores_worker_runs_serially(map_calls):
    def inner(i):
        backend = planned("count_primes", "native", 10**12).backend
        return backend, kernels.count_primes(0, 5 * 10**6, workers=2)

    # The outer map holds both threads of the ("thread", 2) pool; the kernel's blocks,
    # queued on that same pool, would never run.
    result = run_in_thread(lambda: allcores.map(inner, range(4), workers=2, backend="thread",
                                                chunksize=1), timeout=60)()
    assert result == [("serial", 348_513)] * 4
    # No map for the kernel's blocks (the outer map itself may be recorded, depending
    # on whether allcores.map was looked up before the spy was installed).
    assert all(call["fn"] is inner for call in map_calls.calls)


def test_native_tasks_are_marked_gil_free_and_pickle_by_reference():
    names = ["mandelbrot", "is_prime", "count_primes", "fannkuch", "monte_carlo_pi"]
    for name in names:
        native_task = getattr(_kernel_blocks, f"{name}_native")
        python_task = getattr(_kernel_blocks, f"{name}_python")
        assert native_task.__allcores_nogil__ is True
        assert not getattr(python_task, "__allcores_nogil__", False)
        for task in (native_task, python_task):
            assert pickle.loads(pickle.dumps(task)) is task


# ======================================================================================
# Bad input fails at the call
# ======================================================================================

CALLS = {
    "mandelbrot": lambda **kw: kernels.mandelbrot(4, 4, **kw),
    "count_primes": lambda **kw: kernels.count_primes(0, 10**7, **kw),
    "is_prime": lambda **kw: kernels.is_prime([2, 3], **kw),
    "fannkuch": lambda **kw: kernels.fannkuch(9, **kw),
    "monte_carlo_pi": lambda **kw: kernels.monte_carlo_pi(10**7, **kw),
}


@pytest.mark.parametrize("kernel", sorted(CALLS))
@pytest.mark.parametrize(
    "options,exc,match",
    [
        ({"workers": 0}, ValueError, r"workers: expected 1 <= workers, got: 0"),
        ({"workers": -2}, ValueError, "workers"),
        ({"workers": 1.5}, TypeError, "workers: expected an integer, got: float 1.5"),
        ({"workers": "2"}, TypeError, "workers"),
        ({"backend": "gpu"}, ValueError, r"backend: expected 'auto' or one of .*'gpu'"),
        ({"backend": None}, ValueError, "backend"),
        ({"backend": "Thread"}, ValueError, "backend"),
        ({"backend": 3}, ValueError, "backend"),
    ],
)
def test_bad_parallel_options_fail_at_the_call(map_calls, kernel, options, exc, match):
    with pytest.raises(exc, match=match):
        CALLS[kernel](**options)
    assert map_calls.calls == []


def test_kernel_arguments_are_checked_before_any_block_runs(map_calls):
    # Arguments that only the chunk functions used to check are now checked up front.
    with pytest.raises(ValueError, match="max_iter"):
        kernels.mandelbrot(2000, 2000, max_iter=-1, backend="process")
    with pytest.raises(ValueError, match="xmin"):
        kernels.mandelbrot(2000, 2000, bounds=(1.0, 0.0, -1.0, 1.0), backend="thread")
    with pytest.raises(ValueError, match="seed"):
        kernels.monte_carlo_pi(10**8, seed=-1, backend="process")
    with pytest.raises(TypeError, match="seed"):
        kernels.monte_carlo_pi(10**8, seed=0.5, backend="thread")
    assert map_calls.calls == []


# ======================================================================================
# Shared memory: created by the caller, unlinked whatever happens
# ======================================================================================


def raise_in_block(a, b, rows, *args):
    """A block that writes its rows, then fails."""
    rows[...] = 1
    raise ArithmeticError("this block fails on purpose")


def exit_in_block(a, b, rows, *args):
    """A block whose worker process dies."""
    os._exit(7)


def exit_once_in_block(marker, a, b, rows, *args):
    """The first block to run dies; every other one, and the retry of the first,
    computes as usual."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return _kernel_blocks.mandelbrot_python(a, b, rows, *args)
    os._exit(7)


@pytest.mark.parametrize("impl", IMPLS)
def test_no_segment_left_after_success(segments, fine_blocks, impl):
    assert_same(job_mandelbrot(impl, workers=2, backend="process"), expect_mandelbrot(impl))
    assert_same(job_is_prime(impl, workers=2, backend="process"), expect_is_prime(impl))
    assert len(segments.created) == 3  # the image; the values and the flags
    segments.assert_none_left()


@pytest.mark.parametrize("kernel", ["mandelbrot", "is_prime"])
def test_no_segment_left_when_a_block_raises(segments, fine_blocks, monkeypatch, kernel):
    monkeypatch.setattr(_kernel_blocks, f"{kernel}_python", raise_in_block)
    with pytest.raises(ArithmeticError, match="on purpose") as caught:
        JOBS[kernel][0]("python", workers=2, backend="process")
    assert isinstance(caught.value.__cause__, allcores.errors.RemoteTraceback)
    segments.assert_none_left()


def test_no_segment_left_when_a_worker_dies(segments, fine_blocks, monkeypatch):
    monkeypatch.setattr(_kernel_blocks, "mandelbrot_python", exit_in_block)
    # The default pool runs a crashed block once more, then gives up.
    with pytest.raises(allcores.WorkerCrashedError, match="exit code 7"):
        job_mandelbrot("python", workers=2, backend="process")
    segments.assert_none_left()


def test_block_rerun_after_a_worker_died_completes_the_image(segments, fine_blocks,
                                                             monkeypatch, tmp_path):
    monkeypatch.setattr(_kernel_blocks, "mandelbrot_python",
                        functools.partial(exit_once_in_block, str(tmp_path / "crashed")))
    assert_same(job_mandelbrot("python", workers=2, backend="process"),
                expect_mandelbrot("python"))
    assert (tmp_path / "crashed").exists()
    segments.assert_none_left()


def test_no_segment_left_after_ctrl_c(segments, monkeypatch, tmp_path):
    started = tmp_path / "started"
    with monkeypatch.context() as patch:
        patch.setattr(_kernel_blocks, "mandelbrot_python",
                      functools.partial(w.wait_in_block, str(started)))
        ctrl_c_once_started(
            started, lambda: job_mandelbrot("python", workers=2, backend="process"),
            WAIT_LIMIT_S)
    segments.assert_none_left()
    # The default pool that Ctrl-C stopped is replaced on the next call.
    assert_same(job_mandelbrot("python", workers=2, backend="process"),
                expect_mandelbrot("python"))


# ======================================================================================
# allcores._shm
# ======================================================================================


@needs_dev_shm
def test_shared_array_round_trip_and_release():
    data = np.arange(12, dtype=np.uint64).reshape(4, 3)
    with _shm.SharedArray(data.shape, np.uint64, data=data) as shared:
        spec = shared.spec
        assert spec.name in shm_names() and spec.shape == (4, 3) and spec.dtype == "uint64"
        np.testing.assert_array_equal(_shm.read_rows(spec, 1, 3), data[1:3])
        _shm.write_rows(spec, 2, np.array([[7, 8, 9]], np.uint64))
        result = shared.to_numpy()
    assert spec.name not in shm_names()
    assert result.tolist() == [[0, 1, 2], [3, 4, 5], [7, 8, 9], [9, 10, 11]]
    shared.release()  # idempotent
    with pytest.raises(FileNotFoundError):
        _shm.read_rows(spec, 0, 1)  # a late block finds the segment gone


def test_shared_array_is_unlinked_when_filling_it_fails(segments):
    with pytest.raises(ValueError, match="broadcast"):
        _shm.SharedArray((4,), np.uint64, data=np.arange(5, dtype=np.uint64))
    segments.assert_none_left()
    with pytest.raises(ValueError, match="non-empty"):
        _shm.SharedArray((0, 3), np.uint32)


@pytest.mark.skipif(os.name != "posix" or _shm._HAS_TRACK_FLAG,
                    reason="only POSIX before Python 3.13 registers attached segments")
def test_attach_unregisters_only_from_another_tracker(monkeypatch):
    with _shm.SharedArray((2,), np.uint8) as shared:
        for tracker, expected_calls in [(shared.spec.tracker, 0), ((-1, -1), 1)]:
            spec = shared.spec._replace(tracker=tracker)
            calls = []
            with monkeypatch.context() as patch:
                patch.setattr(resource_tracker, "unregister",
                              lambda name, rtype: calls.append((name, rtype)))
                attached = _shm._attach(spec)
            attached.close()
            assert calls == [("/" + spec.name, "shared_memory")] * expected_calls
