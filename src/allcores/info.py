"""``allcores info``: what allcores sees on this machine and how it was built.

The usable CPU count and how it was derived (affinity mask, cgroup quota,
``ALLCORES_WORKERS``), the default start method, the compiled extension's compiler and
flags, the instruction sets this CPU can run and the one each kernel of
``allcores.kernels`` runs with, and the ``ALLCORES_*`` environment variables that are
set. A bad value of one of them is reported with what it takes, never a traceback:
``allcores info`` is where a user looks when something is off.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
from typing import Callable

from allcores import native
from allcores._version import __version__
from allcores.cpu import WORKERS_ENV, cpu_budget
from allcores.planner import BACKEND_ENV, backend_override
from allcores.pool import default_start_method

__all__ = ["add_arguments", "facts", "main", "render", "run"]

# For --help: plain text (argparse prints it as it is).
DESCRIPTION = (
    "What allcores sees on this machine and how it was built: the usable CPUs and which "
    "limit decided them (affinity mask, cgroup quota, ALLCORES_WORKERS), the default "
    "start method, the compiler and flags of the native kernels, the instruction sets "
    "this CPU can run and the one each kernel runs with, and the ALLCORES_* variables "
    "that are set. Prints to stdout and writes no files.")

# The kernels of allcores.kernels, by their public names, and the native function whose
# instruction set each runs with (None: one build for every CPU, so ALLCORES_ISA does
# not apply; count_primes still uses POPCNT where the CPU has it).
KERNEL_ISA = {
    "mandelbrot": native.mandelbrot_isa,
    "count_primes": None,
    "is_prime": None,
    "fannkuch": native.fannkuch_isa,
    "monte_carlo_pi": native.monte_carlo_isa,
}
NO_VARIANTS = "one build for every CPU (no variants)"


def _cpus() -> tuple[int | None, str]:
    try:
        budget = cpu_budget()
    except ValueError as error:   # a bad ALLCORES_WORKERS: say so, do not fail
        return None, str(error)
    return budget.count, budget.explain()


def _raised(check: Callable[[], object]) -> str | None:
    """The message of the ValueError ``check()`` raises for a bad variable, or None."""
    try:
        check()
    except ValueError as error:
        return str(error)
    return None


def _isa_problem() -> str | None:
    problem = native._isa_problem(os.environ.get(native.ISA_ENV, "").strip())
    return None if problem is None else f"{native.ISA_ENV}: {problem}"


# Each ALLCORES_* variable and what is wrong with its value now (None: nothing), checked
# by the code that reads it.
ENVIRONMENT_CHECKS: dict[str, Callable[[], str | None]] = {
    WORKERS_ENV: lambda: _raised(cpu_budget),
    BACKEND_ENV: lambda: _raised(backend_override),
    native.ISA_ENV: _isa_problem,
}


def _environment() -> dict:
    """Each ALLCORES_* variable that is set: its value, and what is wrong with it."""
    found = {}
    for name, problem in ENVIRONMENT_CHECKS.items():
        value = os.environ.get(name, "").strip()
        if value:
            found[name] = {"value": value, "problem": problem()}
    return found


def facts() -> dict:
    """Every fact ``allcores info`` prints, as a dictionary.

    ``cpus_usable`` is None (and ``cpus_explained`` says why) when ``ALLCORES_WORKERS``
    is bad; ``isa`` maps each kernel to its instruction set, None for a kernel without
    variants.
    """
    count, explained = _cpus()
    return {
        "allcores": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus_usable": count,
        "cpus_explained": explained,
        "start_method": default_start_method(),
        "start_methods": multiprocessing.get_all_start_methods(),
        "build": native.build_info(),
        "isa_available": native.available_isas(),
        "isa": {kernel: None if isa is None else isa() for kernel, isa in KERNEL_ISA.items()},
        "environment": _environment(),
    }


def render(found: dict) -> str:
    """The facts as the text ``allcores info`` prints."""
    usable = "unknown" if found["cpus_usable"] is None else found["cpus_usable"]
    lines = [
        f"allcores {found['allcores']} on {found['python']} ({found['platform']})",
        f"usable CPUs: {usable}",
        f"  {found['cpus_explained']}",
        f"start method: {found['start_method']} "
        f"(available: {', '.join(found['start_methods'])})",
        f"extension built by {found['build']['compiler']} with {found['build']['flags']}",
        f"instruction sets this CPU can run: {', '.join(found['isa_available'])}",
        "instruction set of each kernel (ALLCORES_ISA forces one):",
    ]
    width = max(len(kernel) for kernel in found["isa"])
    lines += [f"  {kernel:<{width}}  {NO_VARIANTS if isa is None else isa}"
              for kernel, isa in found["isa"].items()]
    if found["environment"]:
        lines.append("environment:")
        for name, setting in found["environment"].items():
            state = f"BAD: {setting['problem']}" if setting["problem"] else "ok"
            lines.append(f"  {name}={setting['value']}  {state}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the facts; return the exit status (0)."""
    found = facts()
    print(json.dumps(found, indent=2) if args.json else render(found))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m allcores.info``: the same as ``allcores info``."""
    parser = argparse.ArgumentParser(prog="allcores info", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
