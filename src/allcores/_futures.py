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

A ``submit`` future (:class:`SubmitFuture`) stays PENDING while its chunk waits for a
worker, as ``concurrent.futures`` executors' futures do, so that ``cancel()`` works on
queued work: backends make their chunk futures :class:`ChunkFuture`, which tell the
submit future following them when a worker takes the chunk; cancelling the submit
future cancels its chunk (which succeeds only while no worker has it).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
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


class ChunkFuture(CallbackSafeFuture):
    """A backend's future of one chunk. A worker taking the chunk marks it running
    (``set_running_or_notify_cancel``), and with it the future that follows it."""

    _follower: SubmitFuture | None = None

    def follow_with(self, follower: SubmitFuture) -> None:
        """``follower`` runs when this chunk does (at once if it runs already)."""
        with self._condition:
            self._follower = follower
            running = self._state in (RUNNING, FINISHED)
        if running:
            follower.mark_running()

    def cancelled_and_notified(self) -> bool:
        """Cancelled and its waiters told so (a shutdown that ran before did it)."""
        with self._condition:
            return self._state == CANCELLED_AND_NOTIFIED

    def set_running_or_notify_cancel(self) -> bool:
        running = super().set_running_or_notify_cancel()
        if running and self._follower is not None:
            self._follower.mark_running()
        return running


class SubmitFuture(CallbackSafeFuture):
    """The future ``submit`` returns, settled from its chunk's future: PENDING until a
    worker takes the chunk, cancellable until then."""

    def __init__(self, chunk: Future):
        super().__init__()
        self._chunk = chunk
        # Set while cancel() cancels the chunk: the chunk's done-callbacks (which run
        # then, in this thread) leave this future to cancel().
        self.cancelling = False

    def mark_running(self) -> None:
        """(Its chunk's worker took it.) PENDING -> RUNNING; nothing otherwise (it may
        be settled already: its chunk can finish before this runs)."""
        with self._condition:
            if self._state == PENDING:
                self._state = RUNNING

    def cancel(self) -> bool:
        """Cancel the call if no worker has taken it yet; True if it is cancelled."""
        if self.cancelled():
            return True
        self.cancelling = True
        try:
            if not self._chunk.cancel():  # a worker has it, or it is done
                return False
        finally:
            self.cancelling = False
        if not super().cancel():
            return self.cancelled()
        # A plain cancel() wakes result() but not concurrent.futures.wait() or
        # as_completed(): an executor's worker notifies those when it drops the call.
        # Here nothing will run it: notify now.
        self.set_running_or_notify_cancel()
        return True
