"""rlnas: neural architecture search with a reinforcement-learning controller (Zoph & Le, 2017).

Importing ``rlnas`` is cheap (no TensorFlow): the pieces that need it live in their own packages,
``rlnas.policy``, ``rlnas.search`` and ``rlnas.exec``, and the environment in ``envs``.
``rlnas.ReinforceSearch`` (keras-tuner's tuner interface, :mod:`rlnas.tuner`) is imported on first use.
"""

from typing import Any

from rlnas.config import SearchConfig, load_config, make_config
from rlnas.errors import ChildError, ConfigError, DataError, RlnasError, RunError
from rlnas.space import Decision, SearchSpace, default_space
from rlnas.space.discovery import space_from_function
from rlnas.space.keras_tuner import HyperModel, HyperParameters, Objective

__version__ = "0.1.0"

__all__ = [
    "ChildError",
    "ConfigError",
    "DataError",
    "Decision",
    "HyperModel",
    "HyperParameters",
    "Objective",
    "ReinforceSearch",
    "RlnasError",
    "RunError",
    "SearchConfig",
    "SearchSpace",
    "__version__",
    "default_space",
    "load_config",
    "make_config",
    "space_from_function",
]


def __getattr__(name: str) -> Any:
    """``rlnas.ReinforceSearch`` on first use: its module pulls in the search machinery."""
    if name == "ReinforceSearch":
        from rlnas.tuner import ReinforceSearch

        return ReinforceSearch
    raise AttributeError(f"module 'rlnas' has no attribute {name!r}")
