"""Benchmarking search strategies on a lookup table: runs, regret statistics, a summary and a plot.

On a tabular benchmark (every architecture's validation accuracy known in advance) a search costs
milliseconds per evaluation, so strategies can be compared over many seeds, the way NAS-Bench-101/201
papers do: every proposal counts as one evaluation, repeats included, and the score after ``k``
evaluations is the *regret*, the best accuracy of the table minus the best found so far.

The runner depends only on a ``reward_fn(tokens) -> float`` and the array of all the table's values,
so it works with any table. Confidence intervals are Student-t intervals; the t quantile is computed
exactly for whole degrees of freedom from the closed-form series of Abramowitz & Stegun 26.7.3/26.7.4
(no scipy), and interpolated in 1/df for Welch's fractional degrees of freedom, as printed t tables are.

A ``reward_fn`` may also answer an :class:`Outcome` (observed reward, true reward, seconds of training),
as the field's noisy tables do (:mod:`rlnas.bench_hpo`): the strategy is told the observed reward, and
the regret is measured on the *true* reward of the incumbent (the architecture with the best observed
reward so far). A plain float is its own true reward and costs nothing, so on a project table both
are the best reward found so far, as before.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rlnas.batches import Job, Schedule
from rlnas.config import SearchConfig
from rlnas.errors import ConfigError
from rlnas.space import SearchSpace
from rlnas.stats import diff_ci, mean_ci, t_quantile
from rlnas.strategies import Strategy, make_strategy
from rlnas.text import format_table
from rlnas.trial import Status, Trial


class Outcome(NamedTuple):
    """One evaluation on a noisy table: what the strategy is told, what it really is, what it cost."""

    reward: float  # observed: one stored training seed
    true: float  # the architecture's true reward (mean over the stored seeds)
    cost: float  # seconds of training charged for it


RewardFn = Callable[[np.ndarray], "float | Outcome"]
DEFAULT_BUDGETS = (25, 50, 100, 200)
TOP_FRACTIONS = (0.01, 0.001)


class Run(NamedTuple):
    """One strategy run on a table: the reward of every evaluation, in order, and what it cost."""

    rewards: np.ndarray  # observed, as the strategy was told
    unique: int  # distinct architectures among the evaluations
    seconds: float  # wall-clock time of the whole run (the strategy's own overhead, on a table)
    true: np.ndarray | None = None  # each evaluated architecture's true reward (None: = rewards)
    costs: np.ndarray | None = None  # simulated training seconds of each evaluation


Results = Mapping[str, Sequence[Run | np.ndarray]]
"""Strategy name -> one run (or bare reward array) per seed."""


# -- running ---------------------------------------------------------------------------------------
def run_strategy(
    strategy: Strategy,
    reward_fn: RewardFn,
    budget: int,
    batch: int,
    *,
    space: SearchSpace | None = None,
    failed_reward: float = 0.0,
    budget_seconds: float | None = None,
) -> Run:
    """Ask for whole batches and evaluate until ``budget`` evaluations, as the search loop does.

    The last batch is cut short at the budget and ``tell`` gets only its evaluated rows, exactly what
    a time budget does to the search loop.

    Args:
        space: used to count distinct architectures by their canonical key; without it, distinct token
            rows are counted (which over-counts when inactive positions differ).
        failed_reward: the reward of an architecture whose value is NaN (a child that failed when the
            table was made), as the search loop rewards a failed child.
        budget_seconds: a simulated-time budget (one worker): evaluations are charged their
            :class:`Outcome` cost in turn, and the run ends before the first one that would finish
            after it (its result would come too late), even within ``budget``.
    """
    for label, value in (("budget", budget), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{label} must be a positive whole number, got {value!r}")
    start = time.perf_counter()
    key: Callable[[np.ndarray], str] = space.key if space is not None else lambda t: str(t.tolist())
    # The search loop's bookkeeping, without its I/O: every proposal is evaluated (reuse=False).
    book = Schedule(key, trials=budget, m=batch, pipeline=1, reuse=False)
    outcomes: dict[int, Outcome] = {}
    clock, limit = 0.0, math.inf if budget_seconds is None else budget_seconds
    while len(book.trials) < budget:
        book.push(strategy.ask(batch), stale=False)
        while isinstance(job := book.next_job(), Job):
            out = _outcome(reward_fn(job.tokens), failed_reward)
            if clock + out.cost > limit:
                return _run(book, outcomes, start)  # the time is up: nothing more is told
            clock += out.cost
            outcomes[job.index] = out
            book.accept(job, _table_trial(job, job.index // batch, out.reward))
        tokens, rewards, _ = book.pop_complete().told()
        strategy.tell(tokens, rewards)
    return _run(book, outcomes, start)


def _outcome(answer: float | Outcome, failed_reward: float) -> Outcome:
    """A reward function's answer as an Outcome; a NaN is a child that failed when the table was made,
    rewarded (observed and true) ``failed_reward`` as the search loop rewards a failed child."""
    out = answer if isinstance(answer, Outcome) else Outcome(float(answer), float(answer), 0.0)
    if math.isnan(out.reward):
        return Outcome(failed_reward, failed_reward if math.isnan(out.true) else out.true, out.cost)
    return out


def _run(book: Schedule, outcomes: dict[int, Outcome], start: float) -> Run:
    trials = sorted(book.trials, key=lambda t: t.index)
    unique = len({t.key for t in trials})
    rows = [outcomes[t.index] for t in trials]
    rewards = np.array([t.reward for t in trials])
    true = np.array([o.true for o in rows], np.float64)
    costs = np.array([o.cost for o in rows], np.float64)
    return Run(rewards, unique, time.perf_counter() - start, true, costs)


def _table_trial(job: Job, update: int, reward: float) -> Trial:
    """A table lookup as a trial (one that failed when the table was made is an OK trial here: its
    reward is already ``failed_reward``, and nothing in a bench run reads the status)."""
    return Trial(
        index=job.index, update=update, tokens=(), key=job.key, architecture={}, reward=reward,
        status=Status.OK,
    )  # fmt: skip


def bench(
    space: SearchSpace,
    config: SearchConfig,
    reward_fn: RewardFn,
    all_values: np.ndarray,
    strategies: Sequence[str],
    seeds: int | Sequence[int],
    budget: int,
    batch: int | None = None,
    *,
    on_run: Callable[[str, int, Run], None] | None = None,
) -> dict[str, list[Run]]:
    """Run each strategy once per seed (``seeds`` = S means seeds 0..S-1) on the table.

    Args:
        config: every other setting of the strategies; ``strategy`` and ``seed`` are replaced per run;
            a NaN value of ``reward_fn`` (a failed child) is rewarded ``config.failed_reward``.
        all_values: the value of every architecture of the table (its maximum is the best possible;
            NaN, for failed children, is ignored).
        batch: architectures asked per ``tell`` (default ``config.archs_per_update``).
        on_run: called after each run (progress display).

    Raises:
        ConfigError: a reward above the table's best (``reward_fn`` and ``all_values`` disagree).
    """
    best = float(_known(all_values).max())
    return bench_runs(
        space, config, lambda seed: reward_fn, best, strategies, seeds, budget, batch, on_run=on_run
    )


def bench_runs(
    space: SearchSpace,
    config: SearchConfig,
    reward_for: Callable[[int], RewardFn],
    best: float,
    strategies: Sequence[str],
    seeds: int | Sequence[int],
    budget: int,
    batch: int | None = None,
    *,
    on_run: Callable[[str, int, Run], None] | None = None,
    budget_seconds: float | None = None,
) -> dict[str, list[Run]]:
    """:func:`bench` with a reward function per run (``reward_for(seed)``: a noisy table draws its
    noise from a generator of the run's own, so that every run reproduces), the best possible true
    reward ``best``, and a simulated-time budget (see :func:`run_strategy`).

    Raises:
        ConfigError: a true reward above ``best``; a time budget too short for a first evaluation.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    m = batch or config.archs_per_update
    results: dict[str, list[Run]] = {}
    for name in strategies:
        results[name] = []
        strategy = None
        for seed in seed_list:
            if strategy is not None and hasattr(strategy, "reset"):
                strategy.reset(seed)  # the same as a fresh one of this seed, without tracing again
            else:
                strategy = make_strategy(dataclasses.replace(config, strategy=name, seed=seed), space)
            run = run_strategy(
                strategy, reward_for(seed), budget, m, space=space, failed_reward=config.failed_reward,
                budget_seconds=budget_seconds,
            )  # fmt: skip
            _check_run(run, name, seed, best, budget_seconds)
            results[name].append(run)
            if on_run is not None:
                on_run(name, seed, run)
    return results


def _check_run(run: Run, name: str, seed: int, best: float, budget_seconds: float | None) -> None:
    if not run.rewards.size:
        raise ConfigError(
            f"--budget-seconds {budget_seconds:g} ends before {name} seed {seed}'s first evaluation "
            "finishes; give a longer time budget"
        )
    top = float(_true(run).max())
    if top > best + 1e-12:
        raise ConfigError(
            f"{name} seed {seed} got reward {top!r} above the table's best {best!r}; "
            "reward_fn and all_values must come from the same table"
        )


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
        [evals_to_reach(incumbent(r), threshold) or len(_rewards(r)) + 1 for r in runs], np.float64
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


def _known(all_values: np.ndarray) -> np.ndarray:
    """The table's values without NaN (children that failed when it was made)."""
    values = np.asarray(all_values, np.float64).ravel()
    values = values[~np.isnan(values)]
    if not values.size:
        raise ValueError("all_values holds no known value")
    return values


def top_threshold(all_values: np.ndarray, fraction: float) -> float:
    """The value an architecture needs to be in the top ``fraction`` of the table (at least the best one)."""
    values = np.sort(_known(all_values))[::-1]
    return float(values[max(1, math.ceil(fraction * values.size)) - 1])


# -- reports ---------------------------------------------------------------------------------------
def _rewards(run: Run | np.ndarray) -> np.ndarray:
    return run.rewards if isinstance(run, Run) else np.asarray(run, np.float64)


def _true(run: Run | np.ndarray) -> np.ndarray:
    """Each evaluation's true reward (a bare reward array, or a Run without them, is noise-free)."""
    return run.true if isinstance(run, Run) and run.true is not None else _rewards(run)


def incumbent(run: Run | np.ndarray) -> np.ndarray:
    """A run's :func:`incumbent_true` curve."""
    return incumbent_true(_rewards(run), _true(run))


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
    budget = min(len(_rewards(r)) for r in runs)
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
    best = float(_known(all_values).max())
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
        f"regret = table best ({best:.4f} of {_known(all_values).size:,} architectures) - best found so far; "
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

    best = float(_known(all_values).max())
    gaps = np.diff(np.unique(_known(all_values)))
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
