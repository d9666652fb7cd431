"""The allcores benchmark, from a source checkout: ``python benchmarks/run.py [options]``.

The implementation is the ``allcores.bench`` package, so that an installed allcores runs
the same benchmark as ``allcores bench``; see its docstring for the question each
section asks, or ``python benchmarks/run.py --help``. From a checkout the kernels
section also times the plain-C reference kernels (``c_reference.py`` next to this file),
where a C compiler is found. Install first (``pip install ".[bench]"``): the native
kernels are compiled at install time.
"""

from __future__ import annotations

import os
import sys

try:
    from allcores.bench import main
except ImportError as error:  # pragma: no cover - a checkout without an install
    sys.exit(f"benchmarks/run.py: {error}; install allcores first: pip install \".[bench]\"")

C_REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_reference.py")

if __name__ == "__main__":
    sys.exit(main(prog=f"python {sys.argv[0]}", c_reference=C_REFERENCE))
