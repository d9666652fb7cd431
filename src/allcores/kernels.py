"""Public kernels: ordinary Python values in, fresh results out, computed on every core.

Each function runs the compiled kernel (``impl="native"``, the default) or its pure-Python
twin (``impl="python"``); both give the same result, and so does every choice of
``workers`` and ``backend``: the job is cut into blocks whose results combine exactly
(disjoint rows or slices of an array, sums of counts, the max of maxima). The chunk-level
functions live in ``allcores.native`` and ``allcores.pure``; the per-block tasks that call
them in ``allcores._kernel_blocks``. Threads run the native kernels truly in parallel
(they release the GIL) with no copying at all; processes are for the pure twins.

Data flow::

    caller thread                                      where the blocks run
    -------------                                      --------------------
    kernel(..., workers, backend)
      1. validate every argument (nothing has started yet)
      2. plan: work estimate -> backend (resolve_backend) -> number of blocks
      3. result array: np.zeros(...)          serial, threads: each block writes its own
                                                rows / slice of it, in place, no lock
                   or: _shm.SharedArray(...)  processes: each block attaches by name,
                                                writes its slice, closes; returns None
                   or: nothing                other backends (a cluster): each block
                                                returns its part; concatenated here
      4. blocks: one small NamedTuple per block (allcores._kernel_blocks)
      5. serial: task(block) for each block, here
         else:   allcores.shortcuts.map(task, blocks, chunksize=1) on the warm default
                 pool of (backend, workers)    ---> pool threads / worker processes
      6. combine: the array (copied out of shared memory) | sum | max
      finally: the shared segment is closed and unlinked, however step 5 ended

- The result array is written only by the blocks (disjoint parts) and read by the caller
  only after ``map`` returned, i.e. after every block finished.
- Shared segments are created and unlinked by the caller alone (``allcores._shm``).
- A native block running on a thread cannot be interrupted: after Ctrl-C or an error,
  blocks already running finish in the background, writing into an array that only they
  still reference. Worker processes are stopped by the pool on Ctrl-C.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from allcores import _kernel_blocks as blocks
from allcores import _validate as check
from allcores import pure, shortcuts
from allcores._shm import SharedArray
from allcores._options import backend_option, workers_option
from allcores._types import BackendChoice, KernelImpl
from allcores.backends import validate_backend_name
from allcores.cpu import cpu_count
from allcores.planner import backend_override, settled_backend

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["count_primes", "fannkuch", "is_prime", "mandelbrot", "monte_carlo_pi"]

DEFAULT_BOUNDS = (-2.0, 1.0, -1.5, 1.5)

# --- The cost model -----------------------------------------------------------------------
#
# Each kernel estimates its work in its own unit; measured single-core costs turn the
# thresholds below (in seconds) into units. The numbers need only be right within a
# factor of two or so: they decide "serial or not" and "how many blocks", not results.


class KernelCost(NamedTuple):
    unit: str
    native_ns: float   # one unit, native kernel, one core (x86-64, 2020s)
    python_ns: float   # the same for the pure-Python twin


KERNEL_COSTS = {
    # Averaged over the default view, where most pixels escape well before max_iter.
    "mandelbrot": KernelCost("pixel x (max_iter + 1)", 1.0, 20.0),
    # Weighted by PRIME_MILLER_RABIN_WEIGHT where the sieve cannot decide alone.
    "count_primes": KernelCost("number in [lo, hi)", 1.5, 50.0),
    "is_prime": KernelCost("value (random 64-bit)", 150.0, 3000.0),
    "fannkuch": KernelCost("permutation", 30.0, 850.0),
    "monte_carlo_pi": KernelCost("sample", 2.3, 1060.0),
}

# count_primes sieves with the primes up to min(sqrt(hi), ~the range's width) (at least
# pure.MIN_BASE, at most pure.MAX_BASE): when they do not reach sqrt(hi), survivors need a
# Miller-Rabin test and a number costs 30-60 times more (measured: 1.5 -> 65-100 ns).
PRIME_MILLER_RABIN_WEIGHT = 50
# In that regime a block this wide keeps its survivors within ~1.2x of a wider range's
# (survivors ~ 1 / ln(sieve limit), and ln 2**20 / ln 2**24 = 0.83).
PRIME_MILLER_RABIN_MIN_BLOCK = 1 << 20

# No block shorter than this (estimated), so that dispatch (~20 us a block on threads,
# ~100 us on processes) stays a few percent of the work.
MIN_BLOCK_S = {"native": 0.002, "python": 0.010}
# Under backend="auto", a job estimated to take less than this serially runs serially:
# two minimal blocks, the least that two workers can share. Pure Python's bar is higher:
# its parallel backend is processes, with dearer dispatch and a pool start on first use.
SERIAL_BELOW_S = {"native": 0.004, "python": 0.020}
# Blocks per worker, for balance when blocks differ in cost (mandelbrot rows near the set
# cost ~100x more than rows far from it): the last blocks to finish are then short.
BLOCKS_PER_WORKER = 8


def _units(seconds_by_impl: dict[str, float]) -> dict[str, dict[str, int]]:
    return {
        kernel: {
            "native": max(1, int(seconds_by_impl["native"] / (cost.native_ns * 1e-9))),
            "python": max(1, int(seconds_by_impl["python"] / (cost.python_ns * 1e-9))),
        }
        for kernel, cost in KERNEL_COSTS.items()
    }


# kernel -> impl -> work (in the kernel's unit); e.g. count_primes/native: ~2.7 million
# numbers, count_primes/python: ~400,000 numbers.
SERIAL_BELOW_WORK = _units(SERIAL_BELOW_S)
MIN_BLOCK_WORK = _units(MIN_BLOCK_S)


# --- Choosing the backend and the blocks --------------------------------------------------


def resolve_backend(kernel: str, impl: str, work: int, backend: str = "auto") -> str:
    """The backend a kernel call runs on.

    What is settled without estimating comes first (``allcores.planner.settled_backend``,
    the same resolver ``allcores.map`` uses): ``"serial"`` inside an allcores worker (no
    nested pools), an explicit ``backend`` as given, ``ALLCORES_BACKEND`` when set.
    Otherwise: ``"serial"`` when ``work`` (in the kernel's unit, see ``KERNEL_COSTS``) is
    below ``SERIAL_BELOW_WORK[kernel][impl]``; else ``"thread"`` for the native kernels
    (they release the GIL) and ``"process"`` for the pure-Python twins.
    """
    settled = settled_backend(backend_option(backend))
    if settled is not None:
        return settled
    if work < SERIAL_BELOW_WORK[kernel][impl]:
        return "serial"
    return "thread" if impl == "native" else "process"


def _parallel_options(workers: object, backend: object) -> tuple[int, str]:
    workers = workers_option(workers)
    return cpu_count() if workers is None else workers, backend_option(backend)


# Where the blocks of mandelbrot and is_prime put their part of the result array.
IN_PLACE = "in place"            # serial, threads: straight into views of the result
SHARED_MEMORY = "shared memory"  # worker processes on this machine: a shared segment
BY_VALUE = "by value"            # workers anywhere (a cluster): returned, then copied in


def _result_placement(backend: str) -> str:
    if validate_backend_name(backend).runs_in_caller_process:
        return IN_PLACE
    return SHARED_MEMORY if backend == "process" else BY_VALUE


class _Plan(NamedTuple):
    backend: str
    workers: int
    blocks: int
    placement: str   # IN_PLACE, SHARED_MEMORY or BY_VALUE


def _plan(kernel: str, impl: str, work: int, items: int, workers: int, backend: str,
          *, min_items: int = 1) -> _Plan:
    """How to run a job of ``work`` units over ``items`` divisible items (rows, values, ...),
    with at least ``min_items`` items in a block."""
    chosen = resolve_backend(kernel, impl, work, backend)
    if chosen == "serial" or workers == 1:
        count = 1
    else:
        count = max(1, min(workers * BLOCKS_PER_WORKER,
                           work // MIN_BLOCK_WORK[kernel][impl],
                           items // min_items))
    if count == 1 and backend == "auto" and backend_override() is None:
        chosen = "serial"  # one block: a pool would add its overhead and nothing else
    return _Plan(chosen, workers, count, _result_placement(chosen))


def _split(start: int, stop: int, count: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into ``count`` consecutive pieces of (nearly) equal size."""
    size = stop - start
    return [(start + size * i // count, start + size * (i + 1) // count) for i in range(count)]


def _run_blocks(task: Callable, block_list: list, plan: _Plan) -> list:
    if plan.backend == "serial":
        return [task(block) for block in block_list]
    return shortcuts.map(task, block_list, workers=plan.workers, backend=plan.backend,
                         chunksize=1)


# --- The kernels --------------------------------------------------------------------------


def mandelbrot(
    width: int,
    height: int,
    *,
    max_iter: int = 256,
    bounds: tuple[float, float, float, float] = DEFAULT_BOUNDS,
    impl: KernelImpl = "native",
    workers: int | None = None,
    backend: BackendChoice = "auto",
) -> npt.NDArray[np.uint32]:
    """Escape counts of a ``width x height`` image of the Mandelbrot set.

    Parameters
    ----------
    width, height : int
        Image size in pixels (``>= 0``).
    max_iter : int
        Iterations per pixel at most (``1 <= max_iter < 2**32``); a pixel whose count
        equals ``max_iter`` is taken to be in the set.
    bounds : (xmin, xmax, ymin, ymax)
        The region of the complex plane; pixel ``(y, x)`` samples
        ``xmin + x * (xmax - xmin) / width + i * (ymin + y * (ymax - ymin) / height)``.
    impl : {"native", "python"}
    workers : int, optional
        Workers to use; default :func:`allcores.cpu_count`.
    backend : {"auto", "thread", "process", "serial", "dask"}
        ``"auto"``: see :func:`resolve_backend`.

    Returns
    -------
    numpy.ndarray
        ``uint32`` counts, shape ``(height, width)``.

    Raises
    ------
    TypeError
        An argument of the wrong type (a bool, float or str where an integer belongs).
    ValueError
        An argument out of range.
    MemoryError
        Before anything is allocated, when the image (``4 * width * height`` bytes) is
        larger than this machine's physical memory.
    """
    impl = check.impl_name(impl)
    width = check.integer("width", width, min=0, max=check.MAX_IMAGE_SIDE)
    height = check.integer("height", height, min=0, max=check.MAX_IMAGE_SIDE)
    try:
        xmin, xmax, ymin, ymax = bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds: expected (xmin, xmax, ymin, ymax), got: {bounds!r}"
        ) from None
    max_iter = check.integer("max_iter", max_iter, min=1, max=check.UINT32_MAX)
    xmin, xmax = check.interval("xmin", xmin, "xmax", xmax)
    ymin, ymax = check.interval("ymin", ymin, "ymax", ymax)
    workers, backend = _parallel_options(workers, backend)
    # Before anything is allocated: an image this machine could never hold would
    # otherwise fail far from here (a sparse shared segment, then a worker's MemoryError).
    check.fits_in_memory(f"mandelbrot: a {width}x{height} image of uint32",
                         width * height * np.dtype(np.uint32).itemsize)
    if width == 0 or height == 0:
        return np.zeros((height, width), dtype=np.uint32)

    plan = _plan("mandelbrot", impl, width * height * (max_iter + 1), height, workers, backend)
    task = blocks.mandelbrot_native if impl == "native" else blocks.mandelbrot_python
    region = (xmin, xmax, ymin, ymax)

    def run(out):
        rows = _split(0, height, plan.blocks)
        return _run_blocks(task, [blocks.MandelbrotBlock(a, b, width, height, max_iter,
                                                         region, out) for a, b in rows], plan)

    if plan.placement == IN_PLACE:
        image = np.zeros((height, width), dtype=np.uint32)
        run(image)
        return image
    if plan.placement == BY_VALUE:
        return np.concatenate(run(None))
    with SharedArray((height, width), np.uint32) as shared:
        run(shared.spec)
        return shared.to_numpy()


def _prime_work(lo: int, hi: int) -> tuple[int, int]:
    """(work, smallest block width) of counting the primes in ``[lo, hi)``."""
    reach = math.isqrt(hi - 1) if hi > 1 else 0   # sieving primes must reach this
    # The kernel sieves with the primes up to about max(MIN_BASE, width), at most MAX_BASE.
    sieve_limit = max(pure.MIN_BASE, min(hi - lo, pure.MAX_BASE))
    if sieve_limit >= reach:
        # The sieve alone decides; blocks must stay wide enough for theirs to reach too.
        min_width = reach + 2 if reach > pure.MIN_BASE else 1
        return hi - lo, min_width
    return (hi - lo) * PRIME_MILLER_RABIN_WEIGHT, PRIME_MILLER_RABIN_MIN_BLOCK


def count_primes(lo: int, hi: int, *, impl: KernelImpl = "native", workers: int | None = None,
                 backend: BackendChoice = "auto") -> int:
    """The number of primes ``p`` with ``lo <= p < hi`` (``0 <= lo <= hi <= 2**64``).

    ``workers`` and ``backend`` as for :func:`mandelbrot`.
    """
    impl = check.impl_name(impl)
    lo, hi = check.prime_range_args(lo, hi)
    workers, backend = _parallel_options(workers, backend)
    if lo == hi:
        return 0
    work, min_width = _prime_work(lo, hi)
    plan = _plan("count_primes", impl, work, hi - lo, workers, backend, min_items=min_width)
    task = blocks.count_primes_native if impl == "native" else blocks.count_primes_python
    return sum(_run_blocks(task, [blocks.PrimeRangeBlock(a, b)
                                  for a, b in _split(lo, hi, plan.blocks)], plan))


def is_prime(values: npt.ArrayLike, *, impl: KernelImpl = "native",
             workers: int | None = None,
             backend: BackendChoice = "auto") -> npt.NDArray[np.bool_]:
    """Whether each value is prime: a ``bool`` array of the same shape as ``values``.

    ``values`` may be an int, a (nested) list of ints or an integer numpy array, each
    value in ``0 <= v < 2**64``. The test is exact (deterministic Miller-Rabin).
    ``workers`` and ``backend`` as for :func:`mandelbrot`.
    """
    impl = check.impl_name(impl)
    numbers = check.uint64_values("values", values)
    workers, backend = _parallel_options(workers, backend)
    flat = numbers.reshape(-1)
    if flat.size == 0:
        return np.empty(numbers.shape, dtype=bool)

    plan = _plan("is_prime", impl, flat.size, flat.size, workers, backend)
    task = blocks.is_prime_native if impl == "native" else blocks.is_prime_python
    pieces = _split(0, flat.size, plan.blocks)
    if plan.placement == IN_PLACE:
        out = np.empty(flat.size, dtype=bool)
        _run_blocks(task, [blocks.IsPrimeBlock(a, b, flat, out) for a, b in pieces], plan)
        return out.reshape(numbers.shape)
    if plan.placement == BY_VALUE:
        parts = _run_blocks(task, [blocks.IsPrimeBlock(0, b - a, flat[a:b], None)
                                   for a, b in pieces], plan)
        return np.concatenate(parts).reshape(numbers.shape)
    with SharedArray(flat.shape, np.uint64, data=flat) as shared_values, \
            SharedArray(flat.shape, bool) as shared_out:
        _run_blocks(task, [blocks.IsPrimeBlock(a, b, shared_values.spec, shared_out.spec)
                           for a, b in pieces], plan)
        return shared_out.to_numpy().reshape(numbers.shape)


def fannkuch(n: int, *, impl: KernelImpl = "native", workers: int | None = None,
             backend: BackendChoice = "auto") -> tuple[int, int]:
    """``(checksum, max_flips)`` of the Benchmarks Game fannkuch-redux for ``n`` elements
    (``1 <= n <= 12``); ``fannkuch(7) == (228, 16)``.

    ``workers`` and ``backend`` as for :func:`mandelbrot`.
    """
    impl = check.impl_name(impl)
    n = check.integer("n", n, min=1, max=check.MAX_FANNKUCH_N)
    workers, backend = _parallel_options(workers, backend)
    permutations = check.FACTORIALS[n]
    plan = _plan("fannkuch", impl, permutations, permutations, workers, backend)
    task = blocks.fannkuch_native if impl == "native" else blocks.fannkuch_python
    results = _run_blocks(task, [blocks.FannkuchBlock(n, a, b)
                                 for a, b in _split(0, permutations, plan.blocks)], plan)
    return sum(checksum for checksum, _ in results), max(flips for _, flips in results)


def monte_carlo_pi(samples: int, *, seed: int = 0, impl: KernelImpl = "native",
                   workers: int | None = None, backend: BackendChoice = "auto") -> float:
    """Estimate pi as ``4 * hits / samples`` from ``samples`` SplitMix64 points.

    The estimate depends only on ``samples`` and ``seed``, never on how the samples
    are split into blocks. ``workers`` and ``backend`` as for :func:`mandelbrot`.
    """
    impl = check.impl_name(impl)
    samples = check.integer("samples", samples, min=1, max=check.MAX_SAMPLE_INDEX)
    seed = check.integer("seed", seed, min=0, max=check.UINT64_LIMIT - 1)
    workers, backend = _parallel_options(workers, backend)
    plan = _plan("monte_carlo_pi", impl, samples, samples, workers, backend)
    task = blocks.monte_carlo_native if impl == "native" else blocks.monte_carlo_python
    hits = sum(_run_blocks(task, [blocks.MonteCarloBlock(seed, a, b)
                                  for a, b in _split(0, samples, plan.blocks)], plan))
    return 4 * hits / samples
