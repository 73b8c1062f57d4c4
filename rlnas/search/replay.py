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

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rlnas import data
from rlnas.errors import RunError
from rlnas.models.child import Status, TrainSpec, train_and_evaluate, train_spec
from rlnas.models.table import exported
from rlnas.resolve import resolve
from rlnas.run.store import RunStore, atomic_path
from rlnas.run.trial import Trial
from rlnas.run.trial import rank as rank_trials


@dataclass(frozen=True)
class ReplayResult:
    rank: int
    key: str
    architecture: dict[str, Any]
    val_accuracy: float  # search-time validation accuracy
    test_accuracy: float
    params: int
    status: Status
    model_path: str
    error: str = ""
    trial: int | None = None  # the replayed trial's index, the number every view shows

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
    results = []
    for rank, trial in enumerate(chosen, start=1):
        result = _replay_one(where, trial, rank, ds, spec, seed)
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


def _replay_one(where: Path, trial: Trial, rank: int, ds: data.Dataset, spec: Any, seed: int) -> ReplayResult:
    """Retrain one architecture, save its model as it finishes, and score it once on test."""
    path = where / f"rank{rank}-{trial.key}.keras"
    r = train_and_evaluate(
        trial.architecture,
        ds,
        spec,
        seed=seed,
        on_model=lambda model: _save_atomically(exported(model, ds.raw_input), path),
    )
    return ReplayResult(
        rank,
        trial.key,
        dict(trial.architecture),
        trial.metrics["val_accuracy"],
        r.val_accuracy,
        r.params,
        r.status,
        str(path) if r.ok else "",
        r.error,
        trial.index,
    )
