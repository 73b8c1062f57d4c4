"""The shared-weight NASNet-style cell network (model ``cell``), ENAS's micro search space.

The child's structure (:mod:`rlnas.models.cell`) with every choice a branch of one traced graph:
node b's two inputs are picked among ``prev``, ``prev_prev`` and the earlier nodes, each goes
through its operation and the two are added. Weights are owned per (stack, cell, node, input slot,
operation), as in ENAS: the operation of node 1's first slot in the second cell has its own
separable or 1x1 convolution whatever input it reads. Widths are sliced: every weight is made for
the largest ``filters`` (doubled per reduction) and a path uses its first channels. Whether a cell
or a reduction exists (``num_cells``, ``reductions``) is a branch too.

A cell's output concatenates the nodes no other node reads, so what reads it (the next cells' 1x1
projections, the reduction, the classifier) sees a varying set of channel blocks. A linear map of a
concatenation is the sum of the maps of its blocks, so each reader owns one weight block per node and
a path adds the blocks of its unused nodes, which computes exactly the child's function. Batch
normalisation uses batch statistics, as in :mod:`.chain`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rlnas.models import cell
from rlnas.models.common import check_image_shape
from rlnas.policy.supernet.base import BN_EPSILON, SharedNet, offered
from rlnas.policy.supernet.chain import select
from rlnas.space import SearchSpace, Value

State = list[tuple[Any, Any]]
"""A cell output as (tensor, in-use flag) blocks; a single tensor is one block whose flag is 1."""


class Layout:
    """Shapes and choices of a cell space (no TensorFlow: the memory estimate uses it)."""

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...]) -> None:
        shape = check_image_shape(input_shape, "cell")
        self.h, self.w, self.channels = shape[0], shape[1], shape[2] if len(shape) == 3 else 1
        self.filters = tuple(int(v) for v in offered(space, "filters", cell.DEFAULTS["filters"]))  # type: ignore[arg-type]
        self.cells = tuple(int(v) for v in offered(space, "num_cells", cell.DEFAULTS["num_cells"]))  # type: ignore[arg-type]
        self.reductions = tuple(int(v) for v in offered(space, "reductions", cell.DEFAULTS["reductions"]))  # type: ignore[arg-type]
        self.nodes = 1 + max(int(n[4 : n.index("_")]) for n in space.names if n.startswith("node"))
        self.ops = {(b, k): space[f"node{b}_op{k}"].values for b in range(self.nodes) for k in (0, 1)}
        self.ins = {(b, k): space[f"node{b}_in{k}"].values for b in range(self.nodes) for k in (0, 1)}

    def width(self, stack: int) -> int:
        return max(self.filters) * 2**stack

    def plan(self, num_classes: int) -> dict[str, tuple[int, ...]]:
        f0, blocks = self.width(0), self.nodes
        shapes: dict[str, tuple[int, ...]] = {"stem/k": (3, 3, self.channels, f0), **_bn("stem", f0)}
        for s in range(max(self.reductions) + 1):
            f = self.width(s)
            if s:  # the reduction reads the last cell of the stack before (or the stem)
                shapes |= {f"red{s}/k{b}": (3, 3, f // 2, f) for b in range(blocks)} | _bn(f"red{s}", f)
            for c in range(max(self.cells)):
                pre = f"s{s}c{c}"
                for src in ("prev", "prev_prev"):
                    shapes |= {f"{pre}/{src}/k{b}": (1, 1, f, f) for b in range(blocks)} | _bn(
                        f"{pre}/{src}", f
                    )
                for (b, k), ops in self.ops.items():
                    for op in ops:
                        shapes |= _op_shapes(f"{pre}/n{b}s{k}/{op}", str(op), f)
        last = self.width(max(self.reductions))
        shapes |= {f"out/k{b}": (last, num_classes) for b in range(blocks)} | {"out/bias": (num_classes,)}
        return shapes


def _bn(name: str, f: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}/gamma": (f,), f"{name}/beta": (f,)}


def _op_shapes(name: str, op: str, f: int) -> dict[str, tuple[int, ...]]:
    if op == "conv1x1":
        return {f"{name}/k": (1, 1, f, f), **_bn(name, f)}
    if op.startswith("sep"):
        size = int(op[3])
        return {f"{name}/depthwise": (size, size, f, 1), f"{name}/pointwise": (1, 1, f, f), **_bn(name, f)}
    return {}


class CellSupernet(SharedNet):
    """See the module docstring."""

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int, **kw: Any) -> None:
        self.layout = Layout(space, input_shape)
        super().__init__(space, input_shape, num_classes, **kw)

    @classmethod
    def plan(
        cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int
    ) -> dict[str, tuple[int, ...]]:
        return Layout(space, input_shape).plan(num_classes)

    @classmethod
    def activation_floats(cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int) -> int:
        """Per cell: two projections and, per node, two ops of up to four tensors each, at full width."""
        lay = Layout(space, input_shape)
        per_cell = (4 + 8 * lay.nodes) * lay.h * lay.w * lay.width(0)
        stacks = sum(per_cell * 2**s // 4**s for s in range(max(lay.reductions) + 1))
        return lay.h * lay.w * lay.channels + stacks * max(lay.cells)

    def path(self, arch: Mapping[str, Value]) -> np.ndarray:
        lay = self.layout
        a = cell.DEFAULTS | dict(arch)
        head = [int(a["filters"]), int(a["num_cells"]), int(a["reductions"])]
        nodes, read = [], set()
        for b in range(lay.nodes):
            for k in (0, 1):
                nodes.append(lay.ins[(b, k)].index(a[f"node{b}_in{k}"]))
                read.add(a[f"node{b}_in{k}"])
            nodes += [lay.ops[(b, k)].index(a[f"node{b}_op{k}"]) for k in (0, 1)]
        unused = [f"node{b}" not in read for b in range(lay.nodes)]
        return np.asarray([*head, *nodes, *(int(u) for u in unused)], np.int32)

    # -- graph -----------------------------------------------------------------------------------
    def forward(self, x: Any, path: Any) -> Any:
        import tensorflow as tf

        lay, w = self.layout, self.weights
        if len(self.input_shape) == 2:
            x = x[..., None]
        f0 = path[0]
        x = self._bn(tf.nn.conv2d(x, w["stem/k"][:, :, :, :f0], 1, "SAME"), "stem", f0)
        prev_prev = prev = self._single(x)
        for s in range(max(lay.reductions) + 1):
            f = f0 * 2**s
            if s:
                active = s <= path[2]
                red = tf.cond(
                    active,
                    lambda s=s, f=f, p=prev: self._bn(
                        self._blocks(p, f"red{s}/k", f, 2, relu=True), f"red{s}", f
                    ),
                    lambda p=prev: p[0][0],
                )
                prev_prev = prev = _choose(active, self._single(red), prev)
            for c in range(max(lay.cells)):
                on = (c < path[1]) & (s <= path[2])
                out = tf.cond(
                    on,
                    lambda c=c, s=s, f=f, pp=prev_prev, p=prev: self._cell(f"s{s}c{c}", f, pp, p, path),
                    lambda p=prev: p,
                )
                prev_prev, prev = _choose(on, prev, prev_prev), out
        logits = w["out/bias"]
        for b, (t, on) in enumerate(prev):
            k = w[f"out/k{b}"][: tf.shape(t)[-1]]
            feats = tf.reduce_mean(tf.nn.relu(t), [1, 2])
            logits = logits + tf.cast(on, tf.float32) * (feats @ k)
        return logits

    def _single(self, x: Any) -> State:
        """A one-tensor state as blocks: block 0 in use, the others unused copies."""
        import tensorflow as tf

        return [(x, tf.constant(1 if b == 0 else 0, tf.int32)) for b in range(self.layout.nodes)]

    def _cell(self, pre: str, f: Any, prev_prev: State, prev: State, path: Any) -> State:
        import tensorflow as tf

        lay = self.layout
        states = [
            self._bn(self._blocks(prev, f"{pre}/prev/k", f, 1, relu=True), f"{pre}/prev", f),
            self._bn(self._blocks(prev_prev, f"{pre}/prev_prev/k", f, 1, relu=True), f"{pre}/prev_prev", f),
        ]
        base = 3
        for b in range(lay.nodes):
            total = 0
            for k in (0, 1):
                src = path[base + 4 * b + k]
                x = select(src, len(lay.ins[(b, k)]), lambda i: tf.identity(states[i]))
                ops = lay.ops[(b, k)]
                total = total + select(
                    path[base + 4 * b + 2 + k],
                    len(ops),
                    lambda i, x=x, n=f"{pre}/n{b}s{k}", ops=ops: self._op(x, f"{n}/{ops[i]}", str(ops[i]), f),
                )
            states.append(total)
        unused = base + 4 * lay.nodes
        return [(states[2 + b], path[unused + b]) for b in range(lay.nodes)]

    def _blocks(self, state: State, name: str, f: Any, stride: int, *, relu: bool) -> Any:
        """Sum over the in-use blocks of a convolution each (a convolution of their concatenation)."""
        import tensorflow as tf

        total = None
        for b, (t, on) in enumerate(state):
            k = self.weights[f"{name}{b}"]
            k = k[:, :, : tf.shape(t)[-1], :f]
            conv = lambda t=t, k=k: tf.nn.conv2d(tf.nn.relu(t) if relu else t, k, stride, "SAME")  # noqa: E731
            term = conv() if total is None else tf.cond(on > 0, conv, lambda s=total: tf.zeros_like(s))
            if total is None:
                term = term * tf.cast(on, term.dtype)
            total = term if total is None else total + term
        return total

    def _op(self, x: Any, name: str, op: str, f: Any) -> Any:
        import tensorflow as tf

        w = self.weights
        if op == "identity":
            return tf.identity(x)
        if op in ("max3x3", "avg3x3"):
            pool = tf.nn.max_pool2d if op == "max3x3" else tf.nn.avg_pool2d
            return pool(x, 3, 1, "SAME")
        if op == "conv1x1":
            return self._bn(tf.nn.conv2d(tf.nn.relu(x), w[f"{name}/k"][:, :, :f, :f], 1, "SAME"), name, f)
        y = tf.nn.separable_conv2d(
            tf.nn.relu(x),
            w[f"{name}/depthwise"][:, :, :f],
            w[f"{name}/pointwise"][:, :, :f, :f],
            [1, 1, 1, 1],
            "SAME",
        )
        return self._bn(y, name, f)

    def _bn(self, x: Any, name: str, f: Any) -> Any:
        import tensorflow as tf

        mean, var = tf.nn.moments(x, [0, 1, 2])
        return tf.nn.batch_normalization(
            x, mean, var, self.weights[f"{name}/beta"][:f], self.weights[f"{name}/gamma"][:f], BN_EPSILON
        )


def _choose(on: Any, a: State, b: State) -> State:
    """State ``a`` where ``on``, else ``b`` (block by block)."""
    import tensorflow as tf

    return [
        (tf.cond(on, lambda t=t: tf.identity(t), lambda u=u: tf.identity(u)), tf.where(on, m, n))
        for (t, m), (u, n) in zip(a, b, strict=True)
    ]
