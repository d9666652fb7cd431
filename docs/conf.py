"""Sphinx configuration: the API reference from the docstrings, and the README's guides.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` after
``pip install ".[docs]"``. The package is imported as installed (an editable or a
regular install): nothing here puts ``src/`` on ``sys.path``, since ``allcores.native``
and ``allcores._calls`` are compiled extensions that exist only in an installed copy.
"""

from __future__ import annotations

import re

import allcores

project = "allcores"
author = "The allcores developers"
copyright = "the allcores developers"  # Sphinx's name for it
release = allcores.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# The README's links to its own sections ("#the-pool") become anchors of the headings.
myst_heading_anchors = 3

# Signatures show the types once, in the signature; the docstrings' Parameters sections
# carry the prose. Members in the order the source defines them, as the reader meets them.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Every public member is listed, a docstring or not; base classes only where they say
# something (the errors, Executor: ":show-inheritance:" on their pages).
autodoc_default_options = {"undoc-members": True}

# numpydoc: no autosummary table of class members (autodoc lists them with :members:),
# and no cross-reference guessing for parameter types (prose like "int or None").
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "furo"
html_title = f"allcores {release}"


# The README links to files of the repository outside docs/ (examples/own-kernel/, say):
# in the built pages those links point into the repository instead.
REPOSITORY_FILES = "https://github.com/allcores/allcores/blob/main/"
_REPOSITORY_LINK = re.compile(r"\]\((?!https?:|mailto:|#|docs/)([^)\s]+)\)")


def _link_repository_files(app, relative_path, parent_docname, content):
    if relative_path.name == "README.md":
        content[0] = _REPOSITORY_LINK.sub(rf"]({REPOSITORY_FILES}\1)", content[0])


# numpydoc turns a function's or class's "Examples" section into a rubric but leaves a
# module's docstring alone, where the same underlined title would become a section of the
# page, and the module's members would then sit under its "Examples" heading.
_UNDERLINE = re.compile(r"^\s*(-{3,}|={3,}|~{3,})\s*$")


def _module_sections_as_rubrics(app, what, name, obj, options, lines):
    if what != "module":
        return
    for i in range(len(lines) - 1):
        title, underline = lines[i].strip(), lines[i + 1]
        if (title and _UNDERLINE.match(underline) and len(underline.strip()) >= len(title)
                and (i == 0 or not lines[i - 1].strip())):
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i], lines[i + 1] = f"{indent}.. rubric:: {title}", ""


def setup(app):
    app.connect("include-read", _link_repository_files)
    app.connect("autodoc-process-docstring", _module_sections_as_rubrics)
