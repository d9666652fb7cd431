"""The type variables and option types of the public API, defined once.

Annotations only: run-time checks of the same options live in ``allcores._options``
(a caller without a type checker still passes any string, and gets a ``ValueError``).
"""

from __future__ import annotations

from typing import Literal, ParamSpec, TypeVar

T = TypeVar("T")    # an item of the input
R = TypeVar("R")    # what the function returns for an item (or a call)
P = ParamSpec("P")  # the parameters of a function submitted as one call

# Where a pool's chunks run (see allcores.backends).
BackendName = Literal["process", "thread", "serial", "dask"]
# A module-level call (allcores.map, the kernels) may also leave the choice to allcores.
BackendChoice = Literal["auto", BackendName]
# multiprocessing's start methods (which of them exist depends on the platform).
StartMethod = Literal["fork", "spawn", "forkserver"]
# A kernel's implementation: compiled (GIL-free) or its pure-Python twin.
KernelImpl = Literal["native", "python"]
