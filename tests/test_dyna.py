"""Tests for the history settings: novel proposals, the reward model and its Dyna steps, the
risk-seeking objective; each off by default, each keeping the resume contract."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from rlnas.config import PLAIN_REINFORCE, SearchConfig, make_config
from rlnas.errors import ConfigError
from rlnas.policy import gradient as policy_gradient
from rlnas.policy.reward_model import RewardModel, one_hot
from rlnas.space import Decision, SearchSpace
from rlnas.strategies import make_strategy
from rlnas.strategies.reinforce import HISTORY_KEY
from tests.test_strategies import tiny_space

needs_sklearn = pytest.mark.skipif(not find_spec("sklearn"), reason="the reward model needs scikit-learn")
SMALL = {"lstm_units": 8, "lstm_layers": 1, "strategy": "reinforce"}


def grid(values: int = 4, decisions: int = 3) -> SearchSpace:
    return SearchSpace([Decision(f"d{i}", tuple(range(values)), "int") for i in range(decisions)])


def reward_of(tokens: np.ndarray) -> np.ndarray:
    """A smooth landscape with its peak at all-3 tokens."""
    return np.asarray(tokens, np.float64).sum(axis=1) / 10


def test_risk_seeking_keeps_only_the_top_of_the_memory() -> None:
    adv = policy_gradient.risk_seeking_advantages(np.array([1.0, 5.0, 9.0]), np.arange(11.0), 0.2)
    assert adv.tolist() == [0.0, 0.0, 1.0]  # q = the 0.8 quantile of 0..10 = 8


@pytest.mark.parametrize(
    "field,value",
    [
        ("model_steps", -1),
        ("explore_mix", 1.5),
        ("risk_seeking", 1.0),
        ("novel_only", "yes"),
        ("model_pool", 0),
        ("model_select", "greedy"),
        ("mutant_share", -0.1),
        ("pqt_k", -1),
        ("model_min_fit", 1),
        ("model_linear", -1),
        ("mutant_parents", 0),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        make_config(**{field: value})


def test_plain_reinforce_leaves_the_checkpoint_as_it_was(tmp_path: Path) -> None:
    """Zoph & Le's settings write the checkpoint that plain REINFORCE always wrote (old runs resume)."""
    space = grid()
    strategy = make_strategy(make_config(**SMALL, controller="factorized", **PLAIN_REINFORCE), space)
    assert not strategy.uses_history
    tokens = strategy.ask(4).tokens
    strategy.tell(tokens, reward_of(tokens))
    strategy.save(tmp_path / "c.npz", {})
    assert HISTORY_KEY not in strategy.controller.restore(tmp_path / "c.npz")


def test_novel_only_never_repeats_until_the_space_is_exhausted() -> None:
    space = tiny_space()  # 8 architectures
    strategy = make_strategy(make_config(**SMALL, novel_only=True, seed=2), space)
    keys = []
    for _ in range(2):
        tokens = strategy.ask(4).tokens
        strategy.tell(tokens, np.zeros(4))
        keys += [space.key(t) for t in tokens]
    assert len(set(keys)) == 8
    assert len(strategy.ask(4).tokens) == 4  # exhausted: repeats after all, still a full batch


@needs_sklearn
def test_reward_model_fits_and_knows_what_it_has_not_seen() -> None:
    space = grid(values=5, decisions=4)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 5, (60, 4))
    x = one_hot(space, tokens, np.ones_like(tokens, bool))
    assert x.sum(axis=1).tolist() == [4.0] * 60
    model = RewardModel(space, trees=16, seed=0)
    model.fit(x, reward_of(tokens))
    mean, spread = model.predict(x)
    assert np.corrcoef(mean, reward_of(tokens))[0, 1] > 0.9
    assert spread.min() >= 0


