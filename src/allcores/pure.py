"""Pure-Python twins of the native kernels in ``allcores.native``.

Same names, same signatures, same results (bit for bit for mandelbrot), same errors:
arguments are checked by the same functions in ``allcores._validate``. The loops are
plain Python, the way a Python programmer would write them; numpy is used for storage
only. They are the reference the native kernels are tested against and the baseline
the benchmark measures them against.
"""

from __future__ import annotations

import math

from allcores import _validate as check

MASK64 = 2**64 - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
TWO_POW_MINUS_53 = 2.0**-53


# --- mandelbrot -------------------------------------------------------------------------


def mandelbrot_rows(out, first_row, height, max_iter, xmin, xmax, ymin, ymax):
    """Fill ``out`` (uint32, shape ``(rows, width)``) with the escape counts of image rows
    ``first_row .. first_row + rows - 1`` of a ``width x height`` image of the region
    ``[xmin, xmax) x [ymin, ymax)``, iterating at most ``max_iter`` (>= 1) times per pixel.
    ``out`` must be aligned, C-contiguous and writeable; it is judged by its memory
    (numpy's shape and strides), never by what a subclass says of itself."""
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


def is_prime_array(values, out):
    """Set ``out[i]`` to whether ``values[i]`` is prime (exact for every 64-bit value).

    ``values``: 1-D uint64; ``out``: 1-D bool or uint8 of the same length, sharing no
    memory with ``values``; both aligned and C-contiguous (see ``mandelbrot_rows``)."""
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


def count_primes_range(lo, hi):
    """The number of primes p with ``lo <= p < hi``, for ``0 <= lo <= hi <= 2**64``."""
    lo, hi = check.prime_range_args(lo, hi)
    count = 1 if lo <= 2 < hi else 0
    a = max(lo, 3) | 1
    b = (hi - 1) if (hi - 1) % 2 else (hi - 2)
    if a > b:
        return count
    return count + _count_odd_primes(a, b)


# --- fannkuch-redux ---------------------------------------------------------------------


def fannkuch_block(n, start, stop):
    """``(checksum, max_flips)`` of fannkuch-redux over the permutations of ``n`` elements
    with indices ``start .. stop - 1`` in the benchmark's order (``1 <= n <= 12``)."""
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


def monte_carlo_hits(seed, start, stop):
    """How many samples ``start .. stop - 1`` fall inside the unit quarter-circle; sample
    ``i`` is the point ``(uniform(seed, 2i), uniform(seed, 2i + 1))`` of SplitMix64."""
    seed, start, stop = check.monte_carlo_args(seed, start, stop)
    hits = 0
    for i in range(start, stop):
        u = _uniform(seed, 2 * i)
        v = _uniform(seed, 2 * i + 1)
        if u * u + v * v < 1.0:
            hits += 1
    return hits
