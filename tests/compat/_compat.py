"""Helpers of the ported suites (``tests/compat``), for the tests' own process."""

from __future__ import annotations

import time

import _workloads as w

RESULT_TIMEOUT_S = 60  # the longest any one result may take to arrive


def open_gate(path: str) -> None:
    open(path, "a").close()


def wait_until(condition, what: str, timeout: float = w.WAIT_LIMIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(w.POLL_S)
