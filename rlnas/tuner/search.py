"""The tuner itself, :class:`ReinforceSearch`: keras-tuner's constructor, ``search`` and result calls
over rlnas's run, its data hand-over and the machinery of :mod:`rlnas.search.loop`."""

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
from rlnas.exec.evaluator import Evaluator
from rlnas.exec.executions import Executions
from rlnas.exec.factory import make_evaluators
from rlnas.models import objectives
from rlnas.models.child import train_spec
from rlnas.models.function_model import UserCode, fit_labels
from rlnas.models.objectives import parse_objective
from rlnas.resolve import BASELINED, fit_to_data, resolve
from rlnas.run.store import RunStore
from rlnas.run.trial import Trial, objective_name, objective_value, rank
from rlnas.space.discovery import function_name, space_from_function
from rlnas.space.keras_tuner import (
    MAX_RUNS,
    HyperParameters,
    Objective,
    Preset,
    overridden_fit,
)
from rlnas.text import format_arch, format_value
from rlnas.tuner.args import (
    FAILED_LOSS,
    PROBE_SAMPLES,
    arrays_only,
    check_keywords,
    check_place,
    compile_overrides,
    custom_trial,
    dataset_splits,
    model_function,
    objective_text,
    probe_arguments,
    split_arrays,
    trial_seed,
    warn_unseen_classes,
    whole,
)
from rlnas.tuner.evaluators import (
    FunctionEvaluator,
    FunctionHyperModel,
    ProbeTrial,
    TrialEvaluator,
    UntrainedModel,
    no_build,
)


