"""Public kernels: ordinary Python values in, fresh results out.

Each function runs the compiled kernel (``impl="native"``, the default) or its pure-Python
twin (``impl="python"``); both give the same result. The chunk-level functions they call
live in ``allcores.native`` and ``allcores.pure``.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from allcores import _validate as check
from allcores import native, pure

__all__ = ["count_primes", "fannkuch", "is_prime", "mandelbrot", "monte_carlo_pi"]

DEFAULT_BOUNDS = (-2.0, 1.0, -1.5, 1.5)


def _module(impl: str) -> ModuleType:
    return native if check.impl_name(impl) == "native" else pure


def mandelbrot(
    width: int,
    height: int,
    *,
    max_iter: int = 256,
    bounds: tuple[float, float, float, float] = DEFAULT_BOUNDS,
    impl: str = "native",
) -> np.ndarray:
    """Escape counts of a ``width x height`` image of the Mandelbrot set.

    Parameters
    ----------
    width, height : int
        Image size in pixels (``>= 0``).
    max_iter : int
        Iterations per pixel at most; a pixel whose count equals ``max_iter`` is taken
        to be in the set.
    bounds : (xmin, xmax, ymin, ymax)
        The region of the complex plane; pixel ``(y, x)`` samples
        ``xmin + x * (xmax - xmin) / width + i * (ymin + y * (ymax - ymin) / height)``.
    impl : {"native", "python"}

    Returns
    -------
    numpy.ndarray
        ``uint32`` counts, shape ``(height, width)``.
    """
    kernel = _module(impl).mandelbrot_rows
    width = check.integer("width", width, min=0, max=check.MAX_IMAGE_SIDE)
    height = check.integer("height", height, min=0, max=check.MAX_IMAGE_SIDE)
    try:
        xmin, xmax, ymin, ymax = bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds: expected (xmin, xmax, ymin, ymax), got: {bounds!r}"
        ) from None
    out = np.zeros((height, width), dtype=np.uint32)
    kernel(out, 0, height, max_iter, xmin, xmax, ymin, ymax)
    return out


def count_primes(lo: int, hi: int, *, impl: str = "native") -> int:
    """The number of primes ``p`` with ``lo <= p < hi`` (``0 <= lo <= hi <= 2**64``)."""
    return _module(impl).count_primes_range(lo, hi)


def is_prime(values, *, impl: str = "native") -> np.ndarray:
    """Whether each value is prime: a ``bool`` array of the same shape as ``values``.

    ``values`` may be an int, a (nested) list of ints or an integer numpy array, each
    value in ``0 <= v < 2**64``. The test is exact (deterministic Miller-Rabin).
    """
    kernel = _module(impl).is_prime_array
    numbers = check.uint64_values("values", values)
    out = np.empty(numbers.size, dtype=bool)
    kernel(numbers.reshape(-1), out)
    return out.reshape(numbers.shape)


def fannkuch(n: int, *, impl: str = "native") -> tuple[int, int]:
    """``(checksum, max_flips)`` of the Benchmarks Game fannkuch-redux for ``n`` elements
    (``1 <= n <= 12``); ``fannkuch(7) == (228, 16)``."""
    n = check.integer("n", n, min=1, max=check.MAX_FANNKUCH_N)
    return _module(impl).fannkuch_block(n, 0, check.FACTORIALS[n])


def monte_carlo_pi(samples: int, *, seed: int = 0, impl: str = "native") -> float:
    """Estimate pi as ``4 * hits / samples`` from ``samples`` SplitMix64 points.

    The estimate depends only on ``samples`` and ``seed``, never on how the samples
    are split into chunks.
    """
    samples = check.integer("samples", samples, min=1, max=check.MAX_SAMPLE_INDEX)
    hits = _module(impl).monte_carlo_hits(seed, 0, samples)
    return 4 * hits / samples
