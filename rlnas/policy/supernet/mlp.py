"""The shared-weight MLP: the widest layers, sliced.

Layer i owns a Dense kernel of ``(widest input, max units_i)``; a path uses its first ``units_i``
columns and as many rows as the previous layer gives (the flattened input for layer 0). The softmax
layer reads whichever layer is last, so it is owned per depth: one output kernel per value of
``num_layers``, sliced to the last layer's units. The activation is a branch of the traced graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rlnas.models import mlp
from rlnas.policy.supernet.base import SharedNet, offered
from rlnas.policy.supernet.chain import activation, select
from rlnas.space import SearchSpace, Value


def _layout(space: SearchSpace, input_shape: tuple[int, ...]) -> tuple[list[int], list[int], int]:
    """(possible depths, max units per layer, flattened input size)."""
    depths = sorted(int(v) for v in offered(space, "num_layers", 1))  # type: ignore[arg-type]
    units = [max(int(v) for v in space[f"units_{i}"].values) for i in range(max(depths))]  # type: ignore[arg-type]
    return depths, units, int(np.prod(input_shape))


class MlpSupernet(SharedNet):
    """See the module docstring."""

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int, **kw: Any) -> None:
        self.depths, self.units, self.flat = _layout(space, input_shape)
        self.activations = offered(space, "activation", mlp.DEFAULTS["activation"])
        super().__init__(space, input_shape, num_classes, **kw)

    @classmethod
    def plan(
        cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int
    ) -> dict[str, tuple[int, ...]]:
        depths, units, flat = _layout(space, input_shape)
        shapes: dict[str, tuple[int, ...]] = {}
        for i, u in enumerate(units):
            shapes[f"dense{i}/kernel"] = (flat if i == 0 else units[i - 1], u)
            shapes[f"dense{i}/bias"] = (u,)
        for n in depths:
            shapes[f"out{n}/kernel"] = (units[n - 1], num_classes)
            shapes[f"out{n}/bias"] = (num_classes,)
        return shapes

    @classmethod
    def activation_floats(cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int) -> int:
        _, units, flat = _layout(space, input_shape)
        return flat + 2 * sum(units) + num_classes

    def path(self, arch: Mapping[str, Value]) -> np.ndarray:
        a = mlp.DEFAULTS | dict(arch)
        n = int(a["num_layers"])
        units = [int(a[f"units_{i}"]) if i < n else 1 for i in range(len(self.units))]
        return np.asarray([self.depths.index(n), *units, self.activations.index(a["activation"])], np.int32)

    def forward(self, x: Any, path: Any) -> Any:
        import tensorflow as tf

        w = self.weights
        x = tf.reshape(x, [tf.shape(x)[0], self.flat])
        act_index = path[1 + len(self.units)]

        def act(t: Any) -> Any:
            return select(act_index, len(self.activations), lambda k: activation(str(self.activations[k]))(t))

        outs = []
        for i in range(len(self.units)):
            u = path[1 + i]
            x = act(x @ w[f"dense{i}/kernel"][: tf.shape(x)[-1], :u] + w[f"dense{i}/bias"][:u])
            outs.append(x)

        def head(k: int) -> Any:
            n = self.depths[k]
            h = outs[n - 1]
            return h @ w[f"out{n}/kernel"][: tf.shape(h)[-1]] + w[f"out{n}/bias"]

        return select(path[0], len(self.depths), head)
