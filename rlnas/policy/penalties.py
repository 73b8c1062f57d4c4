"""Extra terms of the controller's loss; pure functions, so the REINFORCE step stays one readable line.

ENAS (Pham et al. 2018) found that a controller searching skip connections drifts to dense graphs
that train slowly and overfit; it adds the KL divergence between each skip decision's probability
and a target density to the loss:

    loss += skip_weight * mean over active skip decisions of KL(Bernoulli(p) || Bernoulli(target))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlnas.errors import ConfigError
from rlnas.space import SearchSpace

EPS = 1e-7


def skip_positions(space: SearchSpace) -> list[tuple[int, int]]:
    """(decision index, token of ``True``) of each ``skip_<i>_<j>`` bool decision of ``space``.

    What the controller needs to read the probability of "connect" at each skip step.
    """
    return [
        (k, d.values.index(True))
        for k, d in enumerate(space.decisions)
        if d.name.startswith("skip_") and d.kind == "bool" and True in d.values
    ]


def skip_penalty(probabilities: Any, mask: Any | None = None, *, target: float = 0.4) -> Any:
    """KL(Bernoulli(p) || Bernoulli(target)) averaged over the active skip decisions of a batch.

    Args:
        probabilities: shape (m, k): the controller's probability of ``True`` for each of the k skip
            decisions of each of m sampled architectures (a tf tensor under a GradientTape, so the
            penalty has a gradient; numpy arrays work too).
        mask: shape (m, k), 1 where the decision was active (its layer exists); None: all active.
        target: the skip density the penalty pulls towards, in (0, 1); ENAS used 0.4.

    Returns:
        A scalar tf tensor, 0 when no decision is active; it is 0 exactly when every p == target.
    """
    import tensorflow as tf

    if not 0 < target < 1:
        raise ConfigError(f"skip penalty target must be in (0, 1), got {target!r}")
    p = tf.clip_by_value(tf.cast(probabilities, tf.float32), EPS, 1 - EPS)
    m = tf.ones_like(p) if mask is None else tf.cast(mask, tf.float32)
    kl = p * tf.math.log(p / target) + (1 - p) * tf.math.log((1 - p) / (1 - target))
    return tf.math.divide_no_nan(tf.reduce_sum(kl * m), tf.reduce_sum(m))


def skip_density(architectures: Sequence[dict[str, Any]]) -> float:
    """Share of the existing skip decisions set to True in ``architectures`` (for monitoring)."""
    values = [v for arch in architectures for name, v in arch.items() if name.startswith("skip_")]
    return sum(map(bool, values)) / len(values) if values else 0.0
