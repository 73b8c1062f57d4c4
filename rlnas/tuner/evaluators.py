"""What trains a tuner's children in its own process: the model function (``in_process``, and
``get_best_models``' retraining), and a tuner subclass's ``run_trial``; with the stand-ins that find
a user's ``fit`` and ``run_trial`` hyperparameters without training (:class:`UntrainedModel`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlnas import data
from rlnas.data.saved import SavedDataset
from rlnas.errors import ChildError, ConfigError
from rlnas.exec.evaluator import BaseEvaluator
from rlnas.models.child import ChildResult, Status, TrainSpec, reported_result, train_and_evaluate
from rlnas.run.trial import objective_name
from rlnas.space.keras_tuner import (
    HyperModel,
    HyperParameters,
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


class FunctionHyperModel(HyperModel):
    """keras-tuner's ``tuner.hypermodel`` of a model function: ``tuner.hypermodel.build(best_hp)``
    builds a model, ``fit`` is ``model.fit``."""

    def __init__(self, fn: Callable[[HyperParameters], Any]) -> None:
        super().__init__()
        self.fn = fn

    def build(self, hp: HyperParameters) -> Any:
        return self.fn(hp)


class UntrainedModel:
    """The built model as a discovery run of ``HyperModel.fit`` sees it: everything is the model's
    own (calling it, its weights, its optimizer: a custom training loop still runs, on a few
    samples), except ``fit`` and ``evaluate``, which return at once, and ``predict``, which is
    one call of the untrained model."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        import keras

        history = keras.callbacks.History()
        history.history = {}
        return history

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """Zeros shaped as Keras's answer: a dict, the loss alone, or the loss and each metric."""
        config = getattr(getattr(self._model, "_compile_config", None), "config", None) or {}
        names = ["loss", *(config.get("metrics") or [])]
        if kwargs.get("return_dict"):
            return {str(getattr(n, "name", n)): 0.0 for n in names}
        return 0.0 if len(names) == 1 else [0.0] * len(names)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """The untrained model's outputs, as numpy like Keras's (the probe's inputs are few)."""
        if isinstance(x, np.ndarray):
            return np.asarray(self._model(x))
        return self._model.predict(x, verbose=0)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class ProbeTrial:
    """The ``trial`` a ``run_trial`` override receives: ``trial.hyperparameters`` (and its id)."""

    def __init__(self, hp: HyperParameters, trial_id: str = "probe") -> None:
        self.hyperparameters, self.trial_id = hp, trial_id


class TrialEvaluator(BaseEvaluator):
    """Runs a tuner subclass's ``run_trial`` in this process (it may use the tuner itself, so it
    is not sent to workers): seeded and on a fresh Keras session like any child; what it returns
    is read as keras-tuner reads it (:func:`rlnas.models.function_model.to_fitted`)."""

    def __init__(self, tuner: Any, args: tuple, kwargs: Mapping[str, Any]) -> None:
        """``tuner``: the ReinforceSearch subclass whose ``run_trial`` this runs."""
        self.tuner, self.args, self.kwargs = tuner, args, dict(kwargs)

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        import time

        import keras

        from rlnas.models.function_model import to_fitted

        start = time.perf_counter()
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(seed)
        hp = HyperParameters(arch, preset=self.tuner._code.preset)
        try:
            returned = self.tuner.run_trial(ProbeTrial(hp, str(seed)), *self.args, **self.kwargs)
            fitted = to_fitted(returned, self.tuner._code.objective, f"{type(self.tuner).__name__}.run_trial")
            if fitted.reported is None:
                name = objective_name(self.tuner.objective)
                raise ChildError(f"run_trial returned a History without the objective {name!r}")
            result = reported_result(fitted)
        except Exception as exc:  # a failed trial, with its reason, as any child's
            result = ChildResult(Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
        return dataclasses.replace(result, child_seconds=time.perf_counter() - start)


def no_build(hp: HyperParameters) -> Any:
    """The build of a tuner whose run_trial override has no hypermodel: never called for a model."""
    raise ConfigError("this tuner has no hypermodel; its run_trial builds what it needs")
