"""Regularized evolution (Real et al. 2019, "Regularized Evolution for Image Classifier Architecture Search").

A FIFO population of ``population_size`` evaluated architectures. Until it is full, proposals are
uniformly random. Then each proposal is a mutation of a tournament winner: ``tournament_size`` members
drawn without replacement, the one with the highest reward (a failed child competes with the failed
reward it was given) is the parent, and exactly one of its active decisions that has more than one
value changes to another value, uniformly. A decision that the mutation brings into existence (more
layers: a new ``units_i``) gets a uniformly random value. New children push the oldest member out
(aging, not the worst: the "regularized" part, which keeps a lucky early reward from ruling forever).

Edge cases: a decision with a single value is never mutated; in a space where no active decision has
two values (one architecture only) the child is a copy of its parent.

Within one batch the population does not change (``tell`` comes after the whole batch), so a batch is
``n`` independent tournaments on the same population, and a fill phase batch is random in full even if
it overshoots ``population_size``: the population simply ages out the surplus.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlnas.models.child import Status
from rlnas.settings import EvolutionSettings
from rlnas.space import SearchSpace
from rlnas.strategies.base import (
    Proposal,
    check_ask,
    check_batch,
    read_state,
    uniform_tokens,
    write_json_atomic,
)


class EvolutionStrategy:
    """Regularized evolution with tournament selection and single-decision mutation.

    Args:
        space: the search space.
        settings: ``population_size`` (members kept alive; the oldest is aged out) and
            ``tournament_size`` (members compared to choose each parent, at most the population).
        seed: seed of the generator behind every random choice.

    Raises:
        ConfigError: the tournament exceeds the population.
    """

    name = "evolution"

    def __init__(
        self, space: SearchSpace, settings: EvolutionSettings | None = None, *, seed: int = 0
    ) -> None:
        settings = settings if settings is not None else EvolutionSettings()
        settings.check_tournament()
        self.space = space
        self.population_size = settings.population_size
        self.tournament_size = settings.tournament_size
        self.rng = np.random.default_rng(seed)
        self.population: deque[tuple[np.ndarray, float]] = deque(maxlen=self.population_size)

    def ask(self, n: int) -> Proposal:
        check_ask(n)
        return Proposal(self._propose(n, self.rng), None)

    def tell(
        self,
        tokens: np.ndarray,
        rewards: np.ndarray,
        log_probs: np.ndarray | None = None,
        statuses: Sequence[Status] | None = None,
    ) -> dict[str, float]:
        """Add the rows to the population; ``log_probs`` are ignored (no policy: a stale batch is just
        older members, which evolution takes as they come)."""
        tokens, rewards = check_batch(self.space, tokens, rewards, log_probs, statuses)
        for t, r in zip(tokens, rewards, strict=True):
            self.population.append((t.copy(), float(r)))  # the deque's maxlen ages out the oldest
        if not self.population:
            return {}
        values = [r for _, r in self.population]
        return {"charts/population_best": max(values), "charts/population_mean": float(np.mean(values))}

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """What ``ask`` would propose now, drawn with ``rng``: the marginals evolution is pushing toward."""
        return self._propose(n, rng)

    # -- proposals -------------------------------------------------------------------------------
    def _propose(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if len(self.population) < self.population_size:
            return uniform_tokens(self.space, n, rng)
        return np.stack([self._child(rng) for _ in range(n)])

    def _child(self, rng: np.random.Generator) -> np.ndarray:
        """Tournament, then one mutation of the winner (the earliest drawn wins a tie)."""
        drawn = rng.choice(len(self.population), size=self.tournament_size, replace=False)
        winner = max(drawn, key=lambda i: self.population[i][1])
        return mutate(self.space, self.population[winner][0], rng)

    # -- checkpoints -----------------------------------------------------------------------------
    def think(self) -> None:
        """Nothing to do while children train: the population changes only at ``tell``."""

    def save(self, path: Path, meta: dict) -> None:
        state = {
            "strategy": self.name,
            "vocab": list(self.space.vocab_sizes),
            "population": [[int(x) for x in t] for t, _ in self.population],
            "rewards": [r for _, r in self.population],
            "rng": self.rng.bit_generator.state,
            "meta": meta,
        }
        write_json_atomic(path, state)

    def restore(self, path: Path) -> dict:
        data = read_state(path, self.name, self.space)
        self.population.clear()  # a smaller population_size than the saved run's keeps the youngest
        for t, r in zip(data["population"], data["rewards"], strict=True):
            self.population.append((np.asarray(t, np.int64), float(r)))
        self.rng.bit_generator.state = data["rng"]
        return data["meta"]


def mutate(space: SearchSpace, parent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``parent`` with exactly one active, multi-valued decision changed to another value, uniformly.

    Inactive positions are refilled at random first, so a decision the mutation activates already has
    a uniform value. The number of draws is the same for every parent (a full row, one pick, one
    shift), except in a space with nothing to mutate, where the copy costs only the row.
    """
    mask = np.asarray(space.active_mask(parent), bool)
    child = np.where(mask, parent, uniform_tokens(space, 1, rng)[0]).astype(np.int64)
    sizes = space.vocab_sizes
    candidates = [i for i in range(len(space)) if mask[i] and sizes[i] > 1]
    if not candidates:
        return child
    i = candidates[int(rng.integers(len(candidates)))]
    child[i] = (child[i] + rng.integers(1, sizes[i])) % sizes[i]  # any value but the current one
    return child
