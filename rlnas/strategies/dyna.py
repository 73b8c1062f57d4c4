"""What lets the REINFORCE controller learn from all of its history, each piece optional.

- :class:`History`: every architecture evaluated (tokens, reward) and every one proposed (keys), so
  that ``ask`` can refuse repeats while novel architectures remain: a repeat costs a real evaluation
  that teaches almost nothing.
- :func:`choose`: the real batch, picked from a pool of the controller's samples (plus, optionally,
  uniform and mutated candidates that keep exploration alive) by novelty and, with a reward model,
  by predicted value plus an optimism bonus.
- :func:`imagine`: Dyna-style policy-gradient steps on the reward model's predictions, between real
  batches; many cheap steps per expensive evaluation.

Every draw comes from the controller's own checkpointed generator, so a resumed run proposes what
the interrupted one would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlnas.policy import gradient as policy_gradient
from rlnas.policy.controller import Controller
from rlnas.policy.reward_model import RewardModel
from rlnas.settings import ReinforceSettings
from rlnas.space import SearchSpace
from rlnas.strategies.base import active_masks, uniform_tokens


@dataclass
class History:
    """Evaluated rows and the keys of every architecture proposed (evaluated or not yet)."""

    tokens: list[list[int]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, space: SearchSpace, tokens: np.ndarray, rewards: np.ndarray) -> None:
        for t, r in zip(np.asarray(tokens).tolist(), np.asarray(rewards).tolist(), strict=True):
            self.tokens.append([int(x) for x in t])
            self.rewards.append(float(r))
            self.seen.add(space.key(t))

    def to_meta(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "rewards": self.rewards, "seen": sorted(self.seen)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> History:
        if not meta:
            return cls()
        return cls(list(meta["tokens"]), [float(r) for r in meta["rewards"]], set(meta["seen"]))


def features(model: RewardModel, space: SearchSpace, tokens: np.ndarray) -> np.ndarray:
    return model.encode(tokens, active_masks(space, tokens))


def fit(model: RewardModel, space: SearchSpace, history: History, *, min_fit: int) -> bool:
    """Refit ``model`` to the whole history; False (unfitted) while it is shorter than ``min_fit``
    (``ReinforceSettings.model_min_fit``, the one place its default is written)."""
    if len(history.rewards) < min_fit:
        return False
    model.fit(features(model, space, np.array(history.tokens)), np.array(history.rewards))
    return True


def mutants(
    space: SearchSpace, history: History, n: int, rng: np.random.Generator, *, parents: int
) -> np.ndarray:
    """``n`` rows, each one of the ``parents`` best evaluated rows (``ReinforceSettings.mutant_parents``)
    with one decision redrawn uniformly."""
    top = np.argsort(history.rewards)[::-1][:parents]
    rows = np.array(history.tokens, np.int64)[rng.choice(top, size=n)]
    sizes = np.asarray(space.vocab_sizes)
    cols = rng.integers(0, len(sizes), size=n)
    rows[np.arange(n), cols] = rng.integers(0, sizes[cols])
    return rows


def _novel(space: SearchSpace, rows: np.ndarray, seen: set[str]) -> list[int]:
    """Indices of the rows not in ``seen``, the first of any duplicates within ``rows``."""
    keep, keys = [], set()
    for i, t in enumerate(rows):
        k = space.key(t)
        if k not in seen and k not in keys:
            keep.append(i)
            keys.add(k)
    return keep


def choose(
    controller: Controller,
    space: SearchSpace,
    history: History,
    n: int,
    settings: ReinforceSettings,
    model: RewardModel | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` novel rows (fewer only when the space runs out) and their policy log-probabilities
    (None when a row did not come from the policy: a pipelined batch then gets the plain gradient).

    The pool is ``model_pool`` controller samples (at least ``n``), of which a fraction
    ``explore_mix`` is replaced by mutants of the ``mutant_parents`` best rows (a share
    ``mutant_share`` of them) and uniform draws. With a fitted model the rows are picked by
    ``model_select``: "ucb" takes the highest ``mean + model_bonus * spread``; "thompson" fills each
    slot with the best row of one ensemble member drawn at random, so that a batch spreads over what
    the members disagree on instead of taking four neighbours of one guess; "mixed" takes the best
    predicted mean first and fills the other slots as "thompson" does. Without a model the novel rows
    are taken in sampling order.
    """
    rng = controller.rng
    sample = controller.sample(max(settings.model_pool, n))
    rows, from_policy = _mix(space, history, sample.tokens, settings, rng)
    rows, from_policy, keep = _novel_pool(space, history, rows, from_policy, n, rng)
    if model is not None and model.fitted and len(keep) > n:
        feats = features(model, space, rows[keep])
        keep = _rank(model, feats, keep, n, settings.model_bonus, settings.model_select, rng)
    keep = keep[:n]
    if len(keep) < n:  # the space is (nearly) exhausted: repeats after all
        keep = np.r_[keep, np.arange(n - len(keep))].astype(np.int64)
    chosen = rows[keep]
    log_probs = None  # a uniform or mutated row has no sampling probability to weight by
    if from_policy[keep].all():
        log_probs = (sample.log_probs[keep] * active_masks(space, chosen)).sum(axis=1)
    for t in chosen:
        history.seen.add(space.key(t))
    return chosen, log_probs


