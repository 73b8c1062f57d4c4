"""keras-tuner model functions in rlnas: ``def build_model(hp): ...`` becomes a :class:`SearchSpace`.

A keras-tuner user writes the search space *as code*: the model function asks ``hp.Int(...)``,
``hp.Choice(...)`` ... while it builds the model. :class:`HyperParameters` answers those calls in two
ways with one mechanism: with no ``values`` it *records* (every call returns its default and the
definition is kept), with ``values`` it *replays* an architecture (each call returns the chosen value).

Code hides structure: ``for i in range(hp.Int("num_layers", 1, 3)): hp.Int(f"units_{i}", ...)``
reveals ``units_1`` only when ``num_layers`` is 2 or more: :mod:`rlnas.space.discovery` re-runs the
function until its structure shows. Continuous ranges become grids, since the controller picks among
discrete tokens.

This is the space layer's face of a model function; training what it builds (its labels, its own
metrics) is :mod:`rlnas.models.function_model`, next to :mod:`rlnas.models.child`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlnas.errors import ConfigError, did_you_mean
from rlnas.space.decisions import Value, log_grid

SAMPLINGS = ("linear", "log")
MAX_RUNS = 64
"""Runs of the model function :func:`space_from_function` allows itself (each builds a model)."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter as first defined: its grid, default and explicit (scope) condition."""

    name: str
    kind: str
    values: tuple[Value, ...]
    default: Value
    when: dict[str, tuple[Value, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """keras-tuner's ``hyperparameters=``, ``tune_new_entries=`` and ``allow_new_entries=``: a space
    the user declared before the code runs, which wins over what the code asks.

    ``params``: the declared decisions (searched even if the code never asks them, as keras-tuner's
    oracle does); ``fixed``: ``hp.Fixed`` constants, returned whatever the code's definition says;
    ``tune_new``: whether a name the code asks that is not declared is searched (False: it takes its
    ``default=``); ``allow_new``: False makes such a name an error.
    """

    params: Mapping[str, Param] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    tune_new: bool = True
    allow_new: bool = True

    @classmethod
    def of(cls, hp: Any, *, tune_new: Any = True, allow_new: Any = True) -> Preset:
        """The preset a user's ``HyperParameters`` declares (rlnas's or keras-tuner's).

        Raises:
            TypeError: ``hp`` is not a HyperParameters, or a flag is not a bool.
        """
        for name, flag in (("tune_new_entries", tune_new), ("allow_new_entries", allow_new)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if hp is None:
            return cls(tune_new=tune_new, allow_new=allow_new)
        if isinstance(hp, HyperParameters):
            params = {n: p for n, p in hp._params.items() if n not in hp._fixed}
            return cls(params, dict(hp._fixed), tune_new, allow_new)
        if hasattr(hp, "space") and hasattr(hp, "values"):  # keras_tuner.HyperParameters
            return _from_keras_tuner(hp, tune_new, allow_new)
        raise TypeError(f"hyperparameters must be a HyperParameters, got {type(hp).__name__}")


def _from_keras_tuner(hp: Any, tune_new: bool, allow_new: bool) -> Preset:
    """A keras_tuner.HyperParameters' declarations, replayed into rlnas's (same grids and defaults)."""
    ours = HyperParameters()
    for p in hp.space:
        kind = type(p).__name__
        if kind == "Fixed":
            ours.Fixed(p.name, p.value)
        elif kind == "Boolean":
            ours.Boolean(p.name, default=p.default)
        elif kind == "Choice":
            ours.Choice(p.name, list(p.values), default=p.default)
        elif kind in ("Int", "Float"):
            method = ours.Int if kind == "Int" else ours.Float
            method(p.name, p.min_value, p.max_value, p.step, p.sampling or "linear", p.default)
        else:
            raise TypeError(f"hyperparameters: {kind} {p.name!r} is not supported")
    return Preset.of(ours, tune_new=tune_new, allow_new=allow_new)


class HyperParameters:
    """The ``hp`` object a keras-tuner model function receives.

    Args:
        values: decision name -> value to return (replaying an architecture); a name not given
            returns its default, so ``HyperParameters()`` records the defaults.
        grid: how many points a continuous range without a step is discretized into.
        preset: a space declared before the code runs (:class:`Preset`): its decisions are
            active from the start (so ``hp.get`` finds them), and it decides what a call asks.
    """

    def __init__(
        self, values: Mapping[str, Any] | None = None, *, grid: int = 8, preset: Preset | None = None
    ) -> None:
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ConfigError(f"grid must be a whole number >= 2, got {grid!r}")
        self.grid = grid
        self._given = dict(values or {})
        self._params: dict[str, Param] = {}  # in order of first appearance
        self._fixed: dict[str, Any] = {}  # hp.Fixed constants, by name
        self._scopes: list[tuple[str, tuple[Value, ...]]] = []
        self.values: dict[str, Any] = {}
        """Name -> value of every active hyperparameter asked so far (``hp.Fixed`` ones included)."""
        self.trace: list[str] = []
        """Decision names in the order this run asked them (repeats left out)."""
        self.preset = preset or Preset()
        self._fixed.update(self.preset.fixed)
        self.values.update(self.preset.fixed)
        for name, param in self.preset.params.items():
            if not param.when:
                self._params[name] = param
                self.trace.append(name)
                self.values[name] = self._given.get(name, param.default)

    # -- the keras-tuner API ---------------------------------------------------------------------
    def Int(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> int | None:
        """An integer in [min_value, max_value]: every ``step``, or at most ``grid`` points."""
        _check_range(name, min_value, max_value, step, sampling, integer=True)
        values = _int_grid(min_value, max_value, step, sampling, self.grid)
        return self._ask(
            name, "int", values, min_value if default is None else default, parent_name, parent_values
        )

    def Float(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> float | None:
        """A float in [min_value, max_value]: every ``step``, or ``grid`` points (log-spaced for log)."""
        _check_range(name, min_value, max_value, step, sampling, integer=False)
        values = _float_grid(float(min_value), float(max_value), step, sampling, self.grid)
        default = float(min_value) if default is None else default
        return self._ask(name, "float", values, default, parent_name, parent_values)

    def Choice(
        self,
        name: str,
        values: Sequence[Value],
        ordered: bool | None = None,
        default: Value | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """One of ``values`` (all strings, all ints, all floats or all bools); ``ordered`` is ignored."""
        kind, values = _choice_kind(name, values)
        return self._ask(
            name, kind, values, values[0] if default is None else default, parent_name, parent_values
        )

    def Boolean(
        self, name: str, default: bool = False, parent_name: str | None = None, parent_values: Any = None
    ) -> bool | None:
        """True or False."""
        return self._ask(name, "bool", (False, True), default, parent_name, parent_values)

    def Fixed(self, name: str, value: Any, parent_name: str | None = None, parent_values: Any = None) -> Any:
        """A constant: not a decision, but it shows in :attr:`values` like keras-tuner's."""
        _check_name(name)
        with self._scope(parent_name, parent_values):
            if self._active(self._conditions()):
                value = self.preset.fixed.get(name, value)
                self._fixed[name] = value
                self.values[name] = value
                return value
        return None

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Hyperparameters asked inside exist only while ``parent_name`` is one of ``parent_values``;
        inactive ones return None, like keras-tuner's."""
        with self._scope(parent_name, parent_values):
            yield

    def get(self, name: str) -> Any:
        """The value of an active hyperparameter asked before."""
        if name not in self.values:
            raise ConfigError(
                f"hyperparameter {name!r} is not active or was never asked" + did_you_mean(name, self.values)
            )
        return self.values[name]

    # -- mechanics -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _scope(self, parent_name: str | None, parent_values: Any) -> Iterator[None]:
        if parent_name is None:
            yield
            return
        if parent_name not in self._params:
            raise ConfigError(
                f"conditional scope on unknown parent {parent_name!r}; ask a parent before its scope"
                + did_you_mean(parent_name, self._params)
            )
        vals = tuple(parent_values) if isinstance(parent_values, list | tuple) else (parent_values,)
        self._scopes.append((parent_name, vals))
        try:
            yield
        finally:
            self._scopes.pop()

    def _conditions(self) -> dict[str, tuple[Value, ...]]:
        """The enclosing scopes as one conjunction (nested scopes on one parent intersect)."""
        when: dict[str, tuple[Value, ...]] = {}
        for parent, vals in self._scopes:
            when[parent] = tuple(v for v in when[parent] if v in vals) if parent in when else vals
        return when

    def _active(self, when: Mapping[str, tuple[Value, ...]]) -> bool:
        return all(p in self.values and self.values[p] in vals for p, vals in when.items())

    def _ask(
        self, name: str, kind: str, values: tuple, default: Any, parent_name: str | None, parent_values: Any
    ) -> Any:
        _check_name(name)
        if name in self.preset.fixed:
            return self.preset.fixed[name]
        with self._scope(parent_name, parent_values):
            param = Param(name, kind, values, default, self._conditions())
        if name in self.preset.params:  # the declared definition wins over the code's
            declared = self.preset.params[name]
            param = dataclasses.replace(declared, when=param.when or declared.when)
            kind, values, default = param.kind, param.values, param.default
        elif not self.preset.allow_new:
            raise ConfigError(
                f"hyperparameter {name!r} is not in hyperparameters= and allow_new_entries is False"
            )
        elif not self.preset.tune_new:  # not searched: the code's default, as keras-tuner's
            if self._active(param.when):
                self.values.setdefault(name, default)
                return self.values[name]
            return None
        known = self._params.get(name)
        if known is None:
            self._params[name] = param
        elif (known.kind, known.values) != (kind, values):
            raise ConfigError(
                f"hyperparameter {name!r} is defined twice differently ({known.kind} {list(known.values)} "
                f"then {kind} {list(values)}); give each definition its own name"
            )
        if not self._active(param.when):
            return None
        if name not in self.values:
            self.trace.append(name)
            self.values[name] = self._given.get(name, default)
        return self.values[name]


# -- validation and grids --------------------------------------------------------------------------
def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"hyperparameter name {name!r} must be an identifier (letters, digits, _)")


def _check_range(name: str, low: Any, high: Any, step: Any, sampling: str, *, integer: bool) -> None:
    kind = "Int" if integer else "Float"
    number = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if integer else _is_number
    if not (number(low) and number(high)) or not low <= high:
        raise ConfigError(f"{kind} {name!r}: need numbers min_value <= max_value, got {low!r}, {high!r}")
    if step is not None and not (_is_number(step) and step > 0):
        raise ConfigError(f"{kind} {name!r}: step must be a positive number, got {step!r}")
    if sampling not in SAMPLINGS:
        raise ConfigError(
            f"{kind} {name!r}: unknown sampling {sampling!r}; allowed: linear, log"
            + did_you_mean(str(sampling), SAMPLINGS)
        )
    if sampling == "log" and (low <= 0 or (step is not None and step <= 1)):
        raise ConfigError(f"{kind} {name!r}: log sampling needs min_value > 0 (and a step > 1), got {low!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int_grid(low: int, high: int, step: int | None, sampling: str, grid: int) -> tuple[int, ...]:
    """Every step (multiplied by it for log), else all ints if few, else ``grid`` spread ones."""
    if step is not None and sampling == "log":
        return tuple(_geometric(low, high, step, int))
    if step is not None:
        return tuple(range(low, high + 1, int(step)))
    if high - low + 1 <= grid:
        return tuple(range(low, high + 1))
    spread = np.geomspace(low, high, grid) if sampling == "log" else np.linspace(low, high, grid)
    return tuple(dict.fromkeys(round(float(v)) for v in spread))


def _float_grid(low: float, high: float, step: float | None, sampling: str, grid: int) -> tuple[float, ...]:
    if low == high:
        return (low,)
    if step is not None and sampling == "log":
        return tuple(_geometric(low, high, step, float))
    if step is not None:
        count = math.floor((high - low) / step + 1e-9) + 1
        return tuple(dict.fromkeys(float(f"{low + i * step:.10g}") for i in range(count)))
    if sampling == "log":
        return log_grid(low, high, grid)
    return tuple(dict.fromkeys(float(f"{v:.6g}") for v in np.linspace(low, high, grid)))


def _geometric(low: Any, high: Any, factor: float, cast: type) -> list:
    out, v = [], low
    while v <= high * (1 + 1e-9):
        out.append(cast(float(f"{v:.10g}")))
        v *= factor
    return out


def _choice_kind(name: str, values: Any) -> tuple[str, tuple[Value, ...]]:
    """The Decision kind of a Choice's values: bool, int, float (ints mixed in) or choice (str)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"Choice {name!r}: values must be a non-empty list, got {values!r}")
    for kind, ok in (
        ("bool", lambda v: isinstance(v, bool)),
        ("int", lambda v: isinstance(v, int) and not isinstance(v, bool)),
        ("float", _is_number),
        ("choice", lambda v: isinstance(v, str)),
    ):
        if all(ok(v) for v in values):
            vals = tuple(float(v) for v in values) if kind == "float" else tuple(values)
            if len(set(vals)) != len(vals):
                raise ConfigError(f"Choice {name!r}: values {list(values)} repeat a value")
            return kind, vals
    raise ConfigError(f"Choice {name!r}: values {list(values)} mix types; use all str, int, float or bool")


# -- keras-tuner's other classes, so that keras-tuner need not be installed --------------------------
class HyperModel:
    """keras-tuner's ``HyperModel``: subclass it with ``build(self, hp)`` returning a compiled Keras
    model, and optionally ``fit(self, hp, model, *args, **kwargs)`` to train it your way (tune fit
    arguments, preprocess the data with ``hp``, return your own score). ``keras_tuner.HyperModel``
    subclasses are accepted the same way."""

    def __init__(self, name: str | None = None, tunable: bool = True) -> None:
        self.name, self.tunable = name, tunable

    def build(self, hp: HyperParameters) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.build(hp) must build and return a model")

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        """``model.fit(*args, **kwargs)``: override it to train your way. Return the History, a
        float (the objective's value) or a dict of metrics that holds the objective."""
        return model.fit(*args, **kwargs)


@dataclass(frozen=True)
class Objective:
    """keras-tuner's ``Objective``: a metric's name and whether it is minimised or maximised,
    ``Objective("val_mean_absolute_error", "min")``."""

    name: str
    direction: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"Objective name must be a non-empty string, got {self.name!r}")
        if self.direction not in ("min", "max"):
            raise ConfigError(
                f"Objective {self.name!r}: direction must be 'min' or 'max', got {self.direction!r}"
            )


def overridden_fit(hypermodel: Any) -> Any:
    """``hypermodel`` if its class overrides ``fit`` (rlnas's or keras-tuner's HyperModel base
    fits with ``model.fit``), else None."""
    fit = getattr(type(hypermodel), "fit", None)
    if fit is None or isinstance(hypermodel, type) or fit is HyperModel.fit:
        return None
    return None if getattr(fit, "__module__", "").startswith("keras_tuner") else hypermodel
