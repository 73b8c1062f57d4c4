"""ReinforceSearch: the keras-tuner tutorial function and calls, searched by the REINFORCE controller."""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest

from examples.keras_tuner_model import build_model
from rlnas.errors import ConfigError, DataError, RunError
from rlnas.models.function_model import fit_labels, loss_and_accuracy
from rlnas.space.keras_tuner import HyperParameters
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
    from rlnas.run.store import RunStore
    from rlnas.search.replay import replay

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


@pytest.mark.slow  # a second tuner search in workers; tests/test_scores.py checks sparse labels everywhere
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
    ("kwargs", "error", "message"),
    [
        (
            {"objective": "val_my_score"},
            ConfigError,
            r"objective 'val_my_score': cannot tell whether it is minimised or maximised; "
            r"pass Objective\('val_my_score', direction='min'\) or direction='max'",
        ),
        (
            {"objective": types.SimpleNamespace(name="val_loss", direction="down")},
            ConfigError,
            r"objective 'val_loss': direction must be 'min' or 'max', got 'down'",
        ),
        ({"objective": ["val_accuracy", "val_loss"]}, TypeError, r"takes one objective, not a list"),
        ({"controller_rl": 0.1}, TypeError, r"unexpected keyword argument 'controller_rl'.*'controller_lr'"),
        (
            {"executions_per_trail": 2},
            TypeError,
            r"^ReinforceSearch\(\) got an unexpected keyword argument 'executions_per_trail' \(did you mean "
            r"'executions_per_trial'\?\); it accepts hypermodel, objective, max_trials, executions_per_trial",
        ),
        ({"distribution_strategy": None}, TypeError, r"does not take keras-tuner's 'distribution_strategy'"),
        ({"trials": 4}, TypeError, r"got 'trials'; give it as max_trials"),
        ({"epochs": 4}, TypeError, r"got 'epochs'; give it as search\(epochs=...\)"),
        ({"max_trials": 0}, ConfigError, r"max_trials must be >= 1, got 0"),
        ({"max_trials": -3}, ConfigError, r"max_trials must be >= 1, got -3"),
        ({"max_trials": 2.5}, TypeError, r"max_trials must be an int, got float 2.5"),
        ({"executions_per_trial": 0}, ConfigError, r"executions_per_trial must be >= 1, got 0"),
        ({"executions_per_trial": True}, TypeError, r"executions_per_trial must be an int, got bool"),
        ({"max_retries_per_trial": -1}, ConfigError, r"max_retries_per_trial must be >= 0, got -1"),
        ({"max_consecutive_failed_trials": 0}, ConfigError, r"max_consecutive_failed_trials must be >= 1"),
        ({"max_model_size": "big"}, TypeError, r"max_model_size must be an int, got str 'big'"),
        ({"seed": -1}, ConfigError, r"seed must be >= 0, got -1"),
        ({"overwrite": "yes"}, TypeError, r"overwrite must be True or False, got 'yes'"),
        ({"project_name": 3}, TypeError, r"project_name must be a str, got int 3"),
        ({"directory": None}, TypeError, r"directory must be a str or a path, got NoneType"),
        ({"hypermodel": 3}, TypeError, r"hypermodel must be a function build_model\(hp\) or a HyperModel"),
        ({"hypermodel": None}, TypeError, r"needs a hypermodel .* unless a subclass overrides run_trial"),
        ({"tune_new_entries": "no"}, TypeError, r"tune_new_entries must be True or False, got 'no'"),
        ({"hyperparameters": {"units": 8}}, TypeError, r"hyperparameters must be a HyperParameters, got"),
        ({"metrics": "mae"}, TypeError, r"metrics must be a list, got str 'mae'"),
        ({"archs_per_update": 0}, ConfigError, r"archs_per_update"),
        ({"max_runs": 0}, ConfigError, r"max_runs must be >= 1, got 0"),
        ({"grid": "8"}, TypeError, r"grid must be an int, got str '8'"),
    ],
)
def test_bad_tuner_arguments_are_one_line_errors_before_anything_is_written(
    kwargs: dict, error: type, message: str, tmp_path: Path
) -> None:
    kwargs = {"hypermodel": build_model, "directory": tmp_path, **kwargs}
    with pytest.raises(error, match=message) as caught:
        ReinforceSearch(**kwargs)
    assert "\n" not in str(caught.value) and "--help" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_keras_tuner_objects_and_names_are_understood(tmp_path: Path) -> None:
    objective = types.SimpleNamespace(name="val_accuracy", direction="max")
    tuner = ReinforceSearch(build_model, objective, directory=tmp_path, max_model_size=5000, seed=None)
    assert str(tuner.objective) == "val_accuracy" and tuner.config.max_params == 5000
    assert 0 <= tuner.config.seed < 2**32
    loss = ReinforceSearch(
        build_model, types.SimpleNamespace(name="val_loss", direction="min"), directory=tmp_path
    )
    assert loss.config.objective == "val_loss" and loss.objective.direction == "min"
    assert loss.config.failed_reward == 0  # derived from the data by search(): see test_task.py
    assert ReinforceSearch(build_model, "val_my_error", directory=tmp_path).config.failed_reward < -1
    assert ReinforceSearch(build_model, "loss", directory=tmp_path).config.objective == "train_loss"


