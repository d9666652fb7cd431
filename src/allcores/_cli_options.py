"""The options the ``allcores`` subcommands share, checked before any work starts.

Every problem with what was typed (a bad number, an output folder that cannot be
written, a bad ``ALLCORES_WORKERS`` / ``ALLCORES_BACKEND``) ends as argparse ends:
``usage: ...``, ``error: ...`` on stderr and exit status 2, before the first worker
starts, so that a mistake costs nothing. A questionable but legal choice (more
workers than usable CPUs) is a warning, not a refusal.

The output folder holds only the current run's files: a run removes the files an
earlier run of the same subcommand wrote there (the names it owns, and only those),
and keeps anything else a user put in the folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterable

# Help texts are wrapped to this width (argparse's own default on an 80-column terminal).
HELP_WIDTH = 79


def paragraph(text: str) -> str:
    """``text`` wrapped for a help text that argparse prints as written."""
    return textwrap.fill(text, HELP_WIDTH)


def columns(rows: Iterable[tuple[str, str]]) -> list[str]:
    """``name  what it is`` lines for a help text, the second column wrapped under
    itself."""
    rows = list(rows)
    width = max(len(name) for name, _ in rows)
    lines = []
    for name, text in rows:
        lines += textwrap.wrap(text, HELP_WIDTH, initial_indent=f"  {name:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
    return lines


def positive_int(text: str) -> int:
    """argparse ``type=`` for a count of at least 1: ``--workers``, ``--repeat``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got: {text!r}")
    return value


def usable_cpus(parser: argparse.ArgumentParser) -> int:
    """``allcores.cpu_count()``; a bad ``ALLCORES_WORKERS`` is a usage error (exit 2)."""
    from allcores.cpu import cpu_count

    try:
        return cpu_count()
    except ValueError as error:   # the message names the variable and what it takes
        parser.error(str(error))


def check_backend_variable(parser: argparse.ArgumentParser) -> None:
    """A bad ``ALLCORES_BACKEND`` is a usage error (exit 2), not a failure mid-run."""
    from allcores.planner import backend_override

    try:
        backend_override()
    except ValueError as error:
        parser.error(str(error))


def workers_option(parser: argparse.ArgumentParser, workers: int | None) -> int:
    """``--workers`` as given (default: the usable CPUs). More than the usable CPUs is
    allowed (to see what oversubscription does) with a warning on stderr: the workers
    then share CPUs, and times measured that way say so."""
    cpus = usable_cpus(parser)
    if workers is None:
        return cpus
    if workers > cpus:
        print(f"{parser.prog}: warning: --workers {workers} is more than the {cpus} "
              f"CPU{'s' if cpus != 1 else ''} this process may use "
              "(allcores.cpu_count()): the workers will take turns on them",
              file=sys.stderr, flush=True)
    return workers


def prepare_output_folder(parser: argparse.ArgumentParser, folder: str,
                          ours: Iterable[str]) -> None:
    """Make ``folder`` (``--out``) ready for this run: created if missing, proved
    writable by writing a file into it, and cleared of the files named in ``ours``
    (those an earlier run wrote; nothing else is touched). A folder that cannot be
    created or written is a usage error (exit 2)."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        if isinstance(error, FileExistsError) or (os.path.exists(folder)
                                                  and not os.path.isdir(folder)):
            reason = "it exists and is not a folder"
        parser.error(f"argument --out: cannot write into {folder!r}: {reason}")
    for name in ours:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            try:
                os.remove(path)
            except OSError as error:
                parser.error(f"argument --out: cannot remove {path!r} (from an earlier "
                             f"run): {error.strerror or error}")
