"""Is the LSTM what holds REINFORCE back on the lookup tables? The same REINFORCE on a plain policy.

A factorized policy has one free logit vector per decision and no recurrent state: the simplest
policy REINFORCE can train (``--controller factorized``). This script trains it
with the estimator the controller uses (moving-average baseline started at the first batch's mean,
advantage times the summed log-probability of the active decisions, Adam) on a table written by
``rlnas tabulate``, over a grid of batch sizes and step sizes, and prints the same figures as
``sample_efficiency.py``: final regret minus random search's (95% Welch interval) and the median
evaluations to the table's top 1% and 0.1% as a ratio to random search's.

Two budgets: ``repeats`` counts every sampled architecture (as ``rlnas bench`` does); ``distinct``
counts only architectures not seen before (a repeat costs no training in a real search: the reward
cache answers it), so a policy that converges is not charged for resampling what it already knows.

    python benchmarks/factorized_policy.py --table benchmarks/tables/mnist_5k_mlp.csv \\
        --config benchmarks/tables/mlp_coarse.toml --out factorized_mnist

Pure numpy: a minute or two per table. Writes benchmarks/results/lookup_tables/NAME.md and NAME.json.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import table_figures, write_report

from rlnas.config import load_config
from rlnas.space import SearchSpace
from rlnas.tables.lookup import Table, load_table

BATCHES = (2, 4, 8)
STEP_SIZES = (0.05, 0.1, 0.2, 0.4)


class Lookup:
    """Reward of a token sequence from the table (a failed child scores 0), memoised by tokens."""

    def __init__(self, table: Table) -> None:
        self.table, self.memo = table, {}

    def __call__(self, tokens: tuple[int, ...]) -> float:
        if tokens not in self.memo:
            v = self.table.val_accuracy(list(tokens))
            self.memo[tokens] = 0.0 if np.isnan(v) else v
        return self.memo[tokens]


def random_run(space: SearchSpace, reward: Lookup, seed: int, budget: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([reward(tuple(int(rng.integers(s)) for s in space.vocab_sizes)) for _ in range(budget)])


def factorized_run(
    space: SearchSpace, reward: Lookup, seed: int, budget: int, m: int, lr: float, *, distinct: bool
) -> np.ndarray:
    """Rewards in the order they were paid for; REINFORCE + Adam on per-decision logits."""
    rng = np.random.default_rng(1000 + seed)
    sizes = space.vocab_sizes
    logits = [np.zeros(s) for s in sizes]
    adam_m = [np.zeros(s) for s in sizes]
    adam_v = [np.zeros(s) for s in sizes]
    baseline: float | None = None
    paid: list[float] = []
    seen: set[str] = set()
    for step in itertools.count(1):
        probs = [np.exp(z - z.max()) / np.exp(z - z.max()).sum() for z in logits]
        batch = [tuple(int(rng.choice(len(p), p=p)) for p in probs) for _ in range(m)]
        rewards = np.array([reward(t) for t in batch])
        for t, r in zip(batch, rewards, strict=True):
            key = space.key(list(t))  # the architecture, as the reward cache sees it
            if not distinct or key not in seen:
                paid.append(r)
            seen.add(key)
        if len(paid) >= budget or step * m > 20 * budget:  # a collapsed policy stops finding new ones
            return np.array((paid + [max(paid)] * budget)[:budget])
        advantages = rewards - (rewards.mean() if baseline is None else baseline)
        for d, (z, p) in enumerate(zip(logits, probs, strict=True)):
            grad = np.zeros_like(z)  # of the loss -mean(A * log p(a)), over the active decisions
            for t, a in zip(batch, advantages, strict=True):
                if space.active_mask(t)[d]:
                    grad -= a * (np.eye(len(z))[t[d]] - p) / m
            adam_m[d] = 0.9 * adam_m[d] + 0.1 * grad
            adam_v[d] = 0.999 * adam_v[d] + 0.001 * grad**2
            z -= lr * (adam_m[d] / (1 - 0.9**step)) / (np.sqrt(adam_v[d] / (1 - 0.999**step)) + 1e-7)
        baseline = float(rewards.mean()) if baseline is None else baseline
        for r in rewards:
            baseline = 0.8 * baseline + 0.2 * float(r)
    raise AssertionError("unreachable")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--out", default="factorized_policy")
    args = p.parse_args()
    _, space, _ = load_config(args.config)
    table = load_table(args.table, space)
    reward, values, seeds = Lookup(table), table.values, range(args.seeds)
    random_runs = [random_run(space, reward, s, args.budget) for s in seeds]
    rows = [{"policy": "random", "budget": "-", **table_figures(random_runs, random_runs, values)}]
    for distinct, m, lr in itertools.product((False, True), BATCHES, STEP_SIZES):
        runs = [factorized_run(space, reward, s, args.budget, m, lr, distinct=distinct) for s in seeds]
        row = {"policy": f"factorized m={m} lr={lr}", "budget": "distinct" if distinct else "repeats"}
        rows.append(row | table_figures(runs, random_runs, values))
        print(_line(rows[-1]), flush=True)
    lines = [
        f"# A factorized policy with REINFORCE on {args.table}",
        "",
        f"{space.size():,} architectures; {args.seeds} seeds x {args.budget} evaluations. Columns as in "
        "sample_efficiency.md; budget `repeats` counts every sample, `distinct` only new architectures.",
        "",
        "| policy | budget | mean regret | diff vs random [95%] | evals top 1% (ratio) "
        "| evals top 0.1% (ratio) |",
        "|---|---|---|---|---|---|",
        *(_line(r) for r in rows),
    ]
    write_report(args.out, lines, rows)


def _line(r: dict) -> str:
    d = r["diff"]
    return (
        f"| {r['policy']} | {r['budget']} | {r['regret']:.4f} | {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}] | "
        f"{r['top0.01']:.0f} ({r['top0.01_ratio']:.2f}) | {r['top0.001']:.0f} ({r['top0.001_ratio']:.2f}) |"
    )


if __name__ == "__main__":
    main()
