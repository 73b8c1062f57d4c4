"""One config resolution: a config file, flags and a resumed run's stored config -> (config, space).

Every front end merges settings here and nowhere else: ``rlnas search`` (a new run and ``--resume``),
``rlnas tabulate`` and ``rlnas bench``, the keras-tuner face (:class:`rlnas.tuner.ReinforceSearch`)
and replay. A new run: SearchConfig's defaults < the file's ``[search]`` < flags, and the space from
the file's ``[space]`` (or a ``--model`` function). A resumed run: its own config and space, and
flags may change only :data:`RESUMABLE` settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from rlnas.config import SearchConfig, flatten, make_config, read_toml, space_from_dict, tables
from rlnas.errors import ConfigError, RlnasError
from rlnas.space import SearchSpace

RESUMABLE = (
    "trials",
    "max_minutes",
    "replay_top",
    "replay_epochs",
    "replay_schedule",
    "children_per_worker",
    "workers",
    "executor",
    "address",
    "cpus_per_child",
    "gpus_per_child",
    "gpus",
)
"""Settings a resume may change: the budget, where children train and what happens after the search;
not what is searched."""


class Resolved(NamedTuple):
    config: SearchConfig
    space: SearchSpace


def resolve(
    file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    resume_from: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
    run: str = "",
    before_model: Callable[[], None] | None = None,
) -> Resolved:
    """The settings and the space of a search.

    Args:
        file: a TOML config file (``[search]`` and/or ``[space]``); None for none.
        flags: settings set explicitly by flat name (a CLI flag given, a keyword of the tuner); they
            win over the file's, whether it gives them flat or in a strategy's table. A value of None
            is a value here: leave a flag that was not given out.
        resume_from: the stored ``config.json`` (``{"search": ..., "space": ...}``) of the run
            being continued; then ``file`` and ``model`` must be None.
        model: ``module:function``, a keras-tuner model function that declares the space.
        run: the resumed run's path, for messages.
        before_model: called before ``model``'s module is imported (it imports Keras), so the CLI
            can mute TensorFlow's start-up lines.

    Raises:
        ConfigError: a bad file, setting or space; a resume that changes what is searched.
    """
    flags = flatten(flags or {})  # flat names; an unknown one is reported with a suggestion
    if resume_from is not None:
        if file is not None or model is not None:
            raise ConfigError("a resumed run keeps its own config and space; give no config file or model")
        return _resumed(resume_from, flags, run)
    return _new(file, flags, model, before_model)


def _new(
    file: str | Path | None, flags: dict[str, Any], model: str | None, before: Callable[[], None] | None
) -> Resolved:
    """Defaults < the file's [search] < flags; the file's [space], or the space ``model`` declares."""
    data = read_toml(file) if file is not None else {}
    search, space_table = tables(data)
    make_config(search)  # the file's own mistakes are reported as the file's, even if a flag overrides
    space = space_from_dict(space_table)
    config = make_config(flatten(search) | flags)
    _check_failed_reward(config)
    if model is not None:
        if "space" in data:
            raise ConfigError(
                f"--model {model} declares the search space; remove the [space] table from {file} "
                "or drop --model"
            )
        module, _, function = model.partition(":")
        if not module or not function:  # before Keras loads for the import: a typo costs no start-up
            raise ConfigError(
                f"model function {model!r} must be written module:function (e.g. my_models:build_model)"
            )
        if before is not None:
            before()
        from rlnas.space.discovery import space_from_function

        space = space_from_function(model)
    return Resolved(config, space)


BASELINED = ("val_loss", "val_mse", "val_mean_squared_error", "val_mae", "val_mean_absolute_error")
"""Minimised metrics whose scale the data tells (:func:`fit_to_data`): a failed child's reward is then
derived from it when none is given."""
FAILED_TIMES_BASELINE = 10
"""A failed child is rewarded as a child ten times worse than the trivial predictor: below any child
that learned anything, yet on the scale of the metric (a fixed -10 is no penalty for an MSE of 3,000)."""


def _check_failed_reward(config: SearchConfig, *, data_known: bool = False) -> None:
    """A minimised objective rewards ``-metric`` (at most 0 for a loss, a time or a size), so a failed
    child's reward must be below 0, or every failure would beat every child. Checked for new runs only:
    a run journaled before this check still resumes as it was. A validation loss or error is left to
    :func:`fit_to_data`, which knows its scale once the data is read (``data_known``: it has been)."""
    from rlnas.models.objectives import parse_objective

    objective = parse_objective(config.objective)
    if objective.metric in BASELINED and not data_known:
        return
    if objective.kind == "metric" and objective.direction == "min" and config.failed_reward >= 0:
        raise ConfigError(
            f"objective {objective} is minimised (reward = -{objective.metric}): a failed child's reward "
            f"{config.failed_reward:g} would beat every child; give failed_reward below the rewards you "
            "expect, e.g. --failed-reward -10"
        )


def fit_to_data(config: SearchConfig, dataset: Any) -> SearchConfig:
    """The new run's config made to fit its data (an :class:`rlnas.data.Dataset`, read once checked):

    - regression targets with the default objective (validation accuracy, which they have none of)
      are searched for the lowest ``val_loss``; an accuracy objective given explicitly is an error;
    - a minimised validation loss or error without a ``failed_reward`` of its own rewards a failed
      child :data:`FAILED_TIMES_BASELINE` times the trivial predictor's value: the mean target's
      MSE or MAE for regression, the uniform guess's cross-entropy (ln k) for classification.

    Raises:
        ConfigError: an accuracy objective on regression targets, or a minimised objective whose
            failed reward cannot be derived (the message says how to give one).
    """
    import math

    import numpy as np

    from rlnas.models.objectives import parse_objective

    task = getattr(dataset, "task", "classification")
    objective = parse_objective(config.objective)
    if task == "regression" and (objective.kind != "metric" or "accuracy" in objective.metric):
        if config.objective != SearchConfig.objective:
            raise ConfigError(
                f"objective {objective} needs class labels, but the targets are floats (regression); "
                "use val_loss, val_mae or another metric the children log"
            )
        config = replace(config, objective="val_loss")
        objective = parse_objective("val_loss")
    if objective.metric in BASELINED and objective.direction == "min" and config.failed_reward == 0:
        if task == "regression":
            y_train, y_val = np.asarray(dataset.y_train, float), np.asarray(dataset.y_val, float)
            error = y_val - y_train.mean(axis=0)
            absolute = objective.metric in ("val_mae", "val_mean_absolute_error")
            baseline = float(np.mean(np.abs(error)) if absolute else np.mean(error**2))
        else:
            baseline = math.log(max(int(dataset.num_classes), 2))
        failed = -float(f"{FAILED_TIMES_BASELINE * max(baseline, 1e-6):.3g}")
        config = replace(config, failed_reward=failed)
    _check_failed_reward(config, data_known=True)
    return config


def _resumed(stored: Mapping[str, Any], flags: dict[str, Any], run: str) -> Resolved:
    """The run's own config and space, with only the budget (and where children train) open to change."""
    try:
        config, space = make_config(stored["search"]), space_from_dict(stored["space"])
    except (KeyError, TypeError, RlnasError) as exc:
        raise ConfigError(f"run {run!r} was made by an incompatible rlnas: {exc}") from None
    fixed = sorted(k for k, v in flags.items() if k not in RESUMABLE and v != config.setting(k))
    if fixed:
        k = fixed[0]
        raise ConfigError(
            f"--resume cannot change {k} (the run used {config.setting(k)!r}); "
            f"only {', '.join(RESUMABLE)} may change, or start a new run"
        )
    return Resolved(replace(config, **{k: v for k, v in flags.items() if k in RESUMABLE}), space)