@needs_sklearn
@pytest.mark.parametrize("seed", range(5))
def test_ridge_members_see_an_additive_landscape_from_few_evaluations(seed: int) -> None:
    """12 evaluations of 625 architectures: the ridge members' mean ranks all 625 better than the
    trees' does, and its argmax is near the peak; the members are the trees, then the ridge
    regressions, and a refit on the same rows gives the same model."""
    space = grid(values=5, decisions=4)
    tokens = np.random.default_rng(seed).integers(0, 5, (12, 4))
    every = np.array(np.meshgrid(*[range(5)] * 4)).reshape(4, -1).T
    truth = reward_of(every)  # 0.0 .. 1.6, additive

    def fitted() -> np.ndarray:
        model = RewardModel(space, trees=4, seed=0, linear=6)
        model.fit(model.encode(tokens, np.ones_like(tokens, bool)), reward_of(tokens))
        return model.per_tree(model.encode(every, np.ones_like(every, bool)))

    members = fitted()
    assert members.shape == (10, len(every))
    trees, ridge = members[:4].mean(axis=0), members[4:].mean(axis=0)
    assert np.corrcoef(ridge, truth)[0, 1] > np.corrcoef(trees, truth)[0, 1]
    assert truth[np.argmax(ridge)] >= 1.3
    np.testing.assert_array_equal(fitted(), members)


@needs_sklearn
@pytest.mark.parametrize("controller", ["factorized", pytest.param("lstm", marks=pytest.mark.slow)])
def test_model_steps_find_the_peak_and_resume_exactly(controller: str, tmp_path: Path) -> None:
    space = grid(values=4, decisions=3)  # 64 architectures
    c = make_config(**SMALL, controller=controller, model_steps=3, novel_only=True, explore_mix=0.25)
    a = make_strategy(c, space)
    best = []
    for _ in range(5):
        tokens = a.ask(4).tokens
        a.tell(tokens, reward_of(tokens))
        best.append(reward_of(tokens).max())
    a.save(tmp_path / "c.npz", {"step": 5})
    b = make_strategy(c, space)
    assert b.restore(tmp_path / "c.npz") == {"step": 5}
    np.testing.assert_array_equal(a.ask(4).tokens, b.ask(4).tokens)
    assert max(best) >= 0.8  # within 1 of the peak 0.9 after 20 of 64 evaluations


def test_risk_seeking_and_mixing_run_without_a_model() -> None:
    space = grid()
    c = make_config(**SMALL, risk_seeking=0.25, explore_mix=0.5, model_steps=0)
    strategy = make_strategy(c, space)
    for _ in range(3):
        proposal = strategy.ask(4)
        assert proposal.log_probs is None or np.all(np.isfinite(proposal.log_probs))
        strategy.tell(proposal.tokens, reward_of(proposal.tokens))
    assert len(strategy.history.rewards) == 12


@needs_sklearn
def test_thompson_batch_is_novel_distinct_and_resumes_exactly(tmp_path: Path) -> None:
    space = grid(values=4, decisions=3)
    c = make_config(**SMALL, controller="factorized", model_steps=1, novel_only=True, model_select="thompson")
    a = make_strategy(c, space)
    keys = []
    for _ in range(6):
        tokens = a.ask(4).tokens
        a.tell(tokens, reward_of(tokens))
        keys += [space.key(t) for t in tokens]
    assert len(set(keys)) == 24  # every slot of every batch a new architecture
    a.save(tmp_path / "c.npz", {})
    b = make_strategy(c, space)
    b.restore(tmp_path / "c.npz")
    np.testing.assert_array_equal(a.ask(4).tokens, b.ask(4).tokens)


def test_mutant_share_one_fills_the_mix_with_neighbours_of_the_best() -> None:
    space = grid(values=6, decisions=4)
    c = make_config(
        **SMALL, controller="factorized", explore_mix=1.0, mutant_share=1.0, novel_only=True, model_steps=0
    )
    strategy = make_strategy(c, space)
    first = strategy.ask(4).tokens
    strategy.tell(first, reward_of(first))
    parents = {tuple(t) for t in first}
    for t in strategy.ask(4).tokens:  # each one decision away from an evaluated row
        assert min(sum(a != b for a, b in zip(t, p, strict=True)) for p in parents) == 1


def test_mutant_parents_one_mutates_only_the_best() -> None:
    space = grid(values=6, decisions=4)
    c = make_config(
        **SMALL, controller="factorized", explore_mix=1.0, mutant_share=1.0, novel_only=True, model_steps=0,
        mutant_parents=1,
    )  # fmt: skip
    strategy = make_strategy(c, space)
    first = strategy.ask(4).tokens
    strategy.tell(first, reward_of(first))
    best = first[np.argmax(reward_of(first))]
    for t in strategy.ask(4).tokens:
        assert sum(a != b for a, b in zip(t, best, strict=True)) == 1


