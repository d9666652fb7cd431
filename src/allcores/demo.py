"""allcores demo: the classic tutorial, replayed with real work, and seen.

The tutorial proves that a pool runs in parallel by printing ``imap_unordered``'s
results out of order. This demo does that on a native kernel with allcores' default
pool, then draws who ran what, and when, for three ways of cutting work into chunks:

1. the tutorial's ``chunksize=1`` on cheap work: workers mostly wait for the next item
   (dispatch gaps);
2. a fixed chunk size on mandelbrot rows, one chunk per worker: rows through the set
   cost far more than the rest, and one worker is left with most of them (a straggler);
3. allcores' adaptive chunks on the same rows: the workers finish together.

Each timeline is a PNG in ``--out`` (matplotlib: ``pip install ".[plot]"`` from a
checkout); the summary of each is printed either way. The folder is checked (created,
written into) before anything runs, and the PNGs of an earlier demo there are removed
first (``OUTPUT_NAMES``; nothing else is touched).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys

import numpy as np

import allcores
from allcores import native
from allcores._cli_options import (
    check_backend_variable,
    columns,
    paragraph,
    positive_int,
    prepare_output_folder,
    workers_option,
)
from allcores.bench.workloads import TIMELINE_IMAGE, mandelbrot_row, spin

__all__ = ["add_arguments", "check_arguments", "run"]

# Upper bounds for "primes below n", in an order that makes their costs (about 1 ns per
# number) uneven from one item to the next, so that completion order shows.
PRIME_BOUNDS = [k * 10**7 for k in (6, 1, 9, 3, 12, 2, 8, 5, 11, 4, 10, 7)]
# The cheap work of the tutorial's recipe: a few microseconds of pure Python per item.
CHEAP_ITEMS = 3000
CHEAP_ITERATIONS = 200
# --quick shrinks the work by this factor (for tests and a first look).
QUICK_FACTOR = 10


# The timelines, in the order they are drawn: (file name without .png, what it shows).
TIMELINES = (
    ("tutorial_chunksize_1", "the tutorial's chunksize=1 on cheap work: dispatch gaps"),
    ("mandelbrot_fixed_chunks", "mandelbrot rows, one fixed chunk per worker: a straggler"),
    ("mandelbrot_adaptive", "the same rows, allcores' adaptive chunks: workers finish "
                            "together"),
)
# Every file the demo writes into --out: a run removes these (and only these) first.
OUTPUT_NAMES = tuple(f"{name}.png" for name, _ in TIMELINES)

# For --help: plain text (argparse prints it as it is).
DESCRIPTION = (
    "The classic multiprocessing tutorial, replayed with real work, and seen: "
    "imap vs imap_unordered on a native kernel (input order vs completion order), "
    "then timelines of who ran what, and when, for three ways of cutting work into "
    "chunks, with a one-line summary of each.")


def _epilog() -> str:
    return "\n".join([
        paragraph("writes into --out (created if missing), where matplotlib is installed "
                  "(without it, only the summaries are printed):"),
        *columns((f"{name}.png", what) for name, what in TIMELINES),
        paragraph("An earlier demo's PNGs there are removed first; other files are kept."),
        "",
        paragraph("Exit status: 0; 1 if the strategies computed different results; 2 for "
                  "a usage error (checked before anything runs)."),
    ])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options; also sets the parser's epilog (what it writes)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = paragraph(parser.description or DESCRIPTION)
    parser.epilog = _epilog()
    parser.add_argument("--out", default="allcores-demo", metavar="DIR",
                        help="folder for the timeline PNGs (default: allcores-demo)")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="workers (default: allcores.cpu_count(); more is allowed, "
                             "with a warning)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_FACTOR} times less work (a few seconds in all)")


def check_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Everything that can be checked before the demo runs: ``--workers`` against the
    usable CPUs (a warning above them), ``ALLCORES_WORKERS`` / ``ALLCORES_BACKEND``, and
    ``--out`` (created, written into, cleared of an earlier demo's PNGs). A problem is
    ``parser.error``: usage, error, exit status 2."""
    check_backend_variable(parser)
    args.workers = workers_option(parser, args.workers)
    prepare_output_folder(parser, args.out, OUTPUT_NAMES)


