"""Replay: retrain a run's best architectures on train+validation and score each once on test.

The test split is touched here and nowhere else, once per replayed architecture. Works on finished
and interrupted runs alike, and on a run still being searched: it needs only ``config.json`` and the
trials written so far (whole lines: a line being appended is left out), and takes no lock, as it
writes only ``replay/`` and ``replay.json``, which the search does not.

Every replay is kept: replay number n writes its models and its record (settings and results) to
``replay/<n>/``, and the run's ``replay.json`` holds the latest results; only ``overwrite`` replaces
the last replay instead of adding one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rlnas import data
from rlnas.errors import RunError
from rlnas.models.child import Status, TrainSpec, train_and_evaluate, train_spec
from rlnas.models.objectives import parse_objective
from rlnas.models.table import exported
from rlnas.resolve import resolve
from rlnas.run.store import RunStore, atomic_path
from rlnas.run.trial import Trial, number
from rlnas.run.trial import rank as rank_trials


@dataclass(frozen=True)
class ReplayResult:
    """One replayed architecture. ``metric`` is what it is scored by: the objective's own validation
    metric (``mae`` for ``val_mae``) or, for any other objective, ``accuracy``; ``val_score`` is its
    search-time value and ``test_score`` the retrained model's value on the test split."""

    rank: int
    key: str
    architecture: dict[str, Any]
    val_accuracy: float  # search-time validation accuracy (NaN for regression)
    test_accuracy: float
    params: int
    status: Status
    model_path: str
    error: str = ""
    trial: int | None = None  # the replayed trial's index, the number every view shows
    metric: str = "accuracy"
    val_score: float = math.nan
    test_score: float = math.nan

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


def _save_atomically(model: Any, path: Path) -> None:
    """Save under a temporary name, then rename: an interrupted save never leaves a broken model."""
    with atomic_path(path, partial=path.stem + ".partial.keras") as partial:  # Keras wants .keras
        model.save(partial)


def replay(
    store: RunStore,
    *,
    top: int = 1,
    epochs: int | None = None,
    seed: int | None = None,
    on_result: Callable[[ReplayResult], None] | None = None,
    overwrite: bool = False,
) -> list[ReplayResult]:
    """Retrain the ``top`` best architectures of the run in ``store`` into a new ``replay/<n>/`` (the
    last one, emptied, with ``overwrite``); save their models, its record and the run's replay.json.

    Raises:
        RunError: the run has no successful trial yet.
    """
    config = store.read_json("config.json")
    search = config["search"]
    live = store.holder() is not None  # a run still being searched: its last line may be in the writing
    chosen = rank_trials(store.trials(warn=not live), search.get("objective"), top)
    if not chosen:
        raise RunError(f"run {str(store.path)!r} has no successful trial to replay yet")
    ds, spec = _final_training(store, config, epochs)
    seed = search["seed"] if seed is None else seed
    where = store.new_replay_dir(overwrite=overwrite)
    record = {
        "replay": int(where.name),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "top": top,
        "epochs": spec.epochs,
        "seed": seed,
    }
    results, metric = [], scored_metric(search.get("objective"))
    for rank, trial in enumerate(chosen, start=1):
        result = _replay_one(where, trial, rank, ds, spec, seed, metric)
        results.append(result)
        if on_result is not None:
            on_result(result)
    rows = [vars(r) for r in results]
    store.write_json(f"replay/{where.name}/replay.json", record | {"results": rows})
    store.write_json("replay.json", rows)  # the latest, as older versions wrote it
    return results


def _final_training(
    store: RunStore, config: dict[str, Any], epochs: int | None
) -> tuple[data.Dataset, TrainSpec]:
    """The data and the TrainSpec of the final training: the full train split (whatever fraction the
    search trained on), the run's replay epochs and schedule unless ``epochs`` overrides them."""
    settings = resolve(resume_from=config, run=str(store.path)).config  # a missing key gets its default
    ds = data.load(replace(settings.data_spec(), train_fraction=1.0))
    spec = train_spec(settings, config["space"].get("model", "mlp"), final=True)
    return ds, replace(spec, epochs=epochs) if epochs else spec


def scored_metric(objective: str | None) -> str:
    """The metric replay scores on test, without its ``val_`` prefix: the objective's own when it
    is a validation metric (``val_mae`` -> ``mae``), else ``accuracy`` (a composite objective, a
    time, a size: test accuracy is then what says how good the network is)."""
    o = parse_objective(objective or "val_accuracy")
    return o.metric.removeprefix("val_") if o.kind == "metric" and o.metric.startswith("val_") else "accuracy"


def _replay_one(
    where: Path, trial: Trial, rank: int, ds: data.Dataset, spec: Any, seed: int, metric: str
) -> ReplayResult:
    """Retrain one architecture, save its model as it finishes, and score it once on test (the final
    training's eval split: its ``val_<metric>`` is the test value)."""
    path = where / f"rank{rank}-{trial.key}.keras"
    r = train_and_evaluate(
        trial.architecture,
        ds,
        spec,
        seed=seed,
        on_model=lambda model: _save_atomically(exported(model, getattr(ds, "raw_input", None)), path),
    )
    return ReplayResult(
        rank,
        trial.key,
        dict(trial.architecture),
        number(trial.metrics.get("val_accuracy")),
        r.val_accuracy,
        r.params,
        r.status,
        str(path) if r.ok else "",
        r.error,
        trial.index,
        metric,
        number(trial.metrics.get(f"val_{metric}")),
        float(r.reported().get(f"val_{metric}", math.nan)) if r.ok else math.nan,
    )
