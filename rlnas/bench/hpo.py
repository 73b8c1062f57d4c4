"""``rlnas bench --benchmark``: strategies on the field's noisy tables (NAS-Bench-201, HPOLib FCNet).

Evaluated as reality is: each evaluation returns one stored training seed, drawn from a generator of
the run's own (``default_rng([seed, NOISE_SALT])``, so that a run reproduces and the noise does not
share a stream with the strategy's own seed), and a repeat may score differently. The score is the
regret of the incumbent (the architecture with the best *observed* reward so far) measured on its
*true* mean over seeds, in the metric's own units, whichever its direction (and as log10 for MSE, as
HPOLib results are compared). ``budget_seconds`` charges each evaluation its stored train time, as
the NAS-Bench-201 paper's simulated-time budget does, one worker at a time.

Every table is summarised against the peers users pick instead of rlnas: the difference of each
strategy's regret from TPE's and from regularized evolution's, with Welch intervals, when they ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlnas.bench.report import evals_to_reach, incumbent, top_threshold
from rlnas.bench.runner import DEFAULT_BUDGETS, TOP_FRACTIONS, Outcome, RewardFn, Run, bench_runs
from rlnas.config import SearchConfig
from rlnas.stats import diff_ci, mean_ci
from rlnas.tables.hpo import HpoTable
from rlnas.text import format_table

NOISE_SALT = 19
"""Mixed into each run's noise generator, so that the noise stream is not the strategy's own."""
TIME_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
"""Where a simulated-time budget is summarised."""
PEERS = ("tpe", "evolution")
"""The strategies every other is compared with, when they are in the run."""


def noisy_reward_fn(table: HpoTable, seed: int) -> RewardFn:
    """One run's evaluations: a stored seed of the architecture drawn from the run's own generator."""
    rng = np.random.default_rng([seed, NOISE_SALT])

    def evaluate(tokens: np.ndarray) -> Outcome:
        value, cost = table.evaluate(tokens, rng)
        true = table.reward(table.true_value(tokens))
        return Outcome(float(table.reward(value[0])), float(true), float(cost[0]))

    return evaluate


def bench_table(
    table: HpoTable,
    config: SearchConfig,
    strategies: Sequence[str],
    seeds: int | Sequence[int],
    budget: int,
    batch: int | None = None,
    *,
    budget_seconds: float | None = None,
    on_run: Callable[[str, int, Run], None] | None = None,
) -> dict[str, list[Run]]:
    """Each strategy once per seed on ``table``: at most ``budget`` evaluations, and within
    ``budget_seconds`` of simulated training when given. Rewards are the table's (minus an MSE)."""
    best = float(table.reward(table.best))
    return bench_runs(
        table.space, config, lambda seed: noisy_reward_fn(table, seed), best, strategies, seeds, budget,
        batch, on_run=on_run, budget_seconds=budget_seconds,
    )  # fmt: skip


def true_values(table: HpoTable, runs: Sequence[Run]) -> list[np.ndarray]:
    """Each run's incumbent true value after each evaluation, in the metric's units."""
    return [np.asarray(table.value_of_reward(incumbent(r)), np.float64) for r in runs]


# -- regret matrices -------------------------------------------------------------------------------
def regret_at_evals(table: HpoTable, runs: Sequence[Run], evals: Sequence[int]) -> np.ndarray:
    """(seeds, len(evals)) regret after k evaluations; a run that a time budget ended sooner keeps the
    regret it ended with (its incumbent stands)."""
    curves = [table.regret(v) for v in true_values(table, runs)]
    return np.array([[c[min(k, c.size) - 1] for k in evals] for c in curves])


def regret_at_times(table: HpoTable, runs: Sequence[Run], times: Sequence[float]) -> np.ndarray:
    """(seeds, len(times)) regret of the incumbent among the evaluations finished by each simulated
    time (one worker, evaluations in turn); NaN before a run's first evaluation finished."""
    out = np.full((len(runs), len(times)), np.nan)
    for i, (run, values) in enumerate(zip(runs, true_values(table, runs), strict=True)):
        costs = run.costs if run.costs is not None else np.zeros(values.size)
        done = np.searchsorted(np.cumsum(costs), times, side="right")
        out[i, done > 0] = table.regret(values[done[done > 0] - 1])
    return out


# -- the summary -----------------------------------------------------------------------------------
def _median_to(table: HpoTable, runs: Sequence[Run], fraction: float) -> str:
    """Median evaluations until the incumbent's true value is in the table's top ``fraction``."""
    t = top_threshold(table.reward(table.true), fraction)
    hits = [evals_to_reach(incumbent(r), t) for r in runs]
    median = float(np.median([math.inf if h is None else h for h in hits]))
    shown = f">{max(r.rewards.size for r in runs)}" if math.isinf(median) else f"{median:g}"
    return f"{shown} ({sum(h is not None for h in hits)}/{len(hits)})"


