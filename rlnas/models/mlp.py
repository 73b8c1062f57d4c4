"""The multilayer perceptron: Flatten, ``num_layers`` Dense layers, optional Dropout, softmax (or a
linear unit for regression)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlnas.errors import ConfigError
from rlnas.models.common import DROPOUT_RATE, output
from rlnas.space import SearchSpace

DEFAULTS: dict[str, Any] = {"num_layers": 1, "activation": "relu", "dropout": False, "lr": 1e-3}
"""Values used when the space fixes a decision by leaving it out."""


def check(space: SearchSpace) -> None:
    """Every decision must be one the MLP reads, and every possible layer must have its units."""
    known = {"num_layers", "activation", "dropout", "lr"}
    for d in space.decisions:
        if d.name.startswith("units_") and d.name[6:].isdigit():
            continue
        if d.name not in known:
            raise ConfigError(
                f"the mlp model does not use decision {d.name!r}; "
                "it reads num_layers, units_<i>, activation, dropout, lr"
            )
    layers = space["num_layers"].values if "num_layers" in space.names else (1,)
    for i in range(max(int(v) for v in layers)):  # type: ignore[call-overload]
        if f"units_{i}" not in space.names:
            raise ConfigError(f"num_layers can be {max(layers)} but the space has no units_{i}")


def build(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    """An uncompiled MLP; any input shape is flattened."""
    import keras

    a = DEFAULTS | dict(arch)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    for i in range(int(a["num_layers"])):
        x = keras.layers.Dense(int(a[f"units_{i}"]), activation=a["activation"])(x)
    if a["dropout"]:
        x = keras.layers.Dropout(DROPOUT_RATE)(x)
    return keras.Model(inputs, output(x, num_classes))
