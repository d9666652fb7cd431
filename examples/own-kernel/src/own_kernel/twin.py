"""The pure-Python twin of the native kernel: same signature, same checks, same result
(to rounding), written as plain loops. It is the reference the kernel is tested against
and the baseline that shows what compiling bought."""

from __future__ import annotations

import math

from own_kernel._validate import distance_rows_args


def distance_rows_python(a, b, rows, points):
    """Write rows ``[a, b)`` of the ``(n, n)`` distance matrix of ``points`` into ``rows``;
    see ``own_kernel.distance_rows``."""
    a, b, rows, points = distance_rows_args(a, b, rows, points)
    coordinates = points.tolist()  # Python floats: indexing numpy per element is slower
    for i in range(a, b):
        p = coordinates[i]
        row = []
        for q in coordinates:
            total = 0.0
            for x, y in zip(p, q):
                diff = x - y
                total = total + diff * diff
            row.append(math.sqrt(total))
        rows[i - a] = row
