"""The docstrings' examples run, and every public name has the sections a reader needs.

Two promises of the API reference, kept by tests so that the docs cannot drift from the
code:

- every ``>>>`` example of the public modules runs and prints what it says (one test per
  module; a module in which no example is found fails, so that a finder that misses
  compiled functions cannot pass in silence);
- every public function, method and class (``allcores.__all__``, the methods of its
  classes, ``allcores.kernels``, ``allcores.native``, ``allcores.pure`` and
  ``allcores.blocks``) has a NumPy-style docstring with Parameters (when it takes
  any), Returns or Yields (when it returns something) and Examples.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import faulthandler
import importlib
import inspect
import os
import re
import sys
from pathlib import Path

import pytest

import allcores
from allcores import _default_pools, _memory

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# The modules whose examples run here: the package's own docstring, the engine, and the
# kernels (allcores.native is compiled: its functions are Cython cyfunctions).
MODULES = [
    "allcores", "allcores.shortcuts", "allcores.pool", "allcores.executor",
    "allcores._async", "allcores.planner", "allcores.timeline", "allcores.errors",
    "allcores.cpu", "allcores.kernels", "allcores.blocks", "allcores.pure",
    "allcores.native",
]

# One docstring's examples get this long (a few pools started, a PNG drawn: about a
# second here); the conftest watchdog (120 s) still guards the whole test.
DOCSTRING_TIMEOUT_S = 60
TEST_TIMEOUT_S = float(os.environ.get("ALLCORES_TEST_TIMEOUT", "120"))  # as conftest's

NATIVE_STUB = Path(allcores.__file__).with_name("native.pyi")


# --- the examples -----------------------------------------------------------------------


def doctests_of(module) -> list[doctest.DocTest]:
    """Every docstring with examples in ``module``, each found once."""
    # Names made on first use (errors.WorkerCrashedError, say) exist once touched.
    for name in getattr(module, "__all__", ()):
        getattr(module, name)
    finder = doctest.DocTestFinder()
    tests = finder.find(module, module.__name__)
    # Compiled functions are not always seen as the module's own (inspect.isfunction
    # is False for a Cython cyfunction): look at each public one directly.
    for name, value in vars(module).items():
        if _is_compiled_function(value, module):
            tests += finder.find(value, f"{module.__name__}.{name}", module=module,
                                 globs=vars(module).copy())
    # The same docstring can be found twice: through the function and through the
    # module's __test__ (Cython's autotestdict), or by the loop above.
    unique: dict[str, doctest.DocTest] = {}
    for test in sorted(tests, key=lambda t: ".__test__." in t.name):
        if test.examples:
            unique.setdefault(test.docstring, test)
    return sorted(unique.values(), key=lambda t: t.name)


def _is_compiled_function(value, module) -> bool:
    return (callable(value) and not inspect.isclass(value) and not inspect.ismodule(value)
            and not inspect.isfunction(value)
            and getattr(value, "__module__", None) == module.__name__
            and bool(getattr(value, "__doc__", None)))


@pytest.fixture
def fresh_engine():
    """Each module's examples start from what a new interpreter has (no warm pools,
    nothing remembered by the planner), and leave nothing behind for other tests."""
    _memory.memory.forget()
    _default_pools.terminate_all()
    yield
    _default_pools.terminate_all()
    _memory.memory.forget()


@contextlib.contextmanager
def watchdog(seconds: float):
    """Dump every thread's traceback and exit if the block runs past ``seconds``."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.stderr)
    try:
        yield
    finally:  # back to the conftest's guard for the rest of the test
        faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True, file=sys.stderr)


@pytest.mark.parametrize("module_name", MODULES)
def test_the_examples_in_the_docstrings_run(module_name, monkeypatch, fresh_engine):
    # The examples show the defaults: backend="auto" chooses for itself.
    monkeypatch.delenv("ALLCORES_BACKEND", raising=False)
    module = importlib.import_module(module_name)
    tests = doctests_of(module)
    examples = sum(len(test.examples) for test in tests)
    assert examples > 0, f"no examples found in {module_name}: none written, or missed"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in tests:
        with watchdog(DOCSTRING_TIMEOUT_S):
            runner.run(test, out=report.append)
    assert runner.failures == 0, (
        f"{runner.failures} of {examples} examples in {module_name} failed:\n"
        + "".join(report))


def test_a_compiled_function_s_examples_are_found():
    native = importlib.import_module("allcores.native")
    names = {test.name for test in doctests_of(native)}
    documented = [name for name, value in vars(native).items()
                  if _is_compiled_function(value, native) and ">>>" in value.__doc__]
    assert documented, "no function of allcores.native has an example"
    missed = [name for name in documented if f"allcores.native.{name}" not in names]
    assert not missed, f"examples of allcores.native not found: {missed}"


