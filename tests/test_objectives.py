"""Objectives (child metrics -> reward), their config syntax, the env's use of them, the skip penalty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.nas_env import NasEnv
from rlnas.errors import ConfigError
from rlnas.models.child import ChildResult, Status
from rlnas.models.objectives import METRICS, Objective, infer_direction, parse_objective
from rlnas.policy.penalties import skip_density, skip_penalty, skip_positions
from rlnas.space import conv_space, skip_space

CHILD = ChildResult(Status.OK, val_accuracy=0.9, val_loss=0.3, params=200_000, fit_seconds=2.0)


@pytest.mark.parametrize(
    "text, reward, canonical",
    [
        ("val_accuracy", 0.9, "val_accuracy"),
        ("val_accuracy:max", 0.9, "val_accuracy"),
        ("val_loss", -0.3, "val_loss"),
        ("val_loss:min", -0.3, "val_loss"),
        ("val_loss:max", 0.3, "val_loss:max"),
        ("fit_seconds", -2.0, "fit_seconds"),
        ("accuracy_cubed", 0.9**3, "accuracy_cubed"),
        (" mnas:target=100000 ", 0.9 * 2**-0.07, "mnas:target=100000,w=-0.07"),
        ("mnas:target=1e5, w=-0.5", 0.9 * 2**-0.5, "mnas:target=100000,w=-0.5"),
        ("mnas:w=0,target=400000", 0.9, "mnas:target=400000,w=0"),
    ],
)
def test_parse_and_reward(text, reward, canonical):
    objective = parse_objective(text)
    assert objective.reward(CHILD) == pytest.approx(reward)
    assert objective.reward(CHILD.to_dict()) == pytest.approx(reward)
    assert str(objective) == canonical
    assert parse_objective(str(objective)) == objective


def test_default_objective_is_validation_accuracy_and_every_metric_parses():
    assert parse_objective("val_accuracy") == Objective()
    assert {"val_accuracy", "val_loss", "params", "epochs_run"} <= set(METRICS)
    metrics = {name: float(k + 1) for k, name in enumerate(METRICS)}
    for metric in METRICS:
        sign = 1 if "accuracy" in metric else -1
        assert parse_objective(metric).reward(metrics) == sign * metrics[metric]


@pytest.mark.parametrize(
    "name, direction",
    [
        ("val_mean_absolute_error", "min"),
        ("val_mae", "min"),
        ("val_mean_squared_logarithmic_error", "min"),
        ("val_binary_crossentropy", "min"),
        ("val_auc", "max"),
        ("val_auc_1", "max"),
        ("val_precision", "max"),
        ("val_recall", "max"),
        ("val_f1_score", "max"),
        ("val_sparse_categorical_accuracy", "max"),
        ("weighted_accuracy", "max"),
        ("val_r2_score", "max"),
        ("fit_seconds", "min"),
        ("params", "min"),
    ],
)
def test_directions_are_inferred_as_keras_tuner_infers_them(name, direction):
    assert infer_direction(name) == direction
    assert parse_objective(name).direction == direction


def test_any_logged_metric_is_an_objective_and_a_missing_one_names_what_was_logged():
    child = ChildResult(Status.OK, val_accuracy=0.5, val_loss=2.0, metrics={"val_mae": 1.5, "mae": 1.2})
    assert parse_objective("val_mae").reward(child) == -1.5
    assert parse_objective("val_my_score:max").reward({**child.reported(), "val_my_score": 7}) == 7
    with pytest.raises(ConfigError, match=r"did not log 'val_auc'; it logged .*val_mae"):
        parse_objective("val_auc").reward(child)
    assert parse_objective("val_acc") == parse_objective("val_accuracy")  # keras-tuner's names
    assert parse_objective("loss") == parse_objective("train_loss")


def test_mnas_penalises_larger_children_more():
    mnas = parse_objective("mnas:target=100000")
    small, big = (mnas.reward({"val_accuracy": 0.9, "params": p}) for p in (50_000, 400_000))
    assert small > 0.9 > big


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"objective must be a non-empty string; allowed: val_accuracy, <metric>\[:min\|:max\]"),
        (
            "val_acuracy",
            r"unknown objective 'val_acuracy' \(did you mean 'val_accuracy'\?\); or, for a metric",
        ),
        (
            "val_score",
            r"cannot tell whether it is minimised or maximised; write val_score:min or val_score:max",
        ),
        (
            "val loss",
            r"objective 'val loss' is not a metric name; allowed: .* with <metric> one of val_accuracy",
        ),
        ("val_loss:down", r"objective 'val_loss:down': direction 'down' must be min or max"),
        ("accuracy_cubed:max", r"accuracy_cubed takes no options; write accuracy_cubed"),
        ("mnas", r"objective 'mnas' needs a target parameter count: mnas:target=100000"),
        (
            "mnas:targt=5",
            r"bad option 'targt=5'; write mnas:target=<params>\[,w=<w>\] \(did you mean 'target'\?\)",
        ),
        ("mnas:target", r"bad option 'target'"),
        ("mnas:target=big", r"target and w must be numbers"),
        ("mnas:target=0.5", r"target must be a whole number of parameters >= 1"),
        ("mnas:target=1000,w=0.07", r"w must be in \[-1, 0\] \(negative: a size penalty\), got 0\.07"),
    ],
)
def test_bad_objectives(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_objective(text)


def test_mnas_needs_the_childs_params():
    with pytest.raises(ConfigError, match=r"the child reported params=0; it needs > 0"):
        parse_objective("mnas:target=10").reward(ChildResult(Status.OK, val_accuracy=0.5))
    with pytest.raises(ConfigError, match=r"the child did not log 'params'; it logged val_accuracy"):
        parse_objective("mnas:target=10").reward({"val_accuracy": 0.5})


# -- the environment -----------------------------------------------------------------------------
def run_episode(env: NasEnv) -> tuple[float, dict]:
    """One episode of masked random actions, seeded: unseeded, 1 in 42 episodes drew the synthetic
    evaluator's perfect architecture (accuracy 1.0, whose cube is itself)."""
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    while True:
        _, reward, done, _, info = env.step(env.action_space.sample(mask=info["action_mask"]))
        if done:
            return reward, info


