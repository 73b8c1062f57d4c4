"""The shared-weight conv chain (models ``conv`` and ``skip``), "once-for-all" style.

Layer i owns one kernel of the widest shape it can take, ``(max kernel_h, max kernel_w, max input
channels, max filters_i)``; a path uses its centre ``kernel_h x kernel_w`` crop, its first
``filters_i`` output channels and as many input channels as the previous layer gives. Batch
normalisation keeps one gamma/beta per layer, sliced the same way, and always normalises with the
batch's statistics (training and scoring alike: see :meth:`SharedNet.accuracy`). Stride, pooling
(none/max/avg) and the activation are branches of the one traced graph; so is whether layer i exists
(``num_layers``). The conv layers carry no bias: batch normalisation cancels it.

Skips (model ``skip``): the child concatenates layer j's output (pooled down to the current size) in
front of layer i's input; a convolution of a concatenation is the sum of convolutions of its parts, so
layer i owns one kernel block per source (the previous layer and each skip source j), and a path adds
the blocks of the sources it reads.

Head: global average pooling or flatten, then an optional hidden dense of ``head_units`` (the first
units of a dense of the largest width), then the softmax layer. The weights after the pooling depend
on what reaches them, so each is owned by a *slot*: with ``gap``, one slot per layer that can be the
last (its channels mean different things); with ``flatten``, one slot per reachable map size (the
number of halvings), of shape ``(H, W, max channels, out)`` and sliced to the path's channels, which
keeps the child's row-major flatten order. The output layer after a hidden dense is shared by all slots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlnas.models import common, conv
from rlnas.policy.supernet.base import BN_EPSILON, SharedNet, offered
from rlnas.space import SearchSpace, Value


def activation(name: str) -> Callable[[Any], Any]:
    import tensorflow as tf

    table = {
        "relu": tf.nn.relu,
        "tanh": tf.nn.tanh,
        "elu": tf.nn.elu,
        "selu": tf.nn.selu,
        "gelu": tf.nn.gelu,
        "swish": tf.nn.silu,
        "sigmoid": tf.nn.sigmoid,
    }
    return table[name]


def select(index: Any, count: int, branch: Callable[[int], Any]) -> Any:
    """``branch(index)`` in the graph: a static call when there is one choice, else ``tf.switch_case``."""
    import tensorflow as tf

    if count == 1:
        return branch(0)
    return tf.switch_case(index, [lambda k=k: branch(k) for k in range(count)])


class Layout:
    """What a space offers, in the shapes the chain needs (pure Python: the memory estimate uses it)."""

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...], skips: bool) -> None:
        shape = common.check_image_shape(input_shape, space.model)
        self.h, self.w = shape[0], shape[1]
        self.channels = shape[2] if len(shape) == 3 else 1
        self.skips = skips
        self.layer_counts = tuple(int(v) for v in offered(space, "num_layers", 1))
        self.max_layers = max(self.layer_counts)
        self.min_layers = min(self.layer_counts)
        self.values = {n: offered(space, n, conv.DEFAULTS[n]) for n in ("head", "head_units", "activation")}
        self.layer_values = [
            {n: offered(space, f"{n}_{i}", d) for n, d in conv.LAYER_DEFAULTS.items()}
            for i in range(self.max_layers)
        ]
        self.filters = [max(int(v) for v in lv["filters"]) for lv in self.layer_values]
        self.kernel = [
            (max(int(v) for v in lv["kernel_h"]), max(int(v) for v in lv["kernel_w"]))
            for lv in self.layer_values
        ]
        self.units = max(int(v) for v in self.values["head_units"])
        self.last_layers = [n - 1 for n in sorted(self.layer_counts)]
        self.halvings = self._reachable_halvings()

    def _reachable_halvings(self) -> list[int]:
        """Numbers of halvings the map can have after the last layer, for the flatten slots."""
        reach, ends = {0}, set()
        for i, lv in enumerate(self.layer_values):
            steps = {int(s == 2) + int(p != "none") for s in lv["stride"] for p in lv["pool"]}
            reach = {r + s for r in reach for s in steps}
            if i + 1 in self.layer_counts:
                ends |= reach
        return sorted(ends)

    def size(self, halvings: int) -> tuple[int, int]:
        return math.ceil(self.h / 2**halvings), math.ceil(self.w / 2**halvings)

    def sources(self, i: int) -> list[int]:
        """Layer i's input blocks: -1 for the previous layer (the image for layer 0), then skip sources."""
        return [-1, *(range(i - 1) if self.skips else ())]

    def in_channels(self, i: int, src: int) -> int:
        if src == -1:
            return self.channels if i == 0 else self.filters[i - 1]
        return self.filters[src]

    def plan(self, num_classes: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(self.max_layers):
            kh, kw = self.kernel[i]
            for src in self.sources(i):
                shapes[f"conv{i}/k{src}"] = (kh, kw, self.in_channels(i, src), self.filters[i])
            shapes[f"conv{i}/gamma"] = (self.filters[i],)
            shapes[f"conv{i}/beta"] = (self.filters[i],)
        for slot, rows in self.slots():
            if self.units:
                shapes[f"head/{slot}/hidden/kernel"] = (*rows, self.units)
                shapes[f"head/{slot}/hidden/bias"] = (self.units,)
            if 0 in self.values["head_units"]:
                shapes[f"head/{slot}/out/kernel"] = (*rows, num_classes)
                shapes[f"head/{slot}/out/bias"] = (num_classes,)
        if self.units:
            shapes["head/out/kernel"] = (self.units, num_classes)
            shapes["head/out/bias"] = (num_classes,)
        return shapes

    def slots(self) -> list[tuple[str, tuple[int, ...]]]:
        """Head slots (see the module docstring) and the shape of the rows they read."""
        out: list[tuple[str, tuple[int, ...]]] = []
        if "gap" in self.values["head"]:
            out += [(f"gap{i}", (self.filters[i],)) for i in self.last_layers]
        if "flatten" in self.values["head"]:
            widest = max(self.filters[i] for i in self.last_layers)
            out += [(f"flat{k}", (*self.size(k), widest)) for k in self.halvings]
        return out


class ChainSupernet(SharedNet):
    """The conv chain; with ``skips`` the skip model's chain (see the module docstring)."""

    SKIPS = False

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int, **kw: Any) -> None:
        self.layout = Layout(space, input_shape, self.SKIPS)
        super().__init__(space, input_shape, num_classes, **kw)

    @classmethod
    def plan(
        cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int
    ) -> dict[str, tuple[int, ...]]:
        return Layout(space, input_shape, cls.SKIPS).plan(num_classes)

    @classmethod
    def activation_floats(cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int) -> int:
        """Full-resolution maps of the widest filters (an upper bound): the input, conv, norm,
        activation and pool outputs of every layer, a pooled copy for each skip, and the largest
        convolution's patch buffer (height x width x kernel area x input channels: TensorFlow's CPU
        convolution unfolds its input, which for a 5x5 kernel over 64 channels is the biggest tensor)."""
        lay = Layout(space, input_shape, cls.SKIPS)
        per_layer = [lay.h * lay.w * f * (4 + (i if cls.SKIPS else 0)) for i, f in enumerate(lay.filters)]
        patches = max(
            lay.h * lay.w * kh * kw * sum(lay.in_channels(i, s) for s in lay.sources(i))
            for i, (kh, kw) in enumerate(lay.kernel)
        )
        return lay.h * lay.w * lay.channels + sum(per_layer) + patches

    # -- path ------------------------------------------------------------------------------------
    PER_LAYER = ("active", "filters", "kernel_h", "kernel_w", "stride", "pool", "halvings")

    def path(self, arch: Mapping[str, Value]) -> np.ndarray:
        lay = self.layout
        a = conv.DEFAULTS | dict(arch)
        n = int(a["num_layers"])
        rows, halvings = [], 0
        for i in range(lay.max_layers):
            lv = lay.layer_values[i]
            v = {k: conv.layer_value(a, k, i) for k in conv.LAYER_DEFAULTS}
            if i < n:
                halvings += int(v["stride"]) == 2
                halvings += v["pool"] != "none"
            row = [i < n, v["filters"], v["kernel_h"], v["kernel_w"], int(v["stride"]) == 2]
            rows += [*row, lv["pool"].index(v["pool"]) if v["pool"] in lv["pool"] else 0, halvings]
        skips = [
            bool(a.get(f"skip_{i}_{j}", False)) for i in range(lay.max_layers) for j in range(lay.max_layers)
        ]
        head = a["head"]
        slot = [s for s, _ in lay.slots()].index(f"gap{n - 1}" if head == "gap" else f"flat{halvings}")
        vals = lay.values
        tail = [slot, int(a["head_units"]), vals["activation"].index(a["activation"])]
        return np.asarray([*(int(r) for r in rows), *(int(s) for s in skips), *tail], np.int32)

    def _get(self, path: Any, i: int, key: str) -> Any:
        return path[i * len(self.PER_LAYER) + self.PER_LAYER.index(key)]

    def _skip(self, path: Any, i: int, j: int) -> Any:
        lay = self.layout
        return path[lay.max_layers * len(self.PER_LAYER) + i * lay.max_layers + j]

    def _tail(self, path: Any, k: int) -> Any:
        lay = self.layout
        return path[lay.max_layers * (len(self.PER_LAYER) + lay.max_layers) + k]

    # -- graph -----------------------------------------------------------------------------------
    def forward(self, x: Any, path: Any) -> Any:
        import tensorflow as tf

        lay = self.layout
        if len(self.input_shape) == 2:
            x = x[..., None]
        act_index = self._tail(path, 2)
        acts = lay.values["activation"]
        act = lambda t: select(act_index, len(acts), lambda k: activation(str(acts[k]))(t))  # noqa: E731
        outs: list[Any] = []
        for i in range(lay.max_layers):
            run = lambda i=i, x=x: self._layer(i, x, outs, path, act)  # noqa: E731
            x = run() if i < lay.min_layers else tf.cond(self._get(path, i, "active") > 0, run, lambda x=x: x)
            outs.append(x)
        return self._head(x, path, act)

    def _conv(self, x: Any, name: str, i: int, path: Any, stride: Any) -> Any:
        import tensorflow as tf

        w = self.weights[name]
        (kh_max, kw_max), lv = self.layout.kernel[i], self.layout.layer_values[i]
        kh, kw = self._get(path, i, "kernel_h"), self._get(path, i, "kernel_w")
        top, left = (kh_max - kh) // 2, (kw_max - kw) // 2
        k = w[top : top + kh, left : left + kw, : tf.shape(x)[-1], : self._get(path, i, "filters")]
        strides = sorted({int(s) for s in lv["stride"]})
        if len(strides) == 1:
            return tf.nn.conv2d(x, k, strides[0], "SAME")
        return tf.cond(
            stride > 0, lambda: tf.nn.conv2d(x, k, 2, "SAME"), lambda: tf.nn.conv2d(x, k, 1, "SAME")
        )

    def _layer(self, i: int, x: Any, outs: list[Any], path: Any, act: Callable[[Any], Any]) -> Any:
        import tensorflow as tf

        stride = self._get(path, i, "stride")
        y = self._conv(x, f"conv{i}/k-1", i, path, stride)
        for j in self.layout.sources(i)[1:]:
            need = self._get(path, i - 1, "halvings") - self._get(path, j, "halvings")

            def src(j: int = j, need: Any = need) -> Any:
                return self._conv(self._shrink(outs[j], need, i), f"conv{i}/k{j}", i, path, stride)

            y = y + tf.cond(self._skip(path, i, j) > 0, src, lambda y=y: tf.zeros_like(y))
        f = self._get(path, i, "filters")
        mean, var = tf.nn.moments(y, [0, 1, 2])
        y = tf.nn.batch_normalization(
            y, mean, var, self.weights[f"conv{i}/beta"][:f], self.weights[f"conv{i}/gamma"][:f], BN_EPSILON
        )
        y = act(y)
        pools = self.layout.layer_values[i]["pool"]

        def pool(k: int) -> Any:
            if pools[k] == "max":
                return tf.nn.max_pool2d(y, 2, 2, "SAME")
            if pools[k] == "avg":
                return tf.nn.avg_pool2d(y, 2, 2, "SAME")
            return tf.identity(y)

        return select(self._get(path, i, "pool"), len(pools), pool)

    def _shrink(self, t: Any, need: Any, i: int) -> Any:
        """Average-pool a skip source ``need`` times (2x2, "same"), as the child's concat does."""
        import tensorflow as tf

        for k in range(2 * i):  # at most two halvings (stride, pool) per layer in between
            t = tf.cond(k < need, lambda t=t: tf.nn.avg_pool2d(t, 2, 2, "SAME"), lambda t=t: t)
        return t

    def _head(self, x: Any, path: Any, act: Callable[[Any], Any]) -> Any:
        import tensorflow as tf

        lay, w = self.layout, self.weights
        c = tf.shape(x)[-1]
        units = self._tail(path, 1)

        def slot(k: int) -> Any:
            name = lay.slots()[k][0]
            if name.startswith("gap"):
                feats, take = tf.reduce_mean(x, [1, 2]), lambda m: m[:c]
            else:
                feats = tf.reshape(x, [tf.shape(x)[0], -1])
                take = lambda m: tf.reshape(m[:, :, :c], [-1, m.shape[-1]])  # noqa: E731

            def hidden() -> Any:
                h = act(
                    feats @ take(w[f"head/{name}/hidden/kernel"])[:, :units]
                    + w[f"head/{name}/hidden/bias"][:units]
                )
                return h @ w["head/out/kernel"][:units] + w["head/out/bias"]

            def direct() -> Any:
                return feats @ take(w[f"head/{name}/out/kernel"]) + w[f"head/{name}/out/bias"]

            choices = lay.values["head_units"]
            if len(choices) == 1:
                return hidden() if lay.units else direct()
            if 0 not in choices:
                return hidden()
            return tf.cond(units > 0, hidden, direct)

        return select(self._tail(path, 0), len(lay.slots()), slot)


class SkipSupernet(ChainSupernet):
    SKIPS = True
