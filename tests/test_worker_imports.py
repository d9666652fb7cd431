"""A process worker imports only what it needs (issue #15).

Under the ``spawn`` start method every new worker (and every replacement) pays for each
module it imports; under ``forkserver`` the server imports ``allcores._worker`` once and
every worker is forked from it. Neither should load numpy, the compiled kernels, the
pool or the planner to run a chunk: ``import allcores`` is lazy (PEP 562), and a worker
imports the extension only when a task's function lives there.

Each check runs in a fresh interpreter: this test process has long imported everything,
and the forkserver is one per process, started by whichever test needed it first (with
whatever it was asked to preload). Every subprocess runs under a timeout, and arms
``faulthandler`` itself, so a hang fails with the child's tracebacks.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys

import pytest

import allcores

# A child that hangs dumps its tracebacks at CHILD_WATCHDOG_S and exits; the test stops
# waiting a little later.
CHILD_WATCHDOG_S = 60
SUBPROCESS_TIMEOUT_S = CHILD_WATCHDOG_S + 30

# What a worker must not import to run a chunk of a plain function.
HEAVY_MODULES = (
    "numpy",
    "allcores.native",
    "allcores.kernels",
    "allcores.pure",
    "allcores.pool",
    "allcores.planner",
    "allcores.shortcuts",
    "allcores.dispatch",
    "allcores.timeline",
    "allcores.backends",
    "tqdm",
    "cloudpickle",  # only for functions that travel by value
)

START_METHODS = [m for m in ("spawn", "forkserver")
                 if m in multiprocessing.get_all_start_methods()]

# Imported by the workers by reference: a function in a light module of its own, so that
# neither this test module (which imports pytest) nor cloudpickle is loaded to run it.
PROBE_MODULE = """\
import sys


def loaded_modules(_):
    return sorted(sys.modules)
"""

# A user's script, with its guard: workers import it (as __mp_main__) under spawn and
# forkserver, and with it `import allcores` at its top.
MAIN_SCRIPT = """\
import faulthandler
import json
import sys

import allcores
from probe import loaded_modules

faulthandler.dump_traceback_later({watchdog}, exit=True)


def main(start_method):
    with allcores.Pool(1, start_method=start_method) as pool:
        before = pool.map(loaded_modules, [0])[0]
        primes = pool.starmap(allcores.native.count_primes_range, [(0, 100), (100, 1000)])
        after = pool.map(loaded_modules, [0])[0]
    print(json.dumps({{"before": before, "primes": primes, "after": after}}))


if __name__ == "__main__":
    main(sys.argv[1])
"""


def run_python(args, cwd) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=SUBPROCESS_TIMEOUT_S)
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_imports_neither_numpy_nor_the_kernels(start_method, tmp_path):
    (tmp_path / "probe.py").write_text(PROBE_MODULE)
    (tmp_path / "main.py").write_text(MAIN_SCRIPT.format(watchdog=CHILD_WATCHDOG_S))
    report = json.loads(run_python(["main.py", start_method], cwd=tmp_path))

    assert "allcores._worker" in report["before"]
    assert [m for m in HEAVY_MODULES if m in report["before"]] == []
    # A function pickled by reference from the extension: imported on demand, and right.
    assert report["primes"] == [25, 143]
    assert "allcores.native" in report["after"]


def test_importing_the_worker_module_stays_light(tmp_path):
    # What the forkserver preloads, and what a spawned worker imports before its first chunk.
    code = "import json, sys, allcores._worker; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(run_python(["-c", code], cwd=tmp_path))
    assert [m for m in HEAVY_MODULES if m in loaded] == []


PUBLIC_API_PROBE = """\
import json, sys
import allcores
lazy_before = sorted(m for m in {heavy!r} if m in sys.modules)
listed = dir(allcores)
resolved = {{name: type(getattr(allcores, name)).__name__ for name in allcores.__all__}}
from allcores import map, imap, imap_unordered, Pool, plan, Plan, nogil, cpu_count
from allcores import insights, Insights, kernels, __version__
print(json.dumps({{"lazy_before": lazy_before, "listed": listed, "resolved": resolved,
                  "native": type(allcores.native).__name__,
                  "map_is_shortcut": map is allcores.shortcuts.map,
                  "pool_is_class": Pool is allcores.pool.Pool}}))
"""


def test_public_names_resolve_on_first_use(tmp_path):
    code = PUBLIC_API_PROBE.format(heavy=HEAVY_MODULES)
    report = json.loads(run_python(["-c", code], cwd=tmp_path))

    assert report["lazy_before"] == []
    assert sorted(report["resolved"]) == sorted(allcores.__all__)
    assert report["resolved"]["kernels"] == "module"
    assert report["resolved"]["Pool"] == "type"
    assert report["resolved"]["map"] == "function"
    assert set(allcores.__all__) <= set(report["listed"])
    # Submodules a bare `import allcores` used to load still resolve as attributes.
    assert report["native"] == "module"
    assert report["map_is_shortcut"] and report["pool_is_class"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        allcores.no_such_name  # noqa: B018
    assert not hasattr(allcores, "no_such_name")


def test_kernels_work_through_the_lazy_package():
    assert allcores.kernels is sys.modules["allcores.kernels"]
    assert allcores.kernels.count_primes(0, 100) == 25
