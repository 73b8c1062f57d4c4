"""The standard spaces: keras-tuner's MLP (the default), Zoph & Le's convolutional chain, a chain with
skip connections and a NASNet-style cell; each is plain data built from :mod:`rlnas.space.decisions`.

They live apart from the decision machinery so that the data model reads on its own, and so that the
model registry (:mod:`rlnas.models`) can name them without the space knowing any model.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlnas.errors import ConfigError
from rlnas.space.decisions import Decision, SearchSpace, log_grid


def default_space(*, lr_grid: int = 7, max_layers: int = 3) -> SearchSpace:
    """The MLP space practitioners write for keras-tuner on MNIST.

    ``num_layers`` 1..3; ``units_i`` 32..512 step 32, existing only when ``num_layers > i``; a shared
    ``activation``; ``dropout`` (rate 0.25 before the output); Adam ``lr`` on a log grid 1e-4..1e-2.
    """
    decisions = [Decision("num_layers", tuple(range(1, max_layers + 1)), "int")]
    for i in range(max_layers):
        when = {"num_layers": tuple(range(i + 1, max_layers + 1))} if i else {}
        decisions.append(Decision(f"units_{i}", tuple(range(32, 513, 32)), "int", when))
    decisions += [
        Decision("activation", ("relu", "tanh"), "choice"),
        Decision("dropout", (False, True), "bool"),
        Decision("lr", log_grid(1e-4, 1e-2, lr_grid), "float"),
    ]
    return SearchSpace(decisions, model="mlp")


def _per_layer(max_layers: int, i: int) -> dict[str, tuple[int, ...]]:
    """Condition of layer ``i``'s decisions: they exist only when ``num_layers > i``."""
    return {"num_layers": tuple(range(i + 1, max_layers + 1))} if i else {}


def _conv_layer(i: int, max_layers: int, filters: Sequence[int], kernels: Sequence[int]) -> list[Decision]:
    when = _per_layer(max_layers, i)
    return [
        Decision(f"filters_{i}", tuple(filters), "int", when),
        Decision(f"kernel_h_{i}", tuple(kernels), "int", when),
        Decision(f"kernel_w_{i}", tuple(kernels), "int", when),
        Decision(f"pool_{i}", ("none", "max", "avg"), "choice", when),
    ]


def _training(lr_grid: int) -> list[Decision]:
    return [
        Decision("activation", ("relu", "tanh"), "choice"),
        Decision("dropout", (False, True), "bool"),
        Decision("lr", log_grid(1e-4, 1e-2, lr_grid), "float"),
    ]


def conv_space(
    *,
    max_layers: int = 4,
    filters: Sequence[int] = (16, 32, 64),
    kernels: Sequence[int] = (1, 3, 5, 7),
    lr_grid: int = 5,
) -> SearchSpace:
    """Zoph & Le's CNN search without skips (model ``conv``): a chain of convolutions.

    Per layer i (existing when ``num_layers > i``): ``filters_i``, filter height ``kernel_h_i`` and
    width ``kernel_w_i``, and ``pool_i`` (none, max or avg 2x2, where the map halves); then the head
    (``head``: global average pooling or flatten; ``head_units``: 0 or a hidden Dense of 64),
    ``activation``, ``dropout`` and Adam ``lr``.
    """
    decisions = [Decision("num_layers", tuple(range(1, max_layers + 1)), "int")]
    for i in range(max_layers):
        decisions += _conv_layer(i, max_layers, filters, kernels)
    decisions += [Decision("head", ("gap", "flatten"), "choice"), Decision("head_units", (0, 64), "int")]
    return SearchSpace(decisions + _training(lr_grid), model="conv")


def skip_space(
    *,
    max_layers: int = 5,
    filters: Sequence[int] = (16, 32),
    kernels: Sequence[int] = (1, 3, 5),
    lr_grid: int = 5,
) -> SearchSpace:
    """Zoph & Le's CNN search with skip connections (model ``skip``).

    The conv chain (global average pooling head) plus, after layer i's own decisions, one bool
    ``skip_i_j`` per earlier layer j < i - 1 (layer i - 1 always feeds layer i): whether layer j's
    output is also concatenated into layer i's input. It exists only when layer i does.
    """
    decisions = [Decision("num_layers", tuple(range(1, max_layers + 1)), "int")]
    for i in range(max_layers):
        decisions += _conv_layer(i, max_layers, filters, kernels)
        when = _per_layer(max_layers, i)
        decisions += [Decision(f"skip_{i}_{j}", (False, True), "bool", when) for j in range(i - 1)]
    return SearchSpace(decisions + _training(lr_grid), model="skip")


CELL_OPS = ("identity", "sep3x3", "sep5x5", "max3x3", "avg3x3", "conv1x1")
"""Operations of the ``cell`` model (the builder in rlnas.models.cell checks the same names)."""


def cell_space(
    *,
    num_nodes: int = 3,
    filters: Sequence[int] = (8, 16),
    num_cells: Sequence[int] = (1, 2),
    ops: Sequence[str] = CELL_OPS,
    lr_grid: int = 5,
) -> SearchSpace:
    """NASNet-style cell search (model ``cell``): one cell of ``num_nodes`` nodes.

    Node b: ``node<b>_in0`` and ``node<b>_in1`` (``prev`` = h-1, ``prev_prev`` = h-2 or an earlier
    ``node<k>``) and an operation for each, ``node<b>_op0`` and ``node<b>_op1``; then the width
    ``filters``, the cells per stack ``num_cells`` (two stacks, one fixed reduction between them),
    ``dropout`` and Adam ``lr``.
    """
    if num_nodes < 1:
        raise ConfigError(f"cell_space needs num_nodes >= 1, got {num_nodes}")
    decisions = []
    for b in range(num_nodes):
        inputs = ("prev", "prev_prev", *(f"node{k}" for k in range(b)))
        decisions += [Decision(f"node{b}_in{k}", inputs, "choice") for k in (0, 1)]
        decisions += [Decision(f"node{b}_op{k}", tuple(ops), "choice") for k in (0, 1)]
    decisions += [
        Decision("filters", tuple(filters), "int"),
        Decision("num_cells", tuple(num_cells), "int"),
        Decision("dropout", (False, True), "bool"),
        Decision("lr", log_grid(1e-4, 1e-2, lr_grid), "float"),
    ]
    return SearchSpace(decisions, model="cell")
