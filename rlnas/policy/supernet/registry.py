"""Which spaces weight sharing covers, and the supernet class of each (kept apart from the package's
face so that the memory estimate can ask for a class without an import cycle)."""

from __future__ import annotations

import importlib
from typing import Any

from rlnas.errors import ConfigError
from rlnas.space import SearchSpace

SUPPORTED_MODELS = ("conv", "skip", "cell", "mlp")
"""Built-in models weight sharing covers."""


def check_supported(space: SearchSpace) -> None:
    """Raise ConfigError (one line, naming the supported spaces) unless weight sharing covers ``space``."""
    from rlnas.models import get_model, is_function

    model = space.model
    supported = ", ".join(SUPPORTED_MODELS)
    if not isinstance(model, str) or is_function(model):
        raise ConfigError(
            f"weight sharing cannot cover model {model!r}: a model function builds its own network; "
            f"it supports the built-in spaces {supported}"
        )
    if model not in SUPPORTED_MODELS:
        raise ConfigError(
            f"weight sharing cannot cover model {model!r}; it supports the built-in spaces {supported}"
        )
    try:
        get_model(model).check(space)
    except ConfigError as e:
        raise ConfigError(
            f"weight sharing cannot cover this {model} space ({e}); "
            f"it supports the built-in spaces {supported}"
        ) from None


def supernet_class(space: SearchSpace) -> Any:
    """The supernet class of a supported space (after :func:`check_supported`)."""
    check_supported(space)
    module, name = _CLASSES[space.model]
    return getattr(importlib.import_module(f"rlnas.policy.supernet.{module}"), name)


_CLASSES = {
    "conv": ("chain", "ChainSupernet"),
    "skip": ("chain", "SkipSupernet"),
    "cell": ("cell", "CellSupernet"),
    "mlp": ("mlp", "MlpSupernet"),
}
