"""Fixtures of the ported suites (``tests/compat``): which backend, a gate file for
blocked calls, an executor that never leaves a call blocked, and no warm default pool
left running after a module."""

from __future__ import annotations

import pytest
from _compat import open_gate

import allcores
from allcores import _default_pools

BACKENDS = ["process", "thread"]


@pytest.fixture(scope="module", autouse=True)
def stop_default_pools():
    """Leave no warm default pool (``allcores.map``'s) running after a module."""
    yield
    _default_pools.terminate_all()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def gate(tmp_path):
    """A file that blocked calls wait for (``_workloads.wait_for_path``)."""
    return str(tmp_path / "gate")


@pytest.fixture
def executor(backend, gate):
    ex = allcores.Executor(2, backend=backend)
    try:
        yield ex
    finally:
        open_gate(gate)  # a test that failed half-way must not leave calls blocked
        ex.shutdown(wait=True, cancel_futures=True)
