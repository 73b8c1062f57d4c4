"""rlnas: neural architecture search with a reinforcement-learning controller (Zoph & Le, 2017).

Importing ``rlnas`` is cheap (no TensorFlow): the pieces that need it live in their own modules,
``rlnas.controller``, ``rlnas.reinforce``, ``rlnas.search``, ``rlnas.replay``, and the environment in
``envs``.
"""

from rlnas.config import SearchConfig, load_config
from rlnas.errors import ChildError, ConfigError, DataError, RlnasError, RunError
from rlnas.space import Decision, SearchSpace, default_space

__version__ = "0.1.0"

__all__ = [
    "ChildError",
    "ConfigError",
    "DataError",
    "Decision",
    "RlnasError",
    "RunError",
    "SearchConfig",
    "SearchSpace",
    "__version__",
    "default_space",
    "load_config",
]
