"""DARTS's continuous relaxation of the cell space: every edge a cell may have, each a mixed operation.

For node ``b`` and each source ``s`` the space lets it read (the values of ``node<b>_in0`` and
``node<b>_in1``), one edge computes ``sum_k w[e, k] * op_k(s)`` over the operations the space allows
there (the values of ``node<b>_op0`` and ``node<b>_op1``), and the node is the sum of its edges (Liu et
al., 2019). ``w`` is an ``(edges, ops)`` matrix given to every forward pass: ``softmax(alpha)`` while
searching, or a one-hot per chosen (edge, op) to run one discrete architecture on the same weights
(:func:`path_mix`), so that the supernet can rank the space's architectures like ENAS's does.

The network is the cell child's (:mod:`rlnas.models.cell`): a 3x3 stem, ``cells`` cells, then per
reduction a stride-2 3x3 convolution doubling the width and ``cells`` cells more, ReLU, global average
pooling and a dense head; the operations are the child's. As in DARTS's search network, and unlike the
child: every normalisation is a batch normalisation without scale or offset, a pooling is followed by
one, and a cell's output concatenates all its nodes (the child concatenates the nodes no node reads,
which is not defined while every edge is weighted). Normalisation always uses the batch's own
statistics, in training and evaluation alike: a discrete path's activations differ from the mixture's,
so moving averages of the mixture would misjudge every path.

Raw TensorFlow, not Keras layers: the weight step and the alpha step each trace once, and the state
to checkpoint is a plain list of variables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from rlnas.space import SearchSpace

EPS = 1e-5


@dataclass(frozen=True)
class Edge:
    """One mixed edge: node ``node`` reads source ``source`` (``prev``, ``prev_prev``, ``node<k>``)."""

    node: int
    source: str


def cell_nodes(space: SearchSpace) -> int:
    """Nodes of the space's cell (node0..node<B-1>, each with in0, in1, op0, op1)."""
    return sum(1 for name in space.names if name.startswith("node") and name.endswith("_op0"))


def space_edges(space: SearchSpace) -> tuple[Edge, ...]:
    """Every (node, source) pair the space allows, nodes in order, sources in the order the space lists."""
    edges = []
    for b in range(cell_nodes(space)):
        sources = dict.fromkeys([*space[f"node{b}_in0"].values, *space[f"node{b}_in1"].values])
        edges += [Edge(b, str(s)) for s in sources]
    return tuple(edges)


def space_ops(space: SearchSpace) -> tuple[str, ...]:
    """Every operation any node may use, in the order of first appearance."""
    names = [f"node{b}_op{k}" for b in range(cell_nodes(space)) for k in (0, 1)]
    return tuple(dict.fromkeys(str(v) for n in names for v in space[n].values))


