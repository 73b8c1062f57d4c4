"""The TOML front end of the search space: a ``[space]`` table (or a stored ``to_dict()``) -> SearchSpace.

A table lists its decisions::

    [space]
    model = "mlp"
    [[space.decisions]]
    name = "num_layers"
    kind = "int"
    values = [1, 2, 3]
    [[space.decisions]]
    name = "units_1"
    kind = "int"
    range = [32, 512, 32]          # first, last (inclusive), step
    when = { num_layers = [2, 3] }  # exists only for these values of an earlier decision
    [[space.decisions]]
    name = "lr"
    kind = "float"
    log_range = [1e-4, 1e-2, 7]    # low, high, number of grid points

or names a model alone (``model = "conv"``), whose standard space the caller's ``standard_space``
supplies: the model registry (:mod:`rlnas.models`) sits above the space layer, so it is passed in,
not imported. A ``"module:function"`` model (a keras-tuner model function) declares its own space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rlnas.errors import ConfigError, did_you_mean
from rlnas.space.decisions import Decision, SearchSpace, log_grid

StandardSpace = Callable[[str, int | None], SearchSpace | None]
"""``(model, lr_grid) -> its standard space``, or None when ``model`` has none."""

_SPACE_KEYS = ("model", "decisions", "lr_grid")
_DECISION_KEYS = ("name", "kind", "values", "range", "log_range", "when")


def space_from_dict(data: Mapping[str, Any], *, standard_space: StandardSpace | None = None) -> SearchSpace:
    """Build a SearchSpace from the ``[space]`` table (see the module docstring).

    Args:
        data: the table, or a ``SearchSpace.to_dict()``.
        standard_space: where a table without decisions finds its model's standard space
            (:func:`rlnas.models.standard_space`); without it such a table is an error.

    Raises:
        ConfigError: an unknown key, a malformed decision, or a model without a standard space.
    """
    unknown = set(data) - set(_SPACE_KEYS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown key {key!r} in [space]" + did_you_mean(key, _SPACE_KEYS))
    model = data.get("model", "mlp")
    lr_grid = data.get("lr_grid")
    if lr_grid is not None and (isinstance(lr_grid, bool) or not isinstance(lr_grid, int)):
        raise ConfigError(f"[space] lr_grid must be a whole number of grid points, got {lr_grid!r}")
    if "decisions" not in data:
        if isinstance(model, str) and ":" in model:  # a keras-tuner model function declares its space
            from rlnas.space.discovery import space_from_function

            return space_from_function(model)
        space = standard_space(model, lr_grid) if standard_space is not None else None
        if space is None:
            raise ConfigError(f"[space] model {model!r} needs its decisions listed in [[space.decisions]]")
        return space
    raw = data["decisions"]
    if not isinstance(raw, list):
        raise ConfigError("[space] decisions must be an array of tables ([[space.decisions]])")
    return SearchSpace([_decision(d, i) for i, d in enumerate(raw)], model=model)


def _decision(d: Any, i: int) -> Decision:
    if not isinstance(d, dict):
        raise ConfigError(f"decision #{i + 1} must be a table, got {d!r}")
    for key in d:
        if key not in _DECISION_KEYS:
            raise ConfigError(f"decision #{i + 1}: unknown key {key!r}" + did_you_mean(key, _DECISION_KEYS))
    name = d.get("name")
    if not name:
        raise ConfigError(f"decision #{i + 1} has no name")
    given = [k for k in ("values", "range", "log_range") if k in d]
    if len(given) != 1:
        raise ConfigError(f"decision {name!r}: give exactly one of values, range, log_range")
    kind = d.get("kind") or _guess_kind(d)
    values = d.get("values")
    if "range" in d:
        values = _int_range(name, d["range"])
    elif "log_range" in d:
        values = _log_range(name, d["log_range"])
    when = d.get("when", {})
    if not isinstance(when, dict):
        raise ConfigError(f"decision {name!r}: when must be a table like {{ num_layers = [2, 3] }}")
    return Decision(name, values, kind, when)


def _int_range(name: str, r: Any) -> list[int]:
    if not (isinstance(r, list) and len(r) in (2, 3) and all(_is_int(x) for x in r)):
        raise ConfigError(f"decision {name!r}: range is [first, last] or [first, last, step], got {r!r}")
    step = r[2] if len(r) == 3 else 1
    if step <= 0 or r[1] < r[0]:
        raise ConfigError(f"decision {name!r}: range {r!r} is empty; need first <= last, step > 0")
    return list(range(r[0], r[1] + 1, step))


def _log_range(name: str, r: Any) -> list[float]:
    if not (isinstance(r, list) and len(r) == 3 and all(_is_number(x) for x in r) and _is_int(r[2])):
        raise ConfigError(f"decision {name!r}: log_range is [low, high, count], got {r!r}")
    return list(log_grid(float(r[0]), float(r[1]), int(r[2])))


def _guess_kind(d: Mapping[str, Any]) -> str:
    if "range" in d:
        return "int"
    if "log_range" in d:
        return "float"
    vals = d["values"] if isinstance(d["values"], list) else []
    for kind, typ in (("bool", bool), ("int", int), ("float", float)):
        if vals and all(type(v) is typ for v in vals):
            return kind
    if vals and all(_is_number(v) for v in vals):  # [0, 0.5]: TOML reads 0 as an int
        return "float"
    return "choice"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