def _blocks(
    title: str, matrices: dict[str, np.ndarray], labels: Sequence[str], level: float, spec: str
) -> list[str]:
    """A table of mean regret per strategy and column, then one of each strategy's difference from
    each peer in the run (Welch intervals; negative: lower regret than the peer), a pair of peers
    once."""

    def cell(m: float, lo: float, hi: float) -> str:
        return f"{m:{spec}} [{lo:{spec}}, {hi:{spec}}]"

    def mean(x: np.ndarray) -> str:  # '-' where a seed has no value (no evaluation yet)
        return "-" if np.isnan(x).any() else cell(*mean_ci(x, level))

    def diff(a: np.ndarray, b: np.ndarray) -> str:
        return "-" if np.isnan(a).any() or np.isnan(b).any() else cell(*diff_ci(a, b, level))

    columns = range(len(labels))
    rows = [[name, *(mean(m[:, j]) for j in columns)] for name, m in matrices.items()]
    out = ["", title, format_table(["strategy", *labels], rows)]
    shown: list[str] = []
    for peer in (p for p in PEERS if p in matrices and len(matrices) > 1):
        ref, others = matrices[peer], [n for n in matrices if n != peer and n not in shown]
        shown.append(peer)
        if others:
            rows = [[n, *(diff(matrices[n][:, j], ref[:, j]) for j in columns)] for n in others]
            out += ["", f"{title} minus {peer}'s (Welch {level:.0%} interval; negative: better than {peer})"]
            out.append(format_table(["strategy", *labels], rows))
    return out


def _facts(table: HpoTable, results: dict[str, list[Run]], simulated: bool) -> str:
    """Per strategy: evaluations to the top 0.1% / 1%, distinct architectures, time spent."""
    header = [f"evals to top {f:.1%}" for f in sorted(TOP_FRACTIONS)]
    header += ["evals", "simulated h", "unique", "s/run"] if simulated else ["unique", "s/run"]
    rows = []
    for name, runs in results.items():
        row = [name, *(_median_to(table, runs, f) for f in sorted(TOP_FRACTIONS))]
        if simulated:
            row.append(f"{np.mean([r.rewards.size for r in runs]):.1f}")
            row.append(f"{np.mean([r.costs.sum() for r in runs if r.costs is not None]) / 3600:.1f}")
        row += [f"{np.mean([r.unique for r in runs]):.1f}", f"{np.mean([r.seconds for r in runs]):.2f}"]
        rows.append(row)
    return format_table(["strategy", *header], rows)


def summarize_table(
    table: HpoTable,
    results: dict[str, list[Run]],
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    *,
    budget_seconds: float | None = None,
    level: float = 0.95,
) -> str:
    """Regret (metric units; also log10 for a minimised metric) at the evaluation budgets, and at
    fractions of ``budget_seconds`` when given, each with its ``level`` t-interval and its difference
    from TPE's and evolution's; then the median evaluations to the top 0.1% and 1% (true values)."""
    if not results or not all(results.values()):
        raise ValueError("summarize_table needs at least one strategy, each with at least one run")
    longest = max(r.rewards.size for runs in results.values() for r in runs)
    evals = sorted({b for b in budgets if b < longest} | {longest})
    labels = [f"@{k}" for k in evals]
    regret = {n: regret_at_evals(table, runs, evals) for n, runs in results.items()}
    unit = table.metric
    seeds = ", ".join(f"{name} {len(runs)}" for name, runs in results.items())
    tops = ", ".join(f"top {f:.1%}: {unit} {_top_value(table, f):.4g}" for f in sorted(TOP_FRACTIONS))
    spec = ".4f" if table.maximize else ".3g"  # accuracies as fractions; MSEs span decades
    lines = [
        f"{table.name}: {unit} ({table.direction}); best true mean {table.best:.4g} of "
        f"{table.true.size:,} architectures ({tops})",
        "each evaluation returns one stored training seed; regret = the incumbent's true mean (best "
        f"observed so far) against the best, in {unit}; mean [{level:.0%} t-interval] over seeds ({seeds})",
        *_blocks(f"regret ({unit}) after k evaluations", regret, labels, level, spec),
    ]
    if not table.maximize:
        logs = {n: np.log10(np.maximum(m, table.regret_floor)) for n, m in regret.items()}
        lines += _blocks(f"log10 regret ({unit}) after k evaluations", logs, labels, level, ".2f")
    if budget_seconds is not None:
        times = [f * budget_seconds for f in TIME_FRACTIONS]
        at = {n: regret_at_times(table, runs, times) for n, runs in results.items()}
        title = f"regret ({unit}) at simulated training time ('-': a seed with no result by then)"
        lines += _blocks(title, at, [f"@{t:,.0f}s" for t in times], level, spec)
    lines += ["", "evaluations until the incumbent's true mean is in the top (median; seeds that got there)"]
    lines.append(_facts(table, results, budget_seconds is not None))
    return "\n".join(lines)


def _top_value(table: HpoTable, fraction: float) -> float:
    return float(table.value_of_reward(top_threshold(table.reward(table.true), fraction)))


def runs_json(table: HpoTable, results: dict[str, list[Run]], **settings: Any) -> dict[str, Any]:
    """``--json``: per strategy and seed, the observed rewards (as strategies were told), the true
    value of each evaluated architecture (metric units) and its simulated train seconds."""

    def each(f: Callable[[Run], np.ndarray]) -> dict[str, list[list[float]]]:
        return {name: [f(r).tolist() for r in runs] for name, runs in results.items()}

    return {
        "benchmark": table.name, "metric": table.metric, "direction": table.direction,
        "best": table.best, **settings,
        "runs": each(lambda r: r.rewards),
        "true": each(lambda r: np.asarray(table.value_of_reward(r.true))),
        "costs": each(lambda r: r.costs),
    }  # fmt: skip
