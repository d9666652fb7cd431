"""``allcores.map`` / ``imap`` / ``imap_unordered``: one call, on a warm default pool.

Each (backend, workers) pair gets one pool, created on first use and kept for the next
call, so only the first call pays for starting workers. The pools are shut down at
interpreter exit. A pool stopped by Ctrl-C is replaced by a fresh one on the next call.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator

from allcores import _validate as check
from allcores.backends import validate_backend_name
from allcores.cpu import cpu_count
from allcores.pool import Pool, check_map_arguments, concatenate_results, flatten_results

_lock = threading.Lock()
_default_pools: dict[tuple[str, int], Pool] = {}  # under _lock


def default_pool(backend: str = "process", workers: int | None = None) -> Pool:
    """The warm pool that the module-level functions use for this backend and size."""
    validate_backend_name(backend)
    workers = cpu_count() if workers is None else check.integer("workers", workers, min=1)
    with _lock:
        pool = _default_pools.get((backend, workers))
        if pool is None or pool.closed:
            pool = _default_pools[(backend, workers)] = Pool(workers, backend=backend)
        return pool


def _chunk_results(fn, iterable, workers, backend, chunksize, progress, ordered):
    check_map_arguments(fn, iterable, chunksize)
    pool = default_pool(backend, workers)
    return pool._chunk_results(fn, iterable, chunksize, ordered=ordered, progress=progress)


def imap(fn: Callable[[Any], Any], iterable: Iterable[Any], *, workers: int | None = None,
         backend: str = "process", chunksize: int | None = None,
         progress: bool = False) -> Iterator[Any]:
    """Lazily yield ``fn(item)`` for each item, in order, computed on a default pool.

    ``progress=True`` shows a tqdm progress bar on stderr. See :meth:`Pool.imap`.
    """
    return flatten_results(
        _chunk_results(fn, iterable, workers, backend, chunksize, progress, ordered=True))


def imap_unordered(fn: Callable[[Any], Any], iterable: Iterable[Any], *,
                   workers: int | None = None, backend: str = "process",
                   chunksize: int | None = None, progress: bool = False) -> Iterator[Any]:
    """Like :func:`imap`, but yield results as their chunks finish."""
    return flatten_results(
        _chunk_results(fn, iterable, workers, backend, chunksize, progress, ordered=False))


def map(fn: Callable[[Any], Any], iterable: Iterable[Any], *, workers: int | None = None,
        backend: str = "process", chunksize: int | None = None,
        progress: bool = False) -> list:
    """``list(map(fn, iterable))``, computed on a default pool."""
    return concatenate_results(
        _chunk_results(fn, iterable, workers, backend, chunksize, progress, ordered=True))
