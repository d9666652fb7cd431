# cython: language_level=3, embedsignature=False, autotestdict=False
# help() shows the signatures already (embedded, they showed twice) and doctest finds
# the examples in the functions themselves (a __test__ table would list them in help()).
"""The compiled kernels, one block at a time, with the GIL released.

These are the per-block functions that :mod:`allcores.kernels` spreads over every core.
Call them yourself to run one block in the calling thread (from your own threads, or
as the block function of :func:`allcores.blocks.fill` or :func:`allcores.blocks.reduce`).
Each takes explicit bounds, so any split of the work gives the same total, and each has
a pure-Python twin of the same name and signature in :mod:`allcores.pure` that gives the
same result and raises the same errors:

- ``mandelbrot_rows(out, first_row, height, max_iter, xmin, xmax, ymin, ymax)``: rows of
  a Mandelbrot image, written into ``out``;
- ``count_primes_range(lo, hi)``: the number of primes in ``[lo, hi)``;
- ``is_prime_array(values, out)``: ``out[i] = values[i] is prime``;
- ``fannkuch_block(n, start, stop)``: fannkuch-redux over permutations
  ``[start, stop)``;
- ``monte_carlo_hits(seed, start, stop)``: SplitMix64 samples ``[start, stop)`` inside
  the unit quarter-circle.

**Instruction sets.** ``mandelbrot_rows``, ``monte_carlo_hits`` and ``fannkuch_block``
come in variants for several x86-64 instruction sets, named in ``ISA_NAMES`` (a dict,
slowest first): ``"scalar"`` (one item at a time: the yardstick), ``"baseline"`` (several
items in flight with what every x86-64 has), ``"avx2"`` and ``"avx512"``. Each kernel
runs with the fastest variant this CPU supports, chosen at import; every variant gives
exactly the same results. :func:`available_isas` lists the variants this machine can
run; :func:`mandelbrot_isa`, :func:`monte_carlo_isa` and :func:`fannkuch_isa` say which
one each kernel runs with; :func:`set_mandelbrot_isa`, :func:`set_monte_carlo_isa` and
:func:`set_fannkuch_isa` choose one. The environment variable named by ``ISA_ENV``,
``ALLCORES_ISA``, set to one of those names (or ``"auto"``), chooses it for all three
kernels at import, in every process; a value that cannot be used is ignored with a
``RuntimeWarning`` that names the variable and its values. :func:`build_info` says how
this module was compiled. Other compilers and architectures get the portable variants only.

Notes
-----
Each function checks its arguments with the GIL held: a wrong type raises ``TypeError``,
a value out of range or an unusable array ``ValueError``, with the message its twin in
:mod:`allcores.pure` gives. Then it runs its whole loop in one ``with nogil:`` block, so
threads run these kernels truly in parallel. A call cannot be interrupted once its loop
has started: Ctrl-C takes effect when it returns.

Arrays must be aligned, C-contiguous and of the stated dtype, and are judged by their
memory (numpy's own shape and strides), never by what an ndarray subclass says of
itself; an ``out`` that shares memory with an input is refused.

Examples
--------
>>> import numpy as np
>>> from allcores import native, pure
>>> native.count_primes_range(0, 100)
25
>>> native.fannkuch_block(7, 0, 5040) == pure.fannkuch_block(7, 0, 5040)
True
>>> native.available_isas()[:2]
['scalar', 'baseline']
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import os
import warnings

import numpy as np

from allcores import _validate as check

cdef extern from "arith.h" nogil:
    uint64_t ac_isqrt64(uint64_t n)
    double ac_uniform(uint64_t seed, uint64_t k)


# ---------------------------------------------------------------------------------------
# mandelbrot

cdef extern from "mandelbrot.h" nogil:
    int AC_ISA_SCALAR, AC_ISA_BASELINE, AC_ISA_AVX2, AC_ISA_AVX512
    int ac_isa_available(int isa)
    int ac_mandelbrot_best_isa()
    void ac_mandelbrot_rows_isa(int isa, uint32_t *out, int64_t rows, int64_t width,
                                int64_t first_row, int64_t height, uint32_t max_iter,
                                double xmin, double xmax, double ymin, double ymax)

# Instruction sets for the kernels with variants (mandelbrot, monte_carlo, fannkuch),
# fastest last.
# "scalar" is the straightforward one-item loop (kept as the yardstick); the others keep
# several items in flight (see mandelbrot.h, monte_carlo.h), "baseline" with what every
# x86-64 has. Each kernel has its own choice; ALLCORES_ISA forces one for all of them.
ISA_NAMES = {"scalar": AC_ISA_SCALAR, "baseline": AC_ISA_BASELINE, "avx2": AC_ISA_AVX2,
             "avx512": AC_ISA_AVX512}
ISA_ENV = "ALLCORES_ISA"

cdef extern from "fannkuch.h" nogil:
    int ac_fannkuch_best_isa()

# Each kernel's fastest instruction set here, found at import ("auto"), and the one it
# runs with (read by the kernel at each call, before it lets go of the GIL).
_BEST_ISA = {"mandelbrot": ac_mandelbrot_best_isa(),
             "monte_carlo": ac_mandelbrot_best_isa(),
             "fannkuch": ac_fannkuch_best_isa()}
_isa = dict(_BEST_ISA)


def available_isas():
    """The instruction sets this build and this CPU can run, slowest first.

    Returns
    -------
    list of str
        Names from ``ISA_NAMES``: ``"scalar"`` and ``"baseline"`` everywhere, then
        ``"avx2"`` and ``"avx512"`` (AVX-512 F, DQ and VL) where this is an x86-64
        build and the CPU has them. Any of these names may be passed to
        :func:`set_mandelbrot_isa`, :func:`set_monte_carlo_isa`,
        :func:`set_fannkuch_isa` and ``ALLCORES_ISA``.

    Examples
    --------
    >>> from allcores import native
    >>> native.available_isas()[:2]
    ['scalar', 'baseline']
    >>> native.mandelbrot_isa() in native.available_isas()
    True
    """
    return [name for name, isa in ISA_NAMES.items() if ac_isa_available(isa)]


def _isa_name(int isa):
    return next(name for name, number in ISA_NAMES.items() if number == isa)


def _set_isa(kernel, name):
    """Run ``kernel`` with instruction set ``name`` (see :func:`available_isas`), or the
    fastest for it with ``"auto"``."""
    _isa[kernel] = _resolve_isa(kernel, name)


def _isa_problem(name):
    """What makes ``name`` unusable as an instruction set here, or None: the one check
    behind ``set_*_isa``, ``ALLCORES_ISA`` and ``allcores info``."""
    if name == "auto":
        return None
    if name not in ISA_NAMES:
        return f"expected one of {', '.join(ISA_NAMES)} or auto, got: {name!r}"
    if not ac_isa_available(ISA_NAMES[name]):
        return (f"{name!r} is not available on this CPU; available: "
                f"{', '.join(available_isas())} or auto")
    return None


def _resolve_isa(kernel, name):
    """The number of instruction set ``name``, or of ``kernel``'s fastest for ``"auto"``."""
    problem = _isa_problem(name)
    if problem is not None:
        raise ValueError(f"isa: {problem}")
    return _BEST_ISA[kernel] if name == "auto" else ISA_NAMES[name]


