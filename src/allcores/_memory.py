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


class Memory:
    """Measured costs per function, for ``MEMORY_S`` seconds, at most ``MEMORY_SIZE``.

    A function is known by identity (a bound method by its function and instance),
    through weak references where it takes them, so that remembering it neither keeps
    it alive nor mistakes a new object at a recycled address for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (references that must still be alive, Measured, {workers: backend})
        self._entries: collections.OrderedDict = collections.OrderedDict()

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

    def recall(self, fn: Callable, workers: int) -> tuple[Measured | None, str | None]:
        """What was measured of ``fn`` (None if nothing fresh), and the backend last
        chosen for it with this many workers."""
        key = tuple(map(id, self._parts(fn)))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, None
            refs, measured, decisions = entry
            if not self._alive(refs, key) or time.monotonic() - measured.at > MEMORY_S:
                del self._entries[key]
                return None, None
            self._entries.move_to_end(key)
            return measured, decisions.get(workers)

    def remember(self, fn: Callable, workers: int, measured: Measured | None,
                 backend: str | None) -> None:
        parts = self._parts(fn)
        key = tuple(map(id, parts))
        with self._lock:
            entry = self._entries.pop(key, None)
            decisions: dict = {}
            alive = entry is not None and self._alive(entry[0], key)
            if alive:
                if measured is None:
                    measured = entry[1]
                elif measured is not entry[1]:
                    measured = entry[1].merged(measured)
                decisions = entry[2]
            if measured is None:
                return
            if backend is not None:
                decisions[workers] = backend
            refs = entry[0] if alive else self._references(parts)
            self._entries[key] = (refs, measured, decisions)
            while len(self._entries) > MEMORY_SIZE:
                self._entries.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


memory = Memory()