# --- the sections ---------------------------------------------------------------------------

# Names exempt from a section, and why. Only where the section cannot make sense; keep
# this short: {"allcores.Name": {"Examples"}}.
SECTION_EXEMPT: dict[str, set[str]] = {}

_SECTION = re.compile(r"^[ \t]*(\w[\w ]*)\n[ \t]*(-{3,})[ \t]*$", re.MULTILINE)


def sections(docstring: str) -> set[str]:
    """The titles of the numpydoc sections whose underline is exactly as long."""
    return {title for title, line in _SECTION.findall(docstring or "")
            if len(title) == len(line)}


def _native_return_types() -> dict[str, str]:
    """Return annotations of the compiled functions, from their stub (the compiled
    functions carry none)."""
    tree = ast.parse(NATIVE_STUB.read_text(encoding="utf-8"))
    return {node.name: ast.unparse(node.returns) for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.returns is not None}


def public_api() -> dict[str, object]:
    """Every public function, class and method, by its dotted name."""
    api: dict[str, object] = {}
    for name in allcores.__all__:
        value = getattr(allcores, name)
        if callable(value):
            api[f"allcores.{name}"] = value
        if inspect.isclass(value):
            for member, attribute in vars(value).items():
                if not member.startswith("_"):
                    api[f"allcores.{name}.{member}"] = attribute
    for module_name in ["allcores.kernels", "allcores.blocks", "allcores.pure"]:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, v in vars(module).items() if not n.startswith("_")
                     and inspect.isfunction(v) and v.__module__ == module_name]
        api.update({f"{module_name}.{n}": getattr(module, n) for n in names})
    native = importlib.import_module("allcores.native")
    api.update({f"allcores.native.{n}": v for n, v in vars(native).items()
                if not n.startswith("_") and _is_compiled_function(v, native)})
    return api


def _takes_parameters(name: str, value) -> bool:
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        # A class that keeps the built-in constructor (an exception without fields)
        # takes nothing of its own; a function without a signature is asked for one.
        return not inspect.isclass(value)
    parameters = list(signature.parameters.values())
    if inspect.isfunction(value) and "." in value.__qualname__ and parameters \
            and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]  # a method, from its class's __dict__
    if inspect.isclass(value):
        variable = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        parameters = [p for p in parameters if p.kind not in variable]
    return bool(parameters)


def _returns_something(name: str, value, native_returns: dict[str, str]) -> bool:
    if inspect.isclass(value):
        return False
    try:
        returns = inspect.signature(value).return_annotation
    except (TypeError, ValueError):
        returns = inspect.Signature.empty
    if returns is inspect.Signature.empty and name.startswith("allcores.native."):
        returns = native_returns.get(name.rsplit(".", 1)[1], returns)
    return returns not in (None, "None")  # unannotated: assumed to return something


def missing_sections(name: str, value, native_returns: dict[str, str]) -> list[str]:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    doc = inspect.getdoc(value) if not isinstance(value, property) else value.__doc__
    if not doc or not doc.strip():
        return ["a docstring"]
    if isinstance(value, property):
        return []  # an attribute: its summary line is enough (the class shows it in use)
    found = sections(doc)
    wanted = ["Examples"]
    if _takes_parameters(name, value):
        wanted.append("Parameters")
    missing = [s for s in wanted if s not in found]
    if (_returns_something(name, value, native_returns)
            and not found & {"Returns", "Yields"}):
        missing.append("Returns (or Yields)")
    return [s for s in missing if s not in SECTION_EXEMPT.get(name, ())]


def test_every_public_name_has_parameters_returns_and_examples():
    native_returns = _native_return_types()
    lacking = {}
    for name, value in public_api().items():
        if not (callable(value) or isinstance(value, (property, staticmethod, classmethod))):
            continue  # a constant: documented where it is defined
        missing = missing_sections(name, value, native_returns)
        if missing:
            lacking[name] = missing
    assert not lacking, "docstrings without the sections a reader needs:\n" + "\n".join(
        f"  {name}: no {', '.join(missing)}" for name, missing in sorted(lacking.items()))


def test_the_section_check_sees_what_is_missing():
    def documented(x):
        """Square it.

        Parameters
        ----------
        x : int
            A number.

        Returns
        -------
        int
            Its square.

        Examples
        --------
        >>> documented(3)
        9
        """
        return x * x

    def bare(x):
        """Square it.

        Parameter
        ----
        """
        return x * x

    def quiet() -> None:
        """Nothing to say.

        Examples
        --------
        >>> quiet()
        """

    assert missing_sections("documented", documented, {}) == []
    assert missing_sections("bare", bare, {}) == ["Examples", "Parameters",
                                                 "Returns (or Yields)"]
    assert missing_sections("quiet", quiet, {}) == []
    assert missing_sections("undocumented", lambda: 0, {}) == ["a docstring"]
