"""The mandelbrot kernel's instruction-set variants: each gives exactly the scalar loop's
(and the pure twin's) counts, whichever the CPU dispatch would pick."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import running_with

from allcores import native, pure

ISAS = native.available_isas()


def counts(module, rows, width, first_row, height, max_iter, bounds):
    out = np.zeros((rows, width), dtype=np.uint32)
    module.mandelbrot_rows(out, first_row, height, max_iter, *bounds)
    return out


def test_scalar_and_baseline_exist_everywhere():
    assert ISAS[:2] == ["scalar", "baseline"]
    assert native.mandelbrot_isa() in ISAS
    assert native.mandelbrot_isa() == ISAS[-1]  # the fastest available is the default


@settings(max_examples=40)
@given(
    width=st.integers(1, 37),  # widths that are not multiples of the lane count too
    rows=st.integers(1, 5),
    extra_rows=st.integers(0, 5),
    max_iter=st.integers(1, 300),
    x=st.floats(-2.5, 1.0),
    y=st.floats(-1.5, 1.0),
    span=st.floats(1e-6, 3.0),
)
def test_every_isa_matches_the_pure_twin(width, rows, extra_rows, max_iter, x, y, span):
    height = rows + extra_rows
    bounds = (x, x + span, y, y + span)
    expected = counts(pure, rows, width, extra_rows, height, max_iter, bounds)
    for isa in ISAS:
        with running_with(isa):
            got = counts(native, rows, width, extra_rows, height, max_iter, bounds)
        assert np.array_equal(got, expected), isa


@pytest.mark.parametrize("isa", ISAS)
def test_every_isa_gives_the_same_big_image(isa):
    with running_with("scalar"):
        expected = counts(native, 120, 333, 0, 120, 500, (-2.0, 1.0, -1.5, 1.5))
    with running_with(isa):
        assert np.array_equal(counts(native, 120, 333, 0, 120, 500, (-2.0, 1.0, -1.5, 1.5)),
                              expected)


def test_unknown_or_unavailable_isas_are_refused():
    with pytest.raises(ValueError, match="isa"):
        native.set_mandelbrot_isa("neon")
    for name in {"avx2", "avx512"} - set(ISAS):
        with pytest.raises(ValueError, match="not available"):
            native.set_mandelbrot_isa(name)


@pytest.mark.parametrize("name", ISAS)
def test_the_environment_variable_forces_an_isa(name):
    code = "from allcores import native; print(native.mandelbrot_isa())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "ALLCORES_ISA": name}, timeout=60, check=True)
    assert result.stdout.strip() == name


def test_a_bad_environment_variable_fails_loudly():
    result = subprocess.run([sys.executable, "-c", "import allcores.native"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ALLCORES_ISA": "neon"})
    assert result.returncode != 0 and "isa" in result.stderr