def mandelbrot_isa():
    """The instruction set :func:`mandelbrot_rows` runs with now.

    Returns
    -------
    str
        One of :func:`available_isas`: the fastest for it unless
        :func:`set_mandelbrot_isa` or ``ALLCORES_ISA`` chose another.

    Examples
    --------
    >>> from allcores import native
    >>> native.mandelbrot_isa() in native.available_isas()
    True
    """
    return _isa_name(_isa["mandelbrot"])


def set_mandelbrot_isa(name):
    """Run :func:`mandelbrot_rows` with instruction set ``name`` from now on.

    Parameters
    ----------
    name : str
        One of :func:`available_isas`, or ``"auto"``: the fastest available, as at
        import.

    Raises
    ------
    ValueError
        ``name`` is neither ``"auto"`` nor one of ``ISA_NAMES``, or this CPU cannot
        run it (it is not in :func:`available_isas`).

    Notes
    -----
    Results never depend on the instruction set, only the speed: this is for
    comparisons and tests. The choice holds for this process, for calls that start
    after it; the environment variable ``ALLCORES_ISA`` makes the same choice in
    every process that imports allcores (worker processes included).

    Examples
    --------
    >>> import numpy as np
    >>> from allcores import native
    >>> fast = np.zeros((4, 8), dtype=np.uint32)
    >>> native.mandelbrot_rows(fast, 0, 4, 50, -2.0, 1.0, -1.5, 1.5)
    >>> native.set_mandelbrot_isa("scalar")
    >>> native.mandelbrot_isa()
    'scalar'
    >>> plain = np.zeros((4, 8), dtype=np.uint32)
    >>> native.mandelbrot_rows(plain, 0, 4, 50, -2.0, 1.0, -1.5, 1.5)
    >>> native.set_mandelbrot_isa("auto")
    >>> bool((plain == fast).all())
    True
    """
    _set_isa("mandelbrot", name)


