"""numba twins of the kernels: what a user who picks ``@njit(parallel=True)`` instead of
allcores would write. Imported only when numba is installed (``pip install
"allcores[numba]"``); the benchmark then times them next to the native kernels.

Each twin computes the same answer as the kernel of the same name (bit for bit for
mandelbrot: numba does not contract ``a * b + c`` into a fused multiply-add unless
``fastmath`` allows it) and spreads its outer loop over numba's threads with ``prange``.
The set of threads is numba's own (``numba.set_num_threads``), not an allcores pool.

64-bit integer arithmetic is written with ``np.uint64`` constants throughout: numba
types ``uint64 op int64`` as float64, which would silently lose bits.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

__all__ = ["count_primes", "fannkuch", "is_prime", "mandelbrot", "monte_carlo_pi",
           "set_threads", "threads"]

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U11 = np.uint64(11)
_U27 = np.uint64(27)
_U30 = np.uint64(30)
_U31 = np.uint64(31)
_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_MINUS_53 = 2.0**-53
# Deterministic Miller-Rabin bases, exact for every n < 2**64 (Sinclair, 2011).
_BASES = np.array([2, 325, 9375, 28178, 450775, 9780504, 1795265022], dtype=np.uint64)
_TRIAL_PRIMES = np.array([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37], dtype=np.uint64)
# Odd numbers per sieve segment (a 32 KiB byte map per segment: L1-sized).
_SEGMENT_ODDS = 1 << 15
# Blocks of permutations for fannkuch: enough for any thread count to balance.
_FANNKUCH_BLOCKS = 256


def set_threads(workers: int) -> None:
    """Use ``workers`` threads (at most numba's configured maximum)."""
    numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))


def threads() -> int:
    """The number of threads the parallel twins run on."""
    return numba.get_num_threads()


# --- mandelbrot ---------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def _mandelbrot(width, height, max_iter, xmin, xmax, ymin, ymax):
    out = np.empty((height, width), dtype=np.uint32)
    dx = xmax - xmin
    dy = ymax - ymin
    for y in prange(height):
        ci = ymin + (y * dy) / height
        for x in range(width):
            cr = xmin + (x * dx) / width
            zr = 0.0
            zi = 0.0
            n = 0
            while n < max_iter:
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                if zr * zr + zi * zi > 4.0:
                    break
                n += 1
            out[y, x] = n
    return out


def mandelbrot(width, height, *, max_iter=256, bounds=(-2.0, 1.0, -1.5, 1.5)):
    xmin, xmax, ymin, ymax = (float(b) for b in bounds)
    return _mandelbrot(int(width), int(height), int(max_iter), xmin, xmax, ymin, ymax)


# --- count_primes: a segmented sieve of Eratosthenes over odd numbers ----------------------


@njit(cache=True)
def _odd_primes_upto(limit):
    composite = np.zeros(limit + 1, dtype=np.uint8)
    i = 3
    while i * i <= limit:
        if composite[i] == 0:
            for j in range(i * i, limit + 1, 2 * i):
                composite[j] = 1
        i += 2
    count = 0
    for k in range(3, limit + 1, 2):
        if composite[k] == 0:
            count += 1
    primes = np.empty(count, dtype=np.int64)
    count = 0
    for k in range(3, limit + 1, 2):
        if composite[k] == 0:
            primes[count] = k
            count += 1
    return primes


