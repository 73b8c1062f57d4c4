"""ENAS's settings and strategy, over the numpy supernet double (tests/supernet_double.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rlnas.config import make_config
from rlnas.errors import ConfigError, RunError
from rlnas.settings import OWNER, EnasSettings
from rlnas.strategies.enas import EnasStrategy
from tests.supernet_double import DoubleSupernet, blobs, double_space

SPACE = double_space()
X, Y = blobs(64)
XV, YV = blobs(32, seed=1)
LR_TOKEN = SPACE["lr"].index(1e-3)


def _strategy(steps_per_epoch: int = 4, seed: int = 0, **settings) -> EnasStrategy:
    base = {"enas_paths": 3, "enas_controller_steps": 4, "enas_candidates": 12, **settings}
    net = DoubleSupernet(SPACE, (4, 4), 3, seed=seed)
    return EnasStrategy(SPACE, EnasSettings(**base), net, steps_per_epoch=steps_per_epoch, seed=seed)


def _steps(s: EnasStrategy, n: int) -> list[dict[str, float]]:
    return [s.step(X[:16], Y[:16], XV[:16], YV[:16]) for _ in range(n)]


# -- settings ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"enas_epochs": 0}, r"^enas_epochs must be positive, got 0$"),
        ({"enas_warmup": -1}, r"^enas_warmup must be a whole number >= 0 \(0: no warm-up\), got -1$"),
        ({"enas_controller_steps": 1.5}, r"^enas_controller_steps must be a whole number >= 0 .*got 1.5$"),
        ({"enas_paths": 0}, r"^enas_paths must be positive, got 0$"),
        ({"enas_entropy": -0.1}, r"^enas_entropy must be >= 0, got -0.1$"),
        ({"enas_controller_lr": 0}, r"^enas_controller_lr must be positive, got 0$"),
        ({"enas_baseline_decay": 1.0}, r"^enas_baseline_decay must be in \[0, 1\), got 1.0$"),
        ({"enas_path_dropout": 1.5}, r"^enas_path_dropout must be in \[0, 1\], got 1.5$"),
        ({"enas_path_dropout": True}, r"^enas_path_dropout must be in \[0, 1\], got True$"),
        ({"enas_lr": "fast"}, r"^enas_lr must be a number, got 'fast'$"),
        ({"enas_momentum": 1}, r"^enas_momentum must be in \[0, 1\), got 1$"),
        ({"enas_candidates": 2**20}, r"^enas_candidates must be at most 65536, got 1048576$"),
        ({"enas_top_k": 0}, r"^enas_top_k must be positive, got 0$"),
    ],
)
def test_each_bad_setting_is_one_line_naming_it(values, message):
    with pytest.raises(ConfigError, match=message):
        EnasSettings(**values)
    with pytest.raises(ConfigError, match=message):  # as a flag or a [search] key too
        make_config(values)


def test_settings_are_read_flat_and_from_their_table_and_owned_by_enas():
    assert make_config(enas_epochs=3).enas.enas_epochs == 3
    assert make_config({"enas": {"enas_top_k": 2}}).enas.enas_top_k == 2
    assert {OWNER[f.name] for f in dataclasses.fields(EnasSettings)} == {"enas"}
    with pytest.raises(ConfigError, match=r"^enas_lr is a setting of enas, not of reinforce"):
        make_config({"reinforce": {"enas_lr": 0.1}})
    assert make_config(strategy="darts").strategy == "darts"


# -- the strategy ------------------------------------------------------------------------------------
def test_every_row_has_a_column_per_decision_and_the_fixed_ones_take_the_supernets_values():
    s = _strategy()
    rows = np.vstack([s.sample(50), s.uniform(50)])
    assert rows.shape == (100, len(SPACE))
    assert set(rows[:, SPACE.names.index("lr")]) == {LR_TOKEN}
    assert len({tuple(r) for r in rows[:, :3]}) > 5  # the shared decisions vary
    assert s.controller.vocab_sizes == (2, 3, 2)  # the controller decides the shared ones only


def test_training_paths_are_drawn_from_the_policy_not_its_argmax():
    s, twin = _strategy(), _strategy()
    _steps(s, 1)
    trained = [tokens for kind, tokens in s.supernet.calls if kind == "train"]
    assert trained == [tuple(twin.sample(1)[0])]  # the controller's next sample, from its own generator
    _steps(s, 20)
    paths = {tokens for kind, tokens in s.supernet.calls if kind == "train"}
    assert len(paths) > 3


def test_the_warm_up_trains_uniform_paths_and_leaves_the_controller_alone():
    s = _strategy(enas_warmup=5)
    before = [w.numpy().copy() for w in s.controller.trainable_variables]
    warm = _steps(s, 5)
    assert all(
        x["supernet/uniform_path"] == 1.0 and not any(k.startswith("controller/") for k in x) for x in warm
    )
    assert all(
        np.array_equal(a, w.numpy()) for a, w in zip(before, s.controller.trainable_variables, strict=True)
    )
    after = _steps(s, 4)
    assert {x["supernet/uniform_path"] for x in after} == {0.0}
    assert sum("controller/reward" in x for x in after) == 4


def test_controller_updates_are_spread_evenly_over_the_epoch():
    s = _strategy(steps_per_epoch=10, enas_controller_steps=3)
    updates = ["controller/loss" in x for x in _steps(s, 20)]
    assert sum(updates[:10]) == sum(updates[10:]) == 3
    assert updates[:10] == updates[10:]
    more = _strategy(steps_per_epoch=2, enas_controller_steps=5)  # more updates than steps: several a step
    calls = len(more.supernet.calls)
    _steps(more, 2)
    assert sum(kind == "accuracy" for kind, _ in more.supernet.calls[calls:]) == 5 * 3


def test_path_dropout_trains_uniform_paths_that_fraction_of_the_time():
    always = _steps(_strategy(enas_path_dropout=1.0, enas_controller_steps=0), 10)
    assert {x["supernet/uniform_path"] for x in always} == {1.0}
    some = _steps(_strategy(enas_path_dropout=0.5, enas_controller_steps=0), 40)
    assert 5 < sum(x["supernet/uniform_path"] for x in some) < 35


def test_the_controller_step_rewards_shared_weight_accuracy_on_the_validation_minibatch():
    s = _strategy(steps_per_epoch=1, enas_controller_steps=1)
    (x,) = _steps(s, 1)
    scored = [tokens for kind, tokens in s.supernet.calls if kind == "accuracy"]
    assert len(scored) == 3  # enas_paths
    rewards = [s.supernet.accuracy(XV[:16], YV[:16], np.array(t)) for t in scored]
    assert x["controller/reward"] == pytest.approx(np.mean(rewards))
    assert x["controller/reward_max"] == pytest.approx(max(rewards))


def test_candidates_are_distinct_sampled_architectures_best_first():
    s = _strategy()
    _steps(s, 8)
    found = s.candidates(4, XV, YV)
    assert 1 <= len(found) <= 4
    keys = [SPACE.key(c.tokens) for c in found]
    assert len(set(keys)) == len(keys)
    scores = [c.shared_accuracy for c in found]
    assert scores == sorted(scores, reverse=True)
    assert scores == [s.supernet.accuracy(XV, YV, c.tokens) for c in found]
    assert all(c.tokens[SPACE.names.index("lr")] == LR_TOKEN for c in found)


def test_save_and_restore_continue_exactly(tmp_path):
    s = _strategy(enas_path_dropout=0.3)
    _steps(s, 6)
    s.save(tmp_path / "ck", {"epoch": 1})
    s.save(tmp_path / "ck", {"epoch": 2})  # replaces the first: one checkpoint kept
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["2", "latest"]
    restored = _strategy(
        seed=5, enas_path_dropout=0.3
    )  # other weights and generators: all replaced by the checkpoint
    assert restored.restore(tmp_path / "ck") == {"epoch": 2}
    assert _steps(restored, 6) == _steps(s, 6)
    ours, theirs = s.candidates(3, XV, YV), restored.candidates(3, XV, YV)
    assert [(c.tokens.tolist(), c.shared_accuracy) for c in ours] == [
        (c.tokens.tolist(), c.shared_accuracy) for c in theirs
    ]


def test_restore_refuses_a_directory_without_a_checkpoint(tmp_path):
    with pytest.raises(RunError, match=r"holds no completed ENAS checkpoint$"):
        _strategy().restore(tmp_path)


def test_a_supernet_that_neither_shares_nor_fixes_a_decision_is_a_bug_said_so():
    net = DoubleSupernet(SPACE, (4, 4), 3, seed=0)
    net.fixed = {}
    with pytest.raises(ValueError, match=r"neither shares nor fixes decision 'lr'"):
        EnasStrategy(SPACE, EnasSettings(), net, steps_per_epoch=1)
