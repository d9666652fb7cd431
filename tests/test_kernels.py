"""Correctness of the native kernels and their pure-Python twins.

Every expected value here comes from an independent reference written in this file
(brute force, straight from the contract) or from a published table; nothing is
computed with the library itself.  Each reference that can be anchored to a published
table is checked against that table first (``test_reference_*``), so a wrong reference
cannot silently agree with a wrong library.

``allcores.native`` and ``allcores.pure`` are tested with the same tests through the
``kmod`` fixture; the public wrappers in ``allcores.kernels`` through ``impl``.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from itertools import accumulate

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _support import compile_c

from allcores import kernels, native, pure

MOD64 = 1 << 64
MASK64 = MOD64 - 1

# The conftest profile (derandomized, no deadline) is the parent of these settings.
FEW = settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(params=["native", "pure"], scope="module")
def kmod(request):
    """The kernel module under test: the compiled one, then its pure-Python twin."""
    return {"native": native, "pure": pure}[request.param]


@pytest.fixture(params=["native", "python"], scope="module")
def impl(request):
    """The ``impl=`` value of the public wrappers."""
    return request.param


def cuts_to_pieces(lo, hi, cuts):
    """[lo, hi) split at the given cut points (clamped, sorted, duplicates kept)."""
    points = [lo] + sorted(min(max(c, lo), hi) for c in cuts) + [hi]
    return list(zip(points, points[1:]))


# ======================================================================================
# References
# ======================================================================================

# ---- Mandelbrot ----------------------------------------------------------------------


def ref_escape_count(cr, ci, max_iter):
    """Exactly the loop of the contract."""
    zr = zi = 0.0
    n = 0
    while n < max_iter:
        zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        if zr * zr + zi * zi > 4.0:
            break
        n += 1
    return n


@lru_cache(maxsize=None)
def ref_mandelbrot(width, height, max_iter, xmin, xmax, ymin, ymax):
    """The whole ``height x width`` image (read-only array, cached)."""
    xmin, xmax, ymin, ymax = float(xmin), float(xmax), float(ymin), float(ymax)
    img = np.empty((height, width), dtype=np.uint32)
    for y in range(height):
        ci = ymin + (y * (ymax - ymin)) / height
        for x in range(width):
            cr = xmin + (x * (xmax - xmin)) / width
            img[y, x] = ref_escape_count(cr, ci, max_iter)
    img.setflags(write=False)
    return img


def pbm_bytes(counts, max_iter):
    """Benchmarks Game PBM (P4) of the pixels whose count is ``max_iter``: rows packed
    MSB first, 8 pixels a byte, the last byte of each row padded with zero bits."""
    height, width = counts.shape
    buf = bytearray(f"P4\n{width} {height}\n".encode("ascii"))
    for row in counts.tolist():
        byte = bits = 0
        for v in row:
            byte = (byte << 1) | (1 if v == max_iter else 0)
            bits += 1
            if bits == 8:
                buf.append(byte)
                byte = bits = 0
        if bits:
            buf.append(byte << (8 - bits))
    return bytes(buf)


def run_mandelbrot_rows(kmod, width, height, max_iter, bounds, first_row=0, rows=None):
    rows = height - first_row if rows is None else rows
    out = np.full((rows, width), 0xDEADBEEF, dtype=np.uint32)
    assert kmod.mandelbrot_rows(out, first_row, height, max_iter, *bounds) is None
    return out


# ---- Primes --------------------------------------------------------------------------

SIEVE_LIMIT = 100_000
MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)  # deterministic below 3.3e24


@lru_cache(maxsize=None)
def ref_sieve(limit=SIEVE_LIMIT):
    """Sieve of Eratosthenes: flags[n] is True iff n is prime, for 0 <= n < limit."""
    flags = bytearray([1]) * limit
    flags[0:2] = b"\x00\x00"
    for p in range(2, math.isqrt(limit - 1) + 1):
        if flags[p]:
            flags[p * p :: p] = bytes(len(range(p * p, limit, p)))
    return np.frombuffer(bytes(flags), dtype=np.uint8).astype(bool)


def ref_strong_probable_prime(n, a):
    """Strong probable-prime test of odd n > 2 to base a (Python's pow)."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    x = pow(a, d, n)
    if x == 1 or x == n - 1:
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def ref_is_prime(n):
    """Deterministic Miller-Rabin with the first 12 primes as bases (exact below
    3.3e24, so for every 64-bit value)."""
    if n < 2:
        return False
    for p in MR_BASES:
        if n % p == 0:
            return n == p
    return all(ref_strong_probable_prime(n, a) for a in MR_BASES)


def ref_count_primes(lo, hi):
    if hi <= SIEVE_LIMIT:
        return int(ref_sieve()[lo:hi].sum())
    return sum(1 for n in range(lo, hi) if ref_is_prime(n))


# Windows of consecutive integers and their reference prefix counts.
WINDOWS = {
    "small": (0, SIEVE_LIMIT),
    "2**32": (2**32 - 2000, 2**32 + 2000),
    "10**12": (10**12 - 1500, 10**12 + 1500),
    "10**18": (10**18 - 1500, 10**18 + 1500),
    "2**63": (2**63 - 1500, 2**63 + 1500),
    "2**64": (2**64 - 3000, 2**64),
}


@lru_cache(maxsize=None)
def ref_window_prefix(name):
    lo, hi = WINDOWS[name]
    if hi <= SIEVE_LIMIT:
        flags = ref_sieve()[lo:hi].tolist()
    else:
        flags = [ref_is_prime(n) for n in range(lo, hi)]
    return [0] + list(accumulate(int(f) for f in flags))


def ref_window_count(name, a, b):
    lo, _ = WINDOWS[name]
    prefix = ref_window_prefix(name)
    return prefix[b - lo] - prefix[a - lo]


# ---- Fannkuch-redux ------------------------------------------------------------------


def ref_permutations(n):
    """The permutations of range(n) in the Benchmarks Game fannkuch-redux order:
    rotations of the first r+1 elements driven by a count array."""
    perm1 = list(range(n))
    count = [0] * n
    r = n
    while True:
        while r != 1:
            count[r - 1] = r
            r -= 1
        yield perm1[:]
        while True:
            if r == n:
                return
            perm0 = perm1[0]
            for i in range(r):
                perm1[i] = perm1[i + 1]
            perm1[r] = perm0
            count[r] -= 1
            if count[r] > 0:
                break
            r += 1


def ref_flips(perm):
    """Reverse the first p[0]+1 elements until p[0] == 0; return how many times."""
    p = list(perm)
    flips = 0
    k = p[0]
    while k:
        p[: k + 1] = p[k::-1]
        flips += 1
        k = p[0]
    return flips


@lru_cache(maxsize=None)
def ref_flips_table(n):
    """flips of every permutation, by permutation index (n <= 8)."""
    return tuple(ref_flips(p) for p in ref_permutations(n))


def ref_fannkuch_sequential(n):
    """The classic sequential program: (checksum, max_flips)."""
    checksum = max_flips = 0
    for index, perm in enumerate(ref_permutations(n)):
        flips = ref_flips(perm)
        max_flips = max(max_flips, flips)
        checksum += flips if index % 2 == 0 else -flips
    return checksum, max_flips


def ref_fannkuch_block(n, start, stop):
    table = ref_flips_table(n)
    checksum = sum(table[i] if i % 2 == 0 else -table[i] for i in range(start, stop))
    return checksum, max(table[start:stop], default=0)


def ref_unrank(n, index):
    """The permutation with the given index in the same order, via the factorial
    number system (rotate the first i+1 elements left by index // i!)."""
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        d, index = divmod(index, math.factorial(i))
        p[: i + 1] = p[d : i + 1] + p[:d]
    return p


def ref_fannkuch_block_unranked(n, start, stop):
    checksum = max_flips = 0
    for i in range(start, stop):
        flips = ref_flips(ref_unrank(n, i))
        max_flips = max(max_flips, flips)
        checksum += flips if i % 2 == 0 else -flips
    return checksum, max_flips


# ---- Monte Carlo ---------------------------------------------------------------------

GAMMA = 0x9E3779B97F4A7C15


def ref_mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def ref_uniform(seed, k):
    return (ref_mix64((seed + (k + 1) * GAMMA) & MASK64) >> 11) * 2.0**-53


def ref_hits(seed, start, stop):
    hits = 0
    for i in range(start, stop):
        u = ref_uniform(seed, 2 * i)
        v = ref_uniform(seed, 2 * i + 1)
        if u * u + v * v < 1.0:
            hits += 1
    return hits


# ======================================================================================
# The references against published tables
# ======================================================================================


def test_reference_splitmix64_published_stream():
    # SplitMix64 seeded with 1234567: its first five outputs.
    expected = [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    assert [ref_mix64((1234567 + (k + 1) * GAMMA) & MASK64) for k in range(5)] == expected
    assert ref_uniform(1234567, 0) == (expected[0] >> 11) / 2.0**53


def test_reference_primes_published():
    sieve = ref_sieve()
    for k, pi in [(1, 4), (2, 25), (3, 168), (4, 1229), (5, 9592)]:
        assert int(sieve[: 10**k].sum()) == pi
    assert [n for n in range(100) if ref_is_prime(n)] == np.flatnonzero(sieve[:100]).tolist()
    # Published tables "primes just less than a power of two": 2**k - d is prime for
    # these ten smallest d.
    below = {
        32: [5, 17, 65, 99, 107, 135, 153, 185, 209, 267],
        63: [25, 165, 259, 301, 375, 387, 391, 409, 457, 471],
        64: [59, 83, 95, 179, 189, 257, 279, 323, 353, 363],
    }
    for k, ds in below.items():
        found = [d for d in range(1, ds[-1] + 1) if ref_is_prime(2**k - d)]
        assert found == ds
    # The smallest primes above 10**12 and 10**18.
    assert [d for d in range(100) if ref_is_prime(10**12 + d)] == [39, 61, 63, 91]
    assert [d for d in range(10) if ref_is_prime(10**18 + d)] == [3, 9]


def test_reference_fannkuch_published():
    assert ref_fannkuch_sequential(1) == (0, 0)
    assert ref_fannkuch_sequential(7) == (228, 16)
    assert ref_fannkuch_sequential(8) == (1616, 22)
    assert ref_fannkuch_block(8, 0, math.factorial(8)) == (1616, 22)


def test_reference_unrank_matches_sequential_order():
    for n in range(1, 8):
        perms = list(ref_permutations(n))
        assert len(perms) == math.factorial(n)
        assert len({tuple(p) for p in perms}) == len(perms)
        assert all(ref_unrank(n, i) == p for i, p in enumerate(perms))


def test_reference_mandelbrot_hand_values():
    # c = -2, -1, 0 stay bounded; c = 1: 1, 2, 5 -> 2; c = 2: 2, 6 -> 1; c = 3 -> 0.
    assert [ref_escape_count(c, 0.0, 10) for c in (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0)] == [
        10, 10, 10, 2, 1, 0,
    ]
    # c = i cycles (i, -1+i, -i, -1+i, ...); c = 2i: |2i|^2 = 4 is not > 4, then escapes.
    assert [ref_escape_count(0.0, ci, 10) for ci in (1.0, 2.0)] == [10, 1]


# ======================================================================================
# mandelbrot_rows
# ======================================================================================

SMALL_BOUNDS = [
    (-2.0, 1.0, -1.5, 1.5),
    (-1.5, 0.5, -1.0, 1.0),
    (-0.75, -0.74, 0.1, 0.11),  # a zoom on the boundary: long, varied escape times
    (-2, 2, -2, 2),  # integer bounds are real numbers too
]


@pytest.mark.parametrize("bounds", SMALL_BOUNDS)
@pytest.mark.parametrize("width,height,max_iter", [(24, 17, 60), (9, 31, 200), (1, 1, 30)])
def test_mandelbrot_matches_reference(kmod, width, height, max_iter, bounds):
    got = run_mandelbrot_rows(kmod, width, height, max_iter, bounds)
    expected = ref_mandelbrot(width, height, max_iter, *bounds)
    assert got.dtype == np.uint32 and got.shape == (height, width)
    np.testing.assert_array_equal(got, expected)


def test_mandelbrot_hand_values_row(kmod):
    # width 6 over [-2, 4): cr = -2, -1, 0, 1, 2, 3 exactly; ci = 0.
    got = run_mandelbrot_rows(kmod, 6, 1, 10, (-2.0, 4.0, 0.0, 1.0))
    assert got.tolist() == [[10, 10, 10, 2, 1, 0]]


def test_mandelbrot_hand_values_column(kmod):
    # height 3 over [0, 3): ci = 0, 1, 2 exactly; cr = 0.
    got = run_mandelbrot_rows(kmod, 1, 3, 25, (0.0, 1.0, 0.0, 3.0))
    assert got.tolist() == [[25], [25], [1]]


def knife_edge_cases(target):
    """(lo, hi, n, k): pixel k of n over [lo, hi) sits, by the contract's formula
    ``lo + (k * (hi - lo)) / n``, exactly on ``target`` or one ulp beyond it (away from
    zero), where c = +-2 (or 2i) on the axis is in the set or escapes at once."""
    beyond = math.nextafter(target, math.copysign(math.inf, target))
    cases = []
    for lo in (0.0, -1.0, -0.5, 0.5, 1.0, -3.0, -2.5):
        for n in range(3, 30):
            for k in range(1, n):
                span = (target - lo) * n / k
                for _ in range(6):
                    span = math.nextafter(span, -math.inf)
                for _ in range(12):
                    span = math.nextafter(span, math.inf)
                    hi = lo + span
                    if lo < hi and lo + (k * (hi - lo)) / n in (target, beyond):
                        cases.append((lo, hi, n, k))
    return cases


@pytest.mark.parametrize("target", [2.0, -2.0])
def test_mandelbrot_knife_edge_real_axis(kmod, target):
    # Each case puts one pixel exactly on c = target or on the next double: the count
    # there is 1 (c = 2) / max_iter (c = -2) or 0 (one ulp beyond), so any other order
    # of operations for cr (x * (dx / width), (x / width) * dx, ...) shows up.
    cases = knife_edge_cases(target)
    other_order = [
        (lo, hi, n, k)
        for lo, hi, n, k in cases
        if lo + k * ((hi - lo) / n) != lo + (k * (hi - lo)) / n
    ]
    assert len(cases) > 100 and len(other_order) > 20  # the cases do discriminate
    for lo, hi, n, k in cases:
        got = run_mandelbrot_rows(kmod, n, 1, 5, (lo, hi, 0.0, 1.0))
        expected = ref_mandelbrot(n, 1, 5, lo, hi, 0.0, 1.0)
        assert got.tolist() == expected.tolist(), (lo, hi, n, k)
        assert expected[0, k] in ((1, 0) if target > 0 else (5, 0))


def test_mandelbrot_knife_edge_imaginary_axis(kmod):
    # The same for ci: c = 2i has count 1, c = (2 + ulp)i has count 0.
    cases = knife_edge_cases(2.0)
    for lo, hi, n, k in cases[::3]:
        got = run_mandelbrot_rows(kmod, 1, n, 5, (0.0, 1.0, lo, hi))
        expected = ref_mandelbrot(1, n, 5, 0.0, 1.0, lo, hi)
        assert got.tolist() == expected.tolist(), (lo, hi, n, k)
        assert expected[k, 0] in (1, 0)


def test_mandelbrot_native_and_pure_bit_identical():
    for bounds in SMALL_BOUNDS:
        a = run_mandelbrot_rows(native, 33, 21, 300, bounds)
        b = run_mandelbrot_rows(pure, 33, 21, 300, bounds)
        np.testing.assert_array_equal(a, b)


@FEWER
@given(
    xmin=st.floats(-2.5, 1.0),
    xspan=st.floats(1e-9, 3.0),
    ymin=st.floats(-1.5, 1.0),
    yspan=st.floats(1e-9, 3.0),
    width=st.integers(1, 12),
    height=st.integers(1, 12),
    max_iter=st.integers(1, 120),
)
def test_mandelbrot_random_views(kmod, xmin, xspan, ymin, yspan, width, height, max_iter):
    bounds = (xmin, xmin + xspan, ymin, ymin + yspan)
    if not (bounds[0] < bounds[1] and bounds[2] < bounds[3]):
        return  # the sum rounded back onto the minimum
    got = run_mandelbrot_rows(kmod, width, height, max_iter, bounds)
    np.testing.assert_array_equal(got, ref_mandelbrot(width, height, max_iter, *bounds))


@pytest.mark.parametrize("width,height", [(200, 200), (61, 37)])
def test_mandelbrot_benchmarks_game_bitmap(kmod, width, height):
    bounds = (-1.5, 0.5, -1.0, 1.0)
    got = run_mandelbrot_rows(kmod, width, height, 50, bounds)
    expected = ref_mandelbrot(width, height, 50, *bounds)
    got_md5 = hashlib.md5(pbm_bytes(got, 50)).hexdigest()
    assert got_md5 == hashlib.md5(pbm_bytes(expected, 50)).hexdigest()
    # The image is not trivially all in or all out of the set.
    assert 0 < int((expected == 50).sum()) < width * height


def test_mandelbrot_max_iter_zero_is_refused(kmod):
    # It used to give an all-zero image, silently: a count of 0 means "escaped at once".
    out = np.full((7, 13), 99, dtype=np.uint32)
    with pytest.raises(ValueError, match=r"max_iter: expected 1 <= max_iter"):
        kmod.mandelbrot_rows(out, 0, 7, 0, -2.0, 1.0, -1.5, 1.5)
    assert (out == 99).all()


def test_mandelbrot_max_iter_one(kmod):
    got = run_mandelbrot_rows(kmod, 13, 7, 1, (-2.5, 2.5, -2.5, 2.5))
    np.testing.assert_array_equal(got, ref_mandelbrot(13, 7, 1, -2.5, 2.5, -2.5, 2.5))
    assert set(np.unique(got).tolist()) == {0, 1}


def test_mandelbrot_max_iter_uint32_max_accepted(kmod):
    # The largest allowed max_iter; every sample escapes at once (|c| > 2).
    got = run_mandelbrot_rows(kmod, 4, 3, 2**32 - 1, (3.0, 4.0, 3.0, 4.0))
    assert got.tolist() == [[0] * 4] * 3


def test_mandelbrot_counts_reach_large_max_iter(kmod):
    # cr = -2 (ci = 0) sits at z = 2 forever, so its count is max_iter, here above
    # 2**16 (catches a narrow counter); cr = 1 escapes after 2 iterations.
    max_iter = 2**17 + 3 if kmod is native else 2**16 + 3
    got = run_mandelbrot_rows(kmod, 2, 1, max_iter, (-2.0, 4.0, 0.0, 1.0))
    assert got.tolist() == [[max_iter, 2]]


@pytest.mark.parametrize(
    "width,height,first_row,rows",
    [(0, 5, 0, 5), (7, 0, 0, 0), (0, 0, 0, 0), (7, 5, 0, 0), (7, 5, 5, 0), (7, 5, 3, 0)],
)
def test_mandelbrot_empty(kmod, width, height, first_row, rows):
    out = np.zeros((rows, width), dtype=np.uint32)
    assert kmod.mandelbrot_rows(out, first_row, height, 50, -2.0, 1.0, -1.5, 1.5) is None
    assert out.shape == (rows, width)


def test_mandelbrot_single_rows_match_whole(kmod):
    width, height, max_iter = 19, 11, 80
    bounds = (-2.0, 1.0, -1.5, 1.5)
    whole = ref_mandelbrot(width, height, max_iter, *bounds)
    for y in range(height):
        row = run_mandelbrot_rows(kmod, width, height, max_iter, bounds, first_row=y, rows=1)
        np.testing.assert_array_equal(row[0], whole[y])


@FEW
@given(cuts=st.lists(st.integers(0, 23), max_size=6))
def test_mandelbrot_chunk_invariance(kmod, cuts):
    width, height, max_iter = 17, 23, 90
    bounds = (-1.5, 0.5, -1.0, 1.0)
    out = np.full((height, width), 0xDEADBEEF, dtype=np.uint32)
    for a, b in cuts_to_pieces(0, height, cuts):
        view = out[a:b]  # a C-contiguous block of rows
        kmod.mandelbrot_rows(view, a, height, max_iter, *bounds)
    np.testing.assert_array_equal(out, ref_mandelbrot(width, height, max_iter, *bounds))


def test_mandelbrot_writes_only_its_rows(kmod):
    width, height, max_iter = 10, 9, 40
    bounds = (-2.0, 1.0, -1.5, 1.5)
    buf = np.full((height, width), 7777, dtype=np.uint32)
    kmod.mandelbrot_rows(buf[3:6], 3, height, max_iter, *bounds)
    np.testing.assert_array_equal(buf[3:6], ref_mandelbrot(width, height, max_iter, *bounds)[3:6])
    assert (buf[:3] == 7777).all() and (buf[6:] == 7777).all()


def test_mandelbrot_accepts_numpy_scalars_and_refuses_bools(kmod):
    # numpy scalars anywhere; never a bool where an integer belongs (max_iter, first_row).
    out = np.zeros((3, 5), dtype=np.uint32)
    kmod.mandelbrot_rows(
        out, np.int64(0), np.uint16(3), np.int32(40),
        np.float32(-2.0), np.float64(1.0), np.int8(-1), 1,
    )
    np.testing.assert_array_equal(out, ref_mandelbrot(5, 3, 40, -2.0, 1.0, -1.0, 1.0))
    with pytest.raises(TypeError, match="first_row: expected an integer, got: bool"):
        kmod.mandelbrot_rows(out, False, 3, 1, -2.0, 1.0, -1.0, 1.0)
    with pytest.raises(TypeError, match="max_iter: expected an integer, got: bool"):
        kmod.mandelbrot_rows(out, 0, 3, True, -2.0, 1.0, -1.0, 1.0)


# ======================================================================================
# count_primes_range
# ======================================================================================

PI_TABLE = [(10, 4), (100, 25), (1000, 168), (10**4, 1229), (10**5, 9592), (10**6, 78498)]


@pytest.mark.parametrize("x,pi", PI_TABLE)
def test_count_primes_pi_table(kmod, x, pi):
    assert kmod.count_primes_range(0, x) == pi
    assert kmod.count_primes_range(1, x) == pi
    assert kmod.count_primes_range(2, x + 1) == pi  # x = 10**k itself is not prime


def test_count_primes_pi_1e7_native():
    assert native.count_primes_range(0, 10**7) == 664579


def test_count_primes_pi_1e7_pure():
    assert pure.count_primes_range(0, 10**7) == 664579


def test_count_primes_pi_1e8_native():
    assert native.count_primes_range(0, 10**8) == 5761455


def test_count_primes_pi_1e9_native():
    assert native.count_primes_range(0, 10**9) == 50847534


@pytest.mark.slow
def test_count_primes_pi_2_32_native():
    assert native.count_primes_range(0, 2**32) == 203280221


def test_count_primes_returns_int(kmod):
    got = kmod.count_primes_range(0, 100)
    assert type(got) is int and got == 25


def test_count_primes_all_tiny_ranges(kmod):
    sieve = ref_sieve()
    for lo in range(0, 70):
        for hi in range(lo, 70):
            assert kmod.count_primes_range(lo, hi) == int(sieve[lo:hi].sum()), (lo, hi)


@pytest.mark.parametrize(
    "lo,hi,expected",
    [
        (0, 0, 0), (0, 1, 0), (0, 2, 0), (0, 3, 1), (1, 3, 1), (2, 3, 1), (2, 4, 2),
        (3, 4, 1), (3, 3, 0), (4, 5, 0), (0, 4, 2), (1, 2, 0), (5, 5, 0), (4, 4, 0),
        (2**32, 2**32, 0), (2**64, 2**64, 0), (2**64 - 59, 2**64 - 59, 0),
    ],
)
def test_count_primes_edge_cases(kmod, lo, hi, expected):
    assert kmod.count_primes_range(lo, hi) == expected


def test_count_primes_top_of_64_bits(kmod):
    assert kmod.count_primes_range(2**64 - 58, 2**64) == 0
    assert kmod.count_primes_range(2**64 - 59, 2**64) == 1
    assert kmod.count_primes_range(2**64 - 59, 2**64 - 58) == 1
    assert kmod.count_primes_range(2**64 - 60, 2**64 - 59) == 0
    # Ten published primes 2**64 - d, d in [59, 83, ..., 363].
    assert kmod.count_primes_range(2**64 - 363, 2**64) == 10
    assert kmod.count_primes_range(2**64 - 363, 2**64 - 59) == 9
    assert kmod.count_primes_range(2**64 - 1000, 2**64) == ref_count_primes(2**64 - 1000, 2**64)


def test_count_primes_below_2_32_published(kmod):
    assert kmod.count_primes_range(2**32 - 267, 2**32) == 10
    assert kmod.count_primes_range(2**32 - 266, 2**32 - 5) == 8


@pytest.mark.parametrize("name", [n for n in WINDOWS if n != "small"])
def test_count_primes_windows(kmod, name):
    lo, hi = WINDOWS[name]
    assert kmod.count_primes_range(lo, hi) == ref_window_count(name, lo, hi)
    mid = (lo + hi) // 2
    assert kmod.count_primes_range(lo, mid) == ref_window_count(name, lo, mid)
    assert kmod.count_primes_range(mid + 1, hi - 7) == ref_window_count(name, mid + 1, hi - 7)


@FEW
@given(data=st.data())
def test_count_primes_chunk_invariance(kmod, data):
    name = data.draw(st.sampled_from(sorted(WINDOWS)), label="window")
    wlo, whi = WINDOWS[name]
    lo = data.draw(st.integers(wlo, whi), label="lo")
    hi = data.draw(st.integers(lo, min(whi, lo + 4000)), label="hi")
    cuts = data.draw(st.lists(st.integers(lo, hi), max_size=5), label="cuts")
    whole = kmod.count_primes_range(lo, hi)
    assert whole == ref_window_count(name, lo, hi)
    assert sum(kmod.count_primes_range(a, b) for a, b in cuts_to_pieces(lo, hi, cuts)) == whole


BIG_SIEVE_LIMIT = 4_000_000


@settings(max_examples=15)
@given(lo=st.integers(0, 2_800_000), span=st.integers(0, 1_200_000), cut=st.integers(0, 1_200_000))
def test_count_primes_chunks_across_segments(kmod, lo, span, cut):
    # Longer ranges than the windows (spans above 2**20): wherever a segmented sieve puts
    # its segment boundaries, pieces add up to the whole and the whole matches a plain
    # sieve.
    hi = lo + span
    mid = lo + min(cut, span)
    whole = kmod.count_primes_range(lo, hi)
    assert whole == int(ref_sieve(BIG_SIEVE_LIMIT)[lo:hi].sum())
    assert kmod.count_primes_range(lo, mid) + kmod.count_primes_range(mid, hi) == whole


def primes_after(n, count):
    found = []
    while len(found) < count:
        n += 1
        if ref_is_prime(n):
            found.append(n)
    return found


@pytest.mark.parametrize("after", [2**8, 2**16, 2**20, 2**24, 2**31, 2**32 - 20])
def test_count_primes_around_squares_and_products_of_primes(kmod, after):
    # Composites whose smallest factor lies just above 2**k, where a sieve's table of
    # small primes or a switch from sieving to another test is likely to stop; the
    # last case: the two largest 32-bit primes.
    p, q = primes_after(after, 2)
    centers = [p * p, p * q, q * q]
    assert q * q < MOD64 - 60
    for c in centers:
        lo, hi = c - 60, min(c + 60, MOD64)
        expected = ref_count_primes(lo, hi)
        assert kmod.count_primes_range(lo, hi) == expected, (lo, hi)
        assert kmod.count_primes_range(c, c + 1) == 0
    values = [c for c in centers] + [p, q]
    out, expected = run_is_prime_array(kmod, values)
    np.testing.assert_array_equal(out, expected)


def test_count_primes_large_range_split_matches_reference_sieve(kmod):
    # Sum over pieces within the sieve range against the sieve.
    sieve = ref_sieve()
    points = [0, 1, 2, 3, 1000, 65535, 65536, 65537, 99_991, 100_000]
    for a, b in zip(points, points[1:]):
        assert kmod.count_primes_range(a, b) == int(sieve[a:b].sum()), (a, b)


@pytest.mark.parametrize(
    "lo", [10**9, 10**12, 2**40 + 12345, 10**15, 2**63 - 100_000, 2**64 - 250_000]
)
def test_count_primes_medium_ranges_native_pure_and_pieces(lo):
    # 250k-wide ranges (beyond the reference's reach): native == pure (each checked
    # against the reference in the windows above), and native pieces add up.
    hi = min(lo + 250_000, MOD64)
    whole = native.count_primes_range(lo, hi)
    assert pure.count_primes_range(lo, hi) == whole
    cuts = [lo + 1, lo + 65_536, lo + 131_073, (lo + hi) // 2, hi - 1]
    assert sum(native.count_primes_range(a, b) for a, b in cuts_to_pieces(lo, hi, cuts)) == whole
    # prime number theorem sanity: within 10% of width / ln(lo)
    assert abs(whole - (hi - lo) / math.log(lo)) < 0.1 * (hi - lo) / math.log(lo)


def test_count_primes_native_equals_pure_random_windows():
    rng = np.random.default_rng(12345)
    for _ in range(20):
        lo = int(rng.integers(0, 2**63, dtype=np.uint64)) * 2 + int(rng.integers(0, 2))
        lo = min(lo, 2**64 - 500)
        hi = lo + int(rng.integers(0, 500))
        expected = ref_count_primes(lo, hi)
        assert native.count_primes_range(lo, hi) == expected, (lo, hi)
        assert pure.count_primes_range(lo, hi) == expected, (lo, hi)


# The native sieve (ext/sieve.h) keeps one bit per number coprime to 30: byte k of the
# sieve stands for 30k + {1, 7, 11, 13, 17, 19, 23, 29}. Its first segment starts at the
# byte holding lo; a segment has at least 131,072 bytes (3,932,160 integers; more when
# the sieving primes reach further), is sieved by the small primes in chunks of 49,152
# bytes (1,474,560 integers), and is filled from presieved patterns for 7 .. 167. Where
# those choices could slip by one: a range's ends at every residue mod 30 (a byte), next
# to chunk and segment boundaries, inside one byte, over the presieving primes, below
# 2**32 and 2**64.
NATIVE_CHUNK = 49152 * 30
NATIVE_SEGMENT = 131072 * 30


@lru_cache(maxsize=None)
def ref_prefix(limit=BIG_SIEVE_LIMIT):
    """prefix[n]: the number of primes below n, for 0 <= n <= limit."""
    return np.concatenate(([0], np.cumsum(ref_sieve(limit), dtype=np.int64)))


def ref_pi_range(lo, hi):
    prefix = ref_prefix()
    return int(prefix[hi] - prefix[lo])


def test_count_primes_native_every_tiny_range_over_the_presieving_primes():
    # 2, 3, 5 are counted apart and 7 .. 167 are crossed off by the presieve patterns and
    # must be set back; 173**2, 173 * 179, 179 * 181 are the first composites the patterns
    # leave to the sieving primes (79**2 .. 83 * 89 were, before the patterns reached 167).
    for lo in range(0, 200):
        for hi in range(lo, 200):
            assert native.count_primes_range(lo, hi) == ref_pi_range(lo, hi), (lo, hi)
    for n in range(0, 1000):
        assert native.count_primes_range(0, n) == ref_pi_range(0, n), n
    for c in (79 * 79, 79 * 83, 83 * 89, 173 * 173, 173 * 179, 179 * 181):
        for lo in range(c - 70, c + 1):
            for hi in (c, c + 1, c + 2, c + 70):
                assert native.count_primes_range(lo, hi) == ref_pi_range(lo, hi), (lo, hi)


def test_count_primes_native_ends_at_every_residue_near_segment_boundaries():
    for lo in range(0, 61):       # every residue mod 30 (a byte), twice
        first_byte = 30 * (lo // 30)
        for boundary in (NATIVE_CHUNK, 2 * NATIVE_CHUNK, NATIVE_SEGMENT):
            boundary += first_byte
            for hi in range(boundary - 31, boundary + 32):
                assert native.count_primes_range(lo, hi) == ref_pi_range(lo, hi), (lo, hi)
    for boundary in (NATIVE_CHUNK, 2 * NATIVE_CHUNK, NATIVE_SEGMENT):
        for lo in range(boundary - 61, boundary + 61):
            for hi in (lo, lo + 1, lo + 29, lo + 30, lo + 61, boundary + 130, 3_999_999):
                assert native.count_primes_range(lo, hi) == ref_pi_range(lo, hi), (lo, hi)


def test_count_primes_native_windows_inside_one_byte():
    # lo and hi in the same 30 numbers: the masks below lo and above hi meet in one byte.
    for k in (0, 1, 2, 5, 6, 997, NATIVE_CHUNK // 30 - 1, NATIVE_CHUNK // 30):
        for lo in range(30 * k, 30 * k + 30):
            for hi in range(lo, 30 * k + 31):
                assert native.count_primes_range(lo, hi) == ref_pi_range(lo, hi), (lo, hi)
    for name, top in (("2**32", 2**32), ("2**64", 2**64)):
        base = 30 * ((top - 1000) // 30)
        for k in (0, 1, 7):
            for lo in range(base + 30 * k, base + 30 * k + 30):
                for hi in range(lo, base + 30 * k + 31):
                    got = native.count_primes_range(lo, hi)
                    assert got == ref_window_count(name, lo, hi), (lo, hi)
    last = 30 * ((2**64 - 1) // 30)               # the last byte: 2**64 - 1 = last + 15
    for lo in range(last, 2**64):
        for hi in range(lo, 2**64 + 1):
            assert native.count_primes_range(lo, hi) == ref_window_count("2**64", lo, hi)


def test_count_primes_native_random_windows_match_a_reference_sieve():
    rng = np.random.default_rng(30)
    for _ in range(300):
        lo = int(rng.integers(0, BIG_SIEVE_LIMIT))
        hi = lo + int(rng.integers(0, BIG_SIEVE_LIMIT - lo + 1) if rng.random() < 0.3
                      else rng.integers(0, 3000))
        hi = min(hi, BIG_SIEVE_LIMIT)
        assert native.count_primes_range(lo, hi) == ref_pi_range(lo, hi), (lo, hi)


def test_count_primes_native_wide_windows_with_long_segments():
    # Sieving primes up to 10**6 and 10**7 get segments of 2 and 4 MiB: several of them,
    # and pieces that start anywhere inside them. Counts checked with primesieve 11.
    for lo, hi, want in [(10**12, 10**12 + 10**8, 3618282),
                         (10**14, 10**14 + 2 * 10**8, 6202561)]:
        assert native.count_primes_range(lo, hi) == want
        cuts = [lo + 61_234_567, lo + 61_234_567 + 29, lo + 99_999_971]
        assert sum(native.count_primes_range(a, b) for a, b in cuts_to_pieces(lo, hi, cuts)) == want


@pytest.mark.parametrize("name", ["2**32", "2**64"])
def test_count_primes_native_every_residue_below_2_32_and_2_64(name):
    wlo, whi = WINDOWS[name]
    top = 2**32 if name == "2**32" else 2**64
    for d in range(0, 260):
        lo = top - d
        for hi in (lo, lo + 1, lo + 7, lo + 64, lo + 129, top):
            hi = min(hi, whi)
            assert native.count_primes_range(lo, hi) == ref_window_count(name, lo, hi), (lo, hi)
        assert native.count_primes_range(wlo, lo) == ref_window_count(name, wlo, lo), lo


def test_count_primes_native_random_splits_sum_to_the_whole():
    rng = np.random.default_rng(2024)
    for lo, hi, whole in [(0, 10**8, 5761455), (0, 3_900_000, ref_pi_range(0, 3_900_000)),
                          (1_234_567, 3_456_789, ref_pi_range(1_234_567, 3_456_789))]:
        assert native.count_primes_range(lo, hi) == whole
        for pieces in (2, 7, 40):
            cuts = [int(c) for c in rng.integers(lo, hi, size=pieces - 1)]
            total = sum(native.count_primes_range(a, b) for a, b in cuts_to_pieces(lo, hi, cuts))
            assert total == whole, (lo, hi, cuts)
    # Beyond the sieve's own reach (Miller-Rabin decides the survivors) and at the top.
    for lo, hi in [(10**18, 10**18 + 10**6), (2**64 - 2 * NATIVE_SEGMENT, 2**64)]:
        whole = native.count_primes_range(lo, hi)
        cuts = [int(c) for c in rng.integers(0, hi - lo, size=9, dtype=np.uint64)]
        pieces = cuts_to_pieces(lo, hi, [lo + c for c in cuts])
        assert sum(native.count_primes_range(a, b) for a, b in pieces) == whole


def test_count_primes_native_threads_share_the_presieve_patterns():
    # The patterns are built once per process and published atomically; concurrent first
    # calls (here: many at once in fresh threads) must all see complete patterns.
    from concurrent.futures import ThreadPoolExecutor

    ranges = [(k * 1_000_003 % 3_000_000, k * 1_000_003 % 3_000_000 + 700_000) for k in range(32)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda r: native.count_primes_range(*r), ranges))
    assert got == [ref_pi_range(lo, hi) for lo, hi in ranges]


# ======================================================================================
# is_prime_array
# ======================================================================================


def run_is_prime_array(kmod, values, out_dtype=np.bool_):
    values = np.ascontiguousarray(values, dtype=np.uint64)
    expected = np.array([ref_is_prime(int(v)) for v in values.tolist()], dtype=bool)
    if out_dtype == np.bool_:
        out = ~expected  # every element has to be overwritten
    else:
        out = np.full(values.shape, 7, dtype=out_dtype)
    before = values.copy()
    assert kmod.is_prime_array(values, out) is None
    np.testing.assert_array_equal(values, before)  # the input is not touched
    return out, expected


@pytest.mark.parametrize("out_dtype", [np.bool_, np.uint8])
def test_is_prime_matches_sieve(kmod, out_dtype):
    values = np.arange(SIEVE_LIMIT, dtype=np.uint64)
    out = np.full(SIEVE_LIMIT, 7, dtype=out_dtype) if out_dtype == np.uint8 else ~ref_sieve()
    kmod.is_prime_array(values, out)
    if out_dtype == np.uint8:
        np.testing.assert_array_equal(out, ref_sieve().astype(np.uint8))
    else:
        np.testing.assert_array_equal(out, ref_sieve())


# Strong pseudoprimes to all of the listed bases (each the smallest such number),
# with their factorizations.
STRONG_PSEUDOPRIMES = [
    (2047, (2,), (23, 89)),
    (1373653, (2, 3), (829, 1657)),
    (25326001, (2, 3, 5), (2251, 11251)),
    (3215031751, (2, 3, 5, 7), (151, 751, 28351)),
    (4759123141, (2, 7, 61), (48781, 97561)),
    (1122004669633, (2, 13, 23, 1662803), (611557, 1834669)),
    (2152302898747, (2, 3, 5, 7, 11), (6763, 10627, 29947)),
    (3474749660383, (2, 3, 5, 7, 11, 13), (1303, 16927, 157543)),
    (341550071728321, (2, 3, 5, 7, 11, 13, 17), (10670053, 32010157)),
    (3825123056546413051, (2, 3, 5, 7, 11, 13, 17, 19, 23), (149491, 747451, 34233211)),
]


def test_strong_pseudoprime_table_is_right():
    for n, bases, factors in STRONG_PSEUDOPRIMES:
        assert math.prod(factors) == n, n
        assert all(ref_is_prime(p) for p in factors), n
        assert all(ref_strong_probable_prime(n, a) for a in bases), n
        assert not ref_is_prime(n)


@pytest.mark.parametrize("out_dtype", [np.bool_, np.uint8])
def test_is_prime_strong_pseudoprimes(kmod, out_dtype):
    values = [n for n, _, _ in STRONG_PSEUDOPRIMES]
    values += [p for _, _, f in STRONG_PSEUDOPRIMES for p in f]  # their prime factors
    out, expected = run_is_prime_array(kmod, values, out_dtype)
    np.testing.assert_array_equal(out, expected.astype(out_dtype))
    assert not expected[: len(STRONG_PSEUDOPRIMES)].any()


def korselt(n, factors):
    """Korselt's criterion for a Carmichael number with these prime factors."""
    return (
        len(factors) >= 3
        and len(set(factors)) == len(factors)
        and math.prod(factors) == n
        and all((n - 1) % (p - 1) == 0 for p in factors)
    )


def trial_factor(n):
    factors, d = [], 2
    while d * d <= n:
        while n % d == 0:
            factors.append(d)
            n //= d
        d += 1
    if n > 1:
        factors.append(n)
    return factors


SMALL_CARMICHAEL = [
    561, 1105, 1729, 2465, 2821, 6601, 8911, 10585, 15841, 29341, 41041, 46657, 52633,
    62745, 63973, 75361, 101101, 115921, 126217, 162401, 172081, 188461, 252601, 278545,
    294409, 314821, 334153, 340561, 399001, 410041, 449065, 488881, 512461, 9999109081,
]


def chernick_carmichaels(count_small=8, count_large=8):
    """(6k+1)(12k+1)(18k+1) with all three factors prime is a Carmichael number."""
    found = []
    for ks in (range(1, 10**6), range(200_000, 10**6)):
        taken = 0
        for k in ks:
            f = (6 * k + 1, 12 * k + 1, 18 * k + 1)
            n = math.prod(f)
            if n >= MOD64:
                break
            if all(ref_is_prime(p) for p in f):
                found.append((n, f))
                taken += 1
                if taken == (count_small if ks.start == 1 else count_large):
                    break
    return found


def test_is_prime_carmichael_numbers(kmod):
    for n in SMALL_CARMICHAEL:
        assert korselt(n, trial_factor(n)), n
    chernick = chernick_carmichaels()
    assert len(chernick) == 16
    for n, f in chernick:
        assert korselt(n, list(f)), n
    values = SMALL_CARMICHAEL + [n for n, _ in chernick] + [p for _, f in chernick for p in f]
    out, expected = run_is_prime_array(kmod, values)
    np.testing.assert_array_equal(out, expected)
    assert not expected[: len(SMALL_CARMICHAEL) + len(chernick)].any()


def test_is_prime_named_values(kmod):
    cases = {
        0: False, 1: False, 2: True, 3: True, 4: False,
        2**31 - 1: True,  # Mersenne prime
        2**32 - 5: True,  # largest 32-bit prime
        2**32 + 1: False,  # 641 * 6700417
        2**61 - 1: True,  # Mersenne prime
        2**63 - 25: True,
        2**63 - 1: False,  # 7^2 * 73 * ...
        2**64 - 59: True,  # largest 64-bit prime
        2**64 - 1: False,
        2**64 - 2: False,
        (2**32 - 5) ** 2: False,  # square of the largest 32-bit prime
        (2**32 - 5) * (2**32 - 17): False,
        407521: True, 299210837: True,  # prime factors of common MR base sets
        407521 * 299210837: False, 299210837**2: False,
        9780504: False, 1795265022: False, 450775: False,
        3**40: False, 2**63: False, 7**22: False,
        1000000000000000003: True, 1000000000039: True,
    }
    for n, want in cases.items():
        assert ref_is_prime(n) == want, n  # the reference agrees with the table
    out, _ = run_is_prime_array(kmod, list(cases))
    assert dict(zip(cases, out.tolist())) == cases


@pytest.mark.parametrize("name", [n for n in WINDOWS if n != "small"])
def test_is_prime_windows(kmod, name):
    lo, hi = WINDOWS[name]
    hi = min(hi, lo + 2000)
    out, expected = run_is_prime_array(kmod, list(range(lo, hi)))
    np.testing.assert_array_equal(out, expected)


def test_is_prime_semiprimes_of_large_primes(kmod):
    rng = np.random.default_rng(2024)
    values = []
    while len(values) < 60:
        bits_p = int(rng.integers(20, 44))
        p = int(rng.integers(2 ** (bits_p - 1), 2**bits_p)) | 1
        q_max = (MOD64 - 1) // p
        q = int(rng.integers(max(3, q_max // 4), q_max)) | 1
        while not ref_is_prime(p):
            p += 2
        while not ref_is_prime(q):
            q += 2
        if p * q < MOD64:
            values += [p * q, p, q, p * p if p * p < MOD64 else p]
    out, expected = run_is_prime_array(kmod, values)
    np.testing.assert_array_equal(out, expected)


@FEW
@given(st.lists(st.integers(0, MASK64), min_size=0, max_size=40))
def test_is_prime_random_values(kmod, values):
    out, expected = run_is_prime_array(kmod, values)
    np.testing.assert_array_equal(out, expected)


@FEW
@given(st.lists(st.integers(2**63, MASK64).map(lambda v: v | 1), min_size=1, max_size=40))
def test_is_prime_random_odd_top_half(kmod, values):
    out, expected = run_is_prime_array(kmod, values, np.uint8)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_is_prime_empty(kmod):
    out = np.zeros(0, dtype=bool)
    assert kmod.is_prime_array(np.zeros(0, dtype=np.uint64), out) is None


def test_is_prime_read_only_values(kmod):
    values = np.array([2, 4, 2**64 - 59, 2**61 - 1, 91], dtype=np.uint64)
    values.setflags(write=False)
    out = np.zeros(5, dtype=bool)
    kmod.is_prime_array(values, out)
    assert out.tolist() == [True, False, True, True, False]


def test_is_prime_strided_out_is_rejected_or_correct(kmod):
    # The contract only promises contiguous outputs; a strided one must be either
    # refused with ValueError or filled correctly without touching the gaps.
    values = np.array([2, 4, 5, 9, 2**64 - 59], dtype=np.uint64)
    buf = np.full(10, 7, dtype=np.uint8)
    try:
        kmod.is_prime_array(values, buf[::2])
    except ValueError:
        assert (buf == 7).all()
        return
    assert buf[::2].tolist() == [1, 0, 1, 0, 1]
    assert (buf[1::2] == 7).all()


def test_is_prime_array_out_slice_writes_only_its_part(kmod):
    values = np.array([2, 3, 4, 5], dtype=np.uint64)
    buf = np.full(8, 9, dtype=np.uint8)
    kmod.is_prime_array(values, buf[2:6])
    assert buf.tolist() == [9, 9, 1, 1, 0, 1, 9, 9]


def test_is_prime_base_2_strong_pseudoprimes_below_1e6(kmod):
    # Every odd composite below 10**6 that base 2 alone calls prime (46 of them, from
    # 2047 on): what the bases after 2 are there to catch.
    sieve = ref_sieve(10**6)
    spsp2 = [n for n in range(3, 10**6, 2)
             if not sieve[n] and ref_strong_probable_prime(n, 2)]
    assert len(spsp2) == 46 and spsp2[:3] == [2047, 3277, 4033]  # OEIS A001262
    out, expected = run_is_prime_array(kmod, spsp2)
    assert not out.any() and not expected.any()


def test_is_prime_squares_and_products_of_primes_near_2_32(kmod):
    # p**2 and p*q for primes p, q just below 2**32: composites with no small factor,
    # which only Miller-Rabin can reject, up to the top of the 64-bit range.
    primes = [p for p in range(2**32 - 1, 2**32 - 2000, -2) if ref_is_prime(p)][:12]
    primes += [p for p in range(2**31 + 1, 2**31 + 2000, 2) if ref_is_prime(p)][:6]
    values = [p * p for p in primes] + [p * q for p, q in zip(primes, primes[1:])]
    values += [v + 2 for v in values] + [v - 2 for v in values] + primes
    assert all(v < MOD64 for v in values)
    out, expected = run_is_prime_array(kmod, values)
    np.testing.assert_array_equal(out, expected)
    assert not out[: 2 * len(primes) - 1].any()


def test_is_prime_top_of_64_bits(kmod):
    lo = MOD64 - 2000
    out, expected = run_is_prime_array(kmod, list(range(lo, MOD64)))
    np.testing.assert_array_equal(out, expected)
    assert int(np.flatnonzero(out)[-1]) + lo == MOD64 - 59  # the largest 64-bit prime


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 8, 9, 13])
def test_is_prime_lengths_and_positions(kmod, length):
    # Values that reach Miller-Rabin (a prime, a composite with no small factor) mixed
    # with values that trial division decides, in every length around the native
    # kernel's batch of four: each verdict must land at its own index.
    hard = [2**64 - 59, 2**61 - 1, (2**32 - 5) ** 2, 3825123056546413051,
            1000000000000000003, 341550071728321, 4294967291 * 4294967279]
    easy = [0, 1, 2, 4, 9, 97, 2**64 - 1, 65537]
    rng = np.random.default_rng(length)
    for _ in range(20):
        pool = hard + easy
        values = [pool[int(k)] for k in rng.integers(0, len(pool), length)]
        out, expected = run_is_prime_array(kmod, values)
        np.testing.assert_array_equal(out, expected)


def test_is_prime_native_matches_pure_on_a_large_sample():
    rng = np.random.default_rng(7)
    n = 40_000
    bits = rng.integers(1, 65, n)
    values = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    values >>= (64 - bits).astype(np.uint64)
    # Odd values with no factor below 256 are the ones Miller-Rabin decides.
    rough = rng.integers(2**32, 2**64 - 1, 3 * n, dtype=np.uint64, endpoint=True) | 1
    rough = rough[np.all([rough % p != 0 for p in range(3, 256, 2)], axis=0)]
    values = np.concatenate([values, rough])
    got, want = np.zeros(len(values), bool), ~np.zeros(len(values), bool)
    native.is_prime_array(values, got)
    pure.is_prime_array(values, want)
    np.testing.assert_array_equal(got, want)
    assert 1000 < want.sum() < len(values) // 2


PRIMALITY_CHECK_C = """
#include "primality.h"
#if defined(_WIN32)
__declspec(dllexport)
#endif
void check(const uint64_t *values, uint8_t *out, int64_t count, int scalar) {
    int64_t i;
    if (scalar) {
        for (i = 0; i < count; i++) out[i] = (uint8_t)ac_is_prime64(values[i]);
    } else {
        ac_is_prime64_array(values, out, count);
    }
}
int int128_path(void) { return AC_PRIMALITY_INT128; }
"""


@pytest.mark.parametrize("portable", [False, True], ids=["int128", "portable"])
def test_primality_header_paths_agree_with_native(tmp_path, portable):
    # The path for compilers without unsigned __int128 (forced by AC_PRIMALITY_PORTABLE)
    # and the scalar ac_is_prime64 give the verdicts the built kernel gives.
    import ctypes

    library = compile_c(tmp_path, f"check{'_portable' if portable else ''}.so",
                        PRIMALITY_CHECK_C, "-std=c99", "-Wall", "-Werror", "-fPIC",
                        "-shared", *(["-DAC_PRIMALITY_PORTABLE"] if portable else []),
                        needs="primality.h")
    lib = ctypes.CDLL(str(library))
    assert lib.int128_path() == (0 if portable else 1)
    lib.check.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    rng = np.random.default_rng(11)
    values = np.concatenate([
        rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64, endpoint=True),
        rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64, endpoint=True) | 1,
        np.arange(2**64 - 3000, 2**64 - 1, dtype=np.uint64),
        np.array([n for n, _, _ in STRONG_PSEUDOPRIMES] + SMALL_CARMICHAEL
                 + [(2**32 - 5) ** 2, 2**64 - 59, 2**64 - 1], dtype=np.uint64),
        np.arange(0, 70_000, dtype=np.uint64),
    ])
    want = np.zeros(len(values), np.uint8)
    native.is_prime_array(values, want)
    for scalar in (0, 1):
        got = np.full(len(values), 7, np.uint8)
        lib.check(values.ctypes.data, got.ctypes.data, len(values), scalar)
        np.testing.assert_array_equal(got, want)


SIEVE_CHECK_C = """
#include "sieve.h"
#if defined(_WIN32)
__declspec(dllexport)
#endif
int64_t count(uint64_t a, uint64_t b, uint64_t limit) { return ac_count_odd_primes(a, b, limit); }
"""
SIEVE_VARIANTS = {
    "default": [],
    # what non-x86 builds take for the popcount; every prime one multiple at a time
    "plain": ["-DAC_NO_DISPATCH", "-DAC_SIEVE_PLAIN=1"],
    # segments of 1 and 61 bytes, chunks of 16: boundaries everywhere, so every prime
    # carries its next multiple across many of them, and segments that are no multiple
    # of 8 bytes
    "seg1": ["-DAC_SIEVE_SEG_BYTES=1", "-DAC_SIEVE_SMALL_PRIME=100000"],
    "seg61": ["-DAC_SIEVE_SEG_BYTES=61", "-DAC_SIEVE_CHUNK_BYTES=16"],
    # no presieve: 7 .. 167 (7 .. 29 put two multiples in one byte) go through the
    # eight-per-step loop, in chunks of 333 bytes of 1001-byte segments, and the primes
    # from 1001 on one multiple at a time
    "nopresieve": ["-DAC_PRESIEVE_GROUPS=0", "-DAC_SIEVE_SEG_BYTES=1001",
                   "-DAC_SIEVE_CHUNK_BYTES=333", "-DAC_SIEVE_SMALL_PRIME=300",
                   "-DAC_SIEVE_EIGHT_FACTOR=1"],
    # one presieve pattern (7 .. 17); every prime above 17 eight per step, over segments
    # that grow from 64 bytes with the sieving primes' reach
    "presieve1": ["-DAC_PRESIEVE_GROUPS=1", "-DAC_SIEVE_SEG_BYTES=64",
                  "-DAC_SIEVE_SEG_MAX_BYTES=65536", "-DAC_SIEVE_CHUNK_BYTES=40",
                  "-DAC_SIEVE_SMALL_PRIME=100000", "-DAC_SIEVE_EIGHT_FACTOR=1"],
}


@pytest.mark.parametrize("variant", sorted(SIEVE_VARIANTS))
def test_sieve_header_variants_and_any_limit_agree(tmp_path, variant):
    # ext/sieve.h built with other segment sizes, presieves and crossing loops counts
    # what the built kernel counts; and the count does not depend on how far the sieving
    # primes reach (`limit`), only which survivors Miller-Rabin has to decide.
    import ctypes

    library = compile_c(tmp_path, f"sieve_{variant}.so", SIEVE_CHECK_C, "-std=c99",
                        "-Wall", "-Werror", "-fPIC", "-shared", *SIEVE_VARIANTS[variant],
                        needs="sieve.h")
    lib = ctypes.CDLL(str(library))
    lib.count.argtypes = [ctypes.c_uint64] * 3
    lib.count.restype = ctypes.c_int64

    def count(lo, hi, limit=None):
        total = 1 if lo <= 2 < hi else 0
        a, b = max(lo, 3) | 1, hi - 1 if (hi - 1) % 2 else hi - 2
        if a > b:
            return total
        if limit is None:   # native.pyx's choice
            limit = min(math.isqrt(b), max(2**16, 2 * min((b - a) // 2 + 1, 2**23)))
        return total + lib.count(a, b, limit)

    rng = np.random.default_rng(7)
    ranges = [(0, 200), (0, 3_000_000), (1, 777_777), (5_000, 5_060), (2**32 - 267, 2**32),
              (2**32 - 5_000, 2**32 + 5_000), (10**12, 10**12 + 100_000),
              (10**18, 10**18 + 20_000), (2**64 - 20_000, 2**64), (2**64 - 59, 2**64)]
    ranges += [(int(lo), int(lo) + int(w)) for lo, w in zip(
        rng.integers(0, 3_000_000, 20), rng.integers(0, 200_000, 20))]
    for lo, hi in ranges:
        want = native.count_primes_range(lo, hi)
        assert count(lo, hi) == want, (lo, hi)
        if hi < 2**40:
            for limit in (1, 2, 10, 72, 73, 74, 166, 167, 168, 1000):
                assert count(lo, hi, limit) == want, (lo, hi, limit)


# ======================================================================================
# fannkuch_block
# ======================================================================================


@pytest.mark.parametrize("n", range(1, 9))
def test_fannkuch_whole_range_matches_reference(kmod, n):
    got = kmod.fannkuch_block(n, 0, math.factorial(n))
    assert type(got) is tuple and len(got) == 2
    assert all(type(v) is int for v in got)
    assert got == ref_fannkuch_block(n, 0, math.factorial(n))
    if n <= 7:
        assert got == ref_fannkuch_sequential(n)


@pytest.mark.parametrize("n,expected", [(7, (228, 16)), (8, (1616, 22))])
def test_fannkuch_published(kmod, n, expected):
    assert kmod.fannkuch_block(n, 0, math.factorial(n)) == expected


def test_fannkuch_published_9_native():
    assert native.fannkuch_block(9, 0, math.factorial(9)) == (8629, 30)


def test_fannkuch_published_9_pure():
    assert pure.fannkuch_block(9, 0, math.factorial(9)) == (8629, 30)


def test_fannkuch_published_10_native():
    assert native.fannkuch_block(10, 0, math.factorial(10)) == (73196, 38)


def test_fannkuch_published_9_in_blocks(kmod):
    # Blocks of n = 9 summed: the pure twin only does a few of them (speed).
    total = math.factorial(9)
    step = 9 * 8 * 7 * 6 * 5 if kmod is native else 37
    if kmod is native:
        blocks = [(a, min(a + step, total)) for a in range(0, total, step)]
        results = [kmod.fannkuch_block(9, a, b) for a, b in blocks]
        assert (sum(c for c, _ in results), max(m for _, m in results)) == (8629, 30)
    else:
        for a in (0, 1, 12345, total - 37):
            expected = ref_fannkuch_block_unranked(9, a, a + step)
            assert kmod.fannkuch_block(9, a, a + step) == expected


def test_fannkuch_every_single_permutation_n5(kmod):
    table = ref_flips_table(5)
    for i, flips in enumerate(table):
        assert kmod.fannkuch_block(5, i, i + 1) == (flips if i % 2 == 0 else -flips, flips)


@pytest.mark.parametrize("n", range(1, 9))
def test_fannkuch_empty_blocks(kmod, n):
    for start in {0, 1, math.factorial(n) // 2, math.factorial(n)}:
        if start <= math.factorial(n):
            assert kmod.fannkuch_block(n, start, start) == (0, 0)


@FEW
@given(data=st.data())
def test_fannkuch_random_blocks(kmod, data):
    n = data.draw(st.integers(1, 8), label="n")
    total = math.factorial(n)
    start = data.draw(st.integers(0, total), label="start")
    stop = data.draw(st.integers(start, min(total, start + 3000)), label="stop")
    assert kmod.fannkuch_block(n, start, stop) == ref_fannkuch_block(n, start, stop)


@FEW
@given(n=st.integers(6, 8), cuts=st.lists(st.integers(0, 40320), max_size=6))
def test_fannkuch_chunk_invariance(kmod, n, cuts):
    total = math.factorial(n)
    pieces = cuts_to_pieces(0, total, [c % (total + 1) for c in cuts])
    results = [kmod.fannkuch_block(n, a, b) for a, b in pieces]
    assert (sum(c for c, _ in results), max(m for _, m in results)) == ref_fannkuch_block(
        n, 0, total
    )
    for (a, b), got in zip(pieces, results):
        assert got == ref_fannkuch_block(n, a, b)


@pytest.mark.parametrize("n", [9, 10, 11, 12])
def test_fannkuch_blocks_at_large_n(kmod, n):
    total = math.factorial(n)
    for start in (0, 1, total // 3 + 1, total // 2, total - 150):
        stop = min(total, start + 150)
        assert kmod.fannkuch_block(n, start, stop) == ref_fannkuch_block_unranked(n, start, stop)


# ======================================================================================
# monte_carlo_hits
# ======================================================================================


@pytest.mark.parametrize(
    "seed,start,stop",
    [
        (0, 0, 2000),
        (1, 0, 1),
        (1234567, 0, 1500),
        (1234567, 777, 1777),
        (2**64 - 1, 0, 1000),
        (2**63, 10**12, 10**12 + 1000),
        (0x9E3779B97F4A7C15, 5, 505),
        (42, 2**63 - 1000, 2**63),  # 2*i+1 reaches 2**64 - 1: wraps around mod 2**64
        (2**64 - 1, 2**62 - 300, 2**62 + 300),
    ],
)
def test_monte_carlo_matches_reference(kmod, seed, start, stop):
    got = kmod.monte_carlo_hits(seed, start, stop)
    assert type(got) is int
    assert got == ref_hits(seed, start, stop)


def test_monte_carlo_single_samples(kmod):
    # Each single sample is 0 or 1 and agrees with the reference.
    for seed in (0, 1, 1234567, 2**64 - 1):
        for i in list(range(0, 40)) + [2**63 - 1, 2**62, 12345678901]:
            assert kmod.monte_carlo_hits(seed, i, i + 1) == ref_hits(seed, i, i + 1), (seed, i)


@pytest.mark.parametrize("start", [0, 1, 2**40, 2**63])
def test_monte_carlo_empty(kmod, start):
    assert kmod.monte_carlo_hits(99, start, start) == 0


@FEW
@given(
    seed=st.integers(0, MASK64),
    start=st.integers(0, 2**63),
    span=st.integers(0, 600),
    cuts=st.lists(st.integers(0, 600), max_size=5),
)
def test_monte_carlo_chunk_invariance(kmod, seed, start, span, cuts):
    stop = min(2**63, start + span)
    pieces = cuts_to_pieces(start, stop, [start + c for c in cuts])
    whole = kmod.monte_carlo_hits(seed, start, stop)
    assert sum(kmod.monte_carlo_hits(seed, a, b) for a, b in pieces) == whole
    assert whole == ref_hits(seed, start, stop)


def test_monte_carlo_native_large_range_split():
    seed = 2025
    whole = native.monte_carlo_hits(seed, 0, 2_000_000)
    parts = sum(native.monte_carlo_hits(seed, a, a + 250_000) for a in range(0, 2_000_000, 250_000))
    assert parts == whole
    # pi/4 of the samples, give or take 6 standard deviations.
    assert abs(whole / 2_000_000 - math.pi / 4) < 6 * math.sqrt(0.17 / 2_000_000)


def test_monte_carlo_native_equals_pure_medium():
    for seed, start, stop in [(0, 0, 20_000), (2**64 - 1, 2**63 - 20_000, 2**63)]:
        assert native.monte_carlo_hits(seed, start, stop) == pure.monte_carlo_hits(
            seed, start, stop
        )


# ======================================================================================
# The public wrappers
# ======================================================================================


def test_wrapper_mandelbrot_defaults(impl):
    img = kernels.mandelbrot(21, 14, impl=impl)
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.uint32 and img.shape == (14, 21)
    assert img.flags.c_contiguous and img.flags.writeable
    np.testing.assert_array_equal(img, ref_mandelbrot(21, 14, 256, -2.0, 1.0, -1.5, 1.5))


def test_wrapper_mandelbrot_arguments(impl):
    img = kernels.mandelbrot(17, 9, max_iter=77, bounds=(-0.75, -0.74, 0.1, 0.11), impl=impl)
    np.testing.assert_array_equal(img, ref_mandelbrot(17, 9, 77, -0.75, -0.74, 0.1, 0.11))


def test_wrapper_mandelbrot_default_impl_is_native():
    np.testing.assert_array_equal(
        kernels.mandelbrot(8, 8, max_iter=30), ref_mandelbrot(8, 8, 30, -2.0, 1.0, -1.5, 1.5)
    )


def test_wrapper_mandelbrot_fresh_and_empty(impl):
    a = kernels.mandelbrot(5, 4, max_iter=20, impl=impl)
    b = kernels.mandelbrot(5, 4, max_iter=20, impl=impl)
    assert a is not b and not np.shares_memory(a, b)
    a[:] = 0
    np.testing.assert_array_equal(b, ref_mandelbrot(5, 4, 20, -2.0, 1.0, -1.5, 1.5))
    assert kernels.mandelbrot(0, 3, impl=impl).shape == (3, 0)
    assert kernels.mandelbrot(3, 0, impl=impl).shape == (0, 3)
    assert kernels.mandelbrot(0, 0, impl=impl).shape == (0, 0)
    with pytest.raises(ValueError, match="max_iter"):
        kernels.mandelbrot(6, 5, max_iter=0, impl=impl)


def test_wrapper_count_primes(impl):
    assert kernels.count_primes(0, 10**5, impl=impl) == 9592
    assert kernels.count_primes(2**64 - 59, 2**64, impl=impl) == 1
    assert kernels.count_primes(2**64 - 58, 2**64, impl=impl) == 0
    assert kernels.count_primes(7, 7, impl=impl) == 0
    assert kernels.count_primes(10**12 - 1500, 10**12 + 1500, impl=impl) == ref_window_count(
        "10**12", 10**12 - 1500, 10**12 + 1500
    )
    got = kernels.count_primes(np.uint64(0), np.int16(100), impl=impl)
    assert type(got) is int and got == 25


def test_wrapper_is_prime_scalar(impl):
    for v, want in [(0, False), (2, True), (91, False), (2**64 - 59, True), (2**64 - 1, False)]:
        got = kernels.is_prime(v, impl=impl)
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_ and got.shape == ()
        assert bool(got) is want
    assert bool(kernels.is_prime(np.uint64(2**61 - 1), impl=impl)) is True
    assert bool(kernels.is_prime(np.int8(97), impl=impl)) is True


@pytest.mark.parametrize(
    "values,expected",
    [
        (np.array(7), np.array(True)),  # a 0-d array keeps its shape ()
        (np.array(2**64 - 59, dtype=np.uint64), np.array(True)),
        (np.array(9, dtype=np.int8), np.array(False)),
        ([[2, 3, 4], [5, 6, 2**64 - 59]], np.array([[True, True, False], [True, False, True]])),
        (np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3), dtype=bool)),
        (np.array([[11]], dtype=np.uint32), np.array([[True]])),
    ],
    ids=["0d-int", "0d-uint64", "0d-int8", "nested-list", "empty-2d", "1x1"],
)
def test_wrapper_is_prime_keeps_shape(impl, values, expected):
    got = kernels.is_prime(values, impl=impl)
    assert isinstance(got, np.ndarray) and got.dtype == np.bool_
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_wrapper_is_prime_lists(impl):
    values = [
        2**64 - 59, 2**64 - 1, 2**63 + 29, 2**63 - 25, 0, 1, 2, 2**61 - 1, 3825123056546413051,
    ]
    got = kernels.is_prime(values, impl=impl)
    assert got.dtype == np.bool_ and got.shape == (len(values),)
    assert got.tolist() == [ref_is_prime(v) for v in values]
    empty = kernels.is_prime([], impl=impl)
    assert isinstance(empty, np.ndarray) and empty.dtype == np.bool_ and empty.shape == (0,)


@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
)
def test_wrapper_is_prime_numpy_dtypes(impl, dtype):
    top = min(int(np.iinfo(dtype).max), 5000)
    values = np.arange(0, top + 1, dtype=dtype)[::-1]
    got = kernels.is_prime(values, impl=impl)
    assert got.dtype == np.bool_ and got.shape == values.shape
    np.testing.assert_array_equal(got, ref_sieve()[values.astype(np.int64)])


def test_wrapper_is_prime_shapes_and_layouts(impl):
    base = np.arange(2**64 - 240, 2**64, dtype=np.uint64)
    expected = np.array([ref_is_prime(int(v)) for v in base.tolist()])
    grid = base.reshape(12, 20)
    for arr, exp in [
        (grid, expected.reshape(12, 20)),
        (grid.T, expected.reshape(12, 20).T),  # not C-contiguous
        (grid[:, ::3], expected.reshape(12, 20)[:, ::3]),
        (base.reshape(2, 3, 40), expected.reshape(2, 3, 40)),
    ]:
        before = arr.copy()
        got = kernels.is_prime(arr, impl=impl)
        assert got.shape == arr.shape and got.dtype == np.bool_
        np.testing.assert_array_equal(got, exp)
        np.testing.assert_array_equal(arr, before)
    ro = base.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(kernels.is_prime(ro, impl=impl), expected)


def test_wrapper_fannkuch(impl):
    assert kernels.fannkuch(1, impl=impl) == (0, 0)
    assert kernels.fannkuch(7, impl=impl) == (228, 16)
    got = kernels.fannkuch(np.int64(8), impl=impl)
    assert type(got) is tuple and got == (1616, 22)


def test_wrapper_fannkuch_default_native():
    assert kernels.fannkuch(9) == (8629, 30)


@pytest.mark.parametrize("samples,seed", [(1, 0), (1000, 0), (777, 2**64 - 1), (1500, 1234567)])
def test_wrapper_monte_carlo_pi(impl, samples, seed):
    got = kernels.monte_carlo_pi(samples, seed=seed, impl=impl)
    assert type(got) is float
    assert got == 4 * ref_hits(seed, 0, samples) / samples


def test_wrapper_monte_carlo_pi_default_seed_is_zero(impl):
    assert kernels.monte_carlo_pi(500, impl=impl) == 4 * ref_hits(0, 0, 500) / 500
