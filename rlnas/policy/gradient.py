"""REINFORCE (Williams 1992) as Zoph & Le use it: a moving-average baseline and one Adam step per batch.

    loss = -mean_k((R_k - b) * sum_t log p(a_kt)) - entropy_weight * mean_k(H_k)
           [+ skip_weight * skip_penalty(p(skip = True), target)]   (ENAS, rlnas.policy.penalties)

The log-probabilities are recomputed under the tape from the very tokens that were sampled. In the
synchronous loop that is with the weights that sampled them (the update happens before the next batch
is drawn), so the batch is on-policy. In the pipelined loop (``pipeline = 2``) a batch was drawn by the
policy one update older; its terms are then weighted by a truncated importance ratio (V-trace, PPO)

    w_k = min(c, pi_theta(a_k) / pi_old(a_k)),   loss = -mean_k(w_k * (R_k - b) * log pi_theta(a_k)) ...

with ``w`` a constant in the gradient (``stop_gradient``): unbiased where ``c`` does not truncate, and
never more than ``c`` times a plain term. Without the old log-probabilities the step is exactly the
unweighted one (``w = 1``: on-policy, or the plain stale gradient for a stale batch).

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
from typing import Any

import numpy as np
import tensorflow as tf

from rlnas.policy.controller import Controller
from rlnas.policy.penalties import skip_penalty

ROUND_OFF = 1e-5
"""Relative float32 round-off of an importance ratio (log-probabilities of a few decisions summed)."""


def reinforce_loss(
    log_probs: tf.Tensor,
    entropies: tf.Tensor,
    advantages: tf.Tensor,
    entropy_weight: float,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """The policy-gradient surrogate loss of one batch (all arguments have shape (m,)).

    ``weights`` (importance weights) scale each term and, like the advantages, get no gradient.
    """
    advantages = tf.stop_gradient(tf.cast(advantages, log_probs.dtype))
    if weights is not None:
        advantages = advantages * tf.stop_gradient(tf.cast(weights, log_probs.dtype))
    pg = -tf.reduce_mean(advantages * log_probs)
    return pg - entropy_weight * tf.reduce_mean(entropies)


def importance_weights(
    log_probs: tf.Tensor, old_log_probs: tf.Tensor, clip: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Truncated importance weights ``min(clip, exp(log_probs - old_log_probs))`` (no gradient) and
    1.0 where the ratio was truncated, 0.0 elsewhere; each of shape (m,), float64.

    The difference is taken in float64, the sampler's precision; still, the log-probabilities under
    the tape are float32, so a policy that has not moved gives ratios within ~1e-6 of 1: one counts as
    truncated only beyond that round-off.
    """
    now = tf.cast(tf.stop_gradient(log_probs), tf.float64)
    ratio = tf.exp(now - tf.cast(old_log_probs, tf.float64))
    clip = tf.cast(clip, tf.float64)
    return tf.minimum(ratio, clip), tf.cast(ratio > clip * (1 + ROUND_OFF), tf.float64)


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
    importance_weight: float = 1.0  # mean importance weight (1: no weights, an on-policy batch)
    importance_clipped: float = 0.0  # fraction of the batch whose ratio was truncated at the cap


def _step(
    controller: Controller, skips: tuple[tuple[int, int], ...], skip_target: float, importance: bool
) -> Callable:
    """The update as a Python function of tensors; ``skips``, ``skip_target`` and ``importance`` (two
    more arguments: the sampling policy's log-probabilities and the cap) are fixed per trace."""
    variables = controller.trainable_variables
    skip_columns = [d for d, _ in skips]

    def step(*args: tf.Tensor) -> tuple[tf.Tensor, ...]:
        tokens, mask, advantages, entropy_weight, grad_clip, skip_weight, *old = args
        with tf.GradientTape() as tape:
            out = controller.policy(tokens, mask, watch=skips)
            weights, clipped = importance_weights(out.log_prob, *old) if importance else (None, None)
            loss = reinforce_loss(out.log_prob, out.entropy, advantages, entropy_weight, weights)
            penalty = tf.zeros(())
            if skips:  # absent, not multiplied by 0: without the penalty the loss is exactly the same
                penalty = skip_penalty(out.watched, tf.gather(mask, skip_columns, axis=1), target=skip_target)
                loss += skip_weight * penalty
        grads, norm = tf.clip_by_global_norm(tape.gradient(loss, variables), grad_clip)
        controller.optimizer.apply_gradients(zip(grads, variables, strict=True))
        if weights is None:
            weight, clipped = tf.ones((), tf.float64), tf.zeros((), tf.float64)
        else:
            weight, clipped = tf.reduce_mean(weights), tf.reduce_mean(clipped)
        return loss, tf.reduce_mean(out.entropy), norm, penalty, weight, clipped

    return step


def _step_function(
    controller: Controller, skips: tuple[tuple[int, int], ...], skip_target: float, importance: bool
) -> Callable:
    """The controller's traced step for this setting (built on first use), or the eager one."""
    if not controller.compiled:
        return _step(controller, skips, skip_target, importance)
    key = ("reinforce", skips, skip_target) + (("importance",) if importance else ())
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
        if importance:
            signature += [tf.TensorSpec((None,), tf.float64), tf.TensorSpec((), tf.float64)]
        controller.compiled_steps[key] = tf.function(
            _step(controller, skips, skip_target, importance), input_signature=signature, autograph=False
        )
    return controller.compiled_steps[key]


