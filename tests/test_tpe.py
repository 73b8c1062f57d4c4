"""Tests for rlnas.strategies.tpe: valid and conditional proposals, seeding, resume, and that it learns.

The protocol tests every strategy shares (malformed batches, the resume contract, probe) run on tpe
in tests/test_strategies.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas.config import SearchConfig
from rlnas.errors import ConfigError, RunError
from rlnas.models.child import Status
from rlnas.space import Decision, SearchSpace
from rlnas.strategies import make_strategy

optuna = pytest.importorskip("optuna")

from rlnas.strategies.tpe import TPEStrategy  # noqa: E402 -- after the skip


def conditional_space() -> SearchSpace:
    return SearchSpace(
        [
            Decision("depth", (1, 2), "int"),
            Decision("width_1", (8, 16, 32), "int", {"depth": (2,)}),
            Decision("act", ("relu", "tanh")),
        ]
    )


def grid_space(decisions: int = 4, values: int = 6) -> SearchSpace:
    return SearchSpace([Decision(f"d{i}", tuple(range(values)), "int") for i in range(decisions)])


def synthetic_reward(tokens: np.ndarray) -> np.ndarray:
    """A separable bowl on grid_space, best at (4, 1, 3, 2): the kind of table TPE should exploit."""
    return -((tokens - np.array([4, 1, 3, 2])) ** 2).sum(axis=1).astype(float)


def run(strategy: object, budget: int = 48, batch: int = 4) -> np.ndarray:
    rewards = []
    while len(rewards) < budget:
        tokens = strategy.ask(batch).tokens
        r = synthetic_reward(tokens)
        strategy.tell(tokens, r)
        rewards.extend(r)
    return np.array(rewards)


def test_proposals_are_valid_and_inactive_decisions_never_reach_the_study() -> None:
    space = conditional_space()
    tpe = TPEStrategy(space, seed=0)
    for _ in range(6):  # past the 10 random start-up trials
        tokens = tpe.ask(4).tokens
        assert tokens.shape == (4, 3) and tokens.dtype == np.int64
        assert np.all((tokens >= 0) & (tokens < np.array(space.vocab_sizes)))
        tpe.tell(tokens, (tokens[:, 0] == 1).astype(float))
    for trial in tpe.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert ("width_1" in trial.params) == (trial.params["depth"] == 1)  # token 1 is depth 2


def test_make_strategy_builds_it_and_it_is_reproducible_for_a_seed() -> None:
    space = grid_space()
    a, b, c = (make_strategy(SearchConfig(strategy="tpe", seed=s), space) for s in (3, 3, 4))
    assert a.name == "tpe"
    np.testing.assert_array_equal(run(a), run(b))
    assert not np.array_equal(run(a), run(c))


def test_beats_random_on_a_small_table() -> None:
    space = grid_space()
    best = {"tpe": [], "random": []}
    for seed in range(4):
        for name in best:
            strategy = make_strategy(SearchConfig(strategy=name, seed=seed), space)
            best[name].append(run(strategy).max())
    # 48 of 1,296 cells, seeds 0-3: random's best -3, -1, -3, -2; TPE's -1 each (categorical: it
    # does not see that the values are ordered).
    assert np.mean(best["tpe"]) > np.mean(best["random"]) + 0.5, best


def test_told_batches_release_their_leftovers_and_unasked_rows_are_added() -> None:
    tpe = TPEStrategy(grid_space(), seed=0)
    first = tpe.ask(4).tokens
    second = tpe.ask(4).tokens  # pipelined: still being evaluated when the first is told
    tpe.tell(first[:2], np.array([1.0, 2.0]))  # a budget cut the first batch short
    assert sorted(a for a, _ in tpe.pending.values()) == [1, 1, 1, 1]
    tpe.tell(np.array([[5, 5, 5, 5]]), np.array([0.5]))  # never asked: added, nothing released
    states = [t.state.name for t in tpe.study.trials]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 2 and states.count("RUNNING") == 4
    tpe.tell(second, np.zeros(4))
    assert not tpe.pending


def test_a_failed_child_is_a_failed_trial_not_a_penalty_reward() -> None:
    """As an Optuna user reports an exception: TPE ignores the failure instead of learning the
    failed reward as if the architecture had scored it."""
    tpe = TPEStrategy(grid_space(), seed=0)
    rows = tpe.ask(3).tokens
    tpe.tell(rows, np.array([0.7, 0.0, 0.4]), statuses=[Status.OK, Status.FAILED, Status.OK])
    assert [t.state.name for t in tpe.study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert [t.value for t in tpe.study.trials if t.value is not None] == [0.7, 0.4]
    tpe.tell(np.array([[5, 5, 5, 5]]), np.array([0.0]), statuses=[Status.FAILED])  # never asked
    assert len(tpe.study.trials) == 3
    with pytest.raises(ValueError, match=r"one status per row, got 1 for 2 rows"):
        tpe.tell(rows[:2], np.zeros(2), statuses=[Status.OK])


def test_resume_with_a_batch_in_flight(tmp_path: Path) -> None:
    space = conditional_space()
    live = TPEStrategy(space, seed=5)
    for _ in range(3):
        tpe_rows = live.ask(4).tokens
        live.tell(tpe_rows, np.linspace(0, 1, 4))
    in_flight = live.ask(4).tokens  # asked, not yet told, when the checkpoint is written
    live.save(tmp_path / "tpe.json", {"trials": 12})
    resumed = TPEStrategy(space, seed=5)
    assert resumed.restore(tmp_path / "tpe.json") == {"trials": 12}
    for s in (live, resumed):  # the constant liar sees the in-flight batch in both
        s.tell(in_flight, np.full(4, 0.5))
    np.testing.assert_array_equal(resumed.ask(4).tokens, live.ask(4).tokens)


def test_restore_refuses_a_checkpoint_without_the_samplers_generators(tmp_path: Path) -> None:
    tpe = TPEStrategy(grid_space(), seed=0)
    tpe.save(tmp_path / "tpe.json", {})
    data = json.loads((tmp_path / "tpe.json").read_text())
    (tmp_path / "tpe.json").write_text(json.dumps(data | {"optuna": None}))
    with pytest.raises(RunError, match="cannot continue exactly"):
        TPEStrategy(grid_space(), seed=0).restore(tmp_path / "tpe.json")


def test_reset_is_a_fresh_strategy_of_that_seed() -> None:
    used = TPEStrategy(grid_space(), seed=1)
    run(used)
    used.reset(2)
    np.testing.assert_array_equal(run(used), run(TPEStrategy(grid_space(), seed=2)))


def test_missing_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"needs the optional package optuna: pip install -e '\.\[bench\]'"):
        TPEStrategy(grid_space(), seed=0)
