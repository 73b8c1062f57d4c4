"""The ``rlnas`` command line, thin over the library.

Arguments, config files, the space and the data are all validated before TensorFlow is imported, so
``--help`` is instant and a typo costs a one-line error. Any :class:`RlnasError` becomes
``rlnas: error: ...`` and exit status 2 (a traceback only with ``--debug``).

The commands live in :mod:`rlnas.cli.runs` (search and the commands on a run) and
:mod:`rlnas.cli.tables` (tabulate, bench); what they share in :mod:`rlnas.cli._common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rlnas.cli import runs, tables
from rlnas.cli._common import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, Parser
from rlnas.errors import RlnasError

__all__ = ["EXIT_ERROR", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "build_parser", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "search": runs.cmd_search,
    "replay": runs.cmd_replay,
    "space": runs.cmd_space,
    "show": runs.cmd_show,
    "export": runs.cmd_export,
    "report": runs.cmd_report,
    "tensorboard": runs.cmd_tensorboard,
    "tabulate": tables.cmd_tabulate,
    "bench": tables.cmd_bench,
}


def build_parser() -> Parser:
    parser = Parser(prog="rlnas", description="Neural architecture search with an RL controller.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow logs")
    parser.add_argument("--version", action="version", version=f"rlnas {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    runs.add_parsers(sub)
    tables.add_parsers(sub)
    parser.commands = sub.choices
    return parser


def version() -> str:
    """The installed distribution's version (what pip reports), or the package's own from a checkout
    that was never installed."""
    from importlib import metadata

    try:
        return metadata.version("rlnas")
    except metadata.PackageNotFoundError:
        from rlnas import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    from rlnas.exec.worker import follow_parent_from_env

    follow_parent_from_env()  # a command rlnas started (the replay on a GPU) ends with its starter
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "tensorboard":
        parser.commands[args.command].unrecognized(extra)
    args.extra = extra
    try:
        return COMMANDS[args.command](args)
    except RlnasError as exc:
        if args.debug:
            raise
        print(f"rlnas: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # outside a search (loading, replay): nothing half-written to report
        print("rlnas: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours, not bad input: still one line, the details on request
        if args.debug:
            raise
        print(
            f"rlnas: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
