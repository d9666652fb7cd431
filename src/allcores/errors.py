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
original type and message and a note naming the item that raised it; from a worker
process, the remote traceback is chained as ``__cause__`` (a :class:`RemoteTraceback`).

Examples
--------
>>> import allcores
>>> issubclass(allcores.WorkerCrashedError, allcores.AllcoresError)
True
>>> from concurrent.futures.process import BrokenProcessPool
>>> issubclass(allcores.WorkerCrashedError, BrokenProcessPool)
True
>>> issubclass(allcores.ChunkTimeoutError, TimeoutError)
True
>>> issubclass(allcores.PoolClosedError, ValueError)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["AllcoresError", "ChunkTimeoutError", "PoolClosedError", "RemoteTraceback",
           "WorkerCrashedError", "WorkerInitError", "describe_exit"]


class AllcoresError(Exception):
    """Base class of the exceptions raised by allcores itself.

    Catch it to catch any failure of the engine (a dead worker, a chunk past its
    timeout, a closed pool, workers that could not start). Exceptions raised by your
    own function are not wrapped in it: they keep their type.

    See Also
    --------
    WorkerCrashedError, ChunkTimeoutError, PoolClosedError, WorkerInitError

    Examples
    --------
    >>> import allcores
    >>> pool = allcores.Pool(workers=1, backend="thread")
    >>> pool.close()
    >>> try:
    ...     pool.map(abs, [-1])
    ... except allcores.AllcoresError as error:
    ...     print(type(error).__name__, "-", error)
    PoolClosedError - the pool is closed
    """


def _make_worker_crashed_error() -> type:
    from concurrent.futures.process import BrokenProcessPool

    class WorkerCrashedError(AllcoresError, BrokenProcessPool):
        """A worker process died while running a chunk, and re-running it did not help.

        Raised for the chunk (a ``submit`` call, or a chunk of a map) whose worker died
        by a signal (SIGKILL, the out-of-memory killer, a segfault in native code) or
        by ``os._exit()``, once the chunk was run ``retries + 1`` times (see
        :class:`allcores.Pool`). The pool replaces the dead worker and goes on: other
        calls and the other chunks of the map are not affected, and the results of the
        chunks before it in an ``imap`` were already handed back. An exception your
        function raises (``sys.exit()`` included) is not a crash: it reaches you as
        itself. Also a ``concurrent.futures.process.BrokenProcessPool``.

        Parameters
        ----------
        first_item, stop_item : int
            The chunk's items are ``first_item .. stop_item - 1`` (positions in the input).
        exitcode : int or None
            The worker's exit status; negative values are ``-signal`` (e.g. ``-9``:
            SIGKILL); None if unknown.
        attempts : int
            How many times the chunk was run.

        Attributes
        ----------
        first_item, stop_item, exitcode, attempts
            As given.

        Examples
        --------
        >>> import os, allcores
        >>> with allcores.Pool(workers=1, retries=0) as pool:
        ...     try:
        ...         pool.submit(os._exit, 3).result(timeout=60)
        ...     except allcores.WorkerCrashedError as error:
        ...         print(error.exitcode, error.attempts, error.first_item, error.stop_item)
        ...     print(pool.map(abs, [-1, -2]))  # the pool goes on
        3 1 0 1
        [1, 2]
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
        """Workers could not start, so the pool cannot run anything.

        Raised by the calls of a pool whose workers could not start: its
        ``initializer`` raised in a worker (the original error is the ``__cause__``),
        the system refused to start a process, or the main script lacks its
        ``if __name__ == "__main__":`` guard (the message shows the fix). The pool is
        then broken: every later call raises it again, saying why. Also a
        ``concurrent.futures.BrokenExecutor``, as the standard executors report a
        failing initializer.

        Examples
        --------
        >>> import math, allcores
        >>> with allcores.Pool(workers=1, backend="thread",
        ...                    initializer=math.sqrt, initargs=(-1,)) as pool:
        ...     try:
        ...         pool.map(abs, [-1])
        ...     except allcores.WorkerInitError as error:
        ...         print(error, "-", repr(error.__cause__))
        the pool's initializer raised in a worker thread - ValueError('math domain error')
        """

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
    """A chunk ran longer than the pool's ``timeout``; its worker was killed and replaced.

    Only the process backend can stop a running chunk (``Pool(timeout=...)``, or
    ``timeout=`` on ``allcores.map``); the chunk is not run again. The pool goes on
    with a fresh worker. Also a ``TimeoutError``.

    Examples
    --------
    >>> import time, allcores
    >>> with allcores.Pool(workers=1, timeout=1) as pool:
    ...     try:
    ...         pool.submit(time.sleep, 30).result(timeout=60)
    ...     except allcores.ChunkTimeoutError as error:
    ...         print(error)
    ...     print(pool.map(abs, [-1]))
    items 0..0 ran longer than the pool's timeout of 1.0 s; their worker was killed and replaced
    [1]
    """


class PoolClosedError(AllcoresError, RuntimeError, ValueError):
    """The pool takes no more work.

    It was closed or terminated before this work could run (work still queued when
    :meth:`allcores.Pool.terminate` stops the workers fails with it too), it broke
    (the message and the cause say why), or this process inherited it through
    ``os.fork()`` from the process that owns it. Also a ``RuntimeError`` (as a shut
    down ``concurrent.futures`` executor raises) and a ``ValueError`` (as a closed
    ``multiprocessing.Pool`` raises).

    Examples
    --------
    >>> import allcores
    >>> with allcores.Pool(workers=2, backend="thread") as pool:
    ...     pass
    >>> pool.closed
    True
    >>> pool.submit(abs, -1)
    Traceback (most recent call last):
    ...
    allcores.errors.PoolClosedError: the pool is closed
    """


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in a worker process.

    An exception raised by your function in a worker process reaches the caller with
    its own type; this is its ``__cause__``, so that the traceback printed for it
    shows where it was raised in the worker.

    Parameters
    ----------
    text : str
        The traceback as the worker formatted it.

    Attributes
    ----------
    text : str
        As given.

    Examples
    --------
    >>> import math, allcores
    >>> with allcores.Pool(workers=1) as pool:
    ...     try:
    ...         pool.map(math.sqrt, [4, -1])
    ...     except ValueError as error:
    ...         print(type(error.__cause__).__name__)
    ...         print(error.__cause__.text.splitlines()[-1])
    ...         print(error.__notes__)
    RemoteTraceback
    ValueError: math domain error
    ['allcores: raised by item 1 of the input (in worker process ...)']
    """

    def __init__(self, text: str):
        self.text = text
        super().__init__(text)

    def __str__(self) -> str:
        return "\n" + self.text


def describe_exit(exitcode: int | None) -> str:
    """A readable cause for a worker's exit status.

    Parameters
    ----------
    exitcode : int or None
        As ``multiprocessing.Process.exitcode`` gives it: negative for a signal.

    Returns
    -------
    str
        The status in words, with its likely cause.

    Examples
    --------
    >>> from allcores.errors import describe_exit
    >>> describe_exit(-9)
    'SIGKILL, killed: often the out-of-memory killer, or a kill -9'
    >>> describe_exit(3)
    'exit code 3: os._exit() or a C-level exit() in the function or a library'
    """
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