def monte_carlo_isa():
    """The instruction set :func:`monte_carlo_hits` runs with now.

    Returns
    -------
    str
        One of :func:`available_isas`: the fastest for it unless
        :func:`set_monte_carlo_isa` or ``ALLCORES_ISA`` chose another.

    Examples
    --------
    >>> from allcores import native
    >>> native.monte_carlo_isa() in native.available_isas()
    True
    """
    return _isa_name(_isa["monte_carlo"])


def set_monte_carlo_isa(name):
    """Run :func:`monte_carlo_hits` with instruction set ``name`` from now on.

    Parameters
    ----------
    name : str
        One of :func:`available_isas`, or ``"auto"``: the fastest available, as at
        import.

    Raises
    ------
    ValueError
        ``name`` is neither ``"auto"`` nor one of ``ISA_NAMES``, or this CPU cannot
        run it (it is not in :func:`available_isas`).

    Notes
    -----
    Results never depend on the instruction set, only the speed: this is for
    comparisons and tests. The choice holds for this process, for calls that start
    after it; the environment variable ``ALLCORES_ISA`` makes the same choice in
    every process that imports allcores (worker processes included).

    Examples
    --------
    >>> from allcores import native
    >>> native.set_monte_carlo_isa("baseline")
    >>> native.monte_carlo_isa()
    'baseline'
    >>> native.monte_carlo_hits(1, 0, 10_000)
    7887
    >>> native.set_monte_carlo_isa("auto")
    >>> native.monte_carlo_hits(1, 0, 10_000)
    7887
    """
    _set_isa("monte_carlo", name)