def _tiny_model(hp):
    import keras

    model = keras.Sequential([keras.layers.Flatten()])
    model.add(keras.layers.Dense(hp.Choice("units", [8, 16, 24]), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    optimizer = keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-2, sampling="log"))
    model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    return model


def test_executions_per_trial_and_a_minimised_val_loss(tmp_path: Path, capsys) -> None:
    x, y = _one_hot_data(48)
    tuner = ReinforceSearch(
        _tiny_model,
        "val_loss",
        3,
        executions_per_trial=2,
        directory=tmp_path,
        in_process=True,
        archs_per_update=3,
    )
    tuner.search(x[:32], y[:32], epochs=1, validation_data=(x[32:], y[32:]), batch_size=16)
    trials = [t for t in _trials(tuner) if not t.get("cached")]
    for t in trials:  # each trial: two executions (different seeds), scored by their mean
        assert len(t["execution_val_loss"]) == 2 and t["execution_val_loss"][0] != t["execution_val_loss"][1]
        assert t["val_loss"] == pytest.approx(np.mean(t["execution_val_loss"]))
        assert t["val_accuracy"] == pytest.approx(np.mean(t["execution_val_accuracy"]))
        assert t["reward"] == pytest.approx(-t["val_loss"])
    assert "trial 0 of 3: val_loss " in capsys.readouterr().out
    tuner.results_summary(3)
    out = capsys.readouterr().out
    assert 'Objective(name="val_loss", direction="min")' in out
    scores = [float(line.split()[1]) for line in out.splitlines() if line.startswith("Score: ")]
    best = min(t["val_loss"] for t in trials)
    assert scores == sorted(scores) and scores[0] == pytest.approx(best, abs=1e-4)


def test_a_failed_child_is_retried_and_too_many_failures_stop_the_search(tmp_path: Path) -> None:
    from rlnas.errors import SearchAborted

    failures = [0]

    def flaky(hp):
        if failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("flaky build")
        return _tiny_model(hp)

    x, y = _one_hot_data(32)
    args = {"directory": tmp_path, "in_process": True, "archs_per_update": 1}
    retried = ReinforceSearch(flaky, max_trials=1, max_retries_per_trial=1, project_name="retried", **args)
    failures[0] = 1  # the first training fails, its retry succeeds
    retried.search(x, y, epochs=1, validation_split=0.25, verbose=0)
    (trial,) = _trials(retried)
    assert trial["status"] == "ok" and trial["attempts"] == 2
    failing = ReinforceSearch(
        flaky, max_trials=5, max_consecutive_failed_trials=2, project_name="failing", **args
    )
    failures[0] = 10**6
    with pytest.raises(SearchAborted):
        failing.search(x, y, epochs=1, validation_split=0.25, verbose=0)
    trials = _trials(failing)
    assert [t["status"] for t in trials] == ["failed", "failed"]
    assert "RuntimeError: flaky build" in trials[0]["error"]


