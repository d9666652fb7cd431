"""allcores: get the most out of every CPU core.

- ``allcores.map`` / ``imap`` / ``imap_unordered``: run a function over an iterable in
  chunks on a warm pool, on processes, threads or serially (``backend="auto"``
  measures the function and picks the fastest; ``allcores.plan`` says why);
  streaming, bounded, and never hanging when a worker dies.
- ``allcores.Pool`` (a drop-in for ``multiprocessing.Pool``) and ``allcores.Executor``
  (a ``concurrent.futures.Executor``): the same engine, on a pool of your own.
- ``allcores.cpu_count()``: the CPUs this process may really use.
- ``insights=True`` on a pool or a call: who ran which chunk when, summed up by
  ``pool.insights()`` / ``allcores.insights()`` and drawn as a timeline
  (``allcores.timeline``).
- ``allcores.kernels``: compute-heavy kernels, compiled (``allcores.native``, GIL-free)
  with pure-Python twins (``allcores.pure``); ``allcores.blocks`` runs your own
  kernels the same way.
- ``allcores.errors``: every exception of allcores' own (``AllcoresError`` and its
  subclasses).

Examples
--------
>>> import math, allcores
>>> allcores.map(math.sqrt, [1, 4, 9])
[1.0, 2.0, 3.0]
>>> with allcores.Pool(workers=2) as pool:
...     sorted(pool.imap_unordered(abs, [-3, 1, -2]))
[1, 2, 3]
>>> allcores.cpu_count() >= 1
True

In a script, code that starts work belongs under ``if __name__ == "__main__":``:
worker processes (``spawn`` and ``forkserver`` start methods) import the script.

The public names are loaded on first use (PEP 562 ``__getattr__``), not by
``import allcores``: a process worker imports ``allcores._worker``, hence this package,
and needs neither numpy, the compiled kernels nor the pool and planner to run a chunk.
Under the ``spawn`` start method it pays for every module imported here, in every new
worker. ``from allcores import map`` and ``allcores.kernels.mandelbrot(...)`` load what
they name, as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from allcores._version import __version__
from allcores.errors import AllcoresError, ChunkTimeoutError, PoolClosedError

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time: __getattr__ below
    # The public submodules, which __getattr__ resolves too (`name as name`: re-exported)
    from allcores import (
        backends as backends,
        blocks as blocks,
        cpu as cpu,
        dispatch as dispatch,
        errors as errors,
        executor as executor,
        kernels as kernels,
        native as native,
        planner as planner,
        pool as pool,
        pure as pure,
        shortcuts as shortcuts,
        timeline as timeline,
    )
    from allcores._async import AsyncResult
    from allcores.errors import WorkerCrashedError, WorkerInitError
    from allcores.executor import Executor
    from allcores.cpu import cpu_count
    from allcores.planner import Plan, nogil, plan
    from allcores.pool import Pool
    from allcores.shortcuts import imap, imap_unordered, insights, map
    from allcores.timeline import Insights

__all__ = [
    "AllcoresError",
    "AsyncResult",
    "ChunkTimeoutError",
    "Executor",
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

# Public name -> the module that defines it, imported on first access.
_LAZY_NAMES = {
    "WorkerCrashedError": "allcores.errors",  # their bases are not for workers to import
    "WorkerInitError": "allcores.errors",
    "AsyncResult": "allcores._async",
    "Executor": "allcores.executor",
    "cpu_count": "allcores.cpu",
    "Plan": "allcores.planner",
    "nogil": "allcores.planner",
    "plan": "allcores.planner",
    "Pool": "allcores.pool",
    "imap": "allcores.shortcuts",
    "imap_unordered": "allcores.shortcuts",
    "insights": "allcores.shortcuts",
    "map": "allcores.shortcuts",
    "Insights": "allcores.timeline",
}

# Submodules that `import allcores` used to import eagerly, so that `allcores.native`
# (say) worked after a bare `import allcores`: they still resolve, on first access.
_LAZY_SUBMODULES = frozenset({
    "backends", "blocks", "cpu", "dispatch", "errors", "executor", "kernels", "native",
    "planner", "pool", "pure", "shortcuts", "timeline",
    "_calls", "_execute", "_futures", "_kernel_blocks", "_lifecycle", "_main_guard",
    "_messages", "_shm", "_validate", "_version",
})


if not TYPE_CHECKING:  # a type checker would take any unknown name for this: Any

    def __getattr__(name: str):
        module_name = _LAZY_NAMES.get(name)
        if module_name is not None:
            value = getattr(importlib.import_module(module_name), name)
        elif name in _LAZY_SUBMODULES:
            value = importlib.import_module(f"{__name__}.{name}")
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _LAZY_SUBMODULES)
