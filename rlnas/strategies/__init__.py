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
from rlnas.settings import ONESHOT
from rlnas.space import SearchSpace
from rlnas.strategies.base import Proposal, Strategy
from rlnas.strategies.oneshot import OneShotStrategy

__all__ = ["ONESHOT", "STRATEGIES", "Proposal", "Strategy", "make_oneshot", "make_strategy"]


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
    if config.strategy in ONESHOT:
        raise ConfigError(
            f"{config.strategy} is a one-shot strategy: it trains one supernet, not children one by one; "
            "run it with rlnas.search.oneshot.run_oneshot (`rlnas search` does)"
        )
    raise ConfigError(  # SearchConfig rejects this already; kept for configs built around its checks
        f"unknown strategy {config.strategy!r}; allowed: {', '.join(STRATEGIES)}"
        + did_you_mean(str(config.strategy), STRATEGIES)
    )


def make_oneshot(
    config: SearchConfig,
    space: SearchSpace,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    steps_per_epoch: int = 1,
) -> OneShotStrategy:
    """The one-shot strategy ``config.strategy`` names (enas or darts), with its supernet built for
    ``space`` and the data's ``input_shape`` and ``num_classes``, seeded by ``config.seed``.

    Args:
        steps_per_epoch: training minibatches per epoch of the one-shot loop (ENAS spreads its
            controller's updates over them).

    Raises:
        ConfigError: not a one-shot strategy, or a space its supernet cannot cover.
    """
    if config.strategy == "enas":
        from rlnas.policy.supernet import check_supported, make_supernet
        from rlnas.strategies.enas import EnasStrategy

        check_supported(space)
        s = config.enas
        supernet = make_supernet(
            space,
            input_shape,
            num_classes,
            seed=config.seed,
            learning_rate=s.enas_lr,
            momentum=s.enas_momentum,
            batch_size=config.batch_size,  # the memory estimate is checked first
        )
        return EnasStrategy(space, s, supernet, steps_per_epoch=steps_per_epoch, seed=config.seed)
    if config.strategy == "darts":
        from rlnas.strategies.darts import DartsStrategy

        settings = config.darts
        return DartsStrategy(
            space, settings, input_shape, num_classes, seed=config.seed, steps_per_epoch=steps_per_epoch
        )
    raise ConfigError(
        f"{config.strategy!r} is not a one-shot strategy; one-shot strategies: {', '.join(ONESHOT)}"
    )
