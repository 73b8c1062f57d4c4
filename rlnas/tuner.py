"""A keras-tuner-like face over the REINFORCE search: change ``kt.RandomSearch(`` to
``rlnas.ReinforceSearch(`` and keep the model function, ``search(...)`` and the result calls.

    tuner = rlnas.ReinforceSearch(hypermodel=build_model, objective="val_accuracy", max_trials=32,
                                  directory="runs", project_name="mnist")
    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val))
    best_model = tuner.get_best_models(1)[0]

Under it is the ordinary machinery: the model function's space (:func:`space_from_function`), the
controller and loop of :func:`rlnas.search.run_search`, and a :class:`RunStore` at
``directory/project_name``, so ``rlnas show``, ``rlnas report`` and TensorBoard read the run like any
other. The arrays are saved there once as a pre-split ``data.npz`` (used as given, never re-split).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlnas import data
from rlnas.child import ChildResult
from rlnas.config import make_config
from rlnas.errors import ChildError, ConfigError, RunError
from rlnas.hyperparameters import (
    MAX_RUNS,
    HyperParameters,
    build_from_function,
    fit_labels,
    load_function,
    loss_and_accuracy,
    space_from_function,
)
from rlnas.store import RunStore, top_k
from rlnas.text import format_arch, format_value

OBJECTIVES = ("val_accuracy", "val_acc")
KERAS_TUNER_NAMES = {
    "max_model_size": "max_params",
    "max_consecutive_failed_trials": "max_consecutive_failures",
}
"""keras-tuner keyword -> the SearchConfig field that means the same."""


class FunctionEvaluator:
    """Trains what the model function builds, in this process, on fixed train/validation arrays.

    The model is compiled by the user's function (loss, optimizer, metrics are theirs); labels are
    given in the form its loss expects (:func:`fit_labels`). Never raises for a bad child.
    """

    def __init__(
        self,
        fn: Callable[[HyperParameters], Any],
        dataset: data.Dataset,
        *,
        epochs: int,
        batch_size: int,
        max_params: int | None = None,
        fit_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.fn, self.dataset, self.epochs, self.batch_size = fn, dataset, epochs, batch_size
        self.max_params = max_params
        self.fit_kwargs = dict(fit_kwargs or {})

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        return self.train(arch, seed, log_dir)[1]

    def train(
        self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None
    ) -> tuple[Any, ChildResult]:
        """(trained model or None, result); the same ``arch`` and ``seed`` give the same model."""
        import keras

        start = time.perf_counter()
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(seed)
        ds, model = self.dataset, None
        try:
            model = build_from_function(self.fn, arch)
            if not model.built:  # Sequential() without an Input learns its shape on the first fit
                model.build((None, *ds.input_shape))
            params = int(model.count_params())
            if self.max_params is not None and params > self.max_params:
                raise ChildError(f"{params:,} parameters exceed max_params={self.max_params:,}")
            y_train = fit_labels(model, ds.y_train, ds.num_classes)
            y_val = fit_labels(model, ds.y_val, ds.num_classes)
            kwargs = dict(self.fit_kwargs)
            if log_dir:
                kwargs["validation_data"] = (ds.x_val, y_val)
                kwargs["callbacks"] = [*kwargs.get("callbacks", []), keras.callbacks.TensorBoard(log_dir)]
            t0 = time.perf_counter()
            hist = model.fit(
                ds.x_train, y_train, epochs=self.epochs, batch_size=self.batch_size, verbose=0, **kwargs
            )
            t1 = time.perf_counter()
            val_loss, val_acc = loss_and_accuracy(model, ds.x_val, y_val)
            train_loss = float(hist.history["loss"][-1])
            if not all(math.isfinite(v) for v in (train_loss, val_loss, val_acc)):
                raise ChildError(f"non-finite loss (train {train_loss}, val {val_loss})")
            result = ChildResult(
                "ok", val_acc, val_loss, train_loss, params, t1 - t0, time.perf_counter() - t1
            )
        except Exception as exc:
            model, result = None, ChildResult("failed", error=f"{type(exc).__name__}: {exc}"[:500])
        return model, dataclasses.replace(result, child_seconds=time.perf_counter() - start)

    def close(self) -> None:
        pass


class _HyperModel:
    """keras-tuner's ``tuner.hypermodel``: ``tuner.hypermodel.build(best_hp)`` builds a model."""

    def __init__(self, fn: Callable[[HyperParameters], Any]) -> None:
        self.fn = fn

    def build(self, hp: HyperParameters) -> Any:
        return self.fn(hp)


