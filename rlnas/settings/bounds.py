"""The bounds every search setting shares, past its own rule (:mod:`rlnas.config`, :mod:`rlnas.settings`):
a finite number, a whole number a C library can hold, a size the search can hold in memory.

Each is a value that passes a field's rule ("positive") and would still fail, long after the run
directory was made, as an overflow or an exhausted memory deep inside NumPy or TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from rlnas.errors import ConfigError

INT_LIMIT = 2**31
"""Whole-number settings stay below this (TensorFlow's and the C libraries' int): larger ones would
reach an overflow deep inside a library, not a message."""
SIZE_LIMITS = {
    "archs_per_update": 2**16,
    "lstm_units": 4096,
    "lstm_layers": 64,
    "model_steps": 2**16,
    "model_batch": 2**16,
    "model_pool": 2**16,
    "model_trees": 4096,
    "model_min_fit": 2**20,
    "model_linear": 4096,
    "mutant_parents": 2**20,
    "risk_memory": 2**20,
    "pqt_k": 2**16,
    "population_size": 2**20,
    "tournament_size": 2**20,
    "init_range": 1.0,
    "enas_paths": 2**16,
    "enas_candidates": 2**16,
    "enas_top_k": 2**16,
    "bench_runs": 2**20,  # rlnas bench's --budget and --seeds (not a setting: each run's rewards)
    "seed": 2**32 - 1,  # numpy's seeds (rlnas.config.SEED_LIMIT checks it with its own message)
}
"""Upper bounds of what the search holds in memory at once (the controller's weights, a batch, the
reward model, the population; weights past 1 saturate the LSTM): beyond them a setting is a typo, and
it would stall or exhaust memory long after the run directory was made."""


def check_bounds(settings: Any) -> None:
    """What the per-field rules leave open, for the shared config and each strategy's settings alike:
    non-finite numbers, ints past :data:`INT_LIMIT`, sizes past :data:`SIZE_LIMITS`."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
        limit = SIZE_LIMITS.get(f.name, INT_LIMIT)
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > limit:
            bound = f"at most {limit}" if value > 0 else f"at least {-limit}"
            raise ConfigError(f"{f.name} must be {bound}, got {value!r}")
