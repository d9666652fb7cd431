"""Argument validation of the kernels (native and pure alike) and of the wrappers.

The rules: every integer argument goes through ``operator.index`` (float, str, None ->
TypeError; numpy integer scalars are integers; bools, Python's or numpy's, are not:
TypeError "expected an integer, got: bool"); out-of-range integers (``max_iter=0``
included), empty or non-finite bounds, badly shaped/typed/laid-out/unaligned arrays and
an ``out`` sharing memory with an input -> ValueError; a non-array where an array
belongs -> TypeError; a result larger than the machine's memory -> MemoryError, before
anything is allocated.  Native and pure raise the same exception type for the same
input (both run every case below), with the same message (checked on a sample).
Messages are otherwise only checked for naming the offending argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from allcores import _block_task, kernels, native, pure

NAN = float("nan")
INF = float("inf")


@pytest.fixture(params=["native", "pure"], scope="module")
def kmod(request):
    return {"native": native, "pure": pure}[request.param]


@pytest.fixture(params=["native", "python"], scope="module")
def impl(request):
    return request.param


def raises_same_in_both(call):
    """Run ``call(module)`` for native and pure; return both outcomes, each either
    ('ok', result) or ('raised', exception type)."""
    outcomes = []
    for mod in (native, pure):
        try:
            result = call(mod)
        except Exception as exc:  # noqa: BLE001 - comparing exception types
            outcomes.append(("raised", type(exc)))
        else:
            outcomes.append(("ok", result))
    return outcomes


# ======================================================================================
# mandelbrot_rows
# ======================================================================================

GOOD = dict(first_row=0, height=3, max_iter=10, xmin=-2.0, xmax=1.0, ymin=-1.0, ymax=1.0)


_FRESH = object()


def call_mandelbrot(kmod, out=_FRESH, **overrides):
    args = {**GOOD, **overrides}
    if out is _FRESH:
        out = np.zeros((3, 4), dtype=np.uint32)
    return kmod.mandelbrot_rows(
        out, args["first_row"], args["height"], args["max_iter"],
        args["xmin"], args["xmax"], args["ymin"], args["ymax"],
    )


def test_mandelbrot_good_call_works(kmod):
    out = np.zeros((3, 4), dtype=np.uint32)
    call_mandelbrot(kmod, out)
    assert out.any()  # the bad-input cases below differ from this call in one argument


MANDEL_VALUE_ERRORS = [
    ({"first_row": -1}, "first_row"),
    ({"first_row": -(2**70)}, "first_row"),
    ({"height": -1}, "height"),
    ({"height": -(2**64)}, "height"),
    ({"first_row": 1}, "first_row|height|rows"),  # 1 + 3 rows > height 3
    ({"height": 2}, "first_row|height|rows"),  # 3 rows > height 2
    ({"first_row": 2**64, "height": 3}, "first_row|height|rows"),
    ({"max_iter": -1}, "max_iter"),
    ({"max_iter": 0}, r"max_iter: expected 1 <= max_iter"),  # an all-zero image, silently
    ({"max_iter": 2**32}, "max_iter"),
    ({"max_iter": 2**64}, "max_iter"),
    ({"max_iter": -(2**80)}, "max_iter"),
    ({"xmin": NAN}, "xmin"),
    ({"xmin": -INF}, "xmin"),
    ({"xmax": INF}, "xmax"),
    ({"xmax": NAN}, "xmax"),
    ({"ymin": -INF}, "ymin"),
    ({"ymin": NAN}, "ymin"),
    ({"ymax": INF}, "ymax"),
    ({"ymax": NAN}, "ymax"),
    ({"xmin": np.float64(NAN)}, "xmin"),
    ({"xmin": 1.0, "xmax": 1.0}, "xmin|xmax"),
    ({"xmin": 2.0, "xmax": 1.0}, "xmin|xmax"),
    ({"ymin": 0.5, "ymax": 0.5}, "ymin|ymax"),
    ({"ymin": 1.0, "ymax": -1.0}, "ymin|ymax"),
    ({"xmin": 0.0, "xmax": -0.0}, "xmin|xmax"),  # equal as numbers: empty
]


@pytest.mark.parametrize("overrides,name", MANDEL_VALUE_ERRORS)
def test_mandelbrot_value_errors(kmod, overrides, name):
    out = np.full((3, 4), 12345, dtype=np.uint32)
    with pytest.raises(ValueError, match=name):
        call_mandelbrot(kmod, out, **overrides)
    assert (out == 12345).all()  # nothing was written


MANDEL_TYPE_ERRORS = [
    ({"first_row": 0.0}, "first_row"),
    ({"first_row": None}, "first_row"),
    ({"first_row": "0"}, "first_row"),
    ({"height": 3.0}, "height"),
    ({"height": np.float64(3.0)}, "height"),
    ({"height": "3"}, "height"),
    ({"max_iter": 10.0}, "max_iter"),
    ({"max_iter": 1.5}, "max_iter"),
    ({"max_iter": None}, "max_iter"),
    ({"max_iter": "10"}, "max_iter"),
    ({"max_iter": np.float32(10)}, "max_iter"),
    ({"max_iter": True}, "max_iter: expected an integer, got: bool"),
    ({"max_iter": np.True_}, "max_iter: expected an integer, got: bool"),
    ({"first_row": False}, "first_row: expected an integer, got: bool"),
    ({"height": True}, "height: expected an integer, got: bool"),
    ({"xmin": "-2"}, "xmin"),
    ({"xmin": None}, "xmin"),
    ({"xmax": "1.0"}, "xmax"),
    ({"xmax": None}, "xmax"),
    ({"ymin": None}, "ymin"),
    ({"ymin": 1j}, "ymin"),
    ({"ymax": "1"}, "ymax"),
    ({"ymax": None}, "ymax"),
    ({"ymax": complex(1, 0)}, "ymax"),
]


@pytest.mark.parametrize("overrides,name", MANDEL_TYPE_ERRORS)
def test_mandelbrot_type_errors(kmod, overrides, name):
    with pytest.raises(TypeError, match=name):
        call_mandelbrot(kmod, **overrides)


def _read_only():
    a = np.zeros((3, 4), dtype=np.uint32)
    a.setflags(write=False)
    return a


MANDEL_BAD_OUT_VALUE = {
    "float64": lambda: np.zeros((3, 4), dtype=np.float64),
    "int32": lambda: np.zeros((3, 4), dtype=np.int32),
    "int64": lambda: np.zeros((3, 4), dtype=np.int64),
    "uint64": lambda: np.zeros((3, 4), dtype=np.uint64),
    "uint16": lambda: np.zeros((3, 4), dtype=np.uint16),
    "float32": lambda: np.zeros((3, 4), dtype=np.float32),
    "byteswapped-uint32": lambda: np.zeros((3, 4), dtype=np.dtype(np.uint32).newbyteorder()),
    "1-D": lambda: np.zeros(12, dtype=np.uint32),
    "3-D": lambda: np.zeros((3, 4, 1), dtype=np.uint32),
    "0-D": lambda: np.zeros((), dtype=np.uint32),
    "transposed": lambda: np.zeros((4, 3), dtype=np.uint32).T,
    "fortran": lambda: np.zeros((3, 4), dtype=np.uint32, order="F"),
    "column-strided": lambda: np.zeros((3, 8), dtype=np.uint32)[:, ::2],
    "row-strided": lambda: np.zeros((6, 4), dtype=np.uint32)[::2],
    "reversed-rows": lambda: np.zeros((3, 4), dtype=np.uint32)[::-1],
    "read-only": _read_only,
}


@pytest.mark.parametrize("make", MANDEL_BAD_OUT_VALUE.values(), ids=MANDEL_BAD_OUT_VALUE.keys())
def test_mandelbrot_bad_out_value_error(kmod, make):
    out = make()
    with pytest.raises(ValueError, match="out"):
        call_mandelbrot(kmod, out)


@pytest.mark.parametrize(
    "out",
    [None, [[0] * 4] * 3, ((0,) * 4,) * 3, 7, "out", bytearray(48), memoryview(bytearray(48))],
    ids=["None", "list", "tuple", "int", "str", "bytearray", "memoryview"],
)
def test_mandelbrot_out_not_ndarray(kmod, out):
    with pytest.raises(TypeError, match="out"):
        call_mandelbrot(kmod, out)


def test_mandelbrot_out_readonly_view_of_writeable(kmod):
    base = np.zeros((3, 4), dtype=np.uint32)
    view = base.view()
    view.setflags(write=False)
    with pytest.raises(ValueError, match="out"):
        call_mandelbrot(kmod, view)
    assert not base.any()


def test_mandelbrot_integers_accepted(kmod):
    out = np.zeros((3, 4), dtype=np.uint32)
    expected = np.zeros((3, 4), dtype=np.uint32)
    call_mandelbrot(kmod, expected)
    for overrides in (
        {"first_row": np.int64(0), "height": np.uint64(3), "max_iter": np.int16(10)},
        {"first_row": np.uint8(0), "height": np.int8(3), "max_iter": np.uint32(10)},
        {"xmin": -2, "xmax": 1, "ymin": np.int64(-1), "ymax": np.float32(1.0)},
    ):
        out[:] = 0
        call_mandelbrot(kmod, out, **overrides)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "first_row,height", [(0, 2**62), (0, 2**63), (0, 2**64), (2**63, 2**64), (2**64, 2**64 + 3)]
)
def test_mandelbrot_huge_height_same_in_native_and_pure(first_row, height):
    # Valid by the contract (first_row + rows <= height); if a kernel cannot represent
    # it, both must say so with the same exception type, and a ValueError at that.
    def call(mod):
        out = np.zeros((3, 4), dtype=np.uint32)
        mod.mandelbrot_rows(out, first_row, height, 10, -2.0, 1.0, -1.0, 1.0)
        return out.tolist()

    outcome_native, outcome_pure = raises_same_in_both(call)
    assert outcome_native == outcome_pure
    if outcome_native[0] == "raised":
        assert issubclass(outcome_native[1], ValueError)


# ======================================================================================
# count_primes_range
# ======================================================================================


@pytest.mark.parametrize(
    "lo,hi,name",
    [
        (-1, 10, "lo"),
        (-(2**70), 10, "lo"),
        (0, -1, "hi"),
        (-5, -1, "lo|hi"),
        (11, 10, "lo|hi"),
        (2**64, 2**64 - 1, "lo|hi"),
        (0, 2**64 + 1, "hi"),
        (2**64 + 1, 2**64 + 1, "lo|hi"),
        (0, 2**100, "hi"),
        (2**100, 2**101, "lo|hi"),
    ],
)
def test_count_primes_value_errors(kmod, lo, hi, name):
    with pytest.raises(ValueError, match=name):
        kmod.count_primes_range(lo, hi)


@pytest.mark.parametrize(
    "lo,hi,name",
    [
        (1.5, 20, "lo"),
        (0.0, 20, "lo"),
        (0, 20.0, "hi"),
        (0, 1e3, "hi"),
        (None, 20, "lo"),
        (0, None, "hi"),
        ("0", 20, "lo"),
        (0, "20", "hi"),
        (np.float64(2.0), 20, "lo"),
        (0, [20], "hi"),
        (0, 1j, "hi"),
        (True, 10, "lo: expected an integer, got: bool"),
        (False, True, "hi: expected an integer, got: bool"),
        (0, np.True_, "hi: expected an integer, got: bool"),
    ],
)
def test_count_primes_type_errors(kmod, lo, hi, name):
    with pytest.raises(TypeError, match=name):
        kmod.count_primes_range(lo, hi)


def test_count_primes_integers_accepted(kmod):
    assert kmod.count_primes_range(np.uint64(0), np.uint64(100)) == 25
    assert kmod.count_primes_range(np.int8(0), np.int64(100)) == 25
    assert kmod.count_primes_range(np.uint64(2**64 - 59), 2**64) == 1
    assert kmod.count_primes_range(0, 2**64 - 2**64) == 0


# ======================================================================================
# is_prime_array
# ======================================================================================


def good_values(n=5):
    return np.arange(n, dtype=np.uint64)


def good_out(n=5, dtype=np.bool_):
    return np.zeros(n, dtype=dtype)


def _ro(a):
    a.setflags(write=False)
    return a


BAD_VALUES = {
    "int64": lambda: np.arange(5, dtype=np.int64),
    "uint32": lambda: np.arange(5, dtype=np.uint32),
    "float64": lambda: np.arange(5, dtype=np.float64),
    "bool": lambda: np.ones(5, dtype=bool),
    "object": lambda: np.array(list(range(5)), dtype=object),
    "byteswapped-uint64": lambda: np.arange(5, dtype=np.dtype(np.uint64).newbyteorder()),
    "2-D": lambda: np.arange(5, dtype=np.uint64).reshape(5, 1),
    "0-D": lambda: np.array(5, dtype=np.uint64),
    "strided": lambda: np.arange(10, dtype=np.uint64)[::2],
    "reversed": lambda: np.arange(5, dtype=np.uint64)[::-1],
}


@pytest.mark.parametrize("make", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_is_prime_bad_values_array(kmod, make):
    out = np.full(5, 7, dtype=np.uint8)
    with pytest.raises(ValueError, match="values"):
        kmod.is_prime_array(make(), out)
    assert (out == 7).all()


BAD_OUT = {
    "int8": lambda: good_out(dtype=np.int8),
    "uint16": lambda: good_out(dtype=np.uint16),
    "int64": lambda: good_out(dtype=np.int64),
    "float64": lambda: good_out(dtype=np.float64),
    "uint64": lambda: good_out(dtype=np.uint64),
    "2-D": lambda: np.zeros((5, 1), dtype=bool),
    "0-D": lambda: np.zeros((), dtype=bool),
    "read-only-bool": lambda: _ro(good_out()),
    "read-only-uint8": lambda: _ro(good_out(dtype=np.uint8)),
    "too-short": lambda: good_out(4),
    "too-long": lambda: good_out(6),
    "empty": lambda: good_out(0),
}


@pytest.mark.parametrize("make", BAD_OUT.values(), ids=BAD_OUT.keys())
def test_is_prime_bad_out_array(kmod, make):
    with pytest.raises(ValueError, match="out"):
        kmod.is_prime_array(good_values(), make())


def test_is_prime_length_mismatch_with_empty_values(kmod):
    with pytest.raises(ValueError, match="out|values"):
        kmod.is_prime_array(good_values(0), good_out(3))


@pytest.mark.parametrize(
    "values",
    [None, [0, 1, 2, 3, 4], (0, 1, 2, 3, 4), 5, "01234"],
    ids=["None", "list", "tuple", "int", "str"],
)
def test_is_prime_values_not_ndarray(kmod, values):
    with pytest.raises(TypeError, match="values"):
        kmod.is_prime_array(values, good_out())


@pytest.mark.parametrize(
    "out", [None, [False] * 5, bytearray(5), 0], ids=["None", "list", "bytearray", "int"]
)
def test_is_prime_out_not_ndarray(kmod, out):
    with pytest.raises(TypeError, match="out"):
        kmod.is_prime_array(good_values(), out)


# ======================================================================================
# fannkuch_block
# ======================================================================================

N_WORD = r"\bn\b"


@pytest.mark.parametrize(
    "n,start,stop,name",
    [
        (0, 0, 0, N_WORD),
        (-1, 0, 0, N_WORD),
        (13, 0, 1, N_WORD),
        (2**64, 0, 1, N_WORD),
        (7, -1, 5, "start"),
        (7, 0, -1, "stop"),
        (7, 0, 5041, "stop"),
        (7, 5041, 5041, "start|stop"),
        (1, 0, 2, "stop"),
        (12, 0, math.factorial(12) + 1, "stop"),
        (7, 10, 9, "start|stop"),
        (7, 2**70, 2**70 + 1, "start|stop"),
    ],
)
def test_fannkuch_value_errors(kmod, n, start, stop, name):
    with pytest.raises(ValueError, match=name):
        kmod.fannkuch_block(n, start, stop)


@pytest.mark.parametrize(
    "n,start,stop,name",
    [
        (7.0, 0, 5040, N_WORD),
        (7.5, 0, 10, N_WORD),
        (None, 0, 10, N_WORD),
        ("7", 0, 10, N_WORD),
        (7, 0.0, 10, "start"),
        (7, None, 10, "start"),
        (7, "0", 10, "start"),
        (7, 0, 10.0, "stop"),
        (7, 0, None, "stop"),
        (7, 0, np.float64(10), "stop"),
        (True, 0, 1, r"\bn: expected an integer, got: bool"),
        (7, False, 10, "start: expected an integer, got: bool"),
        (7, 0, np.True_, "stop: expected an integer, got: bool"),
    ],
)
def test_fannkuch_type_errors(kmod, n, start, stop, name):
    with pytest.raises(TypeError, match=name):
        kmod.fannkuch_block(n, start, stop)


def test_fannkuch_integers_accepted(kmod):
    assert kmod.fannkuch_block(np.int64(7), np.uint16(0), np.int32(5040)) == (228, 16)
    end = math.factorial(12)
    assert kmod.fannkuch_block(np.uint8(12), np.uint64(end), end) == (0, 0)


# ======================================================================================
# monte_carlo_hits
# ======================================================================================


@pytest.mark.parametrize(
    "seed,start,stop,name",
    [
        (-1, 0, 10, "seed"),
        (2**64, 0, 10, "seed"),
        (2**100, 0, 10, "seed"),
        (0, -1, 10, "start"),
        (0, 0, -1, "stop"),
        (0, 0, 2**63 + 1, "stop"),
        (0, 2**63 + 1, 2**63 + 1, "start|stop"),
        (0, 11, 10, "start|stop"),
        (0, 2**64, 2**64, "start|stop"),
    ],
)
def test_monte_carlo_value_errors(kmod, seed, start, stop, name):
    with pytest.raises(ValueError, match=name):
        kmod.monte_carlo_hits(seed, start, stop)


@pytest.mark.parametrize(
    "seed,start,stop,name",
    [
        (1.0, 0, 10, "seed"),
        (None, 0, 10, "seed"),
        ("1", 0, 10, "seed"),
        (0, 0.0, 10, "start"),
        (0, None, 10, "start"),
        (0, 0, 10.0, "stop"),
        (0, 0, "10", "stop"),
        (0, 0, np.float32(10), "stop"),
        (True, 0, 10, "seed: expected an integer, got: bool"),
        (0, False, 10, "start: expected an integer, got: bool"),
    ],
)
def test_monte_carlo_type_errors(kmod, seed, start, stop, name):
    with pytest.raises(TypeError, match=name):
        kmod.monte_carlo_hits(seed, start, stop)


def test_monte_carlo_limits_and_integers_accepted(kmod):
    assert kmod.monte_carlo_hits(2**64 - 1, 2**63, 2**63) == 0
    assert kmod.monte_carlo_hits(0, 2**63 - 3, 2**63) in (0, 1, 2, 3)
    a = kmod.monte_carlo_hits(np.uint64(2**64 - 1), np.int64(5), np.uint16(300))
    assert a == kmod.monte_carlo_hits(2**64 - 1, 5, 300)


# ======================================================================================
# The wrappers
# ======================================================================================

BAD_IMPLS = ["cython", "Native", "NATIVE", "pure", "", "c", "python "]


@pytest.mark.parametrize("bad", BAD_IMPLS)
def test_wrappers_reject_unknown_impl(bad):
    with pytest.raises(ValueError, match="impl"):
        kernels.mandelbrot(4, 4, impl=bad)
    with pytest.raises(ValueError, match="impl"):
        kernels.count_primes(0, 10, impl=bad)
    with pytest.raises(ValueError, match="impl"):
        kernels.is_prime([2, 3], impl=bad)
    with pytest.raises(ValueError, match="impl"):
        kernels.fannkuch(5, impl=bad)
    with pytest.raises(ValueError, match="impl"):
        kernels.monte_carlo_pi(10, impl=bad)


@pytest.mark.parametrize(
    "kwargs,exc,name",
    [
        ({"width": -1, "height": 4}, ValueError, "width"),
        ({"width": 4, "height": -1}, ValueError, "height"),
        ({"width": 4.0, "height": 4}, TypeError, "width"),
        ({"width": 4, "height": 4.5}, TypeError, "height"),
        ({"width": None, "height": 4}, TypeError, "width"),
        ({"width": "4", "height": 4}, TypeError, "width"),
        ({"width": 4, "height": 4, "max_iter": -1}, ValueError, "max_iter"),
        ({"width": 4, "height": 4, "max_iter": 0}, ValueError, "max_iter: expected 1 <="),
        ({"width": True, "height": True}, TypeError, "width: expected an integer, got: bool"),
        ({"width": 4, "height": np.True_}, TypeError, "height: expected an integer, got: bool"),
        ({"width": 4, "height": 4, "max_iter": True}, TypeError,
         "max_iter: expected an integer, got: bool"),
        ({"width": 4, "height": 4, "max_iter": 2**32}, ValueError, "max_iter"),
        ({"width": 4, "height": 4, "max_iter": 256.0}, TypeError, "max_iter"),
        ({"width": 4, "height": 4, "bounds": (NAN, 1.0, -1.0, 1.0)}, ValueError, "bounds|xmin"),
        ({"width": 4, "height": 4, "bounds": (-2.0, INF, -1.0, 1.0)}, ValueError, "bounds|xmax"),
        ({"width": 4, "height": 4, "bounds": (-2.0, 1.0, -INF, 1.0)}, ValueError, "bounds|ymin"),
        ({"width": 4, "height": 4, "bounds": (-2.0, 1.0, -1.0, NAN)}, ValueError, "bounds|ymax"),
        ({"width": 4, "height": 4, "bounds": (1.0, 1.0, -1.0, 1.0)}, ValueError, "bounds|xm"),
        ({"width": 4, "height": 4, "bounds": (2.0, 1.0, -1.0, 1.0)}, ValueError, "bounds|xm"),
        ({"width": 4, "height": 4, "bounds": (-2.0, 1.0, 1.0, -1.0)}, ValueError, "bounds|ym"),
        ({"width": 4, "height": 4, "bounds": ("a", 1.0, -1.0, 1.0)}, TypeError, "bounds|xmin"),
        ({"width": 4, "height": 4, "bounds": (-2.0, 1.0, -1.0, None)}, TypeError, "bounds|ymax"),
    ],
)
def test_wrapper_mandelbrot_bad_input(impl, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        kernels.mandelbrot(**kwargs, impl=impl)


@pytest.mark.parametrize(
    "bounds", [(), (-2.0, 1.0, -1.0), (-2.0, 1.0, -1.0, 1.0, 0.0), None, 5.0, "abcd"],
    ids=["empty", "three", "five", "None", "float", "str"],
)
def test_wrapper_mandelbrot_bounds_not_four_numbers(impl, bounds):
    with pytest.raises((TypeError, ValueError), match="bounds|xmin|xmax|ymin|ymax"):
        kernels.mandelbrot(4, 4, bounds=bounds, impl=impl)


@pytest.mark.parametrize(
    "lo,hi,exc,name",
    [
        (1.5, 20, TypeError, "lo"),
        (1.0, 20, TypeError, "lo"),
        (0, 20.0, TypeError, "hi"),
        (None, 20, TypeError, "lo"),
        ("1", 20, TypeError, "lo"),
        (-1, 20, ValueError, "lo"),
        (21, 20, ValueError, "lo|hi"),
        (0, 2**64 + 1, ValueError, "hi"),
        (True, 10, TypeError, "lo: expected an integer, got: bool"),
        (0, np.True_, TypeError, "hi: expected an integer, got: bool"),
    ],
)
def test_wrapper_count_primes_bad_input(impl, lo, hi, exc, name):
    with pytest.raises(exc, match=name):
        kernels.count_primes(lo, hi, impl=impl)


@pytest.mark.parametrize(
    "values,exc",
    [
        (-1, ValueError),
        (-(2**70), ValueError),
        ([-1], ValueError),
        ([2, 3, -5], ValueError),
        ([2**64 - 1, -1], ValueError),  # numpy cannot hold these two in one integer dtype
        (np.array([-5, 7]), ValueError),
        (np.array([[3], [-3]], dtype=np.int8), ValueError),
        (2**64, ValueError),
        ([2**64], ValueError),
        ([0, 2**70], ValueError),
        (2.0, TypeError),
        ([2.0], TypeError),
        ([2, 3.5], TypeError),
        (np.array([2.0, 3.0]), TypeError),
        (np.float64(7.0), TypeError),
        ("7", TypeError),
        (["7"], TypeError),
        (None, TypeError),
        ([None], TypeError),
        (np.array([True, False]), TypeError),
        (True, TypeError),
        (np.True_, TypeError),
        ([True, 3], TypeError),
        ([np.int64(3), np.False_], TypeError),
        (np.array([2, True], dtype=object), TypeError),
        ([1j], TypeError),
    ],
)
def test_wrapper_is_prime_bad_input(impl, values, exc):
    with pytest.raises(exc, match="values"):
        kernels.is_prime(values, impl=impl)


@pytest.mark.parametrize(
    "n,exc",
    [(0, ValueError), (-3, ValueError), (13, ValueError), (2**64, ValueError),
     (7.0, TypeError), (None, TypeError), ("7", TypeError), (True, TypeError)],
)
def test_wrapper_fannkuch_bad_input(impl, n, exc):
    with pytest.raises(exc, match=N_WORD):
        kernels.fannkuch(n, impl=impl)


@pytest.mark.parametrize(
    "samples,kwargs,exc,name",
    [
        (0, {}, ValueError, "samples"),
        (-5, {}, ValueError, "samples"),
        (False, {}, TypeError, "samples: expected an integer, got: bool"),
        (True, {}, TypeError, "samples: expected an integer, got: bool"),
        (10, {"seed": np.True_}, TypeError, "seed: expected an integer, got: bool"),
        (2**63 + 1, {}, ValueError, "samples"),
        (10.0, {}, TypeError, "samples"),
        (None, {}, TypeError, "samples"),
        ("10", {}, TypeError, "samples"),
        (10, {"seed": -1}, ValueError, "seed"),
        (10, {"seed": 2**64}, ValueError, "seed"),
        (10, {"seed": 1.5}, TypeError, "seed"),
        (10, {"seed": None}, TypeError, "seed"),
    ],
)
def test_wrapper_monte_carlo_bad_input(impl, samples, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        kernels.monte_carlo_pi(samples, **kwargs, impl=impl)


def test_wrappers_accept_numpy_integers(impl):
    assert kernels.count_primes(np.int32(0), np.uint64(10), impl=impl) == 4
    assert kernels.fannkuch(np.uint8(7), impl=impl) == (228, 16)
    img = kernels.mandelbrot(np.int64(3), np.uint16(2), max_iter=np.int8(5), impl=impl)
    assert img.shape == (2, 3) and img.dtype == np.uint32
    assert kernels.monte_carlo_pi(np.int8(1), seed=np.uint64(2**64 - 1), impl=impl) in (0.0, 4.0)
    assert kernels.is_prime([np.uint8(1), np.int64(3), np.uint64(2**64 - 59)],
                            impl=impl).tolist() == [False, True, True]


@pytest.mark.parametrize("flag", [True, False, np.True_, np.False_], ids=repr)
def test_wrappers_refuse_bools_where_integers_belong(impl, flag):
    # One rule everywhere, including workers (numpy's own integer checks would take them).
    calls = {
        "width": lambda: kernels.mandelbrot(flag, 4, impl=impl),
        "max_iter": lambda: kernels.mandelbrot(4, 4, max_iter=flag, impl=impl),
        "lo": lambda: kernels.count_primes(flag, 10, impl=impl),
        "values": lambda: kernels.is_prime(flag, impl=impl),
        "n": lambda: kernels.fannkuch(flag, impl=impl),
        "samples": lambda: kernels.monte_carlo_pi(flag, impl=impl),
        "seed": lambda: kernels.monte_carlo_pi(10, seed=flag, impl=impl),
        "workers": lambda: kernels.fannkuch(5, workers=flag, impl=impl),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=rf"^{name}: expected an integer, got: bool"):
            call()


# ======================================================================================
# Arrays are judged by their memory, not by what they say; out never overlaps values
# ======================================================================================


class LyingLen(np.ndarray):
    """An ndarray whose len() claims far more elements than it has (more such liars,
    and what they may touch, in test_kernel_canaries.py)."""

    def __len__(self):
        return 10**7


def test_memmap_out_is_accepted(kmod, tmp_path):
    # ndarray subclasses are still welcome: only their self-description is not believed.
    out = np.memmap(tmp_path / "flags", dtype=np.uint8, mode="w+", shape=(5,))
    kmod.is_prime_array(np.array([2, 3, 4, 5, 6], dtype=np.uint64), out)
    assert out.tolist() == [1, 1, 0, 1, 0]


def _unaligned(dtype, shape):
    count = int(np.prod(shape))
    raw = np.zeros(count * np.dtype(dtype).itemsize + 1, dtype=np.uint8)
    return raw[1:].view(dtype).reshape(shape)


def test_unaligned_arrays_are_refused(kmod):
    out = _unaligned(np.uint32, (3, 4))
    assert not out.flags.aligned and out.flags.c_contiguous
    with pytest.raises(ValueError, match="out: .*aligned.*got: .*not aligned"):
        call_mandelbrot(kmod, out)
    assert not out.any()
    values = _unaligned(np.uint64, (5,))
    with pytest.raises(ValueError, match="values: .*aligned.*got: .*not aligned"):
        kmod.is_prime_array(values, good_out())


OVERLAPS = {
    # out's bytes are values' bytes: the kernel would read flags it just wrote.
    "view-of-values": lambda v: v.view(np.uint8)[: v.shape[0]],
    "view-of-values-bool": lambda v: v.view(np.bool_)[3:3 + v.shape[0]],
    "tail-of-values": lambda v: v.view(np.uint8)[-v.shape[0]:],
    "unaligned-interior": lambda v: v.view(np.uint8)[5:5 + v.shape[0]],
}


@pytest.mark.parametrize("make_out", OVERLAPS.values(), ids=OVERLAPS.keys())
def test_is_prime_out_overlapping_values_is_refused(kmod, make_out):
    values = np.arange(100, 116, dtype=np.uint64)
    before = values.copy()
    out = make_out(values)
    assert np.shares_memory(values, out)
    with pytest.raises(ValueError, match="values and out: expected arrays that do not "
                                         "share memory"):
        kmod.is_prime_array(values, out)
    np.testing.assert_array_equal(values, before)


def test_is_prime_out_overlapping_through_a_shared_buffer_is_refused(kmod):
    # Two arrays made separately over one buffer: no view relation, same bytes.
    buffer = bytearray(64)
    values = np.frombuffer(buffer, dtype=np.uint64, count=4)
    out = np.frombuffer(buffer, dtype=np.uint8, count=4, offset=24)
    with pytest.raises(ValueError, match="share memory"):
        kmod.is_prime_array(values, out)


def test_is_prime_adjacent_slices_of_one_buffer_are_fine(kmod):
    buffer = np.zeros(40, dtype=np.uint8)
    values = buffer[:32].view(np.uint64)
    values[:] = [2, 3, 4, 5]
    out = buffer[32:36]
    assert not np.shares_memory(values, out)
    kmod.is_prime_array(values, out)
    assert out.tolist() == [1, 1, 0, 1] and buffer[36:].tolist() == [0] * 4


# The same message from native and pure: the checks live in one place (_validate).
SAME_MESSAGE_CALLS = {
    "max_iter=0": lambda m: call_mandelbrot(m, max_iter=0),
    "max_iter=True": lambda m: call_mandelbrot(m, max_iter=True),
    "lo=True": lambda m: m.count_primes_range(True, 10),
    "n=np.True_": lambda m: m.fannkuch_block(np.True_, 0, 1),
    "seed=False": lambda m: m.monte_carlo_hits(False, 0, 1),
    "lying-len": lambda m: m.is_prime_array(good_values(1000), good_out(4).view(LyingLen)),
    "overlap": lambda m: m.is_prime_array(v := good_values(8), v.view(np.uint8)[:8]),
    "unaligned": lambda m: call_mandelbrot(m, _unaligned(np.uint32, (3, 4))),
    "float-out": lambda m: call_mandelbrot(m, np.zeros((3, 4))),
}


@pytest.mark.parametrize("call", SAME_MESSAGE_CALLS.values(), ids=SAME_MESSAGE_CALLS.keys())
def test_native_and_pure_say_the_same(call):
    messages = []
    for mod in (native, pure):
        with pytest.raises((TypeError, ValueError)) as caught:
            call(mod)
        messages.append((type(caught.value), str(caught.value)))
    assert messages[0] == messages[1]


def test_the_wrapper_and_the_kernels_say_the_same_about_max_iter():
    with pytest.raises(ValueError) as wrapper:
        kernels.mandelbrot(4, 3, max_iter=0)
    with pytest.raises(ValueError) as kernel:
        call_mandelbrot(native, max_iter=0)
    assert str(wrapper.value) == str(kernel.value) == (
        "max_iter: expected 1 <= max_iter <= 4294967295, got: 0")
    with pytest.raises(TypeError) as wrapper:
        kernels.mandelbrot(4, 3, max_iter=True)
    with pytest.raises(TypeError) as kernel:
        call_mandelbrot(pure, max_iter=True)
    assert str(wrapper.value) == str(kernel.value) == (
        "max_iter: expected an integer, got: bool True")


# ======================================================================================
# Results larger than the machine: refused up front, with the real size
# ======================================================================================


@pytest.fixture
def nothing_allocated(monkeypatch):
    """Fail the test if mandelbrot creates a shared segment (an in-process image that
    got that far would fail with numpy's own message, which the tests do not accept)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"allocated: {args!r}")

    monkeypatch.setattr(_block_task, "SharedArray", refuse)


@pytest.mark.parametrize("backend", ["auto", "serial", "thread", "process"])
def test_mandelbrot_too_large_for_the_machine_fails_up_front(impl, backend,
                                                             nothing_allocated):
    with pytest.raises(MemoryError, match=r"^mandelbrot: a 1000000x1000000 image of uint32 "
                                          r"needs 3\.64 TiB; this machine has .* of memory"):
        kernels.mandelbrot(10**6, 10**6, impl=impl, backend=backend)


def test_mandelbrot_largest_sides_say_too_large(impl, nothing_allocated):
    # 2**53 is the largest side allowed (exact in a double); 2**53 x 2**53 cannot exist.
    side = 2**53
    with pytest.raises(MemoryError, match=rf"a {side}x{side} image of uint32 needs .*YiB"):
        kernels.mandelbrot(side, side, impl=impl)
    with pytest.raises(MemoryError, match=rf"a {side}x1 image"):
        kernels.mandelbrot(side, 1, impl=impl)
    assert kernels.mandelbrot(side, 0, impl=impl).shape == (0, side)  # no pixels: no bytes


def test_mandelbrot_size_limit_is_the_machines_memory(impl, monkeypatch):
    from allcores import _validate

    monkeypatch.setattr(_validate, "physical_memory", lambda: 4096)
    assert kernels.mandelbrot(32, 32, impl=impl, max_iter=5).shape == (32, 32)  # 4096 bytes
    with pytest.raises(MemoryError, match="a 33x32 image of uint32 needs 4.12 KiB; this "
                                          "machine has 4 KiB of memory in all"):
        kernels.mandelbrot(33, 32, impl=impl, max_iter=5)
    monkeypatch.setattr(_validate, "physical_memory", lambda: None)  # unknown: no limit
    assert kernels.mandelbrot(33, 32, impl=impl, max_iter=5).shape == (32, 33)


def test_argument_errors_come_before_the_size_check(impl):
    with pytest.raises(ValueError, match="max_iter"):
        kernels.mandelbrot(10**6, 10**6, max_iter=0, impl=impl)
    with pytest.raises(ValueError, match="width"):
        kernels.mandelbrot(2**53 + 1, 1, impl=impl)


def test_physical_memory_is_known_here():
    from allcores import _validate

    total = _validate.physical_memory()
    assert total is None or total >= 2**26  # 64 MiB: any machine that runs these tests


@pytest.mark.parametrize(
    "nbytes,text",
    [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1 KiB"), (1536, "1.5 KiB"),
     (4 * 10**12, "3.64 TiB"), (1000 * 2**30, "1000 GiB"), (2**80, "1 YiB"),
     (2**108, "268,435,456 YiB")],
)
def test_format_bytes(nbytes, text):
    from allcores import _validate

    assert _validate.format_bytes(nbytes) == text
