"""Children of a table, and the models replay saves for raw input (tables and folders of images).

A table's child is composed, not a model of its own: an encoder of the columns (Keras
preprocessing layers with the statistics :mod:`rlnas.data.table` fitted once on the train split:
``Normalization(mean=, variance=)`` for a numeric column, a one-hot ``CategoryEncoding`` of the
vocabulary index for a categorical one), then the built-in model's body (the MLP) on the encoded
vector. No layer adapts, so every worker and replay builds the same encoder.

:func:`exported` is what replay saves: the trained child behind the layers that turn a raw sample
into the row it was trained on. For a table, one named input per column (numbers as float32, text
through a ``StringLookup`` of the vocabulary); for a folder of images, a ``Rescaling(1/255)`` of
the pixel values that ``keras.utils.image_dataset_from_directory`` yields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rlnas.data.folder import ImageInput
from rlnas.data.table import NUMERIC, TableInput
from rlnas.errors import ConfigError

TABLE_MODELS = ("mlp",)
"""Built-in models that read a table's encoded vector; the others need images."""


def check_table_model(model: str) -> None:
    """Raise ConfigError unless ``model`` can train on a table (a one-line error before any child)."""
    if model not in TABLE_MODELS:
        raise ConfigError(
            f"a table's columns are read by the built-in mlp model, not {model!r}; "
            'drop [space] model (or --model), or set it to "mlp"'
        )


def encoder(inputs: Any, table: TableInput) -> Any:
    """The encoded float vector of the column-per-float ``inputs`` (numeric normalised, text one-hot)."""
    import keras

    numeric = [i for i, c in enumerate(table.columns) if c.kind == NUMERIC]
    parts = []
    if numeric:
        mean = [table.columns[i].mean for i in numeric]
        variance = [table.columns[i].variance for i in numeric]
        values = keras.ops.take(inputs, numeric, axis=1)
        parts.append(keras.layers.Normalization(mean=mean, variance=variance, name="numeric")(values))
    for i, column in enumerate(table.columns):
        if column.kind != NUMERIC:
            index = keras.ops.cast(inputs[:, i], "int32")
            one_hot = keras.layers.CategoryEncoding(column.width, output_mode="one_hot", name=f"onehot_{i}")
            parts.append(one_hot(index))
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="encoded")(parts)


def build(
    arch: Mapping[str, Any],
    table: TableInput,
    num_classes: int,
    body: Callable[[Mapping[str, Any], tuple[int, ...], int], Any],
) -> Any:
    """An uncompiled table child: :func:`encoder`, then ``body`` (a built-in builder) on its output."""
    import keras

    inputs = keras.Input(shape=(len(table.columns),), name="columns")
    encoded = encoder(inputs, table)
    head = body(arch, (int(encoded.shape[-1]),), num_classes)
    return keras.Model(inputs, head(encoded), name="table_child")


def raw_table_model(net: Any, table: TableInput) -> Any:
    """``net`` (trained on encoded rows) behind one raw input per column: it takes a dict of column
    name -> numpy array (text as an ``object`` array, as pandas holds it: Keras refuses numpy's
    ``<U`` strings) and predicts what ``net`` predicts."""
    import keras

    inputs, row = {}, []
    for column in table.columns:
        if column.kind == NUMERIC:
            inputs[column.name] = value = keras.Input(shape=(1,), name=column.name, dtype="float32")
        else:
            inputs[column.name] = keras.Input(shape=(1,), name=column.name, dtype="string")
            lookup = keras.layers.StringLookup(vocabulary=list(column.vocabulary), num_oov_indices=1)
            value = keras.ops.cast(lookup(inputs[column.name]), "float32")
        row.append(value)
    joined = row[0] if len(row) == 1 else keras.layers.Concatenate(name="row")(row)
    return keras.Model(inputs, net(joined), name="table_model")


def exported(net: Any, raw_input: Any) -> Any:
    """The model replay saves: ``net`` taking the raw samples of its data (see the module's doc)."""
    import keras

    if isinstance(raw_input, TableInput):
        model = raw_table_model(net, raw_input)
    elif isinstance(raw_input, ImageInput):
        inputs = keras.Input(shape=net.input_shape[1:], name="image")
        model = keras.Model(inputs, net(keras.layers.Rescaling(1 / 255)(inputs)), name="image_model")
    else:
        return net
    if net.compiled:  # compiled as the child was, so evaluate() on raw samples reports its metrics
        model.compile_from_config(net.get_compile_config())
    return model
