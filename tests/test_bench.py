"""Tests for rlnas.bench.runner: statistics on hand-made numbers, and every strategy run on a tiny table."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from rlnas.bench.report import (
    evals_to_reach,
    evals_to_top,
    incumbent_true,
    median_ratio_ci,
    plot,
    regret_curve,
    summarize,
    top_threshold,
)
from rlnas.bench.runner import Outcome, Run, bench, run_strategy
from rlnas.config import SearchConfig, make_config
from rlnas.errors import ConfigError
from rlnas.models.child import Status
from rlnas.space import Decision, SearchSpace
from rlnas.stats import diff_ci, mean_ci, t_quantile
from rlnas.strategies import make_strategy

CONFIG = make_config(lstm_units=8, lstm_layers=1, population_size=6, tournament_size=3)


def tiny_table() -> tuple[SearchSpace, dict[str, float]]:
    """A conditional space of 20 architectures, each with a fixed random 'accuracy'."""
    space = SearchSpace(
        [
            Decision("a", (0, 1, 2, 3), "int"),
            Decision("b", (0, 1, 2), "int"),
            Decision("c", (0, 1), "int", {"a": (2, 3)}),
        ]
    )
    keys = sorted({space.key(t) for t in itertools.product(*(range(s) for s in space.vocab_sizes))})
    values = np.random.default_rng(0).uniform(0.5, 0.95, len(keys)).round(4)
    return space, dict(zip(keys, values.tolist(), strict=True))


# -- statistics by hand ----------------------------------------------------------------------------
def test_regret_curve_and_evals_to_reach_by_hand() -> None:
    rewards = np.array([0.5, 0.3, 0.8, 0.7, 0.9])
    np.testing.assert_allclose(regret_curve(rewards, 1.0), [0.5, 0.5, 0.2, 0.2, 0.1])
    assert evals_to_reach(rewards, 0.8) == 3
    assert evals_to_reach(rewards, 0.5) == 1
    assert evals_to_reach(rewards, 0.95) is None
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        regret_curve(np.array([]), 1.0)


def test_top_threshold() -> None:
    values = np.arange(1000.0)
    assert top_threshold(values, 0.01) == 990.0  # the ten best are 990..999
    assert top_threshold(values, 0.001) == 999.0
    assert top_threshold(np.array([0.2, 0.9, 0.5]), 0.01) == 0.9  # at least the best architecture
    assert top_threshold(np.array([0.2, np.nan, 0.5]), 0.5) == 0.5  # a failed child's NaN is no value
    with pytest.raises(ValueError, match="no known value"):
        top_threshold(np.array([np.nan]), 0.01)


def test_t_quantile_matches_printed_tables() -> None:
    for level, df, t in [(0.95, 1, 12.706), (0.95, 4, 2.776), (0.95, 19, 2.093), (0.99, 10, 3.169)]:
        assert t_quantile(level, df) == pytest.approx(t, abs=1e-3)
    assert t_quantile(0.95, 10**6) == pytest.approx(1.960, abs=1e-3)
    assert t_quantile(0.95, 6) < t_quantile(0.95, 5.5) < t_quantile(0.95, 5)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="degrees of freedom must be >= 1"):
        t_quantile(0.95, 0.5)


def test_mean_ci_of_a_known_sample() -> None:
    m, lo, hi = mean_ci([1, 2, 3, 4, 5])
    # mean 3, sd sqrt(2.5), se sqrt(0.5); t(0.975, 4) = 2.7764
    assert (m, lo, hi) == pytest.approx(
        (3.0, 3 - 2.7764 * math.sqrt(0.5), 3 + 2.7764 * math.sqrt(0.5)), abs=1e-4
    )
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    m, lo, hi = mean_ci([0.7])
    assert m == 0.7 and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        mean_ci([])


def test_mean_ci_covers_the_true_mean_95_percent_of_the_time() -> None:
    samples = np.random.default_rng(0).normal(1.0, 2.0, size=(4000, 5))
    covered = [lo <= 1.0 <= hi for _, lo, hi in map(mean_ci, samples)]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.012)  # a normal (z) interval would give ~0.88


def test_diff_ci_welch_by_hand() -> None:
    # Equal sizes and variances: Welch's df is 2(n-1) = 8; se = sqrt(0.5 + 0.5) = 1; t(0.975, 8) = 2.3060.
    d, lo, hi = diff_ci([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
    assert (d, lo, hi) == pytest.approx((-2.0, -4.306, 0.306), abs=1e-3)
    assert diff_ci([1.0, 1.0], [0.5, 0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="at least one value on each side"):
        diff_ci([], [1.0])


# -- summary and plot on hand-made runs ------------------------------------------------------------
def test_summarize_hand_made_runs() -> None:
    all_values = np.arange(1001) / 1000  # best 1.0; top 1% >= 0.99, top 0.1% >= 0.999
    results = {
        "random": [np.array([0.5, 0.6, 0.7, 0.8]), np.array([0.6, 0.6, 0.7, 0.9])],
        "evolution": [np.array([0.5, 0.995, 0.995, 1.0]), np.array([0.5, 0.9, 0.99, 0.99])],
    }
    text = summarize(results, all_values, budgets=(2, 25))
    assert "regret@2" in text and "regret@4" in text and "regret@25" not in text
    random_row = next(line for line in text.splitlines() if line.startswith("random"))
    evolution_row = next(line for line in text.splitlines() if line.startswith("evolution"))
    # random: regret after 2 evaluations 0.4 and 0.4 -> a zero-width interval; never in the top 1%.
    assert "0.4000 [0.4000, 0.4000]" in random_row and ">4 (0/2)" in random_row
    # evolution: top 1% after 2 and 3 evaluations (median 2.5); top 0.1% by one seed only (median beyond 4).
    assert "2.5 (2/2)" in evolution_row and ">4 (1/2)" in evolution_row
    # final regret: evolution (0, 0.01) minus random (0.2, 0.1): mean -0.145
    assert "-0.1450 [" in evolution_row
    # top 1%: evolution's median 2.5 over random's 5 (never: the budget + 1); resampled medians 2..3 / 5.
    assert "top 1% evals / random's" in text and "0.50 [0.40, 0.60]" in evolution_row
    with pytest.raises(ValueError, match="each with at least one run"):
        summarize({"random": []}, all_values)


def test_evals_to_top_counts_a_run_that_never_got_there_as_its_length_plus_one() -> None:
    runs = [np.array([0.1, 0.9, 0.95]), np.array([0.1, 0.2, 0.3]), Run(np.array([0.99]), 1, 0.0)]
    np.testing.assert_array_equal(evals_to_top(runs, 0.9), [2, 4, 1])


def test_median_ratio_ci_on_hand_made_samples() -> None:
    assert median_ratio_ci([10, 10, 10], [40, 40, 40]) == (0.25, 0.25, 0.25)  # no spread, no doubt
    ratio, low, high = median_ratio_ci([5, 10, 15, 20, 200], [10, 20, 30, 40, 201])
    assert ratio == pytest.approx(0.5) and low < 0.5 < high  # spread: the interval is wide
    assert median_ratio_ci([5, 10, 15, 20, 200], [10, 20, 30, 40, 201]) == (ratio, low, high)  # seeded
    same = median_ratio_ci(np.arange(1, 21), np.arange(1, 21))
    assert same[0] == 1.0 and same[1] < 1.0 < same[2]
    # more seeds, a narrower interval around the same ratio
    wide, narrow = (median_ratio_ci(np.linspace(10, 30, n), np.linspace(20, 60, n)) for n in (7, 101))
    assert wide[0] == narrow[0] == 0.5 and narrow[2] - narrow[1] < (wide[2] - wide[1]) / 2
    with pytest.raises(ValueError, match="two non-empty 1-D samples"):
        median_ratio_ci([], [1.0])
    with pytest.raises(ValueError, match="level must be in"):
        median_ratio_ci([1.0], [1.0], level=1.0)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    all_values = np.linspace(0.0, 1.0, 101)
    results = {
        "random": [np.array([0.5, 0.7, 1.0]), np.array([0.2, 0.9, 0.9])],
        "one": [np.array([0.1, 1, 1])],
    }
    path = plot(results, all_values, tmp_path / "regret.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- running strategies on a table -----------------------------------------------------------------
class Recording:
    """A strategy wrapper that records how many rows each tell got, and their statuses."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.told, self.statuses = inner, inner.name, [], []

    def ask(self, n):
        return self.inner.ask(n)

    def tell(self, tokens, rewards, log_probs=None, statuses=None):
        self.told.append(len(tokens))
        self.statuses.append(list(statuses))
        return self.inner.tell(tokens, rewards, log_probs, statuses)