class DartsCellNet:
    """The mixed-operation network and its architecture weights ``alpha`` (edges x ops).

    Args:
        space: a cell space (checked by the caller).
        input_shape: (H, W) or (H, W, C).
        num_classes: classes of the softmax head.
        filters, cells, reductions: width, cells per stack and reductions of the searched network.
        seed: initial weights (alpha starts at 1e-3 * N(0, 1), as DARTS).
    """

    def __init__(
        self,
        space: SearchSpace,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        filters: int,
        cells: int,
        reductions: int,
        seed: int,
    ) -> None:
        self.space = space
        self.nodes = cell_nodes(space)
        self.edges = space_edges(space)
        self.ops = space_ops(space)
        self.mask = self._op_mask()
        self.channels = 1 if len(input_shape) == 2 else int(input_shape[-1])
        self.filters, self.cells, self.reductions = filters, cells, reductions
        self._rng = np.random.default_rng(seed)
        self.alpha = tf.Variable(1e-3 * self._rng.standard_normal(self.mask.shape), dtype=tf.float32)
        self.weights: list[tf.Variable] = []
        self._build(num_classes)

    # -- the architecture weights ----------------------------------------------------------------
    def _op_mask(self) -> np.ndarray:
        """(edges, ops) bool: which operations each edge may use (op0's values or op1's)."""
        mask = np.zeros((len(self.edges), len(self.ops)), bool)
        for e, edge in enumerate(self.edges):
            for k in (0, 1):
                for op in self.space[f"node{edge.node}_op{k}"].values:
                    mask[e, self.ops.index(str(op))] = True
        return mask

    def softmax(self) -> tf.Tensor:
        """softmax(alpha) per edge over its allowed operations (0 elsewhere)."""
        return masked_softmax(self.alpha, self.mask)

    # -- weights ---------------------------------------------------------------------------------
    def _var(self, shape: Sequence[int], fan_in: int) -> int:
        """A new He-initialised weight; returns its index in :attr:`weights`."""
        std = np.sqrt(2.0 / fan_in)
        value = (std * self._rng.standard_normal(tuple(shape))).astype(np.float32)
        self.weights.append(tf.Variable(value))
        return len(self.weights) - 1

    def _build(self, num_classes: int) -> None:
        f = self.filters
        self._stem = self._var((3, 3, self.channels, f), 9 * self.channels)
        self._plan: list[tuple[str, object]] = []
        c_pp = c_p = f
        for stack in range(self.reductions + 1):
            if stack:
                f *= 2
                self._plan.append(("reduce", self._var((3, 3, c_p, f), 9 * c_p)))
                c_pp = c_p = f
            for _ in range(self.cells):
                self._plan.append(("cell", self._cell_vars(c_pp, c_p, f)))
                c_pp, c_p = c_p, self.nodes * f
        self._dense = self._var((c_p, num_classes), c_p)
        self.weights.append(tf.Variable(tf.zeros((num_classes,))))

    def _cell_vars(self, c_pp: int, c_p: int, f: int) -> dict:
        """One cell's weights: the two 1x1 projections, and per (source, weighted op) one batched
        kernel for every edge that reads the source with that op (see :meth:`_source`)."""
        pre = {"prev": self._var((1, 1, c_p, f), c_p), "prev_prev": self._var((1, 1, c_pp, f), c_pp)}
        groups: dict[tuple[str, str], int | tuple[int, int]] = {}
        for source, name, edges in self._groups():
            n = len(edges)
            if name.startswith("sep"):
                size = int(name[3])
                groups[source, name] = (self._var((size, size, f, n), size * size), self._var((n, f, f), f))
            elif name == "conv1x1":
                groups[source, name] = self._var((1, 1, f, n * f), f)
        return {"pre": pre, "groups": groups}

    def _groups(self) -> list[tuple[str, str, list[int]]]:
        """(source, op, the edges reading ``source`` that may use ``op``), for every pair with edges."""
        sources = dict.fromkeys(e.source for e in self.edges)
        found = []
        for source in sources:
            for k, name in enumerate(self.ops):
                edges = [e for e, edge in enumerate(self.edges) if edge.source == source and self.mask[e, k]]
                if edges:
                    found.append((source, name, edges))
        return found

    # -- the forward pass ------------------------------------------------------------------------
    def logits(self, x: tf.Tensor, mix: tf.Tensor) -> tf.Tensor:
        """(n, classes) logits of images ``x`` with each edge's operations weighted by ``mix``."""
        w = self.weights
        if len(x.shape) == 3:
            x = x[..., None]
        h = _bn(tf.nn.conv2d(x, w[self._stem], 1, "SAME"))
        s0 = s1 = h
        for kind, params in self._plan:
            if kind == "reduce":
                s0 = s1 = _bn(tf.nn.conv2d(tf.nn.relu(s1), w[params], 2, "SAME"))  # type: ignore[index]
            else:
                s0, s1 = s1, self._cell(s0, s1, params, mix)  # type: ignore[arg-type]
        pooled = tf.reduce_mean(tf.nn.relu(s1), axis=[1, 2])
        return pooled @ w[self._dense] + w[self._dense + 1]

    def _cell(self, s0: tf.Tensor, s1: tf.Tensor, params: dict, mix: tf.Tensor) -> tf.Tensor:
        """Sources in order (h-1, h-2, node0, ...): once a node is complete, every edge it feeds is
        computed at once, so each operation runs once per source, batched over the edges."""
        w = self.weights
        states = {
            "prev": _relu_conv_bn(s1, w[params["pre"]["prev"]]),
            "prev_prev": _relu_conv_bn(s0, w[params["pre"]["prev_prev"]]),
        }
        terms: list[list[tf.Tensor]] = [[] for _ in range(self.nodes)]
        groups = self._groups()
        ready = ["prev", "prev_prev"]
        for b in range(self.nodes + 1):
            for source in ready:
                for src, name, edges in groups:
                    if src == source:
                        outs = _batched_op(
                            states[source], name, params["groups"].get((source, name)), w, len(edges)
                        )
                        k = self.ops.index(name)
                        for e, out in zip(edges, outs, strict=True):
                            terms[self.edges[e].node].append(mix[e, k] * out)
            if b < self.nodes:
                states[f"node{b}"] = tf.add_n(terms[b])
                ready = [f"node{b}"]
        return tf.concat([states[f"node{b}"] for b in range(self.nodes)], axis=-1)

    # -- discrete paths --------------------------------------------------------------------------
    def path_mix(self, tokens: Sequence[int]) -> np.ndarray:
        """(edges, ops) weights that run one architecture: 1 on each node's chosen (source, op) pairs
        (2 when both inputs pick the same source and operation), 0 elsewhere."""
        arch = self.space.decode(tokens)
        mix = np.zeros(self.mask.shape, np.float32)
        for b in range(self.nodes):
            for k in (0, 1):
                e = self.edges.index(Edge(b, str(arch[f"node{b}_in{k}"])))
                mix[e, self.ops.index(str(arch[f"node{b}_op{k}"]))] += 1.0
        return mix


