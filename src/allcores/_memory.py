"""What the planner remembers of each function it measured, and for how long.

A later call of the same function is then planned from what was measured (checked on
its first item: see ``allcores.planner``), not sampled again: a map of ten cheap items
costs microseconds instead of the sample's milliseconds, and consecutive plans of the
same call agree. A function is known by identity (a bound method by its function and
instance), through weak references where it takes them.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import types
import weakref
from typing import Callable

# How long a function's measured costs are trusted (machine load and inputs change).
MEMORY_S = 60.0
# Functions remembered at most (least recently planned forgotten first).
MEMORY_SIZE = 256


@dataclasses.dataclass(frozen=True)
class Measured:
    """A function's measured costs: c, t and e of the cost model in ``allcores.planner``."""

    seconds_per_item: float                # c
    transfer_s: float | None = None        # t; None: not measured
    thread_efficiency: float | None = None  # e; None: not measured
    at: float = 0.0                        # time.monotonic() of the measurement

    def merged(self, newer: Measured) -> Measured:
        """``newer``, keeping what only this one measured."""
        return Measured(
            newer.seconds_per_item,
            newer.transfer_s if newer.transfer_s is not None else self.transfer_s,
            newer.thread_efficiency if newer.thread_efficiency is not None
            else self.thread_efficiency,
            newer.at)


@dataclasses.dataclass
class _Entry:
    refs: tuple                      # what must still be alive for the entry to hold
    measured: Measured | None = None  # the planner's figures
    # workers -> (backend, items it was chosen for), e.g. {8: ("process", 10_000)}
    decisions: dict = dataclasses.field(default_factory=dict)
    # backend name -> (seconds per item, pickled bytes per item or None, when measured):
    # what that backend's last map of the function ended with (the dispatcher's sizes).
    chunk_costs: dict = dataclasses.field(default_factory=dict)


class Memory:
    """Measured costs per function, for ``MEMORY_S`` seconds, at most ``MEMORY_SIZE``
    functions: the planner's figures (:class:`Measured`, and the backend it chose) and
    the dispatcher's (what each backend's last map measured, which sizes the next map's
    first chunks: ``allcores.dispatch.ChunkSizer.resume``).

    A function is known by identity (a bound method by its function and instance),
    through weak references where it takes them, so that remembering it neither keeps
    it alive nor mistakes a new object at a recycled address for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id of each part of the function -> _Entry; least recently used first.
        self._entries: collections.OrderedDict[tuple, _Entry] = collections.OrderedDict()

    @staticmethod
    def _parts(fn: Callable) -> tuple:
        return (fn.__func__, fn.__self__) if isinstance(fn, types.MethodType) else (fn,)

    @staticmethod
    def _references(parts: tuple) -> tuple:
        refs = []
        for part in parts:
            try:
                refs.append(weakref.ref(part))
            except TypeError:  # no weak references (builtins, some callables): held
                refs.append(part)
        return tuple(refs)

    @staticmethod
    def _alive(refs: tuple, key: tuple) -> bool:
        for ref, part_id in zip(refs, key):
            part = ref() if isinstance(ref, weakref.ref) else ref
            if part is None or id(part) != part_id:
                return False
        return True

    def _entry(self, fn: Callable, *, create: bool) -> _Entry | None:
        """``fn``'s entry (under _lock), made most recently used; a new one if
        ``create``. An entry whose function is gone (its id reused) is dropped."""
        parts = self._parts(fn)
        key = tuple(map(id, parts))
        entry = self._entries.get(key)
        if entry is not None and not self._alive(entry.refs, key):
            del self._entries[key]
            entry = None
        if entry is None:
            if not create:
                return None
            entry = self._entries[key] = _Entry(self._references(parts))
            while len(self._entries) > MEMORY_SIZE:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return entry

    def recall(self, fn: Callable,
               workers: int) -> tuple[Measured | None, tuple[str, int] | None]:
        """What the planner measured of ``fn`` (None if nothing fresh), and the backend
        it last chose for it with this many workers, with the number of items."""
        with self._lock:
            entry = self._entry(fn, create=False)
            if entry is None or entry.measured is None:
                return None, None
            if time.monotonic() - entry.measured.at > MEMORY_S:
                entry.measured, entry.decisions = None, {}
                return None, None
            return entry.measured, entry.decisions.get(workers)

    def remember(self, fn: Callable, workers: int, measured: Measured,
                 backend: str | None, items: int = 0) -> None:
        """The planner's figures for ``fn``, and its decision for ``items`` items (None:
        none was made)."""
        with self._lock:
            entry = self._entry(fn, create=True)
            if entry.measured is not None and measured is not entry.measured:
                measured = entry.measured.merged(measured)
            entry.measured = measured
            if backend is not None:
                entry.decisions[workers] = (backend, items)

    def chunk_cost(self, fn: Callable, backend: str) -> tuple[float, float | None] | None:
        """(seconds, pickled bytes or None) per item that the last map of ``fn`` on a
        ``backend`` pool measured, if fresh."""
        with self._lock:
            entry = self._entry(fn, create=False)
            cost = None if entry is None else entry.chunk_costs.get(backend)
            if cost is None or time.monotonic() - cost[2] > MEMORY_S:
                return None
            return cost[0], cost[1]

    def remember_chunk_cost(self, fn: Callable, backend: str,
                            cost: tuple[float, float | None]) -> None:
        with self._lock:
            self._entry(fn, create=True).chunk_costs[backend] = (*cost, time.monotonic())

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


memory = Memory()
