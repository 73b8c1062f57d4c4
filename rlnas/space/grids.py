"""Other libraries' parameters as rlnas decisions: a range becomes a finite list of values.

rlnas's controller chooses among a finite list of values per decision. An Optuna or Ray Tune range
with a step has one already (when it is short); a continuous float range has none, so it is searched
on ``points`` values evenly spaced (in log scale for a log range). That changes the search (the best
value may lie between two points), so the integrations warn, once per parameter, whenever
:func:`numeric_values` reports that it discretized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlnas.space.decisions import Decision, Value

DEFAULT_POINTS = 16
"""Values of a continuous range's grid, and the most values a stepped range keeps."""


@dataclass(frozen=True)
class Grid:
    """The values a range is searched on, and whether that is fewer than the range allows."""

    values: tuple[Value, ...]
    discretized: bool


def numeric_values(
    low: float, high: float, *, step: float | None, log: bool, integer: bool, points: int = DEFAULT_POINTS
) -> Grid:
    """The values of ``[low, high]`` (both included) with ``step`` (None: continuous), at most
    ``points`` of them unless the range has no more than that.

    A stepped range longer than ``points`` keeps ``points`` of its own values, evenly spaced (in log
    scale when ``log``), so every value is one the library accepts.
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points!r}")
    if high < low or (log and low <= 0):
        raise ValueError(f"cannot search the range [{low}, {high}]{' (log)' if log else ''}")
    if high == low:
        return Grid((int(low) if integer else float(low),), False)
    if integer or step is not None:
        step = step if step is not None else 1
        count = math.floor((high - low) / step + 1e-9) + 1
        allowed = [low + i * step for i in range(count)] if count <= points else None
        if allowed is not None:
            return Grid(tuple(_kind(v, integer, low, high) for v in allowed), False)
        picks = _spread(low, high, points, log)
        values = [low + round((v - low) / step) * step for v in picks]
        return Grid(_unique(_kind(v, integer, low, high) for v in values), True)
    return Grid(_unique(_kind(v, False, low, high) for v in _spread(low, high, points, log)), True)


def _spread(low: float, high: float, n: int, log: bool) -> list[float]:
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (n - 1)) for i in range(n)]
    return [low + (high - low) * i / (n - 1) for i in range(n)]


def _kind(value: float, integer: bool, low: float, high: float) -> Value:
    value = min(max(value, low), high)  # float error never leaves the range
    return round(value) if integer else min(max(float(f"{value:.12g}"), low), high)  # 0.9, not 0.8999...


def _unique(values) -> tuple[Value, ...]:
    return tuple(dict.fromkeys(values))


def choice_decision(name: str, choices: tuple) -> Decision:
    """A categorical parameter as a decision whose token ``i`` is ``choices[i]``: numbers keep their
    kind (so the reward model orders them); anything else is a choice among labels."""
    numbers = all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)
    if all(isinstance(c, bool) for c in choices) and len(set(choices)) == len(choices):
        return Decision(name, tuple(choices), kind="bool")
    if numbers and len(set(choices)) == len(choices) and all(math.isfinite(c) for c in choices):
        kind = "int" if all(isinstance(c, int) for c in choices) else "float"
        return Decision(name, tuple(choices), kind=kind)
    labels = tuple(str(c) for c in choices)
    if len(set(labels)) != len(labels):
        labels = tuple(f"{i}:{c!r}" for i, c in enumerate(choices))
    return Decision(name, labels, kind="choice")
