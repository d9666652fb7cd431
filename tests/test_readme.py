"""Every ```python block of README.md runs, as a reader who copies it would run it.

Each block is saved as a script (``block.py``, so an ``if __name__ == "__main__":`` guard
works as it does for the reader) in a fresh temporary directory and run by this
interpreter in a process of its own, with a time limit. A block written as an interactive
session (``>>>`` prompts) is typed into ``python -`` instead, prompts removed; its printed
output is not compared (it shows measured figures).

Names a block uses without defining (``simulate``, ``items``, a module of the reader's
own) are placeholders: their stand-ins are in ``PLACEHOLDERS`` and ``PLACEHOLDER_MODULES``
below, keyed by the name, and go in front of exactly the blocks that use that name.
A block that cannot run here is marked in the README by a comment on the line before it,
``<!-- not-run: the reason -->``; such blocks are counted (``NOT_RUN_EXPECTED``) and
reported as skipped with their reason.
"""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK_TIMEOUT_S = 100  # the slowest block (a local Dask cluster) takes ~20 s; watchdog: 120 s
NOT_RUN_EXPECTED = 1   # the blocks marked <!-- not-run: ... --> in README.md

# Stand-ins for the names the README's examples assume: cheap, and just what each name is
# used as there (a function of one item, an iterable of items, an initializer, ...).
PLACEHOLDERS = {
    "simulate": "def simulate(seed):\n    return seed * 2\n",
    "seeds": "seeds = range(200)\n",
    "f": "def f(x):\n    return x + 1\n",
    "g": "def g(x, y):\n    return x * y\n",
    "items": "items = list(range(100))\n",
    "x": "x = 7\n",
    "xs": "xs = range(10)\n",
    "ys": "ys = range(10, 20)\n",
    "setup": "def setup(config):\n    assert config['level'] == 1\n",
    "config": "config = {'level': 1}\n",
    "store": "def store(result):\n    pass\n",
    "log": "def log(error):\n    raise AssertionError(f'unexpected error: {error!r}')\n",
    "main": "def main():\n    pass\n",
    "digest": ("def digest(blob):\n    import hashlib\n"
               "    return hashlib.sha256(blob).hexdigest()\n"),
    "blobs": "blobs = [bytes([i]) * 100_000 for i in range(20)]\n",
}

# Modules a block imports that are the reader's own: written next to the block's script.
PLACEHOLDER_MODULES = {
    "my_kernels": '''\
"""A stand-in for the README's compiled my_kernels: the same signatures, in Python."""


def render_rows(a, b, rows, zoom):
    for i in range(b - a):
        rows[i] = int((a + i) * zoom)


def count_hits(a, b, seed):
    return (b - a) // 2


def test_rows(a, b, rows, values):
    rows[:] = values % 2 == 0
''',
}

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\S*)\s*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
QUICKSTART_MARK = "# quickstart:test"


@dataclass(frozen=True)
class Block:
    line: int          # of the opening fence, 1-based
    lang: str
    code: str          # dedented to the fence's indentation
    not_run: str | None  # the marker's reason, None when the block runs

    @property
    def interactive(self) -> bool:
        return self.code.lstrip().startswith(">>>")

    @property
    def source(self) -> str:
        """The Python the block runs: an interactive session without prompts or output."""
        if not self.interactive:
            return self.code
        lines = [line[4:] for line in self.code.splitlines()
                 if line.startswith((">>> ", "... ")) or line in (">>>", "...")]
        return "\n".join(lines) + "\n"


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening or not opening["lang"]:
            i += 1
            continue
        indent, start = opening["indent"], i
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line
                         for line in lines[start + 1:i])
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(previous)
        blocks.append(Block(start + 1, opening["lang"], textwrap.dedent(body) + "\n",
                            marker["reason"].strip() if marker else None))
        i += 1
    return blocks


def free_names(source: str) -> set[str]:
    """Names the code reads but never binds (imports, assignments, defs, arguments)."""
    tree = ast.parse(source)
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound - set(dir(builtins)) - {"__name__", "__file__"}


def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


README_TEXT = README.read_text(encoding="utf-8")
BLOCKS = readme_blocks(README_TEXT)
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]


