"""A keras-tuner-like face over the REINFORCE search: change ``kt.RandomSearch(`` to
``rlnas.ReinforceSearch(`` and keep the model function, ``search(...)`` and the result calls.

    tuner = rlnas.ReinforceSearch(hypermodel=build_model, objective="val_accuracy", max_trials=32,
                                  directory="runs", project_name="mnist")
    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val))
    best_model = tuner.get_best_models(1)[0]

Under it is the ordinary machinery: the model function's space (:func:`space_from_function`), the
controller and loop of :func:`rlnas.search.loop.run_search`, and a :class:`RunStore` at
``directory/project_name``, so ``rlnas show``, ``rlnas report`` and TensorBoard read the run like any
other. The arrays are saved there once as a pre-split ``data.npz`` (used as given, never re-split),
a ``tf.data.Dataset``, PyDataset or dicts of arrays once under ``data/`` (:mod:`rlnas.data.saved`),
and the children train in worker processes on it like any search's (``workers=N`` trains N at once;
this process's memory does not grow with the trials); ``rlnas replay`` retrains the best from it.
The workers start from rlnas's own entry point (never re-running the script) and receive the model
function and fit keywords (``callbacks``) by value, so a function defined in the script, a notebook
cell or a closure trains there too; ``in_process=True`` trains the children in this process instead.

(About 370 lines: keras-tuner's whole surface, the choice of what trains the children and the data
hand-over to them, kept in one face so that a keras-tuner user reads one module; the argument
checks are :mod:`rlnas.tuner_args`, the executions and retries :mod:`rlnas.exec.executions`.)
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import shutil
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from rlnas import data
from rlnas.config import SearchConfig
from rlnas.data import given, saved
from rlnas.data.saved import SavedDataset
from rlnas.errors import ChildError, ConfigError, DataError, RunError
from rlnas.exec.evaluator import BaseEvaluator, Evaluator
from rlnas.exec.executions import Executions
from rlnas.exec.factory import make_evaluators
from rlnas.models.child import ChildResult, TrainSpec, train_and_evaluate, train_spec
from rlnas.models.objectives import Objective, parse_objective
from rlnas.resolve import BASELINED, fit_to_data, resolve
from rlnas.run.store import RunStore
from rlnas.run.trial import Trial, objective_name, objective_value, rank
from rlnas.space.discovery import space_from_function
from rlnas.space.keras_tuner import MAX_RUNS, HyperParameters
from rlnas.text import format_arch, format_value
from rlnas.tuner_args import (
    FAILED_LOSS,
    arrays_only,
    check_keywords,
    check_place,
    dataset_splits,
    model_function,
    objective_text,
    split_arrays,
    trial_seed,
    warn_unseen_classes,
    whole,
)


class FunctionEvaluator(BaseEvaluator):
    """Trains what the model function builds in this process, as a worker would
    (:func:`rlnas.models.child.train_and_evaluate` on the same splits), and can hand back the trained model.

    The search's evaluator with ``in_process``; always the one that retrains for ``get_best_models``.
    """

    def __init__(
        self,
        fn: Callable[[HyperParameters], Any],
        dataset: data.Dataset | SavedDataset,
        train: TrainSpec,
        *,
        fit_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.fn, self.dataset, self.spec = fn, dataset, train
        self.fit_kwargs = dict(fit_kwargs or {})

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        return self.train(arch, seed, log_dir)[1]

    def train(
        self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None
    ) -> tuple[Any, ChildResult]:
        """(trained model or None, result); the same ``arch`` and ``seed`` give the same model."""
        kept: list[Any] = []
        spec = dataclasses.replace(self.spec, model=self.fn)  # the function itself: no import by name
        result = train_and_evaluate(
            arch,
            self.dataset,
            spec,
            seed=seed,
            log_dir=log_dir,
            on_model=kept.append,
            fit_kwargs=self.fit_kwargs,
        )
        return (kept[0] if kept else None), result


class _HyperModel:
    """keras-tuner's ``tuner.hypermodel``: ``tuner.hypermodel.build(best_hp)`` builds a model."""

    def __init__(self, fn: Callable[[HyperParameters], Any]) -> None:
        self.fn = fn

    def build(self, hp: HyperParameters) -> Any:
        return self.fn(hp)


