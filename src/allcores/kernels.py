"""Five compute kernels that use every core: Python values in, fresh results out.

Each is one call, exact, and fast: compiled C that runs with the GIL released, split
into blocks that run on all the CPUs this process may use.

- :func:`mandelbrot`: escape counts of an image of the Mandelbrot set (``uint32``);
- :func:`count_primes`: the number of primes in ``[lo, hi)``, up to ``2**64``;
- :func:`is_prime`: whether each of many 64-bit integers is prime (``bool`` array);
- :func:`fannkuch`: the Benchmarks Game's fannkuch-redux ``(checksum, max_flips)``;
- :func:`monte_carlo_pi`: pi estimated from a seeded SplitMix64 stream of points.

**Native or pure Python** (``impl=``). ``impl="native"``, the default, runs the compiled
kernels of :mod:`allcores.native`; ``impl="python"`` runs their pure-Python twins in
:mod:`allcores.pure`, plain loops 20 to 700 times slower, the reference the native code
is tested against. Both give the same answer for every input (bit for bit for
``mandelbrot``: the build forbids fused multiply-add) and raise the same errors.

**Workers and backends** (``workers=``, ``backend=``). ``workers=None`` (the default)
means :func:`allcores.cpu_count`, the CPUs this process may use (affinity mask, cgroup
quota, ``ALLCORES_WORKERS``); an integer ``>= 1`` caps the workers. ``backend="auto"``
(the default) decides from each kernel's cost model, before anything runs: a job
estimated at a few milliseconds runs serially in the caller (sharing it would cost more
than it saves); a native kernel runs on threads, which write straight into the result
with nothing copied; a pure twin runs on worker processes (it holds the GIL), which
write array results through shared memory. ``"thread"``, ``"process"``, ``"serial"`` or
``"dask"`` (a Dask cluster: the ``dask`` extra) force one; the environment variable
``ALLCORES_BACKEND``, when set, replaces ``"auto"``; a kernel called from inside an
allcores worker runs serially.

**Blocks.** The job is cut into blocks whose results combine exactly, so the answer
never depends on ``workers`` or ``backend``, only the time does: rows of the image
(``mandelbrot``), slices of the values (``is_prime``), sub-ranges whose counts add up
(``count_primes``), ranges of permutation indices (``fannkuch``: checksums add up, the
largest flip count wins) and of sample indices (``monte_carlo_pi``: hits add up). There
are about 8 blocks per worker, so that the last ones to finish are short, and each is a
few milliseconds of work or more, so that handing it out costs little. The per-block
functions are public, in :mod:`allcores.native` and :mod:`allcores.pure`; so is the
block machinery, for kernels of your own: :mod:`allcores.blocks`.

**Instruction sets.** ``mandelbrot`` and ``monte_carlo_pi`` are compiled for several
x86-64 instruction sets (``"scalar"``, ``"baseline"``, ``"avx2"``, ``"avx512"``) and
``fannkuch`` has a portable loop and an AVX2 one; each runs with the fastest variant
this CPU supports, chosen at import, so one wheel serves every machine. Every variant
gives exactly the same results. :func:`allcores.native.available_isas` lists the ones
available here, ``allcores.native.mandelbrot_isa()`` (and ``monte_carlo_isa``,
``fannkuch_isa``) says which one runs, ``set_mandelbrot_isa(name)`` (and the others)
chooses one, and the environment variable ``ALLCORES_ISA`` (one of those names, or
``"auto"``) sets all three at import, for comparisons and tests (a value that cannot be
used is ignored with a ``RuntimeWarning`` naming the variable).

Notes
-----
Arguments are checked before anything starts, in the caller: a wrong type (a bool,
float or string where an integer belongs) raises ``TypeError``, a value out of range
``ValueError``, each message naming the argument, what was expected and what was got.

A native block running on a thread cannot be interrupted: after Ctrl-C, or when another
block fails, blocks already running finish in the background (writing into an array
that only they still reference) while the exception reaches the caller. Worker
processes are stopped by their pool.

Examples
--------
>>> from allcores import kernels
>>> kernels.count_primes(0, 100)
25
>>> kernels.count_primes(0, 100, impl="python", backend="serial")
25
>>> kernels.is_prime([2, 4, 97])
array([ True, False,  True])
>>> kernels.fannkuch(7)
(228, 16)
>>> image = kernels.mandelbrot(64, 48, max_iter=100, workers=2)
>>> image.shape, image.dtype
((48, 64), dtype('uint32'))
>>> bool((image == kernels.mandelbrot(64, 48, max_iter=100, impl="python")).all())
True
"""

