"""The release path: build the sdist and a repaired manylinux wheel with the documented
script, install the wheel in a fresh virtual environment, and use it from outside the
source tree."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="manylinux wheels"),
]


def run(*command, cwd=None, timeout=600):
    return subprocess.run([str(c) for c in command], cwd=cwd, check=True, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    env_python = os.environ.get("PYTHON", sys.executable)
    subprocess.run(["bash", str(ROOT / "scripts" / "build-wheels.sh"), str(out)], cwd=ROOT,
                   check=True, timeout=900, env={**os.environ, "PYTHON": env_python})
    return out


def test_the_sdist_carries_sources_not_generated_c(built):
    import tarfile

    (sdist,) = built.glob("*.tar.gz")
    names = tarfile.open(sdist).getnames()
    assert any(n.endswith("ext/native.pyx") for n in names)
    assert any(n.endswith("ext/arith.h") for n in names)
    # No generated C from ext/*.pyx (benchmarks/c/ holds hand-written C references).
    assert not any("/ext/" in n and n.endswith(".c") for n in names), names
    assert not any(n.endswith((".so", ".pyd")) for n in names), names


def test_the_wheel_is_manylinux_small_and_typed(built):
    (wheel,) = built.glob("*manylinux*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "allcores/native.pyi" in names and "allcores/py.typed" in names
    assert any(n.startswith("allcores/native.") and n.endswith(".so") for n in names)
    assert any(n.endswith("licenses/LICENSE") for n in names)
    # Stripped: no debug sections in any extension (their names live in the ELF section
    # name table), and the wheel stays small. Stripped, it is ~400 kB with the kernels'
    # run-time ISA variants; debug information would add megabytes.
    with zipfile.ZipFile(wheel) as archive:
        for name in names:
            if name.endswith(".so"):
                assert b".debug_info" not in archive.read(name), f"debug symbols in {name}"
    assert wheel.stat().st_size < 1_000_000, "debug symbols left in the wheel?"


def test_the_installed_wheel_works_outside_the_source_tree(built, tmp_path):
    (wheel,) = built.glob("*manylinux*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "--quiet", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = elsewhere / "smoke_test.py"
    script.write_text((ROOT / "scripts" / "smoke_test.py").read_text())
    result = run(venv / "bin" / "python", script, cwd=elsewhere)
    assert "smoke test passed" in result.stdout
    assert str(venv) in result.stdout  # the installed copy ran, not the source tree