def test_a_keras_tuner_hypermodel_object_is_searched_by_its_build(tmp_path: Path) -> None:
    kt = pytest.importorskip("keras_tuner")

    class Tiny(kt.HyperModel):
        def build(self, hp):
            return _tiny_model(hp)

    class OwnFit(Tiny):
        def fit(self, hp, model, *args, **kwargs):
            return model.fit(*args, batch_size=hp.Choice("batch_size", [16, 32]), **kwargs)

    tuner = ReinforceSearch(Tiny(), directory=tmp_path)
    assert tuner.space.names == ("units", "lr") and tuner.hypermodel.build(HyperParameters()).built is False
    own = ReinforceSearch(OwnFit(), objective="val_accuracy", directory=tmp_path)
    assert own.space.names == ("units", "lr")  # fit's batch_size joins when search() probes fit


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
    search_kwargs = {"y": y} | search_kwargs
    tuner = ReinforceSearch(build_model, directory=tmp_path, project_name="p")
    with pytest.raises(ConfigError, match=message):
        tuner.search(x, **search_kwargs)
    assert not (tmp_path / "p").exists()  # refused before the project directory is made
    with pytest.raises(ConfigError, match=r"no search has run on this tuner yet"):
        tuner.get_best_models()


@pytest.mark.parametrize(
    ("search_kwargs", "message"),
    [
        ({"validation_data": (np.zeros((4, 8, 8)), np.zeros(3))}, r"^x, y val: x has 4 samples but y has 3"),
        ({"y": np.zeros(5, np.int64), "validation_split": 0.5}, r"^x, y train: x has 8 samples but y has 5"),
    ],
)
def test_arrays_that_do_not_fit_are_one_line_before_the_project_exists(
    search_kwargs: dict, message: str, tmp_path: Path
) -> None:
    x, y = _one_hot_data(16)
    tuner = ReinforceSearch(build_model, directory=tmp_path, project_name="p")
    with pytest.raises(DataError, match=message):
        tuner.search(x, **({"y": y} | search_kwargs))
    assert not (tmp_path / "p").exists()  # checked by rlnas.data.from_splits before anything is written


def test_validation_classes_that_training_never_shows_are_warned_about(tmp_path: Path) -> None:
    """The issue's all-zero scores: a class-sorted array split by position (the bundled mnist_5k.npz
    is sorted) leaves the last classes to validation only; every child rightly scores 0 there."""
    x, y = _one_hot_data(40)
    order = np.argsort(y.argmax(axis=1), kind="stable")
    tuner = ReinforceSearch(_tiny_model, max_trials=1, directory=tmp_path, in_process=True)
    with pytest.warns(
        UserWarning, match=r"validation data holds classes \[8, 9\] that the training data never"
    ):
        tuner.search(x[order], y[order], epochs=1, validation_split=0.2, verbose=0)
    assert _trials(tuner)[0]["val_accuracy"] == 0.0


def test_an_early_stopping_callback_watches_the_validation_split(tmp_path: Path) -> None:
    import keras

    seen: set[str] = set()

    class Seen(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None) -> None:
            seen.update(logs or {})

    # No epoch improves val_loss by 10: with the validation split in fit, Keras stops after the
    # second epoch (never after the first); without it, it warns that val_loss is missing.
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=10, patience=0)
    x, y = _one_hot_data(32)
    tuner = ReinforceSearch(_tiny_model, max_trials=1, directory=tmp_path, in_process=True)
    tuner.search(x, y, epochs=4, validation_split=0.25, verbose=0, callbacks=[stop, Seen()])
    assert _trials(tuner)[0]["epochs_run"] == 2 and {"val_loss", "val_accuracy"} <= seen