def mandelbrot_rows(out, first_row, height, max_iter, xmin, xmax, ymin, ymax):
    """Write the escape counts of some rows of a Mandelbrot image into ``out``.

    ``out[r, x]`` gets the count of pixel ``(first_row + r, x)`` of a ``width x height``
    image of the region ``[xmin, xmax) x [ymin, ymax)`` (``width`` is
    ``out.shape[1]``): the number of iterations ``z = z * z + c`` from ``z = 0`` before
    ``|z| > 2``, at most ``max_iter``, where ``c = xmin + x * (xmax - xmin) / width +
    1j * (ymin + (first_row + r) * (ymax - ymin) / height)``.

    Parameters
    ----------
    out : numpy.ndarray
        The rows to fill: ``uint32`` of shape ``(rows, width)``, writeable,
        C-contiguous and aligned; it is judged by its memory (numpy's own shape and
        strides), never by what an ndarray subclass says of itself.
    first_row : int
        The image row that ``out[0]`` holds; ``first_row + rows <= height``.
    height : int
        The whole image's height in rows, ``0 <= height <= 2**53``.
    max_iter : int
        Iterations per pixel at most, ``1 <= max_iter < 2**32``.
    xmin, xmax, ymin, ymax : float
        The region of the complex plane: finite, ``xmin < xmax`` and ``ymin < ymax``.

    Raises
    ------
    TypeError
        ``out`` is not a numpy array; ``first_row``, ``height`` or ``max_iter`` is not
        an integer (a bool, float or string); or a bound is not a real number.
    ValueError
        ``out`` is not a writeable, aligned, C-contiguous 2-D ``uint32`` array, a value
        is out of range, or ``first_row + rows > height``.

    Notes
    -----
    The arguments are checked with the GIL held; then the whole loop runs with the GIL
    released, so threads filling different rows of one image run truly in parallel. It
    keeps 16 pixels in flight, vectorised for the instruction set of
    :func:`mandelbrot_isa`. Every instruction set gives exactly the same counts, and so
    does the pure twin :func:`allcores.pure.mandelbrot_rows` (the build forbids fused
    multiply-add).

    Examples
    --------
    Rows 1 and 2 of an 8 x 4 image of the whole set:

    >>> import numpy as np
    >>> from allcores import native
    >>> out = np.zeros((2, 8), dtype=np.uint32)
    >>> native.mandelbrot_rows(out, 1, 4, 50, -2.0, 1.0, -1.5, 1.5)
    >>> out
    array([[ 0,  2,  2,  3,  5, 50,  4,  2],
           [50, 50, 50, 50, 50, 50, 50,  3]], dtype=uint32)
    """
    out, first_row, height, max_iter, xmin, xmax, ymin, ymax = check.mandelbrot_rows_args(
        out, first_row, height, max_iter, xmin, xmax, ymin, ymax)
    cdef uint32_t[:, ::1] view = out
    cdef int64_t rows = view.shape[0], width = view.shape[1]
    cdef int64_t c_first_row = first_row, c_height = height
    cdef uint32_t c_max_iter = max_iter
    cdef double c_xmin = xmin, c_xmax = xmax, c_ymin = ymin, c_ymax = ymax
    cdef int isa = _isa["mandelbrot"]
    # The C loop writes rows * width values from &view[0, 0]: the buffer's own shape.
    if rows != out.shape[0] or width != out.shape[1]:
        raise ValueError(f"out: expected a buffer of shape {out.shape}, got: "
                         f"({rows}, {width})")
    if rows == 0 or width == 0:
        return
    with nogil:
        ac_mandelbrot_rows_isa(isa, &view[0, 0], rows, width, c_first_row, c_height,
                               c_max_iter, c_xmin, c_xmax, c_ymin, c_ymax)


# ---------------------------------------------------------------------------------------
# primes

# The arithmetic (a cheap trial-division prefilter, then deterministic Miller-Rabin with
# Montgomery multiplication) lives in primality.h; see its header comment.
cdef extern from "primality.h" nogil:
    void ac_is_prime64_array(const uint64_t *values, uint8_t *out, int64_t count)
    int ac_miller_rabin64(uint64_t n)   # odd n > 3


def is_prime_array(values, out):
    """Set ``out[i]`` to whether ``values[i]`` is prime, exactly, for any 64-bit value.

    Parameters
    ----------
    values : numpy.ndarray
        The numbers: 1-D ``uint64``, C-contiguous and aligned.
    out : numpy.ndarray
        The flags: 1-D ``bool`` (or ``uint8``: 1 for a prime) of the same length as
        ``values``, writeable, C-contiguous and aligned, sharing no memory with
        ``values``. Both arrays are judged by their memory (numpy's own shape and
        strides), never by what an ndarray subclass says of itself.

    Raises
    ------
    TypeError
        ``values`` or ``out`` is not a numpy array.
    ValueError
        A wrong dtype, number of dimensions or memory layout, lengths that differ, or an
        ``out`` that overlaps ``values``.

    Notes
    -----
    Trial division by small primes, then a deterministic Miller-Rabin test with
    Montgomery multiplication, four numbers in flight: exact, never probabilistic. The
    arguments are checked with the GIL held; then the whole loop runs with the GIL
    released. The pure twin :func:`allcores.pure.is_prime_array` gives the same flags.

    Examples
    --------
    >>> import numpy as np
    >>> from allcores import native
    >>> values = np.array([2, 4, 97, 2**64 - 59], dtype=np.uint64)
    >>> flags = np.empty(4, dtype=bool)
    >>> native.is_prime_array(values, flags)
    >>> flags
    array([ True, False,  True,  True])
    """
    values, out = check.is_prime_array_args(values, out)
    cdef const uint64_t[::1] v = values
    cdef uint8_t[::1] flags = out.view(np.uint8)
    # The loop writes flags[0 .. v.shape[0] - 1] unchecked (boundscheck is off): the
    # buffers themselves, not only the validated arrays, must agree.
    if flags.shape[0] != v.shape[0]:
        raise ValueError(f"values and out: expected the same length, got: "
                         f"{v.shape[0]} and {flags.shape[0]}")
    if v.shape[0] == 0:
        return
    with nogil:
        ac_is_prime64_array(&v[0], &flags[0], v.shape[0])


