"""Type stubs for the compiled kernels (ext/native.pyx); allcores.pure has the same kernels.

Every public name of ``allcores.native`` is here; ``mypy.stubtest allcores.native``
checks that against the built module.
"""

import numpy as np
import numpy.typing as npt

from allcores import _validate as check  # noqa: F401  (the shared argument checks; not API)

# --- the per-block kernels -------------------------------------------------------------

def mandelbrot_rows(
    out: npt.NDArray[np.uint32],
    first_row: int,
    height: int,
    max_iter: int,
    xmin: float,
    xmax: float,
    ymin: float,
    ymax: float,
) -> None: ...
def count_primes_range(lo: int, hi: int) -> int: ...
def is_prime_array(
    values: npt.NDArray[np.uint64], out: npt.NDArray[np.bool_] | npt.NDArray[np.uint8]
) -> None: ...
def fannkuch_block(n: int, start: int, stop: int) -> tuple[int, int]: ...
def monte_carlo_hits(seed: int, start: int, stop: int) -> int: ...

# --- instruction sets of mandelbrot_rows, monte_carlo_hits and fannkuch_block -----------
# (results never depend on them)

# name -> the number the C code knows it by, slowest first
ISA_NAMES: dict[str, int]
# "ALLCORES_ISA": the environment variable that chooses one for all kernels at import
ISA_ENV: str

def available_isas() -> list[str]: ...
def mandelbrot_isa() -> str: ...
def set_mandelbrot_isa(name: str) -> None: ...
def monte_carlo_isa() -> str: ...
def set_monte_carlo_isa(name: str) -> None: ...
def fannkuch_isa() -> str: ...
def set_fannkuch_isa(name: str) -> None: ...

# --- how the module was built ----------------------------------------------------------

def build_info() -> dict[str, str]: ...