def test_run_strategy_counts_every_evaluation_and_cuts_the_last_batch() -> None:
    space, table = tiny_table()
    strategy = Recording(make_strategy(SearchConfig(strategy="random"), space))
    run = run_strategy(strategy, lambda t: table[space.key(t)], budget=10, batch=4, space=space)
    assert strategy.told == [4, 4, 2]
    assert run.rewards.shape == (10,)
    assert set(run.rewards) <= set(table.values())
    assert 1 <= run.unique <= min(10, len(table))
    assert strategy.statuses[0] == [Status.OK] * 4
    failing = run_strategy(strategy, lambda t: math.nan, budget=3, batch=4, failed_reward=-1.0)
    np.testing.assert_array_equal(failing.rewards, [-1.0, -1.0, -1.0])  # a failed child's reward
    assert strategy.statuses[-1] == [Status.FAILED] * 3  # and the strategy is told it failed
    with pytest.raises(ConfigError, match="budget must be a positive whole number, got 0"):
        run_strategy(strategy, lambda t: 0.0, budget=0, batch=4)


def test_bench_runs_every_strategy_reproducibly(tmp_path: Path) -> None:
    space, table = tiny_table()
    values = np.array(list(table.values()))
    reward = lambda t: table[space.key(t)]  # noqa: E731
    seen: list[tuple[str, int]] = []
    results = bench(
        space, CONFIG, reward, values, ["random", "evolution", "reinforce"], 2, budget=24, batch=4,
        on_run=lambda name, seed, run: seen.append((name, seed)),
    )  # fmt: skip
    assert seen == [(n, s) for n in ("random", "evolution", "reinforce") for s in (0, 1)]
    for runs in results.values():
        assert [len(r.rewards) for r in runs] == [24, 24]
        assert all(isinstance(r, Run) and r.rewards.max() <= values.max() for r in runs)
    assert not np.array_equal(results["random"][0].rewards, results["random"][1].rewards)
    again = bench(space, CONFIG, reward, values, ["random", "evolution"], [1], budget=24, batch=4)
    for name in ("random", "evolution"):
        np.testing.assert_array_equal(again[name][0].rewards, results[name][1].rewards)
    text = summarize(results, values)
    assert all(name in text for name in results) and "regret@24" in text
    assert plot(results, values, tmp_path / "bench.png").exists()