class ReinforceSearch:
    """keras-tuner's tuner interface, searched by the REINFORCE controller.

    Args:
        hypermodel: ``def build_model(hp)`` returning a compiled Keras model, or ``"module:function"``.
        objective: ``"val_accuracy"`` (maximised), the name or an object with ``.name`` and
            ``.direction == "max"`` like ``kt.Objective("val_accuracy", "max")``.
        max_trials: architectures to sample (a repeat is answered from the cache, not retrained).
        directory, project_name: the run is written to ``directory/project_name``.
        seed: seeds the controller, the sampling and every child: same seed, same search.
        overwrite: replace an existing run there (otherwise an existing one is an error).
        grid, max_runs: how the model function's space is discovered (see :func:`space_from_function`).
        **settings: any :class:`rlnas.config.SearchConfig` field (``archs_per_update``,
            ``controller_lr``, ``entropy_weight``, ``max_params``, ...); keras-tuner's
            ``max_model_size`` and ``max_consecutive_failed_trials`` are understood too.

    Raises:
        ConfigError: an unsupported objective, an unknown setting, or a bad model function.
    """

    def __init__(
        self,
        hypermodel: Callable[[HyperParameters], Any] | str,
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        *,
        directory: str | Path = ".",
        project_name: str = "untitled_project",
        seed: int = 0,
        overwrite: bool = False,
        grid: int = 8,
        max_runs: int = MAX_RUNS,
        **settings: Any,
    ) -> None:
        self.objective = _objective(objective)
        self._fn = load_function(hypermodel) if isinstance(hypermodel, str) else hypermodel
        self.hypermodel = _HyperModel(self._fn)
        settings = {KERAS_TUNER_NAMES.get(k, k): v for k, v in settings.items()}
        self.config = make_config({"replay_top": 0, **settings, "trials": max_trials, "seed": seed})
        self.space = space_from_function(hypermodel, grid=grid, max_runs=max_runs)
        self.project_dir = Path(directory) / project_name
        self.overwrite = overwrite
        self._evaluator: FunctionEvaluator | None = None
        self._trials: list[dict[str, Any]] = []

    # -- searching -------------------------------------------------------------------------------
    def search(
        self,
        x: Any,
        y: Any,
        *,
        epochs: int = 1,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float | None = None,
        batch_size: int = 32,
        verbose: int = 1,
        **fit_kwargs: Any,
    ) -> None:
        """Search: each child is built by the model function, trained on ``(x, y)`` for ``epochs``
        and scored on the validation data. Other keywords (``callbacks``, ``shuffle``) go to ``fit``.

        Raises:
            ConfigError: no validation data, or search() already ran on this tuner.
            RunError: ``directory/project_name`` holds a run and ``overwrite`` is False.
            DataError: the arrays do not fit together.
        """
        from rlnas.search import run_search

        if self._evaluator is not None:
            raise ConfigError(
                "search() already ran on this tuner; make a new one (overwrite=True) to search again"
            )
        train, val = _split(x, y, validation_data, validation_split)
        store = self._create_store()
        path = store.path / "data.npz"
        np.savez(path, x_train=train[0], y_train=train[1], x_val=val[0], y_val=val[1])
        self.config = dataclasses.replace(
            self.config, dataset=str(path.resolve()), epochs=epochs, batch_size=batch_size
        )
        dataset = data.load(self.config.data_spec())
        store.write_json("config.json", {"search": self.config.to_dict(), "space": self.space.to_dict()})
        self._evaluator = FunctionEvaluator(
            self._fn,
            dataset,
            epochs=epochs,
            batch_size=batch_size,
            max_params=self.config.max_params,
            fit_kwargs=fit_kwargs,
        )
        show = _print_trial(self.config.trials) if verbose else None
        with store.locked(), _function_models_accepted():
            run_search(self.config, self.space, store, evaluator=self._evaluator, on_trial=show)
        self._trials = store.trials()

    def _create_store(self) -> RunStore:
        if self.project_dir.exists() and any(self.project_dir.iterdir()) and not self.overwrite:
            raise RunError(
                f"{str(self.project_dir)!r} already holds a search; "
                "pass overwrite=True or another project_name"
            )
        return RunStore.create(self.project_dir, overwrite=self.overwrite)

    # -- results ---------------------------------------------------------------------------------
    def search_space_summary(self) -> None:
        """Print the discovered space: each decision, its values, its condition, the space's size."""
        print(f"Search space summary\n{self.space.summary()}")

    def results_summary(self, num_trials: int = 10) -> None:
        """Print the best ``num_trials`` distinct architectures with their hyperparameters and score."""
        best = self._best(num_trials)
        print(f"Results summary\nResults in {self.project_dir}\nShowing {len(best)} best trials")
        print(f'Objective(name="{self.objective}", direction="max")')
        for t in best:
            print(f"\nTrial {t['index']:04d} summary\nHyperparameters:")
            for name, value in t["architecture"].items():
                print(f"{name}: {format_value(value)}")
            print(f"Score: {t['val_accuracy']:.4f}")

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        """The best architectures as ``hp`` objects: ``.values`` is the dict, ``build_model(hp)``
        builds the model."""
        out = []
        for t in self._best(num_trials):
            hp = HyperParameters(t["architecture"])
            hp.values.update(t["architecture"])
            out.append(hp)
        return out

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best architectures, trained: each is retrained on the search's train split with the
        seed of its search trial, which gives the model the search scored (same data, same seed)."""
        if self._evaluator is None:
            raise ConfigError("no search has run on this tuner yet; call search() first")
        models = []
        for t in self._best(num_models):
            model, result = self._evaluator.train(t["architecture"], t["seed"])
            if model is None:
                raise ChildError(f"retraining trial {t['index']} failed: {result.error}")
            models.append(model)
        return models

    def _best(self, k: int) -> list[dict[str, Any]]:
        if not self._trials:
            raise ConfigError("no finished trial yet; call search() first")
        return top_k(self._trials, k)


def _objective(objective: Any) -> str:
    """The objective's name; only the maximised validation accuracy is the reward today."""
    name = getattr(objective, "name", objective)
    direction = getattr(objective, "direction", "max")
    if name not in OBJECTIVES or direction != "max":
        raise ConfigError(f"objective {objective!r} is not supported; allowed: 'val_accuracy' (maximised)")
    return "val_accuracy"


