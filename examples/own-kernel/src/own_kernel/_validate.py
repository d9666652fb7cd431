"""The argument checks that the native kernel and its twin share, so that both raise the
same error, with the same message, for the same bad input."""

from __future__ import annotations

import operator

import numpy as np


def distance_rows_args(a, b, rows, points):
    """``(a, b, rows, points)`` checked and converted: ``points`` as a C-contiguous float64
    ``(n, d)`` array (a copy only when it is not one already), ``0 <= a <= b <= n``, and
    ``rows`` a writeable C-contiguous float64 ``(b - a, n)`` array (never copied: the
    kernel writes into it)."""
    a = _integer("a", a)
    b = _integer("b", b)
    points = np.ascontiguousarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points: expected a 2-D array (n points, d coordinates), "
                         f"got: ndim={points.ndim}")
    n = points.shape[0]
    if not 0 <= a <= b <= n:
        raise ValueError(f"a, b: expected 0 <= a <= b <= {n} (the number of points), "
                         f"got: a={a}, b={b}")
    if not isinstance(rows, np.ndarray):
        raise TypeError(f"rows: expected a numpy array, got: {type(rows).__name__}")
    if (rows.dtype != np.float64 or rows.shape != (b - a, n)
            or not rows.flags.c_contiguous or not rows.flags.writeable):
        raise ValueError(f"rows: expected a writeable C-contiguous float64 array of shape "
                         f"{(b - a, n)}, got: dtype={rows.dtype}, shape={rows.shape}, "
                         f"c_contiguous={rows.flags.c_contiguous}, "
                         f"writeable={rows.flags.writeable}")
    if np.may_share_memory(rows, points):
        raise ValueError("rows: expected an array separate from points, got one that "
                         "shares memory with it")
    return a, b, rows, points


def _integer(name, value):
    """``value`` as an int; a typed Cython integer argument would silently truncate 1.5
    to 1 (and take True for 1): here both are a TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got: bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got: {type(value).__name__}") from None
