"""Search spaces, the ground layer: what can be searched, as plain data (no Keras, no RL).

- :mod:`rlnas.space.decisions`: :class:`Decision` and :class:`SearchSpace` (tokens <-> architecture,
  conditions, size, keys, summary);
- :mod:`rlnas.space.standard`: the standard spaces (MLP, convolutional chain, skip chain, cell);
- :mod:`rlnas.space.toml`: a space from a TOML ``[space]`` table;
- :mod:`rlnas.space.keras_tuner`: keras-tuner's ``hp`` (records or replays a model function's calls);
- :mod:`rlnas.space.discovery`: a space discovered from a ``build_model(hp)``; naming and loading it.

Every front end produces the same :class:`SearchSpace`; the layers above import from here.
"""

from rlnas.space.decisions import INACTIVE, Architecture, Decision, SearchSpace, Value, log_grid
from rlnas.space.standard import CELL_OPS, cell_space, conv_space, default_space, skip_space

__all__ = [
    "CELL_OPS",
    "INACTIVE",
    "Architecture",
    "Decision",
    "SearchSpace",
    "Value",
    "cell_space",
    "conv_space",
    "default_space",
    "log_grid",
    "skip_space",
]
