"""``AsyncResult``: what ``Pool.apply_async``, ``map_async`` and ``starmap_async`` return,
as ``multiprocessing.pool.AsyncResult`` does.

It wraps the call's ``concurrent.futures.Future``. ``callback(result)`` or
``error_callback(exception)`` runs once, in this process, on the thread that settled the
future (an engine thread, guarded: what a callback raises is logged, never kills the
engine); as in multiprocessing, ``get()`` and ``ready()`` see the result only after the
callback ran.

Examples
--------
>>> import allcores
>>> with allcores.Pool(workers=2, backend="thread") as pool:
...     outcome = pool.map_async(abs, [-1, -2, 3])
...     print(outcome.get(timeout=60), outcome.successful())
[1, 2, 3] True
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import Future
from typing import Callable, Generic

from allcores._types import R


class AsyncResult(Generic[R]):
    """The result of an ``*_async`` call, as ``multiprocessing.pool.AsyncResult``.

    Returned by :meth:`allcores.Pool.apply_async`, :meth:`~allcores.Pool.map_async` and
    :meth:`~allcores.Pool.starmap_async`; not made by hand. ``AsyncResult[R]``:
    :meth:`get` returns an ``R``.

    Parameters
    ----------
    future : concurrent.futures.Future
        The call's future.
    callback : callable, optional
        ``callback(result)``, run once in this process when the call succeeds.
    error_callback : callable, optional
        ``error_callback(exception)``, run once in this process when the call fails.

    Attributes
    ----------
    future : concurrent.futures.Future
        The underlying future: it works with ``concurrent.futures.wait`` and
        ``as_completed``.

    Notes
    -----
    The callbacks run on the thread that settled the future (an engine thread), so
    they should be quick; what one raises is logged and never stops the engine. As in
    ``multiprocessing``, :meth:`ready` and :meth:`get` see the result only once the
    callback has run.

    Examples
    --------
    >>> import allcores
    >>> seen = []
    >>> with allcores.Pool(workers=2, backend="thread") as pool:
    ...     outcome = pool.apply_async(pow, (2, 10), callback=seen.append)
    ...     print(outcome.get(timeout=60))
    1024
    >>> outcome.ready(), seen
    (True, [1024])
    """

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
        """Whether the call has completed (its callback, if any, has run).

        Returns
        -------
        bool
            True once :meth:`get` would return or raise without waiting.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=1, backend="thread") as pool:
        ...     outcome = pool.apply_async(abs, (-5,))
        ...     outcome.wait(timeout=60)
        ...     print(outcome.ready())
        True
        """
        return self._ready.is_set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the call has completed, or ``timeout`` seconds have passed.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; None: as long as it takes.

        Notes
        -----
        It returns None either way: check :meth:`ready` to tell which.

        Examples
        --------
        >>> import allcores
        >>> with allcores.Pool(workers=1, backend="thread") as pool:
        ...     outcome = pool.map_async(abs, [-1, -2])
        ...     outcome.wait(timeout=60)
        ...     print(outcome.ready(), outcome.get())
        True [1, 2]
        """
        self._ready.wait(timeout)

    def successful(self) -> bool:
        """Whether the call completed without raising.

        Returns
        -------
        bool
            False if it raised or was cancelled.

        Raises
        ------
        ValueError
            If the call has not completed yet (as ``multiprocessing`` says).

        Examples
        --------
        >>> import math, allcores
        >>> with allcores.Pool(workers=1, backend="thread") as pool:
        ...     outcome = pool.apply_async(math.sqrt, (-1,))
        ...     outcome.wait(timeout=60)
        ...     print(outcome.successful())
        False
        """
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return not self.future.cancelled() and self.future.exception() is None

    def get(self, timeout: float | None = None) -> R:
        """The call's result, waiting for it if need be.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; None: as long as it takes.

        Returns
        -------
        R
            What the function returned (a list for ``map_async`` and
            ``starmap_async``).

        Raises
        ------
        multiprocessing.TimeoutError
            If the call has not completed within ``timeout`` seconds; the call goes
            on, and ``get`` can be called again.
        Exception
            The call's own exception, if it raised (with its original type).

        Examples
        --------
        >>> import math, allcores
        >>> pool = allcores.Pool(workers=1, backend="thread")
        >>> pool.apply_async(math.sqrt, (16,)).get(timeout=60)
        4.0
        >>> pool.apply_async(math.sqrt, (-1,)).get(timeout=60)
        Traceback (most recent call last):
        ...
        ValueError: math domain error
        ...
        >>> pool.close()
        """
        if not self._ready.wait(timeout):
            raise multiprocessing.TimeoutError(f"no result within {timeout} s")
        return self.future.result(timeout=0)

    def __repr__(self) -> str:
        state = "ready" if self.ready() else "pending"
        return f"<allcores.AsyncResult {state}>"
