"""Shared test configuration.

Every test runs under a watchdog: if it blocks longer than ``ALLCORES_TEST_TIMEOUT``
seconds (default 120), faulthandler dumps every thread's traceback and exits, so a
deadlock fails CI with a useful trace instead of hanging until CI's own limit.
"""

import faulthandler
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

TEST_TIMEOUT_S = float(os.environ.get("ALLCORES_TEST_TIMEOUT", "120"))

# Deterministic hypothesis runs: the same examples on every machine and every run.
settings.register_profile(
    "allcores",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("allcores")


@pytest.fixture(autouse=True)
def deadlock_watchdog():
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()
