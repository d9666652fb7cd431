"""The ``allcores`` command.

Subcommands::

    allcores bench [--quick] [--only SECTION[,SECTION]] [--workers N] [--repeat N] [--out DIR]
        run the benchmark (see ``allcores.bench``) and write its results
    allcores info [--json]
        usable CPUs and how they were counted, start method, build flags, instruction sets
    allcores demo [--quick] [--workers N] [--out DIR]
        the tutorial's imap vs imap_unordered on a native kernel, and timelines of three
        ways to cut work into chunks

Each subcommand is a module-level ``_<name>_command(subparsers)`` that registers its
parser and sets ``handler``: a function of the parsed arguments that returns the exit
status. A new subcommand adds one such function to ``COMMANDS``.

The command follows argparse's conventions everywhere: an unknown option, a bad value,
an output folder that cannot be written, or a bad ``ALLCORES_WORKERS`` /
``ALLCORES_BACKEND`` prints the subcommand's usage and ``error: ...`` and exits with
status 2 before any work starts (see ``allcores._cli_options``). Help texts are plain
text, not reST: argparse prints them as they are.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

__all__ = ["main"]


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an option it does not know is its own error, with its own
    usage (argparse otherwise hands unknown options up to the top-level parser, whose
    usage does not show the subcommand's options)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _bench_command(subparsers) -> None:
    from allcores import bench

    parser = subparsers.add_parser(
        "bench", help="measure when parallelism pays on this machine",
        description=bench.DESCRIPTION)
    bench.add_arguments(parser)

    def handler(args: argparse.Namespace) -> int:
        config = bench.config_from_args(args, parser)
        bench.prepare_output(config, parser)
        return bench.run_benchmark(config, prog=f"{args.prog} bench")

    parser.set_defaults(handler=handler)


def _info_command(subparsers) -> None:
    from allcores import info

    parser = subparsers.add_parser(
        "info", help="usable CPUs and how they were counted, build flags, instruction sets",
        description=info.DESCRIPTION)
    info.add_arguments(parser)
    parser.set_defaults(handler=info.run)


def _demo_command(subparsers) -> None:
    from allcores import demo

    parser = subparsers.add_parser(
        "demo", help="the tutorial replayed with real work, and timelines of the workers",
        description=demo.DESCRIPTION)
    demo.add_arguments(parser)

    def handler(args: argparse.Namespace) -> int:
        demo.check_arguments(args, parser)
        return demo.run(args)

    parser.set_defaults(handler=handler)


COMMANDS: list[Callable] = [_bench_command, _info_command, _demo_command]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from allcores import __version__

    parser = argparse.ArgumentParser(
        prog=prog, description="allcores: get the most out of every CPU core.",
        epilog="'%(prog)s COMMAND --help' says what a command does, what it writes "
               "and its options.")
    parser.add_argument("--version", action="version", version=f"allcores {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                       parser_class=_SubcommandParser)
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the ``allcores`` command; return its exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.prog = parser.prog
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
