"""What every shared-weight network has in common: a plan of variables, SGD with momentum, one traced
train step for all paths, inference, save/load.

A supernet is plain TensorFlow, not a Keras model: an architecture enters the traced step as a
*path*, a fixed-length int32 vector computed in NumPy from the decoded architecture, and the graph
picks its branches with ``tf.cond``/``tf.switch_case`` and slices the widest weights with it. One
``tf.function`` with a fixed input signature serves every path, so sampling a new architecture costs
no retrace. Variables come from a *plan* (name -> shape) that needs no TensorFlow, so the memory
estimate (:mod:`rlnas.policy.supernet.memory`) reads the same shapes the supernet will build.

Training-only decisions (``lr``, ``dropout``) cannot be judged by shared weights: a supernet lists them
in ``fixed`` with the value a derived child takes (``lr``: the space's value nearest 1e-3 in log scale;
``dropout``: False when offered, else its first value) and ignores them in the path; every other
decision is in ``shared``.

Initial weights come from ``np.random.default_rng(seed)``, so one seed gives one supernet; the update
is SGD with momentum (optionally Nesterov), L2 weight decay on every weight and gradient clipping at
global norm 5 (ENAS's settings), written out by hand so that its slots are plain variables that
:meth:`SharedNet.save` writes with the weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.errors import ConfigError
from rlnas.space import SearchSpace, Value

TRAINING_ONLY = ("lr", "dropout")
"""Decisions a supernet cannot judge: they change how a child trains, not what it computes."""
CLIP_NORM = 5.0
BN_EPSILON = 1e-3  # Keras's BatchNormalization default


def fixed_values(space: SearchSpace) -> dict[str, Any]:
    """The value a derived child takes for each training-only decision of ``space``."""
    fixed: dict[str, Any] = {}
    if "lr" in space.names:
        values = [float(v) for v in space["lr"].values]
        fixed["lr"] = min(values, key=lambda v: abs(math.log(v) - math.log(1e-3)))
    if "dropout" in space.names:
        values = space["dropout"].values  # off: False, or 0 in a space of rates; else the first value
        fixed["dropout"] = next((v for v in values if v is False or v == 0), values[0])
    return fixed


def offered(space: SearchSpace, name: str, default: Value) -> tuple[Value, ...]:
    """The values decision ``name`` offers (or ``(default,)`` when the space leaves it out)."""
    return space[name].values if name in space.names else (default,)


class SharedNet:
    """Base of the supernets; subclasses define :meth:`plan`, :meth:`path` and :meth:`forward`.

    Args:
        space: the search space (already checked by :func:`rlnas.policy.supernet.check_supported`).
        input_shape: one sample's shape.
        num_classes: number of classes (labels are integers 0..num_classes-1).
        seed: fixes the initial weights.
        learning_rate, momentum, weight_decay, nesterov: the SGD update of the shared weights.
    """

    def __init__(
        self,
        space: SearchSpace,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        seed: int,
        learning_rate: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        nesterov: bool = True,
    ) -> None:
        import tensorflow as tf

        self.space = space
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.fixed = fixed_values(space)
        self.shared = tuple(n for n in space.names if n not in self.fixed)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        rng = np.random.default_rng(seed)
        shapes = self.plan(space, self.input_shape, self.num_classes)
        self.weights = {n: tf.Variable(_init(n, s, rng), name=n) for n, s in shapes.items()}
        self.slots = {
            n: tf.Variable(np.zeros(s, np.float32), name=f"{n}/momentum") for n, s in shapes.items()
        }
        self.lr = tf.Variable(float(learning_rate), dtype=tf.float32, name="learning_rate")
        self.steps = tf.Variable(0, dtype=tf.int64, name="steps")
        self.traces = 0  # how many times the train step was traced (one for all paths)
        width = len(self.path(self.space.decode(self._any_tokens())))
        x_spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        p_spec = tf.TensorSpec((width,), tf.int32)
        self._train = tf.function(
            self._train_fn, input_signature=[x_spec, tf.TensorSpec((None,), tf.int32), p_spec]
        )
        self._predict = tf.function(self._predict_fn, input_signature=[x_spec, p_spec])

    # -- what subclasses define ------------------------------------------------------------------
    @classmethod
    def plan(
        cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int
    ) -> dict[str, tuple[int, ...]]:
        """Variable name -> shape of every shared weight, without TensorFlow."""
        raise NotImplementedError

    @classmethod
    def activation_floats(cls, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int) -> int:
        """Floats one sample's widest path keeps for the backward pass (for the memory estimate)."""
        raise NotImplementedError

    def path(self, arch: Mapping[str, Value]) -> np.ndarray:
        """The architecture as the int32 vector the traced graph reads."""
        raise NotImplementedError

    def forward(self, x: Any, path: Any) -> Any:
        """Logits of the path (training-mode batch normalisation: see :meth:`accuracy`)."""
        raise NotImplementedError

    # -- the protocol ----------------------------------------------------------------------------
    def train_step(self, x: np.ndarray, y: np.ndarray, tokens: np.ndarray) -> tuple[float, float]:
        """One SGD step of the shared weights through the path ``tokens``; returns (loss, accuracy)."""
        loss, acc = self._train(self._x(x), np.asarray(y, np.int32), self._path_of(tokens))
        return float(loss), float(acc)

    def accuracy(self, x: np.ndarray, y: np.ndarray, tokens: np.ndarray, *, batch_size: int = 512) -> float:
        """Accuracy of one architecture with the shared weights.

        Batch normalisation uses the statistics of each evaluation batch (of ``batch_size``): the
        running statistics of a shared layer mix every path that trained it and would misjudge each
        one, and re-calibrating them per path costs a pass over training data for every architecture
        scored. With batches of hundreds of images the batch statistics are as good, and cost nothing.
        """
        x, y = self._x(x), np.asarray(y)
        if len(x) == 0:
            raise ConfigError("accuracy needs at least one example")
        path = self._path_of(tokens)
        correct = 0
        for start in range(0, len(x), batch_size):
            pred = self._predict(x[start : start + batch_size], path).numpy()
            correct += int(np.sum(pred == y[start : start + batch_size]))
        return correct / len(x)

    def param_bytes(self) -> int:
        return 4 * sum(int(np.prod(v.shape)) for v in self.weights.values())

    def set_learning_rate(self, value: float) -> None:
        """For a schedule (e.g. cosine) driven by the caller."""
        self.lr.assign(float(value))

    def save(self, path: Path) -> None:
        """Weights, momentum slots, learning rate and step count as one ``.npz``; atomicity is the
        caller's."""
        arrays = {f"w/{n}": v.numpy() for n, v in self.weights.items()}
        arrays |= {f"m/{n}": v.numpy() for n, v in self.slots.items()}
        with open(path, "wb") as f:
            np.savez(f, lr=self.lr.numpy(), steps=self.steps.numpy(), **arrays)

    def load(self, path: Path) -> None:
        """Load what :meth:`save` wrote into a supernet made the same way; ConfigError otherwise."""
        with np.load(path) as data:
            names = {f"w/{n}" for n in self.weights} | {f"m/{n}" for n in self.slots} | {"lr", "steps"}
            if set(data.files) != names:
                raise ConfigError(f"{path}: not a checkpoint of this supernet (its variables differ)")
            for prefix, table in (("w/", self.weights), ("m/", self.slots)):
                for n, v in table.items():
                    if tuple(data[prefix + n].shape) != tuple(v.shape):
                        raise ConfigError(
                            f"{path}: variable {n} has shape {data[prefix + n].shape}, expected {v.shape}"
                        )
                    v.assign(data[prefix + n])
            self.lr.assign(float(data["lr"]))
            self.steps.assign(int(data["steps"]))

    # -- internals -------------------------------------------------------------------------------
    def _any_tokens(self) -> list[int]:
        return [0] * len(self.space)

    def _path_of(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens).reshape(-1)
        if len(tokens) != len(self.space):
            raise ConfigError(f"a path needs {len(self.space)} tokens (one per decision), got {len(tokens)}")
        return self.path(self.space.decode([int(t) for t in tokens]))

    def _x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(
                f"inputs of shape {tuple(x.shape[1:])} given to a supernet built for {self.input_shape}"
            )
        return x

    def _train_fn(self, x: Any, y: Any, path: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        self.traces += 1
        with tf.GradientTape() as tape:
            logits = self.forward(x, path)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        names = list(self.weights)
        grads = tape.gradient(loss, [self.weights[n] for n in names])
        grads = [
            tf.zeros_like(self.weights[n]) if g is None else tf.convert_to_tensor(g)
            for n, g in zip(names, grads, strict=True)
        ]
        grads, _ = tf.clip_by_global_norm(grads, CLIP_NORM)
        for n, g in zip(names, grads, strict=True):
            w, m = self.weights[n], self.slots[n]
            g = g + self.weight_decay * w
            m.assign(self.momentum * m + g)
            w.assign_sub(self.lr * (g + self.momentum * m if self.nesterov else m))
        self.steps.assign_add(1)
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def _predict_fn(self, x: Any, path: Any) -> Any:
        import tensorflow as tf

        return tf.argmax(self.forward(x, path), -1, output_type=tf.int32)


def _init(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """He-normal for kernels (fan-in: all but the last axis), ones for gammas, zeros for biases/betas."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "gamma":
        return np.ones(shape, np.float32)
    if leaf in ("beta", "bias"):
        return np.zeros(shape, np.float32)
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return (rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))).astype(np.float32)
