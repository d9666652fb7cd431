"""The allcores benchmark: when does parallelism pay, and does allcores keep its promises?
Measured on this machine, never claimed.

Sections (``--only`` picks some):

- ``kernels``: each kernel pure-Python vs native, serial vs N workers, through allcores
  and through the tools a user would pick instead (multiprocessing, concurrent.futures,
  joblib, numba, and the primesieve command for count_primes);
- ``overhead``: from what cost per item on each tool beats a serial loop (crossover);
  then whether ``backend="auto"`` pays no serial tax (``allcores.bench.serial_tax``):
  4 equal expensive items, 10-item call latency, spawn start-up, unmarked hashlib, and
  what auto decides against the measured crossover;
- ``pool``: dispatch cost vs ``multiprocessing.Pool``, and scaling from 1 to N workers;
- ``memory``: peak memory while streaming a long generator through ``imap``;
- ``crash``: what a map does when a worker is ``kill -9``ed;
- ``timeline``: how chunking strategies spread uneven work over the workers, seen in
  recorded timelines (``insights=True``), and what recording costs.

Every row checks its answer against a reference; a wrong answer is reported as WRONG,
never timed as a win, and makes the run exit with status 1. Times are medians with
min-max over repeats after a warm-up run, with fixed seeds and ``time.perf_counter``.
The run writes ``results.json``, ``report.md`` and PNG plots into ``--out``, after
removing the files an earlier run wrote there (``output_names()``; nothing else), so
that the folder holds only the current run's results.

Bad options, an ``--out`` that cannot be written and a bad ``ALLCORES_WORKERS`` or
``ALLCORES_BACKEND`` end as argparse ends (usage, error, exit status 2) before anything
runs; ``--workers`` above ``allcores.cpu_count()`` is allowed, with a warning.

Usage::

    allcores bench --quick                  # small sizes: 3.5 minutes on 2 cores
    allcores bench                          # full sizes: over 10 minutes on 2 cores
    allcores bench --only kernels,overhead --workers 4 --repeat 5 --out results/
    python benchmarks/run.py --quick        # the same, from a source checkout
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback

from allcores._cli_options import (
    check_backend_variable,
    columns,
    paragraph,
    positive_int,
    prepare_output_folder,
    workers_option,
)

__all__ = ["SECTIONS", "add_arguments", "main", "output_names", "run_benchmark"]

SECTIONS = ("kernels", "overhead", "pool", "memory", "crash", "timeline")
# One line per section for --help (plain text: argparse prints it as it is).
SECTION_HELP = {
    "kernels": "each kernel pure-Python vs native, serial vs N workers, and through "
               "multiprocessing, concurrent.futures, joblib, numba, primesieve",
    "overhead": "from what cost per item each tool beats a serial loop; whether "
                "backend='auto' avoids a serial tax",
    "pool": "dispatch cost vs multiprocessing.Pool, and scaling from 1 to N workers",
    "memory": "peak memory while streaming a long generator through imap",
    "crash": "what a map does when a worker is killed (kill -9)",
    "timeline": "how chunking strategies spread uneven work over the workers, and what "
                "recording the timeline costs",
}
# For --help: plain text (the module docstring is reST).
DESCRIPTION = ("The allcores benchmark: when does parallelism pay, and does allcores keep "
               "its promises? Measured on this machine, never claimed. Every row checks its "
               "answer; a wrong one is reported as WRONG, never timed as a win.")
RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
PLOT_FILES = ("kernels_speedup.png", "mandelbrot.png", "overhead.png")
# Minimum --scale: below it sizes stop shrinking usefully (fixed costs dominate).
MIN_SCALE = 0.01


def _section_module(name: str):
    import importlib

    return importlib.import_module(f"allcores.bench.{name}")


def output_names() -> list[str]:
    """Every file name a run may write into ``--out``: a run removes these (and only
    these) before it starts, so that the folder never mixes two runs' results."""
    from allcores.bench.timeline import STRATEGIES

    return [RESULTS_FILE, REPORT_FILE, *PLOT_FILES,
            *(f"timeline_{strategy}.png" for strategy, _ in STRATEGIES)]


