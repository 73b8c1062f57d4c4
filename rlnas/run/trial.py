"""One finished trial as a frozen record, and the one ranking of trials every display uses.

A :class:`Trial` is what the search journals for each child: written by the store as one line of
``trials.jsonl`` (:meth:`Trial.to_dict` gives exactly the dict written there, key for key and in the
same order) and read back from it (:meth:`Trial.from_dict`, which also reads journals of older runs).
It is built once, when the child's result is in, and never changed afterwards: what depends on other
trials (the mean reward of re-evaluated repeats) is computed before it is built.

Everything else reads a trial by its attributes (``trial.reward``, ``trial.metrics["val_accuracy"]``);
the journal's dict exists only where the store writes and reads the line.

:func:`rank` is the only ranking: ``rlnas show``, replay's top-k, the tuner, TensorBoard's leaderboard
and charts, the report and the end-of-search summary all call it, and show the objective's own value
(:func:`objective_value`) under its own name (:func:`objective_name`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

from rlnas.models.child import ChildResult, Status
from rlnas.models.objectives import Objective, parse_objective

TIMINGS = ("fit_seconds", "eval_seconds", "child_seconds")
"""The child's own seconds; a repeat answered from the cache costs none of them."""
_CHILD_ORDER = tuple(f.name for f in fields(ChildResult) if f.name != "metrics")
"""Where each child field sits in a journal line: in ChildResult's order, as the env reports them."""
_HEAD = ("index", "update", "tokens", "key", "architecture", "reward", "log_prob")
_OWN = frozenset(_HEAD) | {"status", "error", "seed", "elapsed", *TIMINGS}
_TAIL = ("cached", "cached_from", "evaluation_reward")


@dataclass(frozen=True)
class Trial:
    """One finished child of a search.

    Attributes:
        index: its place in the run (batch ``update``, position ``index % archs_per_update``).
        tokens: the proposed token sequence (inactive decisions included).
        key: the canonical architecture key (equal keys: the same network).
        reward: what the strategy was told (the objective's value, ``failed_reward`` for a failure,
            the mean over evaluations with ``reevaluate_repeats``).
        log_prob: the sampling log-probability under the policy that proposed it (REINFORCE), or None.
        metrics: the child's other reported values (val_accuracy, val_loss, train_loss, params,
            epochs_run, ...), in the order the child reported them, then every other metric its
            model logged (``val_mean_absolute_error``, ...), flat.
        fit_seconds, eval_seconds, child_seconds: the child's own cost (0 for a cached repeat).
        elapsed: seconds since the search started, when it finished.
        cached_from: the index of the trial whose result a repeat reused (``cached`` is then True).
        evaluation_reward: with ``reevaluate_repeats``, this evaluation's own reward.
    """

    index: int
    update: int
    tokens: tuple[int, ...]
    key: str
    architecture: Mapping[str, Any]
    reward: float
    status: Status
    metrics: Mapping[str, Any] = field(default_factory=dict)
    log_prob: float | None = None
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    child_seconds: float = 0.0
    seed: int | None = None
    error: str = ""
    elapsed: float = 0.0
    cached: bool = False
    cached_from: int | None = None
    evaluation_reward: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def reported(self) -> dict[str, Any]:
        """What the child reported: its metrics and its own seconds (every name an objective reads)."""
        return {**self.metrics, **{name: getattr(self, name) for name in TIMINGS}}

    # -- the journal line --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The journal's record of this trial (a fresh dict: changing it does not change the trial)."""
        return {k: _copy(v) for k, v in self._record.items()}

    @cached_property
    def _record(self) -> dict[str, Any]:
        child = {"status": self.status.value, **self.metrics, "error": self.error}
        child |= {name: getattr(self, name) for name in TIMINGS}
        order = {name: i for i, name in enumerate(_CHILD_ORDER)}
        child = dict(sorted(child.items(), key=lambda kv: order.get(kv[0], len(order))))
        record = {
            "index": self.index,
            "update": self.update,
            "tokens": list(self.tokens),
            "key": self.key,
            "architecture": dict(self.architecture),
            "reward": self.reward,
            "log_prob": self.log_prob,
            **child,
            "seed": self.seed,
            "elapsed": self.elapsed,
        }
        if self.cached:
            record |= {"cached": True, "cached_from": self.cached_from}
        if self.evaluation_reward is not None:
            record["evaluation_reward"] = self.evaluation_reward
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Trial:
        """A trial from its journal record (also one of an older run, which may lack newer fields)."""
        metrics = {k: v for k, v in record.items() if k not in _OWN and k not in _TAIL}
        return cls(
            index=int(record["index"]),
            update=int(record.get("update", 0)),
            tokens=tuple(int(t) for t in record["tokens"]),
            key=str(record["key"]),
            architecture=dict(record["architecture"]),
            reward=record.get("reward", math.nan),
            status=Status(record.get("status", Status.OK)),
            metrics=metrics,
            log_prob=record.get("log_prob"),
            **{name: record.get(name, 0.0) for name in TIMINGS},
            seed=record.get("seed"),
            error=record.get("error", "") or "",
            elapsed=float(record.get("elapsed") or 0.0),
            cached=bool(record.get("cached", False)),
            cached_from=record.get("cached_from"),
            evaluation_reward=record.get("evaluation_reward"),
        )


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


