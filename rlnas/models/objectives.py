"""Objectives: the reward a trained child earns, computed from the metrics it reports.

An objective is written as one string (``[search] objective`` or ``--objective``):

==========================================  ========================================================
``val_accuracy``                            the validation accuracy (the default)
``<metric>`` or ``<metric>:min|max``        any numeric metric of :class:`rlnas.models.child.ChildResult`;
                                            ``max`` rewards the value, ``min`` its negative
                                            (``val_loss:min`` -> reward = -val_loss). Without a
                                            suffix, losses, seconds and params are minimised and
                                            accuracies maximised.
``accuracy_cubed``                          val_accuracy ** 3 (Zoph & Le: it spreads the rewards of
                                            good children apart, where the search has to choose)
``mnas:target=<params>[,w=<w>]``            MnasNet's soft size constraint:
                                            val_accuracy * (params / target) ** w, w in [-1, 0],
                                            default -0.07: a child twice the target size loses ~5 %
==========================================  ========================================================

Failed children never reach an objective: the environment gives them ``failed_reward``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from rlnas.errors import ConfigError, did_you_mean
from rlnas.models.child import ChildResult

METRICS: tuple[str, ...] = tuple(
    f.name for f in fields(ChildResult) if f.type in ("float", "int", float, int)
)
"""Numeric metrics a child reports, each usable as ``<metric>[:min|max]``."""
MNAS_W = -0.07
SYNTAX = "val_accuracy, <metric>[:min|:max], accuracy_cubed, mnas:target=<params>[,w=<w>]"


def default_direction(metric: str) -> str:
    """Accuracies are maximised; losses, times, sizes and epochs minimised."""
    return "max" if "accuracy" in metric else "min"


@dataclass(frozen=True)
class Objective:
    """A parsed objective; ``str()`` gives back its canonical text.

    Args:
        kind: ``metric``, ``accuracy_cubed`` or ``mnas``.
        metric: the metric of ``kind="metric"``.
        direction: ``max`` (reward = metric) or ``min`` (reward = -metric).
        target: the parameter count of ``mnas``.
        w: the exponent of ``mnas`` (negative: larger children lose reward).
    """

    kind: str = "metric"
    metric: str = "val_accuracy"
    direction: str = "max"
    target: int | None = None
    w: float = MNAS_W

    def reward(self, metrics: ChildResult | Mapping[str, Any]) -> float:
        """The reward of a successful child from its metrics (a ChildResult or its ``to_dict()``).

        Raises:
            ConfigError: the evaluator did not report what this objective needs (e.g. mnas without
                a positive ``params``): a mismatch of setup, not a bad child.
        """
        m = metrics.to_dict() if isinstance(metrics, ChildResult) else metrics
        if self.kind == "accuracy_cubed":
            return float(_get(m, "val_accuracy", self)) ** 3
        if self.kind == "mnas":
            params = float(_get(m, "params", self))
            if not params > 0:
                raise ConfigError(f"objective {self}: the child reported params={params:g}; it needs > 0")
            return float(_get(m, "val_accuracy", self)) * (params / self.target) ** self.w  # type: ignore[operator]
        value = float(_get(m, self.metric, self))
        return value if self.direction == "max" else -value

    def __str__(self) -> str:
        if self.kind == "mnas":
            return f"mnas:target={self.target},w={self.w:g}"
        if self.kind == "accuracy_cubed":
            return "accuracy_cubed"
        same = self.direction == default_direction(self.metric)
        return self.metric if same else f"{self.metric}:{self.direction}"


def _get(m: Mapping[str, Any], name: str, objective: Objective) -> Any:
    if name not in m:
        raise ConfigError(f"objective {objective}: the child's metrics have no {name!r}")
    return m[name]


def parse_objective(text: str) -> Objective:
    """Read an objective string (see the module docstring).

    Raises:
        ConfigError: unknown name or metric, bad direction, or bad mnas settings; the message
            echoes the bad part and lists what is allowed.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"objective must be a non-empty string; allowed: {SYNTAX}")
    name, sep, rest = text.strip().partition(":")
    if name == "mnas":
        return _parse_mnas(text, rest)
    if name == "accuracy_cubed":
        if sep:
            raise ConfigError(f"objective {text!r}: accuracy_cubed takes no options; write accuracy_cubed")
        return Objective(kind="accuracy_cubed")
    if name not in METRICS and not sep:
        raise ConfigError(
            f"unknown objective {text!r}; allowed: {SYNTAX}, with <metric> one of {', '.join(METRICS)}"
            + did_you_mean(name, (*METRICS, "accuracy_cubed", "mnas"))
        )
    direction = rest if sep else default_direction(name)
    if direction not in ("min", "max"):
        raise ConfigError(f"objective {text!r}: direction {direction!r} must be min or max")
    return Objective(metric=name, direction=direction)


def _parse_mnas(text: str, rest: str) -> Objective:
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in ("target", "w"):
            raise ConfigError(
                f"objective {text!r}: bad option {part!r}; write mnas:target=<params>[,w=<w>]"
                + did_you_mean(key.strip(), ("target", "w"))
            )
        options[key.strip()] = value.strip()
    if "target" not in options:
        raise ConfigError(f"objective {text!r} needs a target parameter count: mnas:target=100000")
    try:
        target, w = float(options["target"]), float(options.get("w", MNAS_W))
    except ValueError:
        raise ConfigError(f"objective {text!r}: target and w must be numbers") from None
    if not (math.isfinite(target) and target >= 1 and target == int(target)):
        raise ConfigError(f"objective {text!r}: target must be a whole number of parameters >= 1")
    if not -1 <= w <= 0:
        raise ConfigError(f"objective {text!r}: w must be in [-1, 0] (negative: a size penalty), got {w:g}")
    return Objective(kind="mnas", metric="val_accuracy", target=int(target), w=w)