def help_epilog() -> str:
    """The sections and the outputs, for ``--help`` (printed as written)."""
    return "\n".join([
        "sections (all by default; --only picks some):",
        *columns((name, SECTION_HELP[name]) for name in SECTIONS),
        "",
        "writes into --out (created if missing):",
        *columns([(RESULTS_FILE, "every row's figures, the machine and the command"),
                  (REPORT_FILE, "the tables and what they say, in Markdown"),
                  ("*.png", "plots, where matplotlib is installed: "
                            + ", ".join(PLOT_FILES) + ", timeline_<strategy>.png")]),
        paragraph("The files an earlier run wrote there are removed first, so that the "
                  "folder holds only this run's results; other files in it are kept."),
        "",
        paragraph("Exit status: 0; 1 if a row gave a wrong answer or a section failed; "
                  "2 for a usage error (checked before anything runs)."),
    ])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options, shared by ``benchmarks/run.py`` and ``allcores bench``;
    also sets the parser's epilog (sections and outputs) for ``--help``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = paragraph(parser.description or DESCRIPTION)
    parser.epilog = help_epilog()
    parser.add_argument("--quick", action="store_true",
                        help="every section at small sizes (a few minutes on 2 cores)")
    parser.add_argument("--only", default=",".join(SECTIONS), metavar="SECTION[,SECTION]",
                        help=f"sections to run, comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="workers for the parallel rows (default: allcores.cpu_count(); "
                             "more is allowed, with a warning)")
    parser.add_argument("--repeat", "--repeats", dest="repeat", type=positive_int,
                        default=None, metavar="N",
                        help="timed runs per row, after one warm-up (default 3)")
    parser.add_argument("--out", default="bench-results", metavar="DIR",
                        help="folder for results.json, report.md and the plots "
                             "(default: bench-results); an earlier run's files there are "
                             "replaced")
    # For tests: multiplies every size (on top of --quick); not a way to get figures.
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The run's ``Config`` from the parsed options; a bad value (or a bad
    ``ALLCORES_WORKERS`` / ``ALLCORES_BACKEND``) is ``parser.error``: exit status 2."""
    from allcores.bench.measure import Config

    sections = tuple(dict.fromkeys(s.strip() for s in args.only.split(",") if s.strip()))
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        parser.error(f"argument --only: expected sections from {', '.join(SECTIONS)}, "
                     f"got: {args.only!r}")
    if not MIN_SCALE <= args.scale <= 1.0:
        parser.error(f"argument --scale: expected a number in [{MIN_SCALE}, 1], "
                     f"got: {args.scale}")
    check_backend_variable(parser)
    workers = workers_option(parser, args.workers)
    repeat = 3 if args.repeat is None else args.repeat
    # Sections run in the canonical order, whatever order --only named them in.
    ordered = tuple(s for s in SECTIONS if s in sections)
    return Config(quick=args.quick, scale=args.scale, repeat=repeat, workers=workers,
                  sections=ordered, out=args.out, plots=args.plots)


def prepare_output(config, parser: argparse.ArgumentParser) -> None:
    """Make ``config.out`` ready before anything runs: created, proved writable, and
    cleared of an earlier run's files; ``parser.error`` (exit status 2) if it cannot be."""
    prepare_output_folder(parser, config.out, output_names())


def reproduce_command(prog: str, config) -> str:
    """The command line that repeats this run, with every choice spelled out."""
    words = shlex.split(prog)
    if config.quick:
        words.append("--quick")
    if config.sections != SECTIONS:
        words += ["--only", ",".join(config.sections)]
    words += ["--workers", str(config.workers), "--repeat", str(config.repeat),
              "--out", config.out]
    if config.scale != 1.0:
        words += ["--scale", f"{config.scale:g}"]
    if not config.plots:
        words.append("--no-plots")
    return shlex.join(words)


def _config_json(config, *, complete: bool) -> dict:
    return {"quick": config.quick, "scale": config.scale, "repeat": config.repeat,
            "workers": config.workers, "sections": list(config.sections), "out": config.out,
            "complete": complete}


