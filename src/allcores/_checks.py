"""Integer and real-number checks, shared by the engine and the kernels' validation.

Kept free of numpy: the engine (``allcores.map``, ``Pool``) checks its options with
these, and a spawned worker that re-imports a script doing ``from allcores import map``
must not pay for importing numpy. See ``allcores._validate`` for why bools are refused
and integers go through ``operator.index``.
"""

from __future__ import annotations

import math
import numbers
import operator
import sys


def _is_bool(value: object) -> bool:
    if isinstance(value, bool):
        return True
    numpy = sys.modules.get("numpy")  # a numpy bool exists only once numpy is imported
    return numpy is not None and isinstance(value, numpy.bool_)


def describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def integer(name: str, value: object, *, min: int | None = None, max: int | None = None) -> int:
    """``value`` as a Python int with ``min <= value <= max``; bools are refused."""
    if _is_bool(value):
        raise TypeError(f"{name}: expected an integer, got: {describe(value)}")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got: {describe(value)}") from None
    if (min is not None and result < min) or (max is not None and result > max):
        low = "" if min is None else f"{min} <= "
        high = "" if max is None else f" <= {max}"
        raise ValueError(f"{name}: expected {low}{name}{high}, got: {result}")
    return result


def finite_real(name: str, value: object) -> float:
    """``value`` as a finite Python float; bools and strings are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got: {describe(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name}: expected a finite number, got: {result}")
    return result
