"""The gymnasium face of the evaluator: spec compliance, masks, errors and a real child."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.nas_env import NasEnv
from rlnas.errors import ConfigError, InvalidActionError
from rlnas.space import Decision, SearchSpace, default_space


def test_registered_id_builds_default_env_without_arguments():
    env = gym.make(envs.NAS_ENV_ID)
    assert isinstance(env.unwrapped, NasEnv)
    assert env.unwrapped.space == default_space()
    assert env.spec.nondeterministic is True


def test_passes_gymnasium_env_checker(synthetic_evaluator):
    env = gym.make(envs.NAS_ENV_ID, evaluator=synthetic_evaluator)
    check_env(env.unwrapped)


def test_random_agent_with_mask_completes_episodes(synthetic_evaluator):
    env = gym.make(envs.NAS_ENV_ID, evaluator=synthetic_evaluator)
    space = env.unwrapped.space
    env.action_space.seed(0)
    for episode in range(20):
        obs, info = env.reset(seed=episode)
        steps, terminated = 0, False
        while not terminated:
            action = env.action_space.sample(mask=info["action_mask"])
            obs, reward, terminated, truncated, info = env.step(action)
            assert not truncated
            steps += 1
            if not terminated:
                assert reward == 0.0
        arch = info["architecture"]
        assert steps == len(arch)  # one step per active decision, inactive ones skipped
        assert space.encode(arch) == info["tokens"]
        assert reward == pytest.approx(synthetic_evaluator.evaluate(arch, 0).val_accuracy)
        assert info["metrics"]["status"] == "ok"
        assert env.observation_space.contains(obs)
        last = env.unwrapped.last  # the same, typed, for the search loop
        assert last.result.reported().keys() == info["metrics"].keys() and last.reward == reward
        assert (last.key, last.tokens, last.child_seed) == (info["key"], info["tokens"], info["child_seed"])


def test_observation_tells_step_and_previous_token(synthetic_evaluator):
    env = NasEnv(evaluator=synthetic_evaluator)
    obs, info = env.reset(seed=0)
    assert obs.tolist() == [0, 0]
    assert info["action_mask"].tolist() == [1, 1, 1] + [0] * 13  # num_layers has 3 values
    obs, *_, info = env.step(0)  # one layer
    assert obs.tolist() == [1, 1]
    assert info["action_mask"].sum() == 16  # units_0
    obs, *_ = env.step(5)
    assert obs.tolist() == [4, 6]  # units_1 and units_2 skipped: next is activation (index 4)


def test_illegal_action_raises_clear_error(synthetic_evaluator):
    env = NasEnv(evaluator=synthetic_evaluator)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"action 7 is illegal for decision 'num_layers'.*0\.\.2"):
        env.step(7)
    with pytest.raises(InvalidActionError, match="call reset"):
        NasEnv(evaluator=synthetic_evaluator).step(0)


def test_step_after_end_raises(synthetic_evaluator):
    env = NasEnv(evaluator=synthetic_evaluator)
    _, info = env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(int(np.argmax(info["action_mask"])))
    assert info["action_mask"].sum() == 0
    with pytest.raises(InvalidActionError, match="episode has ended"):
        env.step(0)


def test_failed_child_gets_failed_reward():
    from tests.conftest import SyntheticEvaluator

    env = NasEnv(evaluator=SyntheticEvaluator(fail_when={"num_layers": 1}), failed_reward=-0.5)
    env.reset(seed=0)
    for a in (0, 0, 0, 0, 0):
        *_, reward, terminated, _, info = env.step(a)
    assert terminated and reward == -0.5
    assert info["metrics"]["status"] == "failed"


def test_action_space_sample_is_legal_without_explicit_mask(synthetic_evaluator):
    env = NasEnv(evaluator=synthetic_evaluator)
    env.reset(seed=0)
    env.action_space.seed(1)
    assert all(env.action_space.sample() < 3 for _ in range(50))


def test_space_as_dict_and_unknown_model_rejected(synthetic_evaluator):
    small = SearchSpace([Decision("num_layers", (1,), "int"), Decision("units_0", (8, 16), "int")])
    env = NasEnv(small.to_dict(), evaluator=synthetic_evaluator)
    assert env.space == small
    with pytest.raises(ConfigError, match="unknown model 'convv'"):
        NasEnv(SearchSpace([Decision("x", (1,), "int")], model="convv"))


def test_real_child_is_trained_on_train_and_scored_on_validation(tiny_npz):
    space = SearchSpace(
        [
            Decision("num_layers", (1,), "int"),
            Decision("units_0", (16,), "int"),
            Decision("lr", (0.01,), "float"),
        ]
    )
    env = gym.make(envs.NAS_ENV_ID, space=space, dataset=str(tiny_npz), epochs=5, batch_size=32)
    env.reset(seed=0)
    for _ in range(2):
        env.step(0)
    _, reward, terminated, _, info = env.step(0)
    assert terminated
    assert info["metrics"]["status"] == "ok"
    assert reward == info["metrics"]["val_accuracy"] > 0.6  # 3 classes: chance is 1/3
    assert info["metrics"]["params"] == 8 * 8 * 16 + 16 + 16 * 3 + 3
    env.close()


# -- the env trains children as the search does ----------------------------------------------------
def test_env_from_a_config_uses_the_searchs_own_worker_training(tiny_npz):
    from rlnas.config import SearchConfig
    from rlnas.exec.evaluator import WorkerEvaluator
    from rlnas.models.child import train_spec
    from rlnas.resources import threads_per_worker

    config = SearchConfig(
        dataset=str(tiny_npz), epochs=3, val_fraction=0.3, early_stopping=2, child_time_limit=60.0,
        workers=2, children_per_worker=5, failed_reward=-1.0, objective="val_loss:min",
    )  # fmt: skip
    env = NasEnv(config=config)
    evaluator = env.evaluator
    assert isinstance(evaluator, WorkerEvaluator) and evaluator._active is None  # no process yet
    assert evaluator.train == train_spec(config, env.space.model, threads=threads_per_worker(2))
    assert evaluator.train.early_stopping == 2 and evaluator.train.time_limit == 60.0
    assert evaluator.spec == config.data_spec() and evaluator.children_per_worker == 5
    assert env.failed_reward == -1.0 and env.objective.metric == "val_loss"
    explicit = NasEnv(config=config, failed_reward=0.5, objective="val_accuracy")
    assert explicit.failed_reward == 0.5 and explicit.objective.metric == "val_accuracy"


def test_env_refuses_a_config_and_training_arguments_together(tiny_npz):
    from rlnas.config import SearchConfig

    with pytest.raises(ConfigError, match="NasEnv got both config and dataset, epochs"):
        NasEnv(config=SearchConfig(), dataset=str(tiny_npz), epochs=3)


def test_env_without_a_config_trains_in_this_process_as_before():
    from rlnas.data import DataSpec
    from rlnas.exec.evaluator import LocalEvaluator
    from rlnas.models.child import TrainSpec

    env = NasEnv(dataset="mnist_5k", epochs=3, max_params=1000)
    assert isinstance(env.evaluator, LocalEvaluator)
    assert env.evaluator.spec == DataSpec("mnist_5k")
    assert env.evaluator.train == TrainSpec(epochs=3, max_params=1000, model="mlp")
    assert env.failed_reward == 0.0 and env.objective.metric == "val_accuracy"


@pytest.mark.slow  # a real child in a worker: test_evaluator covers it
def test_real_child_from_a_config_trains_in_a_worker(tiny_npz):
    from rlnas.config import SearchConfig

    space = SearchSpace(
        [
            Decision("num_layers", (1,), "int"),
            Decision("units_0", (16,), "int"),
            Decision("lr", (0.01,), "float"),
        ]
    )
    env = NasEnv(space, config=SearchConfig(dataset=str(tiny_npz), epochs=5, batch_size=32, workers=1))
    try:
        env.reset(seed=0)
        env.step(0)
        env.step(0)
        _, reward, terminated, _, info = env.step(0)
    finally:
        env.close()
    assert terminated and info["metrics"]["status"] == "ok", info["metrics"]["error"]
    assert reward == info["metrics"]["val_accuracy"] > 0.6
