"""Helpers of the ported suites (``tests/compat``), for the tests' own process."""

from __future__ import annotations

import os
import threading

import _support
import _workloads as w

RESULT_TIMEOUT_S = 60  # the longest any one result may take to arrive


def open_gate(path: str) -> None:
    open(path, "a").close()


def wait_until(condition, what: str, timeout: float = w.WAIT_LIMIT_S):
    """``_support.wait_until``, with what the ported tests say first."""
    return _support.wait_until(condition, timeout, what)


def worker_is_gone(backend: str, pid: int, ident: int) -> bool:
    """The worker (a thread of this process, or a process) no longer exists; a process
    must also have been reaped (``os.kill`` then fails)."""
    if backend == "thread":
        return ident not in {t.ident for t in threading.enumerate()}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
