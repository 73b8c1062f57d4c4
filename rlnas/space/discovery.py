"""A model function's space, discovered: run ``build_model(hp)`` until its structure shows; name and
load model functions.

Code hides structure: ``for i in range(hp.Int("num_layers", 1, 3)): hp.Int(f"units_{i}", ...)``
reveals ``units_1`` only when ``num_layers`` is 2 or more. :func:`space_from_function` therefore
re-runs the function (with a recording :class:`~rlnas.space.keras_tuner.HyperParameters`) with the
values of the decisions it has found varied, and records for every decision that appears or
disappears the condition under which it exists. A function is named ``module:qualname`` so that a
run directory records which one it searched, and workers that cannot import it get it by value.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rlnas.errors import ConfigError, did_you_mean
from rlnas.space.decisions import Decision, SearchSpace, Value
from rlnas.space.keras_tuner import MAX_RUNS, HyperParameters, Param, Preset
from rlnas.text import with_article


# -- discovery: running the function until its structure shows -------------------------------------
@dataclass(frozen=True)
class _Run:
    """What one run of the model function asked: active values, and every name it registered."""

    assign: dict[str, Any]
    names: tuple[str, ...]


class _Explorer:
    """Runs the model function with chosen values and merges what each run reveals."""

    def __init__(
        self,
        fn: Callable[[HyperParameters], Any],
        grid: int,
        max_runs: int,
        preset: Preset | None = None,
        label: str = "the model function",
    ) -> None:
        self.fn, self.grid, self.max_runs = fn, grid, max_runs
        self.preset, self.label = preset, label
        self.params: dict[str, Param] = {}
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
        hp = HyperParameters(assign, grid=self.grid, preset=self.preset)
        try:
            self.fn(hp)
        except ConfigError:
            raise
        except Exception as exc:
            if not self.runs:  # the defaults themselves fail: the user must see why
                raise ConfigError(f"{self.label} raised {type(exc).__name__}: {exc}") from exc
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
    fn: Callable[[HyperParameters], Any] | str,
    *,
    grid: int = 8,
    max_runs: int = MAX_RUNS,
    preset: Preset | None = None,
    model: str | None = None,
    label: str = "the model function",
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
        preset: keras-tuner's ``hyperparameters=`` and ``tune_new_entries=`` (:class:`Preset`).
        model: the space's ``model`` name instead of ``fn``'s own (the tuner's discovery of
            ``HyperModel.fit`` or ``run_trial`` runs a stand-in that calls the user's code).
        label: how an error names the code (``"HyperModel.fit"``).

    Returns:
        A SearchSpace whose ``model`` is ``"module:function"``, for ``rlnas search`` and replay.

    Raises:
        ConfigError: a bad hyperparameter definition, a function that fails with its defaults, or
            one that asks no hyperparameter.
    """
    if model is None:
        model = fn if isinstance(fn, str) else function_name(fn)
        if not isinstance(fn, str) and not importable(fn):
            _UNIMPORTABLE[model] = fn
    elif model not in _UNIMPORTABLE and not isinstance(fn, str):  # this process finds it by that name
        _UNIMPORTABLE[model] = fn
    explorer = _Explorer(load_function(fn) if isinstance(fn, str) else fn, grid, max_runs, preset, label)
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
        raise ConfigError(f"{label} {model} asks no hyperparameter; use hp.Int, hp.Choice, ...")
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
        kind = with_article(type(obj).__name__)
        raise ConfigError(f"{spec!r} is {kind}, not a function; point to def build_model(hp)")
    return obj
