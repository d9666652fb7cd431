"""Argument checks shared by the native kernels, their pure twins and the wrappers.

One implementation means native and pure raise the same exception, with the same
message, for the same bad input. Messages say what was expected and what was got.
Integers go through ``operator.index``: a typed Cython ``long`` argument would
silently truncate ``1.5`` to ``1``; here it is a ``TypeError``. So is a bool where an
integer is expected (``operator.index(True)`` is 1, and numpy's integer checks accept
it): ``count_primes(True, 10)`` or ``max_iter=True`` is a mistake far more often than
a number.

Arrays are judged by what their memory is, never by what the object says:
:func:`array` checks a plain ``numpy.ndarray`` view of the caller's array (dtype, ndim,
shape, C-contiguity, alignment, ``nbytes``, all read from numpy's own C structure), so
a subclass whose ``len()`` or ``shape`` lies cannot make a native kernel write past its
buffer; the kernels then work on that view. An ``out`` that shares memory with an input
is refused (:func:`separate_memory`).
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

# The checks the engine shares with the kernels (numpy-free: see allcores._checks).
from allcores._checks import describe as _describe  # noqa: F401
from allcores._checks import finite_real, integer  # noqa: F401

UINT64_LIMIT = 2**64


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
    """A plain ndarray view (never a copy) of ``value``: an aligned, C-contiguous ndarray
    of one of ``dtypes`` with ``ndim`` dimensions.

    Subclasses (``numpy.memmap``, ...) are accepted, and so is their memory, but nothing
    they say about themselves is believed: the checks and the kernels use
    ``numpy.asarray(value)``, whose shape, strides and size come from numpy's C structure
    (a subclass may override ``__len__``, ``shape`` or ``nbytes`` in Python). Unaligned
    arrays are refused: the C kernels read and write whole ``uint32``/``uint64`` values.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got: {type(value).__name__}")
    plain = np.asarray(value)  # a view typed numpy.ndarray: no Python-level overrides
    wanted = " or ".join(np.dtype(d).name for d in dtypes)
    ok = (
        plain.dtype in [np.dtype(d) for d in dtypes]
        and plain.ndim == ndim
        and plain.flags.c_contiguous
        and plain.flags.aligned
        and (plain.flags.writeable or not writeable)
    )
    if not ok:
        flags = "C-contiguous" if plain.flags.c_contiguous else "not C-contiguous"
        if not plain.flags.aligned:
            flags += ", not aligned"
        if not plain.flags.writeable:
            flags += ", read-only"
        access = "a writeable" if writeable else "an"
        raise ValueError(
            f"{name}: expected {access} aligned C-contiguous {ndim}-D {wanted} array, "
            f"got: dtype={plain.dtype.name}, ndim={plain.ndim}, {flags}"
        )
    expected_nbytes = math.prod(plain.shape) * plain.itemsize
    if plain.nbytes != expected_nbytes:  # cannot happen for a plain ndarray; cheap to say
        raise ValueError(
            f"{name}: expected {expected_nbytes} bytes for shape {plain.shape}, "
            f"got: nbytes={plain.nbytes}"
        )
    return plain


def separate_memory(first_name: str, first: np.ndarray, second_name: str,
                    second: np.ndarray) -> None:
    """Refuse two arrays that share memory (an ``out`` that is a view of an input).

    A kernel reads its input while it writes ``out``; if they overlap, it reads what it
    has just written (``is_prime_array(a, a.view(np.uint8)[:n])`` turns the values into
    flags as it goes). For C-contiguous arrays, which cover every byte of their extent,
    ``numpy.may_share_memory`` (extents overlap, O(1)) is exact.
    """
    if np.may_share_memory(first, second):
        raise ValueError(
            f"{first_name} and {second_name}: expected arrays that do not share memory, "
            f"got: {second_name} overlapping {first_name} (pass a separate {second_name} array)"
        )


# --- How much memory a result may take ---------------------------------------------------

_BYTE_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def format_bytes(nbytes: int) -> str:
    """``3.64 TiB``: a byte count in binary units, for messages."""
    if nbytes < 1024:
        return f"{nbytes} bytes"
    value = float(nbytes)
    for unit in _BYTE_UNITS[1:]:
        value /= 1024
        if value < 1024:
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{value:,.0f} {_BYTE_UNITS[-1]}"


@functools.lru_cache(maxsize=1)
def physical_memory() -> int | None:
    """Total physical memory of this machine in bytes, or None where it cannot be read.

    psutil where installed (every platform), else ``sysconf`` (Linux, macOS, BSDs).
    Read once: it does not change while a process runs (memory hot-plug aside).
    """
    try:
        import psutil
    except ImportError:
        pass
    else:
        try:
            return int(psutil.virtual_memory().total)
        except Exception:  # noqa: BLE001 - an odd platform: fall back to sysconf
            pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    return total if total > 0 else None


def fits_in_memory(what: str, nbytes: int) -> None:
    """Refuse, before anything is allocated, a result of ``nbytes`` that this machine
    could not hold even with nothing else running (``what`` names it in the message).

    This is a bound, not a promise: a result that passes may still not fit next to
    everything else; one that fails never could (numpy would report it from deep inside
    an allocation, a shared-memory segment from a worker, or the kernel would be killed).
    """
    limit = physical_memory()
    if limit is not None and nbytes > limit:
        raise MemoryError(
            f"{what} needs {format_bytes(nbytes)}; this machine has "
            f"{format_bytes(limit)} of memory in all"
        )


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
    max_iter = integer("max_iter", max_iter, min=1, max=UINT32_MAX)
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
    # Shapes of the plain views, never len(): a subclass may say anything there.
    if values.shape != out.shape:
        raise ValueError(
            f"values and out: expected the same length, got: {values.shape[0]} and "
            f"{out.shape[0]}"
        )
    separate_memory("values", values, "out", out)
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
