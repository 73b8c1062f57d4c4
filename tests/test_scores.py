"""A child's score is plain Keras's score, on every path that trains it.

On digits of the bundled MNIST subset, for each kind of model function (one-hot or integer labels,
sparse or one-hot loss, a loss object, no accuracy metric, with or without an ``Input``, an unbuilt
``Sequential``) a one-trial search is run, and its trial's validation accuracy is compared with what
plain Keras gives for the same function, architecture, arrays and seed: ``set_random_seed(seed)``,
``build_model(hp)``, ``fit(x, y, epochs, batch_size)``, then argmax agreement on the validation
arrays. In this process by default (cheap); in a worker process and in a Ray task under the slow
marker. The same holds for a ``tf.data`` pipeline given to ``search``: the child fitted on the
run's saved copy scores as ``fit`` on the user's own pipeline does.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest

from rlnas import HyperParameters
from rlnas.tuner import ReinforceSearch

EPOCHS, BATCH = 1, 32


def _data(n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """``n`` shuffled digits of the bundled MNIST subset, scaled to [0, 1], integer labels: after one
    epoch on 600 of them a child scores 0.6-0.85, where a wrong score would show."""
    with importlib.resources.files("rlnas").joinpath("bundled", "mnist_5k.npz").open("rb") as f:
        bundle = np.load(f)
        x, y = bundle["x"], bundle["y"]
    order = np.random.default_rng(1).permutation(len(y))[:n]
    return x[order].astype(np.float32) / 255, y[order].astype(np.int64)


def _model(loss, *, with_input: bool, metrics=("accuracy",)):
    """A model function compiling ``loss``, with an Input layer or as an unbuilt Sequential."""

    def build(hp):
        import keras

        layers = [keras.Input((28, 28))] if with_input else []
        model = keras.Sequential([*layers, keras.layers.Flatten()])
        model.add(
            keras.layers.Dense(hp.Choice("units", [24, 32]), activation=hp.Choice("act", ["relu", "tanh"]))
        )
        model.add(keras.layers.Dense(10, activation="softmax"))
        optimizer = keras.optimizers.Adam(hp.Float("lr", 3e-3, 1e-2, sampling="log"))
        model.compile(optimizer, loss() if callable(loss) else loss, metrics=list(metrics))
        return model

    return build


def _categorical_object():
    import keras

    return keras.losses.CategoricalCrossentropy()


CASES = {
    # name: (model function, labels given to search are one-hot, the loss wants one-hot)
    "one-hot labels, categorical, no Input": (
        _model("categorical_crossentropy", with_input=False),
        True,
        True,
    ),
    "int labels, sparse, Input": (_model("sparse_categorical_crossentropy", with_input=True), False, False),
    "int labels, categorical, Input": (_model("categorical_crossentropy", with_input=True), False, True),
    "one-hot labels, sparse, no Input": (
        _model("sparse_categorical_crossentropy", with_input=False),
        True,
        False,
    ),
    "loss object, categorical_accuracy metric": (
        _model(_categorical_object, with_input=False, metrics=("categorical_accuracy",)),
        True,
        True,
    ),
    "no accuracy metric": (
        _model("sparse_categorical_crossentropy", with_input=True, metrics=()),
        False,
        False,
    ),
}


def plain_keras(build, arch: dict, seed: int, splits, one_hot_loss: bool) -> float:
    """What a Keras user gets: seed, build, fit, evaluate (argmax agreement if no accuracy metric)."""
    import keras

    (x, y), (x_val, y_val) = splits
    if one_hot_loss:
        y, y_val = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(y_val, 10)
    keras.utils.set_random_seed(seed)
    model = build(HyperParameters(arch))
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    predicted = model.predict(x_val, verbose=0).argmax(axis=1)
    return float(np.mean(predicted == (y_val.argmax(axis=1) if one_hot_loss else y_val)))


def searched(build, one_hot_labels: bool, directory: Path, **kwargs) -> tuple[dict, tuple]:
    """A one-trial search of ``build``; (its trial, the integer-label splits)."""
    x, y = _data()
    splits = ((x[:600], y[:600]), (x[600:], y[600:]))
    labels = (lambda v: np.eye(10, dtype=np.float32)[v]) if one_hot_labels else (lambda v: v)
    tuner = ReinforceSearch(build, max_trials=1, directory=directory, seed=4, archs_per_update=1, **kwargs)
    tuner.search(
        x[:600],
        labels(y[:600]),
        epochs=EPOCHS,
        batch_size=BATCH,
        validation_data=(x[600:], labels(y[600:])),
        verbose=0,
    )
    (trial,) = tuner._trials
    assert trial.ok, trial.error
    return trial, splits


def check_case(name: str, directory: Path, **kwargs) -> tuple[float, float]:
    build, one_hot_labels, one_hot_loss = CASES[name]
    trial, splits = searched(build, one_hot_labels, directory, **kwargs)
    plain = plain_keras(build, trial.architecture, trial.seed, splits, one_hot_loss)
    assert 0.3 < trial.metrics["val_accuracy"] < 0.97, (
        name,
        trial.metrics["val_accuracy"],
    )  # learnt, not trivially
    assert trial.metrics["val_accuracy"] == pytest.approx(plain, abs=0.02), (
        name,
        trial.metrics["val_accuracy"],
        plain,
    )
    return trial.metrics["val_accuracy"], plain


CHEAP = ("one-hot labels, categorical, no Input",)
"""The default suite's case: the tutorial's kind (the others, and every other path, are slow)."""


@pytest.mark.parametrize(
    "name", [n if n in CHEAP else pytest.param(n, marks=pytest.mark.slow) for n in CASES]
)
def test_in_process_scores_equal_plain_keras(name: str, tmp_path: Path) -> None:
    print(name, "in process vs plain keras:", check_case(name, tmp_path, in_process=True))


@pytest.mark.slow
def test_worker_process_scores_equal_plain_keras(tmp_path: Path) -> None:
    scores = {name: check_case(name, tmp_path / str(i), workers=1) for i, name in enumerate(CASES)}
    print("worker vs plain keras:", scores)


def _pipelines():
    """The digits as a user's tf.data pipeline: batches of BATCH, train and validation."""
    import tensorflow as tf

    x, y = _data()
    return tuple(
        tf.data.Dataset.from_tensor_slices((x[s], y[s])).batch(BATCH)
        for s in (slice(0, 600), slice(600, None))
    )


