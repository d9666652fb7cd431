"""``allcores info``: the facts it reports are the library's own."""

from __future__ import annotations

import json
import subprocess
import sys

import allcores
from allcores import info, native


def test_facts_are_the_library_s_own():
    found = info.facts()
    assert found["allcores"] == allcores.__version__
    assert found["cpus_usable"] == allcores.cpu_count()
    assert "limited by" in found["cpus_explained"]
    assert found["build"] == native.build_info()
    assert "-ffp-contract=off" in found["build"]["flags"]
    assert "-march=native" not in found["build"]["flags"]  # a default build stays portable
    assert found["isa"]["mandelbrot"] == native.mandelbrot_isa()
    assert found["isa"]["mandelbrot"] in found["isa_available"]
    assert found["isa"]["monte_carlo"] == native.monte_carlo_isa()
    assert found["isa"]["fannkuch"] == native.fannkuch_isa()


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
