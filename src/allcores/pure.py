"""Pure-Python twins of the compiled kernels in ``allcores.native``.

The same five per-block functions, with the same names, signatures, results (bit for
bit for ``mandelbrot_rows``) and errors: the arguments are checked by the same code
(``allcores._validate``), so a bad call raises the same exception with the same message.
The loops are plain Python, as a Python programmer would write them (numpy only holds
the arrays): 20 to 700 times slower than the compiled kernels, and they hold the GIL, so
only processes run them in parallel. They are the reference the native kernels are
tested against and the baseline the benchmark measures them against; pass
``impl="python"`` to a function of :mod:`allcores.kernels` to run them on every core.

- ``mandelbrot_rows(out, first_row, height, max_iter, xmin, xmax, ymin, ymax)``: rows of
  a Mandelbrot image, written into ``out``;
- ``count_primes_range(lo, hi)``: the number of primes in ``[lo, hi)``;
- ``is_prime_array(values, out)``: ``out[i] = values[i] is prime``;
- ``fannkuch_block(n, start, stop)``: fannkuch-redux over permutations
  ``[start, stop)``;
- ``monte_carlo_hits(seed, start, stop)``: SplitMix64 samples ``[start, stop)`` inside
  the unit quarter-circle.

Examples
--------
>>> from allcores import native, pure
>>> pure.count_primes_range(0, 100)
25
>>> pure.monte_carlo_hits(7, 0, 1_000) == native.monte_carlo_hits(7, 0, 1_000)
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from allcores import _validate as check

if TYPE_CHECKING:  # for the annotations only
    import numpy as np
    import numpy.typing as npt

MASK64 = 2**64 - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
TWO_POW_MINUS_53 = 2.0**-53


# --- mandelbrot -------------------------------------------------------------------------


def mandelbrot_rows(out: npt.NDArray[np.uint32], first_row: int, height: int, max_iter: int,
                    xmin: float, xmax: float, ymin: float, ymax: float) -> None:
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
    Plain Python loops: the reference the compiled
    :func:`allcores.native.mandelbrot_rows` is tested against, which gives exactly the
    same counts, bit for bit. It holds the GIL: run it on processes to use more cores.

    Examples
    --------
    Rows 1 and 2 of an 8 x 4 image of the whole set:

    >>> import numpy as np
    >>> from allcores import pure
    >>> out = np.zeros((2, 8), dtype=np.uint32)
    >>> pure.mandelbrot_rows(out, 1, 4, 50, -2.0, 1.0, -1.5, 1.5)
    >>> out
    array([[ 0,  2,  2,  3,  5, 50,  4,  2],
           [50, 50, 50, 50, 50, 50, 50,  3]], dtype=uint32)
    """
    out, first_row, height, max_iter, xmin, xmax, ymin, ymax = check.mandelbrot_rows_args(
        out, first_row, height, max_iter, xmin, xmax, ymin, ymax
    )
    rows, width = out.shape
    dx = xmax - xmin
    dy = ymax - ymin
    for r in range(rows):
        ci = ymin + ((first_row + r) * dy) / height
        counts = [0] * width
        for x in range(width):
            cr = xmin + (x * dx) / width
            zr = zi = 0.0
            n = 0
            while n < max_iter:
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                if zr * zr + zi * zi > 4.0:
                    break
                n += 1
            counts[x] = n
        out[r] = counts


# --- primes -----------------------------------------------------------------------------

TRIAL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
# Deterministic Miller-Rabin base sets: {2, 7, 61} is exact below 4,759,123,141
# (Jaeschke 1993); Sinclair's seven bases are exact for every n < 2**64 (2011).
SMALL_BASES_LIMIT = 4759123141
SMALL_BASES = (2, 7, 61)
LARGE_BASES = (2, 325, 9375, 28178, 450775, 9780504, 1795265022)

# Sieve tuning, as in the native kernel: segments of 2**18 odd numbers; base primes up
# to sqrt(b) but not beyond MAX_BASE nor much beyond the window's width.
SEGMENT_LEN = 1 << 18
MIN_BASE = 1 << 16
MAX_BASE = 1 << 24


def _miller_rabin(n):
    """Exact primality for odd n > 37**2 with no factor <= 37."""
    d = n - 1
    s = 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for base in SMALL_BASES if n < SMALL_BASES_LIMIT else LARGE_BASES:
        x = pow(base, d, n)
        if x == 1 or x == n - 1:
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _is_prime(n):
    if n < 2:
        return False
    for p in TRIAL_PRIMES:
        if n % p == 0:
            return n == p
    if n < 37 * 37:
        return True
    return _miller_rabin(n)


