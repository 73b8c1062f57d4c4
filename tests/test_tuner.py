"""ReinforceSearch: the keras-tuner tutorial function and calls, searched by the REINFORCE controller."""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest

from examples.keras_tuner_model import build_model
from rlnas.errors import ConfigError, RunError
from rlnas.function_model import fit_labels, loss_and_accuracy
from rlnas.tuner import ReinforceSearch


def _one_hot_data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """8x8 'images' of 10 classes: the class's row is bright; labels one-hot, as the tutorial's loss wants."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 10
    x = rng.random((n, 8, 8)).astype(np.float32) * 0.2
    x[np.arange(n), y % 8, :] += 0.8
    return x, np.eye(10, dtype=np.float32)[y]


def _trials(tuner: ReinforceSearch) -> list[dict]:
    return [json.loads(line) for line in (tuner.project_dir / "trials.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> ReinforceSearch:
    x, y = _one_hot_data()
    tuner = ReinforceSearch(
        hypermodel=build_model,
        objective="val_accuracy",
        max_trials=4,
        directory=tmp_path_factory.mktemp("tuner"),
        project_name="tutorial",
        archs_per_update=2,
        workers=1,
    )
    tuner.search(x[:48], y[:48], epochs=1, validation_data=(x[48:], y[48:]), batch_size=16, verbose=0)
    return tuner


def test_the_run_directory_is_an_ordinary_run(searched: ReinforceSearch) -> None:
    trials = _trials(searched)
    assert len(trials) == 4 and all(t["status"] == "ok" for t in trials)
    assert searched.in_process is False  # an importable function: the children trained in a worker
    config = json.loads((searched.project_dir / "config.json").read_text())
    assert config["space"]["model"] == "examples.keras_tuner_model:build_model"
    assert config["search"]["epochs"] == 1 and config["search"]["dataset"].endswith("data.npz")


def test_results_summary_lists_the_best_trials(searched: ReinforceSearch, capsys) -> None:
    searched.results_summary(num_trials=2)
    out = capsys.readouterr().out
    assert out.startswith("Results summary\n") and "Showing 2 best trials" in out
    assert out.count("Score: ") == 2 and "num_layers: " in out and "lr: " in out


def test_search_space_summary_prints_the_discovered_space(searched: ReinforceSearch, capsys) -> None:
    searched.search_space_summary()
    out = capsys.readouterr().out
    assert "units_2" in out and "num_layers in {3}" in out and "139,776 distinct architectures" in out


def test_best_hyperparameters_are_legal_and_rebuild_the_model(searched: ReinforceSearch) -> None:
    (hp,) = searched.get_best_hyperparameters()
    searched.space.encode(hp.values)  # raises unless every active decision has an allowed value
    best = max(t["val_accuracy"] for t in _trials(searched))
    assert hp.values == next(t["architecture"] for t in _trials(searched) if t["val_accuracy"] == best)
    model = searched.hypermodel.build(hp)
    assert model.loss == "categorical_crossentropy"


def test_best_model_is_trained_compiled_and_scores_as_in_the_search(searched: ReinforceSearch) -> None:
    x, y = _one_hot_data()
    (model,) = searched.get_best_models(num_models=1)
    assert model.predict(x[:5], verbose=0).shape == (5, 10)
    assert model.optimizer is not None and model.loss == "categorical_crossentropy"
    _, accuracy = loss_and_accuracy(model, x[48:], fit_labels(model, y[48:], 10))
    best = max(t["val_accuracy"] for t in _trials(searched) if t["status"] == "ok")
    assert accuracy == pytest.approx(best, abs=1e-6)  # same data, same seed: the searched model


def test_rlnas_replay_retrains_the_best_of_a_tuner_run(searched: ReinforceSearch) -> None:
    from rlnas.replay import replay
    from rlnas.store import RunStore

    (result,) = replay(RunStore(searched.project_dir), top=1, epochs=1)
    best = max(_trials(searched), key=lambda t: t["val_accuracy"])
    assert result.status == "ok", result.error
    assert result.architecture == best["architecture"] and result.model_path.endswith(".keras")
    assert (searched.project_dir / "replay.json").is_file()


def test_searching_twice_or_over_an_existing_project_is_refused(searched: ReinforceSearch) -> None:
    x, y = _one_hot_data(16)
    with pytest.raises(ConfigError, match=r"search\(\) already ran on this tuner"):
        searched.search(x, y, validation_split=0.25)
    again = ReinforceSearch(build_model, directory=searched.project_dir.parent, project_name="tutorial")
    with pytest.raises(
        RunError, match=r"already holds a search; pass overwrite=True or another project_name"
    ):
        again.search(x, y, validation_split=0.25)


def test_validation_split_and_sparse_labels_work(tmp_path: Path) -> None:
    def sparse_model(hp):
        import keras

        model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten()])
        model.add(keras.layers.Dense(hp.Choice("units", [8, 16]), activation="relu"))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile("adam", "sparse_categorical_crossentropy")  # no accuracy metric: it is computed
        return model

    x, y = _one_hot_data(40)
    tuner = ReinforceSearch(sparse_model, max_trials=2, directory=tmp_path, archs_per_update=2, seed=3)
    tuner.search(x, y.argmax(axis=1), epochs=1, validation_split=0.25, verbose=0)
    # a function defined inside a function reaches the workers by value
    assert not tuner.in_process and [t["status"] for t in _trials(tuner)] == ["ok", "ok"]
    assert np.load(tmp_path / "untitled_project" / "data.npz")["x_val"].shape == (10, 8, 8)


def test_fit_keywords_reach_every_child_in_the_workers(tmp_path: Path) -> None:
    import keras

    class Count(keras.callbacks.Callback):
        """Counts epochs in a file: the children train in other processes."""

        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

        def on_epoch_end(self, epoch, logs=None) -> None:
            with open(self.path, "a") as f:
                f.write(f"{os.getpid()}\n")

    x, y = _one_hot_data(32)
    count = tmp_path / "epochs.txt"
    tuner = ReinforceSearch(build_model, max_trials=2, directory=tmp_path, archs_per_update=2, seed=1)
    tuner.search(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[Count(count)], shuffle=False)
    pids = count.read_text().split()
    assert not tuner.in_process and len(pids) == len({t["key"] for t in _trials(tuner)})
    assert str(os.getpid()) not in pids


def test_fit_keywords_that_cannot_be_pickled_train_in_this_process(tmp_path: Path) -> None:
    import threading

    import keras

    class Locked(keras.callbacks.Callback):
        lock = None

    callback = Locked()
    callback.lock = threading.Lock()  # a lock does not pickle
    x, y = _one_hot_data(32)
    tuner = ReinforceSearch(build_model, max_trials=1, directory=tmp_path, seed=1)
    with pytest.warns(UserWarning, match=r"cannot be sent to worker processes \(TypeError: cannot pickle"):
        tuner.search(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[callback])
    assert tuner.in_process and [t["status"] for t in _trials(tuner)] == ["ok"]


def test_a_search_started_by_a_starting_worker_is_refused(tmp_path: Path, monkeypatch) -> None:
    import multiprocessing

    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    x, y = _one_hot_data(16)
    tuner = ReinforceSearch(build_model, directory=tmp_path)
    with pytest.raises(ConfigError, match=r'must do so under if __name__ == "__main__":'):
        tuner.search(x, y, validation_split=0.25)
    assert not (tmp_path / "untitled_project").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "val_loss"}, r"objective 'val_loss' is not supported; allowed: 'val_accuracy'"),
        (
            {"objective": types.SimpleNamespace(name="val_accuracy", direction="min")},
            r"is not supported; allowed: 'val_accuracy' \(maximised\)",
        ),
        ({"controller_rl": 0.1}, r"unknown setting 'controller_rl'.*did you mean 'controller_lr'"),
        ({"max_trials": 0}, r"trials must be positive, got 0"),
    ],
)
def test_bad_tuner_arguments_are_config_errors(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        ReinforceSearch(build_model, directory=tmp_path, **kwargs)


def test_keras_tuner_objects_and_names_are_understood(tmp_path: Path) -> None:
    objective = types.SimpleNamespace(name="val_accuracy", direction="max")
    tuner = ReinforceSearch(build_model, objective, directory=tmp_path, max_model_size=5000)
    assert tuner.objective == "val_accuracy" and tuner.config.max_params == 5000


@pytest.mark.parametrize(
    ("search_kwargs", "message"),
    [
        ({}, r"the reward is the validation accuracy: give validation_data or validation_split"),
        ({"validation_split": 1.5}, r"validation_split must be a float in \(0, 1\), got 1.5"),
        ({"validation_data": ([1],)}, r"validation_data must be a pair \(x_val, y_val\)"),
    ],
)
def test_search_needs_validation_data(search_kwargs: dict, message: str, tmp_path: Path) -> None:
    x, y = _one_hot_data(16)
    tuner = ReinforceSearch(build_model, directory=tmp_path)
    with pytest.raises(ConfigError, match=message):
        tuner.search(x, y, **search_kwargs)
    with pytest.raises(ConfigError, match=r"no search has run on this tuner yet"):
        tuner.get_best_models()
