"""Plain-C reference implementations of the five kernels, for the benchmark.

``build()`` compiles ``c/reference.c`` (next to this file) with the system C compiler and
the library's own flags, loads it with ctypes and returns a :class:`CReference` whose
methods have the same signatures and results as ``allcores.native``'s chunk functions.
The benchmark then shows how close the compiled kernels come to hand-written C.

Importable as ``c_reference`` from the benchmark scripts' directory, or by path; it needs
numpy only, not allcores. Arguments are checked minimally (this is a benchmark tool),
but enough that no bad pointer or out-of-range value ever reaches C.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import operator
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).resolve().parent / "c" / "reference.c"
# The library's flags (setup.py, GCC_LIKE_FLAGS) without -march=native, plus what a
# shared library needs.
FLAGS = ("-O3", "-ffp-contract=off", "-fPIC", "-shared")
COMPILER_CANDIDATES = ("cc", "gcc", "clang")
MAX_FANNKUCH_N = 12
FACTORIALS = tuple(math.factorial(k) for k in range(MAX_FANNKUCH_N + 1))
UINT64_LIMIT = 2**64
MAX_SAMPLE_INDEX = 2**63
MAX_IMAGE_SIDE = 2**53

_last_error: str | None = None
# A fresh file name per build: reloading a path that is already loaded would give back
# the old library, and overwriting a loaded library in place can crash the process.
_build_counter = itertools.count()


def build_error() -> str | None:
    """Why the last :func:`build` returned None (None if it succeeded or never ran)."""
    return _last_error


def find_compiler() -> list[str] | None:
    """The compiler command: ``$CC`` (may hold arguments, e.g. ``ccache gcc``) if it is
    found, else the first of cc, gcc, clang on PATH; None if there is none."""
    candidates = []
    env_cc = os.environ.get("CC", "").strip()
    if env_cc:
        candidates.append(shlex.split(env_cc))
    candidates += [[name] for name in COMPILER_CANDIDATES]
    for command in candidates:
        path = shutil.which(command[0])
        if path:
            return [path, *command[1:]]
    return None


def compiler_version(command: list[str]) -> str:
    """The first line of ``<compiler> --version`` ('' if it says nothing)."""
    try:
        result = subprocess.run([*command, "--version"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def _int(name: str, value: object, low: int, high: int) -> int:
    result = operator.index(value)
    if not low <= result <= high:
        raise ValueError(f"{name}: expected {low} <= {name} <= {high}, got: {result}")
    return result


def _array(name: str, value: object, dtypes: tuple, ndim: int, writeable: bool) -> np.ndarray:
    if not (isinstance(value, np.ndarray) and value.dtype in [np.dtype(d) for d in dtypes]
            and value.ndim == ndim and value.flags.c_contiguous
            and (value.flags.writeable or not writeable)):
        raise ValueError(f"{name}: expected a {'writeable ' if writeable else ''}"
                         f"C-contiguous {ndim}-D array of {dtypes}")
    return value


class CReference:
    """The loaded reference library; methods mirror ``allcores.native``."""

    def __init__(self, lib: ctypes.CDLL, library_path: Path, compiler: list[str],
                 version: str, workdir: tempfile.TemporaryDirectory | None) -> None:
        self._lib = lib
        self._workdir = workdir  # kept alive as long as the library is loaded
        self.library_path = library_path
        self.compiler = os.path.basename(compiler[0])  # the name, e.g. 'cc'
        self.compiler_command = list(compiler)
        self.compiler_version = version  # first line of `cc --version`
        self.flags = list(FLAGS)
        self.command = [*compiler, *FLAGS, "-o", str(library_path), str(SOURCE)]

        i64, u64, u32, dbl = ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_double
        vp = ctypes.c_void_p
        lib.ref_mandelbrot_rows.argtypes = [vp, i64, i64, i64, i64, u32, dbl, dbl, dbl, dbl]
        lib.ref_mandelbrot_rows.restype = None
        lib.ref_count_primes_range.argtypes = [u64, u64]
        lib.ref_count_primes_range.restype = i64
        lib.ref_is_prime_array.argtypes = [vp, vp, i64]
        lib.ref_is_prime_array.restype = None
        lib.ref_fannkuch_block.argtypes = [ctypes.c_int, i64, i64, ctypes.POINTER(i64),
                                           ctypes.POINTER(ctypes.c_int)]
        lib.ref_fannkuch_block.restype = None
        lib.ref_monte_carlo_hits.argtypes = [u64, u64, u64]
        lib.ref_monte_carlo_hits.restype = u64

    def describe(self) -> str:
        """One line for the benchmark's machine facts."""
        return f"{self.compiler_version or self.compiler} {' '.join(self.flags)}"

    def mandelbrot_rows(self, out, first_row, height, max_iter, xmin, xmax, ymin, ymax):
        out = _array("out", out, (np.uint32,), 2, writeable=True)
        rows, width = out.shape
        height = _int("height", height, 0, MAX_IMAGE_SIDE)
        first_row = _int("first_row", first_row, 0, height - rows)
        max_iter = _int("max_iter", max_iter, 0, 2**32 - 1)
        xmin, xmax, ymin, ymax = (float(v) for v in (xmin, xmax, ymin, ymax))
        if rows and width:
            self._lib.ref_mandelbrot_rows(out.ctypes.data, rows, width, first_row, height,
                                          max_iter, xmin, xmax, ymin, ymax)

    def count_primes_range(self, lo, hi):
        """Primes p with ``lo <= p < hi`` (``0 <= lo <= hi <= 2**64``)."""
        hi = _int("hi", hi, 0, UINT64_LIMIT)
        lo = _int("lo", lo, 0, hi)
        if lo == hi:
            return 0
        count = self._lib.ref_count_primes_range(lo, hi - 1)  # the closed [lo, hi - 1]
        if count < 0:
            raise MemoryError("count_primes_range: could not allocate the sieve")
        return count

    def is_prime_array(self, values, out):
        values = _array("values", values, (np.uint64,), 1, writeable=False)
        out = _array("out", out, (np.bool_, np.uint8), 1, writeable=True)
        if len(values) != len(out):
            raise ValueError("values and out: expected the same length")
        if len(values):
            self._lib.ref_is_prime_array(values.ctypes.data, out.ctypes.data, len(values))

    def fannkuch_block(self, n, start, stop):
        """``(checksum, max_flips)`` over permutation indices ``start .. stop - 1``."""
        n = _int("n", n, 1, MAX_FANNKUCH_N)
        stop = _int("stop", stop, 0, FACTORIALS[n])
        start = _int("start", start, 0, stop)
        checksum = ctypes.c_int64(0)
        max_flips = ctypes.c_int(0)
        self._lib.ref_fannkuch_block(n, start, stop, ctypes.byref(checksum),
                                     ctypes.byref(max_flips))
        return checksum.value, max_flips.value

    def monte_carlo_hits(self, seed, start, stop):
        seed = _int("seed", seed, 0, UINT64_LIMIT - 1)
        stop = _int("stop", stop, 0, MAX_SAMPLE_INDEX)
        start = _int("start", start, 0, stop)
        return self._lib.ref_monte_carlo_hits(seed, start, stop)


