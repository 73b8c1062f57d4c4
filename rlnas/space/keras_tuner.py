"""keras-tuner model functions in rlnas: ``def build_model(hp): ...`` becomes a :class:`SearchSpace`.

A keras-tuner user writes the search space *as code*: the model function asks ``hp.Int(...)``,
``hp.Choice(...)`` ... while it builds the model. :class:`HyperParameters` answers those calls in two
ways with one mechanism: with no ``values`` it *records* (every call returns its default and the
definition is kept), with ``values`` it *replays* an architecture (each call returns the chosen value).

Code hides structure: ``for i in range(hp.Int("num_layers", 1, 3)): hp.Int(f"units_{i}", ...)``
reveals ``units_1`` only when ``num_layers`` is 2 or more. :func:`space_from_function` therefore
re-runs the function with the values of the decisions it has found varied, and records for every
decision that appears or disappears the condition under which it exists (see :func:`_explore`).
Continuous ranges become grids, since the controller picks among discrete tokens.

This is the space layer's face of a model function; training what it builds (its labels, its own
metrics) is :mod:`rlnas.function_model`, next to :mod:`rlnas.child`.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlnas.errors import ConfigError, did_you_mean
from rlnas.space.decisions import Decision, SearchSpace, Value, log_grid

SAMPLINGS = ("linear", "log")
MAX_RUNS = 64
"""Runs of the model function :func:`space_from_function` allows itself (each builds a model)."""


@dataclass(frozen=True)
class _Param:
    """One hyperparameter as first defined: its grid, default and explicit (scope) condition."""

    name: str
    kind: str
    values: tuple[Value, ...]
    default: Value
    when: dict[str, tuple[Value, ...]] = field(default_factory=dict)


class HyperParameters:
    """The ``hp`` object a keras-tuner model function receives.

    Args:
        values: decision name -> value to return (replaying an architecture); a name not given
            returns its default, so ``HyperParameters()`` records the defaults.
        grid: how many points a continuous range without a step is discretized into.
    """

    def __init__(self, values: Mapping[str, Any] | None = None, *, grid: int = 8) -> None:
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ConfigError(f"grid must be a whole number >= 2, got {grid!r}")
        self.grid = grid
        self._given = dict(values or {})
        self._params: dict[str, _Param] = {}  # in order of first appearance
        self._scopes: list[tuple[str, tuple[Value, ...]]] = []
        self.values: dict[str, Any] = {}
        """Name -> value of every active hyperparameter asked so far (``hp.Fixed`` ones included)."""
        self.trace: list[str] = []
        """Decision names in the order this run asked them (repeats left out)."""

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
        with self._scope(parent_name, parent_values):
            param = _Param(name, kind, values, default, self._conditions())
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


# -- discovery: running the function until its structure shows -------------------------------------
@dataclass(frozen=True)
class _Run:
    """What one run of the model function asked: active values, and every name it registered."""

    assign: dict[str, Any]
    names: tuple[str, ...]


class _Explorer:
    """Runs the model function with chosen values and merges what each run reveals."""

    def __init__(self, fn: Callable[[HyperParameters], Any], grid: int, max_runs: int) -> None:
        self.fn, self.grid, self.max_runs = fn, grid, max_runs
        self.params: dict[str, _Param] = {}
        self.order: list[str] = []
        self.gates: dict[str, dict[str, tuple[Value, ...]]] = {}
        self.runs: dict[tuple, _Run] = {}
        self.truncated = False

    def run(self, assign: Mapping[str, Any]) -> _Run | None:
        """The run with ``assign`` (cached); None once the budget of runs is spent."""
        key = tuple(sorted((k, repr(v)) for k, v in assign.items()))
        if key in self.runs:
            return self.runs[key]
        if len(self.runs) >= self.max_runs:
            self.truncated = True
            return None
        hp = HyperParameters(assign, grid=self.grid)
        try:
            self.fn(hp)
        except ConfigError:
            raise
        except Exception as exc:
            if not self.runs:  # the defaults themselves fail: the user must see why
                raise ConfigError(f"the model function raised {type(exc).__name__}: {exc}") from exc
            # A probe that breaks the function still tells what it asked before breaking.
        for name, param in hp._params.items():
            known = self.params.setdefault(name, param)
            if (known.kind, known.values) != (param.kind, param.values):
                raise ConfigError(f"hyperparameter {name!r} is defined differently in different runs")
        _merge_order(self.order, list(hp._params))
        run = _Run({k: v for k, v in hp.values.items() if k in hp._params}, tuple(hp._params))
        self.runs[key] = run
        return run

    def vary(self, run: _Run, name: str) -> list[_Run]:
        """Runs that reveal new names when ``name`` takes other values (every value is then tried)."""
        values = self.params[name].values
        current = run.assign[name]
        probes = values if len(values) <= 4 else (values[0], values[len(values) // 2], values[-1])
        found = [self.run(run.assign | {name: v}) for v in probes if v != current]
        if not any(f is not None and set(f.names) != set(run.names) for f in found):
            return []
        variants = {v: self.run(run.assign | {name: v}) for v in values}
        variants = {v: r for v, r in variants.items() if r is not None}
        for other in {n for r in variants.values() for n in r.names} - {name}:
            present = tuple(v for v, r in variants.items() if other in r.names)
            if present and len(present) < len(variants) and not self.params[other].when:
                self.gates.setdefault(other, {name: present})
        return [r for r in variants.values() if set(r.names) - set(run.names)]

    def explore(self) -> None:
        """Breadth first: vary every decision of the first run, then the new names of each new run."""
        base = self.run({})
        assert base is not None
        queue: list[tuple[_Run, list[str]]] = [(base, list(base.names))]
        while queue:
            run, names = queue.pop(0)
            for name in names:
                if name in run.assign:  # a name in an inactive scope has no value to vary
                    for found in self.vary(run, name):
                        queue.append((found, [n for n in found.names if n not in run.names]))


def _merge_order(order: list[str], names: list[str]) -> None:
    """Insert names not yet in ``order`` right after their nearest predecessor in ``names``."""
    for i, name in enumerate(names):
        if name not in order:
            prev = next((m for m in reversed(names[:i]) if m in order), None)
            order.insert(order.index(prev) + 1 if prev is not None else 0, name)


def space_from_function(
    fn: Callable[[HyperParameters], Any] | str, *, grid: int = 8, max_runs: int = MAX_RUNS
) -> SearchSpace:
    """The search space a keras-tuner model function declares.

    Runs ``fn`` with the defaults, then again with each found decision varied (its first, middle
    and last values; every value once one of them makes new names appear or old ones vanish), at
    most ``max_runs`` times in all: each run builds and compiles a model. A decision that appears
    only for some values of an earlier one gets that as its condition (``units_2`` when
    ``num_layers`` is 3); a ``conditional_scope`` gives the condition directly. ``hp.Fixed`` is a
    constant, not a decision.

    Args:
        fn: the model function, or ``"module:function"``.
        grid: points of a continuous range without a step (log-spaced for ``sampling="log"``).

    Returns:
        A SearchSpace whose ``model`` is ``"module:function"``, for ``rlnas search`` and replay.

    Raises:
        ConfigError: a bad hyperparameter definition, a function that fails with its defaults, or
            one that asks no hyperparameter.
    """
    model = fn if isinstance(fn, str) else function_name(fn)
    if not isinstance(fn, str) and not importable(fn):
        _UNIMPORTABLE[model] = fn
    explorer = _Explorer(load_function(fn) if isinstance(fn, str) else fn, grid, max_runs)
    try:
        explorer.explore()
    finally:
        _clear_keras()
    if explorer.truncated:
        warnings.warn(
            f"{model}: stopped exploring after {max_runs} runs; decisions that appear only for "
            "values not tried are missing (raise max_runs or use conditional_scope)",
            stacklevel=2,
        )
    if not explorer.order:
        raise ConfigError(f"model function {model} asks no hyperparameter; use hp.Int, hp.Choice, ...")
    decisions = [
        Decision(
            n,
            explorer.params[n].values,
            explorer.params[n].kind,
            explorer.params[n].when or explorer.gates.get(n, {}),
        )
        for n in explorer.order
    ]
    return SearchSpace(decisions, model=model)


def _clear_keras() -> None:
    """Discovery built many models: drop them (only if the function brought Keras in at all)."""
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


# -- naming and loading the function (the space's ``model``) --------------------------------------
_UNIMPORTABLE: dict[str, Callable[[HyperParameters], Any]] = {}
"""Model functions that no import finds (a notebook's, a nested one), by their ``module:function``
name, from :func:`space_from_function`: this process still builds them by name (the env checks the
space's model that way); a worker process gets the function itself (:func:`unimportable_function`)."""


def unimportable_function(spec: str) -> Callable[[HyperParameters], Any] | None:
    """The function :func:`space_from_function` found under ``spec`` that no import finds, or None:
    a worker process receives such a function by value, since it cannot load it by name."""
    return _UNIMPORTABLE.get(spec)


def function_name(fn: Callable[..., Any]) -> str:
    """``"module:function"``: how a space, a run's config.json and a worker process name ``fn``."""
    return f"{_module_name(fn)}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def _module_name(fn: Callable[..., Any]) -> str | None:
    """``fn``'s module; for a script run as ``python -m pkg.mod``, ``pkg.mod`` (which imports
    without running its ``__main__`` block) rather than ``__main__``."""
    module = getattr(fn, "__module__", None)
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        return getattr(spec, "name", None) or module
    return module


def importable(fn: Callable[..., Any]) -> bool:
    """Whether a fresh process finds ``fn`` by :func:`function_name`: not one defined in a script's
    ``__main__`` (a fresh process has another ``__main__``), a nested function or a lambda."""
    module, qualname = _module_name(fn), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or not qualname or "<" in qualname:
        return False
    obj: Any = sys.modules.get(fn.__module__)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj is fn


def load_function(spec: str) -> Callable[[HyperParameters], Any]:
    """``"module:function"`` -> the function; the current directory is importable, as in scripts
    (and in worker processes, which start in the directory of the process that spawned them).

    Raises:
        ConfigError: not ``module:function``, the module cannot be imported, or it has no such callable.
    """
    module_name, _, attr = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not module_name or not attr:
        raise ConfigError(
            f"model function {spec!r} must be written module:function "
            "(e.g. examples.keras_tuner_model:build_model)"
        )
    if spec in _UNIMPORTABLE:
        return _UNIMPORTABLE[spec]
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"cannot import module {module_name!r} of model function {spec!r}; "
                "run from the directory that holds it, or install it"
            ) from None
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(module) if not n.startswith("_")]
            raise ConfigError(f"module {module_name!r} has no {attr!r}" + did_you_mean(part, public))
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{spec!r} is a {type(obj).__name__}, not a function; point to def build_model(hp)")
    return obj
