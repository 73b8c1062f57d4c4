"""Statistics and reports of strategy runs on a lookup table (:mod:`rlnas.bench.runner`): regret, evaluations
to the top of the table, their intervals, the printed summary and the plot.

The score after ``k`` evaluations is the *regret*: the table's best value minus the true value of the
incumbent (the architecture with the best observed reward so far). Confidence intervals are Student-t
intervals (:mod:`rlnas.stats`, no SciPy); ratios of medians get a percentile bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlnas.bench.runner import DEFAULT_BUDGETS, TOP_FRACTIONS, Results, Run, known_values, rewards_of, true_of
from rlnas.stats import diff_ci, mean_ci, t_quantile
from rlnas.text import format_table


# -- statistics ------------------------------------------------------------------------------------
def regret_curve(rewards: np.ndarray, best_possible: float) -> np.ndarray:
    """Best possible minus the best reward found so far, after each evaluation."""
    rewards = np.asarray(rewards, np.float64)
    if rewards.ndim != 1 or not rewards.size:
        raise ValueError(f"rewards must be a non-empty 1-D array, got shape {rewards.shape}")
    return best_possible - np.maximum.accumulate(rewards)


def incumbent_true(rewards: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The true reward of the incumbent after each evaluation: the architecture with the best observed
    reward so far (the earliest on a tie), as a user who trusts the measurements would pick it. On a
    noise-free table it is the best reward so far."""
    rewards = np.asarray(rewards, np.float64)
    best = np.maximum.accumulate(rewards)
    new = np.flatnonzero(np.r_[True, best[1:] > best[:-1]])
    return np.asarray(true, np.float64)[new[np.searchsorted(new, np.arange(rewards.size), "right") - 1]]


def evals_to_reach(rewards: np.ndarray, threshold: float) -> int | None:
    """Number of evaluations until a reward >= ``threshold`` first appears (1-based), or None if never."""
    hits = np.flatnonzero(np.asarray(rewards) >= threshold)
    return int(hits[0]) + 1 if hits.size else None


def evals_to_top(runs: Sequence[Run | np.ndarray], threshold: float) -> np.ndarray:
    """Evaluations each run needed until its incumbent's true reward reached ``threshold``; a run that
    never did counts as its length + 1 (a lower bound on what it would have needed, so a strategy that
    rarely gets there is flattered)."""
    return np.array(
        [evals_to_reach(incumbent(r), threshold) or len(rewards_of(r)) + 1 for r in runs], np.float64
    )


