"""REINFORCE (Williams 1992) as Zoph & Le use it: a moving-average baseline and one Adam step per batch.

    loss = -mean_k((R_k - b) * sum_t log p(a_kt)) - entropy_weight * mean_k(H_k)

The log-probabilities are recomputed under the tape from the very tokens that were sampled, with the
weights that sampled them (the update happens before the next batch is drawn), so they are on-policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from rlnas.controller import Controller


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

    decay: float = 0.95
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


def update(
    controller: Controller,
    tokens: np.ndarray,
    mask: np.ndarray,
    rewards: np.ndarray,
    baseline: Baseline,
    *,
    entropy_weight: float,
    grad_clip: float,
) -> UpdateStats:
    """One REINFORCE step from a batch of sampled tokens and their rewards; updates ``baseline``."""
    adv = baseline.advantages(rewards)
    with tf.GradientTape() as tape:
        logp, ent = controller.log_prob(tokens, mask)
        loss = reinforce_loss(logp, ent, tf.constant(adv), entropy_weight)
    variables = controller.trainable_variables
    grads = tape.gradient(loss, variables)
    grads, norm = tf.clip_by_global_norm(grads, grad_clip)
    controller.optimizer.apply_gradients(zip(grads, variables, strict=True))
    baseline.update(rewards)
    return UpdateStats(
        loss=float(loss),
        entropy=float(tf.reduce_mean(ent)),
        grad_norm=float(norm),
        advantage_mean=float(np.mean(adv)),
        advantage_abs=float(np.mean(np.abs(adv))),
        baseline=float(baseline.value),  # type: ignore[arg-type]
    )
