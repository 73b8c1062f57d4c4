"""A table's child (rlnas.models.table): the column encoder with the train split's statistics, the
MLP body on its output, and the saved model that takes raw rows (or raw images for a folder)."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.data.folder import ImageInput
from rlnas.data.table import Column, TableInput
from rlnas.errors import ConfigError
from rlnas.models.child import build_model

TABLE = TableInput(
    columns=(
        Column("age", "numeric", mean=40.0, variance=100.0),
        Column("colour", "categorical", vocabulary=("red", "blue")),
        Column("size", "numeric", mean=0.0, variance=4.0),
    ),
    target="label",
    task="classification",
    class_names=("no", "yes"),
)
ARCH = {"num_layers": 1, "units_0": 8, "activation": "relu", "dropout": False, "lr": 1e-3}
RAW = {
    "age": np.array([30.0, 50.0, 41.0]),
    "colour": np.array(["blue", "red", "green"], dtype=object),  # green: never seen in training
    "size": np.array([1.0, -2.0, 0.5]),
}
ENCODED = np.array([[30, 2, 1], [50, 1, -2], [41, 0, 0.5]], np.float32)  # the vocabulary's indices


def test_the_child_encodes_the_columns_then_runs_the_mlp():
    import keras

    net = build_model(ARCH, (3,), 2, raw_input=TABLE)
    widths = {layer.name: layer.output.shape[-1] for layer in net.layers if layer.name.startswith("onehot")}
    assert widths == {"onehot_1": 3}  # two values and one index for values not seen in training
    normal = net.get_layer("numeric")
    assert np.allclose(normal.mean.numpy().ravel(), [40, 0]) and np.allclose(
        normal.variance.numpy().ravel(), [100, 4]
    )
    assert isinstance(net, keras.Model) and net.predict(ENCODED, verbose=0).shape == (3, 2)


def test_the_saved_model_takes_raw_rows_and_predicts_what_the_child_predicts(tmp_path):
    import keras

    from rlnas.models.table import exported

    net = build_model(ARCH, (3,), 2, raw_input=TABLE)
    path = tmp_path / "m.keras"
    exported(net, TABLE).save(path)
    loaded = keras.models.load_model(path)
    assert np.allclose(loaded.predict(RAW, verbose=0), net.predict(ENCODED, verbose=0), atol=1e-6)
    scores = loaded.evaluate(RAW, np.array([0, 1, 1]), return_dict=True, verbose=0)
    assert set(scores) == {"loss", "accuracy"}  # compiled as the child: its loss and metrics


def test_a_regression_table_child_has_one_linear_output():
    regression = TableInput(TABLE.columns, "price", "regression")
    net = build_model(ARCH, (3,), 0, raw_input=regression)
    assert net.predict(ENCODED, verbose=0).shape in ((3, 1), (3,))
    assert net.loss == "mse"


def test_only_the_mlp_reads_a_table():
    with pytest.raises(
        ConfigError, match=r"a table's columns are read by the built-in mlp model, not 'conv'"
    ):
        build_model({}, (3,), 2, model="conv", raw_input=TABLE)


def test_a_folder_model_takes_pixel_values_0_to_255(tmp_path):
    from rlnas.models.table import exported

    net = build_model(ARCH, (4, 4, 1), 2)
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 1)).astype(np.float32)
    saved = exported(net, ImageInput((4, 4), "grayscale"))
    assert np.allclose(saved.predict(images, verbose=0), net.predict(images / 255, verbose=0), atol=1e-6)
    assert exported(net, None) is net  # arrays used as given: the child itself
