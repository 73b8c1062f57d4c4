"""The settings of ENAS (Pham et al., 2018): one supernet whose weights every child shares, and the LSTM
controller that samples paths through it (:mod:`rlnas.strategies.enas`).

Read from ``[search.enas]`` (or flat in ``[search]``, and as ``--flags``). Every name starts with
``enas_``, as a setting's name is unique across strategies and DARTS has epochs, learning rates and
warm-ups of its own. The minibatch size is the shared ``batch_size``; the supernet trains on the run's
train split (``train_fraction`` of it) and the controller learns from the validation split.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlnas.settings.bounds import check_bounds
from rlnas.settings.rules import Check, check_all, finite_number, must, positive, whole
from rlnas.settings.rules import setting as _f


@dataclass(frozen=True)
class EnasSettings:
    """Each field is also a ``--flag``."""

    enas_epochs: int = _f(
        10, "passes of the shared weights over the train split (the budget; --max-minutes also stops it)"
    )
    enas_warmup: int = _f(
        0, "training steps of the shared weights on uniform random paths before the controller learns"
    )
    enas_controller_steps: int = _f(20, "controller updates per epoch, spread evenly over its training steps")
    enas_paths: int = _f(
        8, "paths sampled per controller update, all scored on the same validation minibatch"
    )
    enas_entropy: float = _f(1e-4, "weight of the entropy bonus in the controller's REINFORCE loss")
    enas_controller_lr: float = _f(0.005, "Adam learning rate of the controller")
    enas_baseline_decay: float = _f(0.95, "decay of the exponential moving-average reward baseline")
    enas_path_dropout: float = _f(
        0.0,
        "fraction of training steps (after the warm-up) that train a uniformly random path instead of the "
        "controller's sample, so that paths the controller neglects keep learning",
    )
    enas_lr: float = _f(0.05, "SGD learning rate of the shared weights")
    enas_momentum: float = _f(0.9, "SGD momentum of the shared weights")
    enas_candidates: int = _f(
        100, "architectures sampled from the controller at the end and scored with shared weights"
    )
    enas_top_k: int = _f(
        5, "best distinct candidates journaled as trials (replay retrains --replay-top of them)"
    )

    def __post_init__(self) -> None:
        check_all(self, RULES)
        check_bounds(self)


def _count(low: int, rule: str) -> Check:
    return must(lambda v: type(v) is int and v >= low, rule)


RULES: dict[str, Check] = {
    "enas_epochs": whole,
    "enas_warmup": _count(0, "a whole number >= 0 (0: no warm-up)"),
    "enas_controller_steps": _count(0, "a whole number >= 0 (0: the controller never learns)"),
    "enas_paths": whole,
    "enas_entropy": must(finite_number, ">= 0"),
    "enas_controller_lr": positive,
    "enas_baseline_decay": must(lambda v: finite_number(v) and v < 1, "in [0, 1)"),
    "enas_path_dropout": must(lambda v: finite_number(v) and v <= 1, "in [0, 1]"),
    "enas_lr": positive,
    "enas_momentum": must(lambda v: finite_number(v) and v < 1, "in [0, 1)"),
    "enas_candidates": whole,
    "enas_top_k": whole,
}
"""The rule of every field, in field order (the first bad field is the one reported)."""
