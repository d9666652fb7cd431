"""The native kernels write into the caller's buffer and nowhere else.

Every native function that writes into a caller-provided array (``mandelbrot_rows``'s
``out``, under every instruction-set variant this machine can run, and
``is_prime_array``'s ``out``) runs here with its ``out`` cut from the middle of a larger
buffer filled with a canary pattern (a position-dependent byte sequence, so a shifted
or stray write shows). After each call every byte outside ``out`` must still hold the
pattern, the input must be unchanged, and ``out`` must hold what the pure twin computes
(the pure twin runs under the same canaries). Sizes cover the SIMD lane counts and
their tails; offsets move ``out`` across cache-line and vector boundaries.

Then the lies: ndarray subclasses whose ``len()`` or ``shape`` claim more than their
memory holds are refused or served by their real shape, never trusted.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import running_with

from allcores import native, pure

ISAS = native.available_isas()
# Wider than any vector store (a 512-bit register is 64 bytes) times the pixels a SIMD
# loop keeps in flight, so that an overrun by a whole vector group still lands in it.
GUARD_BYTES = 512
FUZZ = settings(max_examples=60)


def canary_bytes(nbytes: int) -> np.ndarray:
    """``nbytes`` bytes of the pattern, in a buffer aligned for any dtype (uint64)."""
    words = np.empty((nbytes + 7) // 8, dtype=np.uint64)
    raw = words.view(np.uint8)[:nbytes]
    raw[:] = (np.arange(nbytes, dtype=np.uint64) * 37 + 0xA5).astype(np.uint8)
    return raw


class Canaried:
    """An array of ``shape`` and ``dtype`` ``offset`` bytes into a canary-filled buffer
    with ``GUARD_BYTES`` or more of pattern on each side."""

    def __init__(self, shape: tuple[int, ...], dtype, offset: int):
        dtype = np.dtype(dtype)
        assert offset % dtype.alignment == 0
        self.start = GUARD_BYTES + offset
        self.stop = self.start + int(np.prod(shape)) * dtype.itemsize
        self.raw = canary_bytes(self.stop + GUARD_BYTES + offset)
        self.pristine = self.raw.copy()
        self.array = self.raw[self.start:self.stop].view(dtype).reshape(shape)

    def assert_outside_untouched(self) -> None:
        before = np.flatnonzero(self.raw[:self.start] != self.pristine[:self.start])
        assert before.size == 0, (
            f"{before.size} byte(s) written before out, the farthest "
            f"{self.start - int(before[0])} bytes before its start")
        after = np.flatnonzero(self.raw[self.stop:] != self.pristine[self.stop:])
        assert after.size == 0, (
            f"{after.size} byte(s) written after out, the farthest "
            f"{int(after[-1]) + 1} bytes past its end")

    def assert_untouched(self) -> None:
        self.assert_outside_untouched()
        np.testing.assert_array_equal(self.raw, self.pristine)


# --- mandelbrot_rows ----------------------------------------------------------------------


def mandelbrot_expected(rows, width, first_row, height, max_iter, bounds):
    out = np.zeros((rows, width), dtype=np.uint32)
    pure.mandelbrot_rows(out, first_row, height, max_iter, *bounds)
    return out


def check_mandelbrot_everywhere(rows, width, offset_px, extra_rows, max_iter, bounds):
    """Every ISA and the pure twin, each into its own canaried ``out``."""
    first_row = extra_rows // 2
    height = rows + extra_rows
    expected = None
    for runner in ["pure"] + ISAS:
        target = Canaried((rows, width), np.uint32, 4 * offset_px)
        if runner == "pure":
            pure.mandelbrot_rows(target.array, first_row, height, max_iter, *bounds)
            expected = target.array.copy()
        else:
            with running_with(runner):
                native.mandelbrot_rows(target.array, first_row, height, max_iter, *bounds)
            np.testing.assert_array_equal(target.array, expected, err_msg=runner)
        target.assert_outside_untouched()
    return expected


# Around the lane counts (2, 4, 8 doubles; several vectors in flight) and their tails.
EDGE_WIDTHS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65]


@pytest.mark.parametrize("width", EDGE_WIDTHS)
@pytest.mark.parametrize("offset_px", [0, 1, 3, 16])
def test_mandelbrot_rows_writes_only_out(width, offset_px):
    # A view where the set's edge crosses every row: counts from 0 to max_iter.
    got = check_mandelbrot_everywhere(3, width, offset_px, 4, 60, (-2.0, 0.6, -1.2, 1.2))
    assert got.shape == (3, width)


@FUZZ
@given(
    rows=st.integers(1, 6),
    width=st.integers(1, 70),
    offset_px=st.integers(0, 40),
    extra_rows=st.integers(0, 6),
    max_iter=st.integers(1, 80),
    x=st.floats(-2.5, 1.0),
    y=st.floats(-1.5, 1.0),
    span=st.floats(1e-3, 3.0),
)
def test_mandelbrot_rows_writes_only_out_fuzzed(rows, width, offset_px, extra_rows,
                                                max_iter, x, y, span):
    check_mandelbrot_everywhere(rows, width, offset_px, extra_rows, max_iter,
                                (x, x + span, y, y + span))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(0, 0), (0, 9), (9, 0)])
def test_mandelbrot_rows_empty_out_writes_nothing(isa, shape):
    target = Canaried(shape, np.uint32, 4)
    with running_with(isa):
        native.mandelbrot_rows(target.array, 0, 9, 50, -2.0, 1.0, -1.0, 1.0)
    target.assert_untouched()


def test_mandelbrot_rows_one_big_block_writes_only_out():
    # Many rows at once, as a thread's block of kernels.mandelbrot does.
    check_mandelbrot_everywhere(64, 129, 5, 10, 40, (-2.0, 1.0, -1.5, 1.5))


BAD_MANDELBROT_OUTS = {
    # Each made from the canaried buffer; each must be refused before a byte is written.
    "column-block": lambda raw, start: raw[start:start + 4 * 60].view(np.uint32)
    .reshape(6, 10)[1:4, 2:7],
    "row-strided": lambda raw, start: raw[start:start + 4 * 60].view(np.uint32)
    .reshape(6, 10)[::2],
    "unaligned": lambda raw, start: raw[start + 1:start + 1 + 4 * 30].view(np.uint32)
    .reshape(3, 10),
    "byteswapped": lambda raw, start: raw[start:start + 4 * 30]
    .view(np.dtype(np.uint32).newbyteorder()).reshape(3, 10),
    "int32": lambda raw, start: raw[start:start + 4 * 30].view(np.int32).reshape(3, 10),
    "1-D": lambda raw, start: raw[start:start + 4 * 30].view(np.uint32),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("make", BAD_MANDELBROT_OUTS.values(), ids=BAD_MANDELBROT_OUTS.keys())
def test_mandelbrot_rows_refused_out_writes_nothing(isa, make):
    target = Canaried((4 * 64,), np.uint8, 0)
    out = make(target.raw, target.start)
    with running_with(isa), pytest.raises(ValueError, match="out"):
        native.mandelbrot_rows(out, 0, 10, 50, -2.0, 1.0, -1.0, 1.0)
    target.assert_untouched()


# --- is_prime_array -----------------------------------------------------------------------

# Small and large, primes and the composites that fool weak tests (561: Carmichael;
# 3215031751: strong pseudoprime to bases 2, 3, 5, 7).
EDGE_VALUES = [2, 3, 4, 1, 0, 2**31 - 1, 561, 2**32 - 5, 3215031751, 2**61 - 1,
               2**64 - 59, 2**64 - 1]
EDGE_PRIMES = {2, 3, 2**31 - 1, 2**32 - 5, 2**61 - 1, 2**64 - 59}


def is_prime_everywhere(values_list, out_dtype, out_offset, values_offset):
    values = Canaried((len(values_list),), np.uint64, 8 * values_offset)
    values.array[:] = values_list
    values.pristine[:] = values.raw  # the values are part of what must not change
    expected = None
    for kmod in (pure, native):
        out = Canaried((len(values_list),), out_dtype, out_offset)
        kmod.is_prime_array(values.array, out.array)
        out.assert_outside_untouched()
        values.assert_untouched()
        if expected is None:
            expected = out.array.astype(bool)
        else:
            np.testing.assert_array_equal(out.array.astype(bool), expected)
        assert set(out.raw[out.start:out.stop].tolist()) <= {0, 1}
    return expected


@pytest.mark.parametrize("out_dtype", [np.bool_, np.uint8])
@pytest.mark.parametrize("size", [0, 1, 2, 7, 8, 9, 63, 64, 65])
@pytest.mark.parametrize("out_offset", [0, 1, 7, 64])
def test_is_prime_array_writes_only_out(out_dtype, size, out_offset):
    values = [EDGE_VALUES[i % len(EDGE_VALUES)] for i in range(size)]
    got = is_prime_everywhere(values, out_dtype, out_offset, 1)
    assert got.tolist() == [v in EDGE_PRIMES for v in values]


@FUZZ
@given(
    values=st.lists(st.integers(0, 2**64 - 1), max_size=80),
    out_dtype=st.sampled_from([np.bool_, np.uint8]),
    out_offset=st.integers(0, 70),
    values_offset=st.integers(0, 9),
)
def test_is_prime_array_writes_only_out_fuzzed(values, out_dtype, out_offset, values_offset):
    is_prime_everywhere(values, out_dtype, out_offset, values_offset)


# --- Lying subclasses ---------------------------------------------------------------------


class LyingLen(np.ndarray):
    """len() claims ten million elements, whatever the memory holds."""

    def __len__(self):
        return 10**7


class LyingShape(np.ndarray):
    """``shape``, ``size``, ``nbytes`` and len() (Python-level) all claim ten million."""

    @property
    def shape(self):
        return (10**7,) + np.ndarray.shape.__get__(self)[1:]

    @property
    def size(self):
        return 10**7

    @property
    def nbytes(self):
        return 10**7 * self.itemsize

    def __len__(self):
        return 10**7


LIARS = [LyingLen, LyingShape]


@pytest.mark.parametrize("kmod", [native, pure], ids=["native", "pure"])
@pytest.mark.parametrize("liar", LIARS)
def test_the_issue_case_lying_out_is_refused_without_writing(kmod, liar):
    # is_prime_array(values, out) with len(out) == len(values) but 4 bytes of out: the
    # native kernel used to write 1000 flags from out's start (a glibc abort).
    out = Canaried((4,), np.uint8, 3)
    with pytest.raises(ValueError, match="values and out: expected the same length, "
                                         "got: 1000 and 4"):
        kmod.is_prime_array(np.arange(1000, dtype=np.uint64), out.array.view(liar))
    out.assert_untouched()


@pytest.mark.parametrize("kmod", [native, pure], ids=["native", "pure"])
@pytest.mark.parametrize("liar", LIARS)
def test_lying_values_are_read_by_their_real_length(kmod, liar):
    values = Canaried((5,), np.uint64, 8)
    values.array[:] = [2, 4, 7, 9, 11]
    values.pristine[:] = values.raw
    out = Canaried((5,), np.bool_, 1)
    kmod.is_prime_array(values.array.view(liar), out.array.view(liar))
    assert out.array.tolist() == [True, False, True, False, True]
    out.assert_outside_untouched()
    values.assert_untouched()


@pytest.mark.parametrize("runner", ["pure"] + ISAS)
@pytest.mark.parametrize("liar", LIARS)
def test_lying_mandelbrot_out_is_filled_by_its_real_shape(runner, liar):
    target = Canaried((2, 9), np.uint32, 12)
    out = target.array.view(liar)
    if runner == "pure":
        pure.mandelbrot_rows(out, 1, 5, 30, -2.0, 1.0, -1.0, 1.0)
    else:
        with running_with(runner):
            native.mandelbrot_rows(out, 1, 5, 30, -2.0, 1.0, -1.0, 1.0)
    np.testing.assert_array_equal(target.array,
                                  mandelbrot_expected(2, 9, 1, 5, 30, (-2.0, 1.0, -1.0, 1.0)))
    target.assert_outside_untouched()


@pytest.mark.parametrize("kmod", [native, pure], ids=["native", "pure"])
@pytest.mark.parametrize("liar", LIARS)
def test_lying_mandelbrot_out_cannot_claim_rows_the_image_lacks(kmod, liar):
    # 3 real rows, first_row 3 of a 5-row image: refused by the real row count.
    target = Canaried((3, 4), np.uint32, 0)
    with pytest.raises(ValueError, match="first_row: expected first_row \\+ rows <= height, "
                                         "got: first_row=3, rows=3, height=5"):
        kmod.mandelbrot_rows(target.array.view(liar), 3, 5, 30, -2.0, 1.0, -1.0, 1.0)
    target.assert_untouched()
