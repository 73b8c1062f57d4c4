"""NASNet-style cell search: one searched cell, stacked, with a fixed reduction between stacks.

A cell has B nodes. Node b reads two inputs, each from ``prev`` (the previous cell's output, h-1),
``prev_prev`` (the one before, h-2) or an earlier node ``node<k>``, applies one operation to each and
adds the two. The cell's output concatenates the nodes no other node reads (NASNet's rule; the last
node is always among them). At the start of each cell a 1x1 convolution projects h-1 and h-2 to
``filters`` channels, so every operation sees and returns ``filters`` channels at one spatial size.

The network: stem conv 3x3 -> ``num_cells`` cells -> [reduction -> ``num_cells`` cells] x
``reductions`` -> ReLU -> global average pooling -> dropout -> softmax. The reduction is fixed, not
searched (a stride-2 3x3 convolution doubling the channels; after it h-2 is the reduced map too),
which halves the controller's decisions compared with NASNet's separate reduction cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlnas.errors import ConfigError
from rlnas.models import common
from rlnas.models.common import Rule, is_nonneg_int, is_pos_int, one_of
from rlnas.space import CELL_OPS, SearchSpace

OPS = CELL_OPS  # the names cell_space() offers by default
CELL_INPUTS = ("prev", "prev_prev")
DEFAULTS: dict[str, Any] = {"filters": 16, "num_cells": 1, "reductions": 1, "dropout": False, "lr": 1e-3}
NODE_PARTS = ("in0", "in1", "op0", "op1")

RULES = (
    Rule("filters", "filters", is_pos_int, "positive whole numbers"),
    Rule("num_cells", "num_cells", is_pos_int, "positive whole numbers"),
    Rule("reductions", "reductions", is_nonneg_int, "whole numbers >= 0"),
    Rule(r"node(\d+)_in[01]", "node<b>_in0, node<b>_in1", lambda v: isinstance(v, str), "input names"),
    Rule(r"node(\d+)_op[01]", "node<b>_op0, node<b>_op1", one_of(*OPS), ", ".join(OPS)),
    common.DROPOUT,
    common.LR,
)


def check(space: SearchSpace) -> None:
    """Decision names and values; every node 0..B-1 complete; inputs name only h-1, h-2 or earlier nodes."""
    captured = common.check_rules(space, "cell", RULES)
    nodes = {idx[0] for idx in captured.values() if idx}
    if not nodes:
        raise ConfigError("the cell model needs at least node0_in0, node0_in1, node0_op0, node0_op1")
    for b in range(max(nodes) + 1):
        for part in NODE_PARTS:
            if f"node{b}_{part}" not in space.names:
                raise ConfigError(
                    f"cell node {b} lacks decision 'node{b}_{part}'; each node b needs "
                    + ", ".join(f"node<b>_{p}" for p in NODE_PARTS)
                )
        allowed = node_inputs(b)
        for part in ("in0", "in1"):
            bad = [v for v in space[f"node{b}_{part}"].values if v not in allowed]
            if bad:
                raise ConfigError(
                    f"decision 'node{b}_{part}': input {bad[0]!r} is not h-1, h-2 or an earlier node; "
                    f"allowed: {', '.join(allowed)}"
                )


def node_inputs(b: int) -> tuple[str, ...]:
    """What node ``b`` may read: the two cell inputs and the nodes before it."""
    return (*CELL_INPUTS, *(f"node{k}" for k in range(b)))


def num_nodes(arch: Mapping[str, Any]) -> int:
    return sum(1 for name in arch if name.startswith("node") and name.endswith("_op0"))


def build(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    """An uncompiled stack of cells (see the module docstring)."""
    import keras

    a = DEFAULTS | dict(arch)
    filters = int(a["filters"])
    inputs, x = common.image_input(input_shape, "cell")
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    prev_prev = prev = common.batch_norm(x)
    for stack in range(int(a["reductions"]) + 1):
        if stack:
            filters *= 2
            prev_prev = prev = _relu_conv_bn(prev, filters, 3, strides=2)
        for _ in range(int(a["num_cells"])):
            prev_prev, prev = prev, _cell(prev, prev_prev, a, filters)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(prev))
    rate = common.dropout_rate(a["dropout"])
    if rate > 0:
        x = keras.layers.Dropout(rate)(x)
    return keras.Model(inputs, common.output(x, num_classes))


def _cell(prev: Any, prev_prev: Any, a: Mapping[str, Any], filters: int) -> Any:
    import keras

    states = {"prev": _relu_conv_bn(prev, filters, 1), "prev_prev": _relu_conv_bn(prev_prev, filters, 1)}
    read: set[str] = set()
    for b in range(num_nodes(a)):
        ins = [a[f"node{b}_in{k}"] for k in (0, 1)]
        read.update(ins)
        branches = [_op(states[src], a[f"node{b}_op{k}"], filters) for k, src in enumerate(ins)]
        states[f"node{b}"] = keras.layers.Add()(branches)
    unused = [states[f"node{b}"] for b in range(num_nodes(a)) if f"node{b}" not in read]
    return unused[0] if len(unused) == 1 else keras.layers.Concatenate(axis=-1)(unused)


def _op(x: Any, op: str, filters: int) -> Any:
    import keras

    if op == "identity":
        return x
    if op in ("max3x3", "avg3x3"):
        pool = keras.layers.MaxPooling2D if op == "max3x3" else keras.layers.AveragePooling2D
        return pool(3, strides=1, padding="same")(x)
    if op == "conv1x1":
        return _relu_conv_bn(x, filters, 1)
    x = keras.layers.ReLU()(x)
    x = keras.layers.SeparableConv2D(filters, int(op[3]), padding="same", use_bias=False)(x)
    return common.batch_norm(x)


def _relu_conv_bn(x: Any, filters: int, size: int, strides: int = 1) -> Any:
    import keras

    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(filters, size, strides=strides, padding="same", use_bias=False)(x)
    return common.batch_norm(x)
