"""Argument checks shared by the native kernels, their pure twins and the wrappers.

One implementation means native and pure raise the same exception, with the same
message, for the same bad input. Messages say what was expected and what was got.
Integers go through ``operator.index``: a typed Cython ``long`` argument would
silently truncate ``1.5`` to ``1``; here it is a ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

UINT64_LIMIT = 2**64


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def integer(name: str, value: object, *, min: int | None = None, max: int | None = None) -> int:
    """``value`` as a Python int with ``min <= value <= max``."""
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got: {_describe(value)}") from None
    if (min is not None and result < min) or (max is not None and result > max):
        low = "" if min is None else f"{min} <= "
        high = "" if max is None else f" <= {max}"
        raise ValueError(f"{name}: expected {low}{name}{high}, got: {result}")
    return result


def finite_real(name: str, value: object) -> float:
    """``value`` as a finite Python float; bools and strings are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got: {_describe(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name}: expected a finite number, got: {result}")
    return result


def interval(low_name: str, low: object, high_name: str, high: object) -> tuple[float, float]:
    """A non-empty finite interval ``low < high``."""
    low_f = finite_real(low_name, low)
    high_f = finite_real(high_name, high)
    if not low_f < high_f:
        raise ValueError(
            f"{low_name}, {high_name}: expected {low_name} < {high_name}, "
            f"got: {low_name}={low_f}, {high_name}={high_f}"
        )
    return low_f, high_f


def array(
    name: str,
    value: object,
    *,
    dtypes: tuple[type, ...],
    ndim: int,
    writeable: bool = False,
) -> np.ndarray:
    """``value`` itself (never a copy): a C-contiguous ndarray of one of ``dtypes``."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got: {type(value).__name__}")
    wanted = " or ".join(np.dtype(d).name for d in dtypes)
    ok = (
        value.dtype in [np.dtype(d) for d in dtypes]
        and value.ndim == ndim
        and value.flags.c_contiguous
        and (value.flags.writeable or not writeable)
    )
    if not ok:
        flags = "C-contiguous" if value.flags.c_contiguous else "not C-contiguous"
        if not value.flags.writeable:
            flags += ", read-only"
        access = "writeable " if writeable else ""
        raise ValueError(
            f"{name}: expected a {access}C-contiguous {ndim}-D {wanted} array, "
            f"got: dtype={value.dtype.name}, ndim={value.ndim}, {flags}"
        )
    return value


def uint64_values(name: str, values: object) -> np.ndarray:
    """Any integer array-like as a C-contiguous uint64 array of the same shape."""
    if not isinstance(values, np.ndarray):
        # Element by element: numpy would turn [1, 2**64 - 1] into float64 and lose digits.
        objects = np.array(values, dtype=object)
        flat = [integer(name, v, min=0, max=UINT64_LIMIT - 1) for v in objects.ravel()]
        return np.array(flat, dtype=np.uint64).reshape(objects.shape)
    kind = values.dtype.kind
    if kind == "O":
        return uint64_values(name, values.tolist() if values.ndim else values.item())
    if kind not in "iu":
        raise TypeError(f"{name}: expected integers, got: dtype={values.dtype.name}")
    if kind == "i" and values.size and values.min() < 0:
        raise ValueError(f"{name}: expected integers >= 0, got: {values.min()}")
    return np.asarray(values, dtype=np.uint64, order="C")  # keeps 0-d (ascontiguousarray would not)


def impl_name(impl: object) -> str:
    if impl not in ("native", "python"):
        raise ValueError(f"impl: expected 'native' or 'python', got: {impl!r}")
    return impl


# --- Per-kernel argument sets, shared verbatim by allcores.native and allcores.pure ---

UINT32_MAX = 2**32 - 1
MAX_FANNKUCH_N = 12
FACTORIALS = tuple(math.factorial(k) for k in range(MAX_FANNKUCH_N + 1))
MAX_SAMPLE_INDEX = 2**63
# Row and column indices must convert to double exactly, so that native and pure agree.
MAX_IMAGE_SIDE = 2**53


def mandelbrot_rows_args(out, first_row, height, max_iter, xmin, xmax, ymin, ymax):
    out = array("out", out, dtypes=(np.uint32,), ndim=2, writeable=True)
    height = integer("height", height, min=0, max=MAX_IMAGE_SIDE)
    first_row = integer("first_row", first_row, min=0)
    if first_row + out.shape[0] > height:
        raise ValueError(
            f"first_row: expected first_row + rows <= height, got: first_row={first_row}, "
            f"rows={out.shape[0]}, height={height}"
        )
    max_iter = integer("max_iter", max_iter, min=0, max=UINT32_MAX)
    xmin, xmax = interval("xmin", xmin, "xmax", xmax)
    ymin, ymax = interval("ymin", ymin, "ymax", ymax)
    return out, first_row, height, max_iter, xmin, xmax, ymin, ymax


def prime_range_args(lo, hi):
    hi = integer("hi", hi, min=0, max=UINT64_LIMIT)
    lo = integer("lo", lo, min=0, max=hi)
    return lo, hi


def is_prime_array_args(values, out):
    values = array("values", values, dtypes=(np.uint64,), ndim=1)
    out = array("out", out, dtypes=(np.bool_, np.uint8), ndim=1, writeable=True)
    if len(values) != len(out):
        raise ValueError(
            f"values and out: expected the same length, got: {len(values)} and {len(out)}"
        )
    return values, out


def fannkuch_block_args(n, start, stop):
    n = integer("n", n, min=1, max=MAX_FANNKUCH_N)
    stop = integer("stop", stop, min=0, max=FACTORIALS[n])
    start = integer("start", start, min=0, max=stop)
    return n, start, stop


def monte_carlo_args(seed, start, stop):
    seed = integer("seed", seed, min=0, max=UINT64_LIMIT - 1)
    stop = integer("stop", stop, min=0, max=MAX_SAMPLE_INDEX)
    start = integer("start", start, min=0, max=stop)
    return seed, start, stop
