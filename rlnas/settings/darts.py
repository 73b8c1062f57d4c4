"""The settings of first-order DARTS (:mod:`rlnas.strategies.darts`): the weight and alpha optimizers
and the (smaller) network the search trains. Read from ``[search.darts]`` (or flat in ``[search]``, and
as ``--flags``).

Defaults follow Liu et al. (2019): SGD on the weights, momentum 0.9, lr 0.025 annealed by a cosine to
0.001, weight decay 3e-4, gradient clipping at 5; Adam on alpha, lr 3e-4, betas (0.5, 0.999), weight
decay 1e-3. Every name carries ``darts_`` or ``alpha_``: a flat setting must find its one owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlnas.errors import ConfigError
from rlnas.models import cell
from rlnas.settings.bounds import check_bounds
from rlnas.settings.rules import Check, check_all, finite_number, must, optional, positive, whole
from rlnas.settings.rules import setting as _f
from rlnas.space import SearchSpace


@dataclass(frozen=True)
class DartsSettings:
    """Each field is also a ``--flag``."""

    darts_epochs: int = _f(10, "epochs of DARTS's search (passes over the training split)")
    darts_lr: float = _f(0.025, "initial SGD learning rate of the shared weights (cosine-annealed)")
    darts_lr_min: float = _f(0.001, "SGD learning rate of the shared weights at the end of the cosine")
    darts_momentum: float = _f(0.9, "SGD momentum of the shared weights")
    darts_weight_decay: float = _f(3e-4, "L2 weight decay of the shared weights")
    darts_grad_clip: float = _f(5.0, "global-norm clipping of the shared weights' gradient")
    alpha_lr: float = _f(3e-4, "Adam learning rate of the architecture weights alpha")
    alpha_weight_decay: float = _f(1e-3, "L2 weight decay of alpha")
    darts_warmup_epochs: float = _f(0.0, "epochs of weight steps before alpha starts to move (0: none)")
    darts_filters: int | None = _f(None, "width of the searched network (default: the space's smallest)")
    darts_cells: int | None = _f(
        None, "cells per stack of the searched network (default: the space's smallest num_cells)"
    )

    def __post_init__(self) -> None:
        check_all(self, RULES)
        check_bounds(self)
        if self.darts_lr_min > self.darts_lr:
            raise ConfigError(
                f"darts_lr_min ({self.darts_lr_min!r}) must be at most darts_lr ({self.darts_lr!r}): "
                "the cosine anneals the learning rate down"
            )


_nonneg = must(finite_number, ">= 0")


def _count(limit: int) -> Check:
    """A whole number in 1..limit: past it the network would not fit in memory (a typo)."""
    return must(lambda v: type(v) is int and 1 <= v <= limit, f"a whole number in 1..{limit}")


RULES: dict[str, Check] = {
    "darts_epochs": whole,
    "darts_lr": positive,
    "darts_lr_min": _nonneg,
    "darts_momentum": must(lambda v: finite_number(v) and v < 1, "in [0, 1)"),
    "darts_weight_decay": _nonneg,
    "darts_grad_clip": positive,
    "alpha_lr": positive,
    "alpha_weight_decay": _nonneg,
    "darts_warmup_epochs": must(finite_number, ">= 0 (0: alpha moves from the first step)"),
    "darts_filters": optional(_count(1024)),
    "darts_cells": optional(_count(16)),
}
"""The rule of every field, in field order (the first bad field is the one reported)."""


def check_darts_space(space: SearchSpace) -> None:
    """DARTS relaxes per-edge operations, which only the cell space has: refuse any other in one line.

    Here, not beside the strategy, so that the config can refuse it before TensorFlow loads and before
    a run directory exists."""
    if space.model != "cell":
        raise ConfigError(
            f"--strategy darts needs the cell space's per-edge operations; the {space.model!r} space has "
            'none: use [space] model = "cell" (e.g. --config examples/cell.toml)'
        )
    cell.check(space)