def _split(x: Any, y: Any, validation_data: Any, validation_split: float | None) -> tuple[tuple, tuple]:
    """(train, val) pairs: ``validation_data`` as given, or Keras's ``validation_split`` (the last
    fraction of the samples, taken before any shuffling)."""
    x, y = np.asarray(x), np.asarray(y)
    if validation_data is not None:
        if validation_split is not None:
            raise ConfigError("give validation_data or validation_split, not both")
        if not (isinstance(validation_data, tuple | list) and len(validation_data) == 2):
            raise ConfigError("validation_data must be a pair (x_val, y_val)")
        return (x, y), (np.asarray(validation_data[0]), np.asarray(validation_data[1]))
    if validation_split is None:
        raise ConfigError("the reward is the validation accuracy: give validation_data or validation_split")
    if not (isinstance(validation_split, float) and 0 < validation_split < 1):
        raise ConfigError(f"validation_split must be a float in (0, 1), got {validation_split!r}")
    cut = len(x) - max(1, round(len(x) * validation_split))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _print_trial(total: int) -> Callable[[dict[str, Any]], None]:
    """One line per finished trial, like keras-tuner's progress but short."""
    best = [0.0]

    def show(t: dict[str, Any]) -> None:
        if t["status"] == "ok":
            best[0] = max(best[0], t["val_accuracy"])
            score = f"val_accuracy {t['val_accuracy']:.4f}" + (" (repeat)" if t.get("cached") else "")
        else:
            score = f"failed: {t['error'][:80]}"
        print(f"[{t['index'] + 1}/{total}] {score}  best {best[0]:.4f}  {format_arch(t['architecture'])}")
        sys.stdout.flush()

    return show


@contextlib.contextmanager
def _function_models_accepted() -> Iterator[None]:
    """Let the env take a ``module:function`` space while rlnas.child.check_space knows only its own
    builders. Temporary: remove once check_space accepts ``":"`` models (asked for in issue #6)."""
    import envs.nas_env as nas_env

    original = nas_env.check_space

    def check(space: Any) -> None:
        if ":" not in space.model:
            original(space)

    nas_env.check_space = check
    try:
        yield
    finally:
        nas_env.check_space = original