def test_bench_rejects_a_reward_above_the_table() -> None:
    space, table = tiny_table()
    values = np.array(list(table.values()))
    with pytest.raises(ConfigError, match="above the table's best"):
        bench(space, CONFIG, lambda t: 2.0, values, ["random"], 1, budget=4)


def test_incumbent_true_follows_the_best_observed_reward() -> None:
    observed = np.array([0.5, 0.9, 0.7, 0.9, 0.95])
    true = np.array([0.6, 0.4, 0.8, 0.99, 0.5])  # the 0.9 draws were lucky; the first 0.9 wins the tie
    np.testing.assert_array_equal(incumbent_true(observed, true), [0.6, 0.4, 0.4, 0.4, 0.5])
    np.testing.assert_array_equal(incumbent_true(observed, observed), np.maximum.accumulate(observed))


def test_run_strategy_with_outcomes_keeps_true_values_and_stops_on_time() -> None:
    space, table = tiny_table()
    noisy = lambda t: Outcome(table[space.key(t)] + 0.01, table[space.key(t)], 10.0)  # noqa: E731
    strategy = Recording(make_strategy(SearchConfig(strategy="random"), space))
    run = run_strategy(strategy, noisy, budget=10, batch=4, space=space, budget_seconds=65.0)
    assert run.rewards.size == 6 and strategy.told == [4]  # the 7th would end at 70 s; nothing more told
    np.testing.assert_allclose(run.rewards, run.true + 0.01)
    np.testing.assert_array_equal(run.costs, np.full(6, 10.0))
    plain = run_strategy(strategy, lambda t: table[space.key(t)], budget=3, batch=4, space=space)
    np.testing.assert_array_equal(plain.true, plain.rewards)  # a float is its own true reward
    np.testing.assert_array_equal(plain.costs, np.zeros(3))
