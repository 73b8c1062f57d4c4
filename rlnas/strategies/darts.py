"""First-order DARTS (Liu et al., 2019) on the cell space, as a one-shot strategy.

One :meth:`DartsStrategy.step` is DARTS's first-order round: an SGD step of the shared weights on the
training minibatch (momentum, weight decay, gradient clipping at 5, a cosine-annealed learning rate),
then an Adam step of the architecture weights ``alpha`` on the validation minibatch, each through the
whole mixed network (:mod:`rlnas.policy.darts_cell`). An optional warm-up trains the weights alone
for a few epochs first, so that alpha does not lock in whichever operations learn fastest.

The derived cell is the argmax per node (:mod:`rlnas.strategies.darts_derive`); the decisions DARTS
does not search (width, cells, dropout, lr) take fixed values. Any architecture of the space can also
be run on the shared weights as a single path (:meth:`evaluate`), so the supernet's ranking can be
compared with stand-alone accuracies as ENAS's is.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from rlnas.errors import ConfigError, RunError
from rlnas.models.cell import DEFAULTS
from rlnas.models.common import check_image_shape
from rlnas.policy.darts_cell import DartsCellNet
from rlnas.run.durable import atomic_write_bytes
from rlnas.settings.darts import DartsSettings, check_darts_space
from rlnas.space import SearchSpace
from rlnas.strategies import darts_derive
from rlnas.strategies.oneshot import Candidate

CHECKPOINT = "darts.npz"
EVAL_BATCH = 256
"""Images per forward pass in :meth:`DartsStrategy.evaluate` (batch statistics need a fair batch)."""
ADAM_BETAS = (0.5, 0.999)  # DARTS's alpha optimizer


def _smallest(space: SearchSpace, name: str) -> int:
    return min(int(v) for v in space[name].values) if name in space.names else int(DEFAULTS[name])  # type: ignore[arg-type]


class DartsStrategy:
    """First-order DARTS behind the :class:`~rlnas.strategies.oneshot.OneShotStrategy` protocol.

    Args:
        space: a cell space; any other is refused (ConfigError).
        settings: the optimizers, the warm-up and the searched network's size.
        input_shape, num_classes: images (H, W) or (H, W, C) and their classes (classification only).
        seed: initial weights and alpha; the steps themselves draw nothing at random.
        steps_per_epoch: training minibatches per epoch, which turns ``darts_epochs`` and
            ``darts_warmup_epochs`` into steps (:attr:`total_steps` is what the loop should run).
    """

    name = "darts"

    def __init__(
        self,
        space: SearchSpace,
        settings: DartsSettings,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        seed: int,
        steps_per_epoch: int,
    ) -> None:
        check_darts_space(space)
        if num_classes < 2:
            raise ConfigError("--strategy darts searches classifiers; this dataset is a regression task")
        input_shape = check_image_shape(input_shape, "cell")
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be a whole number >= 1, got {steps_per_epoch!r}")
        self.space, self.settings = space, settings
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = settings.darts_epochs * self.steps_per_epoch
        self.warmup_steps = round(settings.darts_warmup_epochs * self.steps_per_epoch)
        reductions = darts_derive.fixed_values(space).get("reductions", DEFAULTS["reductions"])
        self.net = DartsCellNet(
            space,
            tuple(input_shape),
            num_classes,
            filters=settings.darts_filters or _smallest(space, "filters"),
            cells=settings.darts_cells or _smallest(space, "num_cells"),
            reductions=int(reductions),
            seed=seed,
        )
        self.fixed = darts_derive.fixed_values(space)
        self._momenta = [tf.Variable(tf.zeros_like(w)) for w in self.net.weights]
        self._adam = [tf.Variable(tf.zeros_like(self.net.alpha)) for _ in range(2)]
        self._alpha_t = tf.Variable(0.0)
        self.steps = 0
        spec = [tf.TensorSpec((None, *input_shape), tf.float32), tf.TensorSpec((None,), tf.int64)]
        self._weight_fn = tf.function(
            self._weight_step, input_signature=[*spec, tf.TensorSpec((), tf.float32)]
        )
        self._alpha_fn = tf.function(self._alpha_step, input_signature=spec)
        mix = tf.TensorSpec(self.net.mask.shape, tf.float32)
        self._predict_fn = tf.function(self._predict, input_signature=[spec[0], mix])

    # -- the two steps ---------------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        """The weights' cosine schedule from ``darts_lr`` to ``darts_lr_min`` over :attr:`total_steps`."""
        s = self.settings
        frac = min(step / max(self.total_steps, 1), 1.0)
        return s.darts_lr_min + 0.5 * (s.darts_lr - s.darts_lr_min) * (1 + math.cos(math.pi * frac))

    def _loss(self, x: tf.Tensor, y: tf.Tensor, mix: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = self.net.logits(x, mix)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1), y), tf.float32))
        return loss, acc

    def _weight_step(self, x: tf.Tensor, y: tf.Tensor, lr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        s = self.settings
        mix = tf.stop_gradient(self.net.softmax())
        with tf.GradientTape() as tape:
            loss, acc = self._loss(x, y, mix)
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, self.net.weights), s.darts_grad_clip)
        for w, g, m in zip(self.net.weights, grads, self._momenta, strict=True):
            m.assign(s.darts_momentum * m + g + s.darts_weight_decay * w)
            w.assign_sub(lr * m)
        return loss, acc

    def _alpha_step(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        s, alpha, (m, v) = self.settings, self.net.alpha, self._adam
        with tf.GradientTape() as tape:
            loss, acc = self._loss(x, y, self.net.softmax())
        g = tape.gradient(loss, alpha) + s.alpha_weight_decay * alpha
        t = self._alpha_t.assign_add(1.0)
        b1, b2 = ADAM_BETAS
        m.assign(b1 * m + (1 - b1) * g)
        v.assign(b2 * v + (1 - b2) * tf.square(g))
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        alpha.assign_sub(s.alpha_lr * m_hat / (tf.sqrt(v_hat) + 1e-8))
        return loss, acc

    def step(
        self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
    ) -> dict[str, float]:
        """One weight step on the training minibatch, then (after the warm-up) one alpha step on the
        validation minibatch; returns the TensorBoard scalars."""
        lr = self.learning_rate(self.steps)
        loss, acc = self._weight_fn(_images(x_train), _labels(y_train), tf.constant(lr, tf.float32))
        out = {"supernet/loss": float(loss), "supernet/accuracy": float(acc), "supernet/lr": lr}
        if self.steps >= self.warmup_steps:
            val_loss, val_acc = self._alpha_fn(_images(x_val), _labels(y_val))
            out |= {"supernet/val_loss": float(val_loss), "supernet/val_accuracy": float(val_acc)}
        self.steps += 1
        return out | self.alpha_scalars()

    def alpha_scalars(self) -> dict[str, float]:
        """Mean entropy of softmax(alpha) per edge (nats) and its largest weight anywhere."""
        w = self.weights()
        ent = -np.sum(np.where(w > 0, w * np.log(np.maximum(w, 1e-30)), 0.0), axis=1)
        return {"controller/alpha_entropy": float(ent.mean()), "controller/alpha_max": float(w.max())}

    def weights(self) -> np.ndarray:
        """(edges, ops) softmax(alpha), 0 where the space allows no such operation on the edge."""
        return self.net.softmax().numpy()

    # -- architectures on the shared weights -----------------------------------------------------
    def _predict(self, x: tf.Tensor, mix: tf.Tensor) -> tf.Tensor:
        return tf.argmax(self.net.logits(x, mix), -1)

    def evaluate(self, tokens: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n,) accuracy of each row's architecture run as one path through the shared weights (each
        node's two chosen edges, a one-hot on the chosen operation), in batches of :data:`EVAL_BATCH`.

        The weights were trained for the mixture, not for any one path, so this is lower than
        :meth:`relaxed_accuracy` (DARTS's discretisation gap): it ranks paths, it does not predict
        their stand-alone accuracy."""
        tokens = np.atleast_2d(np.asarray(tokens))
        return np.array([self._accuracy(self.net.path_mix(row), x, y) for row in tokens], np.float64)

    def relaxed_accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of the relaxed network itself: every edge weighted by softmax(alpha)."""
        return self._accuracy(self.net.softmax(), x, y)

    def _accuracy(self, mix: np.ndarray | tf.Tensor, x: np.ndarray, y: np.ndarray) -> float:
        xs, y = _images(x), np.asarray(y)
        chunks = np.array_split(np.arange(len(y)), max(1, math.ceil(len(y) / EVAL_BATCH)))
        mix = tf.convert_to_tensor(mix, tf.float32)
        hits = sum(int(np.sum(self._predict_fn(tf.gather(xs, c), mix).numpy() == y[c])) for c in chunks)
        return hits / max(len(y), 1)

    def derived(self) -> np.ndarray:
        """The derived cell (argmax per node, see :mod:`rlnas.strategies.darts_derive`) as tokens."""
        return np.array(self._ranked(1)[0], np.int64)

    def _ranked(self, k: int) -> list[list[int]]:
        return darts_derive.ranked(self.space, self.weights(), self.net.edges, self.net.ops, k)

    def candidates(self, k: int, x_val: np.ndarray, y_val: np.ndarray) -> list[Candidate]:
        """The derived cell and, for ``k`` > 1, the next-best cells by alpha's score, each scored on the
        shared weights, best first by that accuracy (ties keep alpha's order)."""
        rows = np.array(self._ranked(k), np.int64)
        accs = self.evaluate(rows, x_val, y_val)
        order = sorted(range(len(rows)), key=lambda i: -accs[i])
        return [Candidate(rows[i], float(accs[i])) for i in order]

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows sampled from the edge weights with ``rng`` (:func:`darts_derive.sample`)."""
        return darts_derive.sample(self.space, self.weights(), self.net.edges, self.net.ops, n, rng)

    # -- checkpoints -----------------------------------------------------------------------------
    def _variables(self) -> dict[str, tf.Variable]:
        named = {f"w{i}": w for i, w in enumerate(self.net.weights)}
        named |= {f"m{i}": m for i, m in enumerate(self._momenta)}
        return named | {
            "alpha": self.net.alpha,
            "adam_m": self._adam[0],
            "adam_v": self._adam[1],
            "alpha_t": self._alpha_t,
        }

    def save(self, directory: Path, meta: dict) -> None:
        """Weights, momenta, alpha and its Adam slots, the step count and ``meta``, in one file written
        atomically (there is no random generator: the steps draw nothing at random)."""
        state = {k: v.numpy() for k, v in self._variables().items()}
        state |= {"steps": np.array(self.steps), "vocab": np.array(self.space.vocab_sizes)}
        state["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **state)
        Path(directory).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(directory) / CHECKPOINT, buf.getvalue())

    def restore(self, directory: Path) -> dict:
        """Load what :meth:`save` wrote into a strategy built from the same config; returns ``meta``."""
        path = Path(directory) / CHECKPOINT
        try:
            with np.load(path) as data:
                state = dict(data)
            if tuple(state["vocab"].tolist()) != self.space.vocab_sizes:
                raise ValueError(
                    f"vocabularies {state['vocab'].tolist()}, this space has {list(self.space.vocab_sizes)}"
                )
            for name, var in self._variables().items():
                if state[name].shape != tuple(var.shape):
                    raise ValueError(f"{name} has shape {state[name].shape}, expected {tuple(var.shape)}")
                var.assign(state[name])
            self.steps = int(state["steps"])
            return json.loads(bytes(state["meta"]).decode())
        except (OSError, ValueError, KeyError) as exc:
            raise RunError(f"cannot read DARTS checkpoint {str(path)!r}: {exc}") from None


def _images(x: np.ndarray) -> tf.Tensor:
    x = np.asarray(x)
    return tf.constant(
        x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
    )


def _labels(y: np.ndarray) -> tf.Tensor:
    return tf.constant(np.asarray(y).astype(np.int64, copy=False))
