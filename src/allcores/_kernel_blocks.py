"""The block functions of ``allcores.kernels``: what one worker does with one block.

``allcores.kernels`` runs each kernel through the public block API (``allcores.blocks``):
these are the functions it hands to ``blocks.fill`` (``fn(a, b, rows, *args)``: write
rows ``[a, b)`` of the result into ``rows``) or ``blocks.reduce`` (``fn(a, b, *args)``:
the block's value). There is one per kernel and implementation, at module level so that
a process pool pickles them by reference: ``*_native`` call ``allcores.native`` and are
marked with ``allcores.nogil`` (they run with the GIL released, so ``backend="auto"``
runs them on threads); ``*_python`` call the pure twins in ``allcores.pure``. Where a
block's rows live (a view of the result, shared memory, a private array sent back) is
the block API's business, not theirs.
"""

from __future__ import annotations

import numpy as np

from allcores import native, pure


def nogil(fn):
    """``allcores.nogil`` without importing the planner (workers import this module):
    the function runs with the GIL released, so ``backend="auto"`` runs it on threads."""
    fn.__allcores_nogil__ = True
    return fn


# --- mandelbrot: rows [a, b) of a (height, width) uint32 image ---------------------------


@nogil
def mandelbrot_native(a: int, b: int, rows: np.ndarray, height: int, max_iter: int,
                      xmin: float, xmax: float, ymin: float, ymax: float) -> None:
    native.mandelbrot_rows(rows, a, height, max_iter, xmin, xmax, ymin, ymax)


def mandelbrot_python(a: int, b: int, rows: np.ndarray, height: int, max_iter: int,
                      xmin: float, xmax: float, ymin: float, ymax: float) -> None:
    pure.mandelbrot_rows(rows, a, height, max_iter, xmin, xmax, ymin, ymax)


# --- is_prime: flags [a, b) of a 1-D bool array, from the values' rows [a, b) ------------


@nogil
def is_prime_native(a: int, b: int, flags: np.ndarray, values: np.ndarray) -> None:
    native.is_prime_array(values, flags)


def is_prime_python(a: int, b: int, flags: np.ndarray, values: np.ndarray) -> None:
    pure.is_prime_array(values, flags)


# --- count_primes: the primes in [a, b) ----------------------------------------------------


@nogil
def count_primes_native(a: int, b: int) -> int:
    return native.count_primes_range(a, b)


def count_primes_python(a: int, b: int) -> int:
    return pure.count_primes_range(a, b)


# --- fannkuch: permutations [a, b) of n elements (in the benchmark's order) --------------


@nogil
def fannkuch_native(a: int, b: int, n: int) -> tuple[int, int]:
    return native.fannkuch_block(n, a, b)


def fannkuch_python(a: int, b: int, n: int) -> tuple[int, int]:
    return pure.fannkuch_block(n, a, b)


def fannkuch_combine(parts: list[tuple[int, int]]) -> tuple[int, int]:
    """The blocks' (checksum, max_flips): checksums add up, the maxima give the max."""
    return sum(checksum for checksum, _ in parts), max(flips for _, flips in parts)


# --- Monte Carlo pi: samples [a, b) of the SplitMix64 stream of seed ---------------------


@nogil
def monte_carlo_pi_native(a: int, b: int, seed: int) -> int:
    return native.monte_carlo_hits(seed, a, b)


def monte_carlo_pi_python(a: int, b: int, seed: int) -> int:
    return pure.monte_carlo_hits(seed, a, b)