def masked_softmax(alpha: tf.Tensor, mask: np.ndarray) -> tf.Tensor:
    """Softmax over each row's allowed entries; disallowed entries get exactly 0."""
    logits = tf.where(mask, alpha, tf.fill(tf.shape(alpha), -1e9))
    return tf.nn.softmax(logits, axis=-1) * tf.cast(mask, alpha.dtype)


def _bn(x: tf.Tensor) -> tf.Tensor:
    """Batch normalisation without scale or offset, on the batch's own statistics (see the module)."""
    ones = tf.ones(x.shape[-1:], x.dtype)  # fused: one kernel forward and one backward, not five
    return tf.compat.v1.nn.fused_batch_norm(x, ones, tf.zeros_like(ones), epsilon=EPS, is_training=True)[0]


def _relu_conv_bn(x: tf.Tensor, kernel: tf.Variable, strides: int = 1) -> tf.Tensor:
    return _bn(tf.nn.conv2d(tf.nn.relu(x), kernel, strides, "SAME"))


def _batched_op(x: tf.Tensor, name: str, params: object, w: list[tf.Variable], n: int) -> list[tf.Tensor]:
    """One of the cell child's operations (:func:`rlnas.models.cell._op`) for ``n`` edges reading
    ``x``, each with its own weights: one convolution and one normalisation for all, split per edge.
    Pools (followed by a normalisation, as DARTS) and the identity have no weights, so they are
    computed once and shared."""
    if name == "identity":
        return [x] * n
    if name in ("max3x3", "avg3x3"):
        pool = tf.nn.max_pool2d if name == "max3x3" else tf.nn.avg_pool2d
        return [_bn(pool(x, 3, 1, "SAME"))] * n
    f = x.shape[-1]
    if name == "conv1x1":
        return tf.split(_relu_conv_bn(x, w[params]), n, axis=-1)  # type: ignore[index]
    depthwise, pointwise = params  # type: ignore[misc]
    # A separable convolution is linear: one full convolution with the factored kernel dw[x, y, c] *
    # pw[c, f] gives the same output, and TensorFlow's CPU convolutions (forward and gradients) are
    # several times faster than its depthwise ones at these widths.
    kernel = tf.einsum("xycj,jcf->xycjf", w[depthwise], w[pointwise])
    kernel = tf.reshape(kernel, (*kernel.shape[:3], n * f))
    return tf.split(_relu_conv_bn(x, kernel), n, axis=-1)
