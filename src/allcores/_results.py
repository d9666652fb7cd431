"""How a map's chunk results reach the caller: one list, an item at a time, on a bar.

A map produces its results as one list per chunk (``Iterator[list]``); these helpers
turn that into what the caller asked for. Each chunk's list is fresh and the caller's
to keep or extend.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any, Iterator


def started(generator: Iterator) -> Iterator:
    """``generator``, run to its first, priming, ``yield``: from then on ``close()`` runs
    its ``finally`` (and so ends its map's call), even if no result was ever asked for.
    A generator that never started runs nothing when closed, and on Python 3.13 keeps
    its frame, and what the frame holds, as long as it is referenced."""
    next(generator)
    return generator


def flatten_results(chunk_results: Iterator[list]) -> Iterator[Any]:
    """Each chunk's results in turn. A generator, not itertools.chain: callers may
    close() it to stop early; it is primed, so that close() reaches ``chunk_results``
    even before the first result."""
    return started(_flatten(chunk_results))


def _flatten(chunk_results: Iterator[list]) -> Iterator[Any]:
    try:
        yield  # the priming yield: see started
        for results in chunk_results:
            # Each result leaves the chunk's list as it is handed out: one the caller
            # drops is freed at once, not when the whole chunk is done (a big result
            # per item, e.g. an array, then costs one at a time). C-level: pop from the
            # end of the reversed list, no Python step per item.
            results.reverse()
            yield from map(list.pop, itertools.repeat(results, len(results)))
    finally:
        chunk_results.close()


def concatenate_results(chunk_results: Iterator[list]) -> list:
    """All chunks' results in one list. The first chunk's own list is extended (each
    chunk's list is fresh and ours); then one extend per chunk: much cheaper than a
    generator step per item for big maps."""
    out: list | None = None
    for results in chunk_results:
        if out is None:
            out = results
        else:
            out.extend(results)
    return [] if out is None else out


def progress_bar(total: int | None):
    """A tqdm bar on stderr: items done, rate, and an ETA when the total is known."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="item", file=sys.stderr, dynamic_ncols=True)