def is_prime_array(values: npt.NDArray[np.uint64],
                   out: npt.NDArray[np.bool_] | npt.NDArray[np.uint8]) -> None:
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
    Trial division by small primes, then a deterministic Miller-Rabin test (Python's
    ``pow``): exact, never probabilistic. The compiled
    :func:`allcores.native.is_prime_array` gives the same flags. It holds the GIL.

    Examples
    --------
    >>> import numpy as np
    >>> from allcores import pure
    >>> values = np.array([2, 4, 97, 2**64 - 59], dtype=np.uint64)
    >>> flags = np.empty(4, dtype=bool)
    >>> pure.is_prime_array(values, flags)
    >>> flags
    array([ True, False,  True,  True])
    """
    values, out = check.is_prime_array_args(values, out)
    out[:] = [_is_prime(int(v)) for v in values]


def _odd_primes_upto(limit):
    composite = bytearray(limit // 2 + 1)  # index i stands for 2*i + 1
    composite[0] = 1
    i = 1
    while (2 * i + 1) ** 2 <= limit:
        if not composite[i]:
            for j in range((2 * i + 1) ** 2 // 2, len(composite), 2 * i + 1):
                composite[j] = 1
        i += 1
    return [2 * i + 1 for i in range(len(composite)) if not composite[i] and 2 * i + 1 <= limit]


def _count_odd_primes(a, b):
    """Primes in the odd numbers a, a + 2, ..., b (3 <= a <= b, both odd)."""
    width = (b - a) // 2 + 1
    limit = min(math.isqrt(b), max(MIN_BASE, 2 * min(width, MAX_BASE // 2)))
    mr_from = (limit + 1) ** 2
    primes = _odd_primes_upto(limit)
    next_index = []
    for p in primes:
        if p * p >= a:
            next_index.append((p * p - a) // 2)
        else:
            delta = -a % p
            if delta % 2:
                delta += p
            next_index.append(delta // 2)
    count = 0
    start = a
    remaining = width
    while remaining:
        seg_len = min(remaining, SEGMENT_LEN)
        segment = bytearray(seg_len)
        for i, p in enumerate(primes):
            j = next_index[i]
            while j < seg_len:
                segment[j] = 1
                j += p
            next_index[i] = j - seg_len
        for j in range(seg_len):
            if not segment[j]:
                n = start + 2 * j
                if n < mr_from or _miller_rabin(n):
                    count += 1
        remaining -= seg_len
        start += 2 * seg_len
    return count


def count_primes_range(lo: int, hi: int) -> int:
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

    Notes
    -----
    A segmented sieve with the primes up to ``sqrt(hi)``, but none above ``2**24`` nor
    far above the range's width; the numbers the sieve leaves above its reach are
    confirmed by an exact Miller-Rabin test, as in the compiled
    :func:`allcores.native.count_primes_range`, which gives the same count. It holds
    the GIL.

    Examples
    --------
    >>> from allcores import pure
    >>> pure.count_primes_range(0, 100)
    25
    >>> pure.count_primes_range(0, 50) + pure.count_primes_range(50, 100)
    25
    >>> pure.count_primes_range(10**9, 10**9 + 1000)
    49
    """
    lo, hi = check.prime_range_args(lo, hi)
    count = 1 if lo <= 2 < hi else 0
    a = max(lo, 3) | 1
    b = (hi - 1) if (hi - 1) % 2 else (hi - 2)
    if a > b:
        return count
    return count + _count_odd_primes(a, b)


# --- fannkuch-redux ---------------------------------------------------------------------


def fannkuch_block(n: int, start: int, stop: int) -> tuple[int, int]:
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
    anywhere. The compiled :func:`allcores.native.fannkuch_block` gives the same pair.
    It holds the GIL.

    Examples
    --------
    >>> from allcores import pure
    >>> pure.fannkuch_block(7, 0, 5040)
    (228, 16)
    >>> pure.fannkuch_block(7, 0, 2520), pure.fannkuch_block(7, 2520, 5040)
    ((20, 16), (208, 15))
    """
    n, start, stop = check.fannkuch_block_args(n, start, stop)
    checksum = 0
    max_flips = 0
    if start >= stop:
        return checksum, max_flips
    # The first permutation is built from its index, as the benchmark's multi-threaded
    # programs do, so a block can start anywhere.
    perm = list(range(n))
    count = [0] * n
    idx = start
    for i in range(n - 1, 0, -1):
        d, idx = divmod(idx, check.FACTORIALS[i])
        count[i] = d
        perm[: i + 1] = perm[d : i + 1] + perm[:d]
    index = start
    while True:
        first = perm[0]
        if first != 0:
            flips = 1
            if perm[first] != 0:
                scratch = perm[:]
                while True:
                    flips += 1
                    lo, hi = 1, first - 1
                    while lo < hi:
                        scratch[lo], scratch[hi] = scratch[hi], scratch[lo]
                        lo += 1
                        hi -= 1
                    scratch[first], first = first, scratch[first]
                    if scratch[first] == 0:
                        break
            if flips > max_flips:
                max_flips = flips
            checksum += flips if index % 2 == 0 else -flips
        index += 1
        if index == stop:
            return checksum, max_flips
        # Next permutation: rotate the first i + 1 elements while the counter carries.
        perm[0], perm[1] = perm[1], perm[0]
        i = 1
        count[i] += 1
        while count[i] > i:
            count[i] = 0
            i += 1
            perm[: i + 1] = perm[1 : i + 1] + perm[:1]
            count[i] += 1


# --- Monte Carlo pi ---------------------------------------------------------------------


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _uniform(seed, k):
    return (_mix64((seed + (k + 1) * GOLDEN_GAMMA) & MASK64) >> 11) * TWO_POW_MINUS_53


def monte_carlo_hits(seed: int, start: int, stop: int) -> int:
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
    Python integers masked to 64 bits, as the C code computes them: the compiled
    :func:`allcores.native.monte_carlo_hits` gives exactly the same count. It holds
    the GIL.

    Examples
    --------
    >>> from allcores import pure
    >>> pure.monte_carlo_hits(1, 0, 10_000)
    7887
    >>> pure.monte_carlo_hits(1, 0, 5_000) + pure.monte_carlo_hits(1, 5_000, 10_000)
    7887
    >>> 4 * pure.monte_carlo_hits(1, 0, 10_000) / 10_000
    3.1548
    """
    seed, start, stop = check.monte_carlo_args(seed, start, stop)
    hits = 0
    for i in range(start, stop):
        u = _uniform(seed, 2 * i)
        v = _uniform(seed, 2 * i + 1)
        if u * u + v * v < 1.0:
            hits += 1
    return hits
