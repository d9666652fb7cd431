"""The public API's type annotations, as a user's type checker sees them.

``mypy --strict`` must accept ``tests/typing/user_code.py``, a user's script that calls
every public function and method and pins the inferred types with ``assert_type`` (a
signature degrading to ``Any`` fails it), and must reject a script of typical mistakes
(a misspelt backend, an item type the function cannot take, ...), each on the line that
makes it: annotations precise enough to catch them are the point.

mypy runs in a subprocess, from an empty directory (no project configuration applies)
with a fresh cache there, on the installed ``allcores`` (``py.typed``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

pytestmark = pytest.mark.slow  # a cold mypy run over numpy's stubs takes seconds

USER_CODE = Path(__file__).parent / "typing" / "user_code.py"
MYPY_TIMEOUT_S = 300

# Each line marked "# error" must get an error from mypy, and no other line may.
MISTAKES = '''\
from typing import assert_type

import allcores
from allcores import Executor, Pool, kernels


def square(x: int) -> int:
    return x * x


def takes_strs(values: list[str]) -> None:
    print(values)


def mistakes(pool: Pool, executor: Executor) -> None:
    allcores.map(square, [1], backend="proces")  # error: not a backend
    allcores.imap(square, ["a"])  # error: items square cannot take
    assert_type(allcores.map(square, [1]), list[str])  # error: it is list[int]
    assert_type(allcores.plan(square, [1]).map(), list[str])  # error: it is list[int]
    Pool(backend="auto")  # error: "auto" is for module-level calls only
    Pool(start_method="fork-server")  # error: not a start method
    Executor(backend="threads")  # error: not a backend
    pool.submit(square, "a")  # error: square takes an int
    executor.submit(square, 1, 2)  # error: square takes one argument
    assert_type(pool.apply_async(square, (1,)).get(), str)  # error: it is int
    pool.map_async(square, [1], callback=takes_strs)  # error: the results are ints
    assert_type(pool.imap_unordered(square, [1]), list[int])  # error: an iterator
    kernels.mandelbrot(8, 8, backend="threads")  # error: not a backend
    allcores.mapp(square, [1])  # error: no such name
    assert_type(allcores.map(square, [1]), list[int])  # the one correct line
'''


def run_mypy(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cwd / ".mypy_cache"),
         "--no-color-output", str(path)],
        cwd=cwd, capture_output=True, text=True, timeout=MYPY_TIMEOUT_S,
    )


def test_strict_mypy_accepts_a_user_file_using_the_whole_api(tmp_path):
    result = run_mypy(USER_CODE, tmp_path)
    assert result.returncode == 0, f"mypy --strict {USER_CODE}:\n{result.stdout}{result.stderr}"


def test_strict_mypy_rejects_each_typical_mistake(tmp_path):
    source = tmp_path / "mistakes.py"
    source.write_text(MISTAKES)
    result = run_mypy(source, tmp_path)
    output = result.stdout + result.stderr
    expected = {number for number, line in enumerate(MISTAKES.splitlines(), 1)
                if "# error" in line}
    reported = {int(number) for number in re.findall(r"^[^\n]*mistakes\.py:(\d+): error:",
                                                     result.stdout, re.MULTILINE)}
    assert result.returncode == 1, output
    assert reported == expected, (
        f"lines with an error expected but none reported: {sorted(expected - reported)}; "
        f"errors on lines expected to pass: {sorted(reported - expected)}\n"
        + textwrap.indent(output, "    "))


def test_the_native_stub_matches_the_compiled_module(tmp_path):
    # native.pyi is written by hand: stubtest compares it with what the extension really
    # exports (names, parameters, kinds), so a function added to ext/native.pyx without
    # its stub, or a renamed parameter, fails here rather than in a user's type checker.
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "allcores.native"],
        cwd=tmp_path, capture_output=True, text=True, timeout=MYPY_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
