"""The settings of regularized evolution (:mod:`rlnas.strategies.evolution`): the population and its
tournaments. Read from ``[search.evolution]`` (or flat in ``[search]``, and as ``--flags``)."""

from __future__ import annotations

from dataclasses import dataclass

from rlnas.errors import ConfigError
from rlnas.settings.bounds import check_bounds
from rlnas.settings.rules import Check, check_all, whole
from rlnas.settings.rules import setting as _f


@dataclass(frozen=True)
class EvolutionSettings:
    """Each field is also a ``--flag``."""

    population_size: int = _f(20, "architectures kept alive (the oldest is aged out)")
    tournament_size: int = _f(5, "random members compared to pick each parent")

    def __post_init__(self) -> None:
        check_all(self, RULES)
        check_bounds(self)

    def check_tournament(self) -> None:
        """A tournament draws members without replacement, so it must fit in the population (checked
        when evolution is the strategy that runs: another strategy's run ignores these settings)."""
        if self.tournament_size > self.population_size:
            raise ConfigError(
                f"tournament_size ({self.tournament_size}) must be at most population_size "
                f"({self.population_size}): a tournament draws members without replacement"
            )


RULES: dict[str, Check] = {"population_size": whole, "tournament_size": whole}
