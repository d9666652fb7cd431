# cython: language_level=3
"""Native kernels: the per-chunk work that allcores distributes.

Every function here has a pure-Python twin of the same name in ``allcores.pure`` that
returns the same result. Each ``def`` validates its arguments with the GIL held (through
``allcores._validate``, shared with the twins so errors match), then runs its whole loop
inside one ``with nogil:`` block, so threads run these kernels truly in parallel.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import os

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
    """The instruction sets this build and this CPU can run, slowest first."""
    return [name for name, isa in ISA_NAMES.items() if ac_isa_available(isa)]


def _isa_name(int isa):
    return next(name for name, number in ISA_NAMES.items() if number == isa)


def _set_isa(kernel, name):
    """Run ``kernel`` with instruction set ``name`` (see :func:`available_isas`), or the
    fastest for it with ``"auto"``."""
    _isa[kernel] = _resolve_isa(kernel, name)


def _resolve_isa(kernel, name):
    """The number of instruction set ``name``, or of ``kernel``'s fastest for ``"auto"``."""
    if name == "auto":
        return _BEST_ISA[kernel]
    if name not in ISA_NAMES:
        raise ValueError(f"isa: expected one of {sorted(ISA_NAMES)} or 'auto', got: {name!r}")
    if not ac_isa_available(ISA_NAMES[name]):
        raise ValueError(f"isa: {name!r} is not available here; available: "
                         f"{available_isas()}")
    return ISA_NAMES[name]


def mandelbrot_isa():
    """The instruction set ``mandelbrot_rows`` runs with."""
    return _isa_name(_isa["mandelbrot"])


def set_mandelbrot_isa(name):
    """Run ``mandelbrot_rows`` with instruction set ``name`` (see :func:`available_isas`),
    or ``"auto"``: the fastest available, chosen at import. Results never depend on it."""
    _set_isa("mandelbrot", name)


def monte_carlo_isa():
    """The instruction set ``monte_carlo_hits`` runs with."""
    return _isa_name(_isa["monte_carlo"])


def set_monte_carlo_isa(name):
    """Run ``monte_carlo_hits`` with instruction set ``name`` (see :func:`available_isas`),
    or ``"auto"``: the fastest available, chosen at import. Results never depend on it."""
    _set_isa("monte_carlo", name)


def mandelbrot_rows(out, first_row, height, max_iter, xmin, xmax, ymin, ymax):
    """Fill ``out`` (uint32, shape ``(rows, width)``) with the escape counts of image rows
    ``first_row .. first_row + rows - 1`` of a ``width x height`` image of the region
    ``[xmin, xmax) x [ymin, ymax)``, iterating at most ``max_iter`` (>= 1) times per pixel.
    ``out`` must be aligned, C-contiguous and writeable; it is judged by its memory
    (numpy's shape and strides), never by what a subclass says of itself."""
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
    """Set ``out[i]`` to whether ``values[i]`` is prime (exact for every 64-bit value).

    ``values``: 1-D uint64; ``out``: 1-D bool or uint8 of the same length, sharing no
    memory with ``values``; both aligned and C-contiguous (see ``mandelbrot_rows``)."""
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
    """The number of primes p with ``lo <= p < hi``, for ``0 <= lo <= hi <= 2**64``."""
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
    """The instruction set ``fannkuch_block`` runs with."""
    return _isa_name(_isa["fannkuch"])


def set_fannkuch_isa(name):
    """Run ``fannkuch_block`` with instruction set ``name`` (see :func:`available_isas`),
    or ``"auto"``: the fastest for it, chosen at import. Results never depend on it."""
    _set_isa("fannkuch", name)


def fannkuch_block(n, start, stop):
    """``(checksum, max_flips)`` of fannkuch-redux over the permutations of ``n`` elements
    with indices ``start .. stop - 1`` in the benchmark's order (``1 <= n <= 12``)."""
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
    """How many samples ``start .. stop - 1`` fall inside the unit quarter-circle; sample
    ``i`` is the point ``(uniform(seed, 2i), uniform(seed, 2i + 1))`` of SplitMix64."""
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
    """How this module was compiled: ``{"compiler": ..., "flags": ...}``."""
    return {"compiler": AC_COMPILER.decode(), "flags": AC_BUILD_FLAGS.decode()}


# ---------------------------------------------------------------------------------------

if os.environ.get(ISA_ENV, "").strip():
    # Forcing an instruction set (for tests and comparisons) must not fail silently.
    for _kernel in _isa:
        _set_isa(_kernel, os.environ[ISA_ENV].strip())