class ReinforceSearch:
    """keras-tuner's tuner interface, searched by the REINFORCE controller.

    Args:
        hypermodel: ``def build_model(hp)`` returning a compiled Keras model, ``"module:function"``,
            or a ``kt.HyperModel`` whose ``build(hp)`` does (one that overrides ``fit`` is refused).
        objective: any metric the children log, by name (``"val_accuracy"``, ``"val_loss"``,
            ``"val_mean_absolute_error"``, a custom metric's ``"val_<name>"``), its direction
            inferred as keras-tuner infers it, or ``Objective(name, direction)`` (rlnas's or
            keras-tuner's). On regression targets the default becomes ``val_loss``.
        max_trials: architectures to sample (a repeat is answered from the cache, not retrained).
        executions_per_trial: train each architecture this many times, from the trial's seed and
            seeds derived from it; its score is the mean (as keras-tuner's).
        max_retries_per_trial: train a failed child again up to this many times before it counts
            as a failed trial.
        max_consecutive_failed_trials: stop the search (``SearchAborted``) after this many failed
            trials in a row.
        max_model_size: a child with more parameters fails without training.
        seed: seeds the controller, the sampling and every child: same seed, same search (None:
            a fresh one, recorded in the run's ``config.json``).
        overwrite: replace an existing run there (otherwise an existing one is an error).
        directory, project_name: the run is written to ``directory/project_name``.
        grid, max_runs: how the model function's space is discovered (see :func:`space_from_function`).
        in_process: train the children in this process instead of worker processes: no start-up
            cost (seconds), but this process keeps what TensorFlow does not give back, every child.
            After :meth:`search`, True if they did (asked, or needed: see :meth:`search`).
        **settings: any :class:`rlnas.config.SearchConfig` field (``archs_per_update``,
            ``controller_lr``, ``entropy_weight``, ``workers``, ...).

    Raises:
        TypeError: an unknown keyword (the message names the accepted ones) or a wrong type.
        ConfigError: a bad value, an unsupported objective, or a bad model function.
    """

    def __init__(
        self,
        hypermodel: Callable[[HyperParameters], Any] | str,
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        *,
        executions_per_trial: int = 1,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        max_model_size: int | None = None,
        seed: int | None = 0,
        overwrite: bool = False,
        directory: str | Path = ".",
        project_name: str = "untitled_project",
        grid: int = 8,
        max_runs: int = MAX_RUNS,
        in_process: bool = False,
        **settings: Any,
    ) -> None:
        check_keywords(settings)
        check_place(directory, project_name, overwrite)
        self.executions = whole("executions_per_trial", executions_per_trial)
        self.retries = whole("max_retries_per_trial", max_retries_per_trial, low=0)
        keras_tuner = {
            "objective": objective_text(objective),
            "trials": whole("max_trials", max_trials),
            "max_consecutive_failures": whole("max_consecutive_failed_trials", max_consecutive_failed_trials),
            "max_params": whole("max_model_size", max_model_size, optional=True),
            "seed": trial_seed(seed),
        }
        chosen = parse_objective(keras_tuner["objective"])
        if chosen.direction == "min" and chosen.metric not in BASELINED and "failed_reward" not in settings:
            keras_tuner["failed_reward"] = -FAILED_LOSS  # a failure must not beat every loss
        self._flags = {"replay_top": 0, **keras_tuner, **settings}
        self.config = resolve(flags=self._flags).config
        self.objective = parse_objective(self.config.objective)
        self._fn = model_function(hypermodel)
        self.hypermodel = _HyperModel(self._fn)
        whole("grid", grid)
        whole("max_runs", max_runs)  # the model function has to run at least once
        self.space = space_from_function(
            hypermodel if isinstance(hypermodel, str) else self._fn, grid=grid, max_runs=max_runs
        )
        self.project_dir = Path(directory) / project_name
        self.overwrite = overwrite
        self.in_process = bool(in_process)
        self._evaluator: FunctionEvaluator | None = None
        self._trials: list[Trial] = []

    # -- searching -------------------------------------------------------------------------------
    def search(
        self,
        x: Any = None,
        y: Any = None,
        *,
        epochs: int = 1,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float | None = None,
        batch_size: int = 32,
        verbose: int = 1,
        **fit_kwargs: Any,
    ) -> None:
        """Search: each child is built by the model function, trained on ``(x, y)`` for ``epochs``
        and scored on the validation data, in ``workers`` worker processes (a setting; default:
        one per two cores), ``executions_per_trial`` times each. Other keywords (``callbacks``,
        ``shuffle``) go to ``fit`` in the workers; only a function or keyword that cloudpickle
        cannot send makes the children train in this process, with a warning.

        ``x`` is what ``model.fit`` takes: arrays (saved once as the run's ``data.npz``), dicts of
        arrays for a model with several named inputs, a ``tf.data.Dataset`` of ``(x, y)`` batches
        or a ``keras.utils.PyDataset`` with a length (``y`` then omitted, ``validation_data`` a
        dataset or a pair). Everything but plain arrays is read once and saved with
        ``tf.data.Dataset.save`` under the run's ``data/`` (:mod:`rlnas.data.saved`), where every
        child reads it from disk; an unbatched dataset is batched with ``batch_size``.

        Raises:
            ConfigError: no validation data, ``validation_split`` with a dataset, bad ``epochs``
                or ``batch_size``, search() already ran on this tuner, or it runs while a process
                of the user's own multiprocessing pool starts (a script that searches without
                ``if __name__ == "__main__":``).
            RunError: ``directory/project_name`` holds a run and ``overwrite`` is False.
            DataError: the arrays do not fit together, a Python generator (which cannot be read
                twice), elements that are not ``(x, y)`` pairs, NaN or infinite labels.
        """
        from rlnas.search.loop import run_search

        _refuse_in_starting_worker()
        if self._evaluator is not None:
            raise ConfigError(
                "search() already ran on this tuner; make a new one (overwrite=True) to search again"
            )
        epochs, batch_size = whole("epochs", epochs), whole("batch_size", batch_size)
        if x is None:
            raise TypeError("search() needs the training data: search(x, y, ...) or search(dataset, ...)")
        dataset: data.Dataset | SavedDataset
        if arrays_only(x, validation_data):
            self.config = self._search_config(epochs, batch_size, "data.npz")
            train, val = split_arrays(x, y, validation_data, validation_split)
            # The arrays checked (and scaled) once, before the project directory exists.
            dataset = data.from_splits(train, val, name="x, y", train_fraction=self.config.train_fraction)
            self.config = fit_to_data(self.config, dataset)  # regression: its objective and failed reward
            self.objective = parse_objective(self.config.objective)
            store = self._create_store()
            dataset = self._save_data(store, train, val, dataset)
        else:
            self.config = self._search_config(epochs, batch_size, "data")
            if self.config.train_fraction != 1:
                raise ConfigError("train_fraction is for arrays; give a dataset of the size to train on")
            splits = dataset_splits(x, y, validation_data, validation_split)  # checked before writing
            self._check_inputs(splits)
            store = self._create_store()
            dataset = self._save_dataset(store, splits)
        self._evaluator = FunctionEvaluator(
            self._fn, dataset, train_spec(self.config, self.space.model), fit_kwargs=fit_kwargs
        )
        self.in_process = self.in_process or _needs_this_process(self._fn, fit_kwargs)
        show = _print_trial(self.config.trials, self.objective) if verbose else None
        with store.locked():
            evaluators = self._evaluators(store, fit_kwargs)
            run_search(self.config, self.space, store, evaluator=evaluators, on_trial=show)
        self._trials = store.trials()

    def _search_config(self, epochs: int, batch_size: int, data_name: str) -> SearchConfig:
        """The settings of this search, resolved at once with the tuner's own: the data the search
        writes (the run's ``data.npz`` or ``data/`` directory), ``epochs`` and ``batch_size``."""
        data_file = str((self.project_dir / data_name).resolve())
        flags = self._flags | {"dataset": data_file, "epochs": epochs, "batch_size": batch_size}
        return resolve(flags=flags).config

    def _evaluators(self, store: RunStore, fit_kwargs: Mapping[str, Any]) -> list[Executions]:
        """What trains the children: this process, or the run's worker processes (started now) or
        Ray tasks; each trial is trained ``executions_per_trial`` times. The workers get the function
        and the fit keywords by value, so a function of this script, a notebook cell or a closure
        trains there as well."""
        if self.in_process:
            inner: Sequence[Evaluator] = [self._evaluator]
        else:
            inner = make_evaluators(
                self.config, self.space, model=self._fn, run_dir=store.path, fit_kwargs=fit_kwargs
            )
        return [Executions(e, executions=self.executions, retries=self.retries) for e in inner]

    def _save_data(self, store: RunStore, train: tuple, val: tuple, dataset: data.Dataset) -> data.Dataset:
        """Save the arrays as the run's pre-split ``data.npz`` (the file ``config.dataset`` names) and
        the config; the dataset as every child reads it (``data.load`` of that file gives the same
        splits)."""
        np.savez(self.config.dataset, x_train=train[0], y_train=train[1], x_val=val[0], y_val=val[1])
        dataset = dataclasses.replace(dataset, name=self.config.dataset)
        warn_unseen_classes(dataset)
        store.write_config(self.config, self.space)
        return dataset

    def _check_inputs(self, splits: Mapping[str, tuple[Any, str]]) -> None:
        """One line now, not a failed trial per child, when the data cannot feed the model the
        function builds with its default hyperparameters (a wrong shape, a missing input name).

        Raises:
            DataError: the inputs do not fit.
        """
        import keras

        try:
            model = self._fn(HyperParameters())
        except Exception:  # a function that fails here fails as a trial, with its reason
            return
        for name, (ds, layout) in splits.items():
            reason = given.input_mismatch(model, ds.element_spec, layout == "batches")
            if reason:
                what = "x" if name == "train" else "validation_data"
                raise DataError(f"{what} does not fit the model's input: {reason}")
        keras.backend.clear_session(free_memory=False)

    def _save_dataset(self, store: RunStore, splits: Mapping[str, tuple[Any, str]]) -> SavedDataset:
        """Save the splits once under the run's ``data/`` (the directory ``config.dataset`` names),
        then the config; a dataset that cannot be saved leaves no run behind."""
        try:
            dataset, labels = saved.save(self.config.dataset, splits, batch_size=self.config.batch_size)
            # regression: its objective and failed reward, from the labels the save scanned
            seen = types.SimpleNamespace(
                task=dataset.task,
                num_classes=dataset.num_classes,
                y_train=labels.get("train"),
                y_val=labels.get("val"),
            )
            self.config = fit_to_data(self.config, seen)
        except (DataError, ConfigError):
            shutil.rmtree(store.path, ignore_errors=True)
            raise
        self.objective = parse_objective(self.config.objective)
        store.write_config(self.config, self.space)
        return dataset

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
        name, direction = objective_name(self.objective), self.objective.direction
        print(f'Objective(name="{name}", direction="{direction}")')
        for t in best:
            print(f"\nTrial {t.index:04d} summary\nHyperparameters:")
            for name, value in t.architecture.items():
                print(f"{name}: {format_value(value)}")
            print(f"Score: {objective_value(t, self.objective):.4f}")

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        """The best architectures as ``hp`` objects: ``.values`` is the dict, ``build_model(hp)``
        builds the model."""
        out = []
        for t in self._best(num_trials):
            hp = HyperParameters(t.architecture)
            hp.values.update(t.architecture)
            out.append(hp)
        return out

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best architectures, trained: each is retrained on the search's train split with the
        seed of its search trial, which gives the model the search scored (same data, same seed)."""
        if self._evaluator is None:
            raise ConfigError("no search has run on this tuner yet; call search() first")
        models = []
        for t in self._best(num_models):
            model, result = self._evaluator.train(t.architecture, t.seed)
            if model is None:
                raise ChildError(f"retraining trial {t.index} failed: {result.error}")
            models.append(model)
        return models

    def _best(self, k: int) -> list[Trial]:
        if not self._trials:
            raise ConfigError("no finished trial yet; call search() first")
        return rank(self._trials, self.config.objective, k)


def _print_trial(total: int, objective: Objective) -> Callable[[Trial], None]:
    """One line per finished trial, like keras-tuner's progress but short."""
    name, best = objective_name(objective), [None]

    def show(t: Trial) -> None:
        if t.ok:
            value = objective_value(t, objective)
            if best[0] is None or (value > best[0]) == (objective.direction == "max"):
                best[0] = value
            score = f"{name} {value:.4f}" + (" (repeat)" if t.cached else "")
        else:
            score = f"failed: {t.error[:80]}"
        shown = "-" if best[0] is None else f"{best[0]:.4f}"
        print(f"trial {t.index} of {total}: {score}  best {shown}  {format_arch(t.architecture)}")
        sys.stdout.flush()

    return show


def _needs_this_process(fn: Callable[..., Any], fit_kwargs: Mapping[str, Any]) -> bool:
    """True, with a warning saying why, when workers cannot train the children: the function or
    the fit keywords do not survive cloudpickle (a callback holding a lock or an open file)."""
    try:
        cloudpickle.dumps((fn, dict(fit_kwargs)))
    except Exception as exc:  # pickling fails in many ways: each means the same here
        name = getattr(fn, "__qualname__", repr(fn))
        warnings.warn(
            f"{name} or the fit keywords cannot be sent to worker processes ({type(exc).__name__}: {exc}"[
                :300
            ]
            + "): the children train in this process, which keeps memory with every child; "
            "pass in_process=True to say this is meant",
            stacklevel=3,
        )
        return True
    return False


def _refuse_in_starting_worker() -> None:
    """A process of the user's own multiprocessing "spawn" pool first re-runs the main script (rlnas's
    workers never do); one without a ``__main__`` guard would search (and overwrite the run) again in
    every such process. Python's own check comes later and less clearly."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(
            "search() ran while a worker process was starting: a script that searches must do so "
            'under if __name__ == "__main__": (worker processes re-run the script\'s top level)'
        )
