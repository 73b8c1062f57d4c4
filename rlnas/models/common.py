"""What every child builder shares: decision rules for ``check_space``, image inputs, the head.

A model reads decisions by name. Each model declares its names as :class:`Rule` s (a pattern and the
values it accepts), so a misspelt or ill-valued decision is a one-line ConfigError when the config
is read, not a failed child after TensorFlow has started. Keras is imported inside the functions
that build layers: checking a space must stay cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rlnas.errors import ConfigError, did_you_mean
from rlnas.space import SearchSpace, Value

ACTIVATIONS = ("relu", "tanh", "elu", "selu", "gelu", "swish", "sigmoid")
DROPOUT_RATE = 0.25
"""Rate of a dropout decision given as ``true``; a float value is the rate itself."""


@dataclass(frozen=True)
class Rule:
    """One decision (or family of decisions) a model reads.

    Args:
        pattern: regular expression the whole name must match; groups capture indices (``filters_(\\d+)``).
        shown: the name as a reader writes it (``filters_<i>``), for error messages.
        ok: whether one value is usable.
        allowed: the usable values in words, for error messages.
    """

    pattern: str
    shown: str
    ok: Callable[[Value], bool]
    allowed: str


def is_pos_int(v: Value) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def is_nonneg_int(v: Value) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_dropout(v: Value) -> bool:
    return isinstance(v, bool) or (isinstance(v, int | float) and 0 <= v < 1)


def is_lr(v: Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def one_of(*values: Value) -> Callable[[Value], bool]:
    return lambda v: isinstance(v, str) and v in values


NUM_LAYERS = Rule("num_layers", "num_layers", is_pos_int, "positive whole numbers")
ACTIVATION = Rule("activation", "activation", one_of(*ACTIVATIONS), ", ".join(ACTIVATIONS))
DROPOUT = Rule("dropout", "dropout", is_dropout, "true/false (rate 0.25) or a rate in [0, 1)")
LR = Rule("lr", "lr", is_lr, "positive learning rates")


def check_rules(space: SearchSpace, model: str, rules: Iterable[Rule]) -> dict[str, tuple[int, ...]]:
    """Match every decision of ``space`` to one of ``rules`` and check its values.

    Returns:
        decision name -> the integers its pattern captured (``filters_2`` -> ``(2,)``).

    Raises:
        ConfigError: a decision no rule matches, or a value its rule does not allow.
    """
    rules = tuple(rules)
    captured: dict[str, tuple[int, ...]] = {}
    for d in space.decisions:
        rule, match = next(((r, m) for r in rules if (m := re.fullmatch(r.pattern, d.name))), (None, None))
        if rule is None or match is None:
            shown = [r.shown for r in rules]
            raise ConfigError(
                f"the {model} model does not use decision {d.name!r}"
                + did_you_mean(d.name, shown)
                + f"; it reads {', '.join(shown)}"
            )
        bad = [v for v in d.values if not rule.ok(v)]
        if bad:
            raise ConfigError(
                f"decision {d.name!r}: value {bad[0]!r} is not usable by the {model} model; "
                f"allowed: {rule.allowed}"
            )
        captured[d.name] = tuple(int(g) for g in match.groups())
    return captured


def max_value(space: SearchSpace, name: str, default: int) -> int:
    """The largest value ``name`` can take, or ``default`` when the space fixes it by leaving it out."""
    return max(int(v) for v in space[name].values) if name in space.names else default  # type: ignore[arg-type]


def check_layer_indices(captured: Mapping[str, tuple[int, ...]], max_layers: int) -> None:
    """Per-layer decisions must name a layer that can exist, else they would silently do nothing."""
    for name, idx in captured.items():
        if idx and max(idx) >= max_layers:
            raise ConfigError(
                f"decision {name!r} can never be used: num_layers is at most {max_layers}, "
                f"so layer indices run 0..{max_layers - 1}"
            )


def dropout_rate(value: Value) -> float:
    if isinstance(value, bool):
        return DROPOUT_RATE if value else 0.0
    return float(value)


def check_image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, ...]:
    """The shape as ints; raises ConfigError unless it is (H, W) or (H, W, C), each at least 1."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ConfigError(
            f"the {model} model needs images of shape (height, width) or (height, width, channels), "
            f"got {shape}; use the mlp model for flat vectors"
        )
    return shape


def image_input(input_shape: tuple[int, ...], model: str) -> tuple[Any, Any]:
    """``keras.Input`` and the tensor convolutions read: (H, W) inputs get a channel axis (MNIST)."""
    import keras

    shape = check_image_shape(input_shape, model)
    inputs = keras.Input(shape=shape)
    x = keras.layers.Reshape((*shape, 1))(inputs) if len(shape) == 2 else inputs
    return inputs, x


def classifier(x: Any, a: Mapping[str, Any], num_classes: int) -> Any:
    """Head: global average pooling (or flatten), optional Dense(head_units), dropout, then
    :func:`output` (a softmax, or a linear unit for regression)."""
    import keras

    x = keras.layers.Flatten()(x) if a.get("head") == "flatten" else keras.layers.GlobalAveragePooling2D()(x)
    if int(a.get("head_units", 0)) > 0:
        x = keras.layers.Dense(int(a["head_units"]), activation=a["activation"])(x)
    rate = dropout_rate(a["dropout"])
    if rate > 0:
        x = keras.layers.Dropout(rate)(x)
    return output(x, num_classes)


def output(x: Any, num_classes: int) -> Any:
    """The last layer: a softmax over ``num_classes``, or, for a regression dataset (``num_classes``
    0), one linear unit (the built-in models predict one target; several are a model function's).

    float32 even under mixed precision: a float16 softmax over-/underflows (Keras's own advice), and
    a float16 regression output loses the target's precision.
    """
    import keras

    if num_classes == 0:
        return keras.layers.Dense(1, dtype="float32")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)


BN_MOMENTUM = 0.5
"""A child trains for an epoch or two of a few dozen steps, while its weights still change fast. With
Keras's 0.99 (and even 0.9) the moving statistics lagged so far behind that one-epoch skip and cell
children on 1,500 MNIST images scored chance (0.098) on validation while scoring 0.5-0.8 with batch
statistics; at 0.5 the validation accuracy matched (0.51, 0.52): the reward measures the network,
not the lag of its statistics."""


def batch_norm(x: Any) -> Any:
    import keras

    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
