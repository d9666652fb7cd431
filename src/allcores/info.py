"""``allcores info``: what allcores sees on this machine and how it was built.

The usable CPU count and how it was derived (affinity mask, cgroup quota, override),
the default start method, the compiled extension's compiler and flags, and the
instruction set each kernel runs with here.
"""

from __future__ import annotations

import multiprocessing
import platform
import sys

from allcores import native
from allcores._version import __version__
from allcores.cpu import cpu_budget
from allcores.pool import default_start_method

# Kernels. mandelbrot, monte_carlo and fannkuch have instruction-set variants; the others
# are one portable build (their loops are integer-bound and gain nothing measurable from
# wider vectors).
KERNELS = ("mandelbrot", "count_primes", "is_prime", "fannkuch", "monte_carlo")


def facts() -> dict:
    """Every fact ``allcores info`` prints, as a dictionary."""
    budget = cpu_budget()
    isa = {name: "portable" for name in KERNELS}
    isa["mandelbrot"] = native.mandelbrot_isa()
    isa["monte_carlo"] = native.monte_carlo_isa()
    isa["fannkuch"] = native.fannkuch_isa()
    return {
        "allcores": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus_usable": budget.count,
        "cpus_explained": budget.explain(),
        "start_method": default_start_method(),
        "start_methods": multiprocessing.get_all_start_methods(),
        "build": native.build_info(),
        "isa_available": native.available_isas(),
        "isa": isa,
    }


def render(found: dict) -> str:
    lines = [
        f"allcores {found['allcores']} on {found['python']} ({found['platform']})",
        f"usable CPUs: {found['cpus_usable']}",
        f"  {found['cpus_explained']}",
        f"start method: {found['start_method']} "
        f"(available: {', '.join(found['start_methods'])})",
        f"extension built by {found['build']['compiler']} with {found['build']['flags']}",
        f"instruction sets this CPU can run: {', '.join(found['isa_available'])}",
    ]
    lines += [f"  {kernel:<13} {isa}" for kernel, isa in found["isa"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="allcores info", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    args = parser.parse_args(argv)
    found = facts()
    print(json.dumps(found, indent=2) if args.json else render(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
