"""A regression child's score is plain Keras's score, on every path that trains it.

scikit-learn's ``make_friedman1`` (offline), a model function compiled with MSE and a
``mean_absolute_error`` metric, searched with ``objective=kt.Objective("val_mean_absolute_error",
"min")``-style names: the trial's validation MAE is compared with what plain Keras gives for the same
function, architecture, arrays and seed (``set_random_seed``, build, ``fit``, ``evaluate``). In this
process by default; in a worker process and in a Ray task under the slow marker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlnas import HyperParameters
from rlnas.tuner import ReinforceSearch

EPOCHS, BATCH = 3, 32


def _data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=500, n_features=8, noise=0.3, random_state=2)
    x, y = x.astype(np.float32), y.astype(np.float32)
    return (x[:400], y[:400]), (x[400:], y[400:])


def build(hp):
    import keras

    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(hp.Choice("units", [16, 32]), activation=hp.Choice("act", ["relu", "tanh"])),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        keras.optimizers.Adam(hp.Float("lr", 1e-2, 3e-2, sampling="log")),
        "mse",
        metrics=["mean_absolute_error"],
    )
    return model


def plain_keras(arch: dict, seed: int) -> float:
    import keras

    (x, y), (x_val, y_val) = _data()
    keras.utils.set_random_seed(seed)
    model = build(HyperParameters(arch))
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    return float(model.evaluate(x_val, y_val, verbose=0, return_dict=True)["mean_absolute_error"])


def check(directory: Path, **kwargs) -> tuple[float, float]:
    (x, y), val = _data()
    tuner = ReinforceSearch(
        build,
        "val_mean_absolute_error",
        max_trials=1,
        directory=directory,
        seed=4,
        archs_per_update=1,
        **kwargs,
    )
    tuner.search(x, y, epochs=EPOCHS, batch_size=BATCH, validation_data=val, verbose=0)
    (trial,) = tuner._trials
    assert trial.ok, trial.error
    searched, plain = (
        trial.metrics["val_mean_absolute_error"],
        plain_keras(dict(trial.architecture), trial.seed),
    )
    baseline = float(np.mean(np.abs(val[1] - y.mean())))
    assert searched < baseline  # learnt, not trivially
    assert trial.reward == pytest.approx(-searched)
    assert searched == pytest.approx(plain, abs=0.01)
    return searched, plain


def test_in_process_regression_scores_equal_plain_keras(tmp_path: Path) -> None:
    print("in process vs plain keras:", check(tmp_path, in_process=True))


@pytest.mark.slow
def test_worker_regression_scores_equal_plain_keras(tmp_path: Path) -> None:
    print("worker vs plain keras:", check(tmp_path, workers=1))


@pytest.mark.slow
def test_ray_regression_scores_equal_plain_keras(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        print("ray vs plain keras:", check(tmp_path, executor="ray", workers=1))
    finally:
        ray.shutdown()