@pytest.mark.parametrize("objective", ["accuracy_cubed", parse_objective("params:min")])
def test_env_reward_is_the_objective_of_the_childs_metrics(synthetic_evaluator, objective):
    env = NasEnv(evaluator=synthetic_evaluator, objective=objective)
    reward, info = run_episode(env)
    expected = parse_objective(str(objective)).reward(info["metrics"])
    assert reward == pytest.approx(expected) and reward != info["metrics"]["val_accuracy"]


class FailingEvaluator:
    def evaluate(self, arch, seed):
        return ChildResult(Status.FAILED, val_loss=0.1, params=10, error="synthetic failure")

    def close(self) -> None:
        pass


def test_env_default_reward_is_validation_accuracy(synthetic_evaluator):
    reward, info = run_episode(NasEnv(evaluator=synthetic_evaluator))
    assert reward == info["metrics"]["val_accuracy"] > 0


@pytest.mark.parametrize("objective", ["val_accuracy", "val_loss:max", "mnas:target=10"])
def test_env_failed_child_gets_failed_reward_whatever_the_objective(objective):
    env = NasEnv(evaluator=FailingEvaluator(), objective=objective, failed_reward=-5.0)
    assert run_episode(env)[0] == -5.0


def test_env_rejects_a_bad_objective_at_construction(synthetic_evaluator):
    with pytest.raises(ConfigError, match="objective 'val acc' is not a metric name"):
        NasEnv(evaluator=synthetic_evaluator, objective="val acc")


# -- the skip-density penalty --------------------------------------------------------------------
def test_skip_positions_point_at_the_skip_decisions_true_token():
    space = skip_space(max_layers=4)
    positions = skip_positions(space)
    assert [space.decisions[k].name for k, _ in positions] == ["skip_2_0", "skip_3_0", "skip_3_1"]
    assert all(space.decisions[k].values[t] is True for k, t in positions)
    assert skip_positions(conv_space()) == []


def test_skip_penalty_is_zero_at_the_target_and_grows_away_from_it():
    assert float(skip_penalty(np.full((2, 3), 0.4))) == pytest.approx(0.0, abs=1e-6)
    near, far = (float(skip_penalty(np.full((2, 3), p), target=0.4)) for p in (0.5, 0.9))
    assert 0 < near < far
    # KL(Bernoulli(0.9) || Bernoulli(0.4)) by hand
    assert far == pytest.approx(0.9 * math.log(0.9 / 0.4) + 0.1 * math.log(0.1 / 0.6), rel=1e-5)


def test_skip_penalty_averages_over_active_decisions_only():
    p = np.array([[0.9, 0.4], [0.4, 0.1]])
    mask = np.array([[1, 0], [0, 0]])
    assert float(skip_penalty(p, mask)) == pytest.approx(float(skip_penalty(np.array([[0.9]]))))
    assert float(skip_penalty(p, np.zeros_like(mask))) == 0.0


def test_skip_penalty_gradient_pulls_probabilities_towards_the_target():
    import tensorflow as tf

    p = tf.Variable([[0.1, 0.9]])
    with tf.GradientTape() as tape:
        loss = skip_penalty(p, target=0.4)
    grad = tape.gradient(loss, p).numpy()[0]
    assert grad[0] < 0 < grad[1]  # descending raises 0.1 and lowers 0.9


def test_skip_penalty_rejects_a_bad_target():
    with pytest.raises(ConfigError, match=r"skip penalty target must be in \(0, 1\), got 1\.0"):
        skip_penalty(np.zeros((1, 1)), target=1.0)


def test_skip_density():
    archs = [{"skip_2_0": True, "lr": 0.1}, {"skip_2_0": False, "skip_3_0": True, "skip_3_1": True}]
    assert skip_density(archs) == 0.75
    assert skip_density([{"num_layers": 1}]) == 0.0
