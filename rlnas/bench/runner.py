"""Benchmarking search strategies on a lookup table: running each strategy over seeds.

On a tabular benchmark (every architecture's validation accuracy known in advance) a search costs
milliseconds per evaluation, so strategies can be compared over many seeds, the way NAS-Bench-101/201
papers do: every proposal counts as one evaluation, repeats included. The runner drives each strategy
through the search loop's own I/O-free :class:`rlnas.search.schedule.Schedule` and depends only on a
``reward_fn(tokens)`` and the array of all the table's values, so it works with any table; the
statistics, the summary and the plot are :mod:`rlnas.bench.report`.

A ``reward_fn`` may also answer an :class:`Outcome` (observed reward, true reward, seconds of training),
as the field's noisy tables do (:mod:`rlnas.bench.hpo`): the strategy is told the observed reward, and
the regret is measured on the *true* reward of the incumbent (the architecture with the best observed
reward so far). A plain float is its own true reward and costs nothing, so on a project table both
are the best reward found so far, as before.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from rlnas.config import SearchConfig
from rlnas.errors import ConfigError
from rlnas.models.child import Status
from rlnas.run.trial import Trial
from rlnas.search.schedule import Job, Schedule
from rlnas.space import SearchSpace
from rlnas.strategies import Strategy, make_strategy


class Outcome(NamedTuple):
    """One evaluation on a noisy table: what the strategy is told, what it really is, what it cost."""

    reward: float  # observed: one stored training seed
    true: float  # the architecture's true reward (mean over the stored seeds)
    cost: float  # seconds of training charged for it
    failed: bool = False  # the child failed when the table was made (its reward: the failed reward)


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
            book.accept(job, _table_trial(job, job.index // batch, out))
        tokens, rewards, _, statuses = book.pop_complete().told()
        strategy.tell(tokens, rewards, statuses=statuses)
    return _run(book, outcomes, start)


def _outcome(answer: float | Outcome, failed_reward: float) -> Outcome:
    """A reward function's answer as an Outcome; a NaN is a child that failed when the table was made,
    rewarded (observed and true) ``failed_reward`` as the search loop rewards a failed child, and
    marked failed."""
    out = answer if isinstance(answer, Outcome) else Outcome(float(answer), float(answer), 0.0)
    if math.isnan(out.reward):
        true = failed_reward if math.isnan(out.true) else out.true
        return Outcome(failed_reward, true, out.cost, failed=True)
    return out


def _run(book: Schedule, outcomes: dict[int, Outcome], start: float) -> Run:
    trials = sorted(book.trials, key=lambda t: t.index)
    unique = len({t.key for t in trials})
    rows = [outcomes[t.index] for t in trials]
    rewards = np.array([t.reward for t in trials])
    true = np.array([o.true for o in rows], np.float64)
    costs = np.array([o.cost for o in rows], np.float64)
    return Run(rewards, unique, time.perf_counter() - start, true, costs)


def _table_trial(job: Job, update: int, out: Outcome) -> Trial:
    """A table lookup as a trial: one that failed when the table was made is failed here too (its
    reward is already ``failed_reward``), so that the strategy is told so, as the search loop tells it."""
    return Trial(
        index=job.index, update=update, tokens=(), key=job.key, architecture={}, reward=out.reward,
        status=Status.FAILED if out.failed else Status.OK,
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
    best = float(known_values(all_values).max())
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
    top = float(true_of(run).max())
    if top > best + 1e-12:
        raise ConfigError(
            f"{name} seed {seed} got reward {top!r} above the table's best {best!r}; "
            "reward_fn and all_values must come from the same table"
        )


def known_values(all_values: np.ndarray) -> np.ndarray:
    """The table's values without NaN (children that failed when it was made)."""
    values = np.asarray(all_values, np.float64).ravel()
    values = values[~np.isnan(values)]
    if not values.size:
        raise ValueError("all_values holds no known value")
    return values


def rewards_of(run: Run | np.ndarray) -> np.ndarray:
    return run.rewards if isinstance(run, Run) else np.asarray(run, np.float64)


def true_of(run: Run | np.ndarray) -> np.ndarray:
    """Each evaluation's true reward (a bare reward array, or a Run without them, is noise-free)."""
    return run.true if isinstance(run, Run) and run.true is not None else rewards_of(run)
