"""The conv chain with Zoph & Le's skip connections (anchor points).

Layer i always reads layer i-1; ``skip_<i>_<j>`` (a bool, for j < i - 1) adds layer j's output to
layer i's input. ``skip_<i>_<i-1>`` would duplicate the chain's own edge and is rejected: a space
without it has no two encodings of one network, and no layer can lose its input (Zoph & Le fed the
image to such layers; ENAS's macro space, like this one, keeps the chain). Inputs of different sizes
are made compatible as :func:`rlnas.models.conv.concat_compatible` says, then concatenated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlnas.errors import ConfigError
from rlnas.models import common, conv
from rlnas.models.common import Rule
from rlnas.space import SearchSpace

RULES = (*conv.RULES, Rule(r"skip_(\d+)_(\d+)", "skip_<i>_<j>", lambda v: isinstance(v, bool), "true, false"))


def check(space: SearchSpace) -> None:
    """The conv model's decisions plus ``skip_<i>_<j>`` with j < i - 1 and i below the largest num_layers."""
    captured = common.check_rules(space, "skip", RULES)
    common.check_layer_indices(captured, common.max_value(space, "num_layers", 1))
    for name, idx in captured.items():
        if name.startswith("skip_") and not idx[1] < idx[0] - 1:
            raise ConfigError(
                f"decision {name!r}: skip_<i>_<j> needs j < i - 1 (layer i already reads layer i - 1; "
                "a skip comes from an earlier layer)"
            )


def build(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    """An uncompiled conv chain with skip connections (Keras functional API)."""
    return conv.build_chain(arch, input_shape, num_classes, model="skip", skips=True)
