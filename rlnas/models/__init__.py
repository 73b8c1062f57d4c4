"""Child builders by model name: what ``[space] model = "..."`` selects.

The one registry of model names. Each model has a standard ``space(lr_grid=...)`` (what the name
alone selects; the TOML reader asks :func:`standard_space`), a ``check(space)`` (names and values
of the decisions it reads; no Keras) and a ``build(arch, input_shape, num_classes)`` returning an
uncompiled ``keras.Model``;
:mod:`rlnas.models.child` compiles, trains and measures it the same way for every model.

A name with a colon, ``"module:function"``, is not a builder here but a keras-tuner model function
(:mod:`rlnas.space.keras_tuner`): it builds *and compiles* its own model, and reads whatever inputs it
was written for, so only its importability is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rlnas.errors import ConfigError, did_you_mean
from rlnas.models import cell, common, conv, mlp, skip
from rlnas.space import SearchSpace, cell_space, conv_space, default_space, skip_space


@dataclass(frozen=True)
class Model:
    """One child builder."""

    name: str
    space: Callable[..., SearchSpace]  # the standard space; keyword lr_grid: points of its lr grid
    check: Callable[[SearchSpace], None]
    build: Callable[[Mapping[str, Any], tuple[int, ...], int], Any]
    images: bool = True  # needs (H, W) or (H, W, C) inputs; the MLP flattens anything


MODELS: Mapping[str, Model] = {
    m.name: m
    for m in (
        Model("mlp", default_space, mlp.check, mlp.build, images=False),
        Model("conv", conv_space, conv.check, conv.build),
        Model("skip", skip_space, skip.check, skip.build),
        Model("cell", cell_space, cell.check, cell.build),
    )
}


def is_function(name: str) -> bool:
    """Whether ``name`` is a keras-tuner model function (``module:function``), not a builder."""
    return ":" in name


def standard_space(name: Any, lr_grid: int | None = None) -> SearchSpace | None:
    """The standard space of built-in model ``name`` (its own lr grid unless ``lr_grid`` is given);
    None when no built-in model has that name (see docs/spaces.md)."""
    model = MODELS.get(name)
    if model is None:
        return None
    return model.space(**({"lr_grid": lr_grid} if lr_grid is not None else {}))


def get_model(name: str) -> Model:
    """The builder called ``name``; raises ConfigError naming the known ones."""
    if is_function(name):
        raise ConfigError(
            f"model {name!r} is a model function: it builds and compiles its own model, "
            "so it has no builder here (train it with rlnas.models.child.train_and_evaluate)"
        )
    if name not in MODELS:
        raise ConfigError(
            f"unknown model {name!r}; this version builds: {', '.join(map(repr, MODELS))}"
            + did_you_mean(str(name), MODELS)
        )
    return MODELS[name]


def check_input_shape(name: str, input_shape: tuple[int, ...]) -> None:
    """Raise ConfigError if model ``name`` cannot read inputs of ``input_shape`` (one sample's shape);
    a model function's inputs are its own business (Keras reports a mismatch when it trains)."""
    if not is_function(name) and get_model(name).images:
        common.check_image_shape(input_shape, name)