def median_ratio_ci(
    mine: Sequence[float] | np.ndarray,
    theirs: Sequence[float] | np.ndarray,
    level: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """median(mine) / median(theirs) and a percentile bootstrap interval: (ratio, low, high).

    Why: the median evaluations to the top 1% rests on the few seeds around the middle, so with 20
    seeds a ratio of 0.7 or 1.4 can be luck; the interval says how far apart two strategies really
    are. Seeds are resampled with replacement within each group, independently (the groups are
    independent runs); the generator is seeded, so a report is reproducible.
    """
    a, b = np.asarray(mine, np.float64), np.asarray(theirs, np.float64)
    if a.ndim != 1 or b.ndim != 1 or not a.size or not b.size:
        raise ValueError("median_ratio_ci needs two non-empty 1-D samples")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ratio = float(np.median(a) / np.median(b))
    rng = np.random.default_rng(seed)
    boot_a = np.median(a[rng.integers(0, a.size, (resamples, a.size))], axis=1)
    boot_b = np.median(b[rng.integers(0, b.size, (resamples, b.size))], axis=1)
    low, high = np.quantile(boot_a / boot_b, [(1 - level) / 2, (1 + level) / 2])
    return ratio, float(low), float(high)


def top_threshold(all_values: np.ndarray, fraction: float) -> float:
    """The value an architecture needs to be in the top ``fraction`` of the table (at least the best one)."""
    values = np.sort(known_values(all_values))[::-1]
    return float(values[max(1, math.ceil(fraction * values.size)) - 1])


# -- reports ---------------------------------------------------------------------------------------
def incumbent(run: Run | np.ndarray) -> np.ndarray:
    """A run's :func:`incumbent_true` curve."""
    return incumbent_true(rewards_of(run), true_of(run))


def _regrets(runs: Sequence[Run | np.ndarray], best: float) -> np.ndarray:
    """(seeds, evaluations) regret curves of the incumbent's true reward, cut to the shortest run so
    every column has every seed."""
    curves = [best - incumbent(r) for r in runs]
    n = min(len(c) for c in curves)
    return np.stack([c[:n] for c in curves])


def _median_evals(runs: Sequence[Run | np.ndarray], threshold: float) -> str:
    """Median evaluations to reach ``threshold``, counting a seed that never did as beyond the budget."""
    hits = [evals_to_reach(incumbent(r), threshold) for r in runs]
    reached = [h for h in hits if h is not None]
    median = float(np.median([math.inf if h is None else h for h in hits]))
    budget = min(len(rewards_of(r)) for r in runs)
    shown = f">{budget}" if math.isinf(median) else f"{median:g}"
    return f"{shown} ({len(reached)}/{len(hits)})"


def _interval(m: float, lo: float, hi: float) -> str:
    return f"{m:.4f} [{lo:.4f}, {hi:.4f}]"


def summarize(
    results: Results, all_values: np.ndarray, budgets: Sequence[int] = DEFAULT_BUDGETS, level: float = 0.95
) -> str:
    """A table per strategy: mean regret with its interval at each budget, evaluations to the top 1% and
    0.1% of the table (median over seeds; a seed that never got there counts as beyond the budget), and
    the ratio of the median evaluations to the top 1% to random search's (bootstrap interval: below 1 is
    faster than random) and the final regret's difference from random search (Welch interval; negative is
    better than random).
    """
    if not results or not all(results.values()):
        raise ValueError("summarize needs at least one strategy, each with at least one run")
    best = float(known_values(all_values).max())
    regrets = {name: _regrets(runs, best) for name, runs in results.items()}
    length = min(r.shape[1] for r in regrets.values())
    shown = sorted({b for b in budgets if b < length} | {length})
    thresholds = [(f, top_threshold(all_values, f)) for f in TOP_FRACTIONS]
    header = [f"regret@{b}" for b in shown] + [f"evals to top {f:.1%}" for f, _ in thresholds]
    if "random" in results:
        header.append(f"top {TOP_FRACTIONS[0]:.0%} evals / random's")
    header += ["final - random", "unique", "s/run"]
    rows = []
    for name, runs in results.items():
        r = regrets[name]
        row = [_interval(*mean_ci(r[:, b - 1], level)) for b in shown]
        row += [_median_evals(runs, t) for _, t in thresholds]
        if "random" in results:
            t = thresholds[0][1]
            ratio = median_ratio_ci(evals_to_top(runs, t), evals_to_top(results["random"], t), level)
            row.append(f"{ratio[0]:.2f} [{ratio[1]:.2f}, {ratio[2]:.2f}]" if name != "random" else "-")
        row.append(_interval(*diff_ci(r[:, length - 1], regrets["random"][:, length - 1], level))
                   if "random" in regrets and name != "random" else "-")  # fmt: skip
        full = [x for x in runs if isinstance(x, Run)]
        row.append(f"{np.mean([x.unique for x in full]):.1f}" if full else "-")
        row.append(f"{np.mean([x.seconds for x in full]):.2f}" if full else "-")
        rows.append([name, *row])
    seeds = ", ".join(f"{name} {len(runs)}" for name, runs in results.items())
    top = ", ".join(f"top {f:.1%} >= {t:.4f}" for f, t in thresholds)
    intro = (
        f"regret = table best ({best:.4f} of {known_values(all_values).size:,} architectures)"
        " - best found so far; "
        f"mean [{level:.0%} t-interval] over seeds ({seeds}); {top}"
    )
    return intro + "\n\n" + format_table(["strategy", *header], rows)


def plot(results: Results, all_values: np.ndarray, path: str | Path, level: float = 0.95) -> Path:
    """Mean regret vs evaluations with ``level`` t-bands, one line per strategy, log y, saved to ``path``.

    A log axis cannot show a regret of 0 (the best architecture found), so values are clipped at a
    floor: a tenth of the smallest gap between distinct values of the table, named on the axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = float(known_values(all_values).max())
    gaps = np.diff(np.unique(known_values(all_values)))
    floor = float(gaps.min()) / 10 if gaps.size else 1e-6
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for name, runs in results.items():
            r = _regrets(runs, best)
            x = np.arange(1, r.shape[1] + 1)
            mean = r.mean(axis=0)
            if r.shape[0] > 1:
                half = t_quantile(level, r.shape[0] - 1) * r.std(axis=0, ddof=1) / math.sqrt(r.shape[0])
                ax.fill_between(x, np.maximum(mean - half, floor), np.maximum(mean + half, floor), alpha=0.2)
            ax.plot(x, np.maximum(mean, floor), label=f"{name} ({r.shape[0]} seeds)")
        ax.set_yscale("log")
        ax.set_xlabel("evaluations (repeats included)")
        ax.set_ylabel(f"regret (clipped at {floor:.2g})")
        ax.set_title(f"mean regret with {level:.0%} intervals")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