def build(out_dir: str | os.PathLike | None = None,
          compiler: str | list[str] | None = None) -> CReference | None:
    """Compile and load the reference library; None (see :func:`build_error`) when there
    is no C compiler or the compile fails. ``out_dir``: where the shared library goes (a
    temporary directory, removed with the returned object, by default). ``compiler``: a
    command (string or argument list) instead of ``$CC``/cc/gcc/clang."""
    global _last_error
    _last_error = None
    if compiler is None:
        command = find_compiler()
    else:
        command = shlex.split(compiler) if isinstance(compiler, str) else list(compiler)
        found = shutil.which(command[0]) if command else None
        command = [found, *command[1:]] if found else None
    if command is None:
        _last_error = "no C compiler found ($CC, cc, gcc, clang)"
        return None
    if not SOURCE.is_file():
        _last_error = f"source not found: {SOURCE}"
        return None
    workdir = None
    if out_dir is None:
        workdir = tempfile.TemporaryDirectory(prefix="allcores-cref-",
                                              ignore_cleanup_errors=True)
        directory = Path(workdir.name)
    else:
        directory = Path(out_dir)
        directory.mkdir(parents=True, exist_ok=True)
    suffix = ".dll" if sys.platform == "win32" else ".so"
    name = f"allcores_c_reference-{os.getpid()}-{next(_build_counter)}{suffix}"
    library_path = directory / name
    try:
        result = subprocess.run([*command, *FLAGS, "-o", str(library_path), str(SOURCE)],
                                capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        _last_error = f"compiler failed to run: {exc}"
        return None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        _last_error = (f"compile failed (exit {result.returncode}): "
                       + " | ".join(detail[:5]))
        return None
    try:
        lib = ctypes.CDLL(str(library_path))
    except OSError as exc:
        _last_error = f"could not load {library_path}: {exc}"
        return None
    return CReference(lib, library_path, command, compiler_version(command), workdir)


if __name__ == "__main__":
    ref = build()
    if ref is None:
        print(f"no C reference: {build_error()}")
    else:
        print(ref.describe())
        print("primes below 1e6:", ref.count_primes_range(0, 10**6))
        print("fannkuch(7):", ref.fannkuch_block(7, 0, FACTORIALS[7]))