def run_benchmark(config, prog: str = "allcores bench") -> int:
    """Run the sections, print their tables, write the results; return the exit status:
    0, or 1 if any row gave a wrong answer (or a section failed)."""
    from allcores.bench import busy, report
    from allcores.bench.measure import Progress, Section, format_table

    command = reproduce_command(prog, config)
    os.makedirs(config.out, exist_ok=True)
    machine = report.machine_facts()
    started_at = report.now_utc()
    started = time.perf_counter()
    print(f"allcores {machine['libraries']['allcores']}, {machine['python']}, "
          f"{machine['cpu_model']}; {machine['usable_cores_derivation']}")
    print(f"{config.workers} workers, {config.repeat} timed runs per row after a warm-up"
          f"{', quick sizes' if config.quick else ''}; command: {command}", flush=True)
    modules = {name: _section_module(name) for name in config.sections}
    progress = Progress(sum(m.steps(config) for m in modules.values()))
    sections: dict[str, Section] = {}
    watch = busy.Watch(machine["usable_cores"])   # was the machine busy? (bench/busy.py)
    for name, module in modules.items():
        watch.begin(name)
        try:
            section = module.run(config, progress)
        except Exception as error:   # report the failure, keep the other sections
            progress.clear()
            traceback.print_exc()
            section = Section(name=name, question=module.QUESTION,
                              rows=[{"correct": False,
                                     "status": f"failed: {type(error).__name__}: {error}"}],
                              tables=[], reading=[f"the section failed: "
                                                  f"{type(error).__name__}: {error}"],
                              extra={"failed": True})
        sections[name] = section
        report.mark_busy(section, watch.end())
        machine["busy"] = watch.summary()
        # Written after every section, so that a run stopped later keeps what it measured.
        report.write_json(os.path.join(config.out, RESULTS_FILE), command=command,
                          config=_config_json(config, complete=False), machine=machine,
                          started=started_at, seconds=time.perf_counter() - started,
                          sections=list(sections.values()), plots=[])
        progress.clear()
        for table in section.tables:
            print("\n" + format_table(table))
        for sentence in section.reading:
            print(f"  - {sentence}")
        sys.stdout.flush()

    plots: list[str] = []
    if config.plots:
        from allcores.bench import plots as plotting

        try:
            plots = plotting.draw(sections, config.out)
        except ImportError as error:
            print(f"plots skipped: {error} (pip install \"allcores[bench]\")", file=sys.stderr)
    seconds = time.perf_counter() - started
    try:   # other processes share the machine: say how busy it was at the end too
        machine["load_average_at_end"] = list(os.getloadavg())
    except OSError:
        machine["load_average_at_end"] = None
    listed = list(sections.values())
    report.write_json(os.path.join(config.out, RESULTS_FILE), command=command,
                      config=_config_json(config, complete=True), machine=machine,
                      started=started_at, seconds=seconds, sections=listed, plots=plots)
    with open(os.path.join(config.out, RESULTS_FILE)) as written:
        summary = report.headline(json.load(written))
    with open(os.path.join(config.out, REPORT_FILE), "w") as out:
        out.write(report.markdown(command=command, machine=machine, started=started_at,
                                  seconds=seconds, sections=listed, plots=plots,
                                  workers=config.workers, summary=summary))
    wrong = sum(s.wrong for s in listed)
    caveat = report.busy_caveat(machine.get("busy"))   # the summary's first lines
    if caveat:
        print("\n" + "\n".join(caveat))
    print(f"\nwrote {os.path.join(config.out, RESULTS_FILE)}, {REPORT_FILE}"
          + "".join(f", {p}" for p in plots) + f" in {seconds:.0f} s")
    print(f"reproduce: {command}")
    if wrong:
        print(f"{wrong} row(s) gave a wrong answer (marked WRONG)", file=sys.stderr)
    return 1 if wrong else 0


def main(argv: list[str] | None = None, prog: str | None = None,
         c_reference: str | None = None) -> int:
    """``benchmarks/run.py`` and ``python -m allcores.bench``: parse, run, exit status.
    ``c_reference``: the path of ``benchmarks/c_reference.py`` (a source checkout has
    it), which adds plain-C rows to the kernels section."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    prepare_output(config, parser)
    if c_reference is not None and os.path.isfile(c_reference):
        config.c_reference = c_reference
    return run_benchmark(config, prog=prog or f"python {sys.argv[0]}")
