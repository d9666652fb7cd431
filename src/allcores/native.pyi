"""Type stubs for the compiled kernels (ext/native.pyx); allcores.pure has the same API."""

import numpy as np
import numpy.typing as npt

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

# Instruction sets of mandelbrot_rows (results never depend on them).
ISA_ENV: str
def available_isas() -> list[str]: ...
def mandelbrot_isa() -> str: ...
def set_mandelbrot_isa(name: str) -> None: ...
