"""The instruction-set variants of the mandelbrot, monte_carlo and fannkuch kernels: each gives
exactly the scalar loop's (and the pure twin's) results, whichever the CPU dispatch would
pick."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import compile_c, running_with

from allcores import native, pure

ISAS = native.available_isas()


def counts(module, rows, width, first_row, height, max_iter, bounds):
    out = np.zeros((rows, width), dtype=np.uint32)
    module.mandelbrot_rows(out, first_row, height, max_iter, *bounds)
    return out


def test_scalar_and_baseline_exist_everywhere():
    assert ISAS[:2] == ["scalar", "baseline"]
    assert native.mandelbrot_isa() in ISAS
    assert native.mandelbrot_isa() == ISAS[-1]  # the fastest available is the default


@settings(max_examples=40)
@given(
    width=st.integers(1, 37),  # widths that are not multiples of the lane count too
    rows=st.integers(1, 5),
    extra_rows=st.integers(0, 5),
    max_iter=st.integers(1, 300),
    x=st.floats(-2.5, 1.0),
    y=st.floats(-1.5, 1.0),
    span=st.floats(1e-6, 3.0),
)
def test_every_isa_matches_the_pure_twin(width, rows, extra_rows, max_iter, x, y, span):
    height = rows + extra_rows
    bounds = (x, x + span, y, y + span)
    expected = counts(pure, rows, width, extra_rows, height, max_iter, bounds)
    for isa in ISAS:
        with running_with(isa):
            got = counts(native, rows, width, extra_rows, height, max_iter, bounds)
        assert np.array_equal(got, expected), isa


@pytest.mark.parametrize("isa", ISAS)
def test_every_isa_gives_the_same_big_image(isa):
    with running_with("scalar"):
        expected = counts(native, 120, 333, 0, 120, 500, (-2.0, 1.0, -1.5, 1.5))
    with running_with(isa):
        assert np.array_equal(counts(native, 120, 333, 0, 120, 500, (-2.0, 1.0, -1.5, 1.5)),
                              expected)


def test_unknown_or_unavailable_isas_are_refused():
    with pytest.raises(ValueError, match="isa"):
        native.set_mandelbrot_isa("neon")
    for name in {"avx2", "avx512"} - set(ISAS):
        with pytest.raises(ValueError, match="not available"):
            native.set_mandelbrot_isa(name)


@pytest.mark.parametrize("value, problem", [
    ("bogus", "expected one of scalar, baseline, avx2, avx512 or auto, got: 'bogus'"),
    *((name, f"{name!r} is not available on this CPU; available: {', '.join(ISAS)} or auto")
      for name in native.ISA_NAMES if name not in ISAS),
])
def test_a_bad_environment_variable_warns_and_is_ignored(value, problem):
    """``ALLCORES_ISA`` is read at import: a value that cannot be used must not break
    ``import allcores`` (nor fail silently): a RuntimeWarning names the variable and what
    it takes, and every kernel keeps its fastest instruction set."""
    code = ("import allcores, allcores.kernels\n"
            "from allcores import native\n"
            "print(native.mandelbrot_isa(), native.monte_carlo_isa(), native.fannkuch_isa())\n"
            "print(allcores.kernels.count_primes(0, 100))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "ALLCORES_ISA": value}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (f"RuntimeWarning: ALLCORES_ISA={value!r} ignored: {problem}; each kernel runs "
            "with its fastest instruction set") in result.stderr
    assert result.stdout.split() == [*_fastest_isas(), "25"]


def _fastest_isas() -> list[str]:
    code = ("from allcores import native\n"
            "print(native.mandelbrot_isa(), native.monte_carlo_isa(), native.fannkuch_isa())")
    env = {key: value for key, value in os.environ.items() if key != "ALLCORES_ISA"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True).stdout.split()


@pytest.mark.parametrize("name", ISAS)
def test_the_environment_variable_forces_an_isa(name):
    code = "from allcores import native; print(native.mandelbrot_isa(), native.monte_carlo_isa())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "ALLCORES_ISA": name}, timeout=60, check=True)
    assert result.stdout.split() == [name, name]


# --- monte_carlo_hits -----------------------------------------------------------------------

# Wider than any variant's lane count (16 at most), so that lengths and starts cover every
# residue and a tail of every size.
MC_LANES_MAX = 16
MC_LIMIT = 2**63  # the largest stop the validation allows: 2*i + 1 then reaches 2**64 - 1
MC_SEEDS = [0, 1, 2, 0x9E3779B97F4A7C15, 2**63, 2**64 - 1, 0x0123456789ABCDEF,
            0xFEDCBA9876543210, 12345, 2**32 - 1, 2**32]


def hits_with(isa, seed, start, stop):
    with running_with(isa):
        return native.monte_carlo_hits(seed, start, stop)


def test_monte_carlo_defaults_to_the_fastest_isa():
    assert native.monte_carlo_isa() == ISAS[-1]


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**64 - 1),
    start=st.integers(0, MC_LIMIT),
    span=st.integers(0, 3 * MC_LANES_MAX + 5),
)
def test_every_monte_carlo_isa_matches_the_pure_twin(seed, start, span):
    stop = min(MC_LIMIT, start + span)
    expected = pure.monte_carlo_hits(seed, start, stop)
    for isa in ISAS:
        assert hits_with(isa, seed, start, stop) == expected, isa


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("seed", MC_SEEDS)
def test_every_monte_carlo_isa_over_every_start_and_length(isa, seed):
    # Starts at every residue modulo the lane counts (near 0, 2**32, 2**62 and the top of
    # the allowed range) and lengths from empty through several blocks plus each tail.
    for base in (0, 2**32 - 3, 2**62 + 5, MC_LIMIT - 3 * MC_LANES_MAX - 40):
        for offset in range(MC_LANES_MAX + 1):
            start = base + offset
            for length in (0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 40):
                stop = min(MC_LIMIT, start + length)
                assert hits_with(isa, seed, start, stop) == pure.monte_carlo_hits(
                    seed, start, stop), (start, stop)


@pytest.mark.parametrize("isa", ISAS)
def test_every_monte_carlo_isa_at_the_top_of_the_range(isa):
    # The last samples: the state arithmetic wraps around 2**64 (in the lanes' start
    # states as in their steps).
    for seed in MC_SEEDS:
        for back in (1, 2, 5, 8, 13, 16, 17, 100, 1001):
            start = MC_LIMIT - back
            assert hits_with(isa, seed, start, MC_LIMIT) == pure.monte_carlo_hits(
                seed, start, MC_LIMIT), (seed, back)


@pytest.mark.parametrize("isa", ISAS)
def test_every_monte_carlo_isa_on_long_ranges(isa):
    # Long enough for many blocks of every lane count; the scalar loop is the yardstick
    # (it is checked against the pure twin above and in test_kernels).
    for seed in MC_SEEDS:
        for start, stop in [(0, 100_003), (2**40 + 1, 2**40 + 77_777),
                            (MC_LIMIT - 54_321, MC_LIMIT)]:
            assert hits_with(isa, seed, start, stop) == hits_with("scalar", seed, start, stop)


@pytest.mark.parametrize("isa", ISAS)
def test_monte_carlo_chunks_add_up_under_every_isa(isa):
    seed, start, stop = 2026, 3, 10_000
    whole = hits_with(isa, seed, start, stop)
    cuts = [start, 5, 6, 17, 18, 1000, 1001, 4097, stop]
    assert sum(hits_with(isa, seed, a, b) for a, b in zip(cuts, cuts[1:])) == whole
    assert whole == pure.monte_carlo_hits(seed, start, stop)


def test_monte_carlo_isa_is_chosen_apart_from_mandelbrot():
    before = native.mandelbrot_isa(), native.monte_carlo_isa()
    try:
        native.set_monte_carlo_isa("scalar")
        assert native.monte_carlo_isa() == "scalar"
        assert native.mandelbrot_isa() == before[0]
        native.set_monte_carlo_isa("auto")
        assert native.monte_carlo_isa() == ISAS[-1]
    finally:
        native.set_monte_carlo_isa(before[1])


def test_unknown_or_unavailable_monte_carlo_isas_are_refused():
    with pytest.raises(ValueError, match="isa"):
        native.set_monte_carlo_isa("neon")
    for name in {"avx2", "avx512"} - set(ISAS):
        with pytest.raises(ValueError, match="not available"):
            native.set_monte_carlo_isa(name)


# The hit counts cannot show a uniform that is off by one unit in the last place (such a
# point lands on the other side of the circle about once in 2**50 samples), so the
# header's two spellings of a uniform are compared bit for bit, compiled from ext/.
UNIT_CHECK = r"""
#include <stdio.h>
#include "monte_carlo.h"
static int same(uint64_t z) {
    double a = ac_mc_unit_convert(z), b = ac_mc_unit_bits(z);
    double c = (double)(z >> 11) * 0x1.0p-53;  /* ac_uniform's expression */
    return memcmp(&a, &b, sizeof a) == 0 && memcmp(&a, &c, sizeof a) == 0;
}
int main(void) {
    uint64_t bad = 0, z, k;
    int shift;
    for (shift = 0; shift < 64; shift++) {  /* single bits, their neighbours, all ones */
        z = (uint64_t)1 << shift;
        bad += !same(z) + !same(z - 1) + !same(z + 1) + !same(~z);
    }
    bad += !same(0) + !same(~(uint64_t)0);
    for (k = 0; k < 20000000; k++) bad += !same(ac_mix64(k * 0x9E3779B97F4A7C15ull));
    printf("%llu\n", (unsigned long long)bad);
    return 0;
}
"""


def test_the_two_spellings_of_a_uniform_agree_bit_for_bit(tmp_path):
    program = compile_c(tmp_path, "unit_check", UNIT_CHECK, "-ffp-contract=off",
                        needs="monte_carlo.h")
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=120,
                            check=True)
    assert result.stdout.strip() == "0"


# --- fannkuch_block ---------------------------------------------------------------------

FANNKUCH_PUBLISHED = {7: (228, 16), 8: (1616, 22), 9: (8629, 30), 10: (73196, 38),
                      11: (556355, 51), 12: (3968050, 65)}


def fannkuch_with(isa, n, start, stop):
    with running_with(isa):
        return native.fannkuch_block(n, start, stop)


def test_fannkuch_defaults_to_its_fastest_isa():
    # The shuffle loop needs AVX2 (and gains nothing from AVX-512).
    assert native.fannkuch_isa() == ("avx2" if "avx2" in ISAS else "baseline")


@pytest.mark.parametrize("n", range(1, 10))
def test_every_fannkuch_isa_on_the_whole_range(n):
    expected = pure.fannkuch_block(n, 0, math.factorial(n))
    if n in FANNKUCH_PUBLISHED:
        assert expected == FANNKUCH_PUBLISHED[n]
    for isa in ISAS:
        assert fannkuch_with(isa, n, 0, math.factorial(n)) == expected, isa


@pytest.mark.parametrize("isa", ISAS)
def test_every_fannkuch_isa_on_the_whole_range_n10(isa):
    assert fannkuch_with(isa, 10, 0, math.factorial(10)) == FANNKUCH_PUBLISHED[10]


@pytest.mark.slow
def test_the_pure_twin_on_the_whole_range_n10():
    assert pure.fannkuch_block(10, 0, math.factorial(10)) == FANNKUCH_PUBLISHED[10]


@pytest.mark.parametrize("isa", ISAS)
def test_every_fannkuch_isa_on_every_single_permutation(isa):
    # Single permutations at odd and even indices (the shuffle loop counts pairs).
    for n in range(1, 7):
        for i in range(math.factorial(n)):
            assert fannkuch_with(isa, n, i, i + 1) == pure.fannkuch_block(n, i, i + 1), (n, i)


@pytest.mark.parametrize("isa", ISAS)
def test_every_fannkuch_isa_on_short_blocks_everywhere(isa):
    # Every start and every length up to 9 for n = 5 (starts inside every rotation
    # cycle, odd and even, empty blocks and blocks ending at n!), then around the
    # carries of every digit for n = 9 and 10.
    total = math.factorial(5)
    for start in range(total + 1):
        for stop in range(start, min(total, start + 9) + 1):
            assert fannkuch_with(isa, 5, start, stop) == pure.fannkuch_block(5, start, stop)
    for n in (9, 10):
        total = math.factorial(n)
        for digit in range(1, n):
            for carry in (math.factorial(digit), total - math.factorial(digit)):
                for start in range(max(0, carry - 3), min(total, carry + 3) + 1):
                    for length in (0, 1, 2, 3, 5, 24, 121):
                        stop = min(total, start + length)
                        assert fannkuch_with(isa, n, start, stop) == pure.fannkuch_block(
                            n, start, stop), (n, start, stop)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_fannkuch_isa_on_random_blocks(data):
    n = data.draw(st.integers(1, 10), label="n")
    total = math.factorial(n)
    start = data.draw(st.integers(0, total), label="start")
    stop = data.draw(st.integers(start, min(total, start + 5000)), label="stop")
    expected = pure.fannkuch_block(n, start, stop)
    for isa in ISAS:
        assert fannkuch_with(isa, n, start, stop) == expected, isa


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 10), cuts=st.lists(st.integers(0, 10**7), max_size=8))
def test_every_fannkuch_isa_adds_up_over_random_splits(n, cuts):
    # Blocks as the engine makes them: anywhere, of any size, summing to the whole.
    total = math.factorial(n)
    bounds = sorted({0, total, *(c % (total + 1) for c in cuts)})
    for isa in ISAS:
        parts = [fannkuch_with(isa, n, a, b) for a, b in zip(bounds, bounds[1:])]
        whole = (sum(c for c, _ in parts), max(m for _, m in parts))
        assert whole == fannkuch_with("scalar", n, 0, total), isa
        if n <= 9:
            assert whole == pure.fannkuch_block(n, 0, total), isa


@pytest.mark.parametrize("isa", ISAS)
def test_every_fannkuch_isa_n11(isa):
    assert fannkuch_with(isa, 11, 0, math.factorial(11)) == FANNKUCH_PUBLISHED[11]


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISAS)
def test_every_fannkuch_isa_n12(isa):
    assert fannkuch_with(isa, 12, 0, math.factorial(12)) == FANNKUCH_PUBLISHED[12]


@pytest.mark.parametrize("isa", ISAS)
def test_every_fannkuch_isa_n12_in_blocks(isa):
    # Pieces of n = 12 (starts deep in the high digits) against the portable loop.
    total = math.factorial(12)
    for start in (0, 1, total // 3 + 1, total // 2 - 7, total - 4001):
        stop = min(total, start + 4001)
        assert fannkuch_with(isa, 12, start, stop) == fannkuch_with("scalar", 12, start,
                                                                    stop), start


def test_fannkuch_isa_is_chosen_apart_from_the_others():
    before = native.mandelbrot_isa(), native.monte_carlo_isa(), native.fannkuch_isa()
    try:
        native.set_fannkuch_isa("scalar")
        assert native.fannkuch_isa() == "scalar"
        assert (native.mandelbrot_isa(), native.monte_carlo_isa()) == before[:2]
        native.set_fannkuch_isa("auto")
        assert native.fannkuch_isa() == before[2]
    finally:
        native.set_fannkuch_isa(before[2])


def test_unknown_or_unavailable_fannkuch_isas_are_refused():
    with pytest.raises(ValueError, match="isa"):
        native.set_fannkuch_isa("neon")
    for name in {"avx2", "avx512"} - set(ISAS):
        with pytest.raises(ValueError, match="not available"):
            native.set_fannkuch_isa(name)


@pytest.mark.parametrize("name", ISAS)
def test_the_environment_variable_forces_the_fannkuch_isa(name):
    code = "from allcores import native; print(native.fannkuch_isa())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "ALLCORES_ISA": name}, timeout=60, check=True)
    assert result.stdout.split() == [name]


@pytest.mark.parametrize("flags", [[], ["-DAC_NO_DISPATCH"]])
def test_the_fannkuch_header_builds_without_dispatch_too(tmp_path, flags):
    # A compiler without x86 dispatch (AC_NO_DISPATCH stands in for one) gets the
    # portable loop alone, with the same answers.
    program = compile_c(tmp_path, "fannkuch_check", FANNKUCH_CHECK, *flags,
                        needs="fannkuch.h")
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=120,
                            check=True)
    assert result.stdout.split() == ["73196", "38", "73196", "38"]


FANNKUCH_CHECK = r"""
#include <stdio.h>
#include "fannkuch.h"
int main(void) {
    int64_t checksum;
    int max_flips, isa = ac_fannkuch_best_isa();
    ac_fannkuch_block_isa(1, 10, 0, 3628800, &checksum, &max_flips);
    printf("%lld %d ", (long long)checksum, max_flips);
    ac_fannkuch_block_isa(isa, 10, 0, 3628800, &checksum, &max_flips);
    printf("%lld %d\n", (long long)checksum, max_flips);
    return 0;
}
"""
