"""Public kernels: ordinary Python values in, fresh results out, computed on every core.

Each function runs the compiled kernel (``impl="native"``, the default) or its pure-Python
twin (``impl="python"``); both give the same result, and so does every choice of
``workers`` and ``backend``: the job is cut into blocks whose results combine exactly
(disjoint rows or slices of an array, sums of counts, the max of maxima). The chunk-level
functions live in ``allcores.native`` and ``allcores.pure``; the per-block tasks that call
them in ``allcores._kernel_blocks``. Threads run the native kernels truly in parallel
(they release the GIL) with no copying at all; processes are for the pure twins.

Every kernel runs on the public block API, ``allcores.blocks``, as a user's own kernel
would: it validates its arguments (nothing has started yet), estimates the seconds per
index from its cost model (``KERNEL_COSTS``: no probe, the plan is known up front) and
calls ``blocks.fill`` (mandelbrot's rows, is_prime's flags) or ``blocks.reduce``
(count_primes, fannkuch, monte_carlo_pi) with its block function from
``allcores._kernel_blocks``. The block API chooses the backend (``backend="auto"``:
serial for a short job, threads for the native kernels, which are marked as releasing the
GIL, processes for the twins) and the blocks, and puts array results in place: views of
the result on threads, shared memory on processes, by value from another machine.

- A native block running on a thread cannot be interrupted: after Ctrl-C or an error,
  blocks already running finish in the background, writing into an array that only they
  still reference. Worker processes are stopped by the pool on Ctrl-C.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from allcores import _kernel_blocks as tasks
from allcores import _validate as check
from allcores import blocks, pure
from allcores._options import backend_option, workers_option
from allcores._types import BackendChoice, KernelImpl

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
    # The mod-30 wheel sieve: 0.05-0.1 ns below 10**9, 0.3-0.7 ns near 10**12 (more for
    # narrower ranges: preparing the sieving primes weighs more); Miller-Rabin survivors
    # (the weight below) ~40 ns a number.
    "count_primes": KernelCost("number in [lo, hi)", 0.25, 50.0),
    # Montgomery Miller-Rabin: ~58 ns for random 63-bit values (it was 150 ns before).
    "is_prime": KernelCost("value (random 64-bit)", 60.0, 3000.0),
    # 15 ns with the AVX2 shuffle loop, 49 ns portable (n = 11); 30 is within 2x of both.
    "fannkuch": KernelCost("permutation", 30.0, 850.0),
    # Vectorized: 0.9 ns with AVX-512, 2.3 with AVX2, 3.1 baseline; 1.5 is within 2x of
    # the first two, the CPUs this runs on.
    "monte_carlo_pi": KernelCost("sample", 1.5, 1060.0),
}

# count_primes sieves with the primes up to min(sqrt(hi), ~the range's width) (at least
# pure.MIN_BASE, at most pure.MAX_BASE): when they do not reach sqrt(hi), survivors need a
# Miller-Rabin test and a number costs 30-60 times more (measured: 1.5 -> 65-100 ns).
PRIME_MILLER_RABIN_WEIGHT = 50
# In that regime a block this wide keeps its survivors within ~1.2x of a wider range's
# (survivors ~ 1 / ln(sieve limit), and ln 2**20 / ln 2**24 = 0.83).
PRIME_MILLER_RABIN_MIN_BLOCK = 1 << 20


def seconds_per(kernel: str, impl: str, units: float = 1.0) -> float:
    """Estimated seconds for ``units`` of ``kernel``'s work (its ``KERNEL_COSTS`` unit)."""
    cost = KERNEL_COSTS[kernel]
    return units * (cost.native_ns if impl == "native" else cost.python_ns) * 1e-9


def _task(kernel: str, impl: str):
    """The block function of ``kernel`` in ``impl`` (looked up at each call)."""
    return getattr(tasks, f"{kernel}_{impl}")


def _parallel_options(workers: object, backend: object) -> tuple[int | None, str]:
    return workers_option(workers), backend_option(backend)


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
        ``"auto"``: as ``allcores.blocks`` decides: serially for a job estimated
        shorter than a few milliseconds, else on threads for the native kernels (they
        release the GIL) and on processes for the pure-Python twins.

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

    return blocks.fill(
        _task("mandelbrot", impl), (height, width), np.uint32,
        args=(height, max_iter, xmin, xmax, ymin, ymax),
        cost=seconds_per("mandelbrot", impl, width * (max_iter + 1)),
        workers=workers, backend=backend)


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
    return blocks.reduce(_task("count_primes", impl), lo, hi, min_block=min_width,
                         cost=seconds_per("count_primes", impl, work / (hi - lo)),
                         workers=workers, backend=backend)


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

    flags = blocks.fill(_task("is_prime", impl), flat.size, bool,
                        args=(blocks.sliced(flat),), cost=seconds_per("is_prime", impl),
                        workers=workers, backend=backend)
    return flags.reshape(numbers.shape)


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
    result: tuple[int, int] = blocks.reduce(
        _task("fannkuch", impl), 0, permutations, args=(n,),
        combine=tasks.fannkuch_combine, cost=seconds_per("fannkuch", impl),
        workers=workers, backend=backend)
    return result


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
    hits: int = blocks.reduce(_task("monte_carlo_pi", impl), 0, samples, args=(seed,),
                              cost=seconds_per("monte_carlo_pi", impl),
                              workers=workers, backend=backend)
    return 4 * hits / samples
