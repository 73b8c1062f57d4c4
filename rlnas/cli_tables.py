"""``rlnas tabulate`` and ``rlnas bench``: build a lookup table of a space, compare strategies on it.

Kept apart from :mod:`rlnas.cli` (the search commands) so each stays readable; the same error and
Ctrl-C conventions apply (one line, exit 2 for bad input, 130 when interrupted, nothing lost).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rlnas.errors import ConfigError


def add_parsers(sub: Any, typed: Any, add_config_flags: Any) -> None:
    t = sub.add_parser(
        "tabulate",
        help="train every architecture of a (small) space once and write a lookup table (CSV)",
        description="Resumable: run the same command again to train only the architectures the table lacks.",
    )
    t.add_argument("--config", help="TOML file: the [space], and [search] settings (dataset, epochs, ...)")
    t.add_argument("--out", required=True, metavar="CSV", help="the table to write (or complete)")
    t.add_argument("--quiet", action="store_true", help="no line per architecture")
    add_config_flags(t)

    b = sub.add_parser("bench", help="compare search strategies on a lookup table (regret, evaluations)")
    b.add_argument("--table", required=True, metavar="CSV", help="a table written by `rlnas tabulate`")
    b.add_argument("--config", help="TOML file: the table's [space], the strategies' [search] settings")
    b.add_argument("--budget", type=typed(int), default=200, help="evaluations per run (default 200)")
    b.add_argument("--seeds", type=typed(int), default=20, help="runs per strategy (default 20)")
    b.add_argument(
        "--strategies", default="reinforce,random,evolution", help="comma-separated (default: all three)"
    )
    b.add_argument("--plot", default="bench.png", metavar="PNG", help="regret plot (default: bench.png)")


def cmd_tabulate(args: argparse.Namespace) -> int:
    from rlnas.cli import EXIT_INTERRUPTED, _load_tensorflow, _resolve_search, _StopOnCtrlC
    from rlnas.parallel import default_workers

    config, space = _resolve_search(args)
    workers = config.workers or default_workers()
    from rlnas.tabulate import existing_keys, tabulate

    total = space.size()
    done = len(existing_keys(space, _path(args.out)))
    print(
        f"table {args.out}: {total:,} architectures, {done:,} already there; "
        f"training the rest on {config.dataset} ({config.epochs} epochs, {workers} worker(s))",
        flush=True,
    )
    _load_tensorflow(args.debug)
    start = time.monotonic()

    def show(row: dict[str, Any]) -> None:
        if args.quiet:
            return
        acc = row["val_accuracy"] or "FAILED"
        arch = " ".join(f"{n}={row[n]}" for n in space.names if row[n] != "")
        print(f"[{row['done']}/{row['total']}] val_acc {acc[:6]}  {time.monotonic() - start:.0f}s  {arch}")

    stop = _StopOnCtrlC()
    try:
        with stop.installed():
            result = tabulate(config, space, args.out, workers=workers, on_row=show, should_stop=stop)
    except KeyboardInterrupt:
        result = None
    if result is None or not result.complete:
        print(
            f"interrupted: the rows written are kept in {args.out}; run the same command to finish it",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"wrote {args.out}: {result.total:,} architectures ({result.trained:,} trained now in "
        f"{result.seconds:.0f}s, {result.failed} failed)"
    )
    return 0


def _path(text: str):
    from pathlib import Path

    p = Path(text)
    if p.exists() and p.is_dir():
        raise ConfigError(f"--out {text!r} is a directory; give a .csv file path")
    if not p.parent.exists():
        raise ConfigError(f"--out {text!r}: directory {str(p.parent)!r} does not exist")
    return p
