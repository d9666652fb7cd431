"""The warm pools behind ``allcores.map`` and the kernels: one per (backend, workers).

Each pool is created on first use and kept for the next call, so that only the first
call pays for starting workers; they are stopped at interpreter exit (``allcores.pool``).
A pool that can no longer take work (stopped by Ctrl-C, broken because its workers could
not start) is replaced by a fresh one on the next call; so is every pool in a child made
by ``os.fork()``, whose inherited pools belong to the parent.
"""

from __future__ import annotations

import os
import threading

from allcores.cpu import cpu_count
from allcores.pool import Pool

_lock = threading.Lock()
# (backend, workers, retries, timeout) -> its pool, e.g. ("process", 8, None, None) ->
# <Pool ...> (None: the Pool's default); under _lock.
_pools: dict[tuple, Pool] = {}


def default_pool(backend: str = "process", workers: int | None = None, *,
                 retries: int | None = None, timeout: float | None = None) -> Pool:
    """The warm pool for this backend, size and options (``workers`` None:
    :func:`cpu_count`; ``retries`` None: the Pool's default)."""
    if workers is None:
        workers = cpu_count()
    key = (backend, workers, retries, timeout)
    with _lock:
        pool = _pools.get(key)
        if pool is None or pool.closed:
            options = {} if retries is None else {"retries": retries}
            pool = _pools[key] = Pool(workers, backend=backend, timeout=timeout, **options)
        return pool


def has_warm_pool(backend: str, workers: int) -> bool:
    """Whether a pool for this backend and size is already running."""
    with _lock:
        pool = _pools.get((backend, workers, None, None))
        return pool is not None and not pool.closed


def terminate_all(backend: str | None = None) -> None:
    """Stop every default pool (of ``backend``, if given) now; the next call starts a
    fresh one. For tests, and for a program that wants its workers gone."""
    with _lock:
        keys = [key for key in _pools if backend is None or key[0] == backend]
        pools = [_pools.pop(key) for key in keys]
    for pool in pools:
        pool.terminate()


def _forget_the_parents_pools() -> None:
    # In a fork child: the parent's pools have no workers here, and the lock may have
    # been held by another thread at the fork.
    global _lock
    _lock = threading.Lock()
    _pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_pools)