class ReinforceSearch:
    """keras-tuner's tuner interface, searched by the REINFORCE controller.

    Args:
        hypermodel: ``def build_model(hp)`` returning a compiled Keras model, ``"module:function"``,
            or a HyperModel (``rlnas.HyperModel`` or ``kt.HyperModel``) whose ``build(hp)`` does;
            its overridden ``fit(hp, model, *args, **kwargs)`` trains each child, and the
            hyperparameters it asks are searched too. None only for a subclass that overrides
            :meth:`run_trial`.
        objective: any metric the children log, by name (``"val_accuracy"``, ``"val_loss"``,
            ``"val_mean_absolute_error"``, a custom metric's ``"val_<name>"``, a key of the dict
            a user's ``fit`` returns), its direction inferred as keras-tuner infers it, or
            ``Objective(name, direction)`` (rlnas's or keras-tuner's). None: ``val_accuracy``
            (``val_loss`` on regression targets), or, for an overridden ``fit`` or ``run_trial``,
            the float it returns, minimised (keras-tuner's default).
        hyperparameters, tune_new_entries, allow_new_entries: keras-tuner's: a
            :class:`HyperParameters` declared beforehand wins over the code's definitions of the
            same names (``hp.Fixed`` fixes one); names it lacks are searched only with
            ``tune_new_entries`` (otherwise they take their ``default=``), and are an error
            without ``allow_new_entries``.
        optimizer, loss, metrics: compile the model the function built again with these instead
            of its own (keras-tuner's overrides).
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
        hypermodel: Callable[[HyperParameters], Any] | str | None = None,
        objective: Any = None,
        max_trials: int = 10,
        *,
        hyperparameters: HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        optimizer: Any = None,
        loss: Any = None,
        metrics: Any = None,
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
        self._custom_trial = custom_trial(type(self), ReinforceSearch)
        if hypermodel is None and not self._custom_trial:
            raise TypeError(
                "ReinforceSearch() needs a hypermodel (a build_model(hp) function or a HyperModel), "
                "unless a subclass overrides run_trial(self, trial, *args, **kwargs)"
            )
        fits = None if hypermodel is None or isinstance(hypermodel, str) else overridden_fit(hypermodel)
        if objective is None:  # keras-tuner's default: what the user's own code returns, minimised
            own = self._custom_trial or fits is not None
            objective = Objective("default_objective", "min") if own else "val_accuracy"
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
        self.grid, self.max_runs = whole("grid", grid), whole("max_runs", max_runs)  # >= 1 run
        preset = Preset.of(hyperparameters, tune_new=tune_new_entries, allow_new=allow_new_entries)
        overrides = compile_overrides(optimizer, loss, metrics)
        fn = None if hypermodel is None else model_function(hypermodel)
        target = f"{self.objective.metric}:{self.objective.direction}"
        self._code = UserCode(
            fn or no_build, hypermodel=fits, preset=preset, compile=overrides, objective=target
        )
        plain = fits is None and not overrides and preset == Preset()
        self._fn = fn if plain and fn is not None else self._code  # a plain function stays importable by name
        if hypermodel is None:
            self.hypermodel: Any = None
        elif isinstance(hypermodel, str) or callable(hypermodel):
            self.hypermodel = FunctionHyperModel(self._fn)
        else:
            self.hypermodel = hypermodel  # the user's own object: run_trial may call its build and fit
        self.space: Any = None  # a run_trial's space shows when search() probes it
        if fn is not None:
            self.space = space_from_function(
                hypermodel if isinstance(hypermodel, str) and plain else self._fn,
                grid=self.grid,
                max_runs=self.max_runs,
                preset=preset,
            )
        self.project_dir = Path(directory) / project_name
        self.overwrite = overwrite
        self.in_process = bool(in_process)
        self._evaluator: FunctionEvaluator | None = None
        self._trials: list[Trial] = []

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        """keras-tuner's hook: override it to run a trial your way (build and fit, or any function
        of ``trial.hyperparameters``) and return a History, a float (the objective) or a dict.
        Without an override, each trial builds the hypermodel's model and fits it (in workers)."""
        hp = trial.hyperparameters
        model = self.hypermodel.build(hp)
        return self.hypermodel.fit(hp, model, *args, **kwargs)

    # -- searching -------------------------------------------------------------------------------
    def search(
        self,
        x: Any = None,
        y: Any = None,
        *args: Any,
        epochs: int | None = None,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float | None = None,
        batch_size: int | None = None,
        verbose: int = 1,
        **fit_kwargs: Any,
    ) -> None:
        """Search: each child is built by the model function, trained on ``(x, y)`` for ``epochs``
        (default 1) and scored on the validation data, in ``workers`` worker processes (a setting;
        default: one per two cores), ``executions_per_trial`` times each. Other keywords
        (``callbacks``, ``shuffle``) go to ``fit`` in the workers; only a function or keyword that
        cloudpickle cannot send makes the children train in this process, with a warning.

        A HyperModel's overridden ``fit`` receives what keras-tuner's would: the training split,
        ``validation_data`` (the validation split), ``callbacks``, and ``epochs``, ``batch_size``
        and the other keywords as given here. Its own hyperparameters are discovered first, by
        running ``build`` and ``fit`` on the first few samples for one epoch.
        A subclass's :meth:`run_trial` receives this call's arguments as given, and runs in this
        process; its hyperparameters are discovered by running it on the first few samples (or
        batch) for one epoch.

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
        if self._evaluator is not None or self._trials:
            raise ConfigError(
                "search() already ran on this tuner; make a new one (overwrite=True) to search again"
            )
        given = {"epochs": epochs, "batch_size": batch_size}
        self._code.passed = {k: v for k, v in given.items() if v is not None}
        epochs, batch_size = whole("epochs", epochs or 1), whole("batch_size", batch_size or 32)
        if self._custom_trial:
            self.config = self._search_config(epochs, batch_size, "data.npz")
            positional = (*(v for v in (x, y) if v is not None), *args)
            keywords = {"validation_data": validation_data, "validation_split": validation_split, **given}
            keywords = {k: v for k, v in keywords.items() if v is not None} | fit_kwargs
            show = _print_trial(self.config.trials, self.objective) if verbose else None
            self._search_trials(positional, keywords, show)
            return
        if args:
            raise TypeError(f"search() takes x and y positionally, got {2 + len(args)} positional arguments")
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
            self._code.objective = f"{self.objective.metric}:{self.objective.direction}"
            if self._code.hypermodel is not None:  # fit's own hyperparameters join the space
                cut = slice(0, PROBE_SAMPLES)
                probe = (dataset.x_train[cut], dataset.y_train[cut]), (dataset.x_val[cut], dataset.y_val[cut])
                self.space = self._discover_fit(*probe, dataset.num_classes, fit_kwargs)
            store = self._create_store()
            dataset = self._save_data(store, train, val, dataset)
        else:
            self.config = self._search_config(epochs, batch_size, "data")
            if self.config.train_fraction != 1:
                raise ConfigError("train_fraction is for arrays; give a dataset of the size to train on")
            splits = dataset_splits(x, y, validation_data, validation_split)  # checked before writing
            self._check_inputs(splits)
            if self._code.hypermodel is not None:  # fit's own hyperparameters join the space
                (x_probe, y_probe), kwargs = probe_arguments((x, y), {"validation_data": validation_data})
                self.space = self._discover_fit((x_probe, y_probe), kwargs["validation_data"], 0, fit_kwargs)
            store = self._create_store()
            dataset = self._save_dataset(store, splits)
        show = _print_trial(self.config.trials, self.objective) if verbose else None
        self._evaluator = FunctionEvaluator(
            self._fn, dataset, train_spec(self.config, self.space.model), fit_kwargs=fit_kwargs
        )
        self.in_process = self.in_process or _needs_this_process(self._fn, fit_kwargs)
        with store.locked():
            evaluators = self._evaluators(store, fit_kwargs)
            run_search(self.config, self.space, store, evaluator=evaluators, on_trial=show)
        self._trials = store.trials()

    def _discover_fit(
        self, train: tuple[Any, Any], val_data: Any, num_classes: int, fit_kwargs: Mapping[str, Any]
    ) -> Any:
        """The space of ``build`` and the overridden ``fit`` together: both run with a recording
        ``hp`` (see :func:`space_from_function`) on the first few samples or batch (``train``,
        ``val_data``; labels as the model's loss wants them when ``num_classes`` is known), so
        that a hyperparameter ``fit`` asks (``hp.Boolean("shuffle")``) is searched like the
        build's. The model ``fit`` gets there does not train (its ``fit`` and ``evaluate`` return
        at once): a probe costs a build, not a training."""
        hypermodel, code = self._code.hypermodel, self._code
        _, kwargs = probe_arguments((), {**code.passed, **fit_kwargs, "callbacks": []})

        def labels(model: Any, y: Any) -> Any:
            return y if y is None or not num_classes else fit_labels(model, y, num_classes)

        def build_and_fit(hp: HyperParameters) -> None:
            model = code(hp)
            val = val_data if not isinstance(val_data, tuple) else (val_data[0], labels(model, val_data[1]))
            x, y = train[0], labels(model, train[1])
            args = (x,) if y is None else (x, y)
            hypermodel.fit(hp, UntrainedModel(model), *args, **{"validation_data": val, **kwargs})

        return space_from_function(
            build_and_fit,
            grid=self.grid,
            max_runs=self.max_runs,
            preset=code.preset,
            model=self.space.model,
            label=f"{type(hypermodel).__name__}.fit",
        )

    def _search_trials(
        self, args: tuple, kwargs: Mapping[str, Any], show: Callable[[Trial], None] | None
    ) -> None:
        """The search of a subclass whose :meth:`run_trial` is the trial: its space discovered by
        running it on the arguments cut down (:func:`probe_arguments`), then every trial run in
        this process (the override may use the tuner itself)."""
        from rlnas.search.loop import run_search

        probe_args, probe_kwargs = probe_arguments(args, kwargs)
        label = f"{type(self).__name__}.run_trial"

        def probe(hp: HyperParameters) -> None:
            self.run_trial(ProbeTrial(hp), *probe_args, **probe_kwargs)

        self.space = space_from_function(
            probe,
            grid=self.grid,
            max_runs=self.max_runs,
            preset=self._code.preset,
            model=function_name(type(self).run_trial),
            label=label,
        )
        store = self._create_store()
        store.write_config(self.config, self.space)
        self.in_process = True
        trials = TrialEvaluator(self, args, kwargs)
        evaluators = [Executions(trials, executions=self.executions, retries=self.retries)]
        with store.locked():
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
        if self.space is None:
            print("Search space summary\nrun_trial's hyperparameters are discovered when search() starts")
            return
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
        """The best architectures as ``hp`` objects: ``.values`` is the dict (``hp.Fixed`` values
        of ``hyperparameters=`` included), ``build_model(hp)`` builds the model."""
        out = []
        for t in self._best(num_trials):
            hp = HyperParameters(t.architecture, preset=self._code.preset)
            hp.values.update(t.architecture)
            out.append(hp)
        return out

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best architectures, trained: each is retrained on the search's train split with the
        seed of its search trial, which gives the model the search scored (same data, same seed)."""
        if self._custom_trial:
            raise ConfigError(
                "this tuner's run_trial trains its own models; build one from get_best_hyperparameters()"
            )
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


def _print_trial(total: int, objective: objectives.Objective) -> Callable[[Trial], None]:
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
