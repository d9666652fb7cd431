"""allcores: get the most out of every CPU core.

- ``allcores.map`` / ``imap`` / ``imap_unordered`` and ``allcores.Pool``: run a function
  over an iterable in chunks, on processes, threads or serially; streaming, bounded,
  and never hanging when a worker dies.
- ``allcores.cpu_count()``: the CPUs this process may really use.
- ``insights=True`` on a pool or a call: who ran which chunk when, summed up by
  ``pool.insights()`` / ``allcores.insights()`` and drawn as a timeline
  (``allcores.timeline``).
- ``allcores.kernels``: compute-heavy kernels, compiled (``allcores.native``, GIL-free)
  with pure-Python twins (``allcores.pure``).
"""

from allcores import kernels
from allcores._version import __version__
from allcores.cpu import cpu_count
from allcores.errors import (
    AllcoresError,
    ChunkTimeoutError,
    PoolClosedError,
    WorkerCrashedError,
    WorkerInitError,
)
from allcores.planner import Plan, nogil, plan
from allcores.pool import Pool
from allcores.shortcuts import imap, imap_unordered, insights, map
from allcores.timeline import Insights

__all__ = [
    "AllcoresError",
    "ChunkTimeoutError",
    "Insights",
    "Plan",
    "Pool",
    "PoolClosedError",
    "WorkerCrashedError",
    "WorkerInitError",
    "__version__",
    "cpu_count",
    "imap",
    "imap_unordered",
    "insights",
    "kernels",
    "map",
    "nogil",
    "plan",
]