# How a kernel runs (for maintainers): each function below validates its arguments
# (allcores._validate; nothing has started yet), estimates its seconds per index from
# the cost model (KERNEL_COSTS: no probe, the plan is known up front) and calls
# blocks.fill (mandelbrot's rows, is_prime's flags) or blocks.reduce (count_primes,
# fannkuch, monte_carlo_pi) with its block function from allcores._kernel_blocks, as a
# user's own kernel would. The block API chooses the backend and the blocks (the
# *_native block functions are marked nogil, so "auto" gives them threads) and puts
# array results in place: views of the result on threads, shared memory on processes,
# by value from another machine.

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
    """A kernel's unit of work and what one unit costs, natively and in pure Python."""

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

    Pixel ``(y, x)`` samples the point
    ``c = xmin + x * (xmax - xmin) / width + 1j * (ymin + y * (ymax - ymin) / height)``
    and counts the iterations ``z = z * z + c`` (from ``z = 0``) before ``|z| > 2``, at
    most ``max_iter``: a pixel whose count is ``max_iter`` is taken to be in the set.

    Parameters
    ----------
    width, height : int
        Image size in pixels (``0 <= width, height <= 2**53``).
    max_iter : int, optional
        Iterations per pixel at most (``1 <= max_iter < 2**32``); default 256.
    bounds : tuple of 4 floats, optional
        ``(xmin, xmax, ymin, ymax)``, the region of the complex plane, with
        ``xmin < xmax`` and ``ymin < ymax``, all finite; default ``(-2.0, 1.0, -1.5,
        1.5)``, the whole set.
    impl : {"native", "python"}, optional
        ``"native"`` (the default): the compiled kernel, which runs with the GIL
        released; ``"python"``: its pure-Python twin in :mod:`allcores.pure`, much
        slower, same result.
    workers : int, optional
        The most workers to use (``>= 1``); default ``None``: :func:`allcores.cpu_count`,
        the CPUs this process may use.
    backend : {"auto", "thread", "process", "serial", "dask"}, optional
        Where the blocks run. ``"auto"`` (the default) decides before anything runs,
        from the kernel's estimated cost: serially in the caller for a job of a few
        milliseconds, else on threads for ``impl="native"`` and on worker processes for
        ``impl="python"``; ``ALLCORES_BACKEND``, when set, replaces it. The other names
        force a backend (``"dask"``: a Dask cluster, with the ``dask`` extra). Called
        from inside an allcores worker, a kernel runs serially whatever is asked.

    Returns
    -------
    numpy.ndarray
        A new ``uint32`` array of shape ``(height, width)``: row ``y``, column ``x``.

    Raises
    ------
    TypeError
        ``width``, ``height`` or ``max_iter`` is not an integer (a bool, float or
        string), a bound is not a real number, or ``workers`` is not an integer.
    ValueError
        An argument is out of range, ``bounds`` is not four numbers, ``workers < 1``,
        or ``impl`` or ``backend`` is not one of its names.
    MemoryError
        Before anything is allocated, when the image (4 bytes a pixel) is larger than
        this machine's physical memory.

    Notes
    -----
    The image is cut into blocks of rows. On threads and serially each block writes its
    rows of the result in place; on worker processes it writes them through shared
    memory. Rows near the set cost far more than rows far from it, hence about 8 blocks
    per worker, so that the last ones to finish are short. The twins agree bit for bit.
    The answer never depends on ``impl``, ``workers`` or ``backend``: the blocks'
    results combine exactly.

    Examples
    --------
    >>> from allcores import kernels
    >>> kernels.mandelbrot(8, 4, max_iter=50)
    array([[ 0,  0,  1,  1,  1,  1,  1,  1],
           [ 0,  2,  2,  3,  5, 50,  4,  2],
           [50, 50, 50, 50, 50, 50, 50,  3],
           [ 0,  2,  2,  3,  5, 50,  4,  2]], dtype=uint32)
    >>> image = kernels.mandelbrot(320, 240, max_iter=100, workers=2, backend="thread")
    >>> image.shape, image.dtype, int(image.max())
    ((240, 320), dtype('uint32'), 100)
    >>> zoom = (-0.75, -0.74, 0.1, 0.11)
    >>> bool((kernels.mandelbrot(16, 16, bounds=zoom, impl="python")
    ...       == kernels.mandelbrot(16, 16, bounds=zoom)).all())
    True
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
    """The number of primes ``p`` with ``lo <= p < hi``.

    Parameters
    ----------
    lo, hi : int
        The range, ``0 <= lo <= hi <= 2**64``.
    impl : {"native", "python"}, optional
        ``"native"`` (the default): the compiled kernel, which runs with the GIL
        released; ``"python"``: its pure-Python twin in :mod:`allcores.pure`, much
        slower, same result.
    workers : int, optional
        The most workers to use (``>= 1``); default ``None``: :func:`allcores.cpu_count`,
        the CPUs this process may use.
    backend : {"auto", "thread", "process", "serial", "dask"}, optional
        Where the blocks run. ``"auto"`` (the default) decides before anything runs,
        from the kernel's estimated cost: serially in the caller for a job of a few
        milliseconds, else on threads for ``impl="native"`` and on worker processes for
        ``impl="python"``; ``ALLCORES_BACKEND``, when set, replaces it. The other names
        force a backend (``"dask"``: a Dask cluster, with the ``dask`` extra). Called
        from inside an allcores worker, a kernel runs serially whatever is asked.

    Returns
    -------
    int
        How many primes ``[lo, hi)`` holds (0 for an empty range).

    Raises
    ------
    TypeError
        ``lo``, ``hi`` or ``workers`` is not an integer (a bool, float or string).
    ValueError
        ``lo < 0``, ``hi > 2**64`` or ``lo > hi``, ``workers < 1``, or ``impl`` or
        ``backend`` is not one of its names.

    Notes
    -----
    A segmented sieve of Eratosthenes (one bit per odd number, in cache-sized
    segments), with an exact Miller-Rabin test for the numbers above the sieve's reach
    (near ``2**64``). The range is cut into sub-ranges whose counts add up, each wide
    enough for its own sieve. The answer never depends on ``impl``, ``workers`` or
    ``backend``: the blocks' results combine exactly.

    Examples
    --------
    >>> from allcores import kernels
    >>> kernels.count_primes(0, 100)
    25
    >>> kernels.count_primes(0, 10**6, workers=2, backend="thread")
    78498
    >>> kernels.count_primes(2**64 - 100, 2**64)
    3
    >>> kernels.count_primes(0, 10**4, impl="python")
    1229
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
    """Whether each value is prime, exactly, for any 64-bit unsigned integer.

    Parameters
    ----------
    values : int, list of int, or integer numpy.ndarray
        The numbers to test: an int, a (nested) list of ints or an integer array of any
        shape, each value in ``0 <= v < 2**64``.
    impl : {"native", "python"}, optional
        ``"native"`` (the default): the compiled kernel, which runs with the GIL
        released; ``"python"``: its pure-Python twin in :mod:`allcores.pure`, much
        slower, same result.
    workers : int, optional
        The most workers to use (``>= 1``); default ``None``: :func:`allcores.cpu_count`,
        the CPUs this process may use.
    backend : {"auto", "thread", "process", "serial", "dask"}, optional
        Where the blocks run. ``"auto"`` (the default) decides before anything runs,
        from the kernel's estimated cost: serially in the caller for a job of a few
        milliseconds, else on threads for ``impl="native"`` and on worker processes for
        ``impl="python"``; ``ALLCORES_BACKEND``, when set, replaces it. The other names
        force a backend (``"dask"``: a Dask cluster, with the ``dask`` extra). Called
        from inside an allcores worker, a kernel runs serially whatever is asked.

    Returns
    -------
    numpy.ndarray
        A new ``bool`` array of the shape of ``values`` (0-d for a single int).

    Raises
    ------
    TypeError
        A value is not an integer (a bool, float, string or None, or an array of a
        float or bool dtype), or ``workers`` is not an integer.
    ValueError
        A value is negative or ``>= 2**64``, ``workers < 1``, or ``impl`` or
        ``backend`` is not one of its names.

    Notes
    -----
    A deterministic Miller-Rabin test after trial division by small primes: exact, not
    probabilistic, for every value below ``2**64``. The values are flattened and cut
    into slices; each block writes the flags of its slice. The answer never depends on
    ``impl``, ``workers`` or ``backend``: the blocks' results combine exactly.

    Examples
    --------
    >>> from allcores import kernels
    >>> kernels.is_prime([2, 4, 97])
    array([ True, False,  True])
    >>> kernels.is_prime([[2**61 - 1, 2**64 - 59], [2**64 - 1, 1]])
    array([[ True,  True],
           [False, False]])
    >>> import numpy as np
    >>> int(kernels.is_prime(np.arange(10**5), workers=2).sum())
    9592
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
    """Fannkuch-redux of the Benchmarks Game for ``n`` elements: ``(checksum, max_flips)``.

    For each permutation of ``0 .. n - 1`` (in the benchmark's order), flip the first
    ``p[0] + 1`` elements until ``0`` comes first; ``max_flips`` is the most flips any
    permutation needs, ``checksum`` the alternating sum of the flip counts (``+`` for
    even permutation indices, ``-`` for odd ones).

    Parameters
    ----------
    n : int
        The number of elements, ``1 <= n <= 12`` (``n!`` permutations: 479,001,600 for
        12).
    impl : {"native", "python"}, optional
        ``"native"`` (the default): the compiled kernel, which runs with the GIL
        released; ``"python"``: its pure-Python twin in :mod:`allcores.pure`, much
        slower, same result.
    workers : int, optional
        The most workers to use (``>= 1``); default ``None``: :func:`allcores.cpu_count`,
        the CPUs this process may use.
    backend : {"auto", "thread", "process", "serial", "dask"}, optional
        Where the blocks run. ``"auto"`` (the default) decides before anything runs,
        from the kernel's estimated cost: serially in the caller for a job of a few
        milliseconds, else on threads for ``impl="native"`` and on worker processes for
        ``impl="python"``; ``ALLCORES_BACKEND``, when set, replaces it. The other names
        force a backend (``"dask"``: a Dask cluster, with the ``dask`` extra). Called
        from inside an allcores worker, a kernel runs serially whatever is asked.

    Returns
    -------
    tuple of (int, int)
        ``(checksum, max_flips)``, the benchmark's published answer.

    Raises
    ------
    TypeError
        ``n`` or ``workers`` is not an integer (a bool, float or string).
    ValueError
        ``n < 1`` or ``n > 12``, ``workers < 1``, or ``impl`` or ``backend`` is not
        one of its names.

    Notes
    -----
    Each block runs a range of permutation indices, starting from its first
    permutation built from its index; the blocks' checksums add up and the largest
    flip count wins. The answer never depends on ``impl``, ``workers`` or ``backend``: the blocks'
    results combine exactly.

    Examples
    --------
    >>> from allcores import kernels
    >>> kernels.fannkuch(7)
    (228, 16)
    >>> kernels.fannkuch(9, workers=2)
    (8629, 30)
    >>> kernels.fannkuch(7, impl="python")
    (228, 16)
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
    """Estimate pi as ``4 * hits / samples`` from ``samples`` pseudo-random points.

    Sample ``i`` is the point ``(u(2 * i), u(2 * i + 1))`` of the unit square, where
    ``u(k)`` is the ``k``-th uniform double of the SplitMix64 stream of ``seed``; a hit
    is a point inside the quarter-circle ``x * x + y * y < 1``.

    Parameters
    ----------
    samples : int
        How many points, ``1 <= samples <= 2**63``.
    seed : int, optional
        The stream, ``0 <= seed < 2**64``; default 0.
    impl : {"native", "python"}, optional
        ``"native"`` (the default): the compiled kernel, which runs with the GIL
        released; ``"python"``: its pure-Python twin in :mod:`allcores.pure`, much
        slower, same result.
    workers : int, optional
        The most workers to use (``>= 1``); default ``None``: :func:`allcores.cpu_count`,
        the CPUs this process may use.
    backend : {"auto", "thread", "process", "serial", "dask"}, optional
        Where the blocks run. ``"auto"`` (the default) decides before anything runs,
        from the kernel's estimated cost: serially in the caller for a job of a few
        milliseconds, else on threads for ``impl="native"`` and on worker processes for
        ``impl="python"``; ``ALLCORES_BACKEND``, when set, replaces it. The other names
        force a backend (``"dask"``: a Dask cluster, with the ``dask`` extra). Called
        from inside an allcores worker, a kernel runs serially whatever is asked.

    Returns
    -------
    float
        ``4 * hits / samples``.

    Raises
    ------
    TypeError
        ``samples``, ``seed`` or ``workers`` is not an integer (a bool, float or
        string).
    ValueError
        ``samples`` or ``seed`` is out of range, ``workers < 1``, or ``impl`` or
        ``backend`` is not one of its names.

    Notes
    -----
    Any sample can be computed from its index alone, so blocks of sample indices run
    anywhere and their hits add up: the estimate depends only on ``samples`` and
    ``seed``, never on ``impl``, ``workers`` or ``backend``. The error shrinks as
    ``1 / sqrt(samples)``.

    Examples
    --------
    >>> from allcores import kernels
    >>> kernels.monte_carlo_pi(10_000, seed=1)
    3.1548
    >>> kernels.monte_carlo_pi(10**6, seed=1, workers=2)
    3.138764
    >>> kernels.monte_carlo_pi(10_000, seed=1, impl="python")
    3.1548
    """
    impl = check.impl_name(impl)
    samples = check.integer("samples", samples, min=1, max=check.MAX_SAMPLE_INDEX)
    seed = check.integer("seed", seed, min=0, max=check.UINT64_LIMIT - 1)
    workers, backend = _parallel_options(workers, backend)
    hits: int = blocks.reduce(_task("monte_carlo_pi", impl), 0, samples, args=(seed,),
                              cost=seconds_per("monte_carlo_pi", impl),
                              workers=workers, backend=backend)
    return 4 * hits / samples
