"""``rlnas tabulate`` and ``rlnas bench``: build a lookup table of a space, compare strategies on it.

The same error and Ctrl-C conventions as the commands on a run (:mod:`rlnas.cli.runs`): one line,
exit 2 for bad input, 130 when interrupted, nothing lost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rlnas.cli._common import (
    EXIT_INTERRUPTED,
    StopOnCtrlC,
    add_config_flags,
    flag_values,
    load_tensorflow,
    resolve_search,
    typed,
)
from rlnas.errors import ConfigError
from rlnas.tables.hpo import TABLES


def add_parsers(sub: Any) -> None:
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
    which = b.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", metavar="CSV", help="a table written by `rlnas tabulate`")
    which.add_argument(
        "--benchmark",
        metavar="NAME",
        help=f"one of the field's tables, noisy as reality ({', '.join(TABLES)}; needs the bench extra)",
    )
    b.add_argument("--config", help="TOML file: the table's [space], the strategies' [search] settings")
    b.add_argument("--budget", type=typed(int), default=200, help="evaluations per run (default 200)")
    b.add_argument(
        "--budget-seconds",
        type=typed(float),
        metavar="S",
        help="--benchmark: also stop a run when its evaluations' stored train times reach S seconds",
    )
    b.add_argument("--seeds", type=typed(int), default=20, help="runs per strategy (default 20)")
    b.add_argument(
        "--strategies", default="reinforce,random,evolution", help="comma-separated (default: all three)"
    )
    b.add_argument("--plot", default="bench.png", metavar="PNG", help="regret plot (default: bench.png)")
    b.add_argument(
        "--json", metavar="FILE", help="also write every run's rewards (--benchmark: true values, costs)"
    )
    b.add_argument("--quiet", action="store_true", help="no line per run")
    add_config_flags(b)


def cmd_tabulate(args: argparse.Namespace) -> int:
    from rlnas.resources import default_workers

    config, space = resolve_search(args)
    workers = config.workers or default_workers()
    from rlnas.bench.tabulate import existing_keys, tabulate

    total = space.size()
    done = len(existing_keys(space, _path(args.out)))
    print(
        f"table {args.out}: {total:,} architectures, {done:,} already there; "
        f"training the rest on {config.dataset} ({config.epochs} epochs, {workers} worker(s))",
        flush=True,
    )
    load_tensorflow(args.debug)
    start = time.monotonic()

    def show(row: dict[str, Any]) -> None:
        if args.quiet:
            return
        acc = row["val_accuracy"] or "FAILED"
        arch = " ".join(f"{n}={row[n]}" for n in space.names if row[n] != "")
        print(
            f"[{row['done']}/{row['total']}] val_acc {acc[:6]}  {time.monotonic() - start:.0f}s  {arch}",
            flush=True,
        )

    stop = StopOnCtrlC()
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


def _path(text: str, flag: str = "--out", kind: str = ".csv") -> Path:
    """A file the command will write, checked before any work: not a directory, in one that exists."""
    p = Path(text)
    if not text or (p.exists() and p.is_dir()):
        raise ConfigError(f"{flag} {text!r} is a directory; give a {kind} file path")
    if not p.parent.is_dir():
        raise ConfigError(f"{flag} {text!r}: directory {str(p.parent)!r} does not exist")
    return p


def cmd_bench(args: argparse.Namespace) -> int:
    strategies = _strategies(args)
    _path(args.plot, "--plot", ".png")  # written at the end: a bad path must not cost the whole bench
    if args.json is not None:
        _path(args.json, "--json", ".json")
    if args.benchmark is not None:
        return _bench_benchmark(args, strategies)
    if args.budget_seconds is not None:
        raise ConfigError("--budget-seconds needs --benchmark (a project table keeps no train times)")
    from rlnas.resolve import resolve

    config, space = resolve(args.config, flag_values(args))
    from envs.tabular_env import TabularNasEnv
    from rlnas.bench import report as bench_report
    from rlnas.bench import runner as bench
    from rlnas.search.pool import play
    from rlnas.tables.lookup import load_table

    table = load_table(args.table, space)
    env = TabularNasEnv(table, failed_reward=config.failed_reward)
    print(
        f"{', '.join(strategies)} x {args.seeds} seeds x {args.budget} evaluations on {args.table} "
        f"({space.size():,} architectures, best val_accuracy {table.best:.4f})",
        flush=True,
    )
    if "reinforce" in strategies:
        load_tensorflow(args.debug)

    def progress(name: str, seed: int, run: Any) -> None:
        print(
            f"  {name} seed {seed}: best {run.rewards.max():.4f}, {run.unique} distinct, {run.seconds:.1f}s"
        )

    results = bench.bench(
        space,
        config,
        lambda tokens: play(env, tokens, 0)[0],  # through the env, as any agent evaluates
        table.values,
        strategies,
        args.seeds,
        args.budget,
        on_run=None if args.quiet else progress,
    )
    print(bench_report.summarize(results, table.values))
    print(f"plot: {bench_report.plot(results, table.values, args.plot)}")
    if args.json:
        _write_runs(args, results)
    return 0


def _bench_benchmark(args: argparse.Namespace, strategies: list[str]) -> int:
    """``--benchmark NAME``: the benchmark's own space, answered from its tables with their noise."""
    from rlnas.bench import hpo as bench_hpo
    from rlnas.bench import report as bench_report
    from rlnas.tables.hpo import HELD_OUT, load_table

    if args.budget_seconds is not None and not args.budget_seconds > 0:
        raise ConfigError(f"--budget-seconds must be positive, got {args.budget_seconds:g}")
    config = _benchmark_config(args)
    table = load_table(args.benchmark)  # a bad name or a missing extra: one line naming the fix
    time_budget = "" if args.budget_seconds is None else f" or {args.budget_seconds:g} simulated seconds"
    print(
        f"{', '.join(strategies)} x {args.seeds} seeds x {args.budget} evaluations{time_budget} on "
        f"{table.name} ({table.space.size():,} architectures; {table.metric}, {table.direction}; best "
        f"true mean {table.best:.4g}; each evaluation one stored training seed)"
        + (" [held out: report on it, never tune on it]" if table.name in HELD_OUT else ""),
        flush=True,
    )
    if "reinforce" in strategies:
        load_tensorflow(args.debug)

    def progress(name: str, seed: int, run: Any) -> None:
        value = bench_hpo.true_values(table, [run])[0][-1]
        shown = f"{value:.4f}" if table.maximize else f"{value:.4g}"
        print(
            f"  {name} seed {seed}: incumbent {table.metric} {shown} (true mean), {run.unique} "
            f"distinct of {run.rewards.size}, {run.costs.sum() / 3600:.1f} h simulated, {run.seconds:.1f}s"
        )

    results = bench_hpo.bench_table(
        table, config, strategies, args.seeds, args.budget, budget_seconds=args.budget_seconds,
        on_run=None if args.quiet else progress,
    )  # fmt: skip
    print(bench_hpo.summarize_table(table, results, budget_seconds=args.budget_seconds))
    print(f"plot: {bench_report.plot(results, table.reward(table.true), args.plot)}")
    if args.json:
        doc = bench_hpo.runs_json(table, results, budget=args.budget, budget_seconds=args.budget_seconds)
        _write_json(args.json, doc)
    return 0