def prepare(
    controller: Controller,
    *,
    skips: Sequence[tuple[int, int]] = (),
    skip_weight: float = 0.0,
    skip_target: float = 0.4,
    importance: bool = False,
) -> None:
    """Trace and run once the compiled step that :func:`update` will call with these settings, leaving
    the controller exactly as it was.

    Both the trace and the first call (TensorFlow instantiates and optimises the graph then: 0.8 s on
    2 cores, measured) would otherwise happen inside the first update, while every worker waits for the
    next batch; a strategy calls this when it is made, while the workers start. The run uses
    zero advantages and zero loss weights, so every gradient is 0 and Adam moves no weight and keeps
    zero moments; only its step counter advances, and it is put back.
    """
    if not controller.compiled:
        return
    skips = tuple((int(d), int(t)) for d, t in skips) if skip_weight > 0 else ()
    step = _step_function(controller, skips, float(skip_target) if skips else 0.0, importance)
    d = len(controller.vocab_sizes)
    weights = [tf.constant(x, tf.float32) for x in (0.0, 1.0, 0.0)]  # entropy, grad clip, skip penalty
    old = [tf.zeros((1,), tf.float64), tf.constant(1.0, tf.float64)] if importance else []
    iterations = int(controller.optimizer.iterations.numpy())
    step(tf.zeros((1, d), tf.int32), tf.ones((1, d), tf.float32), tf.zeros((1,), tf.float64), *weights, *old)
    controller.optimizer.iterations.assign(iterations)


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
    old_log_probs: np.ndarray | None = None,
    importance_clip: float = 1.0,
    advantages: np.ndarray | None = None,
) -> UpdateStats:
    """One REINFORCE step from a batch of sampled tokens and their rewards; updates ``baseline``.

    Args:
        mask: (n, D) True where a decision is active; inactive decisions get no gradient.
        skips: (decision, token of True) of the space's skip decisions (``penalties.skip_positions``);
            with ``skip_weight > 0`` the loss adds ``skip_weight`` times the KL of their probability of
            True, over the active ones, from ``skip_target``.
        old_log_probs: (n,) log-probability of each row under the policy that sampled it (summed over
            its active decisions); given, each term is weighted by ``min(importance_clip, ratio)``.
            None: no weights, the on-policy update.
        advantages: (n,) advantages to use instead of the baseline's (a risk-seeking objective, or
            predicted rewards); the baseline still folds the rewards in.
    """
    adv = baseline.advantages(rewards) if advantages is None else np.asarray(advantages, np.float64)
    out = step_on(
        controller,
        tokens,
        mask,
        adv,
        entropy_weight=entropy_weight,
        grad_clip=grad_clip,
        skips=skips,
        skip_weight=skip_weight,
        skip_target=skip_target,
        old_log_probs=old_log_probs,
        importance_clip=importance_clip,
    )
    baseline.update(rewards)
    return _stats(out, adv, baseline)


def _stats(out: Sequence[Any], adv: np.ndarray, baseline: Baseline) -> UpdateStats:
    """The step's outputs (loss, entropy, norm, penalty, weight, clipped) as plain floats."""
    loss, entropy, norm, penalty, weight, clipped = out
    return UpdateStats(
        loss=float(loss),
        entropy=float(entropy),
        grad_norm=float(norm),
        advantage_mean=float(np.mean(adv)),
        advantage_abs=float(np.mean(np.abs(adv))),
        baseline=float(baseline.value),  # type: ignore[arg-type]
        skip_penalty=float(penalty),
        importance_weight=float(weight),
        importance_clipped=float(clipped),
    )


def step_on(
    controller: Controller,
    tokens: np.ndarray,
    mask: np.ndarray,
    advantages: np.ndarray,
    *,
    entropy_weight: float,
    grad_clip: float,
    skips: Sequence[tuple[int, int]] = (),
    skip_weight: float = 0.0,
    skip_target: float = 0.4,
    old_log_probs: np.ndarray | None = None,
    importance_clip: float = 1.0,
) -> tuple[tf.Tensor, ...]:
    """One Adam step of the policy gradient on given advantages (no baseline): what :func:`update`
    does with the baseline's, and what the reward model's imagined batches do with predicted ones.

    Returns the step's tensors: loss, mean entropy, gradient norm, skip penalty, mean importance
    weight and fraction clipped.
    """
    skips = tuple((int(d), int(t)) for d, t in skips) if skip_weight > 0 else ()
    importance = old_log_probs is not None
    step = _step_function(controller, skips, float(skip_target) if skips else 0.0, importance)
    old = []
    if importance:
        old = [tf.constant(np.asarray(old_log_probs), tf.float64), tf.constant(importance_clip, tf.float64)]
    return step(
        tf.constant(np.asarray(tokens), tf.int32),
        tf.constant(np.asarray(mask), tf.float32),
        tf.constant(np.asarray(advantages, np.float64), tf.float64),
        *(tf.constant(x, tf.float32) for x in (entropy_weight, grad_clip, skip_weight)),
        *old,
    )


def risk_seeking_advantages(rewards: np.ndarray, memory: np.ndarray, epsilon: float) -> np.ndarray:
    """Petersen et al. (ICLR 2021): advantage ``R - q`` for rows at or above ``q``, the (1 - epsilon)
    quantile, and 0 below it, so the policy learns only from its best samples.

    A batch of 4 has no useful quantile of its own, so ``q`` is taken over ``memory`` (the recent real
    rewards, this batch included); an imagined batch of many samples passes itself as its memory.
    """
    rewards = np.asarray(rewards, np.float64)
    q = float(np.quantile(np.asarray(memory, np.float64), 1 - epsilon))
    return np.where(rewards >= q, rewards - q, 0.0)
