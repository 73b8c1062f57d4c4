"""keras-tuner's getting-started patterns run unchanged through ReinforceSearch.

The model functions below are written as keras-tuner's guide and ``HyperParameters`` docs write
them: ``hp.Int`` with and without ``step``, ``hp.Float`` with ``sampling="log"``, ``hp.Choice``,
``hp.Boolean``, ``hp.Fixed``, ``hp.conditional_scope`` around a branch of the model and the
``parent_name``/``parent_values`` keywords. Each is searched for two trials in this process on
8x8 images; the functions also run unchanged under keras-tuner's own ``HyperParameters`` (so they
are keras-tuner code, not rlnas dialect).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlnas.tuner import ReinforceSearch


def conditional_model(hp):
    """keras-tuner's conditional_scope example: an MLP or a CNN, each with its own hyperparameters."""
    import keras

    model = keras.Sequential()
    model.add(keras.Input(shape=(8, 8, 1)))
    model_type = hp.Choice("model_type", ["mlp", "cnn"])
    with hp.conditional_scope("model_type", ["mlp"]):
        if model_type == "mlp":
            model.add(keras.layers.Flatten())
            model.add(keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"))
    with hp.conditional_scope("model_type", ["cnn"]):
        if model_type == "cnn":
            model.add(keras.layers.Conv2D(hp.Int("filters", 4, 8, step=4), 3, activation="relu"))
            model.add(keras.layers.GlobalAveragePooling2D())
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=hp.Fixed("dropout_rate", 0.25)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def parent_keywords_model(hp):
    """The same choice written with keras-tuner's parent_name/parent_values keywords."""
    import keras

    model = keras.Sequential([keras.layers.Flatten()])
    depth = hp.Choice("depth", [1, 2])
    model.add(keras.layers.Dense(hp.Int("units_0", 8, 32, step=8), activation="relu"))
    if depth == 2:
        units = hp.Int("units_1", 8, 32, step=8, parent_name="depth", parent_values=[2])
        model.add(keras.layers.Dense(units, activation=hp.Choice("activation", ["relu", "tanh"])))
    model.add(keras.layers.Dense(10, activation="softmax"))
    rate = hp.Float("lr", min_value=1e-3, max_value=1e-2, step=3e-3)
    optimizer = keras.optimizers.SGD(rate, momentum=hp.Fixed("momentum", 0.9))
    model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.permutation(np.arange(n) % 10)
    x = rng.random((n, 8, 8, 1)).astype(np.float32) * 0.2
    x[np.arange(n), y % 8, :, 0] += 0.8
    return x, y


def test_the_conditional_scope_example_discovers_its_branches_and_searches(tmp_path: Path) -> None:
    tuner = ReinforceSearch(conditional_model, max_trials=2, directory=tmp_path, in_process=True, seed=1)
    space = {d.name: d for d in tuner.space.decisions}
    assert set(space) == {"model_type", "units", "filters", "dropout", "learning_rate"}
    assert space["units"].when == {"model_type": ("mlp",)} and space["filters"].when == {
        "model_type": ("cnn",)
    }
    assert space["filters"].values == (4, 8) and "dropout_rate" not in space  # Fixed: a constant
    x, y = _data()
    tuner.search(x[:40], y[:40], epochs=1, validation_data=(x[40:], y[40:]), batch_size=16, verbose=0)
    trials = tuner._trials
    assert [t.status for t in trials] == ["ok", "ok"], [t.error for t in trials]
    (hp,) = tuner.get_best_hyperparameters(1)
    assert tuner.hypermodel.build(hp).count_params() == tuner._best(1)[0].metrics["params"]


@pytest.mark.slow
def test_the_parent_keywords_example_and_a_one_hot_loss_search(tmp_path: Path) -> None:
    tuner = ReinforceSearch(parent_keywords_model, max_trials=2, directory=tmp_path, in_process=True)
    space = {d.name: d for d in tuner.space.decisions}
    assert space["units_1"].when == {"depth": (2,)} and space["lr"].values == (0.001, 0.004, 0.007, 0.01)
    x, y = _data()
    one_hot = np.eye(10, dtype=np.float32)[y]
    tuner.search(x[:40], one_hot[:40], epochs=1, validation_data=(x[40:], one_hot[40:]), verbose=0)
    assert [t.status for t in tuner._trials] == ["ok", "ok"]


@pytest.mark.parametrize("fn", [conditional_model, parent_keywords_model])
def test_the_functions_are_keras_tuner_code(fn) -> None:
    kt = pytest.importorskip("keras_tuner")
    hp = kt.HyperParameters()
    model = fn(hp)
    assert model.loss and {"learning_rate", "lr"} & set(hp.values)
