"""Each strategy's own settings, one frozen dataclass per strategy in a module of its own.

Why here, one floor below :mod:`rlnas.strategies`: the config (:mod:`rlnas.config`) validates every
setting before TensorFlow loads and before a run directory is made, and a strategy is built from a
config, so the strategies sit above it. The dataclasses therefore live in the settings layer, where
the config can hold and validate them; each strategy takes only its own settings object.

A config file gives them in the strategy's own table (``[search.reinforce]``), or flat in
``[search]`` and as ``--flags`` as before: a setting's name is unique across strategies, so a flat
name always finds its owner (:data:`OWNER`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from rlnas.settings.darts import DartsSettings
from rlnas.settings.enas import EnasSettings
from rlnas.settings.evolution import EvolutionSettings
from rlnas.settings.reinforce import MODEL_SELECTS, PLAIN_REINFORCE, ReinforceSettings

STRATEGIES = ("reinforce", "random", "evolution", "tpe", "enas", "darts")
ONESHOT = ("enas", "darts")
"""The strategies that train one shared supernet instead of one network per child: the one-shot
search loop runs them (:mod:`rlnas.search.oneshot`), not the loop of children."""
SETTINGS: dict[str, Any] = {
    "reinforce": ReinforceSettings,
    "evolution": EvolutionSettings,
    "enas": EnasSettings,
    "darts": DartsSettings,
}
"""Strategy name -> the class of its settings; random search and TPE have none of their own."""
OWNER: dict[str, str] = {f.name: name for name, kind in SETTINGS.items() for f in fields(kind)}
"""Setting name -> the strategy that owns it."""

__all__ = [
    "MODEL_SELECTS",
    "ONESHOT",
    "OWNER",
    "PLAIN_REINFORCE",
    "SETTINGS",
    "STRATEGIES",
    "DartsSettings",
    "EnasSettings",
    "EvolutionSettings",
    "ReinforceSettings",
]
