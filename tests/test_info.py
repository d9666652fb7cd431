"""``allcores info``: the facts it reports are the library's own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import allcores
from allcores import info, kernels, native
from allcores.cpu import cpu_budget


def test_facts_are_the_library_s_own():
    found = info.facts()
    assert found["allcores"] == allcores.__version__
    assert found["cpus_usable"] == allcores.cpu_count()
    assert found["cpus_explained"] == cpu_budget().explain()
    assert found["build"] == native.build_info()
    assert "-ffp-contract=off" in found["build"]["flags"]
    assert "-march=native" not in found["build"]["flags"]  # a default build stays portable
    assert found["isa"]["mandelbrot"] == native.mandelbrot_isa()
    assert found["isa"]["mandelbrot"] in found["isa_available"]
    assert found["isa"]["monte_carlo_pi"] == native.monte_carlo_isa()
    assert found["isa"]["fannkuch"] == native.fannkuch_isa()


def test_kernels_are_named_as_the_public_api_names_them():
    assert set(info.facts()["isa"]) == set(kernels.__all__)   # monte_carlo_pi, not monte_carlo


def test_instruction_sets_are_named_as_native_names_them():
    """Every name shown beside a kernel is one of native.available_isas() (which info
    prints too), or None for a kernel that has no variants: no other word."""
    found = info.facts()
    assert found["isa_available"] == native.available_isas()
    assert set(native.available_isas()) <= set(native.ISA_NAMES)
    for kernel, isa in found["isa"].items():
        assert isa is None or isa in found["isa_available"], (kernel, isa)
    assert found["isa"]["count_primes"] is None and found["isa"]["is_prime"] is None
    text = info.render(found)
    assert "portable" not in text
    assert text.count(info.NO_VARIANTS) == 2


def test_a_bad_workers_variable_is_reported_not_raised(monkeypatch):
    monkeypatch.setenv("ALLCORES_WORKERS", "0")
    found = info.facts()
    assert found["cpus_usable"] is None
    assert found["cpus_explained"] == "ALLCORES_WORKERS: expected a positive integer, got: '0'"
    assert found["environment"]["ALLCORES_WORKERS"]["problem"] == found["cpus_explained"]
    text = info.render(found)
    assert "usable CPUs: unknown" in text
    assert "ALLCORES_WORKERS=0  BAD: ALLCORES_WORKERS: expected" in text


def test_good_variables_are_shown_as_ok(monkeypatch):
    monkeypatch.setenv("ALLCORES_WORKERS", "1")
    monkeypatch.setenv("ALLCORES_BACKEND", "thread")
    monkeypatch.delenv("ALLCORES_ISA", raising=False)
    found = info.facts()
    assert found["environment"] == {
        "ALLCORES_WORKERS": {"value": "1", "problem": None},
        "ALLCORES_BACKEND": {"value": "thread", "problem": None}}
    assert "ALLCORES_WORKERS=1  ok" in info.render(found)


@pytest.mark.parametrize("value, problem", [
    ("auto", None),
    ("scalar", None),
    ("neon", "ALLCORES_ISA: expected one of scalar, baseline, avx2, avx512 or auto, "
             "got: 'neon'"),
])
def test_the_isa_variable_is_checked_as_native_checks_it(monkeypatch, value, problem):
    monkeypatch.setenv("ALLCORES_ISA", value)
    assert info.facts()["environment"]["ALLCORES_ISA"]["problem"] == problem


def test_render_names_every_fact():
    text = info.render(info.facts())
    for needle in ("usable CPUs", "start method", "extension built by", "mandelbrot",
                   "fannkuch"):
        assert needle in text


def test_the_command_prints_text_and_json():
    text = subprocess.run([sys.executable, "-m", "allcores", "info"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert "usable CPUs" in text
    data = json.loads(subprocess.run([sys.executable, "-m", "allcores", "info", "--json"],
                                     capture_output=True, text=True, timeout=60,
                                     check=True).stdout)
    assert data["cpus_usable"] == allcores.cpu_count()
