"""Functions of the caller's script travel to spawn and forkserver workers by reference
when the workers find them there (as ``multiprocessing`` assumes of every function),
by value (cloudpickle) otherwise.

By reference, the worker runs the script's own function, with the script's own globals
and classes: an ``isinstance`` against a class of the script holds for the objects the
worker received, and the worker needs no cloudpickle. A function the worker's import of
the script does not define (one under ``if __name__ == "__main__":``) or defines
differently (rebound there) still travels by value: the caller's version runs.

Each case runs a script in a fresh interpreter, under a timeout and faulthandler.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap

import pytest

START_METHODS = [m for m in ("spawn", "forkserver")
                 if m in multiprocessing.get_all_start_methods()]

SCRIPT = textwrap.dedent('''
    import faulthandler, sys
    import allcores

    class Box:
        def __init__(self, value):
            self.value = value

    def unbox(x):
        return (isinstance(x, Box), "cloudpickle" in sys.modules)

    def replaced(x):
        return "the script's first version"

    if __name__ == "__main__":
        faulthandler.dump_traceback_later(60, exit=True)

        def under_the_guard(x):
            return "defined under the guard"

        def replaced(x):  # noqa: F811
            return "the caller's version"

        with allcores.Pool(2, start_method=sys.argv[1]) as pool:
            print(pool.map(unbox, [Box(1)]))
            print(pool.map(under_the_guard, [0]))
            print(pool.map(replaced, [0]))
''')


@pytest.mark.parametrize("start_method", START_METHODS)
def test_script_functions_travel_by_reference_where_the_worker_finds_them(tmp_path,
                                                                          start_method):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), start_method], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[(True, False)]",  # the script's own Box; no cloudpickle needed in the worker
        "['defined under the guard']",
        "[\"the caller's version\"]",
    ]
