"""Shared test configuration.

Every test runs under a watchdog: if its setup, call and teardown together block longer
than ``ALLCORES_TEST_TIMEOUT`` seconds (default 120), faulthandler dumps every thread's
traceback and exits, so a deadlock fails CI with a useful trace instead of hanging until
CI's own limit. The end of the session (fixture finalizers, atexit hooks) is guarded the
same way.
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_sessionfinish(session, exitstatus):
    # Left armed on purpose: it also covers interpreter shutdown (atexit hooks).
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True, file=sys.stderr)


@pytest.fixture(autouse=True, scope="session")
def _public_names_resolved():
    """Resolve every lazily loaded public name of ``allcores`` once, before any test.

    Tests patch the modules that define them (``shortcuts.map``, ...); a package
    attribute resolved for the first time under such a patch would be cached with the
    patched value and outlive the test.
    """
    import allcores

    for name in allcores.__all__:
        getattr(allcores, name)