def check_tf_data(directory: Path, **kwargs) -> tuple[float, float]:
    """A one-trial search on tf.data against seed, build, ``fit(train_ds)``, ``evaluate(val_ds)``."""
    import keras

    build = CASES["int labels, sparse, Input"][0]
    train, val = _pipelines()
    tuner = ReinforceSearch(build, max_trials=1, directory=directory, seed=4, archs_per_update=1, **kwargs)
    tuner.search(train, validation_data=val, epochs=EPOCHS, verbose=0)
    (trial,) = tuner._trials
    assert trial.ok, trial.error
    keras.utils.set_random_seed(trial.seed)
    model = build(HyperParameters(trial.architecture))
    model.fit(train, epochs=EPOCHS, verbose=0)
    plain = model.evaluate(val, verbose=0, return_dict=True)["accuracy"]
    assert 0.3 < plain < 0.97
    assert trial.metrics["val_accuracy"] == pytest.approx(plain, abs=0.01)
    return trial.metrics["val_accuracy"], plain


def test_tf_data_in_process_scores_equal_plain_keras(tmp_path: Path) -> None:
    print("tf.data in process vs plain keras:", check_tf_data(tmp_path, in_process=True))


@pytest.mark.slow
def test_tf_data_in_a_worker_scores_equal_plain_keras(tmp_path: Path) -> None:
    print("tf.data in a worker vs plain keras:", check_tf_data(tmp_path, workers=1))


@pytest.mark.slow
def test_ray_scores_equal_plain_keras(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        names = (*CHEAP, "int labels, sparse, Input")
        scores = {n: check_case(n, tmp_path / str(i), executor="ray", workers=1) for i, n in enumerate(names)}
        scores["tf.data"] = check_tf_data(tmp_path / "tf.data", executor="ray", workers=1)
    finally:
        ray.shutdown()
    print("ray vs plain keras:", scores)
