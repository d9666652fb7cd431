"""A pool's lifecycle: one state, the process that owns it, behind one lock.

::

    OPEN ──close()──────> CLOSED       no new calls; calls already made (an imap being
      │                     │          read, a submitted future) finish; then the
      │                     │          workers stop
      ├──terminate()────────┴──> TERMINATED   workers stopped at once; unfinished work
      │                                       fails with PoolClosedError
      └──the backend breaks───> BROKEN        its workers cannot run anything (their
                                              initializer fails, they die while
                                              starting): all work fails with the cause

The pool and its backend share this one object: the pool reads it to accept calls, the
backend to accept chunks and to say that it broke. There is no second state to disagree
with it.

It belongs to the process that created it (``owner_pid``). After ``os.fork()`` the child
holds a copy, but none of the threads, pipes or worker processes behind it: there the
pool refuses work with an error that says so, and closing or collecting it touches
nothing of the parent's.
"""

from __future__ import annotations

import enum
import os
import threading

from allcores.errors import AllcoresError, PoolClosedError, WorkerInitError


class State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    BROKEN = "broken"
    TERMINATED = "terminated"


class Lifecycle:
    """The state of one pool. ``state``, ``error`` and ``open_calls`` change only under
    ``lock``; any thread may read them."""

    def __init__(self):
        # Reentrant: a map collected by the garbage collector ends its call (end_call)
        # in whatever thread the collection runs, maybe one inside this lock already.
        self.lock = threading.RLock()
        self.state = State.OPEN
        self.owner_pid = os.getpid()
        self.error: BaseException | None = None  # why it broke: the first cause only
        # Maps being consumed (their chunks are still to be submitted): a closed pool
        # keeps its workers until the last one ends.
        self.open_calls = 0

    @property
    def owned(self) -> bool:
        """Whether this process is the one that created the pool (not a fork child)."""
        return os.getpid() == self.owner_pid

    def refusal(self, *, new_call: bool) -> AllcoresError | None:
        """Why work cannot be accepted now (a new call, or one more chunk of a call
        already made), or None when it can. Read without the lock: a state that changes
        right after is caught by whoever acts on it (the backend fails what it holds)."""
        if not self.owned:
            return PoolClosedError(
                f"this pool belongs to process {self.owner_pid}; this process "
                f"({os.getpid()}) inherited it through os.fork(), without its workers: "
                "create a new pool here")
        state = self.state
        if state is State.OPEN or (state is State.CLOSED and not new_call):
            return None
        if state is State.CLOSED:
            return PoolClosedError("the pool is closed")
        if state is State.TERMINATED:
            return PoolClosedError("the pool was terminated")
        return self._broken_error()

    def _broken_error(self) -> AllcoresError:
        """A fresh exception for each refusal (one instance raised in many places would
        pile up tracebacks and notes): workers that could not start say so again with
        the same cause; anything else is a broken pool, caused by what broke it."""
        cause = self.error
        if isinstance(cause, WorkerInitError):
            error: AllcoresError = WorkerInitError(*cause.args)
            error.__cause__ = cause.__cause__
        else:
            error = PoolClosedError(f"the pool is broken: {cause!r}")
            error.__cause__ = cause
        return error

    def check(self, *, new_call: bool) -> None:
        refusal = self.refusal(new_call=new_call)
        if refusal is not None:
            raise refusal

    def begin_call(self) -> None:
        """A map starts: refuse it unless the pool is open; else count it as open."""
        with self.lock:
            self.check(new_call=True)
            self.open_calls += 1

    def end_call(self) -> bool:
        """A map ended; True when it was the last one of a closed pool (the workers
        may stop now)."""
        with self.lock:
            self.open_calls -= 1
            return self.state is State.CLOSED and self.open_calls == 0

    def close(self) -> bool:
        """OPEN -> CLOSED; True when no call is open (the workers may stop now)."""
        with self.lock:
            if self.state is State.OPEN:
                self.state = State.CLOSED
            return self.open_calls == 0

    def terminate(self) -> None:
        with self.lock:
            if self.state is not State.BROKEN:
                self.state = State.TERMINATED

    def break_with(self, error: BaseException) -> bool:
        """The backend cannot run anything: BROKEN, keeping the first cause. True if
        this call broke it (later causes are consequences of the first)."""
        with self.lock:
            if self.state is State.BROKEN or self.state is State.TERMINATED:
                return False
            self.state = State.BROKEN
            self.error = error
            return True