def _benchmark_config(args: argparse.Namespace) -> Any:
    """The strategies' settings of ``--config`` and flags; the space is the benchmark's own."""
    from rlnas.config import read_toml
    from rlnas.resolve import resolve

    if args.config is not None and "space" in read_toml(args.config):
        raise ConfigError(
            f"--benchmark {args.benchmark} brings its own space; remove the [space] table from {args.config}"
        )
    return resolve(args.config, flag_values(args)).config


def _strategies(args: argparse.Namespace) -> list[str]:
    """The strategies of ``--strategies``, with ``--budget`` and ``--seeds`` checked."""
    from rlnas.config import STRATEGIES
    from rlnas.errors import did_you_mean
    from rlnas.settings import ONESHOT

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for name in strategies:
        if name not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {name!r} in --strategies; allowed: {', '.join(STRATEGIES)}"
                + did_you_mean(name, STRATEGIES)
            )
        if name in ONESHOT:
            raise ConfigError(
                f"{name} trains one supernet, not children one by one: bench compares strategies that "
                "propose children; search with `rlnas search --strategy {name}`"
            )
    if not strategies:
        raise ConfigError("--strategies is empty; name at least one of " + ", ".join(STRATEGIES))
    from rlnas.settings.bounds import SIZE_LIMITS

    for flag, value in (("--budget", args.budget), ("--seeds", args.seeds)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
        if value > SIZE_LIMITS["bench_runs"]:  # every run's rewards are held in memory
            raise ConfigError(f"{flag} must be at most {SIZE_LIMITS['bench_runs']}, got {value}")
    if "tpe" in strategies:
        import importlib.util

        from rlnas.tables.hpo import EXTRA_HINT

        if importlib.util.find_spec("optuna") is None:  # before any strategy has run
            raise ConfigError(f"strategy 'tpe' needs the optional package optuna: {EXTRA_HINT}")
    return strategies


def _write_runs(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """``--json``: every run's rewards, for plots of one's own."""
    runs = {k: [r.rewards.tolist() for r in v] for k, v in results.items()}
    _write_json(args.json, {"table": args.table, "budget": args.budget, "runs": runs})


def _write_json(path: str, doc: dict[str, Any]) -> None:
    import json

    Path(path).write_text(json.dumps(doc))
    print(f"runs: {path}")
