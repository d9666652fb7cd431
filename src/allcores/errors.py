"""Every exception allcores raises of its own, in one place.

::

    Exception
    └── AllcoresError                 base class: catch this to catch any of ours
        ├── WorkerCrashedError        a worker process died running a chunk, retries spent
        │                             (also a concurrent.futures BrokenProcessPool)
        ├── ChunkTimeoutError         a chunk overran the pool's ``timeout`` (also a TimeoutError)
        ├── PoolClosedError           work submitted to a pool that is closed, terminated,
        │                             broken, or inherited through os.fork() (also a
        │                             RuntimeError, and a ValueError as multiprocessing's
        │                             "Pool not running")
        └── WorkerInitError           workers could not start: the pool's ``initializer``
                                      raised, the system refused a process, or the script
                                      lacks its ``if __name__ == "__main__":`` guard
                                      (also a concurrent.futures BrokenExecutor)

The second bases are there for code that moves from ``multiprocessing.Pool`` or a
``concurrent.futures`` executor: its ``except BrokenProcessPool``, ``except
BrokenExecutor`` (a failing initializer), ``except ValueError`` (a closed
``multiprocessing.Pool``) and ``except TimeoutError`` clauses keep working.
Unlike a broken ``ProcessPoolExecutor``, an allcores pool survives a worker's death: only
the chunk that was running there fails.

``WorkerCrashedError`` and ``WorkerInitError`` are made on first use (a module
``__getattr__``): their bases live in ``concurrent.futures``, which a worker process
should not pay to import (~15 ms).

An exception raised by *your* function is not wrapped: it reaches the caller with its
original type and message, its remote traceback chained as ``__cause__``
(a :class:`RemoteTraceback`) and a note naming the item that raised it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


class AllcoresError(Exception):
    """Base class of the exceptions raised by allcores itself."""


def _make_worker_crashed_error() -> type:
    from concurrent.futures.process import BrokenProcessPool

    class WorkerCrashedError(AllcoresError, BrokenProcessPool):
        """A worker process died while running a chunk, and re-running it did not help.

        Attributes
        ----------
        first_item, stop_item : int
            The chunk's items are ``first_item .. stop_item - 1`` (positions in the input).
        exitcode : int | None
            The worker's exit status; negative values are ``-signal`` (e.g. ``-9``: SIGKILL).
        attempts : int
            How many times the chunk was run.
        """

        def __init__(self, first_item: int, stop_item: int, exitcode: int | None, attempts: int):
            self.first_item = first_item
            self.stop_item = stop_item
            self.exitcode = exitcode
            self.attempts = attempts
            super().__init__(
                f"a worker process died running items {first_item}..{stop_item - 1} "
                f"({describe_exit(exitcode)}); tried {attempts} time(s). Only this chunk "
                f"failed: the pool replaced the worker and goes on"
            )

        def __reduce__(self):
            return type(self), (self.first_item, self.stop_item, self.exitcode, self.attempts)

    WorkerCrashedError.__module__ = __name__
    WorkerCrashedError.__qualname__ = "WorkerCrashedError"  # pickled by this name
    return WorkerCrashedError


def _make_worker_init_error() -> type:
    from concurrent.futures import BrokenExecutor

    class WorkerInitError(AllcoresError, BrokenExecutor):
        """Workers could not start: the pool's ``initializer`` raised in a worker (the
        original error is the cause), the system refused to start a process, or the main
        script lacks its ``if __name__ == "__main__":`` guard (the message shows the
        fix). Also a ``concurrent.futures.BrokenExecutor``, as the standard executors
        report a failing initializer."""

    WorkerInitError.__module__ = __name__
    WorkerInitError.__qualname__ = "WorkerInitError"  # pickled by this name
    return WorkerInitError


# The classes with a base in concurrent.futures, made on first use (see the docstring).
_MADE_ON_FIRST_USE = {"WorkerCrashedError": _make_worker_crashed_error,
                      "WorkerInitError": _make_worker_init_error}

if TYPE_CHECKING:  # what type checkers see; at run time they are made on first use
    from concurrent.futures import BrokenExecutor
    from concurrent.futures.process import BrokenProcessPool

    class WorkerCrashedError(AllcoresError, BrokenProcessPool):
        first_item: int
        stop_item: int
        exitcode: int | None
        attempts: int

        def __init__(self, first_item: int, stop_item: int, exitcode: int | None,
                     attempts: int) -> None: ...

    class WorkerInitError(AllcoresError, BrokenExecutor):
        pass
else:

    def __getattr__(name: str):
        make = _MADE_ON_FIRST_USE.get(name)
        if make is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        cls = globals()[name] = make()
        return cls


class ChunkTimeoutError(AllcoresError, TimeoutError):
    """A chunk ran longer than the pool's ``timeout``; its worker was killed and replaced."""


class PoolClosedError(AllcoresError, RuntimeError, ValueError):
    """The pool takes no more work: it was closed or terminated before this work could
    run, it broke (the message and the cause say why), or this process inherited it
    through ``os.fork()`` from the process that owns it."""


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in a worker."""

    def __init__(self, text: str):
        self.text = text
        super().__init__(text)

    def __str__(self) -> str:
        return "\n" + self.text


def describe_exit(exitcode: int | None) -> str:
    """A readable cause for a worker's exit status."""
    import signal

    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        cause = {
            "SIGKILL": "killed: often the out-of-memory killer, or a kill -9",
            "SIGSEGV": "segmentation fault: a crash in native code",
            "SIGBUS": "bus error: a crash in native code",
            "SIGABRT": "aborted: a failed assertion in native code",
            "SIGTERM": "terminated",
        }.get(name, "killed by a signal")
        return f"{name}, {cause}"
    if exitcode == 0:
        return "exit code 0: the process ended without being asked to"
    # sys.exit() and any other exception reach the caller as the chunk's error: a worker
    # that exits with a status was ended by os._exit() or by exit() in native code.
    return f"exit code {exitcode}: os._exit() or a C-level exit() in the function or a library"
