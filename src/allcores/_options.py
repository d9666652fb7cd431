"""The options of a call, checked in one place before anything starts.

Every entry point (``allcores.map`` / ``imap`` / ``imap_unordered``, ``allcores.plan``,
``Pool`` and its methods, the kernels) checks what it was given with these functions,
so that the same bad value gets the same error wherever it is passed, and no worker
starts (and no item is read) for a call that is refused.
"""

from __future__ import annotations

from typing import Any, Callable, Final, Iterable, NamedTuple

from allcores import _checks as check
from allcores.backends import BACKENDS, validate_backend_name

AUTO: Final = "auto"  # Final: a type checker takes it as Literal["auto"]


def check_callable(fn: object, name: str = "fn") -> None:
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable, got: {type(fn).__name__}")


def check_map_arguments(fn: object, iterable: object, chunksize: object) -> None:
    """The checks every map-like call makes before any work (or any worker) starts."""
    check_callable(fn)
    if not hasattr(iterable, "__iter__") and not hasattr(iterable, "__getitem__"):
        raise TypeError(f"iterable: expected an iterable, got: {type(iterable).__name__}")
    chunksize_option(chunksize)


def chunksize_option(chunksize: object) -> int | None:
    """``chunksize`` as given (None: chunk sizes adapt to the measured cost of items)."""
    if chunksize is None:
        return None
    if hasattr(chunksize, "__iter__") and not hasattr(chunksize, "__index__"):
        # map(pow, xs, ys), as builtins.map takes it: multiprocessing's map reads ys as
        # the chunk size too. Say what to write instead.
        raise TypeError(f"chunksize: expected an integer, got: {check.describe(chunksize)}. "
                        "A map takes one iterable: for a function of several arguments, "
                        "use starmap(fn, zip(xs, ys)) (or Executor.map(fn, xs, ys))")
    return check.integer("chunksize", chunksize, min=1)


def workers_option(workers: object) -> int | None:
    """``workers`` as given (None: the usable CPU count, decided where it is used)."""
    return None if workers is None else check.integer("workers", workers, min=1)


def backend_option(backend: object) -> str:
    """``"auto"`` or the name of a backend."""
    if isinstance(backend, str) and (backend == AUTO or backend in BACKENDS):
        return backend
    raise ValueError(f"backend: expected {AUTO!r} or one of {sorted(BACKENDS)}, "
                     f"got: {backend!r}")


def retries_option(retries: object) -> int | None:
    """``retries`` as given (None: the pool's default, 1)."""
    return None if retries is None else check.integer("retries", retries, min=0)


def timeout_option(timeout: object, backend: str) -> float | None:
    """``timeout`` in seconds (None: none), for a backend that can stop a running chunk;
    ``backend`` "auto" can (it then runs on processes)."""
    if timeout is None:
        return None
    timeout = check.finite_real("timeout", timeout)
    if timeout <= 0:
        raise ValueError(f"timeout: expected a number of seconds > 0, got: {timeout}")
    if backend != AUTO and not validate_backend_name(backend).supports_timeout:
        raise ValueError(f"timeout: the {backend!r} backend cannot stop a running chunk; "
                         "use backend='process'")
    return timeout


def flag_option(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got: {value!r}")
    return value


class MapCall(NamedTuple):
    """One ``allcores.map`` / ``imap`` / ``imap_unordered`` call, checked."""

    fn: Callable[[Any], Any]
    iterable: Iterable[Any]
    workers: int | None
    backend: str          # "auto" or a backend's name
    chunksize: int | None
    progress: bool
    insights: bool
    ordered: bool
    retries: int | None = None   # None: the pool's default
    timeout: float | None = None


def map_call(fn, iterable, *, workers, backend, chunksize, progress, insights,
             ordered: bool = True, retries=None, timeout=None) -> MapCall:
    check_map_arguments(fn, iterable, chunksize)
    backend = backend_option(backend)
    return MapCall(fn, iterable, workers_option(workers), backend,
                   chunksize_option(chunksize), flag_option("progress", progress),
                   flag_option("insights", insights), ordered, retries_option(retries),
                   timeout_option(timeout, backend))
