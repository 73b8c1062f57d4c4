"""A learned reward model: an ensemble that predicts an architecture's reward from its tokens.

Plain REINFORCE uses each evaluation for one gradient step and forgets it; an evaluation costs
seconds to hours, a prediction microseconds. The model is fitted to every evaluated architecture, and
the controller then takes many cheap policy-gradient steps on its predictions (Dyna, Sutton 1990) and
proposes, among its novel samples, those the model rates best.

The ensemble is scikit-learn's extra-trees on bootstrap resamples: the spread of its trees'
predictions is the uncertainty, and ``mean + bonus * spread`` is the optimistic value that keeps the
search trying what the model cannot yet judge (upper confidence bound). Rewards are standardised
before the fit, so the bonus is in units of the rewards' spread whatever the metric.

With ``linear`` members, the ensemble also holds bootstrap ridge regressions on the same features:
an additive model (each decision's value adds to the reward) that a handful of evaluations already
pins down, where a tree needs many to split on every decision; a Thompson draw then picks a tree or
a ridge member, so a batch mixes both views.

Features: the one-hot encoding of each *active* decision (an inactive one is all zeros), so that two
token rows of the same architecture get the same prediction; with ``ordinal``, also each numeric
decision's rank among its values, scaled to [0, 1] (-1 when inactive), so that a tree can split "at
most 256 units" in one cut where one-hot columns need one cut per value.
"""

from __future__ import annotations

import numpy as np

from rlnas.errors import ConfigError
from rlnas.space import SearchSpace

EXTRA_HINT = "pip install scikit-learn (a dependency of rlnas: reinstall it with pip install -e .)"


def one_hot(space: SearchSpace, tokens: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(n, sum of vocabularies) float32: a 1 at each active decision's token."""
    tokens = np.asarray(tokens, np.int64)
    offsets = np.cumsum((0, *space.vocab_sizes[:-1]))
    out = np.zeros((len(tokens), sum(space.vocab_sizes)), np.float32)
    rows, cols = np.nonzero(np.asarray(masks, bool))
    out[rows, offsets[cols] + tokens[rows, cols]] = 1.0
    return out


def ordinal(space: SearchSpace, tokens: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(n, numeric decisions with more than 2 values) float32: each one's value rank / (values - 1),
    -1 where the decision is inactive."""
    tokens = np.asarray(tokens, np.int64)
    masks = np.asarray(masks, bool)
    cols = []
    for i, d in enumerate(space.decisions):
        if d.kind in ("int", "float") and len(d.values) > 2:
            rank = np.argsort(np.argsort(np.asarray(d.values, np.float64), kind="stable"), kind="stable")
            cols.append(np.where(masks[:, i], rank[tokens[:, i]] / (len(d.values) - 1), -1.0))
    if not cols:
        return np.zeros((len(tokens), 0), np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


RIDGE = 1.0
"""L2 penalty of the ridge members (standardised rewards, 0/1 features): strong enough that a
decision seen once moves its prediction by at most about half that evaluation's deviation."""


class RewardModel:
    """Extra-trees ensemble over one-hot architectures: ``fit`` on the history, ``predict`` mean and
    spread (in units of the standardised rewards).

    Args:
        space: the search space (vocabulary sizes; masks come with the rows).
        trees: ensemble members; their disagreement is the uncertainty.
        seed: the ensemble's randomness; ``fit`` adds the history's length to it, so a run refitted
            after a resume gets the very same model.
        ordinal: add the numeric decisions' ranks to the one-hot features (:func:`ordinal`).
        linear: bootstrap ridge members beside the trees (0: trees only).
        ridge: their L2 penalty, in units of the standardised rewards.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        trees: int = 16,
        seed: int = 0,
        ordinal: bool = False,
        linear: int = 0,
        ridge: float = RIDGE,
    ) -> None:
        try:
            from sklearn.ensemble import ExtraTreesRegressor
        except ImportError:
            raise ConfigError(
                f"the reward model (model_steps > 0) needs scikit-learn: {EXTRA_HINT}"
            ) from None
        self._make = ExtraTreesRegressor
        self.space = space
        self.ordinal = ordinal
        self.trees = trees
        self.seed = seed
        self.linear = linear
        self.ridge = ridge
        self._forest = None
        self._weights = np.zeros((0, 0))
        self._scale = (0.0, 1.0)

    def encode(self, tokens: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The features of (n, D) token rows whose active decisions are ``masks``."""
        x = one_hot(self.space, tokens, masks)
        return np.concatenate([x, ordinal(self.space, tokens, masks)], axis=1) if self.ordinal else x

    @property
    def fitted(self) -> bool:
        return self._forest is not None

    def fit(self, features: np.ndarray, rewards: np.ndarray) -> None:
        """Fit to every evaluated row (repeats included: each is one more noisy measurement)."""
        rewards = np.asarray(rewards, np.float64)
        mean, std = float(rewards.mean()), float(rewards.std())
        self._scale = (mean, std if std > 0 else 1.0)
        seed = (self.seed * 7919 + len(rewards)) % 2**32  # the same model after a resume
        forest = self._make(
            n_estimators=self.trees,
            bootstrap=True,
            min_samples_leaf=1,
            max_features=0.7,
            random_state=seed,
            n_jobs=1,
        )
        target = (rewards - mean) / self._scale[1]
        forest.fit(features, target)
        self._forest = forest
        if self.linear:
            self._weights = self._fit_linear(features, target, seed)

    def _fit_linear(self, features: np.ndarray, target: np.ndarray, seed: int) -> np.ndarray:
        """(linear, features + 1): each member's ridge weights (bias last) on a bootstrap resample."""
        rng = np.random.default_rng(seed)
        x = np.concatenate([features, np.ones((len(features), 1))], axis=1).astype(np.float64)
        penalty = self.ridge * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the bias is not shrunk
        weights = []
        for _ in range(self.linear):
            rows = rng.integers(0, len(x), size=len(x))
            xb, yb = x[rows], target[rows]
            weights.append(np.linalg.solve(xb.T @ xb + penalty, xb.T @ yb))
        return np.array(weights)

    def per_tree(self, features: np.ndarray) -> np.ndarray:
        """(members, n): each member's standardised prediction of each row, the trees first, then
        the ridge members (a Thompson draw picks one)."""
        if self._forest is None:
            raise RuntimeError("predict before fit")
        trees = np.stack([t.predict(features) for t in self._forest.estimators_])
        if not self.linear:
            return trees
        linear = self._weights[:, :-1] @ np.asarray(features, np.float64).T + self._weights[:, -1:]
        return np.concatenate([trees, linear])

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, spread) of the standardised reward of each row, each (n,)."""
        per_tree = self.per_tree(features)
        return per_tree.mean(axis=0), per_tree.std(axis=0)

    def optimistic(self, features: np.ndarray, bonus: float) -> np.ndarray:
        """``mean + bonus * spread``: the value an upper-confidence-bound search acts on."""
        mean, spread = self.predict(features)
        return mean + bonus * spread
