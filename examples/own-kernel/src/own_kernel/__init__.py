"""Your own compiled kernel on every core: a template.

``distance_rows(a, b, rows, points)`` writes rows ``[a, b)`` of the pairwise distance
matrix of ``points``; it is compiled (``_native.pyx``) and releases the GIL, and
``distance_rows_python`` is its pure-Python twin. ``pairwise_distances(points)`` runs
either over every row with :func:`allcores.blocks.fill`.
"""

from __future__ import annotations

import allcores
import allcores.blocks
import numpy as np

from own_kernel import _native
from own_kernel.twin import distance_rows_python

__all__ = ["distance_rows", "distance_rows_python", "pairwise_distances"]

# Marked as releasing the GIL: backend="auto" then runs it on threads, with no timing
# run to find out. A Cython 3 function takes the mark as an attribute, so this is the
# compiled function itself, still pickled by reference (own_kernel._native.distance_rows)
# for process workers.
distance_rows = allcores.nogil(_native.distance_rows)

# What a pair of points costs, roughly, on one x86-64 core: (d + 4) times this many
# seconds (the 4: the square root and the loop around the coordinates). allcores plans
# the blocks from it without a timing run; within a factor of two is close enough.
SECONDS_PER_PAIR_COORD = {"native": 0.5e-9, "python": 60e-9}
IMPLS = {"native": distance_rows, "python": distance_rows_python}


def pairwise_distances(points, *, impl="native", workers=None, backend="auto"):
    """The ``(n, n)`` Euclidean distance matrix of ``points`` (shape ``(n, d)``), computed
    by blocks of rows on every core with ``impl`` ``"native"`` or ``"python"`` (the twin).
    ``workers`` and ``backend`` are ``allcores.blocks.fill``'s."""
    if impl not in IMPLS:
        raise ValueError(f"impl: expected one of {sorted(IMPLS)}, got: {impl!r}")
    points = np.ascontiguousarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points: expected a 2-D array (n points, d coordinates), "
                         f"got: ndim={points.ndim}")
    n, d = points.shape
    cost = n * (d + 4) * SECONDS_PER_PAIR_COORD[impl] or 1e-9  # seconds per row
    return allcores.blocks.fill(IMPLS[impl], (n, n), np.float64, args=(points,), cost=cost,
                                workers=workers, backend=backend)
