"""Shared-weight networks (supernets) that ENAS samples architectures through as paths.

One supernet per built-in model where weight sharing applies (:data:`SUPPORTED_MODELS`): the conv
chain and the skip chain (:mod:`.chain`: the widest kernels sliced per path), the NASNet-style cell
(:mod:`.cell`: weights per cell, node, input slot and operation) and the MLP (:mod:`.mlp`: the widest
layers sliced). A path is one architecture of the space as tokens; ``train_step`` takes one SGD step
of the shared weights through it and ``accuracy`` scores it with them. Decisions that only change how
a child trains (``lr``, ``dropout``) are in ``fixed`` with the value a derived child takes; every
other decision is in ``shared`` (see :mod:`.base`). :func:`estimate_bytes` sizes a supernet before
it is built (:mod:`.memory`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlnas.errors import ConfigError
from rlnas.policy.supernet.memory import DEFAULT_LIMIT, check_memory, estimate_bytes
from rlnas.policy.supernet.registry import SUPPORTED_MODELS, check_supported, supernet_class
from rlnas.space import SearchSpace

__all__ = [
    "DEFAULT_LIMIT",
    "SUPPORTED_MODELS",
    "Supernet",
    "check_memory",
    "check_supported",
    "estimate_bytes",
    "make_supernet",
]


class Supernet(Protocol):
    """What the ENAS strategy needs of a shared-weight network."""

    shared: tuple[str, ...]
    fixed: dict[str, Any]

    def train_step(self, x: np.ndarray, y: np.ndarray, tokens: np.ndarray) -> tuple[float, float]: ...

    def accuracy(
        self, x: np.ndarray, y: np.ndarray, tokens: np.ndarray, *, batch_size: int = 512
    ) -> float: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...

    def param_bytes(self) -> int: ...


def make_supernet(
    space: SearchSpace,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    seed: int,
    learning_rate: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    nesterov: bool = True,
    batch_size: int | None = None,
    memory_limit: int = DEFAULT_LIMIT,
) -> Supernet:
    """The supernet of ``space`` for inputs of ``input_shape`` (one sample) and ``num_classes`` classes.

    With ``batch_size``, first checks the memory estimate against ``memory_limit`` bytes (ConfigError
    saying to lower ``--batch-size`` or shrink the space); ``seed`` fixes the initial weights.
    """
    cls = supernet_class(space)
    if int(num_classes) < 2:
        raise ConfigError(f"a supernet classifies: it needs at least 2 classes, got {num_classes}")
    if batch_size is not None:
        check_memory(space, input_shape, num_classes, batch_size, limit=memory_limit)
    return cls(
        space,
        tuple(input_shape),
        int(num_classes),
        seed=seed,
        learning_rate=learning_rate,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )
