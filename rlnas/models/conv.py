"""The convolutional chain of Zoph & Le's CNN search, and the layer code the skip model shares.

Layer i is Conv2D(filters_i, (kernel_h_i, kernel_w_i), stride_i, padding "same") -> BatchNorm ->
activation -> optional pooling (pool_i: 2x2, stride 2, padding "same"). "Same" padding makes every
architecture valid for every input of at least 1x1 pixel: a stride or pool on a 1x1 map gives a 1x1
map (size ceil(H / 2)), never an error. The head is global average pooling (or flatten), an optional
Dense(head_units), dropout and softmax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlnas.models import common
from rlnas.models.common import Rule, is_nonneg_int, is_pos_int, one_of
from rlnas.space import SearchSpace

POOLS = ("none", "max", "avg")
HEADS = ("gap", "flatten")
DEFAULTS: dict[str, Any] = {
    "num_layers": 1,
    "activation": "relu",
    "dropout": False,
    "lr": 1e-3,
    "head": "gap",
    "head_units": 0,
}
LAYER_DEFAULTS: dict[str, Any] = {"filters": 32, "kernel_h": 3, "kernel_w": 3, "stride": 1, "pool": "none"}
"""Per-layer values used when the space leaves the decision out (``filters_<i>`` -> ``filters``)."""

RULES = (
    common.NUM_LAYERS,
    Rule(r"filters_(\d+)", "filters_<i>", is_pos_int, "positive whole numbers"),
    Rule(r"kernel_h_(\d+)", "kernel_h_<i>", is_pos_int, "positive whole numbers"),
    Rule(r"kernel_w_(\d+)", "kernel_w_<i>", is_pos_int, "positive whole numbers"),
    # Only 1 and 2: every map is then ceil(H / 2**k) pixels, which the skip model's resizing relies on.
    Rule(r"stride_(\d+)", "stride_<i>", lambda v: v in (1, 2) and not isinstance(v, bool), "1, 2"),
    Rule(r"pool_(\d+)", "pool_<i>", one_of(*POOLS), ", ".join(POOLS)),
    Rule("head", "head", one_of(*HEADS), ", ".join(HEADS)),
    Rule("head_units", "head_units", is_nonneg_int, "whole numbers >= 0 (0: no hidden dense layer)"),
    common.ACTIVATION,
    common.DROPOUT,
    common.LR,
)


def check(space: SearchSpace) -> None:
    """Decision names and values the conv model reads; per-layer indices below the largest num_layers."""
    captured = common.check_rules(space, "conv", RULES)
    common.check_layer_indices(captured, common.max_value(space, "num_layers", 1))


def layer_value(a: Mapping[str, Any], name: str, i: int) -> Any:
    return a.get(f"{name}_{i}", LAYER_DEFAULTS[name])


def conv_layer(x: Any, a: Mapping[str, Any], i: int) -> Any:
    """Layer ``i`` of the chain (see the module docstring)."""
    import keras

    size = (int(layer_value(a, "kernel_h", i)), int(layer_value(a, "kernel_w", i)))
    stride = int(layer_value(a, "stride", i))
    x = keras.layers.Conv2D(int(layer_value(a, "filters", i)), size, strides=stride, padding="same")(x)
    x = common.batch_norm(x)
    x = keras.layers.Activation(a["activation"])(x)
    pool = layer_value(a, "pool", i)
    if pool == "max":
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    elif pool == "avg":
        x = keras.layers.AveragePooling2D(2, padding="same")(x)
    return x


def build_chain(
    arch: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int, *, model: str, skips: bool
) -> Any:
    """The chain, with skip inputs (``skip_<i>_<j>``) concatenated in front of layer i when ``skips``."""
    import keras

    a = DEFAULTS | dict(arch)
    inputs, x = common.image_input(input_shape, model)
    outputs: list[Any] = []
    for i in range(int(a["num_layers"])):
        extra = [outputs[j] for j in range(i - 1) if skips and a.get(f"skip_{i}_{j}", False)]
        if extra:
            x = concat_compatible([x, *extra])
        x = conv_layer(x, a, i)
        outputs.append(x)
    return keras.Model(inputs, common.classifier(x, a, num_classes))


def build(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    """An uncompiled conv chain."""
    return build_chain(arch, input_shape, num_classes, model="conv", skips=False)


def concat_compatible(tensors: Sequence[Any]) -> Any:
    """Concatenate feature maps along channels after average-pooling the larger ones down to the smallest.

    Channels need no projection: concatenation accepts any channel counts and the next convolution
    maps them to its own filters. Spatial sizes differ only by the chain's factor-2 downsamplings,
    so 2x2 "same" pooling steps reach the smaller size exactly. Pooling the big map down (rather than
    Zoph & Le's zero-padding of the small one) keeps the later layers at the small, cheap size.
    """
    import keras

    th = min(int(t.shape[1]) for t in tensors)
    tw = min(int(t.shape[2]) for t in tensors)
    fitted = []
    for t in tensors:
        while int(t.shape[1]) > th or int(t.shape[2]) > tw:
            size = (2 if int(t.shape[1]) > th else 1, 2 if int(t.shape[2]) > tw else 1)
            t = keras.layers.AveragePooling2D(size, padding="same")(t)
        if (int(t.shape[1]), int(t.shape[2])) != (th, tw):
            raise ValueError(f"cannot resize a {tuple(t.shape[1:3])} map to {(th, tw)}")
        fitted.append(t)
    return keras.layers.Concatenate(axis=-1)(fitted)
