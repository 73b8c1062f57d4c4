"""Objectives: the reward a trained child earns, computed from the metrics it reports.

An objective is written as one string (``[search] objective`` or ``--objective``):

==========================================  ========================================================
``val_accuracy``                            the validation accuracy (the default)
``<metric>`` or ``<metric>:min|max``        any metric a child logs: the fields of
                                            :class:`rlnas.models.child.ChildResult` and every value
                                            its model logged (``val_<name>`` on the validation
                                            split, ``<name>`` on training), e.g.
                                            ``val_mean_absolute_error``, ``val_auc``, a custom
                                            ``keras.metrics.Metric``'s ``val_<its name>``.
                                            ``max`` rewards the value, ``min`` its negative
                                            (``val_loss:min`` -> reward = -val_loss). Without a
                                            suffix the direction is inferred as keras-tuner infers
                                            it (:func:`infer_direction`); a name it cannot place
                                            must say ``:min`` or ``:max``.
``accuracy_cubed``                          val_accuracy ** 3 (Zoph & Le: it spreads the rewards of
                                            good children apart, where the search has to choose)
``mnas:target=<params>[,w=<w>]``            MnasNet's soft size constraint:
                                            val_accuracy * (params / target) ** w, w in [-1, 0],
                                            default -0.07: a child twice the target size loses ~5 %
==========================================  ========================================================

Failed children never reach an objective: the environment gives them ``failed_reward``.

REINFORCE maximises its reward, so a minimised metric (a loss, an error) is rewarded as its negative:
a child with validation MAE 3.1 earns -3.1, one with 2.4 earns -2.4, and the policy gradient moves
toward the second exactly as it would toward a higher accuracy. The baseline (a moving mean of the
rewards) is subtracted before the gradient, so the sign and scale of the raw metric do not matter
for the direction of the update (docs/how-it-works.md).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from rlnas.errors import ConfigError, did_you_mean
from rlnas.models.child import ChildResult

METRICS: tuple[str, ...] = tuple(
    f.name for f in fields(ChildResult) if f.type in ("float", "int", float, int)
)
"""Numeric metrics every child reports, each usable as ``<metric>[:min|max]`` (as is any metric a
child's model logs besides them)."""
MNAS_W = -0.07
SYNTAX = "val_accuracy, <metric>[:min|:max], accuracy_cubed, mnas:target=<params>[,w=<w>]"
ALIASES = {"val_acc": "val_accuracy", "loss": "train_loss"}
"""keras-tuner's names for what every child reports under another name (Keras logs the training
loss as ``loss``; rlnas reports it as ``train_loss``)."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_MAXIMISED = ("accuracy", "acc", "auc", "precision", "recall", "f1", "fbeta", "iou", "r2", "true_positives")
_MAXIMISED += ("true_negatives", "specificity", "sensitivity", "cosine_similarity")
"""Metric names (after ``val_``/``weighted_``) that are better higher: Keras's accuracies, AUC,
precision, recall, F1/F-beta, IoU, R^2 and counts of correct answers."""
_MINIMISED = ("loss", "error", "crossentropy", "ce", "mae", "mse", "mape", "msle", "rmse", "hinge")
_MINIMISED += ("kld", "kl_divergence", "poisson", "log_cosh", "logcosh", "huber", "false_positives")
_MINIMISED += ("false_negatives", "seconds", "params", "epochs_run")
"""Metric names that are better lower: losses, errors and divergences, wrong answers, and rlnas's own
costs (seconds, parameters, epochs)."""


def infer_direction(metric: str) -> str | None:
    """``"max"`` or ``"min"`` for a metric name, as keras-tuner infers it, or None when the name
    says nothing (a custom metric called ``val_score``): then the user has to say.

    Like keras-tuner, ``val_``/``test_`` and ``weighted_`` prefixes are ignored; unlike it, no
    Keras import is needed (the CLI checks the objective before TensorFlow loads), so the name is
    matched by its words: ``val_mean_absolute_error`` ends in ``error`` (min), ``val_auc_1`` holds
    ``auc`` (max), ``val_sparse_categorical_accuracy`` ends in ``accuracy`` (max).
    """
    name = re.sub(r"^(val_|test_)", "", metric.lower())
    name = re.sub(r"^weighted_", "", name)
    name = re.sub(r"_\d+$", "", name)  # Keras numbers a second metric of the same kind: auc_1
    words = re.split(r"[_.\-]", name)
    for vocabulary, direction in ((_MINIMISED, "min"), (_MAXIMISED, "max")):
        if name in vocabulary or words[-1] in vocabulary:
            return direction
    for vocabulary, direction in ((_MAXIMISED, "max"), (_MINIMISED, "min")):
        if any(w in vocabulary for w in words):
            return direction
    return None


def default_direction(metric: str) -> str:
    """The inferred direction of ``metric``.

    Raises:
        ConfigError: the name does not say whether it is better high or low; the message asks for
            ``name:min|max`` (``Objective(name, direction)`` in Python).
    """
    direction = infer_direction(metric)
    if direction is None:
        raise ConfigError(
            f"objective {metric!r}: cannot tell whether it is minimised or maximised; "
            f"write {metric}:min or {metric}:max (in Python: Objective({metric!r}, 'min' or 'max'))"
        )
    return direction


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
        m = metrics.reported() if isinstance(metrics, ChildResult) else metrics
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
        logged = ", ".join(
            sorted(
                k for k, v in m.items() if isinstance(v, int | float) and math.isfinite(v) and k != "reward"
            )
        )
        raise ConfigError(
            f"objective {objective}: the child did not log {name!r}; it logged {logged}"
            + did_you_mean(name, tuple(m))
        )
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
    name = ALIASES.get(name, name)
    if name == "mnas":
        return _parse_mnas(text, rest)
    if name == "accuracy_cubed":
        if sep:
            raise ConfigError(f"objective {text!r}: accuracy_cubed takes no options; write accuracy_cubed")
        return Objective(kind="accuracy_cubed")
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"objective {text!r} is not a metric name; allowed: {SYNTAX}, with <metric> one of "
            f"{', '.join(METRICS)} or any metric the children log (val_<name>)"
            + did_you_mean(name, (*METRICS, "accuracy_cubed", "mnas"))
        )
    if not sep and name not in METRICS and infer_direction(name) is None:
        near = difflib.get_close_matches(name, (*METRICS, "accuracy_cubed", "mnas"), n=1, cutoff=0.85)
        if near:  # a misspelt known name, rather than a metric of the user's own
            raise ConfigError(
                f"unknown objective {text!r} (did you mean {near[0]!r}?); "
                f"or, for a metric of your own, write {name}:min|max"
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