@njit(parallel=True, cache=True)
def _count_odd_primes(first, odds, primes):
    """Primes among the ``odds`` odd numbers ``first, first + 2, ...`` (first >= 3)."""
    segments = (odds + _SEGMENT_ODDS - 1) // _SEGMENT_ODDS
    counts = np.zeros(segments, dtype=np.int64)
    for s in prange(segments):
        start = s * _SEGMENT_ODDS
        length = min(_SEGMENT_ODDS, odds - start)
        low = first + 2 * start            # the segment's first number
        high = low + 2 * (length - 1)      # and its last
        composite = np.zeros(length, dtype=np.uint8)
        for p in primes:
            if p * p > high:
                break
            m = max(p * p, ((low + p - 1) // p) * p)
            if m % 2 == 0:
                m += p
            for j in range((m - low) // 2, length, p):
                composite[j] = 1
        found = 0
        for j in range(length):
            if composite[j] == 0:
                found += 1
        counts[s] = found
    return counts.sum()


def count_primes(lo, hi):
    """Primes ``p`` with ``lo <= p < hi`` (``0 <= lo <= hi <= 2**62``)."""
    count = 1 if lo <= 2 < hi else 0
    first = max(lo, 3) | 1
    if first >= hi:
        return count
    odds = (hi - first + 1) // 2
    return count + int(_count_odd_primes(first, odds, _odd_primes_upto(math.isqrt(hi - 1))))


# --- is_prime: Miller-Rabin in Montgomery form --------------------------------------------


@njit(cache=True, inline="always")
def _mul_wide(a, b):
    """The 128-bit product ``a * b`` as (high, low) 64-bit halves."""
    a_lo = a & _LOW32
    a_hi = a >> _U32
    b_lo = b & _LOW32
    b_hi = b >> _U32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    middle = (p0 >> _U32) + (p1 & _LOW32) + (p2 & _LOW32)
    high = p3 + (p1 >> _U32) + (p2 >> _U32) + (middle >> _U32)
    return high, a * b


@njit(cache=True, inline="always")
def _redc(high, low, n, n_neg_inv):
    """``(high * 2**64 + low) / 2**64 mod n`` for a product of two residues below n."""
    m = low * n_neg_inv
    mn_high, mn_low = _mul_wide(m, n)
    carry = _U1 if low != _U0 else _U0   # low + mn_low is 0 mod 2**64
    t = high + mn_high
    overflow = t < high
    t2 = t + carry
    overflow = overflow or t2 < t
    if overflow or t2 >= n:
        t2 -= n
    return t2


@njit(cache=True, inline="always")
def _mont_mul(a, b, n, n_neg_inv):
    high, low = _mul_wide(a, b)
    return _redc(high, low, n, n_neg_inv)


@njit(cache=True)
def _is_prime_one(n):
    if n < _U2:
        return False
    for p in _TRIAL_PRIMES:
        if n % p == _U0:
            return n == p
    if n < np.uint64(37 * 37):
        return True
    # Montgomery constants for R = 2**64.
    inverse = n                       # correct to 3 bits for odd n; Newton doubles it
    for _ in range(5):
        inverse *= _U2 - n * inverse
    n_neg_inv = _U0 - inverse
    r_mod_n = (_U0 - n) % n           # 2**64 mod n
    r2 = r_mod_n                      # 2**128 mod n, by 64 modular doublings
    for _ in range(64):
        doubled = r2 + r2
        if doubled < r2 or doubled >= n:
            doubled -= n
        r2 = doubled
    one = r_mod_n
    minus_one = n - one
    d = n - _U1
    s = 0
    while d & _U1 == _U0:
        d >>= _U1
        s += 1
    for base in _BASES:
        a = base % n
        if a == _U0:
            continue
        x = _mont_mul(a, r2, n, n_neg_inv)   # a in Montgomery form
        result = one
        e = d
        while e != _U0:
            if e & _U1:
                result = _mont_mul(result, x, n, n_neg_inv)
            x = _mont_mul(x, x, n, n_neg_inv)
            e >>= _U1
        if result == one or result == minus_one:
            continue
        witness = True
        for _ in range(s - 1):
            result = _mont_mul(result, result, n, n_neg_inv)
            if result == minus_one:
                witness = False
                break
        if witness:
            return False
    return True


@njit(parallel=True, cache=True)
def _is_prime(values, out):
    for i in prange(values.shape[0]):
        out[i] = _is_prime_one(values[i])


def is_prime(values):
    flat = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
    out = np.empty(flat.shape[0], dtype=np.bool_)
    _is_prime(flat, out)
    return out.reshape(np.shape(values))


# --- fannkuch-redux -----------------------------------------------------------------------


@njit(cache=True)
def _fannkuch_block(n, start, stop, factorials):
    checksum = 0
    max_flips = 0
    if start >= stop:
        return checksum, max_flips
    perm = np.arange(n)
    count = np.zeros(n, dtype=np.int64)
    scratch = np.empty(n, dtype=np.int64)
    rotated = np.empty(n, dtype=np.int64)
    idx = start
    for i in range(n - 1, 0, -1):      # the first permutation, built from its index
        d = idx // factorials[i]
        idx = idx % factorials[i]
        count[i] = d
        for k in range(i + 1):
            rotated[k] = perm[(k + d) % (i + 1)]
        for k in range(i + 1):
            perm[k] = rotated[k]
    index = start
    while True:
        first = perm[0]
        if first != 0:
            flips = 1
            if perm[first] != 0:
                for k in range(n):
                    scratch[k] = perm[k]
                while True:
                    flips += 1
                    lo = 1
                    hi = first - 1
                    while lo < hi:
                        scratch[lo], scratch[hi] = scratch[hi], scratch[lo]
                        lo += 1
                        hi -= 1
                    following = scratch[first]
                    scratch[first] = first
                    first = following
                    if scratch[first] == 0:
                        break
            if flips > max_flips:
                max_flips = flips
            checksum += flips if index % 2 == 0 else -flips
        index += 1
        if index == stop:
            return checksum, max_flips
        perm[0], perm[1] = perm[1], perm[0]
        i = 1
        count[i] += 1
        while count[i] > i:
            count[i] = 0
            i += 1
            head = perm[0]
            for k in range(i):
                perm[k] = perm[k + 1]
            perm[i] = head
            count[i] += 1


@njit(parallel=True, cache=True)
def _fannkuch(n, total, blocks, factorials):
    checksums = np.zeros(blocks, dtype=np.int64)
    maxima = np.zeros(blocks, dtype=np.int64)
    for b in prange(blocks):
        checksums[b], maxima[b] = _fannkuch_block(n, total * b // blocks,
                                                  total * (b + 1) // blocks, factorials)
    return checksums.sum(), maxima.max()


def fannkuch(n):
    factorials = np.array([math.factorial(k) for k in range(n + 1)], dtype=np.int64)
    checksum, flips = _fannkuch(int(n), math.factorial(n), _FANNKUCH_BLOCKS, factorials)
    return int(checksum), int(flips)


# --- Monte Carlo pi: SplitMix64 samples ---------------------------------------------------


@njit(cache=True, inline="always")
def _uniform(seed, k):
    z = seed + (k + _U1) * _GOLDEN_GAMMA
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    z = z ^ (z >> _U31)
    return np.float64(z >> _U11) * _TWO_POW_MINUS_53


@njit(parallel=True, cache=True)
def _monte_carlo_hits(seed, samples):
    hits = 0
    for i in prange(samples):
        k = np.uint64(i) * _U2
        u = _uniform(seed, k)
        v = _uniform(seed, k + _U1)
        if u * u + v * v < 1.0:
            hits += 1
    return hits


def monte_carlo_pi(samples, *, seed=0):
    return 4 * int(_monte_carlo_hits(np.uint64(seed), int(samples))) / samples
