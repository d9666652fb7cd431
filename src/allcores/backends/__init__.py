"""Backends: where chunks run. Each is a small class behind one interface
(``allcores.backends.base.Backend``), looked up by name and imported only when used."""

from __future__ import annotations

import importlib

from allcores.backends.base import Backend

# name -> "module:class", imported on first use so that `import allcores` stays cheap.
BACKENDS = {
    "serial": "allcores.backends.serial:SerialBackend",
    "thread": "allcores.backends.thread:ThreadBackend",
    "process": "allcores.backends.process:ProcessBackend",
}


def validate_backend_name(name: object) -> type[Backend]:
    """The backend class for ``name``; ``ValueError`` naming the choices otherwise."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(BACKENDS)}, got: {name!r}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_backend(name: str, workers: int, *, start_method: str, initializer, initargs,
                   retries: int, timeout: float | None) -> Backend:
    backend_class = validate_backend_name(name)
    if backend_class.runs_in_caller_process:
        return backend_class(workers, initializer=initializer, initargs=initargs)
    return backend_class(workers, start_method=start_method, initializer=initializer,
                         initargs=initargs, retries=retries, timeout=timeout)
