"""Backends: where chunks run. Each is a small class behind one interface
(``allcores.backends.base.Backend``), looked up by name and imported only when used."""

from __future__ import annotations

import importlib
import multiprocessing
import sys
import threading

from allcores.backends.base import Backend

# Names that mark allcores' own workers (see thread.py and process.py).
THREAD_NAME_PREFIX = "allcores-thread"
WORKER_PROCESS_NAME = "allcores-worker"

# name -> "module:class", imported on first use so that `import allcores` stays cheap.
BACKENDS = {
    "serial": "allcores.backends.serial:SerialBackend",
    "thread": "allcores.backends.thread:ThreadBackend",
    "process": "allcores.backends.process:ProcessBackend",
    "dask": "allcores.backends.dask:DaskBackend",  # needs the optional dask extra
}


# The backend whose chunk this thread is running (set by the thread backend): .backend
_running = threading.local()


def running_in_worker(backend: Backend | None = None) -> bool:
    """Whether this code runs on a worker of an allcores pool (any pool; with
    ``backend``, a thread of that backend's own pool).

    A map started there would queue its chunks on a pool whose workers may all be busy
    waiting for it (a deadlock on the same thread pool), and the outer map already keeps
    every core busy: nested calls run serially instead. Module-level calls and kernels
    ask about any pool; a ``Pool``'s methods about their own (a pool made inside a worker
    on purpose runs as asked)."""
    if backend is not None:
        return getattr(_running, "backend", None) is backend
    return (threading.current_thread().name.startswith(THREAD_NAME_PREFIX)
            or multiprocessing.current_process().name == WORKER_PROCESS_NAME
            or _in_dask_task())


class running_chunks_of:  # noqa: N801  (used as a context manager, like a function)
    """While a thread runs a chunk of ``backend``: see :func:`running_in_worker`."""

    __slots__ = ("backend", "outer")

    def __init__(self, backend: Backend):
        self.backend = backend

    def __enter__(self) -> None:
        self.outer = getattr(_running, "backend", None)
        _running.backend = self.backend

    def __exit__(self, *exc_info) -> None:
        _running.backend = self.outer


def _in_dask_task() -> bool:
    distributed = sys.modules.get("distributed")  # only if something imported it already
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def validate_backend_name(name: object) -> type[Backend]:
    """The backend class for ``name``; ``ValueError`` naming the choices otherwise."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(BACKENDS)}, got: {name!r}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_backend(name: str, workers: int, lifecycle, **options) -> Backend:
    """An instance of backend ``name``, sharing the pool's ``lifecycle``
    (``allcores._lifecycle``), given the options it takes (its ``option_names``);
    options left at None are not passed."""
    backend_class = validate_backend_name(name)
    given = {key: value for key, value in options.items() if value is not None}
    unknown = set(given) - set(backend_class.option_names)
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))}: not an option of the {name!r} backend "
                         f"(it takes: {', '.join(backend_class.option_names)})")
    return backend_class(workers, lifecycle=lifecycle, **given)
