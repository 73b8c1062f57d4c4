"""rlnas.tune.ReinforceSearcher: the searcher alone (batches, save/restore, min, failures, bad
spaces) and in a Tuner on a local Ray with a ConcurrencyLimiter."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("ray.tune", exc_type=ImportError)

from ray import tune
from ray.tune.search import ConcurrencyLimiter

from rlnas.errors import ConfigError
from rlnas.models.child import Status
from rlnas.tune import ReinforceSearcher

SPACE = {
    "units": tune.choice([16, 32, 64, 128]),
    "act": tune.choice(["relu", "tanh"]),
    "depth": tune.randint(1, 5),
    "fixed": 7,
    "opt": {"momentum": tune.quniform(0.0, 0.9, 0.3)},
}


def score(config: dict) -> float:
    return -abs(math.log2(config["units"]) - 6) + (config["act"] == "relu") - abs(config["depth"] - 3)


def drive(searcher: ReinforceSearcher, n: int, sign: float = 1.0, start: int = 0) -> list[dict]:
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        searcher.on_trial_complete(f"t{i}", {"score": sign * score(config)})
    return configs


def test_suggestions_are_in_the_space_in_batches_and_reproducible():
    a = drive(ReinforceSearcher(SPACE, metric="score", mode="max", seed=1), 12)
    b = drive(ReinforceSearcher(SPACE, metric="score", mode="max", seed=1), 12)
    assert a == b
    for c in a:
        assert c["units"] in (16, 32, 64, 128) and c["depth"] in (1, 2, 3, 4) and c["fixed"] == 7
        assert c["opt"]["momentum"] in (0.0, 0.3, 0.6, 0.9)


def test_min_mode_is_the_same_search_as_max_of_the_negation():
    maxi = drive(ReinforceSearcher(SPACE, metric="score", mode="max", seed=2), 12)
    mini = drive(ReinforceSearcher(SPACE, metric="score", mode="min", seed=2), 12, sign=-1.0)
    assert maxi == mini


def test_save_and_restore_continue_the_same_search(tmp_path):
    whole = ReinforceSearcher(SPACE, metric="score", mode="max", seed=3)
    expected = drive(whole, 14)
    first = ReinforceSearcher(SPACE, metric="score", mode="max", seed=3)
    drive(first, 6)
    first.save(str(tmp_path / "searcher.pkl"))
    again = ReinforceSearcher(seed=3)
    again.restore(str(tmp_path / "searcher.pkl"))
    assert drive(again, 8, start=6) == expected[6:]


def test_errors_and_nan_are_told_as_failed_with_the_worst_reward():
    s = ReinforceSearcher(SPACE, metric="score", mode="max", seed=0)
    for i in range(8):
        config = s.suggest(f"t{i}")
        if i % 4 == 1:
            s.on_trial_complete(f"t{i}", error=True)
        elif i % 4 == 2:
            s.on_trial_complete(f"t{i}", {"score": float("nan")})
        else:
            s.on_trial_complete(f"t{i}", {"score": score(config)})
    tells = [e for e in s._handout.events if e[0] == "tell"]
    assert len(tells) == 2
    statuses = [x for e in tells for x in e[3]]
    rewards = np.concatenate([e[2] for e in tells])
    assert statuses.count(Status.FAILED) == 4 and np.isfinite(rewards).all()
    ok = [r for r, x in zip(rewards, statuses, strict=True) if x == Status.OK]
    assert max(r for r, x in zip(rewards, statuses, strict=True) if x == Status.FAILED) <= min(ok)


def test_a_batch_is_told_only_when_all_its_trials_completed_in_any_order():
    s = ReinforceSearcher(SPACE, metric="score", mode="max", seed=0)
    configs = {f"t{i}": s.suggest(f"t{i}") for i in range(4)}
    for tid in ("t3", "t0", "t2"):
        s.on_trial_complete(tid, {"score": score(configs[tid])})
    assert s._handout.told == 0
    s.on_trial_complete("t1", {"score": score(configs["t1"])})
    assert s._handout.told == 1


def test_continuous_range_warns_once_and_bad_spaces_are_refused():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = ReinforceSearcher({"lr": tune.loguniform(1e-4, 1e-1)}, metric="score", mode="max")
        drive_lr = [s.suggest(f"t{i}")["lr"] for i in range(5)]
    assert len([w for w in caught if "ReinforceSearcher searches 'lr'" in str(w.message)]) == 1
    assert all(np.isclose(np.geomspace(1e-4, 1e-1, 16), v).any() for v in drive_lr)
    with pytest.raises(ConfigError, match=r"cannot search tune\.grid_search"):
        ReinforceSearcher({"x": tune.grid_search([1, 2])}, metric="score", mode="max")
    with pytest.raises(ConfigError, match="mode must be 'min' or 'max', got 'up'"):
        ReinforceSearcher(SPACE, metric="score", mode="up")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def trainable(config: dict) -> dict:
    return {"score": score(config)}


def test_a_tuner_runs_sixteen_trials_through_a_concurrency_limiter(local_ray, tmp_path):
    searcher = ReinforceSearcher(seed=0)
    tuner = tune.Tuner(
        trainable,
        param_space=SPACE,
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=16,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=2),
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 16 and not results.errors
    assert all(r.config["units"] in (16, 32, 64, 128) for r in results)
    assert results.get_best_result().metrics["score"] >= max(r.metrics["score"] for r in results)
