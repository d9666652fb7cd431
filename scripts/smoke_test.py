"""Smoke test of an installed allcores (run from outside the source tree).

Imports the compiled module, checks each kernel on a small input against its pure
twin, and runs a map on the process backend. Used by cibuildwheel and tests/test_wheel.py.
"""

import numpy as np

import allcores
from allcores import kernels, native, pure


def identity(x):
    return x


def main() -> None:
    assert native.__file__.endswith((".so", ".pyd")), native.__file__
    out_native = np.zeros((6, 9), dtype=np.uint32)
    out_pure = np.zeros((6, 9), dtype=np.uint32)
    native.mandelbrot_rows(out_native, 0, 6, 50, -2.0, 1.0, -1.5, 1.5)
    pure.mandelbrot_rows(out_pure, 0, 6, 50, -2.0, 1.0, -1.5, 1.5)
    assert np.array_equal(out_native, out_pure)
    assert native.count_primes_range(0, 10**4) == pure.count_primes_range(0, 10**4) == 1229
    values = np.array([2, 561, 2**61 - 1, 2**64 - 59, 2**64 - 1], dtype=np.uint64)
    flags = [np.zeros(5, dtype=bool) for _ in range(2)]
    native.is_prime_array(values, flags[0])
    pure.is_prime_array(values, flags[1])
    assert flags[0].tolist() == flags[1].tolist() == [True, False, True, True, False]
    assert native.fannkuch_block(7, 0, 5040) == pure.fannkuch_block(7, 0, 5040) == (228, 16)
    assert native.monte_carlo_hits(1, 0, 1000) == pure.monte_carlo_hits(1, 0, 1000)
    assert kernels.fannkuch(7) == (228, 16)
    with allcores.Pool(2, backend="process") as pool:
        assert pool.map(identity, range(100)) == list(range(100))
        assert pool.map(lambda x: x * x, range(10)) == [x * x for x in range(10)]
    print(f"allcores {allcores.__version__} from {allcores.__file__}: smoke test passed")


if __name__ == "__main__":
    main()
