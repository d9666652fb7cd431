"""Futures that engine threads can settle without ever running into user code's errors.

A ``concurrent.futures.Future`` runs its done-callbacks in whichever thread settles it,
and catches only ``Exception`` from them: a callback that raises ``SystemExit`` or
``KeyboardInterrupt`` would escape into that thread, an allcores engine thread (the
process backend's manager, a fetch thread), kill it and skip the future's remaining
callbacks. Engine threads are unkillable by user code (DESIGN.md, rule 13), so:

- the futures allcores hands to users are :class:`CallbackSafeFuture`: every callback
  runs, and whatever one raises is logged like the standard library logs an
  ``Exception`` from a callback (logger ``concurrent.futures``);
- engine threads settle futures with :func:`settle`, which tolerates a future that was
  already settled (cancelled by its caller, failed by a shutdown).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, InvalidStateError
from typing import Any

_LOGGER = logging.getLogger("concurrent.futures")


class CallbackSafeFuture(Future):
    """A Future whose done-callbacks may raise anything: each is logged, all of them run.

    (A callback added after the future is done runs at once in the thread that adds
    it, as with any Future; only there a ``BaseException`` is left to propagate.)"""

    def _invoke_callbacks(self) -> None:
        for callback in self._done_callbacks:
            try:
                callback(self)
            except BaseException:
                _LOGGER.exception("exception calling callback for %r", self)


def settle(future: Future, *, result: Any = None, error: BaseException | None = None) -> None:
    """Set the future's outcome unless something settled it first."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass
