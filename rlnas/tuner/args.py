"""The arguments of :class:`rlnas.tuner.ReinforceSearch` and its ``search``, checked as Python would.

A keras-tuner user calls a Python constructor, so a misspelt keyword is a ``TypeError`` naming the
accepted ones (never the CLI's ``--help``), a wrong type is a ``TypeError`` and a bad value a
``ConfigError`` (a ``ValueError`` would do too; rlnas's errors are one family), all before anything
is written. Here too: keras-tuner's names turned into the :class:`rlnas.config.SearchConfig` fields
that mean the same, and its ``objective`` (a name or a ``kt.Objective``) into rlnas's objective text.
"""

from __future__ import annotations

import numbers
import os
import random
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlnas import data
from rlnas.config import FIELD_TYPES
from rlnas.data import given
from rlnas.errors import ConfigError, did_you_mean
from rlnas.models.objectives import ALIASES, infer_direction, parse_objective
from rlnas.space.discovery import load_function

KERAS_TUNER_KEYWORDS = (
    "hypermodel",
    "objective",
    "max_trials",
    "executions_per_trial",
    "max_retries_per_trial",
    "max_consecutive_failed_trials",
    "max_model_size",
    "seed",
    "overwrite",
    "directory",
    "project_name",
    "hyperparameters",
    "tune_new_entries",
    "allow_new_entries",
    "optimizer",
    "loss",
    "metrics",
)
"""keras-tuner's tuner keywords that ReinforceSearch takes, with keras-tuner's meaning."""
RLNAS_KEYWORDS = ("grid", "max_runs", "in_process")
UNSUPPORTED = {
    "oracle": "the REINFORCE controller is the oracle (strategy= picks random, evolution or tpe)",
    "distribution_strategy": "each child trains in its own worker process (workers=N trains N at once)",
    "logger": "the run directory and TensorBoard (rlnas tensorboard) record the search",
    "tuner_id": "one search per run directory",
}
"""keras-tuner keywords ReinforceSearch does not take, and why."""
SET_BY_SEARCH = {
    "trials": "max_trials",
    "dataset": "search(x, y, ...)",
    "data_dir": "search(x, y, ...)",
    "val_fraction": "search(validation_data=...) or validation_split",
    "test_fraction": "search(validation_data=...)",
    "epochs": "search(epochs=...)",
    "batch_size": "search(batch_size=...)",
}
"""SearchConfig fields a tuner sets from keras-tuner's own arguments: named the keras-tuner way."""
FAILED_LOSS = 10.0
"""A failed child's reward under a minimised objective is -FAILED_LOSS (0 would beat every loss)."""


def check_keywords(settings: Mapping[str, Any]) -> None:
    """Reject what is neither keras-tuner's nor a SearchConfig setting, as Python would.

    Raises:
        TypeError: an unknown, unsupported or misplaced keyword; the message names the accepted ones.
    """
    for key in settings:
        if key in UNSUPPORTED:
            raise TypeError(f"ReinforceSearch() does not take keras-tuner's {key!r}: {UNSUPPORTED[key]}")
        if key in SET_BY_SEARCH:
            raise TypeError(f"ReinforceSearch() got {key!r}; give it as {SET_BY_SEARCH[key]}")
        if key not in FIELD_TYPES:
            accepted = ", ".join((*KERAS_TUNER_KEYWORDS, *RLNAS_KEYWORDS))
            raise TypeError(
                f"ReinforceSearch() got an unexpected keyword argument {key!r}"
                + did_you_mean(key, (*KERAS_TUNER_KEYWORDS, *RLNAS_KEYWORDS, *FIELD_TYPES))
                + f"; it accepts {accepted} and the rlnas settings "
                "(archs_per_update, controller_lr, workers, ...: any setting rlnas.make_config takes)"
            )


def whole(name: str, value: Any, *, low: int = 1, optional: bool = False) -> int | None:
    """``value`` as an int >= ``low`` (None allowed when ``optional``).

    Raises:
        TypeError: not an int (a bool, a float, a string).
        ConfigError: below ``low``.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_place(directory: Any, project_name: Any, overwrite: Any) -> None:
    """Types of where the run goes.

    Raises:
        TypeError: ``directory`` not a path, ``project_name`` not a string, ``overwrite`` not a bool.
        ConfigError: an empty ``project_name``.
    """
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(f"directory must be a str or a path, got {type(directory).__name__} {directory!r}")
    if not isinstance(project_name, str):
        raise TypeError(f"project_name must be a str, got {type(project_name).__name__} {project_name!r}")
    if not project_name.strip():
        raise ConfigError("project_name must not be empty")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")


def trial_seed(seed: Any) -> int:
    """keras-tuner's ``seed``: an int, or None for a fresh one (recorded in the run's config)."""
    if seed is None:
        return random.randrange(2**32)
    return whole("seed", seed, low=0)  # type: ignore[return-value]


def objective_text(objective: Any) -> str:
    """rlnas's objective for keras-tuner's ``objective``: a metric name (``"val_accuracy"``,
    ``"val_mean_absolute_error"``, a custom metric's ``"val_<name>"``, a key of the dict a user's
    ``fit`` returns), or an object with ``.name`` and ``.direction`` (``rlnas.Objective`` or
    ``kt.Objective("val_loss", "min")``). Without a direction it is inferred as keras-tuner infers it.

    Raises:
        TypeError: not a string nor an Objective-like object (a list: several objectives).
        ConfigError: a name whose direction cannot be inferred (the message asks for
            ``Objective(name, direction)``), or a direction other than min/max.
    """
    if isinstance(objective, list | tuple):
        raise TypeError("ReinforceSearch takes one objective, not a list")
    name = getattr(objective, "name", objective)
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"objective must be a str or an Objective(name, direction), got {objective!r}")
    metric = ALIASES.get(name, name)
    direction = getattr(objective, "direction", None)
    if direction is None:
        if infer_direction(metric) is None:
            raise ConfigError(
                f"objective {name!r}: cannot tell whether it is minimised or maximised; "
                f"pass Objective({name!r}, direction='min') or direction='max'"
            )
        direction = infer_direction(metric)
    if direction not in ("min", "max"):
        raise ConfigError(f"objective {name!r}: direction must be 'min' or 'max', got {direction!r}")
    text = metric if direction == infer_direction(metric) else f"{metric}:{direction}"
    parse_objective(text)  # a name that is no metric name at all is said here
    return text


def split_arrays(x: Any, y: Any, validation_data: Any, validation_split: float | None) -> tuple[tuple, tuple]:
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


def arrays_only(x: Any, validation_data: Any) -> bool:
    """Whether the data is plain arrays (saved as ``data.npz``), not datasets or dicts of arrays."""
    pair = isinstance(validation_data, tuple | list) and len(validation_data) == 2
    return given.is_arrays(x) and (
        validation_data is None or (pair and all(map(given.is_arrays, validation_data)))
    )


def dataset_splits(x: Any, y: Any, validation_data: Any, validation_split: float | None) -> dict[str, tuple]:
    """``{"train": ..., "val": ...}``, each a ``(tf.data.Dataset, layout)`` ready to save, from a
    dataset, a PyDataset or dicts of arrays, checked as ``model.fit`` would before anything is written.

    Raises:
        ConfigError: ``y`` or ``validation_split`` given with a dataset, or no validation data.
        DataError: what cannot be saved (a generator) or elements that are not ``(x, y)`` pairs.
    """
    given.check_shippable(x, "x")
    is_dataset = not (given.is_arrays(x) or isinstance(x, Mapping))
    if is_dataset and y is not None:
        raise ConfigError("y was given with a dataset x; a dataset yields its own (x, y) pairs: drop y")
    if validation_data is not None and validation_split is not None:
        raise ConfigError("give validation_data or validation_split, not both")
    if validation_split is not None:
        if is_dataset:
            raise ConfigError(
                "validation_split is not supported when x is a dataset (as in Keras): it cannot be split "
                "without reading it; pass validation_data=val_ds (e.g. ds.take(n) and ds.skip(n))"
            )
        if not (isinstance(validation_split, float) and 0 < validation_split < 1):
            raise ConfigError(f"validation_split must be a float in (0, 1), got {validation_split!r}")
        n = len(np.asarray(y))
        cut = n - max(1, round(n * validation_split))
        head, tail = slice(None, cut), slice(cut, None)
        x, validation_data, y = _rows(x, head), (_rows(x, tail), np.asarray(y)[tail]), np.asarray(y)[head]
    if validation_data is None:
        raise ConfigError("the reward is the validation accuracy: give validation_data or validation_split")
    given.check_shippable(validation_data, "validation_data")
    train = given.to_tf_dataset(x, None if is_dataset else y, what="x")
    if isinstance(validation_data, tuple | list):
        if len(validation_data) != 2:
            raise ConfigError("validation_data must be a pair (x_val, y_val) or a dataset")
        val = given.to_tf_dataset(*validation_data, what="validation_data")
    else:
        val = given.to_tf_dataset(validation_data, None, what="validation_data")
    return {"train": train, "val": val}


def _rows(x: Any, rows: slice) -> Any:
    """These rows of an array or of each array of a dict (a model's named inputs)."""
    if isinstance(x, Mapping):
        return {k: np.asarray(v)[rows] for k, v in x.items()}
    return np.asarray(x)[rows]


def warn_unseen_classes(dataset: data.Dataset) -> None:
    """Warn when the validation data holds classes the training data never shows: every child then
    scores (near) 0 there, which is right but almost never meant. It happens when a class-sorted
    array is split by position (``x[:-n]``, ``x[-n:]``, ``validation_split``): shuffle it first."""
    if dataset.task != "classification":
        return
    unseen = np.setdiff1d(dataset.y_val, dataset.y_train)
    if unseen.size:
        warnings.warn(
            f"the validation data holds classes {unseen.tolist()} that the training data never shows "
            "(a class-sorted array split by position?); shuffle x and y before splitting",
            stacklevel=3,
        )


def model_function(hypermodel: Any) -> Callable[..., Any]:
    """The function that builds a child: ``hypermodel`` itself, the one ``"module:function"`` names,
    or a HyperModel's bound ``build`` (cloudpickle sends the object with it; an overridden ``fit``
    is the tuner's business: :func:`rlnas.space.keras_tuner.overridden_fit`).

    Raises:
        TypeError: none of these.
        ConfigError: a ``"module:function"`` that cannot be loaded.
    """
    if isinstance(hypermodel, str):
        return load_function(hypermodel)
    build = getattr(hypermodel, "build", None)
    if not isinstance(hypermodel, type) and callable(build) and not callable(hypermodel):
        return build
    if not callable(hypermodel) or isinstance(hypermodel, type):
        raise TypeError(
            f"hypermodel must be a function build_model(hp) or a HyperModel instance, got {hypermodel!r}"
        )
    return hypermodel


def custom_trial(cls: type, base: type) -> bool:
    """Whether the tuner class ``cls`` overrides ``base.run_trial`` (keras-tuner's "tune any
    function": no hypermodel needed, the trial is the user's code)."""
    return getattr(cls, "run_trial", None) is not getattr(base, "run_trial", None)


def compile_overrides(optimizer: Any, loss: Any, metrics: Any) -> dict[str, Any]:
    """keras-tuner's ``optimizer=``, ``loss=``, ``metrics=``: the given ones, by compile keyword.

    Raises:
        TypeError: ``metrics`` that is not a list (or tuple) of metrics.
    """
    if metrics is not None and not isinstance(metrics, list | tuple):
        raise TypeError(f"metrics must be a list, got {type(metrics).__name__} {metrics!r}")
    given = {"optimizer": optimizer, "loss": loss, "metrics": list(metrics) if metrics is not None else None}
    return {k: v for k, v in given.items() if v is not None}


PROBE_SAMPLES = 8
"""Samples of each array (or batches of a dataset) the discovery of ``fit``/``run_trial`` runs on."""


def probe_arguments(args: tuple, kwargs: Mapping[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """The search's arguments cut down for a discovery run of the user's ``fit`` or ``run_trial``:
    every array to its first :data:`PROBE_SAMPLES` samples (in a tuple, list or dict too), a
    ``tf.data`` dataset to its first batch, ``epochs`` to 1 and no callbacks (a probe must not
    write the user's TensorBoard logs); anything else as given."""
    cut = {k: (1 if k == "epochs" else _probe(v)) for k, v in kwargs.items() if k != "callbacks"}
    return tuple(_probe(a) for a in args), cut | {"callbacks": []} if "callbacks" in kwargs else cut


def _probe(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return value[:PROBE_SAMPLES]
    if isinstance(value, tuple | list):
        return type(value)(_probe(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _probe(v) for k, v in value.items()}
    if callable(getattr(value, "take", None)) and hasattr(value, "element_spec"):  # tf.data.Dataset
        return value.take(1)
    return value