# The segmented sieve (a mod-30 wheel: a bit per number coprime to 30, presieved
# patterns, popcount) lives in sieve.h; see its header comment. Sieving primes (base
# primes) go up to sqrt(b), but never beyond MAX_BASE (1M primes, 12 MiB of state) nor
# much beyond the window's width, since preparing each base prime costs a division:
# survivors above (L+1)**2 are then confirmed by Miller-Rabin. allcores.kernels._prime_work
# relies on this choice.
cdef extern from "sieve.h" nogil:
    int64_t ac_count_odd_primes(uint64_t a, uint64_t b, uint64_t limit)

cdef uint64_t MIN_BASE = 1 << 16
cdef uint64_t MAX_BASE = 1 << 24


cdef int64_t _count_odd_primes(uint64_t a, uint64_t b) noexcept nogil:
    """Primes in the odd numbers a, a + 2, ..., b (3 <= a <= b, both odd); -1 if out of memory."""
    cdef uint64_t width = (b - a) // 2 + 1           # odd numbers in the window
    cdef uint64_t limit = min(ac_isqrt64(b), max(MIN_BASE, 2 * min(width, MAX_BASE // 2)))
    return ac_count_odd_primes(a, b, limit)


def count_primes_range(lo, hi):
    """The number of primes ``p`` with ``lo <= p < hi``.

    Parameters
    ----------
    lo, hi : int
        The range, ``0 <= lo <= hi <= 2**64``.

    Returns
    -------
    int
        How many primes ``[lo, hi)`` holds; the counts of adjacent ranges add up.

    Raises
    ------
    TypeError
        ``lo`` or ``hi`` is not an integer (a bool, float or string).
    ValueError
        ``lo < 0``, ``hi > 2**64`` or ``lo > hi``.
    MemoryError
        The sieve's memory could not be allocated.

    Notes
    -----
    A segmented sieve (one bit per odd number, cache-sized segments, pre-sieved
    patterns, a popcount) with the primes up to ``sqrt(hi)``, but none above ``2**24``
    nor far above the range's width; the numbers the sieve leaves above its reach are
    confirmed by an exact Miller-Rabin test. The arguments are checked with the GIL
    held; then the sieve runs with the GIL released. The pure twin
    :func:`allcores.pure.count_primes_range` gives the same count.

    Examples
    --------
    >>> from allcores import native
    >>> native.count_primes_range(0, 100)
    25
    >>> native.count_primes_range(0, 50) + native.count_primes_range(50, 100)
    25
    >>> native.count_primes_range(10**9, 10**9 + 1000)
    49
    """
    lo, hi = check.prime_range_args(lo, hi)
    cdef int64_t count = 0, odd_count
    # Work on the closed window [a, b] of odd numbers >= 3; hi - 1 always fits 64 bits.
    if lo <= 2 < hi:
        count = 1
    a = max(lo, 3) | 1
    b = (hi - 1) if (hi - 1) % 2 else (hi - 2)
    if a > b:
        return count
    cdef uint64_t c_a = a, c_b = b
    with nogil:
        odd_count = _count_odd_primes(c_a, c_b)
    if odd_count < 0:
        raise MemoryError("count_primes_range: could not allocate the sieve")
    return count + odd_count


# ---------------------------------------------------------------------------------------
# fannkuch-redux

cdef extern from "fannkuch.h" nogil:
    void ac_fannkuch_block_isa(int isa, int n, int64_t start, int64_t stop,
                               int64_t *checksum, int *max_flips)

# "scalar" and "baseline" run the portable loop, "avx2" and "avx512" the byte-shuffle
# loop with four permutations in flight (see fannkuch.h).


def fannkuch_isa():
    """The instruction set :func:`fannkuch_block` runs with now.

    Returns
    -------
    str
        One of :func:`available_isas`: the fastest for it unless
        :func:`set_fannkuch_isa` or ``ALLCORES_ISA`` chose another.

    Examples
    --------
    >>> from allcores import native
    >>> native.fannkuch_isa() in native.available_isas()
    True
    """
    return _isa_name(_isa["fannkuch"])


def set_fannkuch_isa(name):
    """Run :func:`fannkuch_block` with instruction set ``name`` from now on.

    Parameters
    ----------
    name : str
        One of :func:`available_isas`, or ``"auto"``: the fastest for this kernel, as
        at import (``"avx2"`` where the CPU has it, else ``"baseline"``).
        ``"scalar"`` and ``"baseline"`` run the portable loop, ``"avx2"`` and
        ``"avx512"`` the AVX2 byte-shuffle loop.

    Raises
    ------
    ValueError
        ``name`` is neither ``"auto"`` nor one of ``ISA_NAMES``, or this CPU cannot
        run it (it is not in :func:`available_isas`).

    Notes
    -----
    Results never depend on the instruction set, only the speed: this is for
    comparisons and tests. The choice holds for this process, for calls that start
    after it; the environment variable ``ALLCORES_ISA`` makes the same choice in
    every process that imports allcores (worker processes included).

    Examples
    --------
    >>> from allcores import native
    >>> native.set_fannkuch_isa("scalar")
    >>> native.fannkuch_isa()
    'scalar'
    >>> native.fannkuch_block(7, 0, 5040)
    (228, 16)
    >>> native.set_fannkuch_isa("auto")
    >>> native.fannkuch_block(7, 0, 5040)
    (228, 16)
    """
    _set_isa("fannkuch", name)


def fannkuch_block(n, start, stop):
    """Fannkuch-redux over a block of permutations: ``(checksum, max_flips)``.

    For each permutation ``p`` of ``0 .. n - 1`` with an index in ``[start, stop)`` (in
    the Benchmarks Game's order), flip the first ``p[0] + 1`` elements until ``0`` comes
    first.

    Parameters
    ----------
    n : int
        The number of elements, ``1 <= n <= 12``.
    start, stop : int
        The permutation indices, ``0 <= start <= stop <= n!``.

    Returns
    -------
    tuple of (int, int)
        ``checksum``: the sum of the flip counts, added for even indices and subtracted
        for odd ones; ``max_flips``: the most flips any of them needs; ``(0, 0)`` for
        an empty block. Blocks combine: their checksums add up, the largest
        ``max_flips`` wins.

    Raises
    ------
    TypeError
        ``n``, ``start`` or ``stop`` is not an integer (a bool, float or string).
    ValueError
        ``n`` is not in ``1 .. 12``, or ``start`` or ``stop`` is out of range.

    Notes
    -----
    The block's first permutation is built from its index, so a block can start
    anywhere. The arguments are checked with the GIL held; then the loop runs with the
    GIL released, with the instruction set of :func:`fannkuch_isa` (every one gives the
    same result). The pure twin :func:`allcores.pure.fannkuch_block` gives the same
    pair.

    Examples
    --------
    >>> from allcores import native
    >>> native.fannkuch_block(7, 0, 5040)
    (228, 16)
    >>> native.fannkuch_block(7, 0, 2520), native.fannkuch_block(7, 2520, 5040)
    ((20, 16), (208, 15))
    """
    n, start, stop = check.fannkuch_block_args(n, start, stop)
    cdef int64_t checksum = 0
    cdef int max_flips = 0
    cdef int c_n = n
    cdef int64_t c_start = start, c_stop = stop
    cdef int isa = _isa["fannkuch"]
    with nogil:
        ac_fannkuch_block_isa(isa, c_n, c_start, c_stop, &checksum, &max_flips)
    return checksum, max_flips


# ---------------------------------------------------------------------------------------
# Monte Carlo pi

cdef extern from "monte_carlo.h" nogil:
    uint64_t ac_monte_carlo_hits_isa(int isa, uint64_t seed, uint64_t start, uint64_t stop)


def monte_carlo_hits(seed, start, stop):
    """How many of the samples ``start .. stop - 1`` fall inside the unit quarter-circle.

    Sample ``i`` is the point ``(u(2 * i), u(2 * i + 1))``, where ``u(k)`` is the
    53-bit uniform double in ``[0, 1)`` made from the ``(k + 1)``-th output of the
    SplitMix64 generator seeded with ``seed``; it is a hit when
    ``x * x + y * y < 1``.

    Parameters
    ----------
    seed : int
        The generator's seed, ``0 <= seed < 2**64``.
    start, stop : int
        The sample indices, ``0 <= start <= stop <= 2**63``.

    Returns
    -------
    int
        The hits; any sample is computed from its index alone, so the hits of adjacent
        blocks add up.

    Raises
    ------
    TypeError
        ``seed``, ``start`` or ``stop`` is not an integer (a bool, float or string).
    ValueError
        A value is out of range, or ``start > stop``.

    Notes
    -----
    The arguments are checked with the GIL held; then the loop runs with the GIL
    released, 4 or 8 samples in flight, vectorised for the instruction set of
    :func:`monte_carlo_isa`. Every instruction set gives exactly the same count, and so
    does the pure twin :func:`allcores.pure.monte_carlo_hits`.

    Examples
    --------
    >>> from allcores import native
    >>> native.monte_carlo_hits(1, 0, 10_000)
    7887
    >>> native.monte_carlo_hits(1, 0, 5_000) + native.monte_carlo_hits(1, 5_000, 10_000)
    7887
    >>> 4 * native.monte_carlo_hits(1, 0, 10_000) / 10_000
    3.1548
    """
    seed, start, stop = check.monte_carlo_args(seed, start, stop)
    cdef uint64_t c_seed = seed, hits = 0
    cdef uint64_t c_start = start, c_stop = stop
    cdef int isa = _isa["monte_carlo"]
    with nogil:
        hits = ac_monte_carlo_hits_isa(isa, c_seed, c_start, c_stop)
    return hits


# ---------------------------------------------------------------------------------------
# build facts

cdef extern from "build_info.h":
    const char *AC_BUILD_FLAGS
    const char *AC_COMPILER


def build_info():
    """How this module was compiled, as ``allcores info`` shows it.

    Returns
    -------
    dict of str to str
        ``"compiler"``: the compiler's name and version (``"gcc 12.2.0"``);
        ``"flags"``: the optimisation flags it was given (``"-O3 -ffp-contract=off
        -g0"`` for a release build).

    Examples
    --------
    >>> from allcores import native
    >>> sorted(native.build_info())
    ['compiler', 'flags']
    """
    return {"compiler": AC_COMPILER.decode(), "flags": AC_BUILD_FLAGS.decode()}


# ---------------------------------------------------------------------------------------

def _isa_from_environment(value):
    """The instruction set ``ALLCORES_ISA`` forces on every kernel, or None (each keeps
    its fastest). Forcing one (for tests and comparisons) must not fail silently, nor
    break ``import allcores``: a value that cannot be used is a RuntimeWarning that names
    the variable and the values it takes, and is then ignored."""
    if not value or value == "auto":
        return None
    problem = _isa_problem(value)
    if problem is None:
        return value
    # Explicit: at import there is no Python frame of this module to point at.
    warnings.warn_explicit(f"{ISA_ENV}={value!r} ignored: {problem}; each kernel runs with "
                           "its fastest instruction set", RuntimeWarning, "allcores.native",
                           0, module="allcores.native")
    return None


_forced_isa = _isa_from_environment(os.environ.get(ISA_ENV, "").strip())
if _forced_isa is not None:
    for _kernel in _isa:
        _set_isa(_kernel, _forced_isa)
