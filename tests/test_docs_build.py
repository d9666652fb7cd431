"""The docs (docs/: the API reference and the README's guides) build with Sphinx, warnings
as errors, from the installed package, and hold every public name with its docstring.

The build imports allcores as installed (``pip install ".[test]"`` or an editable
install): ``docs/conf.py`` puts nothing on ``sys.path``, since the compiled extensions
exist only in an installed copy.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

import allcores

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD_TIMEOUT_S = 100  # about 10 s here; the conftest watchdog fires at 120 s

# Each public class, and the methods and properties a user calls on it (its other public
# attributes are checked too).
PUBLIC_MEMBERS = {
    "Pool": ["map", "imap", "imap_unordered", "starmap", "submit", "apply", "apply_async",
             "map_async", "starmap_async", "close", "terminate", "join", "insights",
             "workers", "backend", "closed"],
    "Executor": ["submit", "map", "shutdown", "workers", "backend"],
    "AsyncResult": ["get", "wait", "ready", "successful"],
    "Plan": ["map", "imap", "reason", "backend", "workers", "chunksize", "predicted_speedup"],
    "Insights": ["plot"],
}
TWINS = ["mandelbrot_rows", "count_primes_range", "is_prime_array", "fannkuch_block",
         "monte_carlo_hits"]
MODULES = ["allcores", "allcores.kernels", "allcores.native", "allcores.pure",
           "allcores.blocks", "allcores.errors"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    # From a temporary directory: nothing of the checkout but docs/ itself is importable.
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(out)],
        cwd=out, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"sphinx-build failed (status {result.returncode}):\n{result.stderr}{result.stdout}")
    return out


def anchors(built: Path) -> set[str]:
    ids: set[str] = set()
    for page in built.rglob("*.html"):
        ids.update(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
    return ids


def entry_text(page: Path, anchor: str) -> str:
    """The text of one documented object on `page`: from its anchor to the next object."""
    source = page.read_text(encoding="utf-8")
    start = source.index(f'id="{anchor}"')
    next_object = source.find('<dl class="py', start)
    fragment = source[start:next_object if next_object != -1 else len(source)]
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


@pytest.mark.slow
def test_the_docs_build_without_warnings_and_have_their_pages(built):
    for page in ["index.html", "api/index.html", "api/allcores.html", "api/pool.html",
                 "api/executor.html", "api/plan.html", "api/insights.html",
                 "api/errors.html", "api/kernels.html", "api/blocks.html",
                 "api/native.html", "genindex.html", "py-modindex.html"]:
        assert (built / page).is_file(), f"the docs build made no {page}"
    # The README is the front page: its guides are there, with their pictures.
    front = (built / "index.html").read_text(encoding="utf-8")
    for heading in ["The pool", "Switching from multiprocessing", "The kernels",
                    "Your own kernel"]:
        assert heading in front, f"the front page lacks the README's section {heading!r}"
    assert list((built / "_images").glob("*.png")), "the README's pictures were not copied"


@pytest.mark.slow
def test_every_public_name_is_documented(built):
    ids = anchors(built)
    missing = [f"allcores.{name}" for name in allcores.__all__
               if f"allcores.{name}" not in ids and f"module-allcores.{name}" not in ids]
    for cls, members in PUBLIC_MEMBERS.items():
        members = set(members) | {m for m in vars(getattr(allcores, cls)) if m[0] != "_"}
        missing += sorted(f"allcores.{cls}.{member}" for member in members
                          if f"allcores.{cls}.{member}" not in ids)
    missing += [f"module {module}" for module in MODULES if f"module-{module}" not in ids]
    for module in [allcores.kernels, allcores.blocks]:
        missing += [f"{module.__name__}.{name}" for name in module.__all__
                    if f"{module.__name__}.{name}" not in ids]
    # The compiled module's own functions (not the modules it imports), and its twins.
    native = [name for name, value in vars(allcores.native).items()
              if name[0] != "_" and getattr(value, "__module__", None) == "allcores.native"]
    missing += [f"allcores.native.{name}" for name in native + ["ISA_NAMES"]
                if f"allcores.native.{name}" not in ids]
    missing += [f"allcores.pure.{name}" for name in TWINS if f"allcores.pure.{name}" not in ids]
    assert not missing, f"not in the API reference: {', '.join(missing)}"


@pytest.mark.slow
def test_the_reference_shows_the_docstrings_examples(built):
    text = entry_text(built / "api" / "allcores.html", "allcores.map")
    assert "Examples" in text, f"allcores.map's entry has no Examples section:\n{text}"
    assert ">>> " in text, f"allcores.map's entry shows no example code:\n{text}"
