"""The settings of the default strategy: the LSTM REINFORCE controller plus a learned reward model.

By default the controller (Zoph & Le 2017) proposes only architectures not yet evaluated, picks each
real batch from a pool of its samples mixed with mutants of the best rows and uniform draws, by a
reward model's optimistic prediction, and takes imagined policy-gradient steps on that model between
real batches (:mod:`rlnas.strategies.dyna`). :data:`PLAIN_REINFORCE` turns all of that off: Zoph &
Le's one policy-gradient step per real batch.

Read from ``[search.reinforce]`` (or flat in ``[search]``, and as ``--flags``); validated here, before
TensorFlow loads, with the same rules as every other setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlnas.policy.controller_kinds import CONTROLLER_LR, CONTROLLERS
from rlnas.settings.bounds import check_bounds
from rlnas.settings.rules import (
    Check,
    check_all,
    finite_number,
    flag,
    must,
    one_of,
    optional,
    positive,
    whole,
)
from rlnas.settings.rules import (
    setting as _f,
)

MODEL_SELECTS = ("ucb", "thompson", "mixed")
"""How the reinforce strategy picks its real batch from the pool (rlnas.strategies.dyna.choose)."""
PLAIN_REINFORCE: dict[str, Any] = {"novel_only": False, "model_steps": 0, "explore_mix": 0.0}
"""The settings that turn the reinforce strategy back into Zoph & Le's: one policy-gradient step per
real batch, no reward model, no novelty filter, no mixed-in candidates (the ablation's baseline;
``--plain-reinforce``, or ``--no-novel-only --model-steps 0 --explore-mix 0``, on the command line)."""


@dataclass(frozen=True)
class ReinforceSettings:
    """The controller, its update, and the reward model around it; each field is also a ``--flag``."""

    controller: str = _f(
        "lstm",
        "reinforce's policy: lstm (Zoph & Le's RNN) or factorized (one free logit vector per decision)",
    )
    controller_lr: float | None = _f(
        None, "Adam learning rate of the controller (default: 0.005 for lstm, 0.02 for factorized)"
    )
    importance_clip: float = _f(
        1.0,
        "pipeline 2: cap c of the importance weight min(c, pi_new/pi_old); 0: no weights (stale gradient)",
    )
    entropy_weight: float = _f(1e-3, "weight of the entropy bonus in the REINFORCE loss")
    skip_weight: float = _f(0.0, "weight of the ENAS skip-density KL penalty in the REINFORCE loss (0: off)")
    skip_target: float = _f(0.4, "skip density (probability of each skip_<i>_<j>) the penalty pulls towards")
    baseline_decay: float = _f(0.8, "decay of the exponential moving-average reward baseline")
    grad_clip: float = _f(5.0, "global-norm clipping of the controller gradient")
    temperature: float = _f(1.0, "softmax temperature of the controller's logits while sampling")
    tanh_constant: float | None = _f(2.5, "logits = C * tanh(logits / temperature) (ENAS); 0 turns it off")
    novel_only: bool = _f(True, "propose only architectures not yet evaluated while any remain")
    model_steps: int = _f(
        5, "Dyna steps on a learned reward model's predictions per real batch (0: no model)"
    )
    model_batch: int = _f(32, "architectures sampled in each imagined (reward-model) step")
    model_pool: int = _f(512, "controller samples the real batch is chosen from (novel_only/model)")
    model_bonus: float = _f(1.0, "optimism, predicted reward + bonus * ensemble spread")
    model_trees: int = _f(8, "extra-trees in the reward model's ensemble")
    explore_mix: float = _f(0.5, "fraction of the pool replaced by mutants and uniform draws")
    risk_seeking: float = _f(
        0.0, "learn only from rewards above the (1 - eps) quantile (Petersen 2021); 0: off"
    )
    risk_memory: int = _f(32, "recent rewards the risk-seeking quantile is taken over")
    model_select: str = _f(
        "mixed",
        "how the real batch is picked from the pool: ucb (mean + bonus * spread), thompson, "
        "mixed (the best predicted mean, then thompson)",
    )
    mutant_share: float = _f(0.75, "share of the explore_mix rows that are mutants (the rest uniform)")
    model_linear: int = _f(
        0, "bootstrap ridge (additive) members in the reward model beside its trees (0: none)"
    )
    model_min_fit: int = _f(8, "evaluations before the reward model is fitted and trusted (>= 2)")
    mutant_parents: int = _f(5, "best evaluated rows the explore_mix mutants are drawn from")
    model_ordinal: bool = _f(False, "the reward model also sees each numeric decision's rank")
    pqt_k: int = _f(0, "priority-queue training, imitate the k best found so far each batch (0: off)")
    lstm_units: int = _f(35, "units in each LSTM layer of the controller")
    lstm_layers: int = _f(2, "LSTM layers of the controller")
    init_range: float = _f(0.08, "controller weights start uniform in [-r, r]")

    def __post_init__(self) -> None:
        check_all(self, RULES)
        check_bounds(self)

    @property
    def policy_lr(self) -> float:
        """The controller's Adam step: ``controller_lr``, or the default of its ``controller``."""
        return self.controller_lr if self.controller_lr is not None else CONTROLLER_LR[self.controller]

    @property
    def uses_history(self) -> bool:
        """Whether a history setting is on (novel proposals, reward model, risk-seeking, mixing)."""
        return (
            self.novel_only
            or self.model_steps > 0
            or self.explore_mix > 0
            or self.risk_seeking > 0
            or self.pqt_k > 0
        )


def _count(low: int, rule: str) -> Check:
    return must(lambda v: type(v) is int and v >= low, rule)


RULES: dict[str, Check] = {
    "controller": one_of(CONTROLLERS),
    "controller_lr": optional(positive),
    "importance_clip": must(finite_number, ">= 0 (0 turns the weights off)"),
    "entropy_weight": must(lambda v: v >= 0, ">= 0"),
    "skip_weight": must(lambda v: v >= 0, ">= 0"),
    "skip_target": must(lambda v: 0 < v < 1, "in (0, 1)"),
    "baseline_decay": must(lambda v: 0 <= v < 1, "in [0, 1)"),
    "grad_clip": positive,
    "temperature": positive,
    "tanh_constant": optional(
        must(lambda v: isinstance(v, int | float) and 0 <= v < math.inf, ">= 0 (0 turns it off)")
    ),
    "novel_only": flag,
    "model_steps": _count(0, "a whole number >= 0 (0: no model)"),
    "model_batch": whole,
    "model_pool": whole,
    "model_bonus": must(finite_number, ">= 0"),
    "model_trees": whole,
    "explore_mix": must(lambda v: finite_number(v) and v <= 1, "in [0, 1]"),
    "risk_seeking": must(lambda v: finite_number(v) and v < 1, "in [0, 1) (0: off)"),
    "risk_memory": whole,
    "model_select": must(lambda v: v in MODEL_SELECTS, "ucb, thompson or mixed"),
    "mutant_share": must(lambda v: finite_number(v) and v <= 1, "in [0, 1]"),
    "model_linear": _count(0, "a whole number >= 0 (0: none)"),
    "model_min_fit": _count(2, "a whole number >= 2"),
    "mutant_parents": whole,
    "model_ordinal": flag,
    "pqt_k": _count(0, "a whole number >= 0 (0: off)"),
    "lstm_units": whole,
    "lstm_layers": whole,
    "init_range": positive,
}
"""The rule of every field, in field order (the first bad field is the one reported)."""