@needs_sklearn
@pytest.mark.parametrize("min_fit", [4, 8])
def test_model_min_fit_is_when_the_model_first_imagines(min_fit: int) -> None:
    space = grid(values=4, decisions=3)
    c = make_config(**SMALL, controller="factorized", model_steps=2, novel_only=True, model_min_fit=min_fit)
    strategy = make_strategy(c, space)
    thought = []
    for _ in range(3):
        tokens = strategy.ask(4).tokens
        strategy.tell(tokens, reward_of(tokens))
        thought.append(strategy.think() is not None)
    assert thought == [min_fit <= 4, True, True]


def test_priority_queue_raises_the_probability_of_the_best_found() -> None:
    space = grid(values=4, decisions=3)
    c = make_config(**SMALL, controller="factorized", seed=1, **PLAIN_REINFORCE)
    plain, pqt = make_strategy(c, space), make_strategy(c.with_settings(pqt_k=2), space)
    tokens = pqt.ask(8).tokens
    rewards = reward_of(tokens)
    best = tokens[np.argsort(rewards)[-1:]]
    for strategy in (plain, pqt):
        for _ in range(5):
            strategy.tell(tokens, rewards)
    after = {
        name: float(s.controller.log_prob(best)[0].numpy().sum())
        for name, s in (("plain", plain), ("pqt", pqt))
    }
    assert (
        after["pqt"] > after["plain"] + 0.3
    )  # imitating the best five times, beyond the gradient alone (+0.45)


@needs_sklearn
def test_think_while_children_train_changes_nothing_but_when(tmp_path: Path) -> None:
    """The search loop calls think() after it starts a batch; a benchmark never does: same batches,
    and a checkpoint written between a tell and the loop's think resumes to the very same run."""
    space = grid(values=4, decisions=3)
    c = make_config(**SMALL, controller="factorized", model_steps=2, novel_only=True)
    looped, plain = make_strategy(c, space), make_strategy(c, space)
    resumed = make_strategy(c, space)
    for k in range(5):
        a, b = looped.ask(4).tokens, plain.ask(4).tokens
        np.testing.assert_array_equal(a, b)
        if k >= 3:
            np.testing.assert_array_equal(resumed.ask(4).tokens, a)
            assert resumed.think() is not None  # the checkpoint's imagined steps were still to do
            resumed.tell(a, reward_of(a))
        assert (looped.think() is None) == (k < 2)  # nothing to imagine before the first fit (8 rows)
        looped.tell(a, reward_of(a))
        plain.tell(b, reward_of(b))
        if k == 2:
            looped.save(tmp_path / "c.npz", {})
            resumed.restore(tmp_path / "c.npz")


@needs_sklearn
def test_ordinal_features_rank_numeric_decisions_only() -> None:
    space = SearchSpace(
        [
            Decision("units", (64, 16, 32), "int"),  # ranks 2, 0, 1 whatever the order listed
            Decision("act", ("relu", "tanh", "elu"), "choice"),
            Decision("flag", (0, 1), "int"),  # two values: the one-hot already says it all
        ]
    )
    model = RewardModel(space, ordinal=True)
    tokens = np.array([[0, 1, 1], [1, 0, 0], [2, 2, 1]])
    masks = np.array([[True, True, True], [True, True, True], [False, True, True]])
    x = model.encode(tokens, masks)
    assert x.shape == (3, 3 + 3 + 2 + 1)
    assert x[:, -1].tolist() == [1.0, 0.0, -1.0]  # 64 is the largest; an inactive decision is -1
    np.testing.assert_array_equal(x[:, :-1], one_hot(space, tokens, masks))


def test_the_default_learns_from_every_evaluation() -> None:
    """The default: reward model, novel proposals, mutants and uniform draws, the best predicted
    mean then Thompson draws in each batch."""
    c = SearchConfig()
    own = c.reinforce
    assert (own.model_steps, own.novel_only, own.explore_mix, own.model_select) == (5, True, 0.5, "mixed")
    strategy = make_strategy(make_config(**SMALL), grid())
    assert strategy.model is not None and strategy.uses_history
