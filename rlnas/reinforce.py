"""REINFORCE (Williams 1992) as Zoph & Le use it: a moving-average baseline and one Adam step per batch.

    loss = -mean_k((R_k - b) * sum_t log p(a_kt)) - entropy_weight * mean_k(H_k)
           [+ skip_weight * skip_penalty(p(skip = True), target)]   (ENAS, rlnas.penalties)

The log-probabilities are recomputed under the tape from the very tokens that were sampled, with the
weights that sampled them (the update happens before the next batch is drawn), so they are on-policy.

Speed: eagerly, the tape over the unrolled LSTM costs a quarter of a second per update in Python op
dispatch. For a controller built with ``compiled=True`` the whole step (tape, loss, clip, Adam) is one
``tf.function``, traced once per controller and penalty setting, with a ``None`` batch dimension and
the loss weights passed as tensors, so that short batches and other weights do not retrace. The eager
path calls the same Python step, so both give the same gradients and Adam state to float tolerance
(benchmarks/controller_speed.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from rlnas.controller import Controller
from rlnas.penalties import skip_penalty


def reinforce_loss(
    log_probs: tf.Tensor, entropies: tf.Tensor, advantages: tf.Tensor, entropy_weight: float
) -> tf.Tensor:
    """The policy-gradient surrogate loss of one batch (all arguments have shape (m,))."""
    advantages = tf.stop_gradient(tf.cast(advantages, log_probs.dtype))
    pg = -tf.reduce_mean(advantages * log_probs)
    return pg - entropy_weight * tf.reduce_mean(entropies)


@dataclass
class Baseline:
    """Exponential moving average of rewards.

    Starts at the mean reward of the first batch rather than 0: with accuracies near 0.9, a zero
    baseline would make every early advantage large and positive and reinforce whatever came first.
    """

    decay: float = 0.8
    value: float | None = None

    def advantages(self, rewards: np.ndarray) -> np.ndarray:
        """Advantages of a batch against the current baseline (the first batch against its mean)."""
        b = float(np.mean(rewards)) if self.value is None else self.value
        return np.asarray(rewards, np.float64) - b

    def update(self, rewards: np.ndarray) -> None:
        """Fold the batch's rewards in, one at a time, so the decay means the same for any batch size."""
        rewards = np.asarray(rewards, np.float64)
        if self.value is None and rewards.size:
            self.value = float(rewards.mean())  # the first batch sets the start, as its advantages assumed
            return
        for r in rewards:
            self.value = self.decay * self.value + (1 - self.decay) * float(r)


@dataclass(frozen=True)
class UpdateStats:
    loss: float
    entropy: float
    grad_norm: float
    advantage_mean: float
    advantage_abs: float
    baseline: float
    skip_penalty: float = 0.0  # the unweighted KL term; 0 when the penalty is off


def _step(controller: Controller, skips: tuple[tuple[int, int], ...], skip_target: float) -> Callable:
    """The update as a Python function of tensors; ``skips`` and ``skip_target`` are fixed per trace."""
    variables = controller.trainable_variables
    skip_columns = [d for d, _ in skips]

    def step(*args: tf.Tensor) -> tuple[tf.Tensor, ...]:
        tokens, mask, advantages, entropy_weight, grad_clip, skip_weight = args
        with tf.GradientTape() as tape:
            out = controller.policy(tokens, mask, watch=skips)
            loss = reinforce_loss(out.log_prob, out.entropy, advantages, entropy_weight)
            penalty = tf.zeros(())
            if skips:  # absent, not multiplied by 0: without the penalty the loss is exactly the same
                penalty = skip_penalty(out.watched, tf.gather(mask, skip_columns, axis=1), target=skip_target)
                loss += skip_weight * penalty
        grads, norm = tf.clip_by_global_norm(tape.gradient(loss, variables), grad_clip)
        controller.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, tf.reduce_mean(out.entropy), norm, penalty

    return step


def _step_function(
    controller: Controller, skips: tuple[tuple[int, int], ...], skip_target: float
) -> Callable:
    """The controller's traced step for this penalty setting (built on first use), or the eager one."""
    if not controller.compiled:
        return _step(controller, skips, skip_target)
    key = ("reinforce", skips, skip_target)
    if key not in controller.compiled_steps:
        d = len(controller.vocab_sizes)
        scalar = tf.TensorSpec((), tf.float32)
        signature = [
            tf.TensorSpec((None, d), tf.int32),
            tf.TensorSpec((None, d), tf.float32),
            tf.TensorSpec((None,), tf.float64),
            scalar,
            scalar,
            scalar,
        ]
        controller.compiled_steps[key] = tf.function(
            _step(controller, skips, skip_target), input_signature=signature
        )
    return controller.compiled_steps[key]


def update(
    controller: Controller,
    tokens: np.ndarray,
    mask: np.ndarray,
    rewards: np.ndarray,
    baseline: Baseline,
    *,
    entropy_weight: float,
    grad_clip: float,
    skips: Sequence[tuple[int, int]] = (),
    skip_weight: float = 0.0,
    skip_target: float = 0.4,
) -> UpdateStats:
    """One REINFORCE step from a batch of sampled tokens and their rewards; updates ``baseline``.

    Args:
        mask: (n, D) True where a decision is active; inactive decisions get no gradient.
        skips: (decision, token of True) of the space's skip decisions (``rlnas.penalties.skip_positions``);
            with ``skip_weight > 0`` the loss adds ``skip_weight`` times the KL of their probability of
            True, over the active ones, from ``skip_target``.
    """
    adv = baseline.advantages(rewards)
    skips = tuple((int(d), int(t)) for d, t in skips) if skip_weight > 0 else ()
    step = _step_function(controller, skips, float(skip_target) if skips else 0.0)
    loss, entropy, norm, penalty = step(
        tf.constant(np.asarray(tokens), tf.int32),
        tf.constant(np.asarray(mask), tf.float32),
        tf.constant(adv, tf.float64),
        *(tf.constant(x, tf.float32) for x in (entropy_weight, grad_clip, skip_weight)),
    )
    baseline.update(rewards)
    return UpdateStats(
        loss=float(loss),
        entropy=float(entropy),
        grad_norm=float(norm),
        advantage_mean=float(np.mean(adv)),
        advantage_abs=float(np.mean(np.abs(adv))),
        baseline=float(baseline.value),  # type: ignore[arg-type]
        skip_penalty=float(penalty),
    )
