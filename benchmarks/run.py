"""When does parallelism pay, and does allcores keep its promises? Measured, not claimed.

Sections (``--only`` picks some):

- ``kernels``: each native kernel vs its pure-Python twin on one core;
- ``pool``: dispatch cost vs ``multiprocessing.Pool``, scaling from 1 to N workers,
  and memory while streaming a long generator.

Every row checks its answer against a reference; a wrong answer is reported as WRONG
and makes the script exit with status 1: it is never timed as a win. Timings are
medians with min-max over repeats, after a warm-up run, with fixed seeds.

Usage::

    python benchmarks/run.py --quick            # small sizes, about a minute
    python benchmarks/run.py                    # full sizes
    python benchmarks/run.py --only kernels --repeats 7 --workers 4
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys

import bench_kernels
import bench_pool

import allcores

SECTIONS = {"kernels": bench_kernels.run, "pool": bench_pool.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row")
    parser.add_argument("--workers", type=int, default=None,
                        help="workers for parallel rows (default: allcores.cpu_count())")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    workers = args.workers or allcores.cpu_count()
    if repeats < 1 or workers < 1:
        parser.error("--repeats and --workers must be >= 1")
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(SECTIONS)}")

    print(f"allcores {allcores.__version__}, {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs online, "
          f"{allcores.cpu_count()} usable")
    failures = sum(SECTIONS[name](quick=args.quick, repeats=repeats, workers=workers)
                   for name in sections)
    print(f"\nreproduce: python {shlex.join(sys.argv)}")
    if failures:
        print(f"{failures} row(s) gave a wrong answer", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