def build_trial(
    *,
    index: int,
    update: int,
    tokens: Sequence[int],
    key: str,
    architecture: Mapping[str, Any],
    reward: float,
    log_prob: float | None,
    child: ChildResult,
    seed: int | None,
    elapsed: float,
    evaluation_reward: float | None = None,
) -> Trial:
    """The trial of a child that was trained, from the result it reported."""
    metrics = {k: v for k, v in child.reported().items() if k not in _OWN}
    return Trial(
        index=index,
        update=update,
        tokens=tuple(int(t) for t in tokens),
        key=key,
        architecture=dict(architecture),
        reward=reward,
        status=child.status,
        metrics=metrics,
        log_prob=log_prob,
        **{name: getattr(child, name) for name in TIMINGS},
        seed=seed,
        error=child.error,
        elapsed=elapsed,
        evaluation_reward=evaluation_reward,
    )


def repeat_of(
    first: Trial, *, index: int, update: int, tokens: Sequence[int], log_prob: float | None, elapsed: float
) -> Trial:
    """A repeated architecture answered from the cache: ``first``'s result, none of its training time."""
    return replace(
        first,
        index=index,
        update=update,
        tokens=tuple(int(t) for t in tokens),
        log_prob=log_prob,
        fit_seconds=0.0,
        eval_seconds=0.0,
        child_seconds=0.0,
        elapsed=elapsed,
        cached=True,
        cached_from=first.index,
    )


# -- ranking ---------------------------------------------------------------------------------------
def _objective(objective: Objective | str | None) -> Objective:
    if objective is None:
        return Objective()
    return objective if isinstance(objective, Objective) else parse_objective(objective)


def objective_name(objective: Objective | str | None) -> str:
    """The name displays show the best value under: the metric itself, or the composite objective."""
    o = _objective(objective)
    return o.metric if o.kind == "metric" else str(o)


def objective_value(trial: Trial, objective: Objective | str | None) -> float:
    """The objective's own value of a successful trial: the metric for ``val_loss:min`` (not the
    negated reward), the reward for composite objectives (mnas, accuracy_cubed)."""
    o, reported = _objective(objective), trial.reported()
    if o.kind == "metric" and o.metric in reported:
        return float(reported[o.metric])
    return float(_score(trial, o))


def _score(t: Trial, objective: Objective) -> float:
    """What the search maximised: the reward; a record without one (an old run) is scored anew."""
    if t.reward is not None and not (isinstance(t.reward, float) and math.isnan(t.reward)):
        return float(t.reward)
    return objective.reward(t.reported())


def rank(
    trials: Iterable[Trial],
    objective: Objective | str | None = None,
    k: int | None = None,
) -> list[Trial]:
    """The ``k`` best successful trials (all with ``k=None``), best first, one per architecture (its
    best evaluation; the earliest on ties), ranked by what the search maximised: the reward.

    Args:
        objective: the run's objective; scores records that carry no reward (journals of old runs).
    """
    o = _objective(objective)
    best: dict[str, tuple[float, Trial]] = {}
    for t in sorted(trials, key=lambda t: t.index):
        if not t.ok:
            continue
        score = _score(t, o)
        if t.key not in best or score > best[t.key][0]:
            best[t.key] = (score, t)
    ranked = sorted(best.values(), key=lambda st: (-st[0], st[1].index))
    return [t for _, t in ranked][:k]


def best(trials: Iterable[Trial], objective: Objective | str | None = None) -> Trial | None:
    """The best successful trial, or None."""
    top = rank(trials, objective, 1)
    return top[0] if top else None


# -- replay rows ------------------------------------------------------------------------------------
def scores(row: Mapping[str, Any]) -> tuple[str, float, float]:
    """(metric, search-time validation value, test value) of a ``replay.json`` row, as every view
    shows them (``mae``, 41.2, 43.0); a row of an older rlnas, which scored accuracy only, too."""
    metric = row.get("metric", "accuracy")
    if "val_score" not in row:
        return metric, number(row.get("val_accuracy")), number(row.get("test_accuracy"))
    return metric, number(row.get("val_score")), number(row.get("test_score"))


def short(metric: str) -> str:
    """A metric's name in a table header: ``acc`` for accuracy (as every view has always shown it),
    any other as it is (``mae``)."""
    return "acc" if metric == "accuracy" else metric


def number(value: Any) -> float:
    """A journal's number; null (a NaN when it was written: a regression child's accuracy) is NaN."""
    return math.nan if value is None else float(value)
