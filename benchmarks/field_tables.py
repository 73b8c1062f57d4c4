"""Random search, regularized evolution and TPE on one of the field's tables (NAS-Bench-201, HPOLib).

Each strategy runs ``--seeds`` times (strategy seed s; the evaluation noise from its own generator of
seed s, the same for every strategy) with a plain ask/tell loop: batches of ``--batch``, each
evaluation one stored training seed of the table, the last batch cut at the budget. The score after k
evaluations is the regret of the incumbent (the architecture with the best *observed* reward so far)
measured on its true mean over seeds, in the metric's units (and as log10 for MSE). Printed per
budget: the mean and its 95% Student-t interval, and each strategy's difference from TPE with
Welch's interval; then the median evaluations until the incumbent is in the table's top 0.1% (true
value; a seed that never gets there counts as budget + 1), the simulated training time of the
evaluations, and each strategy's own time per proposal.

    python benchmarks/field_tables.py --table nb201:cifar10 --seeds 10

Held-out tables (issue #19: NB201 cifar100/imagenet, HPOLib protein_structure/slice_localization)
are refused unless ``--held-out`` is given: they are for the final report, never for tuning.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlnas.config import SearchConfig
from rlnas.hpo_tables import HELD_OUT, TABLES, HpoTable, load_table
from rlnas.stats import diff_ci, mean_ci
from rlnas.strategies import make_strategy

STRATEGIES = ("random", "evolution", "tpe")


def run_once(table: HpoTable, name: str, seed: int, budget: int, batch: int) -> dict[str, np.ndarray]:
    """One run: per evaluation the incumbent's true value, the train time charged, and ask seconds."""
    strategy = make_strategy(SearchConfig(strategy=name, seed=seed), table.space)
    noise = np.random.default_rng(seed)
    tokens, rewards, ask_seconds = [], [], []
    while len(rewards) < budget:
        start = time.perf_counter()
        asked = strategy.ask(batch).tokens[: budget - len(rewards)]
        ask_seconds.append((time.perf_counter() - start) / batch)
        values, seconds = table.evaluate(asked, noise)
        strategy.tell(asked, table.reward(values))
        tokens.extend(asked)
        rewards.extend(zip(table.reward(values), seconds, strict=True))
    reward = np.array([r for r, _ in rewards])
    true = table.true_value(np.array(tokens))[_incumbent_index(reward)]
    return {
        "true": true,
        "train_time": np.cumsum([s for _, s in rewards]),
        "ask_seconds": np.array(ask_seconds),
    }


def _incumbent_index(reward: np.ndarray) -> np.ndarray:
    """Index of the best observed reward so far after each evaluation (the earliest on a tie)."""
    best = np.maximum.accumulate(reward)
    new = np.flatnonzero(np.r_[True, best[1:] > best[:-1]])
    return new[np.searchsorted(new, np.arange(reward.size), side="right") - 1]


def evals_to_top(table: HpoTable, true: np.ndarray, fraction: float) -> int:
    """Evaluations until the incumbent's true value is in the table's top ``fraction`` (budget + 1 if
    never)."""
    q = np.quantile(table.true, 1 - fraction if table.maximize else fraction)
    inside = true >= q if table.maximize else true <= q
    return int(np.argmax(inside)) + 1 if inside.any() else true.size + 1


def fmt(m: float, lo: float, hi: float) -> str:
    return f"{m:.4g} [{lo:.4g}, {hi:.4g}]"


def report(table: HpoTable, runs: dict[str, list[dict]], budgets: list[int]) -> str:
    head = f"{table.name}: {table.metric} ({table.direction}), best true {table.best:.6g}"
    lines = [f"{head}, {len(runs['tpe'])} seeds"]
    scales = [("regret", table.regret)]
    if not table.maximize:
        scales.append(("log10 regret", table.log10_regret))
    for label, f in scales:
        for k in budgets:
            lines.append(f"  {label} at {k}:")
            ref = [float(f(r["true"][k - 1])) for r in runs["tpe"]]
            for name, rs in runs.items():
                x = [float(f(r["true"][k - 1])) for r in rs]
                d = "" if name == "tpe" else f"   minus tpe {fmt(*diff_ci(x, ref))}"
                lines.append(f"    {name:<10} {fmt(*mean_ci(x))}{d}")
    budget = len(runs["tpe"][0]["true"])
    for name, rs in runs.items():
        top = np.median([evals_to_top(table, r["true"], 0.001) for r in rs])
        hours = np.mean([r["train_time"][-1] for r in rs]) / 3600
        ask_ms = 1000 * np.mean([r["ask_seconds"][-5:].mean() for r in rs])
        lines.append(
            f"  {name:<10} median evals to top 0.1%: {top:g} (of {budget});  simulated train time of "
            f"{budget}: {hours:.1f} h;  ask per proposal at the end: {ask_ms:.1f} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, choices=TABLES)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--batch", type=int, default=4, help="proposals per ask (rlnas's archs_per_update)")
    p.add_argument("--budgets", type=int, nargs="+", default=[50, 200])
    p.add_argument("--held-out", action="store_true", help="allow a held-out table (final reports only)")
    args = p.parse_args(argv)
    if args.table in HELD_OUT and not args.held_out:
        p.error(f"{args.table} is held out (issue #19): never tune on it; --held-out for a final report")
    table = load_table(args.table)
    start = time.perf_counter()
    runs = {
        name: [run_once(table, name, seed, args.budget, args.batch) for seed in range(args.seeds)]
        for name in STRATEGIES
    }
    print(report(table, runs, [k for k in args.budgets if k <= args.budget]))
    print(f"  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
