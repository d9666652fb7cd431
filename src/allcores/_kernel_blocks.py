"""The per-block tasks of ``allcores.kernels``: what one worker does with one block.

``allcores.kernels`` cuts a job into blocks and maps one of these functions over them on
a pool. Each function takes one small NamedTuple (the block) and is defined at module
level, so that a process pool pickles it by reference. There is one function per kernel
and implementation: ``*_native`` call ``allcores.native`` and carry
``__allcores_nogil__ = True`` (they run with the GIL released, so threads run them in
parallel); ``*_python`` call the pure twins in ``allcores.pure``.

Where array results go depends on where the block runs:

- threads and the caller (serial): ``block.out`` is the result array itself, and the
  block writes its own rows or slice straight into a view of it. Blocks cover disjoint
  parts, so no lock is needed; the block holds a reference to the array, so a block
  still running after the caller gave up writes into live memory;
- worker processes: ``block.out`` is a :class:`~allcores._shm.SharedArraySpec`; the block
  computes into a private array and copies it into the caller's shared segment in one
  step (``allcores._shm``), and returns ``None``: no array travels back through the pipe;
- workers that may not share this machine's memory (a cluster backend): ``block.out`` is
  None, and the block returns its part (rows, flags) for the caller to put in place.

Scalar results (counts, hits, checksums) are returned and combined by the caller.
"""

from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

import numpy as np

from allcores import native, pure
from allcores._shm import SharedArraySpec, read_rows, write_rows


def _gil_free(fn):
    """Mark a task as running its work with the GIL released (the engine may prefer
    threads for it)."""
    fn.__allcores_nogil__ = True
    return fn


# --- mandelbrot ---------------------------------------------------------------------------


class MandelbrotBlock(NamedTuple):
    """Image rows ``first_row .. stop_row - 1`` of a ``width x height`` image."""

    first_row: int
    stop_row: int
    width: int
    height: int
    max_iter: int
    bounds: tuple[float, float, float, float]   # (xmin, xmax, ymin, ymax)
    out: np.ndarray | SharedArraySpec | None    # the whole (height, width) uint32 image


def _mandelbrot(kernel: ModuleType, block: MandelbrotBlock) -> np.ndarray | None:
    if isinstance(block.out, np.ndarray):
        rows = block.out[block.first_row:block.stop_row]
    else:
        rows = np.empty((block.stop_row - block.first_row, block.width), np.uint32)
    kernel.mandelbrot_rows(rows, block.first_row, block.height, block.max_iter, *block.bounds)
    if block.out is None:
        return rows
    if isinstance(block.out, SharedArraySpec):
        write_rows(block.out, block.first_row, rows)
    return None


@_gil_free
def mandelbrot_native(block: MandelbrotBlock) -> np.ndarray | None:
    return _mandelbrot(native, block)


def mandelbrot_python(block: MandelbrotBlock) -> np.ndarray | None:
    return _mandelbrot(pure, block)


# --- is_prime -----------------------------------------------------------------------------


class IsPrimeBlock(NamedTuple):
    """Values ``start .. stop - 1`` of ``values``."""

    start: int
    stop: int
    # All values (1-D uint64), or, with ``out=None``, just this block's (start == 0).
    values: np.ndarray | SharedArraySpec
    out: np.ndarray | SharedArraySpec | None   # all flags: 1-D bool


def _is_prime(kernel: ModuleType, block: IsPrimeBlock) -> np.ndarray | None:
    if isinstance(block.values, SharedArraySpec):
        values = read_rows(block.values, block.start, block.stop)
    else:
        values = block.values[block.start:block.stop]
    if isinstance(block.out, np.ndarray):
        flags = block.out[block.start:block.stop]
    else:
        flags = np.empty(block.stop - block.start, dtype=bool)
    kernel.is_prime_array(values, flags)
    if block.out is None:
        return flags
    if isinstance(block.out, SharedArraySpec):
        write_rows(block.out, block.start, flags)
    return None


@_gil_free
def is_prime_native(block: IsPrimeBlock) -> np.ndarray | None:
    return _is_prime(native, block)


def is_prime_python(block: IsPrimeBlock) -> np.ndarray | None:
    return _is_prime(pure, block)


# --- count_primes -------------------------------------------------------------------------


class PrimeRangeBlock(NamedTuple):
    """The numbers ``lo .. hi - 1``."""

    lo: int
    hi: int


@_gil_free
def count_primes_native(block: PrimeRangeBlock) -> int:
    return native.count_primes_range(block.lo, block.hi)


def count_primes_python(block: PrimeRangeBlock) -> int:
    return pure.count_primes_range(block.lo, block.hi)


# --- fannkuch -----------------------------------------------------------------------------


class FannkuchBlock(NamedTuple):
    """Permutations ``start .. stop - 1`` (in the benchmark's order) of ``n`` elements."""

    n: int
    start: int
    stop: int


@_gil_free
def fannkuch_native(block: FannkuchBlock) -> tuple[int, int]:
    return native.fannkuch_block(block.n, block.start, block.stop)


def fannkuch_python(block: FannkuchBlock) -> tuple[int, int]:
    return pure.fannkuch_block(block.n, block.start, block.stop)


# --- Monte Carlo pi -----------------------------------------------------------------------


class MonteCarloBlock(NamedTuple):
    """Samples ``start .. stop - 1`` of the SplitMix64 stream of ``seed``."""

    seed: int
    start: int
    stop: int


@_gil_free
def monte_carlo_native(block: MonteCarloBlock) -> int:
    return native.monte_carlo_hits(block.seed, block.start, block.stop)


def monte_carlo_python(block: MonteCarloBlock) -> int:
    return pure.monte_carlo_hits(block.seed, block.start, block.stop)