def run(args: argparse.Namespace, out=sys.stdout) -> int:
    """Run the demo with options checked by :func:`check_arguments`; return the exit
    status (1 if a result was wrong)."""
    workers = allcores.cpu_count() if args.workers is None else args.workers
    shrink = QUICK_FACTOR if args.quick else 1

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say(f"allcores.cpu_count() = {allcores.cpu_count()} "
        f"(os.cpu_count() = {os.cpu_count()}); using {workers} workers")
    ok = _arrival_order(say, workers, shrink)
    try:
        import matplotlib  # noqa: F401
        plots = True
    except ImportError:
        plots = False
        say("\n(timelines are summed up below but not drawn: matplotlib is missing; "
            "pip install \".[plot]\" from a checkout, or pip install matplotlib)")
    images = []
    for name, title, summary, image in _timelines(workers, shrink):
        say(f"\n{title}\n  {_one_line(summary)}")
        if plots:
            path = summary.plot(os.path.join(args.out, f"{name}.png"), title=title)
            say(f"  timeline: {path}")
        if image is not None:
            images.append(image)
    if not all(np.array_equal(images[0], image) for image in images[1:]):
        say("WRONG: the strategies computed different images")
        ok = False
    say("\nEach summary in full: str(pool.insights()); see the README, 'Seeing the workers'.")
    return 0 if ok else 1


def _arrival_order(say, workers: int, shrink: int) -> bool:
    """The tutorial's proof of parallelism: imap keeps input order, imap_unordered
    hands results back as they finish."""
    bounds = [n // shrink for n in PRIME_BOUNDS]
    count_below = functools.partial(native.count_primes_range, 0)  # runs without the GIL
    say(f"\nprimes below n for {len(bounds)} values of n (a native kernel; cost grows with"
        " n), on the default pool:")
    in_order = list(allcores.imap(count_below, bounds, workers=workers))
    item_of = {count: index for index, count in enumerate(in_order)}
    arrived = list(allcores.imap_unordered(count_below, bounds, workers=workers,
                                           insights=True))
    summary = allcores.insights()
    say("  imap           (input order):      "
        + " ".join(str(item_of[c]) for c in in_order))
    say("  imap_unordered (completion order): "
        + " ".join(str(item_of.get(c, "?")) for c in arrived))
    say(f"  imap_unordered ran on {', '.join(summary.lanes())} ({summary.backend} backend)")
    return sorted(arrived) == sorted(in_order)


def _timelines(workers: int, shrink: int):
    """Yield (file name, title, summary, image or None) for each scheduling strategy."""
    cheap = [CHEAP_ITERATIONS] * (CHEAP_ITEMS // shrink)
    with allcores.Pool(workers, backend="process", insights=True) as pool:
        pool.map(spin, [1] * workers, chunksize=1)  # start the workers: not in the picture
        pool.insights(reset=True)
        list(pool.imap(spin, cheap, chunksize=1))
        yield (TIMELINES[0][0],
               f"the tutorial's Pool.imap(f, items, chunksize=1): {len(cheap):,} items of "
               "a few us each on processes",
               pool.insights(), None)

    image = dict(TIMELINE_IMAGE, max_iter=TIMELINE_IMAGE["max_iter"] // shrink)
    row = functools.partial(mandelbrot_row, **image)
    rows = range(image["height"])
    static = math.ceil(len(rows) / workers)
    with allcores.Pool(workers, backend="thread", insights=True) as pool:
        for name, chunksize, title in [
            (TIMELINES[1][0], static,
             f"mandelbrot rows, a fixed chunksize={static} (one chunk per worker)"),
            (TIMELINES[2][0], None, "mandelbrot rows, allcores' adaptive chunks"),
        ]:
            pool.insights(reset=True)
            computed = np.vstack(pool.map(row, rows, chunksize=chunksize))
            yield name, title, pool.insights(), computed


def _one_line(summary) -> str:
    from allcores._timeline_plot import chunk_sizes_text   # no matplotlib needed

    between = sum(w.between_s for w in summary.per_worker)
    return (f"wall {summary.wall_s:.3f} s, utilisation {summary.utilisation:.0%}; "
            f"{summary.chunks:,} chunk{'s' if summary.chunks != 1 else ''}, "
            f"{chunk_sizes_text(*summary.chunk_sizes())}; "
            f"idle between chunks {between:.3f} s (all workers), "
            f"longest wait at the end {summary.tail_idle_s:.3f} s")
