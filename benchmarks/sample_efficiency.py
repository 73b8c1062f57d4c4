"""Sample efficiency on lookup tables: REINFORCE settings vs random search and regularized evolution.

Every strategy runs ``--seeds`` times with ``--budget`` evaluations on a table written by
``rlnas tabulate``, through the tabular env (exactly what ``rlnas bench`` does). For each REINFORCE
variant (a set of config overrides) it reports the mean final regret, its difference from random
search with a 95% Welch interval, and the median number of evaluations to reach the table's top 1%
and 0.1% (a seed that never gets there counts as budget + 1), as a ratio to random search's.

    python benchmarks/sample_efficiency.py --table benchmarks/tables/mnist_5k_mlp.csv \\
        --config benchmarks/tables/mlp_coarse.toml --seeds 20 --budget 200 --out NAME

Writes benchmarks/results/lookup_tables/NAME.md and NAME.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import table_figures, write_report

from envs.tabular_env import TabularNasEnv
from rlnas.bench import runner as bench
from rlnas.config import load_config
from rlnas.quiet import quiet_tensorflow
from rlnas.search.pool import play
from rlnas.tables.lookup import load_table

ALIASES = {
    "controller": "controller",
    "m": "archs_per_update",
    "lr": "controller_lr",
    "baseline": "baseline_decay",
    "entropy": "entropy_weight",
    "tanh": "tanh_constant",
    "temperature": "temperature",
    "layers": "lstm_layers",
    "units": "lstm_units",
}
"""Short names for the settings a variant overrides, as in ``m=4/lr=0.005/baseline=0.8``."""

DEFAULT_VARIANTS = "defaults,m=4/lr=0.01,m=4/lr=0.02,m=8/lr=0.01,m=8/lr=0.02"
"""The defaults against larger controller steps and batches."""


def parse_variant(name: str) -> dict[str, float | str]:
    """``defaults`` -> {}; ``m=4/lr=0.01`` -> {"archs_per_update": 4, "controller_lr": 0.01}."""
    if name == "defaults":
        return {}
    overrides: dict[str, float | str] = {}
    for part in name.split("/"):
        key, _, value = part.partition("=")
        if key not in ALIASES or not value:
            raise SystemExit(
                f"bad variant {name!r}: use NAME=VALUE parts joined by '/', NAME one of {list(ALIASES)}"
            )
        if key == "controller":
            overrides[key] = value
        else:
            number = float(value)
            overrides[ALIASES[key]] = int(number) if key in ("m", "layers", "units") else number
    return overrides


def row(name: str, runs: list, random_runs: list, values: np.ndarray) -> dict:
    out = {
        "variant": name,
        **table_figures([r.rewards for r in runs], [r.rewards for r in random_runs], values),
    }
    out["unique"] = float(np.mean([r.unique for r in runs]))
    return out


def _arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help="comma-separated variants, e.g. defaults,m=8/lr=0.01"
    )
    p.add_argument("--out", default="sample_efficiency")
    return p.parse_args()


def _report(args: argparse.Namespace, size: int, best: float, seconds: float, rows: list[dict]) -> list[str]:
    """The Markdown report: what ran, how to read it, one line a strategy."""
    return [
        f"# Sample efficiency on {args.table}",
        "",
        f"{size:,} architectures, best val_accuracy {best:.4f}; {args.seeds} seeds x "
        f"{args.budget} evaluations each (repeats count); {seconds:.0f}s in all.",
        "Regret = table best - best found after the budget. Evals = median evaluations to reach the top "
        "1% / 0.1% of the table (a seed that never does counts as budget + 1); ratio = that / random "
        "search's, with a 95% bootstrap interval over seeds. Diff = mean regret minus random search's, "
        "95% Welch interval (below 0 is better).",
        "",
        "| strategy | mean regret | diff vs random [95%] | evals top 1% (ratio [95%], seeds) | "
        "evals top 0.1% (ratio [95%], seeds) | distinct archs |",
        "|---|---|---|---|---|---|",
        *(_line(r) for r in rows),
    ]


def main() -> None:
    args = _arguments()
    quiet_tensorflow()
    config, space, _ = load_config(args.config)
    table = load_table(args.table, space)
    env = TabularNasEnv(table)

    def reward(tokens) -> float:
        return play(env, tokens, 0)[0]

    def run(name: str, **overrides) -> list:
        c = config.with_settings(**overrides)
        return bench.bench(space, c, reward, table.values, [name], args.seeds, args.budget)[name]

    start = time.monotonic()
    baselines = {name: run(name) for name in ("random", "evolution")}
    rows = [row(n, r, baselines["random"], table.values) for n, r in baselines.items()]
    for name in args.variants.split(","):
        rows.append(
            row(
                f"reinforce {name}",
                run("reinforce", **parse_variant(name)),
                baselines["random"],
                table.values,
            )
        )
        print(_line(rows[-1]), flush=True)
    lines = _report(args, space.size(), table.best, time.monotonic() - start, rows)
    write_report(args.out, lines, rows)


def _line(r: dict) -> str:
    d = r["diff"]
    return (
        f"| {r['variant']} | {r['regret']:.4f} | {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}] | "
        f"{_evals(r, 'top0.01')} | {_evals(r, 'top0.001')} | {r['unique']:.0f} |"
    )


def _evals(r: dict, key: str) -> str:
    low, high = r[f"{key}_ratio_ci"]
    return f"{r[key]:.0f} ({r[f'{key}_ratio']:.2f} [{low:.2f}, {high:.2f}], {r[f'{key}_reached']})"


if __name__ == "__main__":
    main()
