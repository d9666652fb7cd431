# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The compiled kernel: rows of the pairwise Euclidean distance matrix of a point set.

The shape every kernel here has: the ``def`` function holds the GIL while it checks and
converts its arguments (Python objects), then runs one ``with nogil:`` block over typed
memoryviews, calling a ``cdef ... noexcept nogil`` function that touches no Python
object. Only that block runs in parallel on threads; keep everything else short.
"""

from libc.math cimport sqrt

from own_kernel._validate import distance_rows_args


cdef void _distance_rows(const double[:, ::1] points, Py_ssize_t a, Py_ssize_t b,
                         double[:, ::1] rows) noexcept nogil:
    cdef Py_ssize_t n = points.shape[0], d = points.shape[1]
    cdef Py_ssize_t i, j, k
    cdef double diff, total
    for i in range(a, b):
        for j in range(n):
            total = 0.0
            for k in range(d):
                diff = points[i, k] - points[j, k]
                total = total + diff * diff
            rows[i - a, j] = sqrt(total)


def distance_rows(a, b, rows, points):
    """Write rows ``[a, b)`` of the ``(n, n)`` distance matrix of ``points`` (float64,
    shape ``(n, d)``) into ``rows`` (float64, shape ``(b - a, n)``, C-contiguous):
    ``rows[i - a, j] = sqrt(sum_k (points[i, k] - points[j, k]) ** 2)``.

    The signature of an ``allcores.blocks.fill`` block function."""
    a, b, rows, points = distance_rows_args(a, b, rows, points)
    cdef const double[:, ::1] points_view = points
    cdef double[:, ::1] rows_view = rows
    cdef Py_ssize_t first = a, stop = b
    with nogil:
        _distance_rows(points_view, first, stop, rows_view)