def block_id(block: Block) -> str:
    first = next(line for line in block.source.splitlines() if line.strip())
    return f"line{block.line}-" + re.sub(r"\W+", "-", first).strip("-")[:40]


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=block_id)
def test_the_readme_python_block_runs(block: Block, tmp_path):
    if block.not_run is not None:
        pytest.skip(f"README.md line {block.line} is marked not-run: {block.not_run}")
    source = block.source
    missing = sorted(free_names(source) - set(PLACEHOLDERS))
    assert not missing, (
        f"README.md line {block.line}: the block uses {', '.join(missing)} without defining "
        "them; define them in the block, or add stand-ins to PLACEHOLDERS in this test")
    prelude = "".join(PLACEHOLDERS[name] for name in sorted(free_names(source)))
    for module in imported_modules(source) & set(PLACEHOLDER_MODULES):
        (tmp_path / f"{module}.py").write_text(PLACEHOLDER_MODULES[module], encoding="utf-8")
    program = f"# README.md line {block.line}: stand-ins first\n{prelude}\n{source}"
    if block.interactive:
        command, stdin = [sys.executable, "-"], program
    else:
        (tmp_path / "block.py").write_text(program, encoding="utf-8")
        command, stdin = [sys.executable, "block.py"], None
    try:
        result = subprocess.run(command, input=stdin, cwd=tmp_path, capture_output=True,
                                text=True, timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired as late:
        pytest.fail(f"README.md line {block.line}: the block ran past {BLOCK_TIMEOUT_S} s\n"
                    f"{late.stdout or ''}{late.stderr or ''}")
    assert result.returncode == 0, (
        f"README.md line {block.line}: the block failed (status {result.returncode})\n"
        f"--- program ---\n{program}\n--- stdout ---\n{result.stdout[-3000:]}\n"
        f"--- stderr ---\n{result.stderr[-5000:]}")


def test_the_not_run_blocks_are_counted_and_say_why():
    not_run = [b for b in BLOCKS if b.not_run is not None]
    for block in not_run:
        assert block.lang == "python", (
            f"README.md line {block.line}: a not-run marker before a {block.lang!r} block")
        assert block.not_run, f"README.md line {block.line}: a not-run marker with no reason"
    markers = [line for line in README_TEXT.splitlines() if NOT_RUN.match(line)]
    assert len(markers) == len(not_run), "a not-run marker that is not just before a code block"
    assert len(not_run) == NOT_RUN_EXPECTED, (
        f"README.md has {len(not_run)} python blocks marked not-run "
        f"(lines {[b.line for b in not_run]}), this test expects {NOT_RUN_EXPECTED}: make the "
        "new one runnable (stand-ins go in PLACEHOLDERS), or raise NOT_RUN_EXPECTED")


def test_every_placeholder_is_used_by_a_block():
    used = set().union(*(free_names(b.source) for b in PYTHON_BLOCKS if b.not_run is None))
    modules = set().union(*(imported_modules(b.source) for b in PYTHON_BLOCKS))
    assert not set(PLACEHOLDERS) - used, f"unused stand-ins: {set(PLACEHOLDERS) - used}"
    assert not set(PLACEHOLDER_MODULES) - modules, "a stand-in module no block imports"


def test_the_quickstart_lines_are_marked_for_ci():
    """.ci/run runs the first line marked '# quickstart:test': one, in a sh block."""
    marked = [line for line in README_TEXT.splitlines() if QUICKSTART_MARK in line]
    assert len(marked) == 1, f"README.md has {len(marked)} lines marked {QUICKSTART_MARK!r}"
    in_sh = [b for b in BLOCKS if b.lang == "sh" and QUICKSTART_MARK in b.code]
    assert len(in_sh) == 1, f"the line marked {QUICKSTART_MARK!r} is not in a ```sh block"
    command = marked[0].split(QUICKSTART_MARK)[0]
    assert 'pip install ".[test]"' in command and "-m pytest" in command, command
    quickstart = README_TEXT.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert 'pip install ".[bench]"' in quickstart and "benchmarks/run.py --quick" in quickstart


def test_the_readme_installs_from_the_checkout():
    """allcores is not on a package index: extras install as ".[dask]", not allcores[dask]."""
    from_index = re.findall(r"pip install ['\"]?allcores\b[^`\n]*", README_TEXT)
    assert not from_index, f"README.md installs from a package index: {from_index}"
