"""Random search: every decision uniform and independent, as keras-tuner's RandomSearch draws.

The baseline every other strategy has to beat (Li & Talwalkar 2019 found it hard to beat on many
NAS benchmarks), so it is kept exactly this simple. Note that with conditions, architectures are not
uniform: a one-layer network is reached by every value of the inactive ``units_i``, so it is as
likely as all three-layer networks together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlnas.models.child import Status
from rlnas.space import SearchSpace
from rlnas.strategies.base import (
    Proposal,
    check_ask,
    check_batch,
    read_state,
    uniform_tokens,
    write_json_atomic,
)


class RandomStrategy:
    """Uniform random proposals from a seeded, checkpointed generator.

    Args:
        space: the search space.
        seed: seed of the generator; the same seed proposes the same sequence.
    """

    name = "random"

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self, n: int) -> Proposal:
        check_ask(n)
        return Proposal(uniform_tokens(self.space, n, self.rng), None)

    def tell(
        self,
        tokens: np.ndarray,
        rewards: np.ndarray,
        log_probs: np.ndarray | None = None,
        statuses: Sequence[Status] | None = None,
    ) -> dict[str, float]:
        check_batch(self.space, tokens, rewards, log_probs, statuses)  # nothing to learn; a bad batch: a bug
        return {}

    def think(self) -> None:
        """Nothing to do while children train: random search learns nothing."""

    def save(self, path: Path, meta: dict) -> None:
        state = {
            "strategy": self.name,
            "vocab": list(self.space.vocab_sizes),
            "rng": self.rng.bit_generator.state,
        }
        write_json_atomic(path, state | {"meta": meta})

    def restore(self, path: Path) -> dict:
        data = read_state(path, self.name, self.space)
        self.rng.bit_generator.state = data["rng"]
        return data["meta"]

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return uniform_tokens(self.space, n, rng)