def _mix(
    space: SearchSpace,
    history: History,
    sampled: np.ndarray,
    settings: ReinforceSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The pool: the policy's samples with their last ``explore_mix`` share replaced by mutants, then
    uniform draws (none before the first evaluation); and which rows came from the policy."""
    pool = len(sampled)
    rows, from_policy = sampled, np.ones(pool, bool)
    extra = round(settings.explore_mix * pool) if history.rewards else 0
    if extra:
        half = extra - math.ceil(settings.mutant_share * extra)  # the uniform ones
        rows = rows.copy()
        parents = settings.mutant_parents
        rows[pool - extra : pool - half] = mutants(space, history, extra - half, rng, parents=parents)
        rows[pool - half :] = uniform_tokens(space, half, rng)
        from_policy[pool - extra :] = False
    return rows, from_policy


def _novel_pool(
    space: SearchSpace,
    history: History,
    rows: np.ndarray,
    from_policy: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, from_policy, indices of the novel rows): when fewer than ``n`` are novel, the policy is
    stuck on seen rows, and ``8 n`` uniform rows join the pool."""
    keep = _novel(space, rows, history.seen)
    if len(keep) < n:
        rows = np.concatenate([rows, uniform_tokens(space, 8 * n, rng)])
        from_policy = np.r_[from_policy, np.zeros(8 * n, bool)]
        keep = _novel(space, rows, history.seen)
    return rows, from_policy, np.array(keep, np.int64)


def _rank(
    model: RewardModel,
    feats: np.ndarray,
    keep: np.ndarray,
    n: int,
    bonus: float,
    select: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """``keep`` reordered so that its first ``n`` are the rows ``select`` picks (see :func:`choose`)."""
    if select == "ucb":
        return keep[np.argsort(-model.optimistic(feats, bonus), kind="stable")]
    per_tree = model.per_tree(feats)
    picked: list[int] = [int(np.argmax(per_tree.mean(axis=0)))] if select == "mixed" else []
    for member in rng.integers(0, len(per_tree), size=n - len(picked)):
        score = per_tree[member].copy()
        score[picked] = -np.inf
        picked.append(int(np.argmax(score)))
    return keep[np.array(picked, np.int64)]


def imagine(
    controller: Controller,
    space: SearchSpace,
    model: RewardModel,
    *,
    steps: int,
    batch: int,
    bonus: float,
    risk_epsilon: float,
    entropy_weight: float,
    grad_clip: float,
) -> float:
    """``steps`` REINFORCE steps on batches of ``batch`` samples scored by the model's optimistic
    value (standardised units; baseline the batch mean, or its risk-seeking quantile). Returns the
    mean entropy of the last step."""
    entropy = float("nan")
    for _ in range(steps):
        tokens = controller.sample(batch).tokens
        masks = active_masks(space, tokens)
        value = model.optimistic(model.encode(tokens, masks), bonus)
        if risk_epsilon > 0:
            adv = policy_gradient.risk_seeking_advantages(value, value, risk_epsilon)
        else:
            adv = value - value.mean()
        out = policy_gradient.step_on(
            controller, tokens, masks, adv, entropy_weight=entropy_weight, grad_clip=grad_clip
        )
        entropy = float(out[1])
    return entropy


def imitate_best(
    controller: Controller,
    space: SearchSpace,
    history: History,
    k: int,
    *,
    entropy_weight: float,
    grad_clip: float,
) -> float:
    """Priority-queue training (Abolafia et al. 2018): one step raising the log-probability of the
    ``k`` best distinct architectures evaluated so far (advantage 1 each: plain imitation, in the
    same units as the imagined steps' standardised advantages). Returns the step's mean entropy."""
    best: dict[str, int] = {}
    for i in np.argsort(history.rewards, kind="stable")[::-1]:
        best.setdefault(space.key(history.tokens[i]), int(i))
        if len(best) == k:
            break
    tokens = np.array([history.tokens[i] for i in best.values()], np.int64)
    masks = active_masks(space, tokens)
    out = policy_gradient.step_on(
        controller, tokens, masks, np.ones(len(tokens)), entropy_weight=entropy_weight, grad_clip=grad_clip
    )
    return float(out[1])
