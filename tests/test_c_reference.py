"""The benchmark's plain-C reference kernels (benchmarks/c_reference.py) agree with
``allcores.native`` on every kernel, so "native vs C" compares equal work.

The module is loaded by path, as the benchmark may be run from anywhere; every test is
skipped where there is no C compiler, or no benchmarks/ (the sdist carries no .c files).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from allcores import native

MODULE_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "c_reference.py"
if not MODULE_PATH.is_file():
    pytest.skip(f"no {MODULE_PATH}", allow_module_level=True)


def _load_module():
    spec = importlib.util.spec_from_file_location("allcores_bench_c_reference", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


c_reference = _load_module()


@pytest.fixture(scope="module")
def ref():
    built = c_reference.build()
    if built is None:
        pytest.skip(f"no C reference: {c_reference.build_error()}")
    return built


# --- the build itself -------------------------------------------------------------------


def test_machine_facts(ref):
    assert ref.flags == ["-O3", "-ffp-contract=off", "-fPIC", "-shared"]
    assert ref.compiler and ref.compiler_version
    assert ref.library_path.is_file()
    assert ref.command[-1].endswith("reference.c")


def test_no_compiler_gives_none_and_a_reason():
    assert c_reference.build(compiler="no-such-compiler-allcores") is None
    assert "no C compiler" in c_reference.build_error()


def test_failed_compile_gives_none_and_a_reason(tmp_path):
    if c_reference.find_compiler() is None:
        pytest.skip("no C compiler")
    # `false` is a command that exists and fails, like a compiler that rejects the source.
    if c_reference.shutil.which("false") is None:
        pytest.skip("no `false` command")
    assert c_reference.build(out_dir=tmp_path, compiler="false") is None
    assert "compile failed" in c_reference.build_error()


def test_missing_source_gives_none_and_a_reason(monkeypatch, tmp_path):
    if c_reference.find_compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(c_reference, "SOURCE", tmp_path / "reference.c")
    assert c_reference.build(out_dir=tmp_path) is None
    assert "source not found" in c_reference.build_error()


def test_two_builds_into_one_directory_both_work(ref, tmp_path):
    first = c_reference.build(out_dir=tmp_path)
    second = c_reference.build(out_dir=tmp_path)
    assert first.library_path != second.library_path
    assert first.count_primes_range(0, 1000) == second.count_primes_range(0, 1000) == 168


def test_bad_arguments_never_reach_c(ref):
    with pytest.raises(ValueError):
        ref.mandelbrot_rows(np.zeros((4, 4), dtype=np.uint32)[:, ::2], 0, 4, 10, -2, 1, -1, 1)
    with pytest.raises(ValueError):
        ref.mandelbrot_rows(np.zeros((4, 4), dtype=np.uint32), 1, 4, 10, -2, 1, -1, 1)
    with pytest.raises(ValueError):
        ref.is_prime_array(np.zeros(3, dtype=np.uint64), np.zeros(2, dtype=np.uint8))
    with pytest.raises(ValueError):
        ref.count_primes_range(0, 2**64 + 1)
    with pytest.raises(ValueError):
        ref.fannkuch_block(13, 0, 1)
    with pytest.raises(ValueError):
        ref.fannkuch_block(5, 0, 121)
    with pytest.raises(ValueError):
        ref.monte_carlo_hits(2**64, 0, 1)


# --- the kernels agree with allcores.native ---------------------------------------------

MANDELBROT_CASES = [
    # (width, height, max_iter, view, row blocks)
    (64, 48, 256, (-2.0, 1.0, -1.5, 1.5), [(0, 48)]),
    (61, 37, 1000, (-0.75, -0.74, 0.10, 0.11), [(0, 10), (10, 37)]),
    (33, 65, 500, (-1.8, -1.7, -0.05, 0.05), [(0, 1), (1, 64), (64, 65)]),
    (17, 9, 1, (-2.0, 1.0, -1.0, 1.0), [(0, 9)]),  # the least max_iter (0 is refused)
    (1, 1, 1, (-2.0, 1.0, -1.0, 1.0), [(0, 1)]),
    (40, 30, 2**32 - 1, (2.0, 3.0, 2.0, 3.0), [(3, 5)]),  # all escape: max_iter is passed
]


@pytest.mark.parametrize("width, height, max_iter, view, blocks", MANDELBROT_CASES)
def test_mandelbrot_bit_identical(ref, width, height, max_iter, view, blocks):
    for first, last in blocks:
        expected = np.zeros((last - first, width), dtype=np.uint32)
        got = np.full((last - first, width), 7, dtype=np.uint32)
        native.mandelbrot_rows(expected, first, height, max_iter, *view)
        ref.mandelbrot_rows(got, first, height, max_iter, *view)
        np.testing.assert_array_equal(got, expected)


def test_mandelbrot_empty_block(ref):
    out = np.zeros((0, 8), dtype=np.uint32)
    ref.mandelbrot_rows(out, 5, 5, 100, -2, 1, -1, 1)


PRIME_RANGES = [
    (0, 0), (0, 1), (0, 2), (0, 3), (2, 3), (3, 3), (3, 4), (1, 2), (0, 100), (0, 10**6),
    (999_983, 999_984), (10**9, 10**9 + 10**6),
    (2**32 - 10**5, 2**32 + 10**5), (2**32 - 5, 2**32 + 16),
    (4759123141 - 10**4, 4759123141 + 10**4),      # the Miller-Rabin base-set switch
    (10**12, 10**12 + 3 * 2**19 + 123),             # several sieve segments
    (2**63 - 10**4, 2**63 + 10**4),
    (2**64 - 2**20 - 7, 2**64),                     # two segments, up to the top
    (2**64 - 2 * 10**4, 2**64), (2**64 - 59, 2**64 - 58), (2**64 - 58, 2**64),
    (2**64 - 1, 2**64), (2**64, 2**64),
]


@pytest.mark.parametrize("lo, hi", PRIME_RANGES)
def test_count_primes_range(ref, lo, hi):
    assert ref.count_primes_range(lo, hi) == native.count_primes_range(lo, hi)


def test_count_primes_published_values(ref):
    assert ref.count_primes_range(0, 100) == 25
    assert ref.count_primes_range(0, 10**6) == 78498
    assert ref.count_primes_range(2**64 - 59, 2**64) == 1     # 2**64 - 59 is the last


TRICKY = [
    0, 1, 2, 3, 4, 5, 9, 25, 37, 41, 1369, 1367, 1371,
    561, 41041, 825265, 2047, 1373653, 25326001, 3215031751,     # Carmichael, spsp
    4759123141, 4759123139, 4759123143, 1122004669633,
    3825123056546413051,                          # spsp to every prime base up to 23
    2**31 - 1, 2**32 - 5, 2**32 + 15, 2**61 - 1, 2**63 - 25,
    65521**2, 4294967291**2, 1000003**2, 4294967291 * 4294967279,
    2**64 - 59, 2**64 - 58, 2**64 - 1, 2**64 - 83, 2**63, 2**63 + 1,
]


def _check_is_prime(ref, values):
    values = np.asarray(values, dtype=np.uint64)
    expected = np.zeros(len(values), dtype=np.bool_)
    native.is_prime_array(values, expected)
    for out in (np.ones(len(values), dtype=np.bool_), np.full(len(values), 9, np.uint8)):
        ref.is_prime_array(values, out)
        np.testing.assert_array_equal(out.astype(np.bool_), expected)
    return expected


def test_is_prime_tricky_values(ref):
    flags = _check_is_prime(ref, TRICKY)
    known = {2, 3, 5, 37, 41, 1367, 2**31 - 1, 2**32 - 5, 2**32 + 15, 2**61 - 1,
             2**63 - 25, 2**64 - 59, 2**64 - 83}
    for value, flag in zip(TRICKY, flags):
        assert bool(flag) == (value in known), value


def test_is_prime_ranges_and_random(ref):
    _check_is_prime(ref, range(0, 5000))
    _check_is_prime(ref, range(2**64 - 3000, 2**64))
    rng = np.random.default_rng(1)
    for low, high in ((2**20, 2**32), (2**32, 4759123141 * 2), (2**62, 2**63)):
        _check_is_prime(ref, rng.integers(low, high, size=5000, dtype=np.uint64))
    big = rng.integers(0, 2**63, size=5000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    _check_is_prime(ref, big)


def test_is_prime_empty(ref):
    ref.is_prime_array(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.bool_))


@pytest.mark.parametrize("n", range(1, 10))
def test_fannkuch_whole(ref, n):
    assert ref.fannkuch_block(n, 0, math.factorial(n)) == native.fannkuch_block(
        n, 0, math.factorial(n))


def test_fannkuch_published(ref):
    assert ref.fannkuch_block(7, 0, 5040) == (228, 16)
    assert ref.fannkuch_block(9, 0, 362880) == (8629, 30)


@pytest.mark.parametrize("n, cuts", [
    (4, [0, 1, 2, 23, 24]),
    (8, [0, 1, 777, 5040, 5041, 40319, 40320]),
    (9, [0, 12345, 100000, 362879, 362880]),
    (12, [0, 20000]),
    (12, [math.factorial(12) - 30000, math.factorial(12) - 1, math.factorial(12)]),
    (11, [19958400, 19990000]),
])
def test_fannkuch_blocks(ref, n, cuts):
    for start, stop in zip(cuts, cuts[1:]):
        assert ref.fannkuch_block(n, start, stop) == native.fannkuch_block(n, start, stop)
    assert ref.fannkuch_block(n, 5, 5) == (0, 0)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 + 7, 2**64 - 1])
@pytest.mark.parametrize("start, stop", [
    (0, 0), (0, 1), (0, 100_000), (7, 31), (10**9, 10**9 + 50_000), (2**63 - 20_000, 2**63),
])
def test_monte_carlo_hits(ref, seed, start, stop):
    assert ref.monte_carlo_hits(seed, start, stop) == native.monte_carlo_hits(seed, start, stop)
