"""``AsyncResult``: what ``Pool.apply_async``, ``map_async`` and ``starmap_async`` return,
as ``multiprocessing.pool.AsyncResult`` does.

It wraps the call's ``concurrent.futures.Future``. ``callback(result)`` or
``error_callback(exception)`` runs once, in this process, on the thread that settled the
future (an engine thread, guarded: what a callback raises is logged, never kills the
engine); as in multiprocessing, ``get()`` and ``ready()`` see the result only after the
callback ran.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import Future
from typing import Callable, Generic

from allcores._types import R


class AsyncResult(Generic[R]):
    """The result of an ``*_async`` call: ``get(timeout)``, ``wait(timeout)``,
    ``ready()``, ``successful()``; ``future`` is the underlying
    ``concurrent.futures.Future``. ``AsyncResult[R]``: ``get()`` returns an ``R``."""

    def __init__(self, future: Future[R], callback: Callable[[R], object] | None = None,
                 error_callback: Callable[[BaseException], object] | None = None) -> None:
        self.future = future
        self._callback = callback
        self._error_callback = error_callback
        self._ready = threading.Event()
        future.add_done_callback(self._settled)

    def _settled(self, future: Future[R]) -> None:
        try:
            error = future.exception() if not future.cancelled() else None
            if error is None and not future.cancelled():
                if self._callback is not None:
                    self._callback(future.result())
            elif error is not None and self._error_callback is not None:
                self._error_callback(error)
        finally:
            self._ready.set()

    def ready(self) -> bool:
        return self._ready.is_set()

    def wait(self, timeout: float | None = None) -> None:
        self._ready.wait(timeout)

    def successful(self) -> bool:
        """Whether the call completed without raising; ValueError if it has not
        completed yet (as multiprocessing says)."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return not self.future.cancelled() and self.future.exception() is None

    def get(self, timeout: float | None = None) -> R:
        """The result, or the call's exception raised; ``multiprocessing.TimeoutError``
        if it is not ready within ``timeout`` seconds."""
        if not self._ready.wait(timeout):
            raise multiprocessing.TimeoutError(f"no result within {timeout} s")
        return self.future.result(timeout=0)

    def __repr__(self) -> str:
        state = "ready" if self.ready() else "pending"
        return f"<allcores.AsyncResult {state}>"
