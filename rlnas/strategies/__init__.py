"""Search strategies behind one small interface: ``ask`` for architectures, ``tell`` their rewards.

``make_strategy`` builds the one a config names, from the settings every strategy shares (the seed)
and its own settings object (``config.reinforce``, ``config.evolution``; :mod:`rlnas.settings`).
The default, reinforce, is the LSTM REINFORCE controller plus a learned reward model. It (and so
TensorFlow) is imported only when it is asked for, so random search and evolution start in a
fraction of a second.
"""

from __future__ import annotations

from rlnas.config import STRATEGIES, SearchConfig
from rlnas.errors import ConfigError, did_you_mean
from rlnas.space import SearchSpace
from rlnas.strategies.base import Proposal, Strategy

__all__ = ["STRATEGIES", "Proposal", "Strategy", "make_strategy"]


def make_strategy(config: SearchConfig, space: SearchSpace) -> Strategy:
    """The strategy ``config.strategy`` names, seeded by ``config.seed``.

    Raises:
        ConfigError: an unknown strategy, or evolution with a tournament larger than its population.
    """
    if config.strategy == "random":
        from rlnas.strategies.random import RandomStrategy

        return RandomStrategy(space, seed=config.seed)
    if config.strategy == "evolution":
        from rlnas.strategies.evolution import EvolutionStrategy

        return EvolutionStrategy(space, config.evolution, seed=config.seed)
    if config.strategy == "reinforce":
        from rlnas.strategies.reinforce import ReinforceStrategy

        return ReinforceStrategy(space, config.reinforce, seed=config.seed, pipeline=config.pipeline)
    if config.strategy == "tpe":
        from rlnas.strategies.tpe import TPEStrategy  # optuna, an optional dependency: only when asked

        return TPEStrategy(space, seed=config.seed)
    raise ConfigError(  # SearchConfig rejects this already; kept for configs built around its checks
        f"unknown strategy {config.strategy!r}; allowed: {', '.join(STRATEGIES)}"
        + did_you_mean(str(config.strategy), STRATEGIES)
    )
