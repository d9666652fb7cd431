"""The own-kernel template (``examples/own-kernel``) works the way a user would use it.

In a fresh virtual environment, pip installs allcores from this checkout and then the
example, both built from source with the usual build isolation (setuptools, Cython and
numpy come from the package index). A script run with that environment's python then
checks the compiled kernel against its pure-Python twin (and the twin against numpy) on
every backend and for many blocks, that the kernel is marked as releasing the GIL, that
the mark survives pickling, and that ``run.py`` runs. Both sources are copied to
``tmp_path`` first, so that no build output lands in the repository.
"""

from __future__ import annotations

import faulthandler
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own-kernel"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not EXAMPLE.is_dir(), reason="examples/ is not in this copy"),
]

# Each install builds a Cython extension from source (allcores: ~20 s on 2 idle cores
# with a warm pip cache); generous, for a cold cache and a busy CI machine.
INSTALL_TIMEOUT_S = 600
CHECK_TIMEOUT_S = 300
# conftest's watchdog (120 s a test) is sized for tests that build nothing; this module's
# first test builds both packages. Every step is bounded by its own timeout above.
WATCHDOG_S = 2 * INSTALL_TIMEOUT_S + CHECK_TIMEOUT_S + 60

# What a copy of a source tree leaves out: environments, caches and build outputs.
SKIPPED_NAMES = {".git", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis",
                 ".mypy_cache", ".ruff_cache", "bench-results", "examples"}
SKIPPED_SUFFIXES = (".egg-info", ".so", ".pyd", ".o")


def _skip_outputs(folder, names):
    generated_c = pathlib.Path(folder).name in ("ext", "own_kernel")  # Cython's output
    return [name for name in names
            if name in SKIPPED_NAMES or name.startswith(".venv")
            or name.endswith(SKIPPED_SUFFIXES)
            or (generated_c and name.endswith((".c", ".html")))]


def _run(command, *, timeout, cwd=None, env=None):
    """Run ``command``; on failure or timeout, fail showing its stdout and stderr."""
    command = [str(part) for part in command]
    try:
        result = subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout} s: {' '.join(command)}\n"
                    f"--- stdout\n{exc.stdout}\n--- stderr\n{exc.stderr}")
    if result.returncode != 0:
        pytest.fail(f"exit status {result.returncode}: {' '.join(command)}\n"
                    f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def _clean_env():
    """This environment, less what would make the venv's python see the source tree or
    a fixed backend."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "ALLCORES_BACKEND", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv with allcores and own-kernel installed, the example's copy)."""
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=sys.stderr)
    base = tmp_path_factory.mktemp("own-kernel")
    allcores_src = base / "allcores-src"
    example_src = base / "own-kernel"
    shutil.copytree(ROOT, allcores_src, ignore=_skip_outputs)
    shutil.copytree(EXAMPLE, example_src, ignore=_skip_outputs)
    venv = base / "venv"
    env = _clean_env()
    _run([sys.executable, "-m", "venv", venv], timeout=120, env=env)
    python = venv / "bin" / "python"
    for source in (allcores_src, example_src):
        _run([python, "-m", "pip", "install", source], timeout=INSTALL_TIMEOUT_S, env=env)
    return python, example_src


CHECK_SCRIPT = textwrap.dedent("""
    import faulthandler
    import pickle
    import sys

    import numpy as np

    import allcores
    import allcores.blocks
    import own_kernel
    from own_kernel import distance_rows, distance_rows_python, pairwise_distances

    # Large enough a cost that fill cuts the rows into its most blocks (8 per worker),
    # whatever this machine's speed: the splits are what is under test.
    MANY_BLOCKS_COST = 1.0
    WORKERS = 2


    def close(got, expected):
        return np.allclose(got, expected, rtol=1e-12, atol=1e-12)


    if __name__ == "__main__":
        faulthandler.dump_traceback_later(240, exit=True)
        venv = sys.prefix
        for module in (allcores, own_kernel):  # the installed copies, not the sources
            assert module.__file__.startswith(venv), (module.__file__, venv)

        # The mark, on the compiled function itself, and by reference through pickle.
        assert allcores.planner.releases_gil(distance_rows)
        assert not allcores.planner.releases_gil(distance_rows_python)
        assert distance_rows is own_kernel._native.distance_rows
        assert pickle.loads(pickle.dumps(distance_rows)) is distance_rows

        rng = np.random.default_rng(20240611)
        points = rng.normal(size=(203, 7)) * 10.0  # 203 rows: uneven blocks
        reference = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))

        twin = pairwise_distances(points, impl="python", backend="serial")
        assert close(twin, reference)
        assert np.all(np.diag(twin) == 0) and np.array_equal(twin, twin.T)

        for backend in ("serial", "thread", "process"):
            native = pairwise_distances(points, workers=WORKERS, backend=backend)
            assert close(native, twin), backend
            blocked = allcores.blocks.fill(
                distance_rows, (len(points), len(points)), np.float64, args=(points,),
                cost=MANY_BLOCKS_COST, workers=WORKERS, backend=backend, insights=True)
            summary = allcores.insights()
            assert summary.backend == backend, (summary.backend, backend)
            if backend != "serial":
                assert len(summary.records) == 8 * WORKERS, summary
            assert close(blocked, twin), backend
            assert np.array_equal(blocked, native), backend
            print(f"{backend}: native == twin ({len(summary.records)} blocks)")

        # The twin on processes too: the same rows, the same numbers.
        twin_processes = pairwise_distances(points, impl="python", workers=WORKERS,
                                            backend="process")
        assert np.array_equal(twin_processes, twin)

        # backend="auto" runs a marked function on threads.
        allcores.blocks.fill(distance_rows, (len(points), len(points)), args=(points,),
                             cost=MANY_BLOCKS_COST, workers=WORKERS, insights=True)
        assert allcores.insights().backend == "thread", allcores.insights().backend

        # Bad input: the same error from the kernel and its twin.
        for bad in [(0, 1.5, np.zeros((1, 3)), points[:3]),
                    (0, 2, np.zeros((2, 3), np.float32), points[:3]),
                    (2, 1, np.zeros((1, 3)), points[:3])]:
            errors = []
            for fn in (distance_rows, distance_rows_python):
                try:
                    fn(*bad)
                except (TypeError, ValueError) as exc:
                    errors.append((type(exc), str(exc)))
            assert len(errors) == 2 and errors[0] == errors[1], errors
        print("own-kernel check passed")
""")


def test_the_native_kernel_matches_its_twin_on_every_backend(installed, tmp_path):
    python, _ = installed
    script = tmp_path / "check_own_kernel.py"
    script.write_text(CHECK_SCRIPT)
    result = _run([python, script], cwd=tmp_path, timeout=CHECK_TIMEOUT_S, env=_clean_env())
    assert "own-kernel check passed" in result.stdout, result.stdout
    for backend in ("serial", "thread", "process"):
        assert f"{backend}: native == twin" in result.stdout, result.stdout


def test_run_py_checks_and_reports_speedups(installed, tmp_path):
    python, example = installed
    result = _run([python, example / "run.py", "--points", "400", "--dims", "3",
                   "--twin-rows", "20", "--repeats", "1", "--workers", "2"],
                  cwd=tmp_path, timeout=CHECK_TIMEOUT_S, env=_clean_env())
    assert "all results agree" in result.stdout, result.stdout
    for line in ("native vs twin", "threads vs serial", "processes vs serial"):
        assert line in result.stdout, result.stdout
